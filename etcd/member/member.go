package member

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	revkv "github.com/revkv/revkv"
	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/kv"
)

// Member is one member of a replicated revkv cluster: a raft node
// (raft.RawNode) whose committed entries are applied to a revkv DB. It is a
// deterministic state machine: it has no goroutine, reads no clock but
// Config.Clock (for lease deadlines only) and does no network I/O. Its
// driver calls Tick at a fixed interval, Step for each message from a
// peer, and Ready after either (and after proposing), sending the
// messages Ready returns.
//
// Every method is safe for concurrent use: one mutex serializes them.
// Ready holds it while it writes the log (fsync) and applies entries.
type Member struct {
	mu    sync.Mutex
	cfg   Config
	log   *slog.Logger
	clock engine.Clock
	st    Storage
	rn    *raft.RawNode
	db    *revkv.DB
	// idx is the index of the entry being applied: the DB's
	// ConsistentIndex getter reads it.
	idx *indexGetter

	applied   uint64
	snapIndex uint64 // the newest snapshot's index (local or installed)
	confState *raftpb.ConfState
	table     membership

	lead  uint64
	state raft.StateType
	// epoch and seq make request IDs (see requestID).
	epoch, seq uint64
	ticks      uint64

	proposals map[uint64]*Pending // by seq
	reads     map[uint64]*Pending // by seq, until raft gives the read index
	readWait  []readWait          // read index known, waiting for apply
	leases    leaderLeases

	removed bool
	closed  bool
	err     error // a storage or apply failure: the member is stopped
}

type readWait struct {
	index uint64
	p     *Pending
}

// indexGetter is the DB's engine.ConsistentIndexGetter.
type indexGetter struct{ v atomic.Uint64 }

func (g *indexGetter) ConsistentIndex() uint64 { return g.v.Load() }

// Open opens a member. With an empty log it bootstraps a new cluster from
// cfg.Peers, or, with cfg.Join, starts empty and waits for the leader to
// send it the state. With a log (a restart), it loads the newest snapshot
// into a fresh DB and raft replays the committed entries after it (Peers
// and Join are then ignored). Close the member when done.
func Open(cfg Config) (*Member, error) {
	c, err := cfg.withDefaults()
	if err != nil {
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
		reads:     map[uint64]*Pending{},
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
	m.epoch = last
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
		StepDownOnRemoval:         true,
		Logger:                    raftLogger{m.log.With("raft", c.ID)},
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

// loadSnapshot makes the member's state snap's (or an empty DB for an
// empty snap): a new DB, the member table, the applied index.
func (m *Member) loadSnapshot(snap *raftpb.Snapshot) error {
	var engineBytes []byte
	table := newMembership()
	if !raft.IsEmptySnap(snap) {
		c, err := decodeSnapshot(snap.GetData())
		if err != nil {
			return fmt.Errorf("snapshot at index %d: %w", snap.GetMetadata().GetIndex(), err)
		}
		engineBytes, table = c.engine, c.table
	}
	db, err := m.openDB(engineBytes)
	if err != nil {
		return fmt.Errorf("snapshot at index %d: DB: %w", snap.GetMetadata().GetIndex(), err)
	}
	old := m.db
	m.db, m.table = db, table
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

// usable returns the error a request gets from a member that cannot take
// it, or nil. mu is held.
func (m *Member) usable() error {
	switch {
	case m.closed:
		return fmt.Errorf("member %x closed: %w", m.cfg.ID, ErrStopped)
	case m.err != nil:
		return m.err
	case m.removed:
		return fmt.Errorf("member %x was removed from the cluster: %w", m.cfg.ID, ErrStopped)
	}
	return nil
}

// Tick advances raft's logical clock by one tick. On the leader it also
// proposes a LeaseRevoke for every lease whose deadline passed (see
// leaderLeases). Call Ready after it.
func (m *Member) Tick() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || m.err != nil {
		return
	}
	m.ticks++
	m.rn.Tick()
	m.expireLeases()
	if m.ticks%uint64(m.cfg.ElectionTick) == 0 {
		m.timeOut()
	}
}

// expireLeases proposes a revoke for each lease due. mu is held.
func (m *Member) expireLeases() {
	if m.state != raft.StateLeader {
		return
	}
	for _, id := range m.leases.expired(m.clock.Now(), m.ticks, 2*uint64(m.cfg.ElectionTick)) {
		req := Request{LeaseRevoke: id}
		data := encodeEntry(m.nextID(), &req, kindLeaseRevoke)
		if err := m.rn.Propose(data); err != nil {
			m.log.Debug("lease expiry: revoke not proposed", "lease", id, "err", err)
			return // retried after the retry interval
		}
	}
}

// timeOut fails the requests older than Config.RequestTimeoutTicks. mu is
// held.
func (m *Member) timeOut() {
	limit := uint64(m.cfg.RequestTimeoutTicks)
	if m.ticks < limit {
		return
	}
	old := m.ticks - limit
	err := fmt.Errorf("no outcome after %d ticks: %w", limit, ErrTimeout)
	for seq, p := range m.proposals {
		if p.tick < old {
			p.resolve(nil, err)
			delete(m.proposals, seq)
		}
	}
	for seq, p := range m.reads {
		if p.tick < old {
			p.resolve(nil, err)
			delete(m.reads, seq)
		}
	}
}

// Step hands raft a message from a peer. Call Ready after it.
func (m *Member) Step(msg *raftpb.Message) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return fmt.Errorf("member %x closed: %w", m.cfg.ID, ErrStopped)
	}
	if m.err != nil {
		return m.err
	}
	if err := m.rn.Step(msg); err != nil {
		return fmt.Errorf("member %x: step %v from %x: %w", m.cfg.ID, msg.GetType(), msg.GetFrom(), err)
	}
	return nil
}

