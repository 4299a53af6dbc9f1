package watch

import (
	"fmt"
	"github.com/revkv/revkv/internal/leaktest"
	"runtime"
	"sync"
	"testing"

	"github.com/revkv/revkv/kv"
)

// TestConcurrentWatchers runs writers, watchers with receivers of different
// speeds, cancels and compactions at once (run with -race), then closes the
// store under them. Every watch must see strictly increasing positions (no
// duplicate, no reordering); the one that watches everything from the start
// and reads fast must see every event; no goroutine may remain.
func TestConcurrentWatchers(t *testing.T) {
	before := runtime.NumGoroutine()
	s := New(memory(), Options{MaxEvents: 8, ChanSize: 2})
	const writers, writes = 3, 1500

	all := s.NewWatcher()
	// A large cap lets this watch hold 4,000 pending events: it keeps up
	// with the writers, so compaction must never end it.
	all.WatchRange(Request{Key: []byte{}, End: []byte{}, MaxEvents: 1000}) // from revision 2: keeps up from the start
	var allEvents []kv.Event
	var allEnd *Response
	allDone := make(chan struct{})
	finalRev := make(chan int64, 1)
	caughtUp := make(chan struct{})
	go func() {
		defer close(allDone)
		want := int64(-1)
		for r := range all.Chan() {
			allEvents = append(allEvents, r.Events...)
			if r.Canceled && allEnd == nil {
				allEnd = &r
			}
			if want < 0 {
				select {
				case want = <-finalRev:
				default:
				}
			}
			if r.Progress && want > 0 && r.Revision >= want {
				close(caughtUp)
				want = 1 << 62
			}
		}
	}()

	var wg sync.WaitGroup
	errc := make(chan error, 8)
	writersDone := make(chan struct{})
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range writes {
				key := []byte(fmt.Sprintf("k%d", (w*7+i)%20))
				if i%5 == 0 {
					s.DeleteRange(key, nil)
				} else {
					s.Put(key, []byte("v"))
				}
				if i%300 == 299 {
					if rev := s.Rev() - 100; rev > s.CompactRev() {
						s.Compact(rev)
					}
				}
			}
		}()
	}
	// Watchers that come and go, read at different speeds, and cancel.
	var readers sync.WaitGroup
	for r := range 4 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for round := range 20 {
				w := s.NewWatcher()
				var cancels []CancelFunc
				for i := range 5 {
					cancels = append(cancels, w.Watch([]byte(fmt.Sprintf("k%d", (r+i+round)%20)), i%2 == 0, s.Rev()-int64(i*10)))
				}
				last := map[int64]kv.Revision{}
				for n := 0; n < 10+r*5; n++ {
					var resp Response
					select {
					case r, ok := <-w.Chan():
						if !ok {
							return
						}
						resp = r
					case <-writersDone:
						w.Close()
						return
					}
					for _, ev := range resp.Events {
						if p, seen := last[resp.WatchID]; seen && !p.Less(ev.Revision()) {
							errc <- fmt.Errorf("watch %d: %v after %v", resp.WatchID, ev.Revision(), p)
							return
						}
						last[resp.WatchID] = ev.Revision()
					}
					if n == 5 {
						cancels[r%5]()
					}
				}
				w.Close()
			}
		}()
	}
	wg.Wait()
	close(writersDone)
	readers.Wait()
	s.Compact(s.Rev()) // through the watch store: waits for dispatch
	final := s.Rev()
	finalRev <- final
	all.RequestProgress()
	<-caughtUp
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	<-allDone
	if allEnd != nil {
		t.Fatalf("the full watch, which keeps up, ended: %+v", *allEnd)
	}
	select {
	case err := <-errc:
		t.Fatal(err)
	default:
	}
	// The fast reader saw every revision, in order, once.
	var prev kv.Revision
	for i, ev := range allEvents {
		if i > 0 && !prev.Less(ev.Revision()) {
			t.Fatalf("event %d at %v after %v", i, ev.Revision(), prev)
		}
		if i > 0 && ev.KV.ModRevision > prev.Main+1 {
			t.Fatalf("gap: %v then %v", prev, ev.Revision())
		}
		prev = ev.Revision()
	}
	if len(allEvents) == 0 || allEvents[0].KV.ModRevision != 2 {
		t.Fatalf("the full watch did not start at revision 2")
	}
	if prev.Main != final {
		t.Fatalf("full watch ends at %v, store at %d", prev, final)
	}
	t.Logf("full watch got %d events up to %v", len(allEvents), prev)
	if after := leaktest.Settle(before); after > before {
		t.Fatalf("%d goroutines after Close, %d before", after, before)
	}
}

// TestLazyRunLoop: a Store nobody watches runs no goroutine; its first
// Watcher starts the run loop, and Close stops it, also when Watchers are
// made at the same time as Close (each then either works until Close or
// is born closed).
func TestLazyRunLoop(t *testing.T) {
	before := runtime.NumGoroutine()
	s := New(memory(), Options{})
	if _, err := s.Put([]byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := s.Compact(s.Rev()); err != nil { // the hook, with no run loop
		t.Fatal(err)
	}
	if n := runtime.NumGoroutine(); n != before {
		t.Fatalf("%d goroutines with no Watcher, %d before New", n, before)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	for range 50 {
		s := New(memory(), Options{})
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				w := s.NewWatcher()
				if _, err := w.WatchRange(Request{Key: []byte("k")}); err != nil && err != kv.ErrClosed {
					t.Errorf("watch: %v", err)
				}
				for range w.Chan() { // closed by Close
				}
			}()
		}
		s.Put([]byte("k"), []byte("v"))
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
	}
	if after := leaktest.Settle(before); after > before {
		t.Fatalf("%d goroutines after Close, %d before", after, before)
	}
}
