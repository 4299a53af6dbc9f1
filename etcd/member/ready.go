package member

import (
	"fmt"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/revkv/revkv/engine"
)

// Ready processes what raft has ready, in order: it makes the hard
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
//
// Ready returns when raft has nothing more ready, or after many Readys in
// a row when it has messages to return and requests keep arriving while
// it writes: call it again after any Propose, Step or Tick, as ever.
func (m *Member) Ready() ([]*raftpb.Message, error) {
	return m.ReadySend(nil)
}

// ReadySend is Ready for a caller that can send while the member writes:
// before this member's own write of each Ready's entries, it passes to
// send the messages raft allows out in parallel with that write (a
// leader's appends and heartbeats: the leader counts its own copy of an
// entry only once its write is durable, so a commit still needs a
// majority of durable copies; Raft thesis §10.2.1). It returns the rest,
// to send after it returns, as Ready's. send runs without the member's
// lock, on the caller's goroutine; it should not block (it delays the
// write) and may call any method of the member except Ready, ReadySend
// and Close (a transport may ReportUnreachable); it may keep the
// messages. With send nil, ReadySend is Ready.
func (m *Member) ReadySend(send func([]*raftpb.Message)) ([]*raftpb.Message, error) {
	m.readyMu.Lock()
	defer m.readyMu.Unlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.usableForReady(); err != nil {
		return nil, err
	}
	var out []*raftpb.Message
	for n := 0; m.rn.HasReady() && (n < maxReadys || len(out) == 0); n++ {
		rd := m.rn.Ready()
		if send != nil {
			m.sendEarly(&rd, send)
		}
		msgs, err := m.handle(&rd)
		out = append(out, msgs...)
		if err != nil {
			m.stop(err)
			return out, m.err
		}
	}
	return out, nil
}

// maxReadys bounds the Readys one call handles while it has messages to
// return: proposals arriving while it writes (it leaves the lock) make
// more, and the messages would wait for them.
const maxReadys = 16

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

// sendEarly passes to send, without mu, the messages of rd that may go
// out before rd is durable (see takeEarly).
func (m *Member) sendEarly(rd *raft.Ready, send func([]*raftpb.Message)) {
	early := m.takeEarly(rd)
	if len(early) == 0 {
		return
	}
	_ = m.unlocked(func() error { send(early); return nil })
}

// takeEarly removes from rd.Messages, and returns, the messages that may
// be sent before rd is made durable: none unless early(rd).
func (m *Member) takeEarly(rd *raft.Ready) []*raftpb.Message {
	if !m.early(rd) {
		return nil
	}
	var early, rest []*raftpb.Message
	for _, msg := range rd.Messages {
		switch msg.GetType() {
		case raftpb.MessageType_MsgApp, raftpb.MessageType_MsgHeartbeat:
			early = append(early, msg)
		default: // a MsgSnap is made fresh after apply; the rest waits as Ready's
			rest = append(rest, msg)
		}
	}
	rd.Messages = rest
	return early
}

