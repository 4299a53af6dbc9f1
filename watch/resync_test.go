package watch

import (
	"slices"
	"testing"

	"github.com/revkv/revkv/engine"
)

// TestCatchUpDoesNotRejoinBehindTheHub forces the race a catching-up watch
// must handle: after it has read history up to its view's revision, more
// revisions are written and handed to the keeping-up watches before it
// rejoins them. It must not rejoin then (it would miss those revisions) but
// read on, and so receive every event exactly once.
func TestCatchUpDoesNotRejoinBehindTheHub(t *testing.T) {
	s := New(engine.New(engine.Options{}), Options{})
	defer s.Close()
	for range 3 {
		s.Put(b("k"), nil) // revisions 2..4
	}
	// A synced watch keeps the hub dispatching.
	other := s.NewWatcher()
	defer other.Close()
	other.Watch(b("other"), false, 0)
	s.Put(b("other"), nil)      // revision 5
	s.h.waitDispatched(s.Rev()) // so a watch from 2 starts behind the hub

	raced := false
	testHookCatchUpRead = func() {
		if raced {
			return
		}
		raced = true
		s.Put(b("k"), nil) // revision 6, after the catch-up's view
		s.h.waitDispatched(s.Rev())
	}
	defer func() { testHookCatchUpRead = nil }()

	w := s.NewWatcher()
	defer w.Close()
	w.Watch(b("k"), false, 2) // catches up from history
	var revs []int64
	for len(revs) < 4 {
		r := recv(t, w)
		for _, ev := range r.Events {
			revs = append(revs, ev.KV.ModRevision)
		}
	}
	if want := []int64{2, 3, 4, 6}; !slices.Equal(revs, want) {
		t.Fatalf("revisions %v, want %v", revs, want)
	}
	if !raced {
		t.Fatal("the hook did not run: the test did not exercise the race")
	}
}

// TestRejoinedWatchKeepsOrder: a watch that has just rejoined the hub while
// its last history Response is still unsent must not have newer events
// delivered ahead of that Response.
func TestRejoinedWatchKeepsOrder(t *testing.T) {
	s := New(engine.New(engine.Options{}), Options{})
	defer s.Close()
	// A watch that keeps up keeps the hub dispatching, so the watch below
	// starts behind it and has to catch up.
	other := s.NewWatcher()
	defer other.Close()
	other.Watch(b("other"), false, 0)
	for range 3 {
		s.Put(b("k"), nil) // revisions 2..4
	}
	s.h.waitDispatched(s.Rev()) // so a watch from 2 starts behind the hub
	raced := false
	testHookCatchUpDone = func() {
		if raced {
			return
		}
		raced = true
		s.Put(b("k"), nil) // revision 5: dispatched to the rejoined watch
		s.h.waitDispatched(s.Rev())
	}
	defer func() { testHookCatchUpDone = nil }()

	w := s.NewWatcher()
	defer w.Close()
	w.Watch(b("k"), false, 2)
	var revs []int64
	for len(revs) < 4 {
		for _, ev := range recv(t, w).Events {
			revs = append(revs, ev.KV.ModRevision)
		}
	}
	for i, rev := range revs {
		if rev != int64(i+2) {
			t.Fatalf("revisions %v, want 2..5 in order", revs)
		}
	}
	if !raced {
		t.Fatal("the hook did not run")
	}
}

// TestProgressWhenLastWatchLeaves: a progress request that waits for the
// hub to dispatch must be answered even if the last keeping-up watch goes
// away (the hub then idles) before the hub gets there.
func TestProgressWhenLastWatchLeaves(t *testing.T) {
	s := New(engine.New(engine.Options{}), Options{})
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
