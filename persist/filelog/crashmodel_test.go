package filelog_test

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"sync"
	"testing"

	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/persist"
	"github.com/revkv/revkv/persist/filelog"
	"github.com/revkv/revkv/persist/memfs"
)

// The crash and fault sweeps of this file and faultsweep_test.go run
// under every crash model memfs has. By default they are sized for CI
// (a few seconds each under -race); the long run, 20 times the seeds:
//
//	REVKV_LONG_SWEEP=1 go test -race -run 'CrashModel|CrashDuringRecovery|FsyncFault' -timeout 90m ./persist/filelog
const longSweepEnv = "REVKV_LONG_SWEEP"

// sweepScale is how many times its default number of seeds a sweep runs.
func sweepScale() int {
	if os.Getenv(longSweepEnv) != "" {
		return 20
	}
	return 1
}

// crashModels are the crash models the sweeps run under: each keeps a
// different part of an unsynced tail (memfs.CrashModel).
var crashModels = []memfs.CrashModel{memfs.CrashTorn, memfs.CrashGrowFirst}

// failures collects a sweep's failures, so that one run reports a few of
// them (each with its seed and crash point) rather than only the first.
type failures struct {
	t   *testing.T
	n   int
	max int
}

// add reports err, if any, and ends the test after max of them.
func (f *failures) add(err error) {
	f.t.Helper()
	if err == nil {
		return
	}
	f.n++
	f.t.Error(err)
	if f.n >= f.max {
		f.t.Fatalf("stopping after %d failures", f.n)
	}
}

// crashRunIn is crashRun (crash_test.go) on a memfs with fsopts (the crash
// model and seed), returning what went wrong instead of failing t: w runs
// on a fresh FS that crashes at its k-th operation; the store must reopen
// in a state the reference reached at or after the last durable op, and
// then take a write and reopen with it. It returns whether the crash point
// was reached. k 0 crashes after the whole workload instead.
func crashRunIn(t *testing.T, w *workload, opts filelog.Options, fsopts memfs.Options, k int64) (bool, error) {
	t.Helper()
	fs := memfs.New(fsopts)
	if k > 0 {
		fs.CrashAfter(k)
	}
	durable, attempted := 0, 0
	s, err := openStore(fs, opts)
	if err == nil {
		for i, o := range w.ops {
			attempted = i + 1
			if err = apply(s, o); err != nil {
				break
			}
			if opts.Sync == filelog.SyncAlways || o.kind == "commit" {
				durable = i + 1
			}
		}
		s.Close()
	}
	if k > 0 && err == nil {
		return false, nil
	}
	fs.Crash()
	s, err = openStore(fs, opts)
	if err != nil {
		return true, fmt.Errorf("reopen: %w", err)
	}
	if _, err := w.matchState(s, durable, attempted); err != nil {
		s.Close()
		return true, fmt.Errorf("after %d ops durable, %d attempted: %w", durable, attempted, err)
	}
	return true, writeAndReopen(fs, opts, s)
}

// writeAndReopen puts one key on the recovered store s, closes it and
// opens the directory again: recovery left it whole, so the write is
// there. It closes every store it opens.
func writeAndReopen(fs persist.FS, opts filelog.Options, s *engine.Store) error {
	rev, err := s.Put([]byte("after"), []byte("crash"))
	if err != nil {
		s.Close()
		return fmt.Errorf("write after recovery: %w", err)
	}
	if err := s.Close(); err != nil {
		return fmt.Errorf("close after recovery: %w", err)
	}
	s, err = openStore(fs, opts)
	if err != nil {
		return fmt.Errorf("second reopen: %w", err)
	}
	defer s.Close()
	if got := s.Rev(); got != rev {
		return fmt.Errorf("second reopen at revision %d, want %d", got, rev)
	}
	return nil
}

// writerScript is what one of several concurrent writers does: ops on its
// own keys (prefix "w<n>/"), and the state of those keys after each prefix
// of them.
type writerScript struct {
	prefix string
	ops    []op                // put, del, txn
	states []map[string]string // states[i] after ops[:i]
}

func newWriterScript(seed uint64, w, n int) *writerScript {
	rng := rand.New(rand.NewPCG(seed, uint64(w)))
	ws := &writerScript{prefix: fmt.Sprintf("w%d/", w)}
	key := func() []byte { return []byte(fmt.Sprintf("%sk%d", ws.prefix, rng.IntN(6))) }
	state := map[string]string{}
	ws.states = append(ws.states, maps.Clone(state))
	for i := range n {
		value := fmt.Sprintf("%d.%d", i, rng.IntN(1000))
		var o op
		switch r := rng.IntN(10); {
		case r < 6:
			o = op{kind: "put", key: key(), value: []byte(value)}
			state[string(o.key)] = string(o.value)
		case r < 8:
			o = op{kind: "del", key: key()}
			delete(state, string(o.key))
		default:
			o = op{kind: "txn"}
			for j := range 2 {
				t := op{kind: "put", key: key(), value: []byte(fmt.Sprintf("%s%c", value, 'a'+j))}
				o.txn = append(o.txn, t)
				state[string(t.key)] = string(t.value)
			}
		}
		ws.ops = append(ws.ops, o)
		ws.states = append(ws.states, maps.Clone(state))
	}
	return ws
}

