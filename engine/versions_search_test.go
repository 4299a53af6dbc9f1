package engine

import "testing"

// TestSearchVersions holds searchVersions to a linear scan, for lists of
// every length up to two blocks, with gaps between revisions, at every
// revision from the first slot's to past the last one's.
func TestSearchVersions(t *testing.T) {
	for n := 1; n <= 2*blockSize; n++ {
		vs := make([]vslot, n)
		for i := range vs {
			vs[i].main = int64(10 + 3*i + i%2) // increasing, gaps of 3 or 4
		}
		for rev := vs[0].main; rev <= vs[n-1].main+2; rev++ {
			want := 0
			for i := range vs {
				if vs[i].main <= rev {
					want = i
				}
			}
			if got := searchVersions(vs, rev); got != want {
				t.Fatalf("%d slots, rev %d: got %d, want %d", n, rev, got, want)
			}
		}
	}
}
