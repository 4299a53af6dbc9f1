// Package leaktest lets tests check that what they closed left no goroutine
// behind.
package leaktest

import (
	"runtime"
	"time"
)

// Settle returns the number of goroutines once it is at most want, or after
// a second. Goroutines that have signalled they are done (a WaitGroup, a
// closed channel) still take a moment to return, much longer under the race
// detector, so a count taken at once would be flaky; Settle yields instead
// of sleeping, and waits for nothing else.
func Settle(want int) int {
	deadline := time.Now().Add(time.Second)
	n := runtime.NumGoroutine()
	for n > want && time.Now().Before(deadline) {
		runtime.Gosched()
		n = runtime.NumGoroutine()
	}
	return n
}
