package engine

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// TestFreshK8Order checks that the 8 bytes fresh keys are ordered by
// never contradict the keys' order, for keys with and without the prefix
// the segment skips, and keys that are prefixes of it.
func TestFreshK8Order(t *testing.T) {
	alpha := rapid.SliceOfN(rapid.SampledFrom([]byte{0, 'a', 'b', 'k', 0xff}), 0, 12)
	rapid.Check(t, func(t *rapid.T) {
		s := &freshSeg{skip: alpha.Draw(t, "skip")}
		a, b := alpha.Draw(t, "a"), alpha.Draw(t, "b")
		if rapid.Bool().Draw(t, "prefixA") {
			a = append(append([]byte{}, s.skip...), a...)
		}
		if rapid.Bool().Draw(t, "prefixB") {
			b = append(append([]byte{}, s.skip...), b...)
		}
		ka, kb := s.k8(a), s.k8(b)
		if c := bytes.Compare(a, b); (ka < kb && c > 0) || (ka > kb && c < 0) {
			t.Fatalf("skip %q: %q -> %x, %q -> %x", s.skip, a, ka, b, kb)
		}
	})
}

// TestRunMergeSteps merges runs in steps of every size and checks the
// result against a merge in one go.
func TestRunMergeSteps(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := &freshSeg{}
		run := func(label string) []freshItem {
			keys := rapid.SliceOfDistinct(rapid.IntRange(0, 999), rapid.ID).Draw(t, label)
			var r []freshItem
			for _, k := range keys {
				rec := newProbe()
				rec.setKey([]byte{byte(k >> 8), byte(k)})
				r = append(r, s.itemOf(rec))
			}
			return r
		}
		a, b := run("a"), run("b")
		for i := range a {
			for j := range b {
				if bytes.Equal(a[i].rec.key(), b[j].rec.key()) {
					t.Skip("runs share a key")
				}
			}
		}
		slices.SortFunc(a, compareFresh)
		slices.SortFunc(b, compareFresh)
		m := newRunMerge(a, b)
		step := rapid.IntRange(1, 10).Draw(t, "step")
		for n := 0; !m.step(step); n++ {
			if n > len(a)+len(b) {
				t.Fatalf("no end after %d steps", n)
			}
		}
		want := mergeRuns(a, b)
		if len(m.out) != len(want) {
			t.Fatalf("%d items, want %d", len(m.out), len(want))
		}
		for i := range want {
			if m.out[i].rec != want[i].rec {
				t.Fatalf("item %d: %q, want %q", i, m.out[i].rec.key(), want[i].rec.key())
			}
		}
	})
}

// TestFreshKeysHeld adds keys to a freshKeys, in key order (after every
// key: an asc segment's sorted tail, see freshSeg.asc) or not (the end of
// an asc segment, then runs, merges and the hash index), and holds copies
// of it along the way, as states do: each copy must find, and walk in
// order, exactly the keys added before it, whatever was added after.
func TestFreshKeysHeld(t *testing.T) {
	defer func(f, r, p int) { freshTail, maxRun, runMergePace = f, r, p }(freshTail, maxRun, runMergePace)
	rapid.Check(t, func(t *rapid.T) {
		freshTail = rapid.IntRange(1, 8).Draw(t, "freshTail")
		maxRun = rapid.IntRange(1, 16).Draw(t, "maxRun")
		runMergePace = rapid.IntRange(0, 2).Draw(t, "runMergePace")
		limit := rapid.IntRange(1, 120).Draw(t, "limit")
		asc := rapid.Bool().Draw(t, "asc")
		var f freshKeys
		// "k0" is a prefix of some keys only: the others' 8 bytes are 0
		// or the largest value, and ties compare whole keys.
		f.start(limit, []byte(rapid.SampledFrom([]string{"", "k", "k0"}).Draw(t, "skip")), asc, rapid.Bool().Draw(t, "whole"))
		type held struct {
			f    freshKeys
			keys []string // sorted
		}
		recs := map[string]*keyRecord{}
		var keys []string // sorted
		var hold []held
		next := 0
		for range rapid.IntRange(0, limit).Draw(t, "adds") {
			var k string
			if rapid.IntRange(0, 3).Draw(t, "inOrder") > 0 {
				next++
				k = fmt.Sprintf("k%06d", 900000+next) // after every key
			} else {
				k = fmt.Sprintf("k%06d", rapid.IntRange(0, 899999).Draw(t, "key"))
				if recs[k] != nil {
					continue
				}
			}
			last := len(keys) == 0 || k > keys[len(keys)-1]
			asc = asc && last
			rec := newProbe()
			rec.setKey([]byte(k))
			recs[k] = rec
			f.add(rec, asc)
			i, _ := slices.BinarySearch(keys, k)
			keys = slices.Insert(slices.Clip(keys), i, k)
			if rapid.IntRange(0, 2).Draw(t, "hold") == 0 {
				hold = append(hold, held{f, keys})
			}
		}
		hold = append(hold, held{f, keys})
		for hi, h := range hold {
			for _, k := range h.keys {
				if got := h.f.find([]byte(k)); got != recs[k] {
					t.Fatalf("copy %d: find %q: %v", hi, k, got)
				}
			}
			if got := h.f.find([]byte("k1234567")); got != nil {
				t.Fatalf("copy %d: found a key never added", hi)
			}
			if h.f.len() != len(h.keys) {
				t.Fatalf("copy %d: %d keys, want %d", hi, h.f.len(), len(h.keys))
			}
			if h.f.seg == nil {
				continue
			}
			from := fmt.Sprintf("k%06d", rapid.IntRange(0, 999999).Draw(t, "from"))
			var end []byte
			if rapid.Bool().Draw(t, "bounded") {
				end = fmt.Appendf(nil, "k%06d", rapid.IntRange(0, 999999).Draw(t, "end"))
			}
			var want []string
			for _, k := range h.keys {
				if k >= from && (end == nil || k < string(end)) {
					want = append(want, k)
				}
			}
			var got []string
			m := h.f.merge([]byte(from), end)
			for r := m.head(); r != nil; r = m.head() {
				got = append(got, string(r.key()))
				m.pop()
			}
			m.release()
			if !slices.Equal(got, want) {
				t.Fatalf("copy %d: walk [%s, %q): %q, want %q", hi, from, end, got, want)
			}
		}
	})
}