// early reports whether rd's messages may go out before rd is durable:
// only a leader's (followers acknowledge what they wrote), and only when
// rd changes neither the term nor the vote (a message must not reveal a
// term this member could forget in a crash) and installs no snapshot.
// Entries of earlier Readys are durable: each Ready is written before
// the next is taken.
func (m *Member) early(rd *raft.Ready) bool {
	state := m.state
	if rd.SoftState != nil {
		state = rd.SoftState.RaftState
	}
	if state != raft.StateLeader || !raft.IsEmptySnap(rd.Snapshot) {
		return false
	}
	hs := rd.HardState
	return hs == nil || (hs.GetTerm() == m.hs.GetTerm() && hs.GetVote() == m.hs.GetVote())
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
// It encodes without mu (a large DB takes long), as writeSnapshot.
func (m *Member) currentSnapshot() (*raftpb.Snapshot, error) {
	index := m.applied
	term, err := m.st.Term(index)
	if err != nil {
		return nil, fmt.Errorf("snapshot for a follower: term of index %d: %w", index, err)
	}
	meta := &raftpb.SnapshotMetadata{
		ConfState: proto.Clone(m.confState).(*raftpb.ConfState),
		Index:     proto.Uint64(index),
		Term:      proto.Uint64(term),
	}
	sn, err := m.db.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("snapshot at index %d: %w", index, err)
	}
	var data []byte
	err = m.unlocked(func() error {
		data, err = m.encodeSnapshot(index, sn)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &raftpb.Snapshot{Data: data, Metadata: meta}, nil
}

// encodeSnapshot encodes the snapshot container of the member's state
// with sn, the DB at index, and closes sn. Ready runs it without mu:
// only apply and snapshot install, both Ready's, change the member
// table, the dedup record and the compaction hashes, and readyMu keeps
// the next Ready out.
func (m *Member) encodeSnapshot(index uint64, sn *engine.Snapshot) ([]byte, error) {
	defer sn.Close()
	data, err := encodeSnapshot(&m.table, m.dedup, m.compactHashes, sn.WriteTo)
	if err != nil {
		return nil, fmt.Errorf("snapshot at index %d: %w", index, err)
	}
	return data, nil
}

// persist makes a Ready's snapshot, entries and hard state durable. mu
// is held; it is left while entries and hard state are written (see
// save).
func (m *Member) persist(rd *raft.Ready) error {
	if !raft.IsEmptySnap(rd.Snapshot) {
		if _, err := decodeSnapshot(rd.Snapshot.GetData()); err != nil {
			return fmt.Errorf("snapshot at index %d from the leader: %w", rd.Snapshot.GetMetadata().GetIndex(), err)
		}
		if err := m.st.ApplySnapshot(rd.Snapshot); err != nil {
			return fmt.Errorf("save snapshot at index %d: %w", rd.Snapshot.GetMetadata().GetIndex(), err)
		}
	}
	if err := m.save(m.hardState(rd), rd.Entries, raft.IsEmptySnap(rd.Snapshot)); err != nil {
		return fmt.Errorf("save %d entries: %w", len(rd.Entries), err)
	}
	return nil
}

// save writes hs and ents. Unless a snapshot came with them, it leaves mu
// during the write, so that proposals arriving meanwhile batch into the
// next Ready's write and readers do not wait for an fsync. raft allows
// Step, Propose and Tick between Ready and Advance (what it gave is
// unstable until Advance), readyMu keeps out the next Ready and Close,
// and the Storage has a lock of its own.
func (m *Member) save(hs *raftpb.HardState, ents []*raftpb.Entry, unlock bool) error {
	if !unlock || (hs == nil && len(ents) == 0) {
		return m.st.Save(hs, ents)
	}
	return m.unlocked(func() error { return m.st.Save(hs, ents) })
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
	index, cs := m.applied, proto.Clone(m.confState).(*raftpb.ConfState)
	sn, err := m.db.Snapshot()
	if err != nil {
		return fmt.Errorf("snapshot at index %d: %w", index, err)
	}
	if err := m.unlocked(func() error { return m.writeSnapshot(index, cs, sn) }); err != nil {
		return err
	}
	m.snapIndex = index
	return nil
}

// writeSnapshot encodes and saves a snapshot of sn (the DB at index) and
// compacts the log behind it. Ready runs it without mu (see
// encodeSnapshot).
func (m *Member) writeSnapshot(index uint64, cs *raftpb.ConfState, sn *engine.Snapshot) error {
	data, err := m.encodeSnapshot(index, sn)
	if err != nil {
		return err
	}
	if _, err := m.st.CreateSnapshot(index, cs, data); err != nil {
		return fmt.Errorf("save snapshot at index %d: %w", index, err)
	}
	return m.compactLog(index)
}

// compactLog compacts the log behind a snapshot at index, keeping
// CatchUpEntries.
func (m *Member) compactLog(index uint64) error {
	if index <= m.cfg.CatchUpEntries {
		return nil
	}
	to := index - m.cfg.CatchUpEntries
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

// unlocked runs f without mu, which is held. Ready uses it for long
// writes; readyMu (held) keeps the next Ready and Close out.
func (m *Member) unlocked(f func() error) error {
	m.mu.Unlock()
	defer m.mu.Lock()
	return f()
}
