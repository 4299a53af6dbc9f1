package engine

import (
	"bytes"
	"fmt"
	"testing"

	"pgregory.net/rapid"
)

// TestHashCache holds HashByRev, which reuses what earlier calls hashed, to
// a fresh walk of the store at every call: hashes at random revisions,
// forward and backward, across the cache's marks, with compactions moving
// its base and bursts of writes between calls.
func TestHashCache(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := newStore(Options{})
		defer s.Close()
		keys := rapid.IntRange(1, 40).Draw(t, "keys")
		for range rapid.IntRange(1, 40).Draw(t, "steps") {
			switch rapid.IntRange(0, 4).Draw(t, "op") {
			case 0: // a burst of writes, often past a mark
				for range rapid.IntRange(1, 700).Draw(t, "burst") {
					k := fmt.Appendf(nil, "k%d", rapid.IntRange(0, keys).Draw(t, "key"))
					if rapid.IntRange(0, 9).Draw(t, "del") == 0 {
						s.DeleteRange(k, nil)
					} else {
						s.Put(k, fmt.Appendf(nil, "v%d", s.Rev()))
					}
				}
			case 1:
				if s.CompactRev() < s.Rev() {
					s.Compact(rapid.Int64Range(max(s.CompactRev()+1, 0), s.Rev()).Draw(t, "compact"))
				}
			default:
				st := s.cur.Load()
				rev := rapid.Int64Range(max(st.compactRev, 0), st.rev).Draw(t, "rev")
				got, err := s.HashByRev(rev)
				if err != nil {
					t.Fatalf("HashByRev(%d): %v", rev, err)
				}
				want := st.hasher(max(rev, 1)).Sum32()
				if rev == 0 {
					want = st.hasher(st.rev).Sum32()
				}
				if got.Hash != want {
					t.Fatalf("HashByRev(%d) = %08x, a walk of the store gives %08x (compacted %d, rev %d, cache through %d)",
						rev, got.Hash, want, st.compactRev, st.rev, s.hashes.through)
				}
			}
		}
	})
}

// TestHashAfterRestart checks that a store loaded from a snapshot, whose
// cache starts empty, hashes like the store it was taken of after both go
// on with the same writes.
func TestHashAfterRestart(t *testing.T) {
	s := newStore(Options{})
	defer s.Close()
	for i := range 1000 {
		mustPut(t, s, fmt.Sprintf("k%d", i%97), fmt.Sprint(i))
		if i%300 == 0 {
			s.HashByRev(0) // warm the cache
		}
	}
	if err := s.Compact(500); err != nil {
		t.Fatal(err)
	}
	s.HashByRev(0)
	loaded, err := loadStore(bytes.NewReader(snapshotBytes(t, s)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer loaded.Close()
	for i := range 600 {
		mustPut(t, s, fmt.Sprintf("k%d", i%31), "x")
		mustPut(t, loaded, fmt.Sprintf("k%d", i%31), "x")
		if i%100 != 0 {
			continue
		}
		for _, rev := range []int64{0, 500, 777, s.Rev() - 1} {
			a, err1 := s.HashByRev(rev)
			b, err2 := loaded.HashByRev(rev)
			if err1 != nil || err2 != nil || a != b {
				t.Fatalf("HashByRev(%d): %v %v vs %v %v", rev, a, err1, b, err2)
			}
		}
	}
}
