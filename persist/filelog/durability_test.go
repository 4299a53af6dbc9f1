package filelog_test

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/kv"
	"github.com/revkv/revkv/persist"
	"github.com/revkv/revkv/persist/filelog"
	"github.com/revkv/revkv/persist/memfs"
	"github.com/revkv/revkv/snapshot"
)

// historyDir makes a store with several segments and two snapshots (each
// after part of the log), closed cleanly.
func historyDir(t *testing.T) *memfs.FS {
	t.Helper()
	fs := memfs.New(memfs.Options{})
	s, l := mustOpen(t, "db", filelog.Options{FS: fs, SegmentSize: 300, SnapshotRevs: -1})
	for i := range 60 {
		if _, err := s.Put([]byte(fmt.Sprintf("k%02d", i%17)), []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
		if i == 20 || i == 40 {
			if err := l.WriteSnapshot(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return fs
}

// cutFile truncates name to size.
func cutFile(t *testing.T, fsys persist.FS, name string, size int64) {
	t.Helper()
	f, err := fsys.OpenReadWrite(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
}

// frameEnds returns the offsets where the segment's groups end, from Dump.
func groupStarts(t *testing.T, fsys persist.FS, seg string) []int64 {
	t.Helper()
	var offs []int64
	err := filelog.Dump(fsys, "db", func(file string, off int64, b *persist.Batch) error {
		if file == seg && !slices.Contains(offs, off) {
			offs = append(offs, off)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return offs
}

// TestManifestFindsMissingFiles: damage that used to open silently, or
// fail with a message naming the wrong file, is a DamageError naming the
// file, from open and from a read-only open (verify's dry run) alike.
func TestManifestFindsMissingFiles(t *testing.T) {
	base := historyDir(t)
	segs, snaps := listDB(base)
	if len(segs) < 4 || len(snaps) != 2 {
		t.Fatalf("segments %v, snapshots %v", segs, snaps)
	}
	last, middle := "db/"+segs[len(segs)-1], "db/"+segs[len(segs)-2]
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, fs *memfs.FS)
		file   string // the file the error names
	}{
		{"newest segment removed", func(t *testing.T, fs *memfs.FS) { fs.Remove(last) }, last},
		{"newest segment renamed away", func(t *testing.T, fs *memfs.FS) { fs.Rename(last, "db/old.log.bak") }, last},
		{"all segments removed", func(t *testing.T, fs *memfs.FS) {
			for _, s := range segs {
				fs.Remove("db/" + s)
			}
		}, "db/" + segs[0]},
		{"middle segment removed", func(t *testing.T, fs *memfs.FS) { fs.Remove(middle) }, middle},
		{"both snapshots removed", func(t *testing.T, fs *memfs.FS) {
			fs.Remove("db/" + snaps[0])
			fs.Remove("db/" + snaps[1])
		}, "db/" + snaps[1]},
		{"middle segment cut at a group boundary", func(t *testing.T, fs *memfs.FS) {
			offs := groupStarts(t, fs, segs[len(segs)-2])
			cutFile(t, fs, middle, offs[len(offs)-1])
		}, middle},
		{"newest segment cut at a group boundary", func(t *testing.T, fs *memfs.FS) {
			offs := groupStarts(t, fs, segs[len(segs)-1])
			cutFile(t, fs, last, offs[len(offs)-1])
		}, last},
		{"manifest removed", func(t *testing.T, fs *memfs.FS) { fs.Remove("db/MANIFEST") }, "db/MANIFEST"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := base.Clone()
			tc.damage(t, fs)
			var msgs []string
			for _, ro := range []bool{true, false} {
				_, err := openStore(fs, filelog.Options{SegmentSize: 300, SnapshotRevs: -1, ReadOnly: ro})
				var de *filelog.DamageError
				if !errors.As(err, &de) || !errors.Is(err, kv.ErrCorrupt) {
					t.Fatalf("read-only %v: open: %v, want a DamageError", ro, err)
				}
				if de.File != tc.file {
					t.Fatalf("read-only %v: %v names %s, want %s", ro, err, de.File, tc.file)
				}
				msgs = append(msgs, err.Error())
			}
			if msgs[0] != msgs[1] {
				t.Fatalf("read-only open says %q, open says %q", msgs[0], msgs[1])
			}
		})
	}
}

// TestForeignFiles: a snapshot or segment of another store, numbered to
// be taken for the newest, is refused with ErrForeign; a user's file that
// only looks like ours (notes.tmp) is left alone.
func TestForeignFiles(t *testing.T) {
	other := historyDir(t)
	_, otherSnaps := listDB(other)
	otherSegs, _ := listDB(other)
	for _, tc := range []struct{ from, to string }{
		{otherSnaps[1], "snap-00000000000000000099.snap"},
		{otherSegs[len(otherSegs)-1], "00000000000000000099.log"},
	} {
		fs := historyDir(t)
		copyFile(t, other, "db/"+tc.from, fs, "db/"+tc.to)
		_, err := openStore(fs, filelog.Options{})
		var de *filelog.DamageError
		if !errors.Is(err, filelog.ErrForeign) || !errors.As(err, &de) || de.File != "db/"+tc.to {
			t.Fatalf("%s copied in as %s: %v, want ErrForeign naming it", tc.from, tc.to, err)
		}
	}

	fs := historyDir(t)
	for _, name := range []string{"notes.tmp", "x.log.tmp", "MANIFEST.old.tmp"} {
		f, _ := fs.Create("db/" + name)
		f.Close()
	}
	f, _ := fs.Create("db/snap-00000000000000000099.snap.tmp") // ours: removed
	f.Close()
	s, err := openStore(fs, filelog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	names, _ := fs.List("db")
	for _, name := range []string{"notes.tmp", "x.log.tmp", "MANIFEST.old.tmp"} {
		if !slices.Contains(names, name) {
			t.Fatalf("%s removed: %v", name, names)
		}
	}
	if slices.Contains(names, "snap-00000000000000000099.snap.tmp") {
		t.Fatalf("our temporary file left: %v", names)
	}
}

func copyFile(t *testing.T, from persist.FS, src string, to persist.FS, dst string) {
	t.Helper()
	r, err := from.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	w, err := to.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := io.Copy(w, r); err != nil {
		t.Fatal(err)
	}
}

// TestRevisionLimit: a store at revision MaxInt64 opens, refuses the next
// write before it reaches the log, and opens again.
func TestRevisionLimit(t *testing.T) {
	fs := memfs.New(memfs.Options{})
	pr, pw := io.Pipe()
	go func() {
		w, err := snapshot.NewWriter(pw, snapshot.Header{Rev: math.MaxInt64, CompactRev: math.MaxInt64 - 1})
		if err == nil {
			err = w.Base(&snapshot.Entry{Key: []byte("k"), Value: []byte("v"), Main: math.MaxInt64 - 1, Create: math.MaxInt64 - 1, Version: 1})
		}
		for i, rev := range []int64{math.MaxInt64 - 1, math.MaxInt64} {
			if err == nil {
				err = w.Event(&snapshot.Entry{Key: []byte("k"), Value: []byte("v"), Main: rev, Create: math.MaxInt64 - 1, Version: int64(i + 1)})
			}
		}
		if err == nil {
			err = w.Finish(1)
		}
		pw.CloseWithError(err)
	}()
	if err := filelog.LoadSnapshot(fs, "db", pr); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		s, err := openStore(fs, filelog.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if s.Rev() != math.MaxInt64 {
			t.Fatalf("revision %d", s.Rev())
		}
		if _, err := s.Put([]byte("k"), []byte("v")); !errors.Is(err, filelog.ErrRevision) {
			t.Fatalf("put past MaxInt64: %v, want ErrRevision", err)
		}
		s.Close()
	}
}

// TestOneStorePerLog: a Log serves one store; the second engine.Open on
// it fails, and the first store goes on (and restores) unharmed.
func TestOneStorePerLog(t *testing.T) {
	fs := memfs.New(memfs.Options{})
	l, err := filelog.Open("db", filelog.Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Wait(1); !errors.Is(err, filelog.ErrNotRecovered) {
		t.Fatalf("Wait before Recover: %v, want ErrNotRecovered", err)
	}
	s, err := engine.Open(l, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := engine.Open(l, engine.Options{}); !errors.Is(err, filelog.ErrInUse) {
		t.Fatalf("second Open on one Log: %v, want ErrInUse", err)
	}
	if _, err := s.Put([]byte("a"), []byte("1")); err != nil {
		t.Fatalf("first store after the refused Open: %v", err)
	}
	if err := s.Restore(); err != nil {
		t.Fatalf("Restore: %v", err)
	}

	l2, err := filelog.Open("db2", filelog.Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	l2.Close()
	done := make(chan error)
	go func() { done <- l2.Wait(1) }()
	select {
	case err := <-done:
		if !errors.Is(err, kv.ErrClosed) {
			t.Fatalf("Wait after Close: %v, want kv.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait on a Log closed before Recover did not return")
	}
}

// readOnlyFS is a filesystem mounted read-only: every change fails.
type readOnlyFS struct{ *memfs.FS }

func erofs(op, name string) error { return &fs.PathError{Op: op, Path: name, Err: syscall.EROFS} }

func (f readOnlyFS) Create(name string) (persist.File, error)        { return nil, erofs("create", name) }
func (f readOnlyFS) OpenReadWrite(name string) (persist.File, error) { return nil, erofs("open", name) }
func (f readOnlyFS) Rename(o, n string) error                        { return erofs("rename", o) }
func (f readOnlyFS) Remove(name string) error                        { return erofs("remove", name) }
func (f readOnlyFS) MkdirAll(name string) error                      { return erofs("mkdir", name) }
func (f readOnlyFS) SyncDir(name string) error                       { return erofs("sync", name) }
func (f readOnlyFS) Lock(name string) (io.Closer, error)             { return nil, erofs("lock", name) }

// TestReadOnlyOpens: read-only opens work on a read-only filesystem,
// beside each other, but not beside a writer; on an empty or missing
// directory they create nothing.
func TestReadOnlyOpens(t *testing.T) {
	mem := historyDir(t)
	ro := readOnlyFS{mem}
	var stores []*engine.Store
	for range 2 {
		s, err := openStore(ro, filelog.Options{ReadOnly: true})
		if err != nil {
			t.Fatalf("read-only open on a read-only filesystem: %v", err)
		}
		stores = append(stores, s)
	}
	if stores[0].Rev() != stores[1].Rev() || stores[0].Rev() < 60 {
		t.Fatalf("revisions %d, %d", stores[0].Rev(), stores[1].Rev())
	}
	if _, err := openStore(mem, filelog.Options{}); !errors.Is(err, filelog.ErrLocked) {
		t.Fatalf("writer beside readers: %v, want ErrLocked", err)
	}
	for _, s := range stores {
		s.Close()
	}
	w, err := openStore(mem, filelog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := openStore(mem, filelog.Options{ReadOnly: true}); !errors.Is(err, filelog.ErrLocked) {
		t.Fatalf("reader beside a writer: %v, want ErrLocked", err)
	}
	w.Close()

	// On the OS: an empty directory stays empty, a missing one missing.
	dir := t.TempDir()
	l, err := filelog.Open(dir, filelog.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := filelog.Inspect(persist.OS, dir); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if names, _ := os.ReadDir(dir); len(names) != 0 {
		t.Fatalf("read-only open created %v", names)
	}
	missing := filepath.Join(dir, "nothing")
	if _, err := filelog.Open(missing, filelog.Options{ReadOnly: true}); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("read-only open of a missing directory: %v", err)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Fatalf("read-only open created %s", missing)
	}

	// Two read-only Logs on the OS beside each other, after a writer.
	s, _ := mustOpen(t, dir, filelog.Options{})
	s.Put([]byte("a"), []byte("1"))
	s.Close()
	l1, err1 := filelog.Open(dir, filelog.Options{ReadOnly: true})
	l2, err2 := filelog.Open(dir, filelog.Options{ReadOnly: true})
	if err1 != nil || err2 != nil {
		t.Fatalf("two read-only opens: %v, %v", err1, err2)
	}
	if _, err := filelog.Open(dir, filelog.Options{}); !errors.Is(err, filelog.ErrLocked) {
		t.Fatalf("writer beside readers on the OS: %v, want ErrLocked", err)
	}
	l1.Close()
	l2.Close()
}

// opCounter counts the files a filesystem creates.
type opCounter struct {
	*memfs.FS
	creates []string
}

func (c *opCounter) Create(name string) (persist.File, error) {
	c.creates = append(c.creates, name)
	return c.FS.Create(name)
}

// TestCleanReopenIsCheap: reopening a store that was closed cleanly
// writes no file; after a crash, the open rewrites the last segment
// (the tail it appends after) before it takes a write.
func TestCleanReopenIsCheap(t *testing.T) {
	mem := historyDir(t)
	c := &opCounter{FS: mem}
	s, err := openStore(c, filelog.Options{SegmentSize: 300, SnapshotRevs: -1})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.creates) != 0 {
		t.Fatalf("a clean reopen created %v", c.creates)
	}
	if _, err := s.Put([]byte("x"), []byte("y")); err != nil {
		t.Fatal(err)
	}
	mem.Crash() // Close was never called: no record of a clean close
	s.Close()
	c.creates = nil
	s, err = openStore(c, filelog.Options{SegmentSize: 300, SnapshotRevs: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rewrote := false
	for _, name := range c.creates {
		rewrote = rewrote || strings.HasSuffix(name, ".log.tmp")
	}
	if !rewrote {
		t.Fatalf("an open after a crash created %v, no rewritten segment", c.creates)
	}
	if kvs, _, _ := s.Range([]byte("x"), nil, 0, 0); len(kvs) != 1 {
		t.Fatalf("acknowledged put lost: %v", kvs)
	}
}

func diskBytes(t *testing.T, dir string) int64 {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, e := range entries {
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // renamed or removed since the listing (MANIFEST.tmp)
		}
		if err != nil {
			t.Fatal(err)
		}
		total += fi.Size()
	}
	return total
}

// TestCompactionReclaimsDisk: compacting a store of long histories gives
// its disk back with no other call: the snapshot the compaction starts
// makes every older file removable, and they are removed. The figures are
// the README's (REVKV_LONG_SWEEP=1 runs the README's 200,000 puts; the
// default run a tenth of that).
func TestCompactionReclaimsDisk(t *testing.T) {
	keys, puts := 100, 20_000
	if os.Getenv("REVKV_LONG_SWEEP") != "" {
		keys, puts = 1000, 200_000
	}
	dir := t.TempDir()
	s, _ := mustOpen(t, dir, filelog.Options{Sync: filelog.SyncNone})
	for i := range puts {
		if _, err := s.Put([]byte(fmt.Sprintf("key%04d", i%keys)), benchValue(uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	before := diskBytes(t, dir)

	s, _ = mustOpen(t, dir, filelog.Options{Sync: filelog.SyncNone})
	if err := s.Compact(s.Rev()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for diskBytes(t, dir) > before/10 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	after := diskBytes(t, dir)
	t.Logf("%d puts on %d keys: %d bytes on disk before Compact, %d after", puts, keys, before, after)
	if after > before/10 {
		t.Fatalf("disk %d bytes after compaction, %d before", after, before)
	}
	s, _ = mustOpen(t, dir, filelog.Options{})
	defer s.Close()
	if kvs, _, _ := s.Range([]byte(fmt.Sprintf("key%04d", keys-1)), nil, 0, 0); len(kvs) != 1 || kvs[0].Version != int64(puts/keys) {
		t.Fatalf("after reopening the compacted store: %v", kvs)
	}
}

// TestLegacyDirectory: a directory written before manifests and store
// identities (testdata/legacy-v1: 50 puts on 7 keys in 400-byte segments,
// a snapshot at revision 32) opens read-only unchanged, then read-write,
// which gives it a manifest and an identity for what it writes next; it
// opens again with both kinds of files.
func TestLegacyDirectory(t *testing.T) {
	dir := copyLegacy(t)
	check := func(s *engine.Store, rev int64) {
		t.Helper()
		if s.Rev() != rev {
			t.Fatalf("revision %d, want %d", s.Rev(), rev)
		}
		h, err := s.HashByRev(51)
		if err != nil || h.Hash != 3701410136 {
			t.Fatalf("hash at 51: %+v, %v (written by the old code: 3701410136)", h, err)
		}
	}
	for _, ro := range []bool{true, false} {
		s, _ := mustOpen(t, dir, filelog.Options{ReadOnly: ro, SegmentSize: 400})
		check(s, 51)
		if !ro {
			if _, err := s.Put([]byte("new"), []byte("v")); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "MANIFEST")); err != nil {
		t.Fatalf("no manifest after a read-write open: %v", err)
	}
	files, err := filelog.Inspect(persist.OS, dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if f.Err != nil {
			t.Fatalf("%s: %v", f.Name, f.Err)
		}
	}
	s, _ := mustOpen(t, dir, filelog.Options{SegmentSize: 400})
	check(s, 52)
	// A compaction's snapshot removes the old files; one that a crash
	// brings back (the removal was not synced) is a leftover, not a
	// foreign file.
	old, err := os.ReadFile(filepath.Join(dir, "00000000000000000001.log"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Compact(s.Rev()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(dir, "00000000000000000001.log")); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("old segments not removed after Compact")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "00000000000000000001.log"), old, 0o644); err != nil {
		t.Fatal(err)
	}
	s, _ = mustOpen(t, dir, filelog.Options{SegmentSize: 400})
	defer s.Close()
	if kvs, _, _ := s.Range([]byte("new"), nil, 0, 0); s.Rev() != 52 || len(kvs) != 1 {
		t.Fatalf("after the compaction: revision %d, %v", s.Rev(), kvs)
	}
	if _, err := os.Stat(filepath.Join(dir, "00000000000000000001.log")); !os.IsNotExist(err) {
		t.Fatalf("the leftover old segment was not removed: %v", err)
	}
}

// TestMarkFindsCutTail: while a store runs, the manifest's mark follows
// the synced log every quarter segment, so the newest segment cut below
// it is found even after a crash (no clean close to say where it ended).
func TestMarkFindsCutTail(t *testing.T) {
	fs := memfs.New(memfs.Options{})
	opts := filelog.Options{SegmentSize: 64 << 10, SnapshotRevs: -1}
	s, err := openStore(fs, opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 250 { // about 45 KiB of log (178 B a put): past two marks
		if _, err := s.Put([]byte(fmt.Sprintf("k%03d", i)), benchValue(uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	fs.Crash()
	s.Close()
	segs, _ := listDB(fs)
	last := "db/" + segs[len(segs)-1]
	cutFile(t, fs, last, 8<<10)
	_, err = openStore(fs, opts)
	var de *filelog.DamageError
	if !errors.As(err, &de) || de.File != last || !strings.Contains(err.Error(), "durable") {
		t.Fatalf("newest segment cut below the mark: %v, want a DamageError naming %s", err, last)
	}
}

// copyLegacy copies testdata/legacy-v1 to a new directory.
func copyLegacy(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	entries, err := os.ReadDir("testdata/legacy-v1")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("testdata/legacy-v1", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestLegacyTornHeader: a directory from before manifests whose newest
// segment is a torn header (a crash while it was created) opens: that
// file is not a segment; the one before it is sealed whole, and the
// manifest written on the way lists only whole segments, so a crash
// right after it opens too.
func TestLegacyTornHeader(t *testing.T) {
	dir := copyLegacy(t)
	hdr, err := os.ReadFile(filepath.Join(dir, "00000000000000000005.log"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "00000000000000000006.log"), hdr[:10], 0o644); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		s, _ := mustOpen(t, dir, filelog.Options{SegmentSize: 400})
		if s.Rev() != int64(51+i) {
			t.Fatalf("open %d: revision %d", i, s.Rev())
		}
		if _, err := s.Put([]byte("new"), []byte("v")); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
