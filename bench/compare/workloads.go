package compare

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"
)

// Result is one run of a workload on one engine.
type Result struct {
	Ops     int
	Elapsed time.Duration
	Allocs  uint64 // heap allocations during the timed part, all goroutines
	Bytes   uint64 // heap bytes allocated during the timed part
	Faults  uint64 // the process's minor page faults during the timed part
	Extra   map[string]float64
}

// Workload is one line of the comparison.
type Workload struct {
	Name string
	What string
	// Primary is the figure the etcd/revkv ratio is taken of: "ns/op", or
	// a key of Result.Extra.
	Primary string
	// MaxRounds caps the rounds of the costly workloads.
	MaxRounds int
	// OwnProcess runs every round in a new process, whatever
	// Config.Fresh says (the rss workload: a process's RSS never comes
	// back down to what a fresh one holds).
	OwnProcess bool
	// NotYet, if set, names the engine rows that cannot run yet and why.
	NotYet map[string]string
	// Extra are engines that run this workload besides the configured
	// ones (revkv+filelog, for the workloads that measure persistence).
	Extra []Engine
	Run   func(env *Env) (Result, error)
}

// Env is what a workload runs in: a fresh store, the directory of its
// files, and the scale of the workload (1 for the full sizes). A workload
// that reopens the store puts the new one in Store; the runner closes it.
type Env struct {
	Engine Engine
	Store  Store
	Dir    string
	Scale  float64
}

const valueSize = 128

var value = make([]byte, valueSize)

// keyOf returns the 16-byte key number i; keys sort by i. Keys come from a
// table made outside the timed parts, so that making them costs no engine.
func keyOf(i int) []byte {
	if i < len(keyTable) {
		return keyTable[i]
	}
	return []byte(fmt.Sprintf("k%015d", i))
}

var keyTable [][]byte

// makeKeys fills the key table up to n keys. The runner calls it before any
// workload.
func makeKeys(n int) {
	for i := len(keyTable); i < n; i++ {
		keyTable = append(keyTable, []byte(fmt.Sprintf("k%015d", i)))
	}
}

func scaled(n int, sc float64) int { return max(int(float64(n)*sc), 10) }

// measure times fn, which does ops operations, with the heap figures of
// the whole process around it.
func measure(ops int, fn func() error) (Result, error) {
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	stop, err := startProfile()
	if err != nil {
		return Result{}, err
	}
	f0 := minorFaults()
	t0 := time.Now()
	err = fn()
	el := time.Since(t0)
	f1 := minorFaults()
	if perr := stop(); err == nil {
		err = perr
	}
	runtime.ReadMemStats(&m1)
	return Result{Ops: ops, Elapsed: el, Allocs: m1.Mallocs - m0.Mallocs, Bytes: m1.TotalAlloc - m0.TotalAlloc, Faults: f1 - f0}, err
}

// profilePath, if not empty, is where measure writes a CPU profile of its
// timed part (Config.CPUProfile).
var profilePath string

// startProfile starts the CPU profile of a timed part, if one is asked
// for, and returns what stops it.
func startProfile() (stop func() error, err error) {
	if profilePath == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(profilePath)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() error {
		pprof.StopCPUProfile()
		return f.Close()
	}, nil
}

func load(s Store, n int) error {
	for i := range n {
		if err := s.Put(keyOf(i), value); err != nil {
			return err
		}
	}
	return s.Sync()
}

func perm(n int, seed uint64) []int {
	return rand.New(rand.NewPCG(seed, seed)).Perm(n)
}

func versioned(s Store) (Versioned, error) {
	v, ok := s.(Versioned)
	if !ok {
		return nil, ErrUnsupported
	}
	return v, nil
}

