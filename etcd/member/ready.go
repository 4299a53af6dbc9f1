package member

import (
	"fmt"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Ready processes everything raft has ready, in order: it makes the hard
// state, the new entries and any snapshot received durable (Storage.Save,
// ApplySnapshot), installs the snapshot, applies the committed entries to
// the DB, resolves the Pendings they and the read indexes answer, takes a
// local snapshot and compacts the log when due, and advances raft. It
// returns the messages to send, which the caller sends in order (after
// Ready returned: they may depend on what it made durable).
//
// A storage failure, or a log entry or snapshot that does not decode,
// stops the member: Ready returns the error (wrapping ErrStopped) and so
// does every later call.
func (m *Member) Ready() ([]*raftpb.Message, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.usableForReady(); err != nil {
		return nil, err
	}
	var out []*raftpb.Message
	for m.rn.HasReady() {
		rd := m.rn.Ready()
		msgs, err := m.handle(&rd)
		out = append(out, msgs...)
		if err != nil {
			m.stop(err)
			return out, m.err
		}
	}
	return out, nil
}

// usableForReady: a removed member still runs Ready (raft may have
// messages for it to send), a closed or failed one does not.
func (m *Member) usableForReady() error {
	if m.closed {
		return fmt.Errorf("member %x closed: %w", m.cfg.ID, ErrStopped)
	}
	return m.err
}

// stop makes err the member's final error and fails every request.
func (m *Member) stop(err error) {
	m.err = fmt.Errorf("member %x stopped: %w: %w", m.cfg.ID, ErrStopped, err)
	m.log.Error("member stopped", "err", err)
	m.failRequests(m.err)
}

// handle processes one Ready. mu is held.
func (m *Member) handle(rd *raft.Ready) ([]*raftpb.Message, error) {
	if err := m.persist(rd); err != nil {
		return nil, err
	}
	if !raft.IsEmptySnap(rd.Snapshot) {
		if err := m.installSnapshot(rd.Snapshot); err != nil {
			return nil, err
		}
	}
	for _, e := range rd.CommittedEntries {
		if err := m.apply(e); err != nil {
			return nil, err
		}
	}
	m.readStates(rd.ReadStates)
	// Leadership after what was applied: an entry committed under the old
	// leader resolves its Pending before a change fails the rest, and a
	// read index the old leader gave stays good.
	if rd.SoftState != nil {
		m.softState(rd.SoftState)
	}
	m.rn.Advance(*rd)
	m.resolveReads()
	if m.removed {
		// No more entries come to resolve what is in flight.
		m.failRequests(fmt.Errorf("member %x was removed from the cluster: %w", m.cfg.ID, ErrStopped))
	}
	m.issueReads()
	if err := m.maybeSnapshot(); err != nil {
		return nil, err
	}
	if err := m.freshSnapshots(rd.Messages); err != nil {
		return nil, err
	}
	return rd.Messages, nil
}

// freshSnapshots replaces the snapshot of each MsgSnap with one of the
// state now: raft sends the newest local snapshot, whose configuration
// may predate the recipient (a member added since then would refuse it
// and be sent it again, for ever), and which is further behind than it
// need be.
func (m *Member) freshSnapshots(msgs []*raftpb.Message) error {
	var fresh *raftpb.Snapshot
	for _, msg := range msgs {
		if msg.GetType() != raftpb.MessageType_MsgSnap {
			continue
		}
		if fresh == nil {
			var err error
			if fresh, err = m.currentSnapshot(); err != nil {
				return err
			}
		}
		msg.Snapshot = fresh
		m.snapSent[msg.GetTo()] = m.ticks
	}
	return nil
}

// currentSnapshot returns a snapshot of the state at the applied index.
func (m *Member) currentSnapshot() (*raftpb.Snapshot, error) {
	term, err := m.st.Term(m.applied)
	if err != nil {
		return nil, fmt.Errorf("snapshot for a follower: term of index %d: %w", m.applied, err)
	}
	data, err := m.snapshotData()
	if err != nil {
		return nil, err
	}
	return &raftpb.Snapshot{
		Data: data,
		Metadata: &raftpb.SnapshotMetadata{
			ConfState: proto.Clone(m.confState).(*raftpb.ConfState),
			Index:     proto.Uint64(m.applied),
			Term:      proto.Uint64(term),
		},
	}, nil
}

// snapshotData returns the snapshot container of the state now.
func (m *Member) snapshotData() ([]byte, error) {
	sn, err := m.db.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("snapshot at index %d: %w", m.applied, err)
	}
	defer sn.Close()
	data, err := encodeSnapshot(&m.table, m.dedup, m.compactHashes, sn.WriteTo)
	if err != nil {
		return nil, fmt.Errorf("snapshot at index %d: %w", m.applied, err)
	}
	return data, nil
}

