package member

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"math"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	revkv "github.com/revkv/revkv"
	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/kv"
)

// Open opens a member. With an empty log it bootstraps a new cluster from
// cfg.Peers, or, with cfg.Join, starts empty and waits for the leader to
// send it the state. With a log (a restart), it loads the newest snapshot
// into a fresh DB and raft replays the committed entries after it (Peers
// and Join are then ignored). Close the member when done.
func Open(cfg Config) (*Member, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		if cfg.Storage != nil {
			cfg.Storage.Close() // the member owns it, even when refused
		}
		return nil, err
	}
	st, err := openStorage(&c)
	if err != nil {
		return nil, err
	}
	m, err := open(c, st)
	if err != nil {
		st.Close()
		return nil, err
	}
	return m, nil
}

// openStorage returns the Storage cfg names.
func openStorage(c *Config) (Storage, error) {
	switch {
	case c.Storage != nil:
		return c.Storage, nil
	case c.FS == nil:
		return NewMemoryStorage(), nil
	}
	return openRaftStore(c)
}

func open(c Config, st Storage) (*Member, error) {
	m := &Member{
		cfg: c, log: c.Logger, clock: c.Clock, st: st, idx: &indexGetter{},
		table:     newMembership(),
		proposals: map[uint64]*Pending{},
		reads:     map[uint64]*readBatch{},
		snapSent:  map[uint64]uint64{},
	}
	if m.clock == nil {
		m.clock = systemClock{}
	}
	snap, err := st.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("open member %x: snapshot: %w", c.ID, err)
	}
	last, err := st.LastIndex()
	if err != nil {
		return nil, fmt.Errorf("open member %x: last index: %w", c.ID, err)
	}
	hs, cs, err := st.InitialState()
	if err != nil {
		return nil, fmt.Errorf("open member %x: initial state: %w", c.ID, err)
	}
	restart := last > 0 || !raft.IsEmptySnap(snap) || !raft.IsEmptyHardState(hs)
	if !restart && len(c.Peers) == 0 && !c.Join {
		return nil, fmt.Errorf("open member %x: empty log and neither Peers nor Join: %w", c.ID, ErrInvalidConfig)
	}
	if err := repairHardState(st, hs, snap); err != nil {
		return nil, fmt.Errorf("open member %x: %w", c.ID, err)
	}
	m.epoch = newEpoch()
	m.confState = cs
	if err := m.loadSnapshot(snap); err != nil {
		return nil, fmt.Errorf("open member %x: %w", c.ID, err)
	}
	rn, err := raft.NewRawNode(&raft.Config{
		ID:                        c.ID,
		ElectionTick:              c.ElectionTick,
		HeartbeatTick:             c.HeartbeatTick,
		Storage:                   st,
		Applied:                   m.applied,
		MaxSizePerMsg:             1 << 20,
		MaxInflightMsgs:           256,
		MaxUncommittedEntriesSize: 1 << 30,
		CheckQuorum:               true,
		PreVote:                   true,
		// A leader that applies its own removal leads on (raft's older
		// default), bringing the others up to date, until they ignore it
		// (a transport drops removed members' messages) and elect one of
		// their own. Stepping down at once can leave a member that has not
		// learnt the removal committed needing the removed one's vote,
		// which it refuses when its log is longer: no leader, for ever
		// (TestRemoveLeaderAheadOfFollower).
		StepDownOnRemoval: false,
		Logger:            raftLogger{m.log.With("raft", c.ID)},
	})
	if err != nil {
		m.db.Close()
		return nil, fmt.Errorf("open member %x: %w", c.ID, err)
	}
	m.rn = rn
	if !restart && !c.Join {
		peers := make([]raft.Peer, len(c.Peers))
		for i, p := range c.Peers {
			peers[i] = raft.Peer{ID: p.ID, Context: encodeConfContext(confContext{peer: p})}
		}
		if err := rn.Bootstrap(peers); err != nil {
			m.db.Close()
			return nil, fmt.Errorf("open member %x: bootstrap: %w", c.ID, err)
		}
	}
	return m, nil
}