// Workloads returns every workload, in the order of the table.
func Workloads() []Workload {
	return []Workload{
		{Name: "put-seq", What: "200k puts of distinct keys (random order), then a commit",
			Extra: []Engine{RevkvFile{}},
			Run: func(env *Env) (Result, error) {
				s, sc := env.Store, env.Scale
				n := scaled(200_000, sc)
				order := perm(n, 1)
				return measure(n, func() error {
					for _, i := range order {
						if err := s.Put(keyOf(i), value); err != nil {
							return err
						}
					}
					return s.Sync()
				})
			}},
		{Name: "put-keyorder", What: "200k puts of distinct keys in key order, then a commit",
			Run: func(env *Env) (Result, error) {
				s, sc := env.Store, env.Scale
				n := scaled(200_000, sc)
				return measure(n, func() error { return load(s, n) })
			}},
		{Name: "put-random-1m", What: "1M puts of distinct keys in random order, then a commit",
			Run: func(env *Env) (Result, error) {
				s, sc := env.Store, env.Scale
				n := scaled(1_000_000, sc)
				order := perm(n, 6)
				return measure(n, func() error {
					for _, i := range order {
						if err := s.Put(keyOf(i), value); err != nil {
							return err
						}
					}
					return s.Sync()
				})
			}},
		{Name: "new-store", What: "open a new store, 1 put, close (a fake store per test); files, if any, in a new directory each",
			Run: func(env *Env) (Result, error) {
				n := scaled(2_000, env.Scale)
				dirs := make([]string, n)
				for i := range dirs {
					dirs[i] = filepath.Join(env.Dir, fmt.Sprintf("s%d", i))
					if err := os.Mkdir(dirs[i], 0o755); err != nil {
						return Result{}, err
					}
				}
				return measure(n, func() error {
					for _, dir := range dirs {
						t, err := env.Engine.Open(dir)
						if err != nil {
							return err
						}
						if err := t.Put(keyOf(0), value); err != nil {
							t.Close()
							return err
						}
						if err := t.Close(); err != nil {
							return err
						}
					}
					return nil
				})
			}},
		{Name: "put-update", What: "200k puts to 1,000 hot keys, round robin, then a commit",
			Extra: []Engine{RevkvFile{}},
			Run: func(env *Env) (Result, error) {
				s, sc := env.Store, env.Scale
				if err := load(s, 1000); err != nil {
					return Result{}, err
				}
				n := scaled(200_000, sc)
				return measure(n, func() error {
					for i := range n {
						if err := s.Put(keyOf(i%1000), value); err != nil {
							return err
						}
					}
					return s.Sync()
				})
			}},
		pointReads("range-1", 100_000, 3),
		// The rows of issue 14's goals run every round (-n, 5 in
		// bench/RESULTS.md): their medians move by 10-30% between runs
		// with fewer.
		pointReads("range-1-1m", 1_000_000, 0),
		pointReadsRandomLoad("range-1-1m-random-load", 1_000_000, 0),
		{Name: "range-100", What: "ranges of 100 keys from random keys of a 100k-key store",
			Run: func(env *Env) (Result, error) {
				s, sc := env.Store, env.Scale
				keys := scaled(100_000, sc)
				if err := load(s, keys); err != nil {
					return Result{}, err
				}
				n := scaled(20_000, sc)
				starts := perm(keys, 3)
				return measure(n, func() error {
					for i := range n {
						if _, err := s.Scan(keyOf(starts[i%keys]), 100); err != nil {
							return err
						}
					}
					return nil
				})
			}},
		{Name: "range-old-rev", What: "point reads at random past revisions (1,000 keys x 200 versions)",
			Run: func(env *Env) (Result, error) {
				s, sc := env.Store, env.Scale
				v, err := versioned(s)
				if err != nil {
					return Result{}, err
				}
				versions := scaled(200, sc)
				for range versions {
					if err := load(s, 1000); err != nil {
						return Result{}, err
					}
				}
				first, last := v.Rev()-int64(1000*(versions-1)), v.Rev()
				n := scaled(100_000, sc)
				r := rand.New(rand.NewPCG(4, 4))
				return measure(n, func() error {
					for range n {
						rev := first + r.Int64N(last-first+1)
						ok, err := v.GetAt(keyOf(r.IntN(1000)), rev)
						if err != nil || !ok {
							return fmt.Errorf("read at %d: %v %v", rev, ok, err)
						}
					}
					return nil
				})
			}},
		{Name: "txn-put", What: "write txns of 10 puts (keys of a 100k space), then a commit",
			Run: func(env *Env) (Result, error) {
				s, sc := env.Store, env.Scale
				n := scaled(20_000, sc)
				r := rand.New(rand.NewPCG(5, 5))
				keys := make([][]byte, 10)
				return measure(n, func() error {
					for range n {
						for j := range keys {
							keys[j] = keyOf(r.IntN(100_000))
						}
						if err := s.TxnPut(keys, value); err != nil {
							return err
						}
					}
					return s.Sync()
				})
			}},
		{Name: "txn-put-new", What: "write txns of 10 puts of distinct new keys (random order), then a commit; ns per txn",
			Run: func(env *Env) (Result, error) {
				s, sc := env.Store, env.Scale
				n := scaled(20_000, sc)
				order := perm(10*n, 7)
				keys := make([][]byte, 10)
				return measure(n, func() error {
					for t := range n {
						for j := range keys {
							keys[j] = keyOf(order[10*t+j])
						}
						if err := s.TxnPut(keys, value); err != nil {
							return err
						}
					}
					return s.Sync()
				})
			}},
		{Name: "watch-fanout", What: "1,000 watchers on distinct keys; puts to all 1,000 keys, until every event is received (ns per event)",
			Primary: "ns/op",
			Run: func(env *Env) (Result, error) {
				s, sc := env.Store, env.Scale
				w, ok := s.(Watchable)
				if !ok {
					return Result{}, ErrUnsupported
				}
				const watchers = 1000
				var got atomic.Int64
				stop := make(chan struct{})
				defer close(stop)
				for i := range watchers {
					if err := w.Watch(keyOf(i), nil, 0, func(n int) { got.Add(int64(n)) }, stop); err != nil {
						return Result{}, err
					}
				}
				rounds := scaled(100, sc)
				res, err := measure(rounds*watchers, func() error {
					for range rounds {
						for i := range watchers {
							if err := s.Put(keyOf(i), value); err != nil {
								return err
							}
						}
					}
					return waitFor(&got, int64(rounds*watchers))
				})
				res.Extra = map[string]float64{"events/s": float64(res.Ops) / res.Elapsed.Seconds()}
				return res, err
			}},
		{Name: "watch-prefix", What: "10,000 watchers on one prefix; 100 puts under it, until every watcher has every event (ns per event)",
			Primary: "ns/op", MaxRounds: 3,
			Run: func(env *Env) (Result, error) {
				s, sc := env.Store, env.Scale
				w, ok := s.(Watchable)
				if !ok {
					return Result{}, ErrUnsupported
				}
				watchers := scaled(10_000, sc)
				var got atomic.Int64
				stop := make(chan struct{})
				defer close(stop)
				for range watchers {
					if err := w.Watch([]byte("k"), []byte("l"), 0, func(n int) { got.Add(int64(n)) }, stop); err != nil {
						return Result{}, err
					}
				}
				const puts = 100
				res, err := measure(puts*watchers, func() error {
					for i := range puts {
						if err := s.Put(keyOf(i), value); err != nil {
							return err
						}
					}
					return waitFor(&got, int64(puts*watchers))
				})
				res.Extra = map[string]float64{"events/s": float64(res.Ops) / res.Elapsed.Seconds()}
				return res, err
			}},
		watchCatchUp("watch-catchup", "a prefix watcher from revision 1 over 100k revisions of 1,000 keys (ns per event)", 1000),
		watchCatchUp("watch-catchup-1key", "a prefix watcher from revision 1 over 100k revisions of one key (ns per event)", 1),
		{Name: "compact", What: "Compact(rev-1000) after 200k updates of 1,000 keys: total time, and the longest Put of a writer running beside it",
			Primary: "ns/op", MaxRounds: 2,
			Run: func(env *Env) (Result, error) {
				s, sc := env.Store, env.Scale
				v, err := versioned(s)
				if err != nil {
					return Result{}, err
				}
				n := scaled(200_000, sc)
				for i := range n {
					if err := s.Put(keyOf(i%1000), value); err != nil {
						return Result{}, err
					}
				}
				if err := s.Sync(); err != nil {
					return Result{}, err
				}
				rev := v.Rev() - 1000
				var worst time.Duration
				stop := make(chan struct{})
				var wg sync.WaitGroup
				wg.Add(1)
				go func() {
					defer wg.Done()
					k := []byte("stall-probe-key!")
					for {
						select {
						case <-stop:
							return
						default:
						}
						t0 := time.Now()
						s.Put(k, value)
						worst = max(worst, time.Since(t0))
						time.Sleep(100 * time.Microsecond)
					}
				}()
				res, err := measure(1, func() error { return v.Compact(rev) })
				close(stop)
				wg.Wait()
				res.Extra = map[string]float64{"max-stall-ms": float64(worst.Microseconds()) / 1000}
				return res, err
			}},
		{Name: "restore", What: "reopen a 200k-key store from its files; heap bytes per key after",
			Extra: []Engine{RevkvFile{}},
			Run: func(env *Env) (Result, error) {
				s, sc := env.Store, env.Scale
				if _, ok := env.Engine.(Durable); !ok {
					return Result{}, ErrUnsupported
				}
				n := scaled(200_000, sc)
				if err := load(s, n); err != nil {
					return Result{}, err
				}
				env.Store = nil
				if err := s.Close(); err != nil {
					return Result{}, err
				}
				s = nil
				// etcd's package-level metrics keep the last store closed
				// reachable, which put its whole heap in the baseline (and
				// made etcd's figure a few B/key): open and close a tiny
				// store first, so the closed one is garbage by then.
				if err := openClose(env.Engine); err != nil {
					return Result{}, err
				}
				before := heapInUse()
				res, err := measure(1, func() error {
					fresh, err := env.Engine.Open(env.Dir)
					if err != nil {
						return err
					}
					env.Store = fresh
					ok, err := fresh.Get(keyOf(n - 1))
					if err == nil && !ok {
						err = fmt.Errorf("key missing after reopen")
					}
					return err
				})
				after := heapInUse()
				res.Extra = map[string]float64{"heap-B/key": float64(after-min(before, after)) / float64(n)}
				return res, err
			}},
		{Name: "hash", What: "HashByRev over a 100k-key store; again-ms: again after 1,000 more puts",
			MaxRounds: 3,
			Run: func(env *Env) (Result, error) {
				s, sc := env.Store, env.Scale
				v, err := versioned(s)
				if err != nil {
					return Result{}, err
				}
				n := scaled(100_000, sc)
				if err := load(s, n); err != nil {
					return Result{}, err
				}
				res, err := measure(1, v.Hash)
				if err != nil {
					return res, err
				}
				// Again after 1,000 more puts, as a periodic consistency
				// check hashes: an engine that remembers what it hashed
				// pays for the new writes only.
				for i := range 1000 {
					if err := s.Put(keyOf(i*97%n), value); err != nil {
						return res, err
					}
				}
				again, err := measure(1, v.Hash)
				res.Extra = map[string]float64{"again-ms": float64(again.Elapsed) / 1e6}
				return res, err
			}},
		{Name: "memory", What: "heap bytes per live key at 1M keys (16-byte keys, 128-byte values)",
			Primary: "heap-B/key", MaxRounds: 1,
			Run: func(env *Env) (Result, error) {
				s, sc := env.Store, env.Scale
				n := scaled(1_000_000, sc)
				before := heapInUse()
				res, err := measure(n, func() error { return load(s, n) })
				after := heapInUse()
				res.Extra = map[string]float64{"heap-B/key": float64(after-min(before, after)) / float64(n)}
				return res, err
			}},
		{Name: "rss", What: "resident memory (RSS) per key at 1M keys (16-byte keys, 128-byte values), each engine in a process of its own",
			Primary: "rss-B/key", MaxRounds: 1, OwnProcess: true,
			Run: rssLoad},
	}
}

