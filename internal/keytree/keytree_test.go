package keytree

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"testing"

	"pgregory.net/rapid"
)

type rec struct {
	key []byte
	n   int // tells apart records of one key
}

func cmpRec(key []byte, r *rec) int { return bytes.Compare(key, r.key) }

func keyOf(r *rec) []byte { return r.key }

// prefixer makes the prefix of a key from its first w bytes (0 to 8),
// zero-padded: with w < 8, many keys share a prefix and the comparison
// func decides.
func prefixer(w int) func([]byte) uint64 {
	return func(k []byte) uint64 {
		var b [8]byte
		copy(b[:w], k)
		return binary.BigEndian.Uint64(b[:])
	}
}

// model is the sorted slice the tree is checked against.
type model []*rec

func (m model) find(k []byte) (int, bool) {
	return slices.BinarySearchFunc(m, k, func(r *rec, k []byte) int { return bytes.Compare(r.key, k) })
}

type saved struct {
	t    *Tree[rec]
	want model
}

func TestRapid(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		w := rapid.SampledFrom([]int{0, 1, 2, 8}).Draw(rt, "prefix bytes")
		pre := prefixer(w)
		tr := New(cmpRec)
		var m model
		var copies []saved
		serial := 0
		keyGen := rapid.SliceOfN(rapid.ByteRange('a', 'e'), 0, 10)
		var hint Hint
		set := func(k []byte, useHint bool) {
			serial++
			r := &rec{key: k, n: serial}
			var h *Hint
			if useHint {
				h = &hint
			}
			old := tr.Set(pre(k), k, r, h)
			i, ok := m.find(k)
			if ok {
				if old != m[i] {
					rt.Fatalf("Set %q: old %v, want %v", k, old, m[i])
				}
				m[i] = r
			} else {
				if old != nil {
					rt.Fatalf("Set %q: old %v, want none", k, old)
				}
				m = slices.Insert(m, i, r)
			}
		}
		del := func(k []byte) {
			old := tr.Delete(pre(k), k)
			i, ok := m.find(k)
			if !ok {
				if old != nil {
					rt.Fatalf("Delete %q: got %v, want none", k, old)
				}
				return
			}
			if old != m[i] {
				rt.Fatalf("Delete %q: got %v, want %v", k, old, m[i])
			}
			m = slices.Delete(m, i, i+1)
		}
		appendKey := func() []byte {
			// A key above every key of the model.
			if len(m) == 0 {
				return []byte("a")
			}
			k := bytes.Clone(m[len(m)-1].key)
			if len(k) < 10 && rapid.Bool().Draw(rt, "longer") {
				return append(k, 'a')
			}
			for i := len(k) - 1; i >= 0; i-- {
				if k[i] < 'e' {
					k[i]++
					return k[:i+1]
				}
			}
			return append(k, 'a')
		}
		rt.Repeat(map[string]func(*rapid.T){
			"set": func(rt *rapid.T) {
				set(keyGen.Draw(rt, "key"), rapid.Bool().Draw(rt, "hint"))
			},
			"setMany": func(rt *rapid.T) {
				n := rapid.IntRange(1, 400).Draw(rt, "n")
				for range n {
					set(keyGen.Draw(rt, "key"), false)
				}
			},
			"setExisting": func(rt *rapid.T) {
				if len(m) == 0 {
					rt.Skip("empty")
				}
				set(m[rapid.IntRange(0, len(m)-1).Draw(rt, "i")].key, rapid.Bool().Draw(rt, "hint"))
			},
			"load": func(rt *rapid.T) {
				n := rapid.IntRange(1, 300).Draw(rt, "n")
				for range n {
					var k []byte
					if rapid.IntRange(0, 9).Draw(rt, "below") == 0 {
						k = keyGen.Draw(rt, "key") // Load falls back to Set
					} else {
						k = appendKey()
					}
					serial++
					r := &rec{key: k, n: serial}
					old := tr.Load(pre(k), k, r)
					i, ok := m.find(k)
					if ok {
						if old != m[i] {
							rt.Fatalf("Load %q: old %v, want %v", k, old, m[i])
						}
						m[i] = r
					} else {
						if old != nil {
							rt.Fatalf("Load %q: old %v", k, old)
						}
						m = slices.Insert(m, i, r)
					}
				}
			},
			"delete": func(rt *rapid.T) {
				if len(m) == 0 || rapid.IntRange(0, 4).Draw(rt, "missing") == 0 {
					del(keyGen.Draw(rt, "key"))
					return
				}
				del(m[rapid.IntRange(0, len(m)-1).Draw(rt, "i")].key)
			},
			"deleteRun": func(rt *rapid.T) {
				if len(m) == 0 {
					rt.Skip("empty")
				}
				i := rapid.IntRange(0, len(m)-1).Draw(rt, "from")
				n := rapid.IntRange(1, 300).Draw(rt, "n")
				step := rapid.IntRange(1, 3).Draw(rt, "step")
				var ks [][]byte
				for j := i; j < len(m) && len(ks) < n; j += step {
					ks = append(ks, m[j].key)
				}
				if rapid.Bool().Draw(rt, "backwards") {
					slices.Reverse(ks)
				}
				for _, k := range ks {
					del(k)
				}
			},
			"get": func(rt *rapid.T) {
				var k []byte
				if len(m) > 0 && rapid.Bool().Draw(rt, "existing") {
					k = m[rapid.IntRange(0, len(m)-1).Draw(rt, "i")].key
				} else {
					k = keyGen.Draw(rt, "key")
				}
				var h *Hint
				if rapid.Bool().Draw(rt, "hint") {
					h = &hint
				}
				got := tr.Get(pre(k), k, h)
				var want *rec
				if i, ok := m.find(k); ok {
					want = m[i]
				}
				if got != want {
					rt.Fatalf("Get %q: %v, want %v", k, got, want)
				}
			},
			"ascend": func(rt *rapid.T) {
				k := keyGen.Draw(rt, "pivot")
				limit := rapid.IntRange(0, 100).Draw(rt, "limit")
				i, _ := m.find(k)
				want := m[i:min(len(m), i+limit)]
				var got model
				for p, r := range tr.From(pre(k), k) {
					if len(got) == limit {
						break
					}
					if p != pre(r.key) {
						rt.Fatalf("item %q with prefix %x", r.key, p)
					}
					got = append(got, r)
				}
				if !slices.Equal(got, want) {
					rt.Fatalf("From %q, %d items: %s, want %s", k, limit, keys(got), keys(want))
				}
			},
			"build": func(rt *rapid.T) {
				// A tree built from the model's items holds them, and
				// then takes writes like any other.
				b := Build(cmpRec, keyOf, func(yield func(uint64, *rec) bool) {
					for _, r := range m {
						if !yield(pre(r.key), r) {
							return
						}
					}
				})
				check(rt, b, m, pre)
				if rapid.Bool().Draw(rt, "use it") {
					tr = b
				}
			},
			"copy": func(rt *rapid.T) {
				c := tr.Copy()
				if len(copies) == 4 {
					copies = copies[1:]
				}
				copies = append(copies, saved{c, slices.Clone(m)})
				if rapid.Bool().Draw(rt, "write the copy") {
					// The copy becomes the tree written on; the old
					// tree keeps its items.
					copies[len(copies)-1].t = tr
					tr = c
				}
			},
			"": func(rt *rapid.T) {
				check(rt, tr, m, pre)
				for _, s := range copies {
					check(rt, s.t, s.want, pre)
				}
			},
		})
	})
}

