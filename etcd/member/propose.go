package member

import (
	"errors"
	"fmt"
	"slices"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	revkv "github.com/revkv/revkv"
	"github.com/revkv/revkv/kv"
)

// nextID returns a new request ID. mu is held.
func (m *Member) nextID() requestID {
	m.seq++
	return requestID{Member: m.cfg.ID, Epoch: m.epoch, Seq: m.seq}
}

// Propose proposes a change. It does not wait for the log (only for the
// member's lock, which Ready holds while it writes): the returned Pending
// is resolved by the Ready that applies the entry on this member, or fails
// with ErrLeaderChanged, ErrTimeout or ErrStopped, after which the
// request's fate is unknown (it may still commit). Propose itself fails
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
	lead := m.rn.BasicStatus().Lead
	if lead == raft.None {
		return nil, fmt.Errorf("member %x: %w", m.cfg.ID, ErrNoLeader)
	}
	id := m.nextID()
	p := newPending(m.ticks, lead)
	p.data = encodeEntry(id, &req, k)
	if err := m.rn.Propose(p.data); err != nil {
		m.seq-- // not proposed: no gap in the seqs (see dedup)
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
// member list after it; it fails with ErrMemberNotFound, ErrLastVoter, or
// the errors of Propose. A removed member stops (its requests fail with
// ErrStopped; a removed leader still leads, replicating what others
// propose, until they ignore it), but keep driving it (Tick, Step, Ready,
// sending what Ready returns) for a few election timeouts before closing
// it, as etcd does: a member that has not learnt yet that the removal
// committed may need it (a removed leader's entries and commit index, its
// vote for the one member left of a 2-voter cluster).
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
	lead := m.rn.BasicStatus().Lead
	if lead == raft.None {
		return failed(fmt.Errorf("member %x: %w", m.cfg.ID, ErrNoLeader))
	}
	if q := m.confPending; q != nil && !q.resolved() {
		return failed(fmt.Errorf("member %x: a membership change it proposed is in flight: %w", m.cfg.ID, ErrProposalDropped))
	}
	rid := m.nextID()
	cc := &raftpb.ConfChange{
		Type:    typ.Enum(),
		NodeId:  proto.Uint64(id),
		Context: encodeConfContext(confContext{id: rid, promote: promote, peer: peer}),
	}
	p := newPending(m.ticks, lead)
	p.data = cc.Context
	if err := m.rn.ProposeConfChange(cc); err != nil {
		m.seq--
		return failed(m.proposeError(err))
	}
	m.proposals[rid.Seq] = p
	m.confPending = p
	return p
}

// Publish proposes the name and client URLs of member id (a member
// publishes its own when it starts: AddMember records only what the
// adder knew). The Pending's result is the member list after it; it
// fails with ErrMemberNotFound, or the errors of Propose.
func (m *Member) Publish(id uint64, name string, clientURLs []string) *Pending {
	attrs := &Peer{ID: id, Name: name, ClientURLs: slices.Clone(clientURLs)}
	m.mu.Lock()
	_, ok := m.table.members[id]
	m.mu.Unlock()
	if !ok {
		return failed(fmt.Errorf("publish member %x: %w", id, ErrMemberNotFound))
	}
	p, err := m.Propose(Request{attrs: attrs})
	if err != nil {
		return failed(err)
	}
	return p
}

// TransferLeader asks the leader to hand leadership to member to. It
// returns ErrNotLeader on another member (forward it); the transfer
// itself shows in Status once done (or not, if to does not catch up in
// an election timeout). A leader that was removed, and leads on until the
// others ignore it (see RemoveMember), may hand leadership over too.
func (m *Member) TransferLeader(to uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	// Not usable(): a removed member may still lead (closed or failed
	// ones may not).
	if err := m.usableForReady(); err != nil {
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
	if !m.leadsLeases() {
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
