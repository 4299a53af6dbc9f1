package engine_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/proptest"
)

// TestLongHistories drives keys with thousands of versions (many version
// blocks each) through puts, deletes and compactions that keep both few and
// many versions, and checks every retained revision of every key against the
// reference model, through the store and through views held across the
// compactions.
func TestLongHistories(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, seed))
			s, _ := engine.Open(nil, engine.Options{})
			m := proptest.NewModel()
			keys := [][]byte{[]byte("hot"), []byte("hot2"), []byte("warm")}
			type held struct {
				v            *engine.View
				rev, compact int64
			}
			var views []held
			for i := range 12000 {
				k := keys[0]
				if r.IntN(4) == 0 {
					k = keys[1+r.IntN(len(keys)-1)]
				}
				op := r.IntN(99)
				if i%3000 == 2999 {
					op = 99 // compact: alternately keeping most and little
				}
				switch {
				case op < 90:
					v := []byte(fmt.Sprint(i))
					want, _ := m.Put(k, v, 0)
					if got, err := s.Put(k, v); err != nil || got != want {
						t.Fatalf("Put = %d, %v; model %d", got, err, want)
					}
				case op < 97:
					wantN, wantRev, _ := m.DeleteRange(k, nil)
					if n, rev, err := s.DeleteRange(k, nil); err != nil || n != wantN || rev != wantRev {
						t.Fatalf("DeleteRange = %d, %d, %v; model %d, %d", n, rev, err, wantN, wantRev)
					}
				case op < 99:
					if r.IntN(10) > 0 {
						continue
					}
					v, _ := s.View()
					views = append(views, held{v, m.Rev(), m.CompactRev()})
				default:
					// Keep most of the history (thousands of versions of
					// the hot key: blocks shared), or little (copied).
					lo := max(m.CompactRev()+1, 1)
					rev := lo + (m.Rev()-lo)/10
					if (i/3000)%2 == 1 {
						rev = max(lo, m.Rev()-r.Int64N(200))
					}
					m.Compact(rev)
					if err := s.Compact(rev); err != nil {
						t.Fatalf("Compact(%d): %v", rev, err)
					}
				}
			}
			check := func(what string, rangeAt func(rev int64) ([]engine.KeyValue, error), cur, compact int64) {
				for rev := max(compact, 1); rev <= cur; rev++ {
					got, err := rangeAt(rev)
					want, wantErr := m.RangeView(nil, []byte{}, 0, rev, cur, compact)
					if err != nil || wantErr != nil {
						t.Fatalf("%s at %d: %v (model %v)", what, rev, err, wantErr)
					}
					if len(got) != len(want) {
						t.Fatalf("%s at %d: %d keys, model %d", what, rev, len(got), len(want))
					}
					for i := range got {
						g, w := got[i], want[i]
						if !bytes.Equal(g.Key, w.Key) || !bytes.Equal(g.Value, w.Value) || g.Version != w.Version ||
							g.CreateRevision != w.CreateRevision || g.ModRevision != w.ModRevision {
							t.Fatalf("%s at %d: %+v, model %+v", what, rev, g, w)
						}
					}
				}
			}
			check("store", func(rev int64) ([]engine.KeyValue, error) {
				kvs, _, err := s.Range(nil, []byte{}, 0, rev)
				return kvs, err
			}, m.Rev(), m.CompactRev())
			for _, h := range views {
				check(fmt.Sprintf("view@%d", h.rev), func(rev int64) ([]engine.KeyValue, error) {
					res, err := h.v.Range(nil, []byte{}, engine.RangeOptions{Rev: rev})
					return res.KVs, err
				}, h.rev, h.compact)
			}
		})
	}
}

