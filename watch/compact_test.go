package watch

import (
	"errors"
	"testing"

	"github.com/revkv/revkv/kv"
)

// readAll reads Responses until it has at least n events, checks that they
// are the revisions from, from+1, ... in order and that no Response ends
// the watch, and returns the revision after the last event read.
func readAll(t *testing.T, w *Watcher, from int64, n int) int64 {
	t.Helper()
	next := from
	for next < from+int64(n) {
		r := recv(t, w)
		if r.Canceled {
			t.Fatalf("watch ended after %d of %d events: %v (compacted %d)", next-from, n, r.Err, r.CompactRevision)
		}
		for _, ev := range r.Events {
			if ev.KV.ModRevision != next {
				t.Fatalf("event at revision %d, want %d", ev.KV.ModRevision, next)
			}
			next++
		}
	}
	return next
}

// The case: a watch whose receiver stalled while 5,000 events were
// written, then a compaction to the current revision. Every event was
// handed to the watch or is in the history it reads, so it must get them
// all: compaction cuts a watch only when the history it needs is gone.
func TestCompactionKeepsStalledWatch(t *testing.T) {
	s := newStore(t, Options{MaxEvents: 100, ChanSize: 1})
	w := s.NewWatcher()
	defer w.Close()
	w.Watch(b("k"), true, 0)
	const n = 5000
	for i := range n {
		if _, err := s.Put([]byte{'k', byte(i % 7)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Compact(s.Rev()); err != nil {
		t.Fatal(err)
	}
	readAll(t, w, 2, n)
}

// A watch reading history from an old revision when a compaction to the
// current revision arrives keeps reading: the history it still needs stays
// alive for it.
func TestCompactionDuringCatchUp(t *testing.T) {
	s := newStore(t, Options{MaxEvents: 100, ChanSize: 1})
	const n = 5000
	for i := range n {
		s.Put([]byte{'k', byte(i % 7)}, nil)
	}
	w := s.NewWatcher()
	defer w.Close()
	w.Watch(b("k"), true, 2)
	next := readAll(t, w, 2, 300)
	if err := s.Compact(s.Rev()); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		s.Put(b("k"), nil)
	}
	readAll(t, w, next, int(n+12-next))
}

// The same with the compaction landing between a catch-up's read of the
// history and its use of what it read, and then a second compaction before
// the watch has caught up with the first.
func TestCompactionInsideCatchUpRead(t *testing.T) {
	s := newStore(t, Options{MaxEvents: 100, ChanSize: 1})
	const n = 3000
	for range n {
		s.Put(b("k"), nil)
	}
	w := s.NewWatcher()
	defer w.Close()
	ran := false
	testHookCatchUpRead = func() {
		if ran {
			return
		}
		ran = true
		if err := s.Compact(s.Rev()); err != nil {
			t.Error(err)
		}
		for range 5 {
			s.Put(b("k"), nil)
		}
	}
	t.Cleanup(func() { testHookCatchUpRead = nil })
	w.Watch(b("k"), false, 2)
	next := readAll(t, w, 2, 500)
	if !ran {
		t.Fatal("the hook did not run")
	}
	if err := s.Compact(s.Rev()); err != nil {
		t.Fatal(err)
	}
	readAll(t, w, next, int(n+5+2-next))
}

// Compacting the engine itself, not through the watch Store, is just as
// safe: the engine tells the watchers before the compaction takes effect.
func TestEngineCompactionKeepsWatches(t *testing.T) {
	e := memory()
	s := New(e, Options{MaxEvents: 100, ChanSize: 1})
	defer s.Close()
	w := s.NewWatcher()
	defer w.Close()
	w.Watch(b("k"), false, 0)
	const n = 2000
	for range n {
		e.Put(b("k"), nil)
	}
	if err := e.Compact(e.Rev()); err != nil {
		t.Fatal(err)
	}
	readAll(t, w, 2, n)
}

// A watch that starts below a compaction's revision after the watchers
// prepared for it, but before it took effect, started before the
// compaction: it gets every event too. One started after it took effect
// starts below the compacted revision and ends with kv.ErrCompacted.
func TestWatchStartedDuringCompaction(t *testing.T) {
	e := memory()
	s := New(e, Options{MaxEvents: 100, ChanSize: 1})
	defer s.Close()
	const n = 1000
	for range n {
		s.Put(b("k"), nil)
	}
	early := s.NewWatcher()
	defer early.Close()
	ran := false
	// Hooks run in order: the watchers' first, then this one, before the
	// compaction takes effect.
	e.OnCompact(func(int64) func() {
		ran = true
		early.Watch(b("k"), false, 2)
		return nil
	})
	if err := s.Compact(s.Rev()); err != nil {
		t.Fatal(err)
	}
	if !ran {
		t.Fatal("the hook did not run")
	}
	readAll(t, early, 2, n)

	late := s.NewWatcher()
	defer late.Close()
	late.Watch(b("k"), false, 2)
	if r := recv(t, late); !r.Canceled || !errors.Is(r.Err, kv.ErrCompacted) || r.CompactRevision != n+1 {
		t.Fatalf("a watch started after the compaction: %+v", r)
	}
}
