package filelog_test

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"runtime"

	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/internal/leaktest"
	"github.com/revkv/revkv/kv"
	"github.com/revkv/revkv/persist"
	"github.com/revkv/revkv/persist/filelog"
	"github.com/revkv/revkv/persist/memfs"
)

// slowFS counts file syncs and makes each take a while, like a disk.
type slowFS struct {
	persist.FS
	delay time.Duration
	syncs atomic.Int64
}

type slowFile struct {
	persist.File
	fs *slowFS
}

func (f *slowFS) wrap(file persist.File, err error) (persist.File, error) {
	if err != nil {
		return nil, err
	}
	return slowFile{File: file, fs: f}, nil
}

func (f *slowFS) Create(name string) (persist.File, error) { return f.wrap(f.FS.Create(name)) }
func (f *slowFS) OpenReadWrite(name string) (persist.File, error) {
	return f.wrap(f.FS.OpenReadWrite(name))
}

func (f slowFile) Sync() error {
	f.fs.syncs.Add(1)
	time.Sleep(f.fs.delay)
	return f.File.Sync()
}

// openDir opens a store on a Log in dir with the default options.
func openDir(dir string) (*engine.Store, error) {
	l, err := filelog.Open(dir, filelog.Options{})
	if err != nil {
		return nil, err
	}
	return engine.Open(l, engine.Options{})
}