func keys(m model) string {
	var b bytes.Buffer
	for _, r := range m {
		fmt.Fprintf(&b, "%q ", r.key)
	}
	return b.String()
}

// check checks t's structure and that it holds exactly the records of m.
func check(rt *rapid.T, t *Tree[rec], m model, pre func([]byte) uint64) {
	if t.Len() != len(m) {
		rt.Fatalf("Len %d, want %d", t.Len(), len(m))
	}
	var got model
	t.Scan(func(p uint64, r *rec) bool {
		got = append(got, r)
		return true
	})
	if !slices.Equal(got, m) {
		rt.Fatalf("items %s, want %s", keys(got), keys(m))
	}
	_, lo, ok1 := t.Min()
	_, hi, ok2 := t.Max()
	if ok1 != (len(m) > 0) || ok2 != ok1 || ok1 && (lo != m[0] || hi != m[len(m)-1]) {
		rt.Fatalf("Min %v %v, Max %v %v", lo, ok1, hi, ok2)
	}
	if t.root == nil {
		if t.height != 0 {
			rt.Fatalf("empty tree of height %d", t.height)
		}
		return
	}
	if t.height == 0 && t.root.n == 0 {
		rt.Fatalf("empty root leaf")
	}
	n := checkNode(rt, t, t.root, t.height, true, nil, nil, pre)
	if n != len(m) {
		rt.Fatalf("%d items in the leaves, want %d", n, len(m))
	}
}

// checkNode checks the subtree n of height h, whose items must lie in
// [lo, hi) (nil: unbounded), and returns how many it holds.
func checkNode(rt *rapid.T, t *Tree[rec], n *node[rec], h int, root bool, lo, hi *rec, pre func([]byte) uint64) int {
	if n.n > order || n.n < 0 {
		rt.Fatalf("node with %d items", n.n)
	}
	for i := range n.n {
		r := n.recs[i]
		if r == nil || n.keys[i] != pre(r.key) {
			rt.Fatalf("item %d: %v, prefix %x", i, r, n.keys[i])
		}
		if i > 0 && bytes.Compare(n.recs[i-1].key, r.key) >= 0 {
			rt.Fatalf("items out of order: %q, %q", n.recs[i-1].key, r.key)
		}
		if lo != nil && bytes.Compare(r.key, lo.key) < 0 || hi != nil && bytes.Compare(r.key, hi.key) >= 0 {
			rt.Fatalf("item %q out of its node's range", r.key)
		}
	}
	for i := n.n; i < order; i++ {
		if n.keys[i] != 0 || n.recs[i] != nil {
			rt.Fatalf("slot %d of %d not cleared", i, n.n)
		}
	}
	if h == 0 {
		if n.n == 0 {
			rt.Fatalf("empty leaf")
		}
		return n.n
	}
	if n.n == 0 {
		rt.Fatalf("inner node without a separator")
	}
	in := asInner(n)
	for i := n.n + 1; i <= order; i++ {
		if in.kids[i] != nil {
			rt.Fatalf("child slot %d of %d not cleared", i, n.n)
		}
	}
	total := 0
	for i := 0; i <= n.n; i++ {
		l, r := lo, hi
		if i > 0 {
			l = n.recs[i-1]
		}
		if i < n.n {
			r = n.recs[i]
		}
		if in.kids[i] == nil {
			rt.Fatalf("nil child %d of %d", i, n.n)
		}
		total += checkNode(rt, t, in.kids[i], h-1, false, l, r, pre)
	}
	return total
}