// TestCompactionFreesMemory checks that a compaction frees the versions it
// drops at once, not at some later compaction: the history after the
// compacted revision must not keep the records that compaction replaced
// (and their versions) alive.
func TestCompactionFreesMemory(t *testing.T) {
	s, _ := engine.Open(nil, engine.Options{})
	defer s.Close()
	value := make([]byte, 128)
	start := heapInUse()
	for i := range 100_000 {
		if _, err := s.Put(fmt.Appendf(nil, "key%04d", i%500), value); err != nil {
			t.Fatal(err)
		}
	}
	full := heapInUse() - start
	if err := s.Compact(s.Rev() - 500); err != nil {
		t.Fatal(err)
	}
	// About two versions of 500 keys and 500 revisions remain.
	left := int64(heapInUse()) - int64(start)
	if left > int64(full)/10 {
		t.Fatalf("heap of %d KiB before the compaction, %d KiB after: want at most a tenth", full>>10, left>>10)
	}
	t.Logf("heap %d KiB before the compaction, %d KiB after", full>>10, left>>10)
}

// TestViewAfterCompactionKeepsNoHistory checks that a view taken after a
// compaction keeps none of what the compaction freed: states share slabs
// (see Store.newStateLocked), and a slab that also held a state from
// before the compaction would keep that state's history and records alive
// with the view.
func TestViewAfterCompactionKeepsNoHistory(t *testing.T) {
	s, _ := engine.Open(nil, engine.Options{})
	defer s.Close()
	value := make([]byte, 128)
	start := heapInUse()
	for i := range 100_000 {
		if _, err := s.Put(fmt.Appendf(nil, "key%04d", i%500), value); err != nil {
			t.Fatal(err)
		}
	}
	full := heapInUse() - start
	if err := s.Compact(s.Rev() - 500); err != nil {
		t.Fatal(err)
	}
	// A few writes after the compaction, then a view: its state and the
	// ones around it in the slab are all from after the compaction.
	for i := range 3 {
		if _, err := s.Put(fmt.Appendf(nil, "key%04d", i), value); err != nil {
			t.Fatal(err)
		}
	}
	v, err := s.View()
	if err != nil {
		t.Fatal(err)
	}
	left := int64(heapInUse()) - int64(start)
	if left > int64(full)/10 {
		t.Fatalf("heap of %d KiB before the compaction, %d KiB after with a view: want at most a tenth", full>>10, left>>10)
	}
	runtime.KeepAlive(v)
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestCompactionFreesValuePages checks that the value a compaction keeps of
// a key updated once, long ago, keeps no page of other values alive:
// updates pack their values into shared pages (Store.pageCopyLocked), and
// here each page holds one update of a key that then goes cold, among
// updates of hot keys that compaction drops.
func TestCompactionFreesValuePages(t *testing.T) {
	s, _ := engine.Open(nil, engine.Options{})
	defer s.Close()
	value := make([]byte, 128)
	const cold = 2000
	for i := range cold {
		if _, err := s.Put(fmt.Appendf(nil, "cold%04d", i), value); err != nil {
			t.Fatal(err)
		}
	}
	start := heapInUse()
	for i := range cold {
		if _, err := s.Put(fmt.Appendf(nil, "cold%04d", i), value); err != nil {
			t.Fatal(err)
		}
		for j := range 60 {
			if _, err := s.Put(fmt.Appendf(nil, "hot%d", j%10), value); err != nil {
				t.Fatal(err)
			}
		}
	}
	rev := s.Rev()
	// A third version of each, which the compaction keeps with the second.
	for i := range cold {
		if _, err := s.Put(fmt.Appendf(nil, "cold%04d", i), value); err != nil {
			t.Fatal(err)
		}
	}
	full := heapInUse() - start
	if err := s.Compact(rev); err != nil {
		t.Fatal(err)
	}
	// Each cold key keeps its second and third values (128 bytes each),
	// in a list of two versions: about 500 bytes a key. A page (4 KiB) a
	// key is 8 times that.
	left := int64(heapInUse()) - int64(start)
	if limit := int64(cold * 1024); left > limit {
		t.Fatalf("heap of %d KiB before the compaction, %d KiB after: want at most %d KiB", full>>10, left>>10, limit>>10)
	}
	t.Logf("heap %d KiB before the compaction, %d KiB after", full>>10, left>>10)
}
