package engine

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/revkv/revkv/internal/cputime"
	"github.com/revkv/revkv/kv"
)

// Benchmarks use 16-byte random keys and 128-byte values, in stores of 100k
// and 1M keys. Run them with -race off:
//
//	go test -run '^$' -bench . -benchmem ./engine
//
// Each benchmark builds its own store and collects garbage before it starts
// timing, so that no benchmark pays for marking another's heap; a benchmark
// that writes grows its store by the keys it adds.

var sizes = []int{100_000, 1_000_000}

const (
	keySize   = 16
	valueSize = 128
)

var value = make([]byte, valueSize)

func randomKeys(n int, seed uint64) [][]byte {
	r := rand.New(rand.NewPCG(seed, seed))
	keys := make([][]byte, n)
	for i := range keys {
		k := make([]byte, keySize)
		for j := 0; j < keySize; j += 8 {
			v := r.Uint64()
			for x := 0; x < 8; x++ {
				k[j+x] = byte(v >> (8 * x))
			}
		}
		keys[i] = k
	}
	return keys
}

// build returns a store holding keys, each written versions times (all keys
// once, then all keys again, ...). It writes through the same code as Put but
// publishes once at the end, so that a 1M-key store builds in seconds.
func build(keys [][]byte, versions int) *Store {
	s := newStore(Options{})
	s.mu.Lock()
	defer s.mu.Unlock()
	for range versions {
		for _, k := range keys {
			rev := s.w.rev + 1
			s.w.hist = s.w.hist.addOne(rev, s.putLocked(k, value, 0, rev, 0))
			s.w.rev = rev
		}
	}
	s.changedKeysLocked()
	s.publishLocked()
	return s
}

// readStore returns a store of n random keys written versions times.
func readStore(n, versions int) ([][]byte, *Store) {
	keys := randomKeys(n, 1)
	s := build(keys, versions)
	runtime.GC()
	return keys, s
}

func sizeName(n int) string {
	if n >= 1_000_000 {
		return fmt.Sprintf("keys=%dM", n/1_000_000)
	}
	return fmt.Sprintf("keys=%dk", n/1000)
}

// eachSize runs bench once per store size, on a store of that many random
// keys written versions times, with a random source seeded by seed and
// allocations reported.
func eachSize(b *testing.B, versions int, seed uint64, bench func(b *testing.B, keys [][]byte, s *Store, r *rand.Rand)) {
	for _, n := range sizes {
		b.Run(sizeName(n), func(b *testing.B) {
			keys, s := readStore(n, versions)
			r := rand.New(rand.NewPCG(seed, seed))
			b.ReportAllocs()
			bench(b, keys, s, r)
		})
	}
}

// BenchmarkPut puts new random keys into a store of n keys: every op
// inserts a key the store has not seen (keys are made from a counter, into
// one reused buffer: Put copies them).
func BenchmarkPut(b *testing.B) {
	for _, n := range sizes {
		b.Run(sizeName(n), func(b *testing.B) {
			_, s := readStore(n, 1)
			key := make([]byte, keySize)
			b.ReportAllocs()
			i := uint64(0)
			cpu0 := cputime.Process()
			for b.Loop() {
				i++
				// A bijective mix of the counter: distinct, random-looking
				// keys that the seed-1 keys of readStore cannot collide with
				// in practice (16 random bytes).
				binary.BigEndian.PutUint64(key, mix(i))
				binary.BigEndian.PutUint64(key[8:], mix(i^0x9e3779b97f4a7c15))
				if _, err := s.Put(key, value); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cputime.Process()-cpu0)/float64(b.N), "proc-cpu-ns/op")
		})
	}
}

// BenchmarkPutOrdered puts new keys in key order (numbered "k%015d", each
// after every key the store has), into a store of n numbered keys: the shape
// of a store loaded in key order. proc-cpu-ns/op is the CPU time of the whole
// process per op (the garbage collector's included), steadier than ns/op on a
// shared machine.
func BenchmarkPutOrdered(b *testing.B) {
	for _, n := range sizes {
		b.Run(sizeName(n), func(b *testing.B) {
			s := build(numberedKeys(n, false), 1)
			runtime.GC()
			key := make([]byte, 0, keySize)
			b.ReportAllocs()
			i := n
			cpu0 := cputime.Process()
			for b.Loop() {
				key = fmt.Appendf(key[:0], "k%015d", i)
				i++
				if _, err := s.Put(key, value); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cputime.Process()-cpu0)/float64(b.N), "proc-cpu-ns/op")
		})
	}
}

