package keytree

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"weak"

	"pgregory.net/rapid"
)

// This file holds adversarial tests written in review: stronger invariants
// than check (separators are the very record of the least item of their
// right subtree; no node a tree may write in place is reachable from
// another live tree; a copy's nodes are never changed), writes on any of
// several copies, hints carried across trees, pivots equal to separators,
// and weak pointers to catch records the tree keeps alive.

// leftmost returns the record of the least item of subtree n of height h.
func leftmost(n *node[rec], h int) *rec {
	for ; h > 0; h-- {
		n = asInner(n).kids[0]
	}
	return n.recs[0]
}

// fail is what the checks report through: a *rapid.T or a *testing.T.
type fail interface {
	Fatalf(format string, args ...any)
}

// checkSeparators checks that every separator is the record (same pointer)
// and the prefix of the least item of the subtree after it.
func checkSeparators(f fail, t *Tree[rec]) {
	var walk func(n *node[rec], h int)
	walk = func(n *node[rec], h int) {
		if h == 0 {
			return
		}
		in := asInner(n)
		for i := range n.n {
			r := leftmost(in.kids[i+1], h-1)
			if n.recs[i] != r {
				f.Fatalf("separator %d (height %d) holds %q#%d, the least item of its right subtree is %q#%d",
					i, h, n.recs[i].key, n.recs[i].n, r.key, r.n)
			}
			if !bytes.Equal(n.recs[i].key, r.key) {
				f.Fatalf("separator key mismatch")
			}
		}
		for i := 0; i <= n.n; i++ {
			walk(in.kids[i], h-1)
		}
	}
	if t.root != nil {
		walk(t.root, t.height)
	}
}

// nodesOf returns every node reachable from t.
func nodesOf(t *Tree[rec]) []*node[rec] {
	var ns []*node[rec]
	var walk func(n *node[rec], h int)
	walk = func(n *node[rec], h int) {
		ns = append(ns, n)
		if h == 0 {
			return
		}
		for i := 0; i <= n.n; i++ {
			walk(asInner(n).kids[i], h-1)
		}
	}
	if t.root != nil {
		walk(t.root, t.height)
	}
	return ns
}

// checkOwnership checks the copy-on-write invariant: a node that a tree
// may write in place (its owner is the tree's token) is reachable from no
// other tree.
func checkOwnership(f fail, trees []*Tree[rec]) {
	reach := map[*node[rec]][]int{}
	for ti, t := range trees {
		for _, n := range nodesOf(t) {
			if l := reach[n]; len(l) == 0 || l[len(l)-1] != ti {
				reach[n] = append(reach[n], ti)
			}
		}
	}
	for n, ts := range reach {
		if len(ts) < 2 {
			continue
		}
		for _, ti := range ts {
			if n.owner == trees[ti].owner {
				f.Fatalf("node owned by tree %d is shared with trees %v", ti, ts)
			}
		}
	}
}

// frozen is a deep snapshot of a tree's nodes, to check that later writes
// elsewhere never change one of them.
type frozen struct {
	leaves map[*node[rec]]node[rec]
	inners map[*node[rec]]inner[rec]
}

func freeze(t *Tree[rec]) frozen {
	f := frozen{map[*node[rec]]node[rec]{}, map[*node[rec]]inner[rec]{}}
	var walk func(n *node[rec], h int)
	walk = func(n *node[rec], h int) {
		if h == 0 {
			f.leaves[n] = *n
			return
		}
		f.inners[n] = *asInner(n)
		for i := 0; i <= n.n; i++ {
			walk(asInner(n).kids[i], h-1)
		}
	}
	if t.root != nil {
		walk(t.root, t.height)
	}
	return f
}

func (fz frozen) check(f fail, what string) {
	for n, v := range fz.leaves {
		if *n != v {
			f.Fatalf("%s: a leaf of a frozen copy changed", what)
		}
	}
	for n, v := range fz.inners {
		if *asInner(n) != v {
			f.Fatalf("%s: an inner node of a frozen copy changed", what)
		}
	}
}

type live struct {
	t    *Tree[rec]
	m    model
	snap *frozen // set while the tree must not change (a reader's copy)
}

