package engine

import (
	"fmt"
	"sync"
	"testing"
)

// TestHistoryFirstChunkGrows writes revisions of one change (packed, an
// update's version, or a new key's record), and of several (new keys'
// records, or other changes), through the
// growth of a history's first chunk and past it,
// keeping the history as of every revision: each must still read every
// revision up to its own, as a view does after the writer grew the chunk
// it holds.
func TestHistoryFirstChunkGrows(t *testing.T) {
	const first, last = 2, 2 + 2*chunkSize + 10
	want := func(rev int64) []change {
		k := fmt.Appendf(nil, "k%d", rev)
		if rev%6 == 0 { // a txn of two new keys: the history keeps their records
			var cs []change
			for sub := range int64(2) {
				k := fmt.Appendf(nil, "k%d.%d", rev, sub)
				cs = append(cs, newRecord(k, version{main: rev, sub: sub, create: rev, ver: 1, value: k}).madeChange())
			}
			return cs
		}
		if rev%3 == 0 { // a revision of two changes
			return []change{{key: k, v: version{main: rev, ver: 1}}, {key: k, v: version{main: rev, sub: 1, ver: 2}}}
		}
		if rev%3 == 1 { // a new key: the history keeps its record
			c := newRecord(k, version{main: rev, create: rev, ver: 1, value: fmt.Appendf(nil, "v%d", rev)}).madeChange()
			if c.rec == nil {
				t.Fatalf("revision %d: a new record's change has no record", rev)
			}
			return []change{c}
		}
		return []change{{key: k, v: version{main: rev, ver: 1}}}
	}
	// An update as Put makes it (every other revision of one change but
	// a new key's): its key and value together in one buffer, its version
	// in a slab of versions, where the history keeps its place.
	slabs := map[int64][]version{}
	updated := func(rev int64) (slab *version, idx, klen int) {
		k := fmt.Appendf(nil, "k%d", rev)
		buf := fmt.Appendf(k[:len(k):len(k)], "v%d", rev)
		if slabs[rev/40] == nil {
			slabs[rev/40] = make([]version, 40)
		}
		sl := slabs[rev/40]
		sl[rev%40] = version{main: rev, ver: 1, value: buf[len(k):]}
		return &sl[0], int(rev % 40), len(k)
	}
	var h history
	held := map[int64]history{}
	for rev := int64(first); rev <= last; rev++ {
		if cs := want(rev); len(cs) == 1 && rev%3 == 2 && rev%2 == 0 {
			slab, idx, klen := updated(rev)
			h = h.addUpdated(rev, slab, idx, klen)
		} else if len(cs) == 1 {
			h = h.addOne(rev, cs[0])
		} else {
			h = h.add(rev, cs)
			if rev%6 == 0 {
				clear(cs) // the history keeps the records, not cs
			}
		}
		held[rev] = h
	}
	if n := int(held[first].chunks[0].size); n != firstChunkSize {
		t.Errorf("first chunk of %d entries, want %d", n, firstChunkSize)
	}
	if n := int(h.chunks[0].size); n != chunkSize {
		t.Errorf("first chunk grew to %d entries, want %d", n, chunkSize)
	}
	for at, h := range held {
		for rev := int64(first); rev <= at; rev++ {
			var got []change
			h.each(rev, func(c change) bool { got = append(got, c); return true })
			w := want(rev)
			if rev%3 == 2 && rev%2 == 0 {
				w = []change{{key: fmt.Appendf(nil, "k%d", rev), v: slabs[rev/40][rev%40]}}
			}
			if len(got) != len(w) {
				t.Fatalf("history at %d: revision %d has %d changes, want %d", at, rev, len(got), len(w))
			}
			for i := range w {
				if string(got[i].key) != string(w[i].key) || got[i].v.main != rev || got[i].v.sub != w[i].v.sub ||
					string(got[i].v.value) != string(w[i].v.value) || got[i].v.create != w[i].v.create {
					t.Fatalf("history at %d: revision %d change %d is %q %d.%d %q, want %q %q", at, rev, i, got[i].key, got[i].v.main, got[i].v.sub, got[i].v.value, w[i].key, w[i].v.value)
				}
			}
		}
	}
}

// TestHistoryGrowConcurrentReads reads every revision of published
// states while the writer grows the first chunk (run with -race).
func TestHistoryGrowConcurrentReads(t *testing.T) {
	s := newStore(Options{})
	defer s.Close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			st := s.cur.Load()
			for rev := int64(2); rev <= st.rev; rev++ {
				n := 0
				st.hist.each(rev, func(change) bool { n++; return true })
				if n == 0 {
					t.Errorf("revision %d of %d: no changes", rev, st.rev)
					return
				}
			}
		}
	}()
	for i := range 300 {
		mustPut(t, s, fmt.Sprintf("k%d", i%7), "v")
	}
	close(stop)
	wg.Wait()
}

// TestHistoryOneUnpackableChange: a revision of one change that cannot be
// packed (a sub-revision other than 0) is kept as its slice, through add
// and addOne alike.
func TestHistoryOneUnpackableChange(t *testing.T) {
	var h history
	c := change{key: []byte("k"), v: version{main: 2, sub: 1, ver: 1}}
	h = h.add(2, []change{c})
	h = h.addOne(3, change{key: []byte("k"), v: version{main: 3, sub: 1, ver: 2}})
	for rev := int64(2); rev <= 3; rev++ {
		var got []change
		h.each(rev, func(c change) bool { got = append(got, c); return true })
		if len(got) != 1 || got[0].v.main != rev || got[0].v.sub != 1 {
			t.Fatalf("revision %d: %+v", rev, got)
		}
	}
}