// ReportUnreachable tells raft that the last message to peer id could not
// be sent (the transport calls it).
func (m *Member) ReportUnreachable(id uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.closed {
		m.rn.ReportUnreachable(id)
	}
}

// ReportSnapshot tells raft whether the snapshot sent to peer id (a
// MsgSnap Ready returned) arrived. The transport must call it for every
// MsgSnap it sends.
func (m *Member) ReportSnapshot(id uint64, failed bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	status := raft.SnapshotFinish
	if failed {
		status = raft.SnapshotFailure
	}
	m.rn.ReportSnapshot(id, status)
}

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
	if rd.SoftState != nil {
		m.softState(rd.SoftState)
	}
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
	m.rn.Advance(*rd)
	m.resolveReads()
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
	data, err := encodeSnapshot(&m.table, sn.WriteTo)
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
	if err := m.st.Save(rd.HardState, rd.Entries); err != nil {
		return fmt.Errorf("save %d entries: %w", len(rd.Entries), err)
	}
	return nil
}

// softState follows leadership: a change of leader fails every request
// in flight (their fate is unknown); becoming leader starts the lease
// deadlines afresh, losing it drops them.
func (m *Member) softState(ss *raft.SoftState) {
	oldLead, wasLeader := m.lead, m.state == raft.StateLeader
	m.lead, m.state = ss.Lead, ss.RaftState
	if ss.Lead != oldLead {
		m.failRequests(fmt.Errorf("leader %x -> %x: %w", oldLead, ss.Lead, ErrLeaderChanged))
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
	}
}

// failRequests resolves every proposal and read in flight with err.
func (m *Member) failRequests(err error) {
	for seq, p := range m.proposals {
		p.resolve(nil, err)
		delete(m.proposals, seq)
	}
	for seq, p := range m.reads {
		p.resolve(nil, err)
		delete(m.reads, seq)
	}
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
	m.failRequests(fmt.Errorf("snapshot at index %d installed: %w", m.applied, ErrLeaderChanged))
	m.log.Info("snapshot installed", "index", m.applied)
	return nil
}