func pointReads(name string, keys, rounds int) Workload {
	return pointReadsLoaded(name, fmt.Sprintf("point reads of random keys in a %s-key store (keys put in key order)", short(keys)), keys, rounds, false)
}

// pointReadsRandomLoad is pointReads with the keys put in random order:
// an index that depends on the order keys came in shows it here.
func pointReadsRandomLoad(name string, keys, rounds int) Workload {
	return pointReadsLoaded(name, fmt.Sprintf("point reads of random keys in a %s-key store (keys put in random order)", short(keys)), keys, rounds, true)
}

func pointReadsLoaded(name, what string, keys, rounds int, random bool) Workload {
	return Workload{Name: name, What: what,
		MaxRounds: rounds,
		Run: func(env *Env) (Result, error) {
			s, sc := env.Store, env.Scale
			k := scaled(keys, sc)
			if !random {
				if err := load(s, k); err != nil {
					return Result{}, err
				}
			} else {
				for _, i := range perm(k, 3) {
					if err := s.Put(keyOf(i), value); err != nil {
						return Result{}, err
					}
				}
				if err := s.Sync(); err != nil {
					return Result{}, err
				}
			}
			n := scaled(200_000, sc)
			order := perm(k, 2)
			return measure(n, func() error {
				for i := range n {
					ok, err := s.Get(keyOf(order[i%k]))
					if err != nil || !ok {
						return fmt.Errorf("get: %v %v", ok, err)
					}
				}
				return nil
			})
		}}
}

