package member

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

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
// Ready holds it while it applies entries, not while it writes the log
// (fsync): Propose, Step, Tick and the accessors go on meanwhile.
type Member struct {
	mu sync.Mutex
	// readyMu serializes Ready and Close: Ready leaves mu while it writes
	// the log, and raft takes no second Ready before Advance.
	readyMu sync.Mutex
	cfg     Config
	log     *slog.Logger
	clock   engine.Clock
	st      Storage
	rn      *raft.RawNode
	db      *revkv.DB
	// idx is the index of the entry being applied: the DB's
	// ConsistentIndex getter reads it.
	idx *indexGetter

	hs        *raftpb.HardState // the newest raft gave (see hardState)
	applied   uint64
	snapIndex uint64 // the newest snapshot's index (local or installed)
	confState *raftpb.ConfState
	table     membership
	dedup     dedup // the proposals applied (replicated state)
	// compactHashes are the hashes of the history up to each of the last
	// compactions' revisions, oldest first (replicated state).
	compactHashes []kv.KeyValueHash

	lead  uint64
	state raft.StateType
	// epoch and seq make request IDs (see requestID); readSeq numbers
	// read indexes apart, so that the proposals' seqs have no gaps.
	epoch, seq, readSeq uint64
	ticks               uint64

	proposals map[uint64]*Pending   // by seq
	reads     map[uint64]*readBatch // raft read requests in flight, by seq
	nextReads []*Pending            // reads for the next request (read.go)
	readWait  []readWait            // read index known, waiting for apply
	leases    leaderLeases
	// snapSent holds the tick at which a MsgSnap to each peer was
	// returned by Ready and not yet reported (ReportSnapshot).
	snapSent map[uint64]uint64
	// confPending is this member's last membership change proposal: raft
	// silently drops a ConfChange while another is uncommitted, so the
	// member proposes one at a time.
	confPending *Pending

	removed bool
	closed  bool
	err     error // a storage or apply failure: the member is stopped
}

// indexGetter is the DB's engine.ConsistentIndexGetter.
type indexGetter struct{ v atomic.Uint64 }

func (g *indexGetter) ConsistentIndex() uint64 { return g.v.Load() }

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
	m.issueReads()
	if m.ticks%uint64(m.cfg.ElectionTick) == 0 {
		m.timeOut()
		m.timeOutSnapshots()
	}
}

// leadsLeases reports whether the member may decide on its lease
// deadlines: raft says it leads now (a Step since the last Ready may have
// deposed it, and a deposed leader's revoke would be forwarded to the new
// leader, which renewed the lease) and the last Ready saw it lead (its
// deadline table is started). mu is held.
func (m *Member) leadsLeases() bool {
	return m.state == raft.StateLeader && m.rn.BasicStatus().RaftState == raft.StateLeader
}

// expireLeases proposes a revoke for each lease due. mu is held.
func (m *Member) expireLeases() {
	if !m.leadsLeases() {
		return
	}
	for _, id := range m.leases.expired(m.clock.Now(), m.ticks, 2*uint64(m.cfg.ElectionTick)) {
		req := Request{LeaseRevoke: id}
		data := encodeEntry(m.nextID(), &req, kindLeaseRevoke)
		if err := m.rn.Propose(data); err != nil {
			m.seq-- // not proposed: no gap in the seqs
			m.log.Debug("lease expiry: revoke not proposed", "lease", id, "err", err)
			return // retried after the retry interval
		}
	}
}

// timeOutSnapshots reports as failed the snapshots sent more than
// RequestTimeoutTicks ago and never reported: raft would wait for the
// report for ever, sending the peer nothing. mu is held.
func (m *Member) timeOutSnapshots() {
	var lost []uint64
	for id, t := range m.snapSent {
		if m.ticks-t >= uint64(m.cfg.RequestTimeoutTicks) {
			lost = append(lost, id)
		}
	}
	slices.Sort(lost) // raft's state must not depend on map order
	for _, id := range lost {
		delete(m.snapSent, id)
		m.log.Warn("snapshot sent but never reported: taken as lost", "peer", id)
		m.rn.ReportSnapshot(id, raft.SnapshotFailure)
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
	m.failReads(func(tick, _ uint64) bool { return tick >= old }, err)
	// A read whose index is known waits for entries that may never come
	// (the member cut off from the leader's appends, or removed while
	// cut off): it times out as well.
	keep := m.readWait[:0]
	for _, r := range m.readWait {
		if r.p.tick < old {
			r.p.resolve(nil, err)
		} else {
			keep = append(keep, r)
		}
	}
	clear(m.readWait[len(keep):])
	m.readWait = keep
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
// MsgSnap it sends: until then the leader sends that peer nothing but
// heartbeats. (A report that never comes, as for a MsgSnap lost with its
// recipient's crash, is taken as a failure after RequestTimeoutTicks.)
func (m *Member) ReportSnapshot(id uint64, failed bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	delete(m.snapSent, id)
	status := raft.SnapshotFinish
	if failed {
		status = raft.SnapshotFailure
	}
	m.rn.ReportSnapshot(id, status)
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

// keptCompactionHashes is how many compactions' hashes a member keeps, as
// etcd does.
const keptCompactionHashes = 10

// CompactionHash returns the hash of the history up to rev (HashByRev)
// as it was just before the compaction at rev was applied, if rev is one
// of the last compactions: the same on every member, though the history
// below rev is gone (etcd's HashKV at a compacted revision).
func (m *Member) CompactionHash(rev int64) (kv.KeyValueHash, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, h := range m.compactHashes {
		if h.Rev == rev {
			return h, true
		}
	}
	return kv.KeyValueHash{}, false
}

// IsRemoved reports whether id was a member that was removed (its
// messages should be dropped).
func (m *Member) IsRemoved(id uint64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.table.removed[id]
}

// Close stops the member: every request in flight fails with ErrStopped,
// the DB is closed (its watchers end) and so is the storage. Later
// requests, Step, Ready, KeepAlive and Close return ErrStopped (TimeToLive
// the closed DB's kv.ErrClosed); Tick and the Report methods do nothing;
// Status, Members and the other accessors still answer.
func (m *Member) Close() error {
	m.readyMu.Lock() // not while Ready writes to the storage
	defer m.readyMu.Unlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return fmt.Errorf("member %x closed: %w", m.cfg.ID, ErrStopped)
	}
	m.closed = true
	m.failRequests(fmt.Errorf("member %x closed: %w", m.cfg.ID, ErrStopped))
	return errors.Join(m.db.Close(), m.st.Close())
}