// TestReviewRapid is a state machine over several trees at once: any of
// them may be written or copied, a copy may be frozen (checked bit for
// bit), one hint is used with every tree, and pivots are separators.
func TestReviewRapid(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		w := rapid.SampledFrom([]int{0, 1, 2, 8}).Draw(rt, "prefix bytes")
		pre := prefixer(w)
		trees := []*live{{t: New(cmpRec)}}
		serial := 0
		keyGen := rapid.SliceOfN(rapid.ByteRange('a', 'd'), 0, 6)
		var hint Hint
		pick := func(rt *rapid.T) *live {
			// Frozen trees are not written.
			var ws []*live
			for _, l := range trees {
				if l.snap == nil {
					ws = append(ws, l)
				}
			}
			return ws[rapid.IntRange(0, len(ws)-1).Draw(rt, "tree")]
		}
		set := func(l *live, k []byte, h *Hint) {
			serial++
			r := &rec{key: k, n: serial}
			old := l.t.Set(pre(k), k, r, h)
			i, ok := l.m.find(k)
			if ok {
				if old != l.m[i] {
					rt.Fatalf("Set %q: old %v, want %v", k, old, l.m[i])
				}
				l.m[i] = r
			} else {
				if old != nil {
					rt.Fatalf("Set %q: old %v, want none", k, old)
				}
				l.m = slices.Insert(l.m, i, r)
			}
		}
		del := func(l *live, k []byte) {
			old := l.t.Delete(pre(k), k)
			i, ok := l.m.find(k)
			if !ok {
				if old != nil {
					rt.Fatalf("Delete %q: got %v, want none", k, old)
				}
				return
			}
			if old != l.m[i] {
				rt.Fatalf("Delete %q: got %v, want %v", k, old, l.m[i])
			}
			l.m = slices.Delete(l.m, i, i+1)
		}
		separators := func(t *Tree[rec]) []*rec {
			var seps []*rec
			var walk func(n *node[rec], h int)
			walk = func(n *node[rec], h int) {
				if h == 0 {
					return
				}
				seps = append(seps, n.recs[:n.n]...)
				for i := 0; i <= n.n; i++ {
					walk(asInner(n).kids[i], h-1)
				}
			}
			if t.root != nil {
				walk(t.root, t.height)
			}
			return seps
		}
		rt.Repeat(map[string]func(*rapid.T){
			"set": func(rt *rapid.T) {
				l := pick(rt)
				var h *Hint
				if rapid.Bool().Draw(rt, "hint") {
					h = &hint
				}
				set(l, keyGen.Draw(rt, "key"), h)
			},
			"setMany": func(rt *rapid.T) {
				l := pick(rt)
				n := rapid.IntRange(1, 300).Draw(rt, "n")
				useHint := rapid.Bool().Draw(rt, "hint")
				for range n {
					var h *Hint
					if useHint {
						h = &hint
					}
					set(l, keyGen.Draw(rt, "key"), h)
				}
			},
			"setSeparator": func(rt *rapid.T) {
				// Replace the record of an item that is a separator.
				l := pick(rt)
				seps := separators(l.t)
				if len(seps) == 0 {
					rt.Skip("no separator")
				}
				k := seps[rapid.IntRange(0, len(seps)-1).Draw(rt, "sep")].key
				var h *Hint
				if rapid.Bool().Draw(rt, "hint") {
					h = &hint
				}
				set(l, k, h)
			},
			"deleteSeparator": func(rt *rapid.T) {
				l := pick(rt)
				seps := separators(l.t)
				if len(seps) == 0 {
					rt.Skip("no separator")
				}
				del(l, seps[rapid.IntRange(0, len(seps)-1).Draw(rt, "sep")].key)
			},
			"load": func(rt *rapid.T) {
				l := pick(rt)
				n := rapid.IntRange(1, 300).Draw(rt, "n")
				for range n {
					var k []byte
					if len(l.m) == 0 {
						k = []byte("a")
					} else {
						k = append(bytes.Clone(l.m[len(l.m)-1].key), 'a')
						if rapid.IntRange(0, 9).Draw(rt, "below") == 0 {
							k = keyGen.Draw(rt, "key")
						}
					}
					serial++
					r := &rec{key: k, n: serial}
					old := l.t.Load(pre(k), k, r)
					i, ok := l.m.find(k)
					if ok {
						if old != l.m[i] {
							rt.Fatalf("Load %q: old %v, want %v", k, old, l.m[i])
						}
						l.m[i] = r
					} else {
						if old != nil {
							rt.Fatalf("Load %q: old %v", k, old)
						}
						l.m = slices.Insert(l.m, i, r)
					}
				}
			},
			"delete": func(rt *rapid.T) {
				l := pick(rt)
				if len(l.m) == 0 || rapid.IntRange(0, 4).Draw(rt, "missing") == 0 {
					del(l, keyGen.Draw(rt, "key"))
					return
				}
				del(l, l.m[rapid.IntRange(0, len(l.m)-1).Draw(rt, "i")].key)
			},
			"deleteRun": func(rt *rapid.T) {
				l := pick(rt)
				if len(l.m) == 0 {
					rt.Skip("empty")
				}
				i := rapid.IntRange(0, len(l.m)-1).Draw(rt, "from")
				n := rapid.IntRange(1, 400).Draw(rt, "n")
				step := rapid.IntRange(1, 3).Draw(rt, "step")
				var ks [][]byte
				for j := i; j < len(l.m) && len(ks) < n; j += step {
					ks = append(ks, l.m[j].key)
				}
				if rapid.Bool().Draw(rt, "backwards") {
					slices.Reverse(ks)
				}
				for _, k := range ks {
					del(l, k)
				}
			},
			"get": func(rt *rapid.T) {
				l := trees[rapid.IntRange(0, len(trees)-1).Draw(rt, "tree")]
				var k []byte
				if len(l.m) > 0 && rapid.Bool().Draw(rt, "existing") {
					k = l.m[rapid.IntRange(0, len(l.m)-1).Draw(rt, "i")].key
				} else {
					k = keyGen.Draw(rt, "key")
				}
				got := l.t.Get(pre(k), k, &hint)
				var want *rec
				if i, ok := l.m.find(k); ok {
					want = l.m[i]
				}
				if got != want {
					rt.Fatalf("Get %q: %v, want %v", k, got, want)
				}
			},
			"ascendSeparator": func(rt *rapid.T) {
				l := trees[rapid.IntRange(0, len(trees)-1).Draw(rt, "tree")]
				seps := separators(l.t)
				var k []byte
				if len(seps) == 0 || rapid.IntRange(0, 3).Draw(rt, "random") == 0 {
					k = keyGen.Draw(rt, "pivot")
				} else {
					k = seps[rapid.IntRange(0, len(seps)-1).Draw(rt, "sep")].key
					switch rapid.IntRange(0, 2).Draw(rt, "around") {
					case 1:
						k = append(bytes.Clone(k), 0) // just after
					case 2:
						if len(k) > 0 { // just before, roughly
							k = bytes.Clone(k[:len(k)-1])
						}
					}
				}
				i, _ := l.m.find(k)
				var got model
				l.t.Ascend(pre(k), k, func(p uint64, r *rec) bool {
					got = append(got, r)
					return true
				})
				if !slices.Equal(got, l.m[i:]) {
					rt.Fatalf("Ascend %q: %s, want %s", k, keys(got), keys(l.m[i:]))
				}
			},
			"copy": func(rt *rapid.T) {
				l := pick(rt)
				c := &live{t: l.t.Copy(), m: slices.Clone(l.m)}
				if rapid.Bool().Draw(rt, "freeze") {
					fz := freeze(c.t)
					c.snap = &fz
				}
				trees = append(trees, c)
				if len(trees) > 6 {
					// trees[0] is never frozen nor dropped: some tree is writable.
					i := rapid.IntRange(1, len(trees)-2).Draw(rt, "drop")
					trees = slices.Delete(trees, i, i+1)
				}
			},
			"": func(rt *rapid.T) {
				ts := make([]*Tree[rec], len(trees))
				for i, l := range trees {
					check(rt, l.t, l.m, pre)
					checkSeparators(rt, l.t)
					if l.snap != nil {
						l.snap.check(rt, fmt.Sprintf("tree %d", i))
					}
					ts[i] = l.t
				}
				checkOwnership(rt, ts)
			},
		})
	})
}

