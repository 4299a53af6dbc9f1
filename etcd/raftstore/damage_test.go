package raftstore

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"testing"

	"github.com/revkv/revkv/kv"
	"github.com/revkv/revkv/persist/memfs"
	"go.etcd.io/raft/v3/raftpb"
)

// damageFixture runs a workload that leaves several segments (some
// removed by compaction) and a snapshot, and returns the closed store's
// filesystem.
func damageFixture(t *testing.T) *memfs.FS {
	t.Helper()
	fs := memfs.New(memfs.Options{})
	s := openT(t, fs, sweepOpts)
	for _, o := range genWorkload(3, 40).ops {
		if err := o.applyStore(s); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	return fs
}

// wantDamage checks err is a *DamageError naming file, wrapping
// ErrCorrupt and kv.ErrCorrupt.
func wantDamage(t *testing.T, what string, err error, file string) {
	t.Helper()
	var de *DamageError
	switch {
	case err == nil:
		t.Fatalf("%s: opened", what)
	case !errors.As(err, &de) || !errors.Is(err, ErrCorrupt) || !errors.Is(err, kv.ErrCorrupt):
		t.Fatalf("%s: %v, want a *DamageError wrapping ErrCorrupt", what, err)
	case file != "" && de.File != file:
		t.Fatalf("%s: %v names %s, want %s", what, err, de.File, file)
	}
}

// TestEveryByteFlipped flips each byte of each file in turn: every flip
// is found, as damage naming that file, whether in a sealed segment, in
// the last one (its last record included: a record damaged in place is
// never taken for a torn one) or in the snapshot.
func TestEveryByteFlipped(t *testing.T) {
	fs := damageFixture(t)
	d, err := listDir(fs, "raft")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.segs) < 3 || len(d.snaps) != 1 || d.segs[0] == 1 {
		t.Fatalf("fixture has segments %v and snapshots %v: want 3 or more, some removed, and one snapshot", d.segs, d.snaps)
	}
	var names []string
	for _, seq := range d.segs {
		names = append(names, segName(seq))
	}
	names = append(names, snapName(d.snaps[0]))
	flips := 0
	for _, name := range names {
		file := path.Join("raft", name)
		b, err := readFile(fs, file)
		if err != nil {
			t.Fatal(err)
		}
		for off := range int64(len(b)) {
			c := fs.Clone()
			if err := c.FlipByte(file, off); err != nil {
				t.Fatal(err)
			}
			s, err := Open(c, "raft", sweepOpts)
			if err == nil {
				s.Close()
			}
			wantDamage(t, file+" flipped at "+itoa(off), err, file)
			flips++
		}
	}
	t.Logf("%d flips in %d files, all found", flips, len(names))
}

func itoa(n int64) string { return string(appendInt(nil, n)) }

func appendInt(b []byte, n int64) []byte {
	if n >= 10 {
		b = appendInt(b, n/10)
	}
	return append(b, byte('0'+n%10))
}

// TestMissingAndCutFiles removes or cuts files: each is damage naming
// the file, never an older state opened silently.
func TestMissingAndCutFiles(t *testing.T) {
	fs := damageFixture(t)
	d, _ := listDir(fs, "raft")
	seg := func(i int) string { return path.Join("raft", segName(d.segs[i])) }
	snap := path.Join("raft", snapName(d.snaps[0]))
	for _, tc := range []struct {
		name string
		harm func(c *memfs.FS) error
		file string // the file the error names
	}{
		{"first segment removed", func(c *memfs.FS) error { return c.Remove(seg(0)) }, path.Join("raft", segName(d.segs[0]))},
		{"middle segment removed", func(c *memfs.FS) error { return c.Remove(seg(1)) }, seg(1)},
		{"sealed segment cut at a record", func(c *memfs.FS) error { return cut(c, seg(0), -int64(lastRecordSize(t, c, seg(0)))) }, seg(0)},
		{"sealed segment cut in a record", func(c *memfs.FS) error { return cut(c, seg(0), -5) }, seg(0)},
		{"snapshot removed", func(c *memfs.FS) error { return c.Remove(snap) }, snap},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := fs.Clone()
			if err := tc.harm(c); err != nil {
				t.Fatal(err)
			}
			s, err := Open(c, "raft", sweepOpts)
			if err == nil {
				s.Close()
			}
			wantDamage(t, tc.name, err, tc.file)
		})
	}
}

