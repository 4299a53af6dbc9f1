package raftstore

import (
	"fmt"
	"math/rand/v2"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// op is one change a workload makes to a store.
type op struct {
	kind string // save, compact, create, apply
	hs   *raftpb.HardState
	ents []*raftpb.Entry
	i    uint64
	cs   *raftpb.ConfState
	data []byte
	snap *raftpb.Snapshot
}

func (o op) String() string {
	switch o.kind {
	case "save":
		first := uint64(0)
		if len(o.ents) > 0 {
			first = o.ents[0].GetIndex()
		}
		return fmt.Sprintf("save %d entries from %d, hs %v", len(o.ents), first, o.hs)
	case "apply":
		return fmt.Sprintf("apply snapshot %d", o.snap.GetMetadata().GetIndex())
	}
	return fmt.Sprintf("%s %d", o.kind, o.i)
}

// applyStore makes the change on s.
func (o op) applyStore(s *Store) error {
	switch o.kind {
	case "save":
		return s.Save(o.hs, o.ents)
	case "compact":
		return s.Compact(o.i)
	case "create":
		_, err := s.CreateSnapshot(o.i, o.cs, o.data)
		return err
	case "apply":
		return s.ApplySnapshot(o.snap)
	}
	panic(o.kind)
}

// applyModel makes the change on m; entriesOnly applies a save's
// entries but not its hard state (a crash between the two records).
func (o op) applyModel(m *raft.MemoryStorage, entriesOnly bool) {
	var err error
	switch o.kind {
	case "save":
		err = m.Append(o.ents)
		if !raft.IsEmptyHardState(o.hs) && !entriesOnly {
			err = m.SetHardState(o.hs)
		}
	case "compact":
		err = m.Compact(o.i)
	case "create":
		_, err = m.CreateSnapshot(o.i, o.cs, o.data)
	case "apply":
		err = m.ApplySnapshot(proto.Clone(o.snap).(*raftpb.Snapshot))
	}
	if err != nil {
		panic(fmt.Sprintf("model %v: %v", o, err))
	}
}

// workload is a sequence of valid ops, raft-like: terms grow, saves
// append (sometimes overwriting an uncommitted tail), the hard state's
// commit follows, snapshots are taken at the commit index and the log
// compacted behind them, and now and then a snapshot from a "leader"
// replaces the log.
type workload struct {
	ops []op
}

func genWorkload(seed uint64, n int) *workload {
	rng := rand.New(rand.NewPCG(seed, 0x7a11))
	m := raft.NewMemoryStorage()
	w := &workload{}
	term, commit := uint64(1), uint64(0)
	snapIndex := uint64(0)
	data := func() []byte {
		if rng.IntN(5) == 0 {
			return nil
		}
		b := make([]byte, rng.IntN(60))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		return b
	}
	for len(w.ops) < n {
		first, _ := m.FirstIndex()
		last, _ := m.LastIndex()
		var o op
		switch r := rng.IntN(20); {
		case r < 14:
			from := last + 1
			if rng.IntN(4) == 0 && last > commit {
				from = commit + 1 + uint64(rng.IntN(int(last-commit))) // overwrite an uncommitted tail
				term++
			}
			from = max(from, first)
			o = op{kind: "save"}
			for i := range rng.IntN(4) {
				o.ents = append(o.ents, &raftpb.Entry{Index: new(from + uint64(i)), Term: new(term), Data: data()})
			}
			if len(o.ents) > 0 {
				last = from + uint64(len(o.ents)) - 1
			}
			if rng.IntN(3) > 0 {
				commit = min(last, commit+uint64(rng.IntN(4)))
				o.hs = hardState(term, 1, commit)
			}
		case r < 16 && commit > snapIndex && commit >= first-1:
			o = op{kind: "create", i: commit, data: data()}
			if rng.IntN(2) == 0 {
				o.cs = &raftpb.ConfState{Voters: []uint64{1, 2, 3}}
			}
			snapIndex = commit
		case r < 18 && snapIndex >= first:
			o = op{kind: "compact", i: first + uint64(rng.IntN(int(snapIndex-first+1)))}
		case r < 19:
			term++
			snapIndex = max(last, snapIndex) + uint64(rng.IntN(3)) + 1
			commit = snapIndex
			o = op{kind: "apply", snap: &raftpb.Snapshot{Data: data(), Metadata: &raftpb.SnapshotMetadata{
				Index: new(snapIndex), Term: new(term), ConfState: &raftpb.ConfState{Voters: []uint64{1, 2}},
			}}}
		default:
			continue
		}
		o.applyModel(m, false)
		w.ops = append(w.ops, o)
	}
	return w
}

// model returns a MemoryStorage after ops[:n], and then op n applied
// (partly: entriesOnly) if extra.
func (w *workload) model(n int, extra, entriesOnly bool) *raft.MemoryStorage {
	m := raft.NewMemoryStorage()
	for _, o := range w.ops[:n] {
		o.applyModel(m, false)
	}
	if extra {
		w.ops[n].applyModel(m, entriesOnly)
	}
	return m
}

// matchState checks that s holds the state after ops[:acked], or, if the
// op after them was attempted, after it (a save: or only its entries).
// It returns the model s matched.
func (w *workload) matchState(s *Store, acked, attempted int) (*raft.MemoryStorage, error) {
	m := w.model(acked, false, false)
	err := sameStorage(s, m, 100, false)
	if err == nil {
		return m, nil
	}
	if attempted > acked {
		for _, entriesOnly := range []bool{false, true} {
			if entriesOnly && w.ops[acked].kind != "save" {
				continue
			}
			m := w.model(acked, true, entriesOnly)
			if sameStorage(s, m, 100, false) == nil {
				return m, nil
			}
		}
	}
	return nil, fmt.Errorf("not the state after %d ops (%v), nor the one after: %w", acked, w.ops[min(acked, len(w.ops)-1)], err)
}
