package engine

// notifier wakes goroutines waiting for the revision to move. A write pays
// one atomic load when nobody waits; a waiter that arms it costs one channel
// close on the next publication.
type notifier struct {
	ch chan struct{} // guarded by Store.notifyMu; nil when nobody waits
}

var closedCh = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Notify returns a channel that is closed once the store's revision is
// above after, or the store is closed. Watchers use it to sleep until there
// is history to read. It is safe for concurrent use and never blocks.
func (s *Store) Notify(after int64) <-chan struct{} {
	s.notifyMu.Lock()
	defer s.notifyMu.Unlock()
	// Arm first, then look: a writer that publishes after our look sees the
	// flag and closes the channel we are about to hand out.
	s.notifyArmed.Store(true)
	if s.closed.Load() || s.cur.Load().rev > after {
		return closedCh
	}
	if s.notify.ch == nil {
		s.notify.ch = make(chan struct{})
	}
	return s.notify.ch
}

// wake closes the channel handed out by Notify, if any. It is called after
// every publication and on Close.
func (s *Store) wake() {
	if !s.notifyArmed.Load() {
		return
	}
	s.notifyMu.Lock()
	s.notifyArmed.Store(false)
	if s.notify.ch != nil {
		close(s.notify.ch)
		s.notify.ch = nil
	}
	s.notifyMu.Unlock()
}