// apply applies one committed entry.
func (m *Member) apply(e *raftpb.Entry) error {
	i := e.GetIndex()
	if i <= m.applied {
		return nil // covered by an installed snapshot
	}
	m.idx.v.Store(i) // before any write: the DB records it
	var err error
	switch e.GetType() {
	case raftpb.EntryType_EntryNormal:
		if len(e.GetData()) > 0 { // empty: a new leader's no-op
			err = m.applyRequest(e.GetData())
		}
	case raftpb.EntryType_EntryConfChange:
		var cc raftpb.ConfChange
		if err = proto.Unmarshal(e.GetData(), &cc); err == nil {
			err = m.applyConfChange(&cc)
		} else {
			err = fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
	case raftpb.EntryType_EntryConfChangeV2:
		// Never proposed by a member (no joint configurations), but raft's
		// own must be applied for it to go on.
		var cc raftpb.ConfChangeV2
		if err = proto.Unmarshal(e.GetData(), &cc); err == nil {
			m.confState = m.rn.ApplyConfChange(&cc)
		} else {
			err = fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
	}
	if err != nil {
		return fmt.Errorf("apply entry %d: %w", i, err)
	}
	m.applied = i
	return nil
}

// applyRequest applies a normal entry and resolves its proposer's Pending.
func (m *Member) applyRequest(data []byte) error {
	id, req, err := decodeEntry(data)
	if err != nil {
		return err
	}
	res, err := m.execute(&req)
	if errors.Is(err, kv.ErrClosed) || errors.Is(err, kv.ErrStopped) {
		return err // the DB itself failed: not the request's outcome
	}
	if id.Member == m.cfg.ID && id.Epoch == m.epoch {
		if p, ok := m.proposals[id.Seq]; ok && bytes.Equal(p.data, data) {
			p.resolve(res, err)
			delete(m.proposals, id.Seq)
		}
	}
	return nil
}

// execute runs a request on the DB. A request the DB refuses (a bad txn,
// a revoke of a lease that is gone) is refused the same way on every
// member: that is its outcome, and the log goes on.
func (m *Member) execute(req *Request) (any, error) {
	switch {
	case req.Txn != nil:
		return m.db.Txn(context.Background(), req.Txn)
	case req.Compact != nil:
		return nil, m.db.Compact(*req.Compact)
	case req.LeaseGrant != nil:
		l, err := m.db.Grant(req.LeaseGrant.ID, req.LeaseGrant.TTL)
		if err == nil {
			m.leases.granted(l.ID, l.TTL, m.clock.Now())
		}
		return l, err
	default:
		rev, err := m.db.Revoke(req.LeaseRevoke)
		m.leases.revoked(req.LeaseRevoke)
		return rev, err
	}
}

// applyConfChange applies a membership change: to raft's configuration
// and to the member table, or, if the table refuses it (the same decision
// on every member), to neither.
func (m *Member) applyConfChange(cc *raftpb.ConfChange) error {
	var ctx confContext
	if len(cc.GetContext()) > 0 {
		var err error
		if ctx, err = decodeConfContext(cc.GetContext()); err != nil {
			return err
		}
	}
	id := cc.GetNodeId()
	verr := m.table.validate(cc.GetType(), id, &ctx.peer, ctx.promote)
	if verr != nil {
		cc.NodeId = proto.Uint64(0) // raft skips a change of node 0
	}
	m.confState = m.rn.ApplyConfChange(cc)
	if verr == nil {
		m.table.apply(cc.GetType(), id, &ctx.peer, ctx.promote)
		if id == m.cfg.ID && cc.GetType() == raftpb.ConfChangeType_ConfChangeRemoveNode {
			m.removed = true
			m.log.Info("removed from the cluster")
		}
	}
	if ctx.id.Member == m.cfg.ID && ctx.id.Epoch == m.epoch {
		if p, ok := m.proposals[ctx.id.Seq]; ok {
			var res any
			if verr == nil {
				res = m.table.list()
			}
			p.resolve(res, verr)
			delete(m.proposals, ctx.id.Seq)
		}
	}
	return nil
}

// readStates moves the reads raft answered to the wait for apply.
func (m *Member) readStates(rss []raft.ReadState) {
	for _, rs := range rss {
		d := &decoder{b: rs.RequestCtx}
		id := d.id()
		if d.done() != nil || id.Member != m.cfg.ID || id.Epoch != m.epoch {
			continue
		}
		if p, ok := m.reads[id.Seq]; ok {
			delete(m.reads, id.Seq)
			m.readWait = append(m.readWait, readWait{index: rs.Index, p: p})
		}
	}
}

// resolveReads resolves the reads whose index is applied.
func (m *Member) resolveReads() {
	keep := m.readWait[:0]
	for _, r := range m.readWait {
		if r.index <= m.applied {
			r.p.resolve(r.index, nil)
		} else {
			keep = append(keep, r)
		}
	}
	clear(m.readWait[len(keep):])
	m.readWait = keep
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

// nextID returns a new request ID. mu is held.
func (m *Member) nextID() requestID {
	m.seq++
	return requestID{Member: m.cfg.ID, Epoch: m.epoch, Seq: m.seq}
}

// Propose proposes a change. It never blocks: the returned Pending is
// resolved by the Ready that applies the entry on this member (or fails
// with ErrLeaderChanged, ErrTimeout or ErrStopped). Propose itself fails
// with ErrInvalidRequest, ErrNoLeader, ErrProposalDropped or ErrStopped;
// then nothing was proposed.
func (m *Member) Propose(req Request) (*Pending, error) {
	k, err := req.kind()
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.usable(); err != nil {
		return nil, err
	}
	if m.lead == raft.None {
		return nil, fmt.Errorf("member %x: %w", m.cfg.ID, ErrNoLeader)
	}
	id := m.nextID()
	p := newPending(m.ticks)
	p.data = encodeEntry(id, &req, k)
	if err := m.rn.Propose(p.data); err != nil {
		return nil, m.proposeError(err)
	}
	m.proposals[id.Seq] = p
	return p, nil
}

func (m *Member) proposeError(err error) error {
	if errors.Is(err, raft.ErrProposalDropped) {
		return fmt.Errorf("member %x: %w", m.cfg.ID, ErrProposalDropped)
	}
	return fmt.Errorf("member %x: propose: %w", m.cfg.ID, err)
}

// ReadIndex asks the leader for its commit index (raft's ReadIndex). The
// Pending is resolved, with that index (a uint64), once this member has
// applied it: a read of DB() then sees every write committed before
// ReadIndex was called (a linearizable read). It fails with ErrNoLeader,
// ErrLeaderChanged, ErrTimeout or ErrStopped.
func (m *Member) ReadIndex() *Pending {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.usable(); err != nil {
		return failed(err)
	}
	if m.lead == raft.None {
		return failed(fmt.Errorf("member %x: %w", m.cfg.ID, ErrNoLeader))
	}
	id := m.nextID()
	e := &encoder{}
	e.id(id)
	p := newPending(m.ticks)
	m.reads[id.Seq] = p
	m.rn.ReadIndex(e.b)
	return p
}

// AddMember proposes adding p to the cluster, as a learner if
// p.IsLearner. The Pending's result is the member list after it
// ([]Peer); it fails with ErrMemberExists (the ID, or a peer URL, is
// taken), ErrIDRemoved, or the errors of Propose.
func (m *Member) AddMember(p Peer) *Pending {
	typ := raftpb.ConfChangeType_ConfChangeAddNode
	if p.IsLearner {
		typ = raftpb.ConfChangeType_ConfChangeAddLearnerNode
	}
	return m.proposeConfChange(typ, p.ID, p, false)
}

// RemoveMember proposes removing member id. The Pending's result is the
// member list after it; it fails with ErrMemberNotFound, or the errors of
// Propose. A removed member stops (its requests fail with ErrStopped).
func (m *Member) RemoveMember(id uint64) *Pending {
	return m.proposeConfChange(raftpb.ConfChangeType_ConfChangeRemoveNode, id, Peer{ID: id}, false)
}

// PromoteMember proposes making learner id a voter. Only the leader knows
// how far behind the learner is: on another member it fails with
// ErrNotLeader (forward it). It fails with ErrNotLearner,
// ErrMemberNotFound, ErrLearnerNotReady (the learner's log is below 90%
// of the leader's), or the errors of Propose.
func (m *Member) PromoteMember(id uint64) *Pending {
	m.mu.Lock()
	err := m.learnerReady(id)
	m.mu.Unlock()
	if err != nil {
		return failed(err)
	}
	return m.proposeConfChange(raftpb.ConfChangeType_ConfChangeAddNode, id, Peer{ID: id}, true)
}

// learnerReady reports whether learner id may be promoted. mu is held.
func (m *Member) learnerReady(id uint64) error {
	if m.state != raft.StateLeader {
		return fmt.Errorf("promote member %x on member %x: %w", id, m.cfg.ID, ErrNotLeader)
	}
	st := m.rn.Status()
	pr, ok := st.Progress[id]
	if !ok || !pr.IsLearner {
		return nil // validate says why
	}
	if lm := st.Progress[m.cfg.ID].Match; pr.Match*10 < lm*9 {
		return fmt.Errorf("learner %x at index %d, leader at %d: %w", id, pr.Match, lm, ErrLearnerNotReady)
	}
	return nil
}

// UpdateMember proposes new peer URLs for member id. The Pending's
// result is the member list after it; it fails with ErrMemberNotFound,
// ErrMemberExists (a URL another member has), or the errors of Propose.
func (m *Member) UpdateMember(id uint64, peerURLs []string) *Pending {
	return m.proposeConfChange(raftpb.ConfChangeType_ConfChangeUpdateNode, id, Peer{ID: id, PeerURLs: peerURLs}, false)
}

func (m *Member) proposeConfChange(typ raftpb.ConfChangeType, id uint64, peer Peer, promote bool) *Pending {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.usable(); err != nil {
		return failed(err)
	}
	if err := m.table.validate(typ, id, &peer, promote); err != nil {
		return failed(err)
	}
	if m.lead == raft.None {
		return failed(fmt.Errorf("member %x: %w", m.cfg.ID, ErrNoLeader))
	}
	rid := m.nextID()
	cc := &raftpb.ConfChange{
		Type:    typ.Enum(),
		NodeId:  proto.Uint64(id),
		Context: encodeConfContext(confContext{id: rid, promote: promote, peer: peer}),
	}
	p := newPending(m.ticks)
	if err := m.rn.ProposeConfChange(cc); err != nil {
		return failed(m.proposeError(err))
	}
	m.proposals[rid.Seq] = p
	return p
}

// TransferLeader asks the leader to hand leadership to member to. It
// returns ErrNotLeader on another member (forward it); the transfer
// itself shows in Status once done (or not, if to does not catch up in
// an election timeout).
func (m *Member) TransferLeader(to uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.usable(); err != nil {
		return err
	}
	if m.state != raft.StateLeader {
		return fmt.Errorf("transfer leadership from member %x: %w", m.cfg.ID, ErrNotLeader)
	}
	if _, ok := m.table.members[to]; !ok {
		return fmt.Errorf("transfer leadership to %x: %w", to, ErrMemberNotFound)
	}
	m.rn.TransferLeader(to)
	return nil
}

// KeepAlive renews lease id on the leader: it is due its granted TTL from
// now (on Config.Clock). It returns that TTL. Renewals are leader-local,
// not logged. On another member it is ErrNotLeader (forward it); a lease
// that is not live, or already due, is kv.ErrLeaseNotFound.
func (m *Member) KeepAlive(id int64) (ttl int64, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.usable(); err != nil {
		return 0, err
	}
	if m.state != raft.StateLeader {
		return 0, fmt.Errorf("keep-alive of lease %d on member %x: %w", id, m.cfg.ID, ErrNotLeader)
	}
	ls, err := m.db.TimeToLive(id, false)
	if err != nil {
		return 0, err
	}
	if !m.leases.renew(id, ls.GrantedTTL, m.clock.Now()) {
		return 0, fmt.Errorf("keep-alive of lease %d: due: %w", id, kv.ErrLeaseNotFound)
	}
	return ls.GrantedTTL, nil
}

// TimeToLive reports a live lease's remaining and granted TTL (and with
// keys its keys). On the leader the remaining TTL is the leader's
// deadline; elsewhere it is the DB's, from when the member applied the
// grant, which ignores renewals (ask the leader for the true one).
func (m *Member) TimeToLive(id int64, keys bool) (revkv.LeaseStatus, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ls, err := m.db.TimeToLive(id, keys)
	if err != nil {
		return ls, err
	}
	if ttl, ok := m.leases.remaining(id, m.clock.Now()); ok {
		ls.TTL = ttl
	}
	return ls, nil
}

// DB returns the state machine: read it, watch it, never write it (every
// change goes through Propose). A snapshot installed from the leader
// replaces it with a new DB and closes the old one (its watchers end,
// its reads fail with kv.ErrClosed): call DB again for each request.
func (m *Member) DB() *revkv.DB {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.db
}

// Status is a member's view of the cluster.
type Status struct {
	ID        uint64
	Leader    uint64 // 0: none known
	Term      uint64
	Committed uint64 // raft's commit index
	Applied   uint64 // the last entry applied to the DB
	// SnapshotIndex is the index of the newest snapshot taken or installed.
	SnapshotIndex uint64
	IsLearner     bool
	Removed       bool
}

// Status returns the member's status.
func (m *Member) Status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	bs := m.rn.BasicStatus()
	return Status{
		ID:            m.cfg.ID,
		Leader:        bs.Lead,
		Term:          bs.HardState.GetTerm(),
		Committed:     bs.HardState.GetCommit(),
		Applied:       m.applied,
		SnapshotIndex: m.snapIndex,
		IsLearner:     m.table.members[m.cfg.ID].IsLearner,
		Removed:       m.removed,
	}
}

// Members returns the member table, in ID order.
func (m *Member) Members() []Peer {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.table.list()
}

// IsRemoved reports whether id was a member that was removed (its
// messages should be dropped).
func (m *Member) IsRemoved(id uint64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.table.removed[id]
}

// Close stops the member: every request in flight fails with ErrStopped,
// the DB is closed (its watchers end) and so is the storage. Later calls
// return ErrStopped.
func (m *Member) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return fmt.Errorf("member %x closed: %w", m.cfg.ID, ErrStopped)
	}
	m.closed = true
	m.failRequests(fmt.Errorf("member %x closed: %w", m.cfg.ID, ErrStopped))
	return errors.Join(m.db.Close(), m.st.Close())
}
