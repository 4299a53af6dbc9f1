package engine

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/revkv/revkv/internal/cputime"
)

// BenchmarkReadOld reads keys at past revisions, with the CPU time of the
// benchmark's thread per op (cpu-ns/op: steadier than ns/op on a shared
// machine). shape=1Mx2 is a million numbered keys written twice, read at
// their first version (a list of two, its newest a version in a slab);
// shape=1000x200 is bench/compare's range-old-rev: 1,000 keys written 200
// times round robin, read at random revisions of the last 199 rounds (lists
// of a block and a tail, their versions 1,000 slab entries apart).
func BenchmarkReadOld(b *testing.B) {
	for _, c := range []struct{ keys, versions int }{{1_000_000, 2}, {1000, 200}} {
		b.Run(fmt.Sprintf("shape=%dx%d", c.keys, c.versions), func(b *testing.B) {
			keys := numberedKeys(c.keys, false)
			s := build(keys, c.versions)
			runtime.GC()
			n := int64(c.keys)
			first, last := int64(2), s.Rev()
			if c.versions > 2 {
				first = last - n*int64(c.versions-1)
			} else {
				last = first + n - 1
			}
			r := rand.New(rand.NewPCG(4, 4))
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			b.ReportAllocs()
			cpu0 := cputime.Thread()
			for b.Loop() {
				var i, rev int64
				if c.versions > 2 {
					i, rev = r.Int64N(n), first+r.Int64N(last-first+1)
				} else {
					i = r.Int64N(n)
					rev = first + i // key i's first version
				}
				kvs, _, err := s.Range(keys[i], nil, 0, rev)
				if err != nil || len(kvs) != 1 || kvs[0].ModRevision > rev {
					b.Fatal(err, kvs)
				}
			}
			b.ReportMetric(float64(cputime.Thread()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}
