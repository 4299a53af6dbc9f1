package filelog_test

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/persist"
	"github.com/revkv/revkv/persist/filelog"
	"github.com/revkv/revkv/persist/memfs"
)

// openLog opens a store on a Log of dir "db" of fsys and returns both
// (openStore, in workload_test.go, returns only the store; mustOpen fails
// the test on an error, where the sweeps need the error).
func openLog(fsys persist.FS, opts filelog.Options) (*engine.Store, *filelog.Log, error) {
	opts.FS = fsys
	l, err := filelog.Open("db", opts)
	if err != nil {
		return nil, nil, err
	}
	s, err := engine.Open(l, engine.Options{})
	if err != nil {
		return nil, nil, err
	}
	return s, l, nil
}

// syncTrace is a memfs that records each Sync and SyncDir (with the file
// or directory it syncs), so that a sweep can say which sync it failed,
// and fails the one its fail says to (on the memfs, so that its sync
// failure model applies).
type syncTrace struct {
	*memfs.FS
	mu    sync.Mutex
	syncs []string
	// fail, if set, is asked before each sync whether to fail it; created
	// lists the files created so far.
	fail    func(sync string, created []string) bool
	created []string
}

type tracedFile struct {
	persist.File
	tr   *syncTrace
	name string
}

// note records a sync and arms the memfs to fail it if fail says so.
func (tr *syncTrace) note(s string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.syncs = append(tr.syncs, s)
	if tr.fail != nil && tr.fail(s, tr.created) {
		tr.FS.FailSync(1)
	}
}

func (tr *syncTrace) wrap(name string, f persist.File, err error) (persist.File, error) {
	if err != nil {
		return nil, err
	}
	return tracedFile{File: f, tr: tr, name: name}, nil
}

func (tr *syncTrace) Create(name string) (persist.File, error) {
	f, err := tr.FS.Create(name)
	if err == nil {
		tr.mu.Lock()
		tr.created = append(tr.created, name)
		tr.mu.Unlock()
	}
	return tr.wrap(name, f, err)
}

func (tr *syncTrace) OpenReadWrite(name string) (persist.File, error) {
	f, err := tr.FS.OpenReadWrite(name)
	return tr.wrap(name, f, err)
}

func (tr *syncTrace) SyncDir(name string) error {
	tr.note("SyncDir " + name)
	return tr.FS.SyncDir(name)
}

func (f tracedFile) Sync() error {
	f.tr.note("Sync " + f.name)
	return f.File.Sync()
}

// faultOpts are the fault sweep's store options: segments rotate every
// dozen puts; snapshots are written by faultPuts only, so that one
// workload makes the same syncs in the same order every time.
var faultOpts = filelog.Options{SegmentSize: 512, SnapshotRevs: -1}

func faultKey(prefix string, i int) []byte { return []byte(fmt.Sprintf("%s%03d", prefix, i)) }
func faultValue(i int) []byte              { return []byte(fmt.Sprintf("value %d of the fault sweep", i)) }

// faultPuts puts prefix000, prefix001, ... (n of them) on s, writing a
// snapshot through l after every 8th, and stops at the first put that
// fails (a failed snapshot is only logged by the Log: puts go on). It
// returns how many puts were acknowledged.
func faultPuts(s *engine.Store, l *filelog.Log, prefix string, n int) int {
	for i := range n {
		if _, err := s.Put(faultKey(prefix, i), faultValue(i)); err != nil {
			return i
		}
		if i%8 == 7 {
			l.WriteSnapshot()
		}
	}
	return n
}

// checkPuts returns an error unless s holds the first n puts faultPuts
// made with prefix.
func checkPuts(s *engine.Store, prefix string, n int) error {
	for i := range n {
		kvs, _, err := s.Range(faultKey(prefix, i), nil, 0, 0)
		if err != nil {
			return err
		}
		if len(kvs) != 1 || string(kvs[0].Value) != string(faultValue(i)) {
			return fmt.Errorf("acknowledged put %s lost (of %d): got %v", faultKey(prefix, i), n, kvs)
		}
	}
	return nil
}

