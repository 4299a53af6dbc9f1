package watch

import "syscall"

// procCPU returns the CPU time (user and system) of the whole process, in
// ns: the benchmark's goroutine, the dispatcher, the receivers and the
// garbage collector together. On a busy machine it is a steadier measure
// than the time on the clock.
func procCPU() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
