package raftstore

import (
	"errors"
	"fmt"
	"io"
	"log"
	"path/filepath"
	"sync"
	"testing"

	"github.com/revkv/revkv/persist"
	"github.com/revkv/revkv/persist/memfs"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// TestConcurrentReaders reads the log from several goroutines while one
// saves, compacts and snapshots: with -race, the mutex is the proof;
// every read sees a consistent log (terms and entries agree).
func TestConcurrentReaders(t *testing.T) {
	s := openT(t, memfs.New(memfs.Options{}), Options{SegmentBytes: 2000})
	defer s.Close()
	if err := s.Save(hardState(1, 1, 0), []*raftpb.Entry{ent(1, 1, "x")}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 3 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				first, _ := s.FirstIndex()
				last, _ := s.LastIndex()
				ents, err := s.Entries(first, last+1, 1<<30)
				if err != nil {
					continue // compacted in between: raft retries too
				}
				for i, e := range ents {
					if e.GetIndex() != first+uint64(i) {
						errs <- fmt.Errorf("entry %d of a read from %d has index %d", i, first, e.GetIndex())
						return
					}
				}
				s.Term(last)
				s.Snapshot()
				s.InitialState()
			}
		})
	}
	for i := uint64(2); i <= 300; i++ {
		if err := s.Save(hardState(1, 1, i-1), []*raftpb.Entry{ent(i, 1, "x")}); err != nil {
			t.Fatal(err)
		}
		if i%50 == 0 {
			if _, err := s.CreateSnapshot(i-1, nil, []byte("state")); err != nil {
				t.Fatal(err)
			}
			if err := s.Compact(i - 10); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(stop)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
}

// BenchmarkSave saves one 100-byte entry and a hard state per op, as a
// member's Ready does under a steady write load: on memfs with 64 KiB
// segments (mostly the store's own cost: memfs copies a file at each
// Sync) and on the OS's filesystem (with its fsync), 64 MiB segments.
func BenchmarkSave(b *testing.B) {
	for _, tc := range []struct {
		name string
		fs   func(b *testing.B) (persist.FS, string)
		seg  int64
	}{
		{"memfs", func(*testing.B) (persist.FS, string) { return memfs.New(memfs.Options{}), "raft" }, 64 << 10},
		{"os", func(b *testing.B) (persist.FS, string) { return persist.OS, filepath.Join(b.TempDir(), "raft") }, 0},
	} {
		b.Run(tc.name, func(b *testing.B) {
			fsys, dir := tc.fs(b)
			s, err := Open(fsys, dir, Options{Logger: quiet, SegmentBytes: tc.seg})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			data := make([]byte, 100)
			b.ReportAllocs()
			i := uint64(0)
			for b.Loop() {
				i++
				if err := s.Save(hardState(1, 1, i-1), []*raftpb.Entry{{Index: new(i), Term: new(uint64(1)), Data: data}}); err != nil {
					b.Fatal(err)
				}
				if i%10000 == 0 {
					if _, err := s.CreateSnapshot(i, nil, data); err != nil {
						b.Fatal(err)
					}
					if err := s.Compact(i - 5000); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// TestRestartAfterApplySnapshot pins the restart protocol after a crash
// between ApplySnapshot and the Save of the hard state that follows it in
// the same Ready: the store keeps the older hard state (as
// raft.MemoryStorage would), whose commit index is below the snapshot's,
// and raft refuses to start on it; the caller raises it first
// (member.repairHardState does), and then raft starts.
func TestRestartAfterApplySnapshot(t *testing.T) {
	raft.SetLogger(&raft.DefaultLogger{Logger: log.New(io.Discard, "", 0)})
	defer raft.ResetDefaultLogger()
	fs := memfs.New(memfs.Options{Crash: memfs.CrashTorn})
	s := openT(t, fs, Options{})
	before := hardState(2, 1, 3)
	if err := s.Save(before, []*raftpb.Entry{ent(1, 1, "a"), ent(2, 2, "b"), ent(3, 2, "c")}); err != nil {
		t.Fatal(err)
	}
	snap := &raftpb.Snapshot{Data: []byte("state"), Metadata: &raftpb.SnapshotMetadata{
		Index: new(uint64(22)), Term: new(uint64(3)), ConfState: &raftpb.ConfState{Voters: []uint64{1, 2, 3}},
	}}
	if err := s.ApplySnapshot(snap); err != nil {
		t.Fatal(err)
	}
	fs.Crash()
	s = openT(t, fs, Options{})
	defer s.Close()
	cfg := &raft.Config{ID: 1, ElectionTick: 10, HeartbeatTick: 1, Storage: s, MaxSizePerMsg: 1 << 20, MaxInflightMsgs: 16, Applied: 22}
	start := func() (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("raft panics: %v", p)
			}
		}()
		_, err = raft.NewRawNode(cfg)
		return err
	}
	if hs, _, _ := s.InitialState(); !proto.Equal(hs, before) {
		t.Fatalf("hard state %v after the crash, want %v", hs, before)
	}
	if err := start(); err == nil {
		t.Fatal("raft started on a commit index below the snapshot's: the repair is not needed any more")
	}
	// The repair: the snapshot's index is committed, in its term or later.
	if err := s.Save(hardState(3, 0, 22), nil); err != nil {
		t.Fatal(err)
	}
	if err := start(); err != nil {
		t.Fatalf("after the repair: %v", err)
	}
}

// TestFilesBounded: under a steady load with regular snapshots and
// compactions, old segments and snapshots go: the directory holds one
// snapshot and about as many segments as the live log fills.
func TestFilesBounded(t *testing.T) {
	fs := memfs.New(memfs.Options{})
	s := openT(t, fs, Options{SegmentBytes: 1 << 10})
	defer s.Close()
	data := make([]byte, 50)
	most := 0
	for i := uint64(1); i <= 3000; i++ {
		if err := s.Save(hardState(1, 1, i-1), []*raftpb.Entry{{Index: new(i), Term: new(uint64(1)), Data: data}}); err != nil {
			t.Fatal(err)
		}
		if i%100 == 0 {
			if _, err := s.CreateSnapshot(i-1, nil, data); err != nil {
				t.Fatal(err)
			}
			if err := s.Compact(i - 50); err != nil {
				t.Fatal(err)
			}
			d, _ := listDir(fs, "raft")
			// 50 live entries and 50 since the last compaction, of
			// about 100 bytes each: 10 segments of 1 KiB at most.
			if len(d.segs) > 10 || len(d.snaps) != 1 || len(d.tmps) != 0 {
				t.Fatalf("after %d saves: %d segments, snapshots %v, temporary files %v", i, len(d.segs), d.snaps, d.tmps)
			}
			most = max(most, len(d.segs))
		}
	}
	t.Logf("at most %d segments after a compaction, of %d written", most, s.lastSeq())
}

// TestOS runs a store on the operating system's files: the lock file is
// not taken for anything else, and a reopen finds what was saved.
func TestOS(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "raft")
	s, err := Open(persist.OS, dir, Options{Logger: quiet, SegmentBytes: 200})
	if err != nil {
		t.Fatal(err)
	}
	m := raft.NewMemoryStorage()
	for i := uint64(1); i <= 20; i++ {
		o := op{kind: "save", hs: hardState(1, 1, i-1), ents: []*raftpb.Entry{ent(i, 1, "x")}}
		if err := o.applyStore(s); err != nil {
			t.Fatal(err)
		}
		o.applyModel(m, false)
	}
	if _, err := Open(persist.OS, dir, Options{Logger: quiet}); !errors.Is(err, persist.ErrLocked) {
		t.Fatalf("a second open: %v, want persist.ErrLocked", err)
	}
	s.Close()
	s, err = Open(persist.OS, dir, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := sameStorage(s, m, 100, true); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkOpen reopens a store holding 10,000 entries of 100 bytes
// (about 1.2 MB of log in 64 KiB segments): the cost of a restart.
func BenchmarkOpen(b *testing.B) {
	fs := memfs.New(memfs.Options{})
	opts := Options{Logger: quiet, SegmentBytes: 64 << 10}
	s, err := Open(fs, "raft", opts)
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 100)
	for i := uint64(1); i <= 10000; i += 100 {
		ents := make([]*raftpb.Entry, 100)
		for k := range ents {
			ents[k] = &raftpb.Entry{Index: new(i + uint64(k)), Term: new(uint64(1)), Data: data}
		}
		if err := s.Save(hardState(1, 1, i), ents); err != nil {
			b.Fatal(err)
		}
	}
	s.Close()
	b.ReportAllocs()
	for b.Loop() {
		s, err := Open(fs, "raft", opts)
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}
