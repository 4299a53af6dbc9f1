package watch

import (
	"slices"
	"testing"
)

// TestCatchUpDoesNotRejoinBehindTheHub forces the race a catching-up watch
// must handle: after it has read history up to its view's revision, more
// revisions are written and handed to the keeping-up watches before it
// rejoins them. It must not rejoin then (it would miss those revisions) but
// read on, and so receive every event exactly once.
// behindTheHub returns a store where a watch keeps the hub dispatching and
// revisions 2..4 of key "k" have been dispatched, so that a new watch of k
// from revision 2 starts behind the hub and has to catch up.
func behindTheHub(t *testing.T) *Store {
	s := New(memory(), Options{})
	t.Cleanup(func() { s.Close() })
	other := s.NewWatcher()
	t.Cleanup(other.Close)
	other.Watch(b("other"), false, 0)
	for range 3 {
		s.Put(b("k"), nil) // revisions 2..4
	}
	s.h.waitDispatched(s.Rev())
	return s
}

// onceAt sets *hook to write one more revision of k and let the hub
// dispatch it, the first time the hook runs; it returns whether it ran.
func onceAt(t *testing.T, s *Store, hook *func()) *bool {
	ran := new(bool)
	*hook = func() {
		if *ran {
			return
		}
		*ran = true
		s.Put(b("k"), nil)
		s.h.waitDispatched(s.Rev())
	}
	t.Cleanup(func() { *hook = nil })
	return ran
}

// revisionsOf reads n events from w and returns their revisions.
func revisionsOf(t *testing.T, w *Watcher, n int) []int64 {
	var revs []int64
	for len(revs) < n {
		for _, ev := range recv(t, w).Events {
			revs = append(revs, ev.KV.ModRevision)
		}
	}
	return revs
}

func TestCatchUpDoesNotRejoinBehindTheHub(t *testing.T) {
	s := behindTheHub(t)
	// Revision 5 is written after the catch-up's view was read.
	raced := onceAt(t, s, &testHookCatchUpRead)
	w := s.NewWatcher()
	defer w.Close()
	w.Watch(b("k"), false, 2)
	if revs := revisionsOf(t, w, 4); !slices.Equal(revs, []int64{2, 3, 4, 5}) {
		t.Fatalf("revisions %v, want 2..5", revs)
	}
	if !*raced {
		t.Fatal("the hook did not run: the test did not exercise the race")
	}
}

// TestRejoinedWatchKeepsOrder: a watch that has just rejoined the hub while
// its last history Response is still unsent must not have newer events
// delivered ahead of that Response.
func TestRejoinedWatchKeepsOrder(t *testing.T) {
	s := behindTheHub(t)
	// Revision 5 is dispatched to the rejoined watch before its catch-up
	// Response is sent.
	raced := onceAt(t, s, &testHookCatchUpDone)
	w := s.NewWatcher()
	defer w.Close()
	w.Watch(b("k"), false, 2)
	if revs := revisionsOf(t, w, 4); !slices.Equal(revs, []int64{2, 3, 4, 5}) {
		t.Fatalf("revisions %v, want 2..5 in order", revs)
	}
	if !*raced {
		t.Fatal("the hook did not run")
	}
}

// TestProgressWhenLastWatchLeaves: a progress request that waits for the
// hub to dispatch must be answered even if the last keeping-up watch goes
// away (the hub then idles) before the hub gets there.
func TestProgressWhenLastWatchLeaves(t *testing.T) {
	s := New(memory(), Options{})
	defer s.Close()
	quiet := s.NewWatcher()
	defer quiet.Close()
	for i := range 300 {
		busy := s.NewWatcher()
		id, _ := busy.WatchRange(Request{Key: b("k")})
		s.Put(b("k"), nil)
		quiet.RequestProgress()
		busy.Cancel(id)
		busy.Close()
		for {
			r := recv(t, quiet)
			if r.Progress {
				if r.Revision < s.Rev() {
					t.Fatalf("round %d: progress at %d, store at %d", i, r.Revision, s.Rev())
				}
				break
			}
		}
	}
}