// mix is splitmix64's finalizer.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// BenchmarkPutHot updates 1,000 hot keys round robin in a store of n keys.
func BenchmarkPutHot(b *testing.B) {
	for _, n := range sizes {
		b.Run(sizeName(n), func(b *testing.B) {
			keys, s := readStore(n, 1)
			hot := keys[:1000]
			b.ReportAllocs()
			i := 0
			cpu0 := cputime.Process()
			for b.Loop() {
				if _, err := s.Put(hot[i%1000], value); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(cputime.Process()-cpu0)/float64(b.N), "proc-cpu-ns/op")
		})
	}
}

// BenchmarkGet is a point Range of a random existing key.
func BenchmarkGet(b *testing.B) {
	eachSize(b, 1, 3, func(b *testing.B, keys [][]byte, s *Store, r *rand.Rand) {
		n := len(keys)
		for b.Loop() {
			kvs, _, err := s.Range(keys[r.IntN(n)], nil, 0, 0)
			if err != nil || len(kvs) != 1 {
				b.Fatal(err, len(kvs))
			}
		}
	})
}

// BenchmarkGetPrefixed is BenchmarkGet with keys that share their first 10
// bytes ("user:" and 11 digits, 16 bytes), as real keys often share a
// prefix: it measures what the index's inline key prefix saves.
func BenchmarkGetPrefixed(b *testing.B) {
	for _, n := range sizes {
		b.Run(sizeName(n), func(b *testing.B) {
			keys := make([][]byte, n)
			for i := range keys {
				keys[i] = fmt.Appendf(nil, "user:%011d", mix(uint64(i))%100_000_000_000)
			}
			s := build(keys, 1)
			runtime.GC()
			r := rand.New(rand.NewPCG(7, 7))
			b.ReportAllocs()
			for b.Loop() {
				kvs, _, err := s.Range(keys[r.IntN(n)], nil, 0, 0)
				if err != nil || len(kvs) != 1 {
					b.Fatal(err, len(kvs))
				}
			}
		})
	}
}