// TestReviewManyCopies interleaves copies with deletes and sets on the
// copies, in the order of a random permutation, and checks every copy
// against its model and bit for bit against its snapshot.
func TestReviewManyCopies(t *testing.T) {
	pre := prefixer(8)
	rnd := rand.New(rand.NewPCG(1, 2))
	const n = 30000
	key := func(i int) []byte { return fmt.Appendf(nil, "k%06d", i) }
	tr := New(cmpRec)
	var m model
	for i := range n {
		k := key(i)
		r := &rec{key: k}
		tr.Load(pre(k), k, r)
		m = append(m, r)
	}
	type saved struct {
		t  *Tree[rec]
		m  model
		fz frozen
	}
	var copies []saved
	perm := rnd.Perm(n)
	for step, i := range perm {
		if step%997 == 0 {
			c := tr.Copy()
			copies = append(copies, saved{c, slices.Clone(m), freeze(c)})
		}
		k := key(i)
		j, ok := m.find(k)
		if !ok {
			t.Fatalf("%q missing from the model", k)
		}
		if step%5 == 0 {
			r := &rec{key: k, n: step}
			if old := tr.Set(pre(k), k, r, nil); old != m[j] {
				t.Fatalf("Set %q: old %v", k, old)
			}
			m[j] = r
			continue
		}
		if old := tr.Delete(pre(k), k); old != m[j] {
			t.Fatalf("Delete %q: %v, want %v", k, old, m[j])
		}
		m = slices.Delete(m, j, j+1)
		if step%4999 == 0 {
			checkSeparators(t, tr)
		}
	}
	checkSeparators(t, tr)
	for ci, c := range copies {
		c.fz.check(t, fmt.Sprintf("copy %d", ci))
		var got model
		c.t.Scan(func(_ uint64, r *rec) bool { got = append(got, r); return true })
		if !slices.Equal(got, c.m) {
			t.Fatalf("copy %d: %d items, want %d", ci, len(got), len(c.m))
		}
		checkSeparators(t, c.t)
	}
	var got model
	tr.Scan(func(_ uint64, r *rec) bool { got = append(got, r); return true })
	if !slices.Equal(got, m) {
		t.Fatalf("tree: %d items, want %d", len(got), len(m))
	}
	// Now write the copies too, newest first, deleting everything.
	for ci := len(copies) - 1; ci >= 0; ci-- {
		c := copies[ci]
		for _, r := range slices.Clone(c.m) {
			if old := c.t.Delete(pre(r.key), r.key); old != r {
				t.Fatalf("copy %d: Delete %q: %v", ci, r.key, old)
			}
		}
		if c.t.Len() != 0 || c.t.root != nil {
			t.Fatalf("copy %d not empty", ci)
		}
		for cj := 0; cj < ci; cj++ {
			copies[cj].fz.check(t, fmt.Sprintf("copy %d after copy %d emptied", cj, ci))
		}
	}
}