// crashNow crashes fs under the running store s: every operation from now
// fails (so Close writes nothing), then the power goes.
func crashNow(fs *memfs.FS, s *engine.Store) {
	fs.CrashAfter(1)
	s.Close()
	fs.Crash()
}

// faultSession is one run of a store in faultRun: the fail-th sync from
// its start fails (0: none), and it puts up to puts keys.
type faultSession struct {
	fail int64
	puts int
}

// faultRun runs sessions on a memfs with fsopts (Linux's fsync failure
// semantics): each opens the store (which may fail), puts keys with its
// own prefix (p, r, s, ...) until one fails, and closes it. Then a clean
// reopen must show every acknowledged put; it makes more acknowledged
// puts, and the power goes: the directory must open with every
// acknowledged put and what the clean reopen served. It returns whether
// every session met its failure.
func faultRun(fsopts memfs.Options, sessions []faultSession, more int) (bool, error) {
	fs := memfs.New(fsopts)
	acked := make([]int, len(sessions))
	prefix := func(i int) string { return string("prsuvw"[i]) }
	for i, ss := range sessions {
		base := fs.Syncs()
		fs.FailSync(ss.fail)
		if s, l, err := openLog(fs, faultOpts); err == nil {
			acked[i] = faultPuts(s, l, prefix(i), ss.puts)
			s.Close()
		}
		if fs.Syncs()-base < ss.fail {
			return false, nil
		}
	}
	checkAcked := func(s *engine.Store) error {
		var errs []error
		for i := range sessions {
			errs = append(errs, checkPuts(s, prefix(i), acked[i]))
		}
		return errors.Join(errs...)
	}
	s, l, err := openLog(fs, faultOpts)
	if err != nil {
		return true, fmt.Errorf("clean reopen after the failures: %w", err)
	}
	if err := checkAcked(s); err != nil {
		s.Close()
		return true, fmt.Errorf("clean reopen after the failures: %w", err)
	}
	seen := make([]map[string]string, len(sessions))
	for i := range sessions {
		if seen[i], err = rangeOf(s, prefix(i)); err != nil {
			s.Close()
			return true, err
		}
	}
	if n := faultPuts(s, l, "q", more); n < more {
		s.Close()
		return true, fmt.Errorf("after a clean reopen, put %d failed", n)
	}
	crashNow(fs, s)
	s, err = openStore(fs, faultOpts)
	if err != nil {
		return true, fmt.Errorf("puts acknowledged %v before the failures, %d after a clean reopen, then a crash: reopen: %w", acked, more, err)
	}
	errs := []error{checkAcked(s), checkPuts(s, "q", more)}
	for i := range sessions {
		errs = append(errs, sameAs(s, prefix(i), seen[i]))
	}
	if err := errors.Join(errs...); err != nil {
		s.Close()
		return true, fmt.Errorf("puts acknowledged %v before the failures, %d after a clean reopen, then a crash: %w", acked, more, err)
	}
	return true, writeAndReopen(fs, faultOpts, s)
}

// sameAs returns an error unless s holds, under prefix, what the clean
// reopen showed: a write that reads served, and that acknowledged writes
// followed, is not undone by a crash.
func sameAs(s *engine.Store, prefix string, seen map[string]string) error {
	got, err := rangeOf(s, prefix)
	if err != nil {
		return err
	}
	if !maps.Equal(got, seen) {
		return fmt.Errorf("under %s the clean reopen served %v, with acknowledged writes after it; after the crash %v", prefix, seen, got)
	}
	return nil
}

