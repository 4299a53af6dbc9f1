package watch

// Review of issue 12's watch compaction (see /work/notes/review12.md).

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/revkv/revkv/kv"
)

// TestReviewCompactionStorm: a writer, a goroutine compacting to random
// recent revisions as fast as it can, and watches started meanwhile at
// random revisions, read by receivers that stall now and then. A watch
// whose start revision was not compacted when Watch returned must get
// every revision from its start on, in order, and never end with
// kv.ErrCompacted; one that started below the compacted revision may
// only end with it.
func TestReviewCompactionStorm(t *testing.T) {
	for round := range 3 {
		s := newStore(t, Options{MaxEvents: 8, ChanSize: 1})
		const writes = 1500
		stop := make(chan struct{})
		var compactions, served, cut atomic.Int64
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { // the writer
			defer wg.Done()
			for i := range writes {
				if _, err := s.Put(fmt.Appendf(nil, "k%d", i%13), nil); err != nil {
					t.Error(err)
					return
				}
				if i%50 == 0 {
					time.Sleep(time.Millisecond) // let watches start along the way
				}
			}
		}()
		go func() { // the compactor
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(round), 1))
			for {
				select {
				case <-stop:
					return
				default:
				}
				rev := s.Rev() - int64(r.IntN(40))
				if rev > s.CompactRev() && s.Compact(rev) == nil {
					compactions.Add(1)
				}
				time.Sleep(time.Duration(r.IntN(300)) * time.Microsecond)
			}
		}()
		var readers sync.WaitGroup
		r := rand.New(rand.NewPCG(uint64(round), 2))
		for i := range 24 {
			w := s.NewWatcher()
			lo := max(s.CompactRev()-20, 2) // revision 1 has no event
			start := lo + r.Int64N(s.Rev()-lo+2)
			w.Watch(b("k"), true, start)
			mustServe := start >= s.CompactRev()
			readers.Add(1)
			go func() {
				defer readers.Done()
				defer w.Close()
				rr := rand.New(rand.NewPCG(uint64(round), uint64(10+i)))
				next := start
				for next <= writes+1 {
					var resp Response
					select {
					case resp = <-w.Chan():
					case <-time.After(20 * time.Second):
						t.Errorf("watch %d from %d: stuck at %d", i, start, next)
						return
					}
					if resp.Canceled {
						cut.Add(1)
						if mustServe || !errors.Is(resp.Err, kv.ErrCompacted) {
							t.Errorf("watch %d from %d (servable: %v) ended at %d: %v (compacted %d)", i, start, mustServe, next, resp.Err, resp.CompactRevision)
						}
						return
					}
					for _, ev := range resp.Events {
						if ev.KV.ModRevision != next {
							t.Errorf("watch %d from %d: event at %d, want %d", i, start, ev.KV.ModRevision, next)
							return
						}
						next++
					}
					if rr.IntN(8) == 0 {
						time.Sleep(time.Millisecond) // a stalled receiver
					}
				}
				served.Add(1)
			}()
			time.Sleep(time.Duration(r.IntN(2000)) * time.Microsecond)
		}
		readers.Wait()
		close(stop)
		wg.Wait()
		t.Logf("round %d: %d compactions, %d watches served to the end, %d cut below the compacted revision", round, compactions.Load(), served.Load(), cut.Load())
		if t.Failed() {
			return
		}
	}
}