// BenchmarkRange100 reads 100 consecutive keys from a random start key.
func BenchmarkRange100(b *testing.B) {
	eachSize(b, 1, 4, func(b *testing.B, keys [][]byte, s *Store, r *rand.Rand) {
		n := len(keys)
		for b.Loop() {
			_, _, err := s.Range(keys[r.IntN(n)], []byte{}, 100, 0)
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRangeOldRev is a point read at the revision of a key's first
// version, in a store where every key was written twice.
func BenchmarkRangeOldRev(b *testing.B) {
	eachSize(b, 2, 5, func(b *testing.B, keys [][]byte, s *Store, r *rand.Rand) {
		n := len(keys)
		for b.Loop() {
			i := r.IntN(n)
			// Key i's first version is revision i+2.
			kvs, _, err := s.Range(keys[i], nil, 0, int64(i+2))
			if err != nil || len(kvs) != 1 || kvs[0].Version != 1 {
				b.Fatal(err, kvs)
			}
		}
	})
}

// BenchmarkTxnPut10 is a txn of 10 puts of random existing keys.
func BenchmarkTxnPut10(b *testing.B) {
	eachSize(b, 1, 6, func(b *testing.B, keys [][]byte, s *Store, r *rand.Rand) {
		n := len(keys)
		for b.Loop() {
			id, _ := s.TxnBegin()
			for range 10 {
				if _, err := s.TxnPut(id, keys[r.IntN(n)], value); err != nil {
					b.Fatal(err)
				}
			}
			if err := s.TxnEnd(id); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkReadFresh reads a store of 100k keys right after `new` keys
// were put into it one by one (as BenchmarkPut's): reads of those new keys,
// of keys it does not have, and ranges of 100 keys from random keys. The
// new keys may not be in the published trees yet (see fresh.go): this is
// what readers pay for it. cpu-ns/op is the reading thread's CPU time.
func BenchmarkReadFresh(b *testing.B) {
	for _, fresh := range []int{4000, 16000} {
		keys, s := readStore(100_000, 1)
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
		read := func(name string, fn func(r *rand.Rand) error) {
			benchReads(b, fmt.Sprintf("new=%d/%s", fresh, name), fn)
		}
		read("get-new", func(r *rand.Rand) error {
			kvs, _, err := s.Range(added[r.IntN(fresh)], nil, 0, 0)
			if err == nil && len(kvs) != 1 {
				err = fmt.Errorf("%d keys", len(kvs))
			}
			return err
		})
		missing := make([]byte, keySize)
		read("get-missing", func(r *rand.Rand) error {
			binary.BigEndian.PutUint64(missing, r.Uint64())
			binary.BigEndian.PutUint64(missing[8:], r.Uint64())
			_, _, err := s.Range(missing, nil, 0, 0)
			return err
		})
		read("range100", func(r *rand.Rand) error {
			kvs, _, err := s.Range(keys[r.IntN(len(keys))], []byte{}, 100, 0)
			if err == nil && len(kvs) == 0 {
				err = fmt.Errorf("no keys")
			}
			return err
		})
		s.Close()
	}
}

// BenchmarkTxnPutNew10 is a txn of 10 puts of keys the store has not seen
// (random-looking, as BenchmarkPut's).
func BenchmarkTxnPutNew10(b *testing.B) {
	for _, n := range sizes {
		b.Run(sizeName(n), func(b *testing.B) {
			_, s := readStore(n, 1)
			key := make([]byte, keySize)
			b.ReportAllocs()
			i := uint64(0)
			cpu0 := cputime.Process()
			for b.Loop() {
				id, _ := s.TxnBegin()
				for range 10 {
					i++
					binary.BigEndian.PutUint64(key, mix(i))
					binary.BigEndian.PutUint64(key[8:], mix(i^0x9e3779b97f4a7c15))
					if _, err := s.TxnPut(id, key, value); err != nil {
						b.Fatal(err)
					}
				}
				if err := s.TxnEnd(id); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cputime.Process()-cpu0)/float64(b.N), "proc-cpu-ns/op")
		})
	}
}

// BenchmarkCompact compacts a store of n keys after 1,000 of them were
// updated; the updates are not timed. A goroutine puts beside the
// compaction and reports the longest Put (max-put-ns: lock wait, GC assists
// and all) and the longest wait for the writer lock alone (max-lock-wait-ns;
// on 2 cores this includes time the goroutine was not scheduled), and the
// longest the compaction held the lock in one step (max-step-ns).
func BenchmarkCompact(b *testing.B) {
	for _, n := range sizes {
		b.Run(sizeName(n), func(b *testing.B) {
			keys, s := readStore(n, 1)
			r := rand.New(rand.NewPCG(7, 7))
			var maxStall, maxWait, maxStep time.Duration
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				for range 1000 {
					s.Put(keys[r.IntN(n)], value)
				}
				rev := s.Rev()
				stop := make(chan struct{})
				stalls := make(chan [2]time.Duration)
				go func() {
					var worst, wait time.Duration
					k := []byte("stall-probe-key!")
					for {
						select {
						case <-stop:
							stalls <- [2]time.Duration{worst, wait}
							return
						default:
						}
						t0 := time.Now()
						s.lockWriter()
						wait = max(wait, time.Since(t0))
						s.mu.Unlock()
						t0 = time.Now()
						s.Put(k, value)
						worst = max(worst, time.Since(t0))
					}
				}()
				b.StartTimer()
				if err := s.Compact(rev); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				close(stop)
				st := <-stalls
				maxStall, maxWait = max(maxStall, st[0]), max(maxWait, st[1])
				maxStep = max(maxStep, time.Duration(s.lastCompactStep.Load()))
				b.StartTimer()
			}
			b.ReportMetric(float64(maxStall.Nanoseconds()), "max-put-ns")
			b.ReportMetric(float64(maxWait.Nanoseconds()), "max-lock-wait-ns")
			b.ReportMetric(float64(maxStep.Nanoseconds()), "max-step-ns")
		})
	}
}

// BenchmarkView takes a read view (what every read does).
func BenchmarkView(b *testing.B) {
	_, s := readStore(100_000, 1)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.View(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSnapshot takes a snapshot and closes it, without writing it.
func BenchmarkSnapshot(b *testing.B) {
	_, s := readStore(100_000, 1)
	b.ReportAllocs()
	for b.Loop() {
		sn, err := s.Snapshot()
		if err != nil {
			b.Fatal(err)
		}
		sn.Close()
	}
}

// BenchmarkSnapshotWrite writes a 100k-key snapshot; SetBytes makes the
// MB/s column its throughput.
func BenchmarkSnapshotWrite(b *testing.B) {
	_, s := readStore(100_000, 1)
	sn, _ := s.Snapshot()
	b.SetBytes(sn.Size())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := sn.WriteTo(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHash is HashByRev over a store of n keys written once.
func BenchmarkHash(b *testing.B) {
	eachSize(b, 1, 8, func(b *testing.B, keys [][]byte, s *Store, r *rand.Rand) {
		for b.Loop() {
			s.hashes.valid = false // as after a compaction: a walk of the store
			if _, err := s.HashByRev(0); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkHashAgain is 1,000 puts of random existing keys and then
// HashByRev(0), the way a periodic consistency check calls it: the hash
// covers only what was written since the last call. ns/op is the puts and
// the hash; hash-ns/op the hash alone. (Stopping the timer around the puts
// would read the memory statistics twice per op, which with a 1M-key heap
// costs more than the op.)
func BenchmarkHashAgain(b *testing.B) {
	eachSize(b, 1, 9, func(b *testing.B, keys [][]byte, s *Store, r *rand.Rand) {
		if _, err := s.HashByRev(0); err != nil {
			b.Fatal(err)
		}
		var hashing time.Duration
		for b.Loop() {
			for range 1000 {
				if _, err := s.Put(keys[r.IntN(len(keys))], value); err != nil {
					b.Fatal(err)
				}
			}
			t0 := time.Now()
			if _, err := s.HashByRev(0); err != nil {
				b.Fatal(err)
			}
			hashing += time.Since(t0)
		}
		b.ReportMetric(float64(hashing.Nanoseconds())/float64(b.N), "hash-ns/op")
	})
}

// BenchmarkTxnCAS is a compare-and-swap with Store.Txn: one compare, one
// put. "new" creates a key if it does not exist (compare create revision =
// 0), as BenchmarkPut puts new keys; "hot" swaps one of 1000 hot keys if
// its mod revision is the one last seen, as BenchmarkPutHot puts them.
func BenchmarkTxnCAS(b *testing.B) {
	ctx := context.Background()
	b.Run("new", func(b *testing.B) {
		_, s := readStore(sizes[0], 1)
		key := make([]byte, keySize)
		req := &kv.TxnRequest{
			Compare: []kv.Compare{{Key: key, Target: kv.CompareCreate, Result: kv.CompareEqual}},
			Then:    []kv.Op{kv.PutOp(key, value)},
		}
		b.ReportAllocs()
		i := uint64(0)
		for b.Loop() {
			i++
			binary.BigEndian.PutUint64(key, mix(i))
			binary.BigEndian.PutUint64(key[8:], mix(i^0x9e3779b97f4a7c15))
			resp, err := s.Txn(ctx, req)
			if err != nil || !resp.Succeeded {
				b.Fatal(err)
			}
		}
	})
	b.Run("hot", func(b *testing.B) {
		keys, s := readStore(sizes[0], 1)
		hot := keys[:1000]
		mods := make([]int64, len(hot))
		for i, k := range hot {
			kvs, _, _ := s.Range(k, nil, 0, 0)
			mods[i] = kvs[0].ModRevision
		}
		req := &kv.TxnRequest{
			Compare: []kv.Compare{{Target: kv.CompareMod, Result: kv.CompareEqual}},
			Then:    []kv.Op{kv.PutOp(nil, value)},
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			j := i % len(hot)
			req.Compare[0].Key, req.Compare[0].ModRevision, req.Then[0].Key = hot[j], mods[j], hot[j]
			resp, err := s.Txn(ctx, req)
			if err != nil || !resp.Succeeded {
				b.Fatal(err, resp)
			}
			mods[j] = resp.Rev
			i++
		}
	})
}

// BenchmarkRangeSorted100 reads a range of 100 consecutive keys sorted by
// mod revision, descending.
func BenchmarkRangeSorted100(b *testing.B) {
	eachSize(b, 1, 8, func(b *testing.B, keys [][]byte, s *Store, r *rand.Rand) {
		sorted := slices.SortedFunc(slices.Values(keys), bytes.Compare)
		opts := RangeOptions{SortOrder: kv.SortDescend, SortTarget: kv.SortByMod}
		for b.Loop() {
			i := r.IntN(len(sorted) - 100)
			res, err := s.RangeWithOptions(sorted[i], sorted[i+100], opts)
			if err != nil || len(res.KVs) != 100 {
				b.Fatal(err, len(res.KVs))
			}
		}
	})
}

// numberedKeys returns n keys "k" and 15 digits (16 bytes, as in bench/'s
// comparison), in key order, or shuffled if random: keys that agree on
// their first 10 bytes and differ only in their last digits.
func numberedKeys(n int, random bool) [][]byte {
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "k%015d", i)
	}
	if random {
		r := rand.New(rand.NewPCG(9, 9))
		r.Shuffle(n, func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	}
	return keys
}

// BenchmarkGetNumbered is a point Range of a random existing key at 1M
// numbered keys, put in key order or in random order: the index must tell
// keys apart whatever order they came in; index=points is with
// Options.PointIndex. cpu-ns/op is the CPU time of the
// benchmark's thread per op, steadier than ns/op on a shared machine.
func BenchmarkGetNumbered(b *testing.B) {
	for _, c := range []struct {
		order string
		index string
	}{{"key", "tree"}, {"random", "tree"}, {"key", "points"}, {"random", "points"}} {
		b.Run("order="+c.order+"/index="+c.index, func(b *testing.B) {
			const n = 1_000_000
			keys := numberedKeys(n, c.order == "random")
			s := build(keys, 1)
			if c.index == "points" { // Options.PointIndex
				s.mu.Lock()
				s.opts.PointIndex = true
				s.publishLocked()
				s.mu.Unlock()
			}
			runtime.GC()
			r := rand.New(rand.NewPCG(7, 7))
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			b.ReportAllocs()
			cpu0 := cputime.Thread()
			for b.Loop() {
				kvs, _, err := s.Range(keys[r.IntN(n)], nil, 0, 0)
				if err != nil || len(kvs) != 1 {
					b.Fatal(err, len(kvs))
				}
			}
			b.ReportMetric(float64(cputime.Thread()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// BenchmarkNewStore is a new in-memory store, one put, and Close: what a
// test that makes a store of its own pays.
func BenchmarkNewStore(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		s, err := Open(nil, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Put([]byte("key"), value); err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}

// BenchmarkLoad restores a store of 200k keys (numbered, written once in
// key order) from its snapshot in memory: with its history (every key an
// event), and compacted (every key a base entry, in key order).
func BenchmarkLoad(b *testing.B) {
	for _, compacted := range []bool{false, true} {
		b.Run(fmt.Sprintf("compacted=%v", compacted), func(b *testing.B) {
			s := build(numberedKeys(200_000, false), 1)
			if compacted {
				if err := s.Compact(s.Rev()); err != nil {
					b.Fatal(err)
				}
			}
			sn, _ := s.Snapshot()
			var buf bytes.Buffer
			if _, err := sn.WriteTo(&buf); err != nil {
				b.Fatal(err)
			}
			sn.Close()
			s.Close()
			runtime.GC()
			b.SetBytes(int64(buf.Len()))
			b.ReportAllocs()
			for b.Loop() {
				l, err := loadStore(bytes.NewReader(buf.Bytes()), Options{})
				if err != nil {
					b.Fatal(err)
				}
				l.Close()
			}
		})
	}
}

// benchReads runs fn as sub-benchmark name on a locked OS thread, with a
// seeded source of random numbers, and reports the thread's CPU time per
// read (cpu-ns/op) beside the clock's.
func benchReads(b *testing.B, name string, fn func(r *rand.Rand) error) {
	b.Run(name, func(b *testing.B) {
		r := rand.New(rand.NewPCG(8, 8))
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		b.ReportAllocs()
		cpu0 := cputime.Thread()
		for b.Loop() {
			if err := fn(r); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(cputime.Thread()-cpu0)/float64(b.N), "cpu-ns/op")
	})
}
