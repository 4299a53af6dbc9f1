package engine

import (
	"bytes"
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
