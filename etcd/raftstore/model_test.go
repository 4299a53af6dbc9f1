package raftstore

import (
	"errors"
	"fmt"
	"github.com/revkv/revkv/persist"
	"log/slog"
	"slices"
	"testing"

	"github.com/revkv/revkv/persist/memfs"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
	"pgregory.net/rapid"
)

var quiet = slog.New(slog.DiscardHandler)

// openT opens a store in "raft" of fs, failing the test on error.
func openT(t interface {
	Helper()
	Fatalf(string, ...any)
}, fs *memfs.FS, opts Options) *Store {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	s, err := Open(fs, "raft", opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s
}

func ent(index, term uint64, data string) *raftpb.Entry {
	e := &raftpb.Entry{Index: new(index), Term: new(term)}
	if data != "" {
		e.Data = []byte(data)
	}
	return e
}

func hardState(term, vote, commit uint64) *raftpb.HardState {
	return &raftpb.HardState{Term: new(term), Vote: new(vote), Commit: new(commit)}
}

// sameStorage compares every raft.Storage answer of got with want's: the
// hard state and configuration, the bounds, the term of every index from
// below the first to past the last, entries (with a size limit of none,
// maxSize, and no limit) over every range if exhaustive, else from every
// index to the end and of one entry, and the snapshot.
func sameStorage(got, want raft.Storage, maxSize uint64, exhaustive bool) error {
	ghs, gcs, gerr := got.InitialState()
	whs, wcs, werr := want.InitialState()
	if gerr != nil || werr != nil {
		return fmt.Errorf("InitialState errors %v, want %v", gerr, werr)
	}
	if (ghs == nil) != (whs == nil) || !proto.Equal(ghs, whs) {
		return fmt.Errorf("hard state %v, want %v", ghs, whs)
	}
	if !proto.Equal(raftpb.EnsureConfState(gcs), raftpb.EnsureConfState(wcs)) {
		return fmt.Errorf("conf state %v, want %v", gcs, wcs)
	}
	gf, _ := got.FirstIndex()
	wf, _ := want.FirstIndex()
	gl, _ := got.LastIndex()
	wl, _ := want.LastIndex()
	if gf != wf || gl != wl {
		return fmt.Errorf("log [%d, %d], want [%d, %d]", gf, gl, wf, wl)
	}
	for i := max(wf, 2) - 2; i <= wl+1; i++ {
		gt, gerr := got.Term(i)
		wt, werr := want.Term(i)
		if gt != wt || gerr != werr {
			return fmt.Errorf("Term(%d) = %d, %v, want %d, %v", i, gt, gerr, wt, werr)
		}
	}
	for lo := max(wf, 1) - 1; lo <= wl; lo++ {
		for hi := lo + 1; hi <= wl+1; hi++ {
			if !exhaustive && hi != lo+1 && hi != wl+1 {
				continue
			}
			for _, limit := range []uint64{0, maxSize, 1 << 62} {
				ge, gerr := got.Entries(lo, hi, limit)
				we, werr := want.Entries(lo, hi, limit)
				if gerr != werr || len(ge) != len(we) {
					return fmt.Errorf("Entries(%d, %d, %d): %d entries, %v, want %d, %v", lo, hi, limit, len(ge), gerr, len(we), werr)
				}
				for k := range ge {
					if !proto.Equal(ge[k], we[k]) {
						return fmt.Errorf("Entries(%d, %d, %d)[%d] = %v, want %v", lo, hi, limit, k, ge[k], we[k])
					}
				}
			}
		}
	}
	gs, gerr := got.Snapshot()
	ws, werr := want.Snapshot()
	if gerr != nil || werr != nil || !sameSnapshot(gs, ws) {
		return fmt.Errorf("snapshot %v, %v, want %v, %v", gs, gerr, ws, werr)
	}
	return nil
}

// modelMachine drives a Store and a raft.MemoryStorage with the same
// operations, and after each checks that they answer alike; reopening the
// store (after a close, or a crash: every change was acknowledged, so
// all of it must survive), and an operation cut by a crash (after which
// the store holds the state before it or after it) are operations too.
type modelMachine struct {
	fs      *memfs.FS
	opts    Options
	s       *Store
	m       *raft.MemoryStorage
	history []op // the changes m holds, to rebuild it
	maxSize uint64
	cut     *int // changes a crash cut short
}

func (mm *modelMachine) bounds() (offset, last, snap uint64) {
	first, _ := mm.m.FirstIndex()
	last, _ = mm.m.LastIndex()
	sn, _ := mm.m.Snapshot()
	return first - 1, last, sn.GetMetadata().GetIndex()
}

func drawData(t *rapid.T, label string) []byte {
	switch rapid.IntRange(0, 3).Draw(t, label+"kind") {
	case 0:
		return nil
	case 1:
		return []byte{}
	}
	return rapid.SliceOfN(rapid.Byte(), 1, 40).Draw(t, label)
}

func drawConfState(t *rapid.T) *raftpb.ConfState {
	if rapid.IntRange(0, 3).Draw(t, "nocs") == 0 {
		return nil
	}
	return &raftpb.ConfState{
		Voters:   rapid.SliceOfN(rapid.Uint64Range(1, 5), 0, 3).Draw(t, "voters"),
		Learners: rapid.SliceOfN(rapid.Uint64Range(6, 9), 0, 2).Draw(t, "learners"),
	}
}

// drawSave draws a save: entries from anywhere between a few compacted
// indexes and just past the last (overwriting, or skipping compacted
// ones), maybe a hard state.
func (mm *modelMachine) drawSave(t *rapid.T) op {
	offset, last, _ := mm.bounds()
	from := rapid.Uint64Range(max(offset, 3)-2, last+1).Draw(t, "from")
	o := op{kind: "save", ents: make([]*raftpb.Entry, rapid.IntRange(0, 6).Draw(t, "n"))}
	for i := range o.ents {
		e := &raftpb.Entry{Index: new(from + uint64(i)), Term: new(rapid.Uint64Range(1, 4).Draw(t, "term")), Data: drawData(t, "data")}
		if rapid.Bool().Draw(t, "typed") {
			e.Type = new(raftpb.EntryType(rapid.IntRange(0, 2).Draw(t, "type")))
		}
		o.ents[i] = e
	}
	if rapid.Bool().Draw(t, "hs") {
		o.hs = hardState(rapid.Uint64Range(0, 5).Draw(t, "hterm"), rapid.Uint64Range(0, 3).Draw(t, "vote"), rapid.Uint64Range(0, 9).Draw(t, "commit"))
	}
	return o
}

// drawCompact draws a compaction, already compacted one time in four
// (refused) if valid is false.
func (mm *modelMachine) drawCompact(t *rapid.T, valid bool) op {
	offset, last, _ := mm.bounds()
	lo := offset + 1
	if !valid {
		lo = max(offset, 1) - 1
	}
	if lo > last {
		t.Skip("nothing to compact")
	}
	return op{kind: "compact", i: rapid.Uint64Range(lo, last).Draw(t, "i")}
}

func (mm *modelMachine) drawCreate(t *rapid.T) op {
	offset, last, snap := mm.bounds()
	if max(snap+1, offset) > last {
		t.Skip("no index to snapshot")
	}
	return op{kind: "create", i: rapid.Uint64Range(max(snap+1, offset), last).Draw(t, "i"), cs: drawConfState(t), data: drawData(t, "sdata")}
}

// drawApply draws a snapshot to apply, out of date (refused) if valid is
// false and the draw says so.
func (mm *modelMachine) drawApply(t *rapid.T, valid bool) op {
	_, last, snap := mm.bounds()
	lo := max(snap, 1) - 1
	if valid && snap > 0 {
		lo = snap + 1
	}
	index := rapid.Uint64Range(lo, max(snap, last)+4).Draw(t, "index")
	return op{kind: "apply", snap: &raftpb.Snapshot{
		Data:     drawData(t, "sdata"),
		Metadata: &raftpb.SnapshotMetadata{Index: new(index), Term: new(rapid.Uint64Range(0, 5).Draw(t, "sterm")), ConfState: drawConfState(t)},
	}}
}

// do applies o to the store and the model, and checks they agree on
// whether it is refused (and what it returns).
func (mm *modelMachine) do(t *rapid.T, o op) {
	var got, want error
	switch o.kind {
	case "save":
		got = mm.s.Save(o.hs, o.ents)
	case "compact":
		got, want = mm.s.Compact(o.i), mm.m.Compact(o.i)
	case "create":
		gs, err := mm.s.CreateSnapshot(o.i, o.cs, o.data)
		ws, werr := mm.m.CreateSnapshot(o.i, o.cs, o.data)
		if err == werr && err == nil && !sameSnapshot(gs, ws) {
			t.Fatalf("CreateSnapshot(%d) = %v, want %v", o.i, gs, ws)
		}
		got, want = err, werr
	case "apply":
		got, want = mm.s.ApplySnapshot(o.snap), mm.m.ApplySnapshot(proto.Clone(o.snap).(*raftpb.Snapshot))
	}
	if got != want {
		t.Fatalf("%v: %v, want %v", o, got, want)
	}
	if o.kind == "save" {
		o.applyModel(mm.m, false)
	}
	if want == nil {
		mm.history = append(mm.history, o)
	}
}

// crashDuring makes a valid change on a disk that crashes at one of its
// next few operations, then reopens the store: it holds the state before
// the change or after it (a save: or only its entries), and the model
// follows.
func (mm *modelMachine) crashDuring(t *rapid.T) {
	var o op
	switch rapid.SampledFrom([]string{"save", "compact", "create", "apply"}).Draw(t, "kind") {
	case "save":
		o = mm.drawSave(t)
	case "compact":
		o = mm.drawCompact(t, true)
	case "create":
		o = mm.drawCreate(t)
	case "apply":
		o = mm.drawApply(t, true)
	}
	mm.fs.CrashAfter(int64(rapid.IntRange(1, 10).Draw(t, "k")))
	err := o.applyStore(mm.s)
	mm.s.Close()
	mm.fs.Crash()
	if err != nil && !errors.Is(err, memfs.ErrCrashed) {
		t.Fatalf("%v on a crashing disk: %v", o, err)
	}
	if err != nil {
		*mm.cut++
	}
	mm.s = openT(t, mm.fs, mm.opts)
	w := &workload{ops: append(slices.Clone(mm.history), o)}
	n := len(mm.history)
	type candidate struct {
		m       *raft.MemoryStorage
		history []op
	}
	cands := []candidate{{w.model(n, true, false), w.ops}} // after: acknowledged or not
	if err != nil {
		cands = append(cands, candidate{w.model(n, false, false), mm.history})
		if o.kind == "save" {
			cands = append(cands, candidate{w.model(n, true, true), append(slices.Clone(mm.history), op{kind: "save", ents: o.ents})})
		}
	}
	for _, c := range cands {
		if sameStorage(mm.s, c.m, mm.maxSize, false) == nil {
			mm.m, mm.history = c.m, c.history
			return
		}
	}
	t.Fatalf("after %v cut by a crash (%v), neither the state before nor after", o, err)
}

func (mm *modelMachine) reopen(t *rapid.T) {
	if err := mm.s.Close(); err != nil {
		t.Fatal(err)
	}
	if rapid.Bool().Draw(t, "crash") {
		mm.fs.Crash()
	}
	mm.s = openT(t, mm.fs, mm.opts)
}

func (mm *modelMachine) check(t *rapid.T) {
	if err := sameStorage(mm.s, mm.m, mm.maxSize, true); err != nil {
		t.Fatal(err)
	}
}

// TestModel compares the Store with raft.MemoryStorage under random
// operations: saves that overwrite and skip compacted entries, hard
// states, compactions, snapshots created and applied, and reopens after
// a close or a crash, with segments small enough to rotate and be
// removed often.
func TestModel(t *testing.T) {
	steps, cut := 0, 0
	rapid.Check(t, func(t *rapid.T) {
		model := memfs.CrashModel(rapid.IntRange(0, 2).Draw(t, "model"))
		mm := &modelMachine{
			fs:      memfs.New(memfs.Options{Crash: model, Seed: rapid.Uint64().Draw(t, "seed")}),
			opts:    Options{SegmentBytes: rapid.Int64Range(1, 600).Draw(t, "segbytes")},
			m:       raft.NewMemoryStorage(),
			maxSize: rapid.Uint64Range(0, 80).Draw(t, "maxsize"),
			cut:     &cut,
		}
		mm.s = openT(t, mm.fs, mm.opts)
		defer func() { mm.s.Close() }()
		t.Repeat(map[string]func(*rapid.T){
			"save":           func(t *rapid.T) { mm.do(t, mm.drawSave(t)); steps++ },
			"compact":        func(t *rapid.T) { mm.do(t, mm.drawCompact(t, false)); steps++ },
			"createSnapshot": func(t *rapid.T) { mm.do(t, mm.drawCreate(t)); steps++ },
			"applySnapshot":  func(t *rapid.T) { mm.do(t, mm.drawApply(t, false)); steps++ },
			"reopen":         func(t *rapid.T) { mm.reopen(t); steps++ },
			"crashDuring":    func(t *rapid.T) { mm.crashDuring(t); steps++ },
			"":               mm.check,
		})
	})
	t.Logf("%d steps, %d changes cut by a crash", steps, cut)
}

// TestErrors pins the errors of calls raft.MemoryStorage would panic on
// or refuse, and that none of them stops the store.
func TestErrors(t *testing.T) {
	fs := memfs.New(memfs.Options{})
	s := openT(t, fs, Options{})
	defer s.Close()
	if err := s.Save(hardState(1, 1, 0), []*raftpb.Entry{ent(1, 1, "a"), ent(2, 1, "b"), ent(3, 1, "c")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Compact(1); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"save with a gap", s.Save(nil, []*raftpb.Entry{ent(5, 1, "")}), ErrInvalid},
		{"save not consecutive", s.Save(nil, []*raftpb.Entry{ent(3, 1, ""), ent(5, 1, "")}), ErrInvalid},
		{"save a nil entry", s.Save(nil, []*raftpb.Entry{nil}), ErrInvalid},
		{"save index 0", s.Save(nil, []*raftpb.Entry{&raftpb.Entry{}}), ErrInvalid},
		{"compact compacted", s.Compact(1), raft.ErrCompacted},
		{"compact past last", s.Compact(4), ErrInvalid},
		{"term compacted", second(s.Term(0)), raft.ErrCompacted},
		{"term past last", second(s.Term(4)), raft.ErrUnavailable},
		{"entries compacted", second(s.Entries(1, 2, 100)), raft.ErrCompacted},
		{"entries past last", second(s.Entries(2, 5, 100)), raft.ErrUnavailable},
		{"entries lo > hi", second(s.Entries(3, 2, 100)), raft.ErrUnavailable},
		{"snapshot past last", second(s.CreateSnapshot(4, nil, nil)), ErrInvalid},
		{"snapshot compacted", second(s.CreateSnapshot(0, nil, nil)), raft.ErrSnapOutOfDate},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	if _, err := s.CreateSnapshot(2, &raftpb.ConfState{Voters: []uint64{1}}, []byte("x")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"snapshot at the same index", second(s.CreateSnapshot(2, nil, nil))},
		{"apply an older snapshot", s.ApplySnapshot(&raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{Index: new(uint64(1)), Term: new(uint64(1))}})},
		{"apply a snapshot at the same index", s.ApplySnapshot(&raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{Index: new(uint64(2)), Term: new(uint64(1))}})},
	} {
		if tc.err != raft.ErrSnapOutOfDate {
			t.Errorf("%s: %v, want raft.ErrSnapOutOfDate", tc.name, tc.err)
		}
	}
	if err := s.Save(nil, []*raftpb.Entry{ent(4, 2, "d")}); err != nil {
		t.Fatalf("a save after the refused calls: %v", err)
	}
	if _, err := Open(fs, "raft", Options{Logger: quiet}); !errors.Is(err, persist.ErrLocked) {
		t.Errorf("a second Open: %v, want persist.ErrLocked", err)
	}
	s.Close()
	if err := s.Save(nil, []*raftpb.Entry{ent(5, 2, "e")}); !errors.Is(err, ErrClosed) {
		t.Errorf("save after Close: %v, want ErrClosed", err)
	}
	if last, _ := s.LastIndex(); last != 4 {
		t.Errorf("LastIndex after Close = %d, want 4", last)
	}
}

// sameSnapshot compares snapshots, taking a ConfState's unset AutoLeave
// as false (raft.MemoryStorage's InitialState sets it in its own
// snapshot, so whether it is set depends on the calls made).
func sameSnapshot(a, b *raftpb.Snapshot) bool {
	a, b = cloneSnapshot(a), cloneSnapshot(b)
	return proto.Equal(a, b)
}

func second[T any](_ T, err error) error { return err }