// TestReviewNoDeadRecords checks with weak pointers that a tree keeps no
// record alive that it no longer holds: after replacing and deleting
// records in orders that make them separators, and after deleting all.
func TestReviewNoDeadRecords(t *testing.T) {
	pre := prefixer(8)
	for _, mode := range []string{"load", "set", "random"} {
		t.Run(mode, func(t *testing.T) {
			const n = 20000
			rnd := rand.New(rand.NewPCG(3, 4))
			tr := New(cmpRec)
			var weaks []weak.Pointer[rec]
			keys := make([][]byte, n)
			for i := range n {
				keys[i] = fmt.Appendf(nil, "k%06d", i)
			}
			order := rnd.Perm(n)
			if mode != "random" {
				slices.Sort(order)
			}
			for _, i := range order {
				r := &rec{key: keys[i]}
				weaks = append(weaks, weak.Make(r))
				if mode == "load" {
					tr.Load(pre(keys[i]), keys[i], r)
				} else {
					tr.Set(pre(keys[i]), keys[i], r, nil)
				}
			}
			c := tr.Copy() // a copy, dropped below: its nodes go
			_ = c.Len()
			c = nil
			// Replace every other record, then delete every third key.
			for i := 0; i < n; i += 2 {
				r := &rec{key: keys[i], n: 1}
				weaks = append(weaks, weak.Make(r))
				tr.Set(pre(keys[i]), keys[i], r, nil)
			}
			for i := 0; i < n; i += 3 {
				tr.Delete(pre(keys[i]), keys[i])
			}
			held := map[*rec]bool{}
			tr.Scan(func(_ uint64, r *rec) bool { held[r] = true; return true })
			runtime.GC()
			runtime.GC()
			alive := 0
			for _, w := range weaks {
				if r := w.Value(); r != nil && !held[r] {
					alive++
				}
			}
			held = nil
			if alive > 0 {
				t.Errorf("%d records alive that the tree no longer holds", alive)
			}
			for i := range n {
				tr.Delete(pre(keys[i]), keys[i])
			}
			if tr.Len() != 0 || tr.root != nil {
				t.Fatalf("not empty: %d", tr.Len())
			}
			runtime.GC()
			runtime.GC()
			alive = 0
			for _, w := range weaks {
				if w.Value() != nil {
					alive++
				}
			}
			if alive > 0 {
				t.Errorf("%d records alive after every key was deleted", alive)
			}
			runtime.KeepAlive(tr)
		})
	}
}