// cut shortens name by n bytes (n < 0).
func cut(fs *memfs.FS, name string, n int64) error {
	f, err := fs.OpenReadWrite(name)
	if err != nil {
		return err
	}
	defer f.Close()
	size, _ := f.Size()
	if err := f.Truncate(size + n); err != nil {
		return err
	}
	return f.Sync()
}

// lastRecordSize returns the size of the last record of a segment.
func lastRecordSize(t *testing.T, fs *memfs.FS, name string) int {
	b, err := readFile(fs, name)
	if err != nil {
		t.Fatal(err)
	}
	seg, err := decodeSegment(name, b, false)
	if err != nil || len(seg.recs) == 0 {
		t.Fatalf("%s: %v, %d records", name, err, len(seg.recs))
	}
	return recOverhead + len(seg.recs[len(seg.recs)-1].payload)
}

// TestUnfinishedSegment: a crash while a segment was being created can
// leave its name durable with a header or base record not whole (a
// filesystem that orders names and data differently than memfs's
// model); such a last segment is removed, and the store goes on.
func TestUnfinishedSegment(t *testing.T) {
	fs := damageFixture(t)
	d, _ := listDir(fs, "raft")
	next := d.segs[len(d.segs)-1] + 1
	b, _ := appendBase(nil, base{})
	whole := appendRecord(appendSegHeader(nil, segHeader{seq: next}), kindBase, b)
	for _, tc := range []struct {
		name  string
		bytes []byte
	}{
		{"empty", nil},
		{"zeros", make([]byte, len(whole))},
		{"half a header", whole[:segHdrSize/2]},
		{"a header", whole[:segHdrSize]},
		{"half a base", append(whole[:len(whole)-5:len(whole)-5], 0, 0, 0, 0, 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := fs.Clone()
			want := openT(t, c, sweepOpts)
			want.Close()
			f, err := c.Create(path.Join("raft", segName(next)))
			if err != nil {
				t.Fatal(err)
			}
			f.Write(tc.bytes)
			f.Sync()
			f.Close()
			c.SyncDir("raft")
			s := openT(t, c, sweepOpts)
			if err := sameStorage(s, want, 100, false); err != nil {
				t.Fatal(err)
			}
			if err := writeAndReopenStore(c, s); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// writeAndReopenStore saves an entry on s, closes it, crashes and
// reopens: the entry is there.
func writeAndReopenStore(fs *memfs.FS, s *Store) error {
	last, _ := s.LastIndex()
	if err := s.Save(hardState(50, 1, 0), []*raftpb.Entry{ent(last+1, 50, "x")}); err != nil {
		return err
	}
	s.Close()
	fs.Crash()
	s, err := Open(fs, "raft", sweepOpts)
	if err != nil {
		return err
	}
	defer s.Close()
	if got, _ := s.LastIndex(); got != last+1 {
		return fmt.Errorf("last index %d after a reopen, want %d", got, last+1)
	}
	return nil
}

// TestDamagedStoreLeftAsIs: an Open that finds damage removes nothing
// (leftover temporary files and old snapshots stay for whoever salvages
// the directory).
func TestDamagedStoreLeftAsIs(t *testing.T) {
	fs := damageFixture(t)
	d, _ := listDir(fs, "raft")
	for _, name := range []string{"snap-0000000000000001.snap", "snap-0000000000000002.snap.tmp"} {
		f, _ := fs.Create(path.Join("raft", name))
		f.Write([]byte("leftover"))
		f.Close()
	}
	if err := fs.FlipByte(path.Join("raft", segName(d.segs[0])), 50); err != nil {
		t.Fatal(err)
	}
	before, _ := fs.List("raft")
	_, err := Open(fs, "raft", sweepOpts)
	wantDamage(t, "a flipped byte", err, "")
	if after, _ := fs.List("raft"); !slices.Equal(before, after) {
		t.Fatalf("files %v after a failed open, were %v", after, before)
	}
}
