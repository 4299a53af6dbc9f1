package engine

import (
	"sync"
	"time"
)

// Clock is where a store's leases get the time: their deadlines when
// granted and renewed, their remaining TTLs, and the timer that expires
// them. See Options.Clock.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// After returns a channel that receives once d has passed (at once,
	// for d <= 0). The store drops channels it no longer waits on, so an
	// implementation must not block sending on one.
	After(d time.Duration) <-chan time.Time
}

// systemClock is the wall clock.
type systemClock struct{}

func (systemClock) Now() time.Time                         { return time.Now() }
func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// ManualClock is a Clock that moves only when told (Advance, Set), so that
// tests and generated runs with leases are deterministic. It is safe for
// concurrent use.
type ManualClock struct {
	mu     sync.Mutex
	now    time.Time     // guarded by mu
	timers []manualTimer // guarded by mu; not yet fired
}

type manualTimer struct {
	at time.Time
	ch chan time.Time
}

var _ Clock = (*ManualClock)(nil)

// NewManualClock returns a ManualClock that reads start until moved.
func NewManualClock(start time.Time) *ManualClock { return &ManualClock{now: start} }

// Now returns the clock's time.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// After returns a channel that receives the clock's time once the clock
// has been moved d past its current time.
func (c *ManualClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1) // a fire never blocks
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.timers = append(c.timers, manualTimer{at: c.now.Add(d), ch: ch})
	return ch
}

// Advance moves the clock forward by d and fires the timers due by then.
func (c *ManualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.setLocked(c.now.Add(d))
}

// Set moves the clock to t (backwards too) and fires the timers due by
// then.
func (c *ManualClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.setLocked(t)
}

func (c *ManualClock) setLocked(t time.Time) {
	c.now = t
	kept := c.timers[:0]
	for _, tm := range c.timers {
		if tm.at.After(t) {
			kept = append(kept, tm)
			continue
		}
		tm.ch <- t
	}
	clear(c.timers[len(kept):])
	c.timers = kept
}