// TestSeparatorsLive checks that no separator keeps a deleted or replaced
// record: every separator's record is an item of the tree.
func TestSeparatorsLive(t *testing.T) {
	pre := prefixer(8)
	tr := New(cmpRec)
	var recs []*rec
	for i := range 20000 {
		k := fmt.Appendf(nil, "k%08d", (i*7919)%20000)
		r := &rec{key: k}
		recs = append(recs, r)
		tr.Set(pre(k), k, r, nil)
	}
	c := tr.Copy()
	for i, r := range recs {
		switch i % 3 {
		case 0:
			tr.Delete(pre(r.key), r.key)
		case 1:
			tr.Set(pre(r.key), r.key, &rec{key: r.key, n: 1}, nil)
		}
	}
	live := map[*rec]bool{}
	tr.Scan(func(_ uint64, r *rec) bool { live[r] = true; return true })
	var walk func(n *node[rec], h int)
	walk = func(n *node[rec], h int) {
		if h == 0 {
			return
		}
		for i := range n.n {
			if !live[n.recs[i]] {
				t.Fatalf("separator %q holds a record no longer in the tree", n.recs[i].key)
			}
		}
		for i := 0; i <= n.n; i++ {
			walk(asInner(n).kids[i], h-1)
		}
	}
	walk(tr.root, tr.height)
	if c.Len() != 20000 {
		t.Fatalf("copy has %d items", c.Len())
	}
}

// TestAppendFillsLeaves checks that in-order appends, by Load or Set,
// leave full leaves.
func TestAppendFillsLeaves(t *testing.T) {
	pre := prefixer(8)
	for _, load := range []bool{true, false} {
		tr := New(cmpRec)
		const n = 100_000
		for i := range n {
			k := fmt.Appendf(nil, "k%08d", i)
			if load {
				tr.Load(pre(k), k, &rec{key: k})
			} else {
				tr.Set(pre(k), k, &rec{key: k}, nil)
			}
		}
		leaves := 0
		var walk func(n *node[rec], h int)
		walk = func(n *node[rec], h int) {
			if h == 0 {
				leaves++
				return
			}
			for i := 0; i <= n.n; i++ {
				walk(asInner(n).kids[i], h-1)
			}
		}
		walk(tr.root, tr.height)
		if want := (n + order - 1) / order; leaves != want {
			t.Errorf("load %v: %d leaves for %d items, want %d", load, leaves, n, want)
		}
	}
}

// TestConcurrentCopies reads copies from several goroutines while the tree
// they were copied from is written (run with -race): each sees exactly the
// items it had when it was taken.
func TestConcurrentCopies(t *testing.T) {
	pre := prefixer(8)
	tr := New(cmpRec)
	key := func(i int) []byte { return fmt.Appendf(nil, "k%06d", i) }
	const n = 20000
	for i := 0; i < n; i += 2 {
		k := key(i)
		tr.Set(pre(k), k, &rec{key: k}, nil)
	}
	var wg sync.WaitGroup
	for round := range 8 {
		c := tr.Copy()
		var want []*rec
		c.Scan(func(_ uint64, r *rec) bool { want = append(want, r); return true })
		for g := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var got []*rec
				for _, r := range c.All() {
					got = append(got, r)
				}
				if !slices.Equal(got, want) {
					t.Errorf("copy %d: scanned %d items, want %d", round, len(got), len(want))
				}
				j := 0
				for i := g; i < n; i += 3 {
					k := key(i)
					for j < len(want) && bytes.Compare(want[j].key, k) < 0 {
						j++
					}
					var w *rec
					if j < len(want) && bytes.Equal(want[j].key, k) {
						w = want[j]
					}
					if r := c.Get(pre(k), k, nil); r != w {
						t.Errorf("copy %d: Get %q = %v, want %v", round, k, r, w)
						return
					}
				}
			}()
		}
		// Writes beside the readers: odd keys in, every 5th even key out,
		// some keys replaced.
		for i := round; i < n; i += 8 {
			k := key(i)
			switch {
			case i%2 == 1:
				tr.Set(pre(k), k, &rec{key: k}, nil)
			case i%5 == 0:
				tr.Delete(pre(k), k)
			default:
				tr.Set(pre(k), k, &rec{key: k, n: round}, nil)
			}
		}
	}
	wg.Wait()
}
