package engine

import (
	"errors"
	"time"

	"github.com/revkv/revkv/kv"
)

// expiry is a store's lease expiry goroutine: it sleeps on the store's
// clock until the soonest deadline and then runs ExpireLeases. It starts
// with the first lease and stops at Close.
type expiry struct {
	stop chan struct{} // closed by Close
	done chan struct{} // closed by the goroutine when it returns
	wake chan struct{} // a deadline may have moved: look again
}

// timerExpiry reports whether the store expires leases by itself: not
// when the caller said it will (ManualLeaseExpiry), and not when a
// consensus log drives the store (ConsistentIndex): there expiry is
// decided by the leader and applied from the log as revokes.
func (s *Store) timerExpiry() bool {
	return !s.opts.ManualLeaseExpiry && s.opts.ConsistentIndex == nil
}

// kickExpiryLocked starts the expiry goroutine if the store has leases
// and none runs, or tells it the deadlines changed. mu is held.
func (s *Store) kickExpiryLocked() {
	if !s.timerExpiry() || s.closed.Load() {
		return
	}
	if s.exp == nil {
		if !s.w.lt.active() {
			return
		}
		s.exp = &expiry{stop: make(chan struct{}), done: make(chan struct{}), wake: make(chan struct{}, 1)}
		go s.runExpiry(s.exp)
		return
	}
	select {
	case s.exp.wake <- struct{}{}:
	default: // a wake is pending already
	}
}

// stopExpiry stops the expiry goroutine, if one runs, and waits for it.
// mu must not be held: the goroutine may be waiting for it.
func (x *expiry) stopAndWait() {
	if x == nil {
		return
	}
	close(x.stop)
	<-x.done
}

// nextDeadline returns the soonest lease deadline, if there is a lease.
func (s *Store) nextDeadline() (int64, bool) {
	s.leaseMu.Lock()
	defer s.leaseMu.Unlock()
	if s.w.lt.byExpiry == nil {
		return 0, false
	}
	it, ok := s.w.lt.byExpiry.Min()
	return it.deadline, ok
}

func (s *Store) runExpiry(x *expiry) {
	defer close(x.done)
	clock := s.clock()
	armed := true
	for {
		var timer <-chan time.Time
		if d, ok := s.nextDeadline(); ok && armed {
			timer = clock.After(time.Duration(d - clock.Now().UnixNano()))
		}
		select {
		case <-x.stop:
			return
		case <-x.wake:
			armed = true
		case <-timer:
			_, err := s.ExpireLeases(clock.Now())
			switch {
			case err == nil:
			case errors.Is(err, kv.ErrClosed), errors.Is(err, kv.ErrStopped):
				return // no more writes: nothing to expire
			default:
				// A revoke the store refuses (kv.ErrTooLarge) would fail again
				// at once: wait for the next change to the leases.
				s.logger().Error("revkv: lease expiry failed", "err", err)
				armed = false
			}
		}
	}
}
