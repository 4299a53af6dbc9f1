package engine

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// liveHeap returns the live heap after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkHeapPerKey puts 1M numbered keys (16 bytes, 128-byte values:
// bench/compare's memory workload) through Put, in key order or in random
// order, and reports the live heap per key (heap-B/key) and the time of a
// full collection with the store live (gc-ms: what the garbage collector
// pays to mark it). after=update-compact then updates every key once and
// compacts to the last revision: the heap per key a store comes back to,
// which is where memory shared between keys (slabs, pages) would show what
// it retains. Run with -benchtime 1x:
//
//	go test -run '^$' -bench HeapPerKey -benchtime 1x ./engine
func BenchmarkHeapPerKey(b *testing.B) {
	const n = 1_000_000
	for _, tc := range []struct {
		order  string
		update bool
		points bool
	}{{"key", false, false}, {"random", false, false}, {"key", true, false}, {"key", false, true}} {
		after := "load"
		if tc.update {
			after = "update-compact"
		}
		name := fmt.Sprintf("order=%s/after=%s", tc.order, after)
		if tc.points {
			name += "/index=points" // Options.PointIndex
		}
		b.Run(name, func(b *testing.B) {
			keys := numberedKeys(n, tc.order == "random")
			b.ReportAllocs()
			var perKey, gcMs float64
			for b.Loop() {
				before := liveHeap()
				s, err := Open(nil, Options{PointIndex: tc.points})
				if err != nil {
					b.Fatal(err)
				}
				for _, k := range keys {
					if _, err := s.Put(k, value); err != nil {
						b.Fatal(err)
					}
				}
				if tc.update {
					for _, k := range keys {
						if _, err := s.Put(k, value); err != nil {
							b.Fatal(err)
						}
					}
					if err := s.Compact(s.Rev()); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				perKey = float64(liveHeap()-before) / n
				t0 := time.Now()
				runtime.GC()
				gcMs = float64(time.Since(t0).Microseconds()) / 1000
				s.Close()
				b.StartTimer()
			}
			b.ReportMetric(perKey, "heap-B/key")
			b.ReportMetric(gcMs, "gc-ms")
		})
	}
}