func TestOpenOnOSDirectory(t *testing.T) {
	dir := t.TempDir()
	s, err := openDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put([]byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if _, err := openDir(dir); !errors.Is(err, filelog.ErrLocked) || !errors.Is(err, persist.ErrLocked) {
		t.Fatalf("second open of a directory in use: %v, want ErrLocked", err)
	}
	want, _ := s.HashByRev(0)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = openDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, _ := s.HashByRev(0)
	kvs, _, _ := s.Range([]byte("k"), nil, 0, 0)
	if got != want || len(kvs) != 1 || string(kvs[0].Value) != "v" {
		t.Fatalf("reopened: %+v %v, want %+v", got, kvs, want)
	}
}

type index struct{ n atomic.Uint64 }

func (i *index) ConsistentIndex() uint64 { return i.n.Load() }

// TestConsistentIndexIsDurable: the index recorded with each write
// survives a restart, so replaying an applied log entry is a no-op.
func TestConsistentIndexIsDurable(t *testing.T) {
	fs := memfs.New(memfs.Options{})
	var ig index
	open := func() *engine.Store {
		l, err := filelog.Open("db", filelog.Options{FS: fs})
		if err != nil {
			t.Fatal(err)
		}
		s, err := engine.Open(l, engine.Options{ConsistentIndex: &ig})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open()
	ig.n.Store(5)
	s.Put([]byte("a"), []byte("1"))
	ig.n.Store(6)
	s.DeleteRange([]byte("nothing"), nil) // no change, but entry 6 is applied
	s.Close()
	fs.Crash()

	s = open()
	defer s.Close()
	if got := s.ConsistentIndex(); got != 6 {
		t.Fatalf("consistent index after restart = %d, want 6", got)
	}
	for _, i := range []uint64{5, 6} {
		ig.n.Store(i)
		if rev, err := s.Put([]byte("a"), []byte("again")); err != nil || rev != 2 {
			t.Fatalf("replayed entry %d: rev %d, %v; want skipped at 2", i, rev, err)
		}
	}
	ig.n.Store(7)
	if rev, err := s.Put([]byte("a"), []byte("2")); err != nil || rev != 3 {
		t.Fatalf("new entry: rev %d, %v", rev, err)
	}
}

// TestGroupCommit: concurrent writers share syncs. With a disk that takes
// a millisecond per sync, 8 writers doing 50 puts each need far fewer
// syncs than puts, and every put is durable when it returns.
func TestGroupCommit(t *testing.T) {
	mem := memfs.New(memfs.Options{})
	fs := &slowFS{FS: mem, delay: time.Millisecond}
	s, err := openStore(fs, filelog.Options{SnapshotRevs: -1})
	if err != nil {
		t.Fatal(err)
	}
	const writers, puts = 8, 50
	var wg sync.WaitGroup
	var done atomic.Int64
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range puts {
				if _, err := s.Put([]byte(fmt.Sprintf("w%d-%d", w, i)), []byte("v")); err != nil {
					t.Error(err)
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	syncs := fs.syncs.Load()
	t.Logf("%d puts, %d syncs", writers*puts, syncs)
	if syncs > writers*puts/2 {
		t.Errorf("%d syncs for %d puts: commits are not grouped", syncs, writers*puts)
	}
	// Each returned put was durable: a crash now loses none.
	mem.Crash()
	s2, err := openStore(mem, filelog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if got := s2.Rev(); got != 1+done.Load() {
		t.Fatalf("after crash at revision %d, want %d", got, 1+done.Load())
	}
}

// TestSyncPolicies: SyncNone leaves syncing to Commit; SyncInterval syncs
// by itself within its interval.
func TestSyncPolicies(t *testing.T) {
	t.Run("none", func(t *testing.T) {
		fs := &slowFS{FS: memfs.New(memfs.Options{})}
		s, err := openStore(fs, filelog.Options{Sync: filelog.SyncNone, SnapshotRevs: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		base := fs.syncs.Load()
		for i := range 100 {
			s.Put([]byte(fmt.Sprint(i)), nil)
		}
		if n := fs.syncs.Load() - base; n != 0 {
			t.Fatalf("%d syncs for 100 puts under SyncNone", n)
		}
		if err := s.Commit(); err != nil {
			t.Fatal(err)
		}
		if n := fs.syncs.Load() - base; n != 1 {
			t.Fatalf("%d syncs for a Commit", n)
		}
	})
	t.Run("interval", func(t *testing.T) {
		fs := &slowFS{FS: memfs.New(memfs.Options{})}
		s, err := openStore(fs, filelog.Options{Sync: filelog.SyncInterval, SyncInterval: 5 * time.Millisecond, SnapshotRevs: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		base := fs.syncs.Load()
		start := time.Now()
		if _, err := s.Put([]byte("k"), nil); err != nil {
			t.Fatal(err)
		}
		for fs.syncs.Load() == base {
			if time.Since(start) > 5*time.Second {
				t.Fatal("no sync within 5 s under a 5 ms interval")
			}
			time.Sleep(time.Millisecond)
		}
	})
}

// TestRestore: Restore rebuilds the same state from the directory, with
// snapshots and segments in it.
func TestRestore(t *testing.T) {
	fs := memfs.New(memfs.Options{})
	s, err := openStore(fs, tiny)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w := genWorkload(t, 3, 60)
	for i, o := range w.ops {
		if err := apply(s, o); err != nil {
			t.Fatal(err)
		}
		if i%10 == 9 {
			if err := s.Restore(); err != nil {
				t.Fatalf("Restore after op %d: %v", i, err)
			}
			if _, err := w.matchState(s, i+1, i+1); err != nil {
				t.Fatalf("after Restore at op %d: %v", i, err)
			}
		}
	}
}

// TestRetention: however many snapshots were taken, two remain, and the
// segments the older one covers are gone; the directory still opens to
// the same state, even with its newest snapshot removed.
func TestRetention(t *testing.T) {
	fs := memfs.New(memfs.Options{})
	s, l := mustOpen(t, "db", filelog.Options{FS: fs, SegmentSize: 256, SnapshotRevs: -1})
	for i := range 200 {
		s.Put([]byte(fmt.Sprintf("k%d", i%13)), []byte(fmt.Sprint(i)))
		if i%40 == 39 {
			if err := l.WriteSnapshot(); err != nil {
				t.Fatal(err)
			}
		}
	}
	want, _ := s.HashByRev(0)
	s.Close()
	segs, snaps := listDB(fs)
	if len(snaps) != 2 {
		t.Fatalf("snapshots kept: %v", snaps)
	}
	if segs[0] == "00000000000000000001.log" {
		t.Fatalf("no segment removed: %v", segs)
	}
	// Without the newest snapshot, the older one and the log still hold it all.
	if err := fs.Remove("db/" + snaps[1]); err != nil {
		t.Fatal(err)
	}
	s, err := openStore(fs, filelog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, _ := s.HashByRev(0); got != want {
		t.Fatalf("without the newest snapshot: %+v, want %+v", got, want)
	}
}

// listDB returns the names of the segments and snapshots in fs's "db".
func listDB(fs *memfs.FS) (segs, snaps []string) {
	names, _ := fs.List("db")
	for _, n := range names {
		switch {
		case strings.HasPrefix(n, "snap-"):
			snaps = append(snaps, n)
		case strings.HasSuffix(n, ".log"):
			segs = append(segs, n)
		}
	}
	return segs, snaps
}

// TestCoveredSegmentsNotRead: on open, segments whose every batch the
// loaded snapshot holds are not read (they are kept only for a fallback to
// an older snapshot): damage in one does not stop the open, which serves
// the snapshot's state; without the snapshot the same damage is found.
func TestCoveredSegmentsNotRead(t *testing.T) {
	fs := memfs.New(memfs.Options{})
	s, err := openStore(fs, filelog.Options{SegmentSize: 256, SnapshotRevs: -1})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		s.Put([]byte(fmt.Sprintf("k%d", i%13)), []byte(fmt.Sprint(i)))
	}
	s.Close()
	// A snapshot of all of it, written by a read-write reopen.
	s, l := mustOpen(t, "db", filelog.Options{FS: fs, SegmentSize: 256, SnapshotRevs: -1})
	if err := l.WriteSnapshot(); err != nil {
		t.Fatal(err)
	}
	want, _ := s.HashByRev(0)
	s.Close()
	segs, snaps := listDB(fs)
	if len(segs) < 4 || len(snaps) != 1 {
		t.Fatalf("segments %v, snapshots %v", segs, snaps)
	}
	damaged := "db/" + segs[1]
	if err := fs.FlipByte(damaged, 100); err != nil {
		t.Fatal(err)
	}
	s, err = openStore(fs, filelog.Options{SegmentSize: 256, SnapshotRevs: -1})
	if err != nil {
		t.Fatalf("open with a damaged segment the snapshot covers: %v", err)
	}
	if got, _ := s.HashByRev(0); got != want {
		t.Fatalf("hash %+v, want %+v", got, want)
	}
	s.Close()
	if err := fs.Remove("db/" + snaps[0]); err != nil {
		t.Fatal(err)
	}
	_, err = openStore(fs, filelog.Options{SegmentSize: 256, SnapshotRevs: -1})
	var de *filelog.DamageError
	if !errors.As(err, &de) || de.File != damaged {
		t.Fatalf("open without the snapshot: %v, want damage in %s", err, damaged)
	}
}

// TestCloseLeavesNothing: no goroutine outlives Close, and the lock is
// free again.
func TestCloseLeavesNothing(t *testing.T) {
	before := runtime.NumGoroutine()
	fs := memfs.New(memfs.Options{})
	for range 3 {
		s, err := openStore(fs, filelog.Options{Sync: filelog.SyncInterval, SnapshotRevs: 5})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 50 {
			s.Put([]byte(fmt.Sprint(i)), nil)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); !errors.Is(err, kv.ErrClosed) {
			t.Fatalf("second Close: %v", err)
		}
	}
	if after := leaktest.Settle(before); after > before {
		t.Fatalf("%d goroutines after Close, %d before", after, before)
	}
}

// TestReadOnly: a read-only open changes no file, not even a torn tail,
// serves reads, and refuses writes.
func TestReadOnly(t *testing.T) {
	fs := memfs.New(memfs.Options{})
	s, err := openStore(fs, filelog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Put([]byte("a"), []byte("1"))
	s.Close()
	names, _ := fs.List("db")
	segs, _ := listDB(fs)
	f, _ := fs.OpenReadWrite("db/" + segs[0])
	size, _ := f.Size()
	f.Seek(size, io.SeekStart)
	f.Write([]byte{7, 0, 0}) // a torn tail: a frame header cut short
	f.Close()
	image := fs.Clone()

	s, err = openStore(fs, filelog.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if kvs, _, _ := s.Range([]byte("a"), nil, 0, 0); len(kvs) != 1 {
		t.Fatalf("a durable write not served: %v", kvs)
	}
	if _, err := s.Put([]byte("b"), nil); !errors.Is(err, filelog.ErrReadOnly) || !errors.Is(err, kv.ErrStopped) {
		t.Fatalf("write to a read-only store: %v", err)
	}
	s.Close()
	after, _ := fs.List("db")
	if fmt.Sprint(after) != fmt.Sprint(names) {
		t.Fatalf("read-only open changed the directory: %v, was %v", after, names)
	}
	for _, n := range names {
		a, _ := readFile(fs, "db/"+n)
		b, _ := readFile(image, "db/"+n)
		if a != b {
			t.Fatalf("read-only open changed %s", n)
		}
	}
}

func readFile(fs *memfs.FS, name string) (string, error) {
	f, err := fs.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	size, _ := f.Size()
	b := make([]byte, size)
	_, err = f.ReadAt(b, 0)
	return string(b), err
}

// TestReopenAppends: a store opened again writes on at the end of its
// last segment, so opening it to write a little, again and again (as a
// script calling the CLI does), leaves one segment, which opens whole.
func TestReopenAppends(t *testing.T) {
	fs := memfs.New(memfs.Options{})
	for i := range 5 {
		s, err := openStore(fs, filelog.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if s.Rev() != int64(1+i) {
			t.Fatalf("open %d: revision %d", i, s.Rev())
		}
		if _, err := s.Put([]byte(fmt.Sprint(i)), nil); err != nil {
			t.Fatal(err)
		}
		s.Close()
		if i%2 == 1 {
			fs.Crash() // everything was synced: nothing is lost
		}
		if segs, _ := listDB(fs); len(segs) != 1 {
			t.Fatalf("open %d: segments %v", i, segs)
		}
	}
}

// TestInspectAndDump: Inspect describes each file and names the damaged
// one with its offset; Dump gives back every batch in order.
func TestInspectAndDump(t *testing.T) {
	fs, _ := flipDir(t)
	files, err := filelog.Inspect(fs, "db")
	if err != nil {
		t.Fatal(err)
	}
	var segs, snaps, batches int
	for _, f := range files {
		if f.Err != nil {
			t.Fatalf("%s: %v", f.Name, f.Err)
		}
		switch {
		case f.Segment != nil:
			segs++
			batches += f.Segment.Batches
			// A segment the flusher has just started (it rotates after
			// a group that fills one) has no frame yet; every other has
			// frames and their bytes.
			if f.Size <= 0 || (f.Segment.Frames > 0) != (f.Segment.RawBytes > 0) {
				t.Fatalf("%s: %+v", f.Name, *f.Segment)
			}
		case f.Snapshot != nil:
			snaps++
		}
	}
	if segs < 2 || snaps != 2 {
		t.Fatalf("%d segments, %d snapshots", segs, snaps)
	}
	var dumped []int64
	err = filelog.Dump(fs, "db", func(file string, off int64, b *persist.Batch) error {
		dumped = append(dumped, b.Rev)
		return nil
	})
	if err != nil || len(dumped) != batches {
		t.Fatalf("Dump: %d batches (Inspect counted %d): %v", len(dumped), batches, err)
	}

	// A directory in use cannot be inspected.
	s, err := openStore(fs, filelog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := filelog.Inspect(fs, "db"); !errors.Is(err, filelog.ErrLocked) {
		t.Fatalf("Inspect of a directory in use: %v", err)
	}
	s.Close()

	// Damage a byte in the middle of the second segment.
	name := files[1].Name
	off := files[1].Size / 2
	fs.FlipByte("db/"+name, off)
	files, err = filelog.Inspect(fs, "db")
	if err != nil {
		t.Fatal(err)
	}
	var de *filelog.DamageError
	if !errors.As(files[1].Err, &de) || de.File != "db/"+name || de.Offset > off {
		t.Fatalf("damage in %s at %d reported as %v", name, off, files[1].Err)
	}
	if err := filelog.Dump(fs, "db", func(string, int64, *persist.Batch) error { return nil }); !errors.As(err, &de) {
		t.Fatalf("Dump over damage: %v", err)
	}
}

// TestCloseDuringSnapshot: Close abandons a snapshot being written by a
// caller and returns only once it has stopped; the directory opens
// whole.
func TestCloseDuringSnapshot(t *testing.T) {
	mem := memfs.New(memfs.Options{})
	fs := &slowFS{FS: mem}
	s, l := mustOpen(t, "db", filelog.Options{FS: fs, SnapshotRevs: -1})
	for i := range 2000 {
		s.Put([]byte(fmt.Sprint(i)), make([]byte, 200))
	}
	want, _ := s.HashByRev(0)
	done := make(chan error)
	go func() { done <- l.WriteSnapshot() }()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Whether the snapshot finished, was abandoned, or had not started
	// (then it fails with kv.ErrClosed), nothing touches the directory after
	// Close.
	before, _ := mem.List("db")
	<-done
	after, _ := mem.List("db")
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatalf("files changed after Close: %v, then %v", before, after)
	}
	s, err := openStore(mem, filelog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, _ := s.HashByRev(0); got != want {
		t.Fatalf("after Close during a snapshot: %+v, want %+v", got, want)
	}
}

// TestCallsAfterClose: Sync, Wait, Append and WriteSnapshot on a closed
// Log return at once with an error.
func TestCallsAfterClose(t *testing.T) {
	fs := memfs.New(memfs.Options{})
	s, l := mustOpen(t, "db", filelog.Options{FS: fs})
	s.Put([]byte("k"), nil)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := l.Sync(); !errors.Is(err, kv.ErrClosed) {
			t.Errorf("Sync after Close: %v", err)
		}
		if err := l.Wait(99); !errors.Is(err, kv.ErrClosed) {
			t.Errorf("Wait after Close: %v", err)
		}
		if _, err := l.Append(&persist.Batch{Rev: 3}); !errors.Is(err, kv.ErrClosed) {
			t.Errorf("Append after Close: %v", err)
		}
		if err := l.WriteSnapshot(); !errors.Is(err, kv.ErrClosed) {
			t.Errorf("WriteSnapshot after Close: %v", err)
		}
		if err := l.Close(); !errors.Is(err, kv.ErrClosed) {
			t.Errorf("second Close: %v", err)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a call on a closed Log hangs")
	}
}