// repairHardState makes the saved hard state's commit index reach the
// newest snapshot's: a crash between installing a snapshot from the leader
// (Storage.ApplySnapshot) and saving the hard state that goes with it
// (Save) leaves an older commit behind the snapshot, on which raft refuses
// to start (it panics: commit out of range). The snapshot holds only
// committed entries, so its index is a commit index the cluster agreed on;
// a term behind the snapshot's is raised to it (and the vote, cast in an
// older term, dropped).
//
// With no snapshot, the commit index must likewise reach the bootstrap's
// entries (see bootstrapEntries): a crash that tore the first Save's hard
// state off its entries leaves them with no commit index, and raft, which
// learns its configuration from them, would start with no voter at all.
func repairHardState(st Storage, hs *raftpb.HardState, snap *raftpb.Snapshot) error {
	index, term := snap.GetMetadata().GetIndex(), snap.GetMetadata().GetTerm()
	if raft.IsEmptySnap(snap) {
		if !raft.IsEmptyHardState(hs) {
			// A bootstrapped member saved one with its first entries: it
			// covers them. (A joiner's configuration comes from the leader.)
			return nil
		}
		n, err := bootstrapEntries(st)
		if err != nil || n == 0 {
			return err
		}
		index, term = n, 1 // raft's Bootstrap starts at term 1
	}
	if hs.GetCommit() >= index {
		return nil
	}
	fixed := &raftpb.HardState{Term: proto.Uint64(hs.GetTerm()), Vote: proto.Uint64(hs.GetVote()), Commit: proto.Uint64(index)}
	if hs.GetTerm() < term {
		fixed.Term, fixed.Vote = proto.Uint64(term), proto.Uint64(0)
	}
	if err := st.Save(fixed, nil); err != nil {
		return fmt.Errorf("raise the hard state's commit %d to index %d: %w", hs.GetCommit(), index, err)
	}
	return nil
}

// bootstrapEntries returns how many entries from index 1 on are the
// bootstrap's: ConfChanges of term 1 that no member proposed (their
// context names none), which every member of a new cluster writes alike
// and raft's Bootstrap takes as committed.
func bootstrapEntries(st Storage) (uint64, error) {
	first, err := st.FirstIndex()
	if err != nil {
		return 0, err
	}
	last, err := st.LastIndex()
	if err != nil || first != 1 || last == 0 {
		return 0, err
	}
	ents, err := st.Entries(1, last+1, math.MaxUint64)
	if err != nil {
		return 0, fmt.Errorf("bootstrap entries: %w", err)
	}
	var n uint64
	for _, e := range ents {
		if e.GetTerm() != 1 || e.GetType() != raftpb.EntryType_EntryConfChange {
			break
		}
		var cc raftpb.ConfChange
		if proto.Unmarshal(e.GetData(), &cc) != nil {
			break
		}
		if ctx, err := decodeConfContext(cc.GetContext()); err != nil || ctx.id.Member != 0 {
			break
		}
		n++
	}
	return n, nil
}

// newEpoch returns the request ID epoch of a new incarnation: random, so
// that an entry a previous incarnation proposed (which may commit after a
// restart) never resolves a new Pending. Determinism: it comes from
// crypto/rand, as raft's election timeouts do, which tests seed with
// testing/cryptotest.SetGlobalRandom; it reaches the log, never the state.
func newEpoch() uint64 {
	var b [8]byte
	rand.Read(b[:]) // never fails (crypto/rand panics rather than return an error)
	return binary.LittleEndian.Uint64(b[:])
}

// loadSnapshot makes the member's state snap's (or an empty DB for an
// empty snap): a new DB, the member table, the applied index.
func (m *Member) loadSnapshot(snap *raftpb.Snapshot) error {
	var engineBytes []byte
	table, dd := newMembership(), dedup{}
	var hashes []kv.KeyValueHash
	if !raft.IsEmptySnap(snap) {
		c, err := decodeSnapshot(snap.GetData())
		if err != nil {
			return fmt.Errorf("snapshot at index %d: %w", snap.GetMetadata().GetIndex(), err)
		}
		engineBytes, table, dd, hashes = c.engine, c.table, c.dedup, c.compactHashes
	}
	db, err := m.openDB(engineBytes)
	if err != nil {
		return fmt.Errorf("snapshot at index %d: DB: %w", snap.GetMetadata().GetIndex(), err)
	}
	old := m.db
	m.db, m.table, m.dedup, m.compactHashes = db, table, dd, hashes
	if table.removed[m.cfg.ID] {
		m.removed = true // its removal is in the snapshot, not in the log after it
	}
	m.applied = snap.GetMetadata().GetIndex()
	m.snapIndex = m.applied
	m.idx.v.Store(m.applied)
	if cs := snap.GetMetadata().GetConfState(); cs != nil && !raft.IsEmptySnap(snap) {
		m.confState = proto.Clone(cs).(*raftpb.ConfState)
	}
	if old != nil {
		old.Close() // its watchers end (closed): clients re-watch on the new DB
	}
	return nil
}

// openDB opens the state machine: a memory DB, filled from an engine
// snapshot if there is one.
func (m *Member) openDB(snapshot []byte) (*revkv.DB, error) {
	opts := revkv.Options{Engine: engine.Options{
		ConsistentIndex: m.idx,
		Clock:           m.clock,
		Logger:          m.log,
		MaxTxnOps:       m.cfg.MaxTxnOps,
	}}
	if snapshot != nil {
		opts.Persister = &snapshotLoader{data: snapshot}
	}
	return revkv.Open("", opts)
}