// rangeOf returns the keys of s under prefix, with their values.
func rangeOf(s *engine.Store, prefix string) (map[string]string, error) {
	end := []byte(prefix)
	end[len(end)-1]++
	kvs, _, err := s.Range([]byte(prefix), end, 0, 0)
	if err != nil {
		return nil, err
	}
	got := map[string]string{}
	for _, kv := range kvs {
		got[string(kv.Key)] = string(kv.Value)
	}
	return got, nil
}

// match returns an error unless s holds, under the writer's prefix, the
// state after ops[:i] for some i in [lo, hi].
func (ws *writerScript) match(s *engine.Store, lo, hi int) error {
	got, err := rangeOf(s, ws.prefix)
	if err != nil {
		return err
	}
	for i := hi; i >= lo; i-- {
		if maps.Equal(got, ws.states[i]) {
			return nil
		}
	}
	return fmt.Errorf("writer %s: %v is no state after %d to %d of its ops (acknowledged %d: %v)", ws.prefix, got, lo, hi, lo, ws.states[lo])
}

// runWriters runs the scripts on s as concurrent writers (the first also
// compacts now and then), each until its first error, and returns how
// many ops of each were acknowledged and attempted.
func runWriters(s *engine.Store, scripts []*writerScript) (acked, attempted []int) {
	acked = make([]int, len(scripts))
	attempted = make([]int, len(scripts))
	var wg sync.WaitGroup
	for w, ws := range scripts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, o := range ws.ops {
				attempted[w] = i + 1
				if apply(s, o) != nil {
					return
				}
				acked[w] = i + 1
				if w == 0 && i%8 == 7 {
					err := s.Compact(s.Rev() - 2)
					if err != nil && !errors.Is(err, engine.ErrCompacted) {
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	return acked, attempted
}

// crashWritersRun runs the scripts as concurrent writers (runWriters) on
// a store that crashes at its k-th file operation, then recovers it: each
// writer's keys must be as after every op it had acknowledged and maybe
// some it attempted, never a state it did not reach in order. It returns
// whether the crash point was reached.
func crashWritersRun(scripts []*writerScript, opts filelog.Options, fsopts memfs.Options, k int64) (bool, error) {
	fs := memfs.New(fsopts)
	fs.CrashAfter(k)
	s, err := openStore(fs, opts)
	acked := make([]int, len(scripts))
	attempted := make([]int, len(scripts))
	if err == nil {
		acked, attempted = runWriters(s, scripts)
		s.Close()
	}
	if err == nil && slicesAll(acked, func(i, n int) bool { return n == len(scripts[i].ops) }) {
		return false, nil
	}
	fs.Crash()
	s, err = openStore(fs, opts)
	if err != nil {
		return true, fmt.Errorf("reopen: %w", err)
	}
	for w, ws := range scripts {
		if err := ws.match(s, acked[w], attempted[w]); err != nil {
			s.Close()
			return true, err
		}
	}
	return true, writeAndReopen(fs, opts, s)
}

func slicesAll(s []int, f func(i, n int) bool) bool {
	for i, n := range s {
		if !f(i, n) {
			return false
		}
	}
	return true
}

// TestCrashModelSweep crashes filelog stores at every file operation under
// each crash model: generated single-writer workloads (every kind of
// write, compactions, commits) under SyncAlways and SyncNone, and three
// concurrent writers under SyncAlways; small segments and frequent
// snapshots, so crashes fall in rotations and snapshot writes too. After
// each crash the store must open with every acknowledged write and
// nothing a writer did not do in order. At least 1,000 crash points per
// model.
func TestCrashModelSweep(t *testing.T) {
	for _, model := range crashModels {
		t.Run(model.String(), func(t *testing.T) {
			t.Parallel()
			fail := &failures{t: t, max: 5}
			points := map[string]int{}
			scale := sweepScale()
			for _, tc := range []struct {
				name  string
				sync  filelog.SyncPolicy
				seeds int
				ops   int
			}{
				{"always", filelog.SyncAlways, 9, 30},
				{"none", filelog.SyncNone, 3, 40},
			} {
				opts := tiny
				opts.Sync = tc.sync
				for seed := range uint64(tc.seeds * scale) {
					w := genWorkload(t, 1000+seed, tc.ops)
					for k, misses := int64(1), 0; misses < 3; k++ {
						fsopts := memfs.Options{Crash: model, Seed: seed<<32 | uint64(k)}
						reached, err := crashRunIn(t, w, opts, fsopts, k)
						if !reached {
							misses++ // the snapshotter may make a run take more ops or fewer
							continue
						}
						misses = 0
						points[tc.name]++
						if err != nil {
							fail.add(fmt.Errorf("%s, workload seed %d, crash at op %d (memfs seed %#x): %w", tc.name, 1000+seed, k, fsopts.Seed, err))
						}
					}
				}
			}
			for seed := range uint64(4 * scale) {
				scripts := make([]*writerScript, 3)
				for w := range scripts {
					scripts[w] = newWriterScript(seed, w, 12)
				}
				for k, misses := int64(1), 0; misses < 3 && k < 100_000; k++ {
					fsopts := memfs.Options{Crash: model, Seed: seed<<32 | uint64(k)}
					reached, err := crashWritersRun(scripts, tiny, fsopts, k)
					if !reached {
						misses++ // the scheduler may make a run take more ops or fewer
						continue
					}
					misses = 0
					points["writers"]++
					if err != nil {
						fail.add(fmt.Errorf("3 writers, seed %d, crash at op %d (memfs seed %#x): %w", seed, k, fsopts.Seed, err))
					}
				}
			}
			total := points["always"] + points["none"] + points["writers"]
			t.Logf("%s: %d crash points (%v)", model, total, points)
			if total < 1000 {
				t.Errorf("%s: swept %d crash points, want at least 1000", model, total)
			}
		})
	}
}

// TestCrashDuringRecovery crashes a workload (at sampled points), then
// crashes the recovery of that crash at each of its file operations
// (opening, repairing the tail, closing): the third open must still find
// every acknowledged write and a state the writer reached in order, and
// take writes. Recovery that rewrites or cuts a tail must be crash-safe
// itself.
func TestCrashDuringRecovery(t *testing.T) {
	for _, model := range crashModels {
		t.Run(model.String(), func(t *testing.T) {
			t.Parallel()
			fail := &failures{t: t, max: 5}
			points := 0
			for seed := range uint64(2 * sweepScale()) {
				w := genWorkload(t, 2000+seed, 30)
				for k1 := int64(2); ; k1 += 5 {
					img, durable, attempted, reached := crashImage(w, tiny, memfs.Options{Crash: model, Seed: seed<<32 | uint64(k1)}, k1)
					if !reached {
						break
					}
					for k2, misses := int64(1), 0; misses < 1; k2++ {
						reached, err := crashRecovery(w, img, k2, durable, attempted)
						if !reached {
							misses++
							continue
						}
						points++
						if err != nil {
							fail.add(fmt.Errorf("%s, workload seed %d crashed at op %d, its recovery at op %d: %w", model, 2000+seed, k1, k2, err))
						}
					}
				}
			}
			t.Logf("%s: %d crash points in recovery", model, points)
			if points < 100 {
				t.Errorf("%s: %d crash points in recovery, want at least 100", model, points)
			}
		})
	}
}

// crashImage runs w on a fresh memfs that crashes at its k-th operation,
// and returns the crashed FS with how many ops were durable and attempted;
// reached is false if w ended before op k.
func crashImage(w *workload, opts filelog.Options, fsopts memfs.Options, k int64) (img *memfs.FS, durable, attempted int, reached bool) {
	fs := memfs.New(fsopts)
	fs.CrashAfter(k)
	s, err := openStore(fs, opts)
	if err == nil {
		for i, o := range w.ops {
			attempted = i + 1
			if err = apply(s, o); err != nil {
				break
			}
			durable = i + 1 // opts.Sync is SyncAlways
		}
		s.Close()
	}
	if err == nil {
		return nil, 0, 0, false
	}
	fs.Crash()
	return fs, durable, attempted, true
}

// crashRecovery opens (and closes) a copy of img that crashes at its k-th
// operation, then opens it once more and checks it. It returns whether
// the crash point was reached.
func crashRecovery(w *workload, img *memfs.FS, k int64, durable, attempted int) (bool, error) {
	fs := img.Clone()
	fs.CrashAfter(k)
	s, err := openStore(fs, tiny)
	if err == nil {
		err = s.Close()
	}
	if k > 0 && err == nil {
		return false, nil
	}
	fs.Crash()
	s, err = openStore(fs, tiny)
	if err != nil {
		return true, fmt.Errorf("reopen: %w", err)
	}
	if _, err := w.matchState(s, durable, attempted); err != nil {
		s.Close()
		return true, fmt.Errorf("after %d ops durable, %d attempted: %w", durable, attempted, err)
	}
	return true, writeAndReopen(fs, tiny, s)
}
