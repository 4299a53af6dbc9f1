package filelog_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/revkv/revkv/persist/filelog"
	"github.com/revkv/revkv/persist/memfs"
)

// crashRun runs w on a fresh memfs that crashes at its k-th file
// operation (k = 0: never), then recovers the store and checks it: every
// write reported durable is there, and the state is the reference state
// after some op at or past the last durable one (and not past the one
// that failed). It returns whether the crash point was reached.
func crashRun(t *testing.T, w *workload, opts filelog.Options, k int64) bool {
	t.Helper()
	reached, err := crashRunIn(t, w, opts, memfs.Options{Crash: memfs.CrashTorn, Seed: uint64(k)}, k)
	if err != nil {
		t.Fatalf("crash at op %d: %v", k, err)
	}
	return reached
}

// TestCrashSweep crashes a workload at every file operation, with torn
// writes, and checks each recovery. Per sync policy it sweeps every crash
// point of a few workloads, more than 1,000 in all.
func TestCrashSweep(t *testing.T) {
	total := 0
	for _, tc := range []struct {
		name  string
		sync  filelog.SyncPolicy
		seeds int
	}{
		{"always", filelog.SyncAlways, 5},
		{"none", filelog.SyncNone, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := tiny
			opts.Sync = tc.sync
			points := 0
			for seed := range uint64(tc.seeds) {
				w := genWorkload(t, seed, 100)
				crashRun(t, w, opts, 0) // no crash: the plain run recovers too
				for k := int64(1); crashRun(t, w, opts, k); k++ {
					points++
				}
			}
			t.Logf("%d crash points", points)
			total += points
		})
	}
	if total < 1000 {
		t.Errorf("swept %d crash points, want at least 1000", total)
	}
	t.Logf("crash points in all: %d", total)
}

// TestCrashConcurrentWriters crashes a store under 4 writers sharing
// group commits, at 300 points: every put that returned is there after
// recovery, and each writer's keys form a prefix of what it wrote (the log
// is a sequence; no later write survives without an earlier one).
func TestCrashConcurrentWriters(t *testing.T) {
	const writers = 4
	points := 0
	for k := int64(1); k <= 300; k++ {
		fs := memfs.New(memfs.Options{Crash: memfs.CrashTorn, Seed: uint64(k)})
		s, err := openStore(fs, tiny)
		if err != nil {
			t.Fatal(err)
		}
		fs.CrashAfter(k)
		acked := make([]int, writers)
		var wg sync.WaitGroup
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 200; i++ {
					if _, err := s.Put([]byte(fmt.Sprintf("w%d/%03d", w, i)), []byte(fmt.Sprint(i))); err != nil {
						return
					}
					acked[w] = i + 1
				}
			}()
		}
		wg.Wait()
		s.Close()
		fs.Crash()
		if slices.Min(acked) == 200 {
			t.Fatalf("crash at op %d: the workload ended before the crash", k)
		}
		s, err = openStore(fs, tiny)
		if err != nil {
			t.Fatalf("crash at op %d: reopen: %v", k, err)
		}
		for w := range writers {
			kvs, _, err := s.Range([]byte(fmt.Sprintf("w%d/", w)), []byte(fmt.Sprintf("w%d0", w)), 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(kvs) < acked[w] {
				t.Fatalf("crash at op %d: writer %d had %d puts acknowledged, %d survived", k, w, acked[w], len(kvs))
			}
			for i, kv := range kvs {
				if want := fmt.Sprintf("w%d/%03d", w, i); string(kv.Key) != want || string(kv.Value) != fmt.Sprint(i) {
					t.Fatalf("crash at op %d: writer %d: key %d is %s=%s, want %s: not a prefix", k, w, i, kv.Key, kv.Value, want)
				}
			}
		}
		s.Close()
		points++
	}
	t.Logf("%d crash points under %d concurrent writers", points, writers)
}
