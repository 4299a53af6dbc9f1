package watch

import (
	"testing"

	"github.com/revkv/revkv/kv"
)

var arenaKey = []byte("k")

func ev(rev int64) kv.Event { return kv.Event{KV: kv.KeyValue{Key: arenaKey, ModRevision: rev}} }

// TestArenaExtend: a pending list that is a run of the current chunk grows
// in place, with its capacity clipped; anything else is appended to; a
// Response's events (a prefix of the run) never change.
func TestArenaExtend(t *testing.T) {
	var a arena
	var p, q []kv.Event // p gets every event, q every other one
	var handedOut []kv.Event
	for rev := int64(1); rev <= 3*arenaChunk; rev++ {
		i := a.add(ev(rev))
		before := &a.chunk[0]
		p = a.extend(p, i)
		if rev%2 == 0 {
			q = a.extend(q, i)
		}
		if &a.chunk[0] != before {
			t.Fatalf("rev %d: extend moved the chunk", rev)
		}
		if j := i - len(p) + 1; j >= 0 && &p[0] == &a.chunk[j] && cap(p) != len(p) {
			t.Fatalf("rev %d: a run of the chunk has spare capacity %d > %d", rev, cap(p), len(p))
		}
		if rev == 10 {
			// A Response takes what p has; p goes on from empty.
			handedOut, p = p, nil
		}
	}
	for i, e := range handedOut {
		if e.KV.ModRevision != int64(i+1) {
			t.Fatalf("handed-out event %d has revision %d", i, e.KV.ModRevision)
		}
	}
	check := func(name string, evs []kv.Event, first, step int64) {
		t.Helper()
		for i, e := range evs {
			if want := first + int64(i)*step; e.KV.ModRevision != want {
				t.Fatalf("%s[%d] = rev %d, want %d", name, i, e.KV.ModRevision, want)
			}
		}
	}
	check("p", p, 11, 1)
	check("q", q, 2, 2)
	if len(p) != 3*arenaChunk-10 || len(q) != 3*arenaChunk/2 {
		t.Fatalf("len(p) = %d, len(q) = %d", len(p), len(q))
	}
}

// TestArenaNoCopyInChunk: a watch that gets every event of a chunk costs
// no allocation.
func TestArenaNoCopyInChunk(t *testing.T) {
	var a arena
	a.add(ev(0)) // the first chunk exists
	a.chunk = make([]kv.Event, 0, arenaChunk)
	var p []kv.Event
	rev := int64(0)
	allocs := testing.AllocsPerRun(arenaChunk/2, func() {
		rev++
		p = a.extend(p, a.add(ev(rev)))
	})
	if allocs != 0 || len(p) != arenaChunk/2+1 {
		t.Fatalf("%v allocations per event, %d events", allocs, len(p))
	}
}

// TestArenaCarriesRuns: watches that get every event and are emptied now
// and then (receivers that lag a little) go on from one chunk into the
// next without a copy of their own: every pending list is a run of the
// current chunk, whatever chunk its first events were put in. What they
// hand out is every event, in order, once.
func TestArenaCarriesRuns(t *testing.T) {
	var a arena
	type receiver struct {
		pending []kv.Event
		every   int // empties pending every so many events
		next    int64
	}
	rs := []*receiver{{every: 100, next: 1}, {every: 37, next: 1}, {every: 1, next: 1}, {every: 600, next: 1}}
	carried := 0
	const events = 10 * arenaChunk
	for rev := int64(1); rev <= events; rev++ {
		i := a.add(ev(rev))
		if i == a.carried && a.carried > 0 {
			carried++
		}
		for _, r := range rs {
			r.pending = a.extend(r.pending, i)
			if n := len(r.pending); &r.pending[n-1] != &a.chunk[i] || cap(r.pending) != n || i < n-1 {
				t.Fatalf("rev %d, every %d: %d pending events are not a run of the chunk", rev, r.every, n)
			}
			if rev%int64(r.every) == 0 {
				for _, e := range r.pending {
					if e.KV.ModRevision != r.next {
						t.Fatalf("every %d: got rev %d, want %d", r.every, e.KV.ModRevision, r.next)
					}
					r.next++
				}
				r.pending = nil
			}
		}
	}
	if carried == 0 {
		t.Fatal("no chunk carried a run")
	}
	for _, r := range rs {
		if got := r.next - 1 + int64(len(r.pending)); got != events {
			t.Fatalf("every %d: %d events handed out or pending, want %d", r.every, got, events)
		}
	}
}
