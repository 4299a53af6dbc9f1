package raftstore

import (
	"errors"
	"fmt"
	"testing"

	"github.com/revkv/revkv/persist/memfs"
	"go.etcd.io/raft/v3/raftpb"
)

// faultRun runs w on a fresh memfs with fsopts on which arm injected a
// fault, until an op fails with it, and checks the failure is safe: the
// error says what failed, the store refuses every later change (so
// nothing is acknowledged on top of bytes the disk may not hold), and
// the directory recovers with everything acknowledged, both when the
// machine crashes right away (crashNow) and when this process reopens it
// first, writes more and crashes then. That second path is Linux's
// fsync failure: pages a failed fsync lost read back as written until
// the crash. It returns whether the fault was met.
func faultRun(w *workload, fsopts memfs.Options, arm func(*memfs.FS), crashNow bool) (bool, error) {
	fs := memfs.New(fsopts)
	arm(fs)
	acked, attempted := 0, 0
	s, err := Open(fs, "raft", sweepOpts)
	if err == nil {
		for i, o := range w.ops {
			attempted = i + 1
			if err = o.applyStore(s); err != nil {
				break
			}
			acked = i + 1
		}
		if err != nil {
			last, _ := s.LastIndex()
			if err := s.Save(hardState(99, 1, 0), []*raftpb.Entry{ent(last+1, 99, "refused")}); !errors.Is(err, ErrFailed) || !errors.Is(err, memfs.ErrInjected) {
				s.Close()
				return true, fmt.Errorf("a save after op %d failed: %v, want ErrFailed wrapping the fault", attempted, err)
			}
		}
		s.Close()
	}
	switch {
	case err == nil:
		// The fault hit nothing, or a sync the store needs not (after
		// removing files it no longer needs): it must still recover.
		fs.FailSync(0)
		fs.FailWrite(0)
		if crashNow {
			fs.Crash()
		}
		return false, checkRecovery(fs, w, acked, attempted)
	case !errors.Is(err, memfs.ErrInjected):
		return true, fmt.Errorf("op %d failed with %v, not the fault", attempted, err)
	}
	if crashNow {
		fs.Crash()
	}
	return true, checkRecovery(fs, w, acked, attempted)
}

// TestFaultSweep fails each Sync (under Linux's fsync semantics and under
// a filesystem that retries) and each Write of a workload in turn, and
// checks the store refuses to go on and recovers everything acknowledged.
func TestFaultSweep(t *testing.T) {
	w := genWorkload(7, 40)
	if long {
		w = genWorkload(7, 200)
	}
	faults := 0
	for _, tc := range []struct {
		name  string
		opts  memfs.Options
		arm   func(*memfs.FS, int64)
		syncs bool // arm counts syncs, not writes
	}{
		{"sync-linux", memfs.Options{LinuxSyncFailures: true, Crash: memfs.CrashTorn}, (*memfs.FS).FailSync, true},
		{"sync-retry", memfs.Options{Crash: memfs.CrashGrowFirst}, (*memfs.FS).FailSync, true},
		{"write", memfs.Options{Crash: memfs.CrashTorn}, (*memfs.FS).FailWrite, false},
	} {
		for _, crashNow := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/crash-now=%v", tc.name, crashNow), func(t *testing.T) {
				n, misses := 0, 0
				syncs, ops := countOps(w, tc.opts)
				bound := ops
				if tc.syncs {
					bound = syncs
				}
				for j := int64(1); j <= bound && misses < 30; j++ {
					opts := tc.opts
					opts.Seed = uint64(j)
					met, err := faultRun(w, opts, func(fs *memfs.FS) { tc.arm(fs, j) }, crashNow)
					if err != nil {
						t.Fatalf("fault at %d: %v", j, err)
					}
					if met {
						n, misses = n+1, 0
					} else {
						misses++ // past the last write, they all miss
					}
				}
				t.Logf("%d faults", n)
				faults += n
			})
		}
	}
	if faults < 300 {
		t.Errorf("injected %d faults, want at least 300", faults)
	}
}

// countOps returns how many syncs and file operations (more than its
// writes) w makes on a fresh memfs.
func countOps(w *workload, opts memfs.Options) (syncs, ops int64) {
	fs := memfs.New(opts)
	s, err := Open(fs, "raft", sweepOpts)
	if err != nil {
		panic(err)
	}
	for _, o := range w.ops {
		if err := o.applyStore(s); err != nil {
			panic(err)
		}
	}
	s.Close()
	return fs.Syncs(), fs.Ops()
}