// faultWritersRun is faultRun for concurrent writers (runWriters) with
// snapshots in the background (tiny): the k-th sync fails; the clean
// reopen must show each writer's acknowledged ops, maybe some it
// attempted, in order; after more acknowledged puts and a crash, the
// writers' keys must be as the clean reopen showed them. It returns
// whether the k-th sync was reached.
func faultWritersRun(scripts []*writerScript, fsopts memfs.Options, k int64, more int) (bool, error) {
	fs := memfs.New(fsopts)
	fs.FailSync(k)
	acked := make([]int, len(scripts))
	attempted := make([]int, len(scripts))
	if s, err := openStore(fs, tiny); err == nil {
		acked, attempted = runWriters(s, scripts)
		s.Close()
	}
	if fs.Syncs() < k {
		return false, nil
	}
	s, l, err := openLog(fs, tiny)
	if err != nil {
		return true, fmt.Errorf("clean reopen after the failure: %w", err)
	}
	seen := make([]map[string]string, len(scripts))
	for w, ws := range scripts {
		err := ws.match(s, acked[w], attempted[w])
		if err == nil {
			seen[w], err = rangeOf(s, ws.prefix)
		}
		if err != nil {
			s.Close()
			return true, fmt.Errorf("clean reopen after the failure: %w", err)
		}
	}
	if n := faultPuts(s, l, "q", more); n < more {
		s.Close()
		return true, fmt.Errorf("after a clean reopen, put %d failed", n)
	}
	crashNow(fs, s)
	s, err = openStore(fs, tiny)
	if err != nil {
		return true, fmt.Errorf("after a clean reopen, %d puts, then a crash: reopen: %w", more, err)
	}
	errs := []error{checkPuts(s, "q", more)}
	for w, ws := range scripts {
		errs = append(errs, sameAs(s, ws.prefix, seen[w]))
	}
	if err := errors.Join(errs...); err != nil {
		s.Close()
		return true, fmt.Errorf("after a clean reopen, %d puts, then a crash: %w", more, err)
	}
	return true, writeAndReopen(fs, tiny, s)
}