// persist makes a Ready's snapshot, entries and hard state durable.
func (m *Member) persist(rd *raft.Ready) error {
	if !raft.IsEmptySnap(rd.Snapshot) {
		if _, err := decodeSnapshot(rd.Snapshot.GetData()); err != nil {
			return fmt.Errorf("snapshot at index %d from the leader: %w", rd.Snapshot.GetMetadata().GetIndex(), err)
		}
		if err := m.st.ApplySnapshot(rd.Snapshot); err != nil {
			return fmt.Errorf("save snapshot at index %d: %w", rd.Snapshot.GetMetadata().GetIndex(), err)
		}
	}
	if err := m.st.Save(m.hardState(rd), rd.Entries); err != nil {
		return fmt.Errorf("save %d entries: %w", len(rd.Entries), err)
	}
	return nil
}

// hardState returns the hard state to save with a Ready's entries: none
// when only the commit index moved (raft.MustSync false, no snapshot),
// which would cost an fsync of its own on every commit; else the newest
// one raft gave (with the newest commit index). The commit index is
// volatile in raft: one saved behind is told again by the leader, and
// Open raises one behind the newest snapshot (repairHardState). A Ready
// that commits a membership change saves it all the same: the leader that
// would tell it again may be the member it removed, gone for good, and a
// restart that forgot the change would wait for that member's vote.
func (m *Member) hardState(rd *raft.Ready) *raftpb.HardState {
	if rd.HardState != nil {
		m.hs = rd.HardState
	}
	if !rd.MustSync && raft.IsEmptySnap(rd.Snapshot) && !commitsConfChange(rd.CommittedEntries) {
		return nil
	}
	return m.hs
}

// commitsConfChange reports whether ents hold a membership change.
func commitsConfChange(ents []*raftpb.Entry) bool {
	for _, e := range ents {
		if e.GetType() != raftpb.EntryType_EntryNormal {
			return true
		}
	}
	return false
}

// softState follows leadership: a change of leader fails every request
// in flight (their fate is unknown); becoming leader starts the lease
// deadlines afresh, losing it drops them.
func (m *Member) softState(ss *raft.SoftState) {
	oldLead, wasLeader := m.lead, m.state == raft.StateLeader
	m.lead, m.state = ss.Lead, ss.RaftState
	if ss.Lead != oldLead {
		m.failInFlight(ss.Lead, fmt.Errorf("leader %x -> %x: %w", oldLead, ss.Lead, ErrLeaderChanged))
	}
	switch isLeader := ss.RaftState == raft.StateLeader; {
	case isLeader && !wasLeader:
		leases, err := m.db.Leases()
		if err != nil {
			m.log.Error("leases at promotion", "err", err)
		}
		m.leases.promote(leases, m.clock.Now())
	case !isLeader && wasLeader:
		m.leases.demote()
		clear(m.snapSent)
	}
}

// failInFlight fails the proposals and reads made under another leader
// than lead (all of them for lead 0) whose outcome is not known yet: a
// read whose index is known is good whoever leads now.
func (m *Member) failInFlight(lead uint64, err error) {
	for seq, p := range m.proposals {
		if p.lead != lead || lead == raft.None {
			p.resolve(nil, err)
			delete(m.proposals, seq)
		}
	}
	m.failReads(func(_, l uint64) bool { return l == lead && lead != raft.None }, err)
}

// failRequests resolves every proposal and read in flight with err.
func (m *Member) failRequests(err error) {
	for seq, p := range m.proposals {
		p.resolve(nil, err)
		delete(m.proposals, seq)
	}
	m.failReads(func(_, _ uint64) bool { return false }, err)
	for _, r := range m.readWait {
		r.p.resolve(nil, err)
	}
	m.readWait = nil
}

// installSnapshot replaces the member's state with a snapshot from the
// leader. The DB is replaced by a new one: its watchers (and reads of a
// DB value taken before) end with kv.ErrClosed; clients re-watch on DB().
func (m *Member) installSnapshot(snap *raftpb.Snapshot) error {
	if err := m.loadSnapshot(snap); err != nil {
		return err
	}
	m.failInFlight(raft.None, fmt.Errorf("snapshot at index %d installed: %w", m.applied, ErrLeaderChanged))
	m.log.Info("snapshot installed", "index", m.applied)
	return nil
}

// maybeSnapshot takes a local snapshot every SnapshotEntries applied
// entries and compacts the log behind it, keeping CatchUpEntries.
func (m *Member) maybeSnapshot() error {
	if m.applied-m.snapIndex < m.cfg.SnapshotEntries {
		return nil
	}
	return m.snapshot()
}

func (m *Member) snapshot() error {
	data, err := m.snapshotData()
	if err != nil {
		return err
	}
	if _, err := m.st.CreateSnapshot(m.applied, m.confState, data); err != nil {
		return fmt.Errorf("save snapshot at index %d: %w", m.applied, err)
	}
	m.snapIndex = m.applied
	if m.applied <= m.cfg.CatchUpEntries {
		return nil
	}
	to := m.applied - m.cfg.CatchUpEntries
	first, err := m.st.FirstIndex()
	if err != nil {
		return fmt.Errorf("compact the log: %w", err)
	}
	if to < first {
		return nil
	}
	if err := m.st.Compact(to); err != nil {
		return fmt.Errorf("compact the log to %d: %w", to, err)
	}
	return nil
}