// watchCatchUp is a prefix watch from revision 1 over 100k revisions, each
// a put of one of keys keys, round robin: the shape (many keys or one)
// moves the etcd/revkv ratio by 2x, so the table has both.
func watchCatchUp(name, what string, keys int) Workload {
	return Workload{Name: name, What: what,
		MaxRounds: 3,
		Run: func(env *Env) (Result, error) {
			s, sc := env.Store, env.Scale
			w, ok := s.(Watchable)
			if !ok {
				return Result{}, ErrUnsupported
			}
			n := scaled(100_000, sc)
			for i := range n {
				if err := s.Put(keyOf(i%keys), value); err != nil {
					return Result{}, err
				}
			}
			if err := s.Sync(); err != nil {
				return Result{}, err
			}
			var got atomic.Int64
			stop := make(chan struct{})
			defer close(stop)
			res, err := measure(n, func() error {
				if err := w.Watch([]byte("k"), []byte("l"), 1, func(k int) { got.Add(int64(k)) }, stop); err != nil {
					return err
				}
				return waitFor(&got, int64(n))
			})
			res.Extra = map[string]float64{"events/s": float64(res.Ops) / res.Elapsed.Seconds()}
			return res, err
		}}
}

func short(n int) string {
	if n >= 1_000_000 {
		return fmt.Sprintf("%dM", n/1_000_000)
	}
	return fmt.Sprintf("%dk", n/1000)
}

// openClose opens a store of e in a directory of its own, writes one key,
// and closes it (its files removed).
func openClose(e Engine) error {
	dir, err := os.MkdirTemp("", "compare-tiny-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	t, err := e.Open(dir)
	if err != nil {
		return err
	}
	if err := t.Put(keyOf(0), value); err != nil {
		t.Close()
		return err
	}
	return t.Close()
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// waitFor waits until c reaches n, or fails after three minutes (etcd
// takes most of one for 100k events on a busy machine).
func waitFor(c *atomic.Int64, n int64) error {
	deadline := time.Now().Add(3 * time.Minute)
	for c.Load() < n {
		if time.Now().After(deadline) {
			return fmt.Errorf("received %d of %d events in three minutes", c.Load(), n)
		}
		runtime.Gosched()
	}
	return nil
}
