package keytree

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/revkv/revkv/internal/cputime"
	"github.com/tidwall/btree"
)

// The benchmarks compare the tree with tidwall/btree as the engine used it
// before (items of a prefix and a record, a less func comparing prefixes,
// then keys; degree 32; no locks).

type item struct {
	prefix uint64
	rec    *rec
}

func lessItem(a, b item) bool {
	if a.prefix != b.prefix {
		return a.prefix < b.prefix
	}
	return bytes.Compare(a.rec.key, b.rec.key) < 0
}

func newTidwall() *btree.BTreeG[item] {
	return btree.NewBTreeGOptions(lessItem, btree.Options{NoLocks: true})
}

var pre8 = prefixer(8)

// benchKeys returns n keys: numbered ("k%015d", the engine's numbered
// keys: their first 8 bytes tell apart only keys far apart, as an engine
// key part would not, so the prefix is of bytes 8-15) or 16 random bytes.
func benchKeys(n int, numbered bool) [][]byte {
	r := rand.New(rand.NewPCG(1, 2))
	ks := make([][]byte, n)
	for i := range ks {
		if numbered {
			ks[i] = fmt.Appendf(nil, "k%015d", i)
		} else {
			ks[i] = make([]byte, 16)
			for j := range ks[i] {
				ks[i][j] = byte(r.Uint32())
			}
		}
	}
	return ks
}

// prefixOf is the prefix the benchmarks give a key: the 8 bytes after the
// first 8 for numbered keys (what the engine's key parts skip).
func prefixOf(k []byte, numbered bool) uint64 {
	if numbered {
		return pre8(k[8:])
	}
	return pre8(k)
}

func shuffled(ks [][]byte) [][]byte {
	r := rand.New(rand.NewPCG(3, 4))
	s := append([][]byte(nil), ks...)
	r.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
	return s
}

func cpuMetric(b *testing.B, cpu0 int64) {
	b.ReportMetric(float64(cputime.Thread()-cpu0)/float64(b.N), "cpu-ns/op")
}

// BenchmarkGet is a lookup of a random existing key at 1M keys, inserted
// in random order.
func BenchmarkGet(b *testing.B) {
	const n = 1_000_000
	for _, numbered := range []bool{false, true} {
		ks := benchKeys(n, numbered)
		recs := make([]*rec, n)
		for i, k := range ks {
			recs[i] = &rec{key: k}
		}
		order := shuffled(ks)
		name := fmt.Sprintf("keys=%s", map[bool]string{false: "random", true: "numbered"}[numbered])
		b.Run(name+"/tree=keytree", func(b *testing.B) {
			t := New(cmpRec)
			for i := range order {
				k := order[i]
				t.Set(prefixOf(k, numbered), k, &rec{key: k}, nil)
			}
			runtime.GC()
			r := rand.New(rand.NewPCG(5, 6))
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			b.ReportAllocs()
			cpu0 := cputime.Thread()
			for b.Loop() {
				k := ks[r.IntN(n)]
				if t.Get(prefixOf(k, numbered), k, nil) == nil {
					b.Fatal("missing")
				}
			}
			cpuMetric(b, cpu0)
		})
		b.Run(name+"/tree=tidwall", func(b *testing.B) {
			t := newTidwall()
			for i := range order {
				k := order[i]
				t.Set(item{prefixOf(k, numbered), &rec{key: k}})
			}
			runtime.GC()
			r := rand.New(rand.NewPCG(5, 6))
			probe := &rec{}
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			b.ReportAllocs()
			cpu0 := cputime.Thread()
			for b.Loop() {
				k := ks[r.IntN(n)]
				probe.key = k
				if _, ok := t.Get(item{prefixOf(k, numbered), probe}); !ok {
					b.Fatal("missing")
				}
			}
			cpuMetric(b, cpu0)
		})
	}
}

// growing times op(i) for i = 0, 1, ... n-1 on one thread, then again
// from 0 after reset (untimed): ops on a tree that grows to n keys, then
// starts over. It reports the thread's CPU time per op.
func growing(b *testing.B, n int, reset func(), op func(i int)) {
	reset()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ReportAllocs()
	cpu0 := cputime.Thread()
	i := 0
	for b.Loop() {
		if i == n {
			b.StopTimer()
			reset()
			i = 0
			b.StartTimer()
		}
		op(i)
		i++
	}
	cpuMetric(b, cpu0)
}

// BenchmarkSetRandom inserts 16-byte random keys in random order into a
// tree that grows to 1M keys (then a new one starts, untimed). copy=16
// copies the tree every 16 inserts, as the engine publishes: each insert
// then clones its path.
func BenchmarkSetRandom(b *testing.B) {
	const n = 1_000_000
	ks := benchKeys(n, false)
	for _, every := range []int{0, 16} {
		b.Run(fmt.Sprintf("copy=%d/tree=keytree", every), func(b *testing.B) {
			var t *Tree[rec]
			growing(b, n, func() { t = New(cmpRec) }, func(i int) {
				if every > 0 && i%every == 0 {
					t.Copy()
				}
				k := ks[i]
				t.Set(pre8(k), k, &rec{key: k}, nil)
			})
		})
		b.Run(fmt.Sprintf("copy=%d/tree=tidwall", every), func(b *testing.B) {
			var t *btree.BTreeG[item]
			growing(b, n, func() { t = newTidwall() }, func(i int) {
				if every > 0 && i%every == 0 {
					t.Copy()
				}
				k := ks[i]
				t.Set(item{pre8(k), &rec{key: k}})
			})
		})
	}
}

// BenchmarkAppend appends numbered keys in key order with Load, into a
// tree that grows to 1M keys.
func BenchmarkAppend(b *testing.B) {
	const n = 1_000_000
	ks := benchKeys(n, true)
	b.Run("tree=keytree", func(b *testing.B) {
		var t *Tree[rec]
		growing(b, n, func() { t = New(cmpRec) }, func(i int) {
			k := ks[i]
			t.Load(pre8(k[8:]), k, &rec{key: k})
		})
	})
	b.Run("tree=tidwall", func(b *testing.B) {
		var t *btree.BTreeG[item]
		growing(b, n, func() { t = newTidwall() }, func(i int) {
			k := ks[i]
			t.Load(item{pre8(k[8:]), &rec{key: k}})
		})
	})
}
