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
