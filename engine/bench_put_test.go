package engine

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/revkv/revkv/internal/cputime"
)

// The benchmarks of this file have the shape of bench/compare's put
// workloads: a store made empty (put-keyorder) or with 1,000 keys
// (put-update) takes 200,000 puts, then a new store starts. They measure
// the fixed cost of a Put (its publication, the history, the version
// lists) on a heap as small as the comparison's, where the engine
// benchmarks above work in stores of 100k and 1M keys.

// Both report the CPU time of the whole process (the garbage collector's
// included) and of the benchmark's thread per op: steadier than ns/op on a
// shared machine.

// putRun is how many puts one store takes before a new one starts.
const putRun = 200_000

// BenchmarkPutKeyOrder puts new keys in key order ("k%015d") into a store
// that starts empty, as bench/compare's put-keyorder.
func BenchmarkPutKeyOrder(b *testing.B) { putNew(b, numberedKeys(putRun, false)) }

// putNew puts keys, in their order, into a store that starts empty; a new
// store starts after every len(keys) puts.
func putNew(b *testing.B, keys [][]byte) {
	var s *Store
	runtime.GC()
	b.ReportAllocs()
	i := 0
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu0, thr0 := cputime.Process(), cputime.Thread()
	for b.Loop() {
		if i%len(keys) == 0 {
			s = newStore(Options{})
		}
		if _, err := s.Put(keys[i%len(keys)], value); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(cputime.Process()-cpu0)/float64(b.N), "proc-cpu-ns/op")
	b.ReportMetric(float64(cputime.Thread()-thr0)/float64(b.N), "thread-cpu-ns/op")
}

// BenchmarkPutUpdate updates 1,000 keys round robin in a store that starts
// with them, as bench/compare's put-update.
func BenchmarkPutUpdate(b *testing.B) {
	keys := make([][]byte, 1000)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "k%015d", i)
	}
	newHot := func() *Store {
		s := newStore(Options{})
		for _, k := range keys {
			if _, err := s.Put(k, value); err != nil {
				b.Fatal(err)
			}
		}
		return s
	}
	var s *Store
	runtime.GC()
	b.ReportAllocs()
	i := 0
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu0, thr0 := cputime.Process(), cputime.Thread()
	for b.Loop() {
		if i%putRun == 0 {
			b.StopTimer()
			s = newHot()
			b.StartTimer()
		}
		if _, err := s.Put(keys[i%len(keys)], value); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(cputime.Process()-cpu0)/float64(b.N), "proc-cpu-ns/op")
	b.ReportMetric(float64(cputime.Thread()-thr0)/float64(b.N), "thread-cpu-ns/op")
}

// BenchmarkReadFreshInOrder is BenchmarkReadFresh for keys put in key
// order: a store of 100k numbered keys takes 4,000 more after them, which
// wait beside the trees as one sorted tail (freshSeg.asc). get-new reads
// one of them, range100 reads 100 keys from one.
func BenchmarkReadFreshInOrder(b *testing.B) {
	const old, fresh = 100_000, 4000
	keys := numberedKeys(old+fresh, false)
	s := newStore(Options{})
	defer s.Close()
	for i, k := range keys {
		if i == old {
			s.mu.Lock()
			s.changedKeysLocked() // the trees are copied at the next put
			s.mu.Unlock()
		}
		if _, err := s.Put(k, value); err != nil {
			b.Fatal(err)
		}
	}
	if n := s.cur.Load().fresh.len(); n < fresh/2 {
		b.Fatalf("%d fresh keys", n)
	}
	added := keys[old:]
	runtime.GC()
	benchReads(b, "get-new", func(r *rand.Rand) error {
		kvs, _, err := s.Range(added[r.IntN(fresh)], nil, 0, 0)
		if err == nil && len(kvs) != 1 {
			err = fmt.Errorf("%d keys", len(kvs))
		}
		return err
	})
	benchReads(b, "range100", func(r *rand.Rand) error {
		kvs, _, err := s.Range(added[r.IntN(fresh-100)], []byte{}, 100, 0)
		if err == nil && len(kvs) != 100 {
			err = fmt.Errorf("%d keys", len(kvs))
		}
		return err
	})
}

// BenchmarkTxnPutNewRun is bench/compare's txn-put-new: txns of 10 puts of
// new numbered keys ("k%015d", in a random order of 200,000), into a store
// that starts empty; a new store starts every 20,000 txns. One op is one
// txn.
func BenchmarkTxnPutNewRun(b *testing.B) {
	const txns = 20_000
	keys := numberedKeys(10*txns, true)
	var s *Store
	runtime.GC()
	b.ReportAllocs()
	i := 0
	cpu0 := cputime.Process()
	for b.Loop() {
		if i%txns == 0 {
			s = newStore(Options{})
		}
		id, err := s.TxnBegin()
		if err != nil {
			b.Fatal(err)
		}
		for _, k := range keys[10*(i%txns) : 10*(i%txns)+10] {
			if _, err := s.TxnPut(id, k, value); err != nil {
				b.Fatal(err)
			}
		}
		if err := s.TxnEnd(id); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(cputime.Process()-cpu0)/float64(b.N), "proc-cpu-ns/op")
}

// BenchmarkPutRandomRun is bench/compare's put-random-1m: puts of new
// numbered keys in a random order of 1,000,000, into a store that starts
// empty; a new store starts every 1,000,000 puts (run it with -benchtime
// 1000000x for exactly one store).
func BenchmarkPutRandomRun(b *testing.B) { putNew(b, numberedKeys(1_000_000, true)) }
