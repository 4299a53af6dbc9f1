package filelog_test

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"

	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/internal/cputime"
	"github.com/revkv/revkv/persist"
	"github.com/revkv/revkv/persist/filelog"
)

// Benchmarks run on the OS's files in a temporary directory, with 16-byte
// keys and 128-byte values (half of each value repeats, as real values
// often do, so compression has something to do):
//
//	go test -run '^$' -bench . -benchmem ./persist/filelog
//
// Put reports disk-B/put, the bytes the log takes per put (framing and
// compression included). Restore reports heap-B/key after a reopen.

func benchKey(i uint64) []byte {
	k := make([]byte, 16)
	binary.BigEndian.PutUint64(k, i*0x9e3779b97f4a7c15) // spread, unique
	binary.BigEndian.PutUint64(k[8:], i)
	return k
}

// benchValue returns the value for key i: 64 bytes that differ from key
// to key (incompressible), then 64 that repeat.
func benchValue(i uint64) []byte {
	v := make([]byte, 128)
	x := i*0x2545f4914f6cdd1d + 1
	for j := 0; j < 64; j += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		binary.LittleEndian.PutUint64(v[j:], x)
	}
	copy(v[64:], "the second half of the value repeats: status=ok, owner=revkv, z=1")
	return v
}

func dirSize(b *testing.B, dir string) int64 {
	var total int64
	err := filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			total += fi.Size()
		}
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return total
}

func openOS(b testing.TB, dir string, opts filelog.Options) (*engine.Store, *filelog.Log) {
	opts.FS = persist.OS
	return mustOpen(b, dir, opts)
}