// TestReviewHintOtherTree uses one hint with trees of different heights
// and contents: a stale or foreign hint must only be slower.
func TestReviewHintOtherTree(t *testing.T) {
	pre := prefixer(2) // many ties
	rnd := rand.New(rand.NewPCG(5, 6))
	var trees []*Tree[rec]
	var models []map[string]*rec
	for range 5 {
		trees = append(trees, New(cmpRec))
		models = append(models, map[string]*rec{})
	}
	var hint Hint
	for step := range 200000 {
		ti := rnd.IntN(len(trees))
		tr, m := trees[ti], models[ti]
		k := fmt.Appendf(nil, "%c%c%d", 'a'+rnd.IntN(3), 'a'+rnd.IntN(3), rnd.IntN(2000*(ti+1)))
		switch rnd.IntN(4) {
		case 0, 1:
			r := &rec{key: k, n: step}
			old := tr.Set(pre(k), k, r, &hint)
			if old != m[string(k)] {
				t.Fatalf("Set %q: %v, want %v", k, old, m[string(k)])
			}
			m[string(k)] = r
		case 2:
			if got := tr.Get(pre(k), k, &hint); got != m[string(k)] {
				t.Fatalf("Get %q: %v, want %v", k, got, m[string(k)])
			}
		case 3:
			old := tr.Delete(pre(k), k)
			if old != m[string(k)] {
				t.Fatalf("Delete %q: %v, want %v", k, old, m[string(k)])
			}
			delete(m, string(k))
		}
		if step%50000 == 0 {
			checkSeparators(t, tr)
		}
	}
	for ti, tr := range trees {
		if tr.Len() != len(models[ti]) {
			t.Fatalf("tree %d: %d items, want %d", ti, tr.Len(), len(models[ti]))
		}
		checkSeparators(t, tr)
	}
}

// TestReviewConcurrentDeletes reads copies from other goroutines while the
// tree they came from loses most of its keys (merges, shares, root
// collapses), takes appends by Load and replaces separators (run with
// -race: a write to a node a copy shares is a race).
func TestReviewConcurrentDeletes(t *testing.T) {
	pre := prefixer(8)
	key := func(i int) []byte { return fmt.Appendf(nil, "k%06d", i) }
	tr := New(cmpRec)
	const n = 40000
	for i := range n {
		k := key(i)
		tr.Load(pre(k), k, &rec{key: k})
	}
	rnd := rand.New(rand.NewPCG(7, 8))
	done := make(chan struct{})
	errs := make(chan error, 64)
	next := n
	for round := range 12 {
		c := tr.Copy()
		var want []*rec
		c.Scan(func(_ uint64, r *rec) bool { want = append(want, r); return true })
		for range 2 {
			go func() {
				defer func() { done <- struct{}{} }()
				for range 3 {
					var got []*rec
					for _, r := range c.All() {
						got = append(got, r)
					}
					if !slices.Equal(got, want) {
						errs <- fmt.Errorf("round %d: copy scanned %d items, want %d", round, len(got), len(want))
						return
					}
					for j := 0; j < len(want); j += 97 {
						if r := c.Get(pre(want[j].key), want[j].key, nil); r != want[j] {
							errs <- fmt.Errorf("round %d: copy lost %q", round, want[j].key)
							return
						}
					}
				}
			}()
		}
		// Delete about a quarter of what is left, in runs, replace the
		// record of each separator's key, and append a few.
		var ks [][]byte
		tr.Scan(func(_ uint64, r *rec) bool {
			if rnd.IntN(4) == 0 {
				ks = append(ks, r.key)
			}
			return true
		})
		for _, k := range ks {
			tr.Delete(pre(k), k)
		}
		if tr.root != nil && tr.height > 0 {
			for _, r := range slices.Clone(tr.root.recs[:tr.root.n]) {
				tr.Set(pre(r.key), r.key, &rec{key: r.key, n: round}, nil)
			}
		}
		for range 500 {
			k := key(next)
			next++
			tr.Load(pre(k), k, &rec{key: k})
		}
		checkSeparators(t, tr)
	}
	for range 24 {
		<-done
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
