package watch

import (
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

	raced := false
	testHookCatchUpRead = func() {
		if raced {
			return
		}
		raced = true
		s.Put(b("k"), nil) // revision 5, after the catch-up's view
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
	for i, rev := range revs {
		if rev != int64(i+2) {
			t.Fatalf("revisions %v, want 2..5", revs)
		}
	}
	if !raced {
		t.Fatal("the hook did not run: the test did not exercise the race")
	}
}
