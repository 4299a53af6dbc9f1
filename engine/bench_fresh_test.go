package engine

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/revkv/revkv/internal/cputime"
)

// BenchmarkLoadMillion puts 1M new numbered keys (16 bytes, 128-byte
// values: bench/compare's put-random-1m and memory workloads) into an empty
// store, in random order or in key order. One op is the whole load; the
// metrics are per put: ns/put and proc-cpu-ns/put (the whole process's CPU
// time, the garbage collector's included), B/put and allocs/put, the
// longest single Put in CPU time of its thread (max-put-cpu-us: its work
// and the garbage collection it was made to assist with; the clock's time
// would count the time the goroutine was not scheduled, tens of ms on a
// loaded machine), the puts that took over 200 µs of it, and the live heap
// per key at the end (heap-B/key). Run with -benchtime 1x:
//
//	go test -run '^$' -bench LoadMillion -benchtime 1x ./engine
func BenchmarkLoadMillion(b *testing.B) {
	const n = 1_000_000
	for _, random := range []bool{true, false} {
		order := "key"
		if random {
			order = "random"
		}
		b.Run("order="+order, func(b *testing.B) {
			keys := numberedKeys(n, random)
			var ms0, ms1 runtime.MemStats
			var elapsed time.Duration
			var cpu int64
			var longest []int64
			var perKey float64
			for b.Loop() {
				b.StopTimer()
				before := liveHeap()
				s, err := Open(nil, Options{})
				if err != nil {
					b.Fatal(err)
				}
				runtime.ReadMemStats(&ms0)
				b.StartTimer()
				runtime.LockOSThread()
				cpu0, t0 := cputime.Process(), time.Now()
				longest = longest[:0]
				for _, k := range keys {
					p0 := cputime.ThreadFine()
					if _, err := s.Put(k, value); err != nil {
						b.Fatal(err)
					}
					if d := cputime.ThreadFine() - p0; d > 200_000 {
						longest = append(longest, d)
					}
				}
				cpu, elapsed = cputime.Process()-cpu0, time.Since(t0)
				runtime.UnlockOSThread()
				b.StopTimer()
				runtime.ReadMemStats(&ms1)
				perKey = float64(liveHeap()-before) / n
				s.Close()
				b.StartTimer()
			}
			slices.Sort(longest)
			maxUs := 0.0
			if len(longest) > 0 {
				maxUs = float64(longest[len(longest)-1]) / 1000
			}
			b.ReportMetric(float64(elapsed.Nanoseconds())/n, "ns/put")
			b.ReportMetric(float64(cpu)/n, "proc-cpu-ns/put")
			b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/n, "B/put")
			b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/n, "allocs/put")
			b.ReportMetric(maxUs, "max-put-cpu-us")
			b.ReportMetric(float64(len(longest)), "puts>200us-cpu")
			b.ReportMetric(perKey, "heap-B/key")
		})
	}
}

// BenchmarkReadFreshMillion is BenchmarkReadFresh at 1M keys after 100k
// new ones: the most fresh keys wait beside the trees at this size (see
// freshLimit), in the big run, a frozen one and the small ones.
func BenchmarkReadFreshMillion(b *testing.B) {
	keys, s := readStore(1_000_000, 1)
	defer s.Close()
	const fresh = 100_000
	added := make([][]byte, fresh)
	for i := range added {
		k := make([]byte, keySize)
		binary.BigEndian.PutUint64(k, mix(uint64(i)))
		binary.BigEndian.PutUint64(k[8:], mix(uint64(i)^0x9e3779b97f4a7c15))
		if _, err := s.Put(k, value); err != nil {
			b.Fatal(err)
		}
		added[i] = k
	}
	runtime.GC()
	read := func(name string, fn func(r *rand.Rand) error) { benchReads(b, name, fn) }
	read("get-new", func(r *rand.Rand) error {
		kvs, _, err := s.Range(added[r.IntN(fresh)], nil, 0, 0)
		if err == nil && len(kvs) != 1 {
			err = fmt.Errorf("%d keys", len(kvs))
		}
		return err
	})
	read("get-old", func(r *rand.Rand) error {
		kvs, _, err := s.Range(keys[r.IntN(len(keys))], nil, 0, 0)
		if err == nil && len(kvs) != 1 {
			err = fmt.Errorf("%d keys", len(kvs))
		}
		return err
	})
	read("range100", func(r *rand.Rand) error {
		kvs, _, err := s.Range(keys[r.IntN(len(keys))], []byte{}, 100, 0)
		if err == nil && len(kvs) == 0 {
			err = fmt.Errorf("no keys")
		}
		return err
	})
}