// faultSyncs returns the syncs (file and directory) one fault-free
// session of faultRun's makes, in order.
func faultSyncs(t *testing.T, puts int) []string {
	tr := &syncTrace{FS: memfs.New(memfs.Options{})}
	s, l, err := openLog(tr, faultOpts)
	if err != nil {
		t.Fatal(err)
	}
	if n := faultPuts(s, l, "p", puts); n != puts {
		t.Fatalf("fault-free run: put %d failed", n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return tr.syncs
}

// TestFsyncFaultSweep fails each sync of a workload in turn (segment
// syncs, the syncs of a segment's header and its directory entry at
// rotation, of a snapshot and its entry, those of the first open) on a
// memfs with Linux's fsync failure semantics, under each crash model;
// then a clean reopen, 5 acknowledged puts and a crash: every
// acknowledged put must survive, and the directory must open, holding
// what the clean reopen served. The workload is one writer with
// snapshots at set points (the same syncs in the same order each run),
// then three concurrent writers with background snapshots.
func TestFsyncFaultSweep(t *testing.T) {
	const puts, more = 40, 5
	labels := faultSyncs(t, puts)
	for _, model := range append([]memfs.CrashModel{memfs.CrashDrop}, crashModels...) {
		t.Run(model.String(), func(t *testing.T) {
			t.Parallel()
			fail := &failures{t: t, max: 5}
			runs := 0
			for seed := range uint64(sweepScale()) {
				for k := int64(1); ; k++ {
					fsopts := memfs.Options{LinuxSyncFailures: true, Crash: model, Seed: seed<<32 | uint64(k)}
					met, err := faultRun(fsopts, []faultSession{{k, puts}}, more)
					if !met {
						break
					}
					runs++
					if err != nil {
						label := "?"
						if int(k) <= len(labels) {
							label = labels[k-1]
						}
						fail.add(fmt.Errorf("sync %d (%s) failed, memfs seed %#x: %w", k, label, fsopts.Seed, err))
					}
				}
			}
			if runs < len(labels) {
				t.Errorf("%d fault runs, fewer than the %d syncs of a fault-free run", runs, len(labels))
			}
			writerRuns := 0
			for seed := range uint64(2 * sweepScale()) {
				scripts := make([]*writerScript, 3)
				for w := range scripts {
					scripts[w] = newWriterScript(100+seed, w, 12)
				}
				for k, misses := int64(1), 0; misses < 3; k++ {
					fsopts := memfs.Options{LinuxSyncFailures: true, Crash: model, Seed: seed<<32 | uint64(k)}
					met, err := faultWritersRun(scripts, fsopts, k, more)
					if !met {
						misses++ // the scheduler may make a run take more syncs or fewer
						continue
					}
					misses = 0
					writerRuns++
					if err != nil {
						fail.add(fmt.Errorf("3 writers, seed %d, sync %d failed, memfs seed %#x: %w", 100+seed, k, fsopts.Seed, err))
					}
				}
			}
			t.Logf("%s: %d fault runs of one writer (%d syncs in a fault-free run), %d of 3 writers", model, runs, len(labels), writerRuns)
		})
	}
}

// TestFsyncFaultDuringRecovery fails a sync of a workload (every 7th in
// turn; every one in the long run), then, in the next open, each sync of the recovery and of 3 puts
// in turn, under each crash model: recovery that repairs what a failed
// sync left must survive a failed sync of its own. Then as in
// TestFsyncFaultSweep: a clean reopen, puts, a crash.
func TestFsyncFaultDuringRecovery(t *testing.T) {
	const puts, more = 40, 5
	for _, model := range append([]memfs.CrashModel{memfs.CrashDrop}, crashModels...) {
		t.Run(model.String(), func(t *testing.T) {
			t.Parallel()
			fail := &failures{t: t, max: 5}
			runs := 0
			step := int64(7)
			if sweepScale() > 1 {
				step = 1
			}
			for k1 := int64(1); ; k1 += step {
				k1runs := 0
				for k2 := int64(1); ; k2++ {
					fsopts := memfs.Options{LinuxSyncFailures: true, Crash: model, Seed: uint64(k1)<<32 | uint64(k2)}
					met, err := faultRun(fsopts, []faultSession{{k1, puts}, {k2, 3}}, more)
					if !met {
						break
					}
					k1runs++
					if err != nil {
						fail.add(fmt.Errorf("sync %d failed, then sync %d of the next open, memfs seed %#x: %w", k1, k2, fsopts.Seed, err))
					}
				}
				if k1runs == 0 {
					break
				}
				runs += k1runs
			}
			t.Logf("%s: %d runs with a failed sync in the recovery after a failed sync", model, runs)
			if runs < 100 {
				t.Errorf("%d runs, want at least 100", runs)
			}
		})
	}
}

// TestIssue11FailedDirSyncAtRotation is issue 11's first scenario: the
// directory sync that makes a new segment's entry durable fails at
// rotation; the store is closed and reopened cleanly, a Put is
// acknowledged, and the power goes. The Put must survive.
func TestIssue11FailedDirSyncAtRotation(t *testing.T) {
	const puts = 40
	seg2 := "db/" + fmt.Sprintf("%020d.log", 2)
	failed := false
	fs := &syncTrace{FS: memfs.New(memfs.Options{LinuxSyncFailures: true})}
	fs.fail = func(sync string, created []string) bool {
		if failed || sync != "SyncDir db" || !slices.Contains(created, seg2) {
			return false
		}
		failed = true // the first directory sync once segment 2 exists
		return true
	}
	s, l, err := openLog(fs, faultOpts)
	if err != nil {
		t.Fatal(err)
	}
	acked := faultPuts(s, l, "p", puts)
	fs.mu.Lock()
	wasFailed := failed
	fs.mu.Unlock()
	if !wasFailed || acked == puts {
		t.Fatalf("the directory sync at rotation to segment 2 failed no put (failed %v, %d puts acknowledged)", wasFailed, acked)
	}
	s.Close()

	s, err = openStore(fs, faultOpts)
	if err != nil {
		t.Fatalf("clean reopen: %v", err)
	}
	if _, err := s.Put([]byte("acked"), []byte("after the reopen")); err != nil {
		t.Fatalf("put after the reopen: %v", err)
	}
	crashNow(fs.FS, s)

	s, err = openStore(fs, faultOpts)
	if err != nil {
		t.Fatalf("reopen after the crash: %v", err)
	}
	defer s.Close()
	if err := checkPuts(s, "p", acked); err != nil {
		t.Error(err)
	}
	if kvs, _, err := s.Range([]byte("acked"), nil, 0, 0); err != nil || len(kvs) != 1 {
		t.Errorf("the put acknowledged after the reopen is lost: %v, %v", kvs, err)
	}
}

// TestIssue11Fsyncgate is issue 11's second scenario, under Linux's fsync
// failure semantics: puts until a segment sync fails; a clean reopen
// (recovery rereads the failed tail from the page cache, and syncing it is
// a no-op); 20 acknowledged puts; a crash. The directory must open with
// all of them.
func TestIssue11Fsyncgate(t *testing.T) {
	opts := filelog.Options{SnapshotRevs: -1} // one segment: no rotation
	var armed, failed bool
	fs := &syncTrace{FS: memfs.New(memfs.Options{LinuxSyncFailures: true})}
	fs.fail = func(sync string, created []string) bool {
		if !armed || failed || !strings.HasSuffix(sync, ".log") {
			return false
		}
		failed = true // the first segment sync once armed
		return true
	}
	s, l, err := openLog(fs, opts)
	if err != nil {
		t.Fatal(err)
	}
	if n := faultPuts(s, l, "p", 4); n != 4 {
		t.Fatalf("put %d failed", n)
	}
	fs.mu.Lock()
	armed = true
	fs.mu.Unlock()
	failedAt := faultPuts(s, l, "r", 100)
	if failedAt == 100 {
		t.Fatal("no put failed after the segment sync was armed to fail")
	}
	s.Close()

	s, l, err = openLog(fs, opts)
	if err != nil {
		t.Fatalf("clean reopen: %v", err)
	}
	if err := errors.Join(checkPuts(s, "p", 4), checkPuts(s, "r", failedAt)); err != nil {
		t.Fatalf("clean reopen: %v", err)
	}
	if n := faultPuts(s, l, "q", 20); n != 20 {
		t.Fatalf("put %d after the reopen failed", n)
	}
	crashNow(fs.FS, s)

	s, err = openStore(fs, opts)
	if err != nil {
		t.Fatalf("reopen after the crash (20 puts acknowledged since the clean reopen): %v", err)
	}
	defer s.Close()
	if err := errors.Join(checkPuts(s, "p", 4), checkPuts(s, "r", failedAt), checkPuts(s, "q", 20)); err != nil {
		t.Error(err)
	}
}

// TestSyncTraceLabels pins what the fault sweep fails: its workload
// syncs segments, their headers and entries at rotation, snapshots and
// theirs.
func TestSyncTraceLabels(t *testing.T) {
	var segDir, snapDir, snaps int
	labels := faultSyncs(t, 40)
	for i, s := range labels {
		switch {
		case strings.HasSuffix(s, ".tmp"):
			snaps++
		case s == "SyncDir db" && strings.HasSuffix(labels[i-1], ".tmp"):
			snapDir++
		case s == "SyncDir db":
			segDir++
		}
	}
	if segDir < 3 || snapDir < 3 || snaps < 3 {
		t.Fatalf("syncs of the fault workload: %d segment entries, %d snapshots, %d snapshot entries: %v", segDir, snaps, snapDir, labels)
	}
}