// BenchmarkPut: puts of distinct keys under each sync policy, from 1 and
// from 8 goroutines (where group commit shares syncs).
func BenchmarkPut(b *testing.B) {
	for _, policy := range []filelog.SyncPolicy{filelog.SyncAlways, filelog.SyncInterval, filelog.SyncNone} {
		for _, writers := range []int{1, 8} {
			b.Run(fmt.Sprintf("sync=%v/writers=%d", policy, writers), func(b *testing.B) {
				dir := b.TempDir()
				s, _ := openOS(b, dir, filelog.Options{Sync: policy, SnapshotRevs: -1, SnapshotBytes: -1})
				defer s.Close()
				var next atomic.Uint64
				b.ReportAllocs()
				b.ResetTimer()
				if writers == 1 {
					for b.Loop() {
						i := next.Add(1)
						if _, err := s.Put(benchKey(i), benchValue(i)); err != nil {
							b.Fatal(err)
						}
					}
				} else {
					b.SetParallelism((writers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							i := next.Add(1)
							if _, err := s.Put(benchKey(i), benchValue(i)); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				if err := s.Commit(); err != nil { // time includes the final commit
					b.Fatal(err)
				}
				b.StopTimer()
				puts := float64(next.Load())
				b.ReportMetric(float64(dirSize(b, dir))/puts, "disk-B/put")
			})
		}
	}
}

// restoreDir builds a directory holding n keys: the log of n puts and, if
// snap, a snapshot taken at the end.
func restoreDir(b *testing.B, n int, snap bool) string {
	dir := b.TempDir()
	s, l := openOS(b, dir, filelog.Options{Sync: filelog.SyncNone, SnapshotRevs: -1, SnapshotBytes: -1})
	for i := range n {
		if _, err := s.Put(benchKey(uint64(i)), benchValue(uint64(i))); err != nil {
			b.Fatal(err)
		}
	}
	if snap {
		if err := l.WriteSnapshot(); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	return dir
}

// BenchmarkRestore: reopening a directory of 1M keys, from a snapshot or
// from the log alone; reports the heap per key once open, and the peak
// heap during the open.
func BenchmarkRestore(b *testing.B) {
	const n = 1_000_000
	for _, from := range []string{"snapshot", "log"} {
		b.Run(fmt.Sprintf("keys=%d/from=%s", n, from), func(b *testing.B) {
			dir := restoreDir(b, n, from == "snapshot")
			var heap, peak uint64
			for b.Loop() {
				runtime.GC()
				var before runtime.MemStats
				runtime.ReadMemStats(&before)
				stop := make(chan uint64)
				go func() { stop <- samplePeak(stop) }()
				s, _ := openOS(b, dir, filelog.Options{SnapshotRevs: -1, SnapshotBytes: -1})
				stop <- 0
				p := <-stop
				var after runtime.MemStats
				runtime.ReadMemStats(&after)
				if s.Rev() != n+1 {
					b.Fatalf("reopened at revision %d", s.Rev())
				}
				heap = after.HeapAlloc - before.HeapAlloc
				peak = max(peak, p-before.HeapAlloc)
				b.StopTimer()
				s.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(heap)/n, "heap-B/key")
			b.ReportMetric(float64(peak)/n, "peak-heap-B/key")
			b.ReportMetric(float64(dirSize(b, dir))/n, "disk-B/key")
		})
	}
}

// samplePeak samples the heap every millisecond until told to stop, and
// returns the highest HeapAlloc seen.
func samplePeak(stop chan uint64) uint64 {
	var peak uint64
	var ms runtime.MemStats
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-stop:
			runtime.ReadMemStats(&ms)
			return max(peak, ms.HeapAlloc)
		case <-t.C:
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
		}
	}
}

// BenchmarkSnapshotWrite: writing a snapshot of 1M keys (the format's
// compression included); MB/s is of the snapshot's bytes.
func BenchmarkSnapshotWrite(b *testing.B) {
	const n = 1_000_000
	s, _ := engine.Open(nil, engine.Options{})
	for i := range n {
		s.Put(benchKey(uint64(i)), benchValue(uint64(i)))
	}
	sn, err := s.Snapshot()
	if err != nil {
		b.Fatal(err)
	}
	defer sn.Close()
	b.SetBytes(sn.Size())
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := sn.WriteTo(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(sn.Size())/n, "B/key")
}

// BenchmarkRestoreKeyOrder: reopening a directory of 200k keys put in key
// order (`k%015d`, bench/compare's restore workload), from the log alone,
// from a snapshot, or (half) from a snapshot taken after the first 100k
// puts and the log of the rest, with 128 zero bytes for values: the
// directory bench/compare's restore reopens (its automatic snapshot comes
// at about that revision). heap-B/key is the live heap per key once open;
// proc-cpu-ns/op the process's CPU time (the collector's and any
// read-ahead's included), steadier than the clock on a busy machine;
// thread-cpu-ns/op the CPU time of the thread that opened the store (the
// replay, without the read-ahead and the collector's background work):
// the open's critical path when another core is free; gc-cpu-ns/op the
// collector's share of the process's CPU time (the runtime's estimate,
// for the cycles that end during the open).
func BenchmarkRestoreKeyOrder(b *testing.B) {
	const n = 200_000
	for _, from := range []string{"log", "snapshot", "half"} {
		b.Run("from="+from, func(b *testing.B) {
			dir := b.TempDir()
			sync := filelog.SyncNone
			if from == "half" {
				sync = filelog.SyncInterval // as bench/compare: groups of what 100 ms gathers
			}
			s, l := openOS(b, dir, filelog.Options{Sync: sync, SnapshotRevs: -1, SnapshotBytes: -1})
			zero := make([]byte, 128)
			for i := range n {
				v := benchValue(uint64(i))
				if from == "half" {
					v = zero
				}
				if _, err := s.Put(fmt.Appendf(nil, "k%015d", i), v); err != nil {
					b.Fatal(err)
				}
				if (from == "snapshot" && i == n-1) || (from == "half" && i == n/2-1) {
					if err := l.WriteSnapshot(); err != nil {
						b.Fatal(err)
					}
				}
			}
			if err := s.Close(); err != nil {
				b.Fatal(err)
			}
			var heap float64
			var cpu, tcpu, gcpu int64
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				runtime.GC()
				var before runtime.MemStats
				runtime.ReadMemStats(&before)
				cpu0, tcpu0, gcpu0 := cputime.Process(), cputime.Thread(), gcCPU()
				b.StartTimer()
				s, _ := openOS(b, dir, filelog.Options{SnapshotRevs: -1, SnapshotBytes: -1})
				b.StopTimer()
				cpu += cputime.Process() - cpu0
				tcpu += cputime.Thread() - tcpu0
				gcpu += gcCPU() - gcpu0
				if s.Rev() != n+1 {
					b.Fatalf("reopened at revision %d", s.Rev())
				}
				runtime.GC()
				var after runtime.MemStats
				runtime.ReadMemStats(&after)
				heap = float64(after.HeapAlloc-before.HeapAlloc) / n
				s.Close()
				b.StartTimer()
			}
			b.ReportMetric(heap, "heap-B/key")
			b.ReportMetric(float64(cpu)/float64(b.N), "proc-cpu-ns/op")
			b.ReportMetric(float64(tcpu)/float64(b.N), "thread-cpu-ns/op")
			b.ReportMetric(float64(gcpu)/float64(b.N), "gc-cpu-ns/op")
		})
	}
}

// gcCPU returns the runtime's estimate of the CPU time the garbage
// collector has taken so far (runtime/metrics), in nanoseconds, as of the
// end of its last cycle.
func gcCPU() int64 {
	s := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(s)
	return int64(s[0].Value.Float64() * 1e9)
}
