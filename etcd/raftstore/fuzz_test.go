package raftstore

import (
	"errors"
	"path"
	"testing"

	"github.com/revkv/revkv/persist/memfs"
	"go.etcd.io/raft/v3/raftpb"
)

// fixtureFiles returns the bytes of the segments and the snapshot a
// workload leaves: seeds for the fuzz targets.
func fixtureFiles(f *testing.F) (segs [][]byte, snap []byte) {
	fs := memfs.New(memfs.Options{})
	s, err := Open(fs, "raft", sweepOpts)
	if err != nil {
		f.Fatal(err)
	}
	for _, o := range genWorkload(5, 30).ops {
		if err := o.applyStore(s); err != nil {
			f.Fatal(err)
		}
	}
	s.Close()
	d, _ := listDir(fs, "raft")
	for _, seq := range d.segs {
		b, err := readFile(fs, path.Join("raft", segName(seq)))
		if err != nil {
			f.Fatal(err)
		}
		segs = append(segs, b)
	}
	if len(d.snaps) > 0 {
		snap, _ = readFile(fs, path.Join("raft", snapName(d.snaps[len(d.snaps)-1])))
	}
	return segs, snap
}

// wantCorrupt fails unless err is nil or damage (a *DamageError wrapping
// ErrCorrupt).
func wantCorrupt(t *testing.T, err error) {
	t.Helper()
	var de *DamageError
	if err != nil && (!errors.Is(err, ErrCorrupt) || !errors.As(err, &de)) {
		t.Fatalf("error %v is not damage", err)
	}
}

// FuzzSegment decodes arbitrary bytes as a segment, sealed or last, and
// replays it: never a panic, and any error is damage.
func FuzzSegment(f *testing.F) {
	segs, _ := fixtureFiles(f)
	for _, b := range segs {
		f.Add(b, true)
		f.Add(b, false)
		f.Add(b[:len(b)-3], true)
		f.Add(b[:len(b)/2], true)
	}
	f.Add([]byte{}, true)
	f.Add(make([]byte, 100), true)
	f.Fuzz(func(t *testing.T, b []byte, last bool) {
		seg, err := decodeSegment("seg", b, last)
		wantCorrupt(t, err)
		if err != nil || seg == nil {
			return
		}
		if seg.cut >= 0 && (!last || seg.cut > int64(len(b))) {
			t.Fatalf("cut at %d of %d bytes in a segment read as last=%v", seg.cut, len(b), last)
		}
		s := &Store{log: quiet, snap: cloneSnapshot(nil)}
		wantCorrupt(t, s.replay([]segment{*seg}))
	})
}

// FuzzOpen opens a store whose only segment holds arbitrary bytes: never
// a panic, any error is damage, and a store that opens takes a save that
// a reopen after a crash finds.
func FuzzOpen(f *testing.F) {
	segs, _ := fixtureFiles(f)
	for _, b := range segs {
		f.Add(b)
		f.Add(append(b[:len(b):len(b)], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
		f.Add(b[:len(b)-7])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fs := memfs.New(memfs.Options{})
		fs.MkdirAll("raft")
		w, err := fs.Create(path.Join("raft", segName(1)))
		if err != nil {
			t.Fatal(err)
		}
		w.Write(b)
		w.Sync()
		w.Close()
		fs.SyncDir("raft")
		s, err := Open(fs, "raft", Options{Logger: quiet, SegmentBytes: 1 << 20})
		wantCorrupt(t, err)
		if err != nil {
			return
		}
		last, _ := s.LastIndex()
		if last == 1<<64-1 {
			s.Close()
			return // no room for an entry
		}
		if err := s.Save(hardState(1<<40, 1, 0), []*raftpb.Entry{ent(last+1, 1<<40, "fuzz")}); err != nil {
			t.Fatalf("save on a store that opened: %v", err)
		}
		s.Close()
		fs.Crash()
		s, err = Open(fs, "raft", Options{Logger: quiet})
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		defer s.Close()
		if got, _ := s.LastIndex(); got != last+1 {
			t.Fatalf("reopened with last index %d, want %d", got, last+1)
		}
		if e, err := s.Entries(last+1, last+2, 1<<20); err != nil || string(e[0].GetData()) != "fuzz" {
			t.Fatalf("the entry saved: %v, %v", e, err)
		}
	})
}

// FuzzSnapshotFile loads arbitrary bytes as the newest snapshot file:
// never a panic, any error is damage.
func FuzzSnapshotFile(f *testing.F) {
	_, snap := fixtureFiles(f)
	f.Add(snap)
	f.Add(snap[:len(snap)-1])
	f.Add(encodeSnapshotT(&raftpb.Snapshot{}))
	f.Fuzz(func(t *testing.T, b []byte) {
		fs := memfs.New(memfs.Options{})
		fs.MkdirAll("raft")
		w, _ := fs.Create(path.Join("raft", snapName(7)))
		w.Write(b)
		w.Close()
		s := &Store{fsys: fs, dir: "raft", log: quiet}
		wantCorrupt(t, s.loadSnapshot([]uint64{7}))
	})
}

func encodeSnapshotT(snap *raftpb.Snapshot) []byte {
	b, _, _ := encodeSnapshot(snap)
	return b
}
