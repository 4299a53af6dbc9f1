package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/revkv/revkv"
	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/etcd/member"
	"github.com/revkv/revkv/etcd/server"
	"github.com/revkv/revkv/kv"
	"github.com/revkv/revkv/watch"
)

var (
	_ server.Backend          = (*Node)(nil)
	_ server.Lessor           = (*Node)(nil)
	_ server.Replicated       = (*Node)(nil)
	_ server.CompactionHasher = (*Node)(nil)
)

// The server.Backend methods. Reads are the member's DB's, local: the
// server calls ReadBarrier first for a linearizable one.

// Rev is the revision of the member's DB.
func (n *Node) Rev() int64 { return n.db().Rev() }

// CompactRev is the compacted revision of the member's DB.
func (n *Node) CompactRev() int64 { return n.db().CompactRev() }

// Range reads the member's DB, unless the member no longer serves
// (server.ErrStopped).
func (n *Node) Range(key, end []byte, opts kv.RangeOptions) (kv.RangeResult, error) {
	if err := n.stopped(); err != nil {
		return kv.RangeResult{}, err
	}
	res, err := n.db().Range(key, end, opts)
	if errors.Is(err, kv.ErrClosed) && n.stopped() == nil {
		// A snapshot from the leader replaced the DB under the read.
		res, err = n.freshDB().Range(key, end, opts)
	}
	return res, err
}

// Txn proposes a txn and returns its outcome once applied here. A txn
// that only reads (kv.TxnRequest.ReadOnly) is not proposed: it runs on
// this member's DB, as a Range does, and is linearizable if the caller
// passed ReadBarrier first (the Server does, unless every range in it is
// serializable).
func (n *Node) Txn(ctx context.Context, req *kv.TxnRequest) (*kv.TxnResponse, error) {
	if req.ReadOnly() {
		return n.readTxn(ctx, req)
	}
	res, err := n.propose(ctx, member.Request{Txn: req})
	if err != nil {
		return nil, err
	}
	return res.(*kv.TxnResponse), nil
}

// readTxn runs a txn without writes on the member's DB.
func (n *Node) readTxn(ctx context.Context, req *kv.TxnRequest) (*kv.TxnResponse, error) {
	if err := n.stopped(); err != nil {
		return nil, err
	}
	res, err := n.db().Txn(ctx, req)
	if errors.Is(err, kv.ErrClosed) && n.stopped() == nil {
		// A snapshot from the leader replaced the DB under the read.
		res, err = n.freshDB().Txn(ctx, req)
	}
	return res, err
}

// Compact proposes a compaction, and returns once applied here.
func (n *Node) Compact(ctx context.Context, rev int64) error {
	_, err := n.propose(ctx, member.Request{Compact: &rev})
	return err
}

// HashByRev hashes the member's DB.
func (n *Node) HashByRev(rev int64) (kv.KeyValueHash, error) { return n.db().HashByRev(rev) }

// NewWatcher watches the member's DB. A snapshot installed from the
// leader replaces the DB and ends the watcher: the server ends the stream
// and clients watch again (clientv3 does, from the revision it reached).
func (n *Node) NewWatcher() *watch.Watcher { return n.freshDB().NewWatcher() }

// CompactionHash returns the hash every member took of the history up to
// rev as it applied the compaction at rev (HashKV there is the same on
// every member).
func (n *Node) CompactionHash(rev int64) (kv.KeyValueHash, bool) { return n.m.CompactionHash(rev) }

// Snapshot snapshots the member's DB.
func (n *Node) Snapshot() (*engine.Snapshot, error) { return n.db().Snapshot() }

// The server.Lessor methods: grants and revokes are proposed; keep-alives
// and TimeToLive are the leader's, forwarded to it from a follower.

// LeaseGrant proposes a lease grant.
func (n *Node) LeaseGrant(ctx context.Context, id, ttl int64) (int64, int64, error) {
	res, err := n.propose(ctx, member.Request{LeaseGrant: &member.LeaseGrant{ID: id, TTL: ttl}})
	if err != nil {
		return 0, 0, err
	}
	l := res.(revkv.Lease)
	return l.ID, l.TTL, nil
}

// LeaseRevoke proposes a lease revoke.
func (n *Node) LeaseRevoke(ctx context.Context, id int64) error {
	_, err := n.propose(ctx, member.Request{LeaseRevoke: id})
	return err
}

// LeaseKeepAlive renews a lease on the leader: here, or forwarded.
func (n *Node) LeaseKeepAlive(ctx context.Context, id int64) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	defer cancel()
	var ttl int64
	err := n.atLeader(ctx, func(leader uint64) (err error) {
		if leader == n.cfg.ID {
			ttl, err = n.m.KeepAlive(id)
		} else {
			ttl, err = n.tr.KeepAlive(ctx, leader, id)
		}
		return err
	})
	return ttl, err
}

// LeaseTimeToLive reports a lease as the leader knows it (a follower's
// DB does not see renewals): here, or forwarded.
func (n *Node) LeaseTimeToLive(ctx context.Context, id int64, keys bool) (int64, int64, [][]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	defer cancel()
	var ttl, granted int64
	var attached [][]byte
	err := n.atLeader(ctx, func(leader uint64) (err error) {
		if leader == n.cfg.ID {
			var ls revkv.LeaseStatus
			ls, err = n.m.TimeToLive(id, keys)
			ttl, granted, attached = ls.TTL, ls.GrantedTTL, ls.Keys
		} else {
			ttl, granted, attached, err = n.tr.TimeToLive(ctx, leader, id, keys)
		}
		return err
	})
	return ttl, granted, attached, err
}

// LeaseIDs lists the live leases of the member's DB.
func (n *Node) LeaseIDs() ([]int64, error) {
	ls, err := n.db().Leases()
	ids := make([]int64, len(ls))
	for i, l := range ls {
		ids[i] = l.ID
	}
	return ids, err
}

// atLeader runs call with the current leader's ID until it succeeds or
// fails with an error that another leader would not change: while there
// is no leader, or the one called is not (or no longer) the leader or
// cannot be reached, it waits a tick and tries again, until ctx ends.
func (n *Node) atLeader(ctx context.Context, call func(leader uint64) error) error {
	for {
		if err := n.stopped(); err != nil {
			return err
		}
		err := fmt.Errorf("member %x: %w", n.cfg.ID, member.ErrNoLeader)
		if leader := n.status.Load().Leader; leader != 0 {
			err = call(leader)
			if !errors.Is(err, member.ErrNotLeader) && !errors.Is(err, ErrUnreachable) {
				return serverError(err)
			}
		}
		select {
		case <-ctx.Done():
			return serverError(err)
		case <-time.After(n.cfg.TickInterval):
		}
	}
}

// The server.Replicated methods.

// ReadBarrier waits until the member has applied the leader's commit
// index as of the call (raft's ReadIndex), waiting for a leader if there
// is none, and asking again if the leader changes or the read times out
// (a read has no side effect: asking twice is harmless). A learner does
// not serve linearizable reads, as in etcd.
func (n *Node) ReadBarrier(ctx context.Context) error {
	if err := n.stopped(); err != nil {
		return err
	}
	if n.status.Load().IsLearner {
		return fmt.Errorf("member %x: %w", n.cfg.ID, server.ErrNotSupportedForLearner)
	}
	again := func(err error) bool {
		return retryable(err) || errors.Is(err, member.ErrLeaderChanged) || errors.Is(err, member.ErrTimeout)
	}
	_, err := n.retry(ctx, again, func() (*member.Pending, error) { return early(n.m.ReadIndex()) })
	return serverError(err)
}

// Header returns the cluster ID, the member ID and the raft term.
func (n *Node) Header() (clusterID, memberID, term uint64) {
	return n.clusterID, n.cfg.ID, n.status.Load().Term
}

// Status reports the member's raft state (as of its last Ready).
func (n *Node) Status() server.RaftStatus {
	st := n.status.Load()
	return server.RaftStatus{Leader: st.Leader, Term: st.Term, Index: st.Committed, Applied: st.Applied, IsLearner: st.IsLearner}
}

// Members lists the cluster's members. A member's name and client URLs
// are the member table's (each member publishes its own at start), or,
// until it has, what the member told of itself: this one from its
// Config, the others when they opened their streams.
func (n *Node) Members() []server.Member {
	ms := serverMembers(n.m.Members())
	for i := range ms {
		m := &ms[i]
		a := Attributes{Name: n.cfg.Name, ClientURLs: n.cfg.ClientURLs}
		if m.ID != n.cfg.ID {
			a, _ = n.tr.PeerAttributes(m.ID)
		}
		if m.Name == "" {
			m.Name = a.Name
		}
		if len(m.ClientURLs) == 0 {
			m.ClientURLs = a.ClientURLs
		}
	}
	return ms
}

func serverMembers(ps []member.Peer) []server.Member {
	out := make([]server.Member, len(ps))
	for i, p := range ps {
		out[i] = server.Member{ID: p.ID, Name: p.Name, PeerURLs: p.PeerURLs, ClientURLs: p.ClientURLs, IsLearner: p.IsLearner}
	}
	return out
}

// early returns the error of a Pending that failed at once (it was not
// proposed: no leader, a change already in flight...), so that retry
// decides on it before waiting; else the Pending.
func early(p *member.Pending) (*member.Pending, error) {
	select {
	case <-p.Done():
		if _, err := p.Result(); err != nil {
			return nil, err
		}
	default:
	}
	return p, nil
}

// membership waits for a membership change and returns the member list
// it produced.
func (n *Node) membership(ctx context.Context, change func() *member.Pending) ([]server.Member, error) {
	if err := n.stopped(); err != nil {
		return nil, err
	}
	res, err := n.untilLeader(ctx, func() (*member.Pending, error) { return early(change()) })
	if err != nil {
		return nil, serverError(err)
	}
	ps, _ := res.([]member.Peer)
	return serverMembers(ps), nil
}

// MemberAdd adds a member with the ID MemberID derives from its peer URLs.
func (n *Node) MemberAdd(ctx context.Context, peerURLs []string, learner bool) (server.Member, []server.Member, error) {
	if err := n.mayAdd(learner); err != nil {
		return server.Member{}, nil, err
	}
	p := member.Peer{ID: MemberID(n.cfg.ClusterToken, peerURLs), PeerURLs: peerURLs, IsLearner: learner}
	ms, err := n.membership(ctx, func() *member.Pending { return n.m.AddMember(p) })
	if err != nil {
		return server.Member{}, nil, err
	}
	return server.Member{ID: p.ID, PeerURLs: peerURLs, IsLearner: learner}, ms, nil
}

// MemberRemove removes a member.
func (n *Node) MemberRemove(ctx context.Context, id uint64) ([]server.Member, error) {
	if err := n.mayRemove(id); err != nil {
		return nil, err
	}
	if id == n.cfg.ID {
		// A leader that removes itself first hands its leadership over:
		// otherwise, with two voters, the one left may never learn that
		// the removal committed, and wait for ever for the removed
		// member's vote.
		n.handOver(ctx, "own removal")
	}
	ms, err := n.membership(ctx, func() *member.Pending { return n.m.RemoveMember(id) })
	if err != nil && id == n.cfg.ID && errors.Is(err, server.ErrLeaderChanged) {
		// A member applying its own removal forgets the leader, which
		// fails the request it proposed: it was removed all the same.
		select {
		case <-n.removed:
			return serverMembers(n.m.Members()), nil
		case <-ctx.Done():
		}
	}
	return ms, err
}

// MemberUpdate changes a member's peer URLs.
func (n *Node) MemberUpdate(ctx context.Context, id uint64, peerURLs []string) ([]server.Member, error) {
	return n.membership(ctx, func() *member.Pending { return n.m.UpdateMember(id, peerURLs) })
}

// MemberPromote promotes a learner; a follower forwards it to the leader
// (who alone knows whether the learner caught up), then waits until it
// has applied the promotion itself.
func (n *Node) MemberPromote(ctx context.Context, id uint64) ([]server.Member, error) {
	if err := n.mayPromote(); err != nil {
		return nil, err
	}
	err := n.atLeader(ctx, func(leader uint64) error {
		if leader == n.cfg.ID {
			_, err := n.untilLeader(ctx, func() (*member.Pending, error) { return early(n.m.PromoteMember(id)) })
			return err
		}
		return n.tr.MemberPromote(ctx, leader, id)
	})
	if err != nil {
		return nil, err
	}
	if err := n.ReadBarrier(ctx); err != nil {
		return nil, err
	}
	return n.Members(), nil
}

// MoveLeader hands the leadership to member to and waits until it leads.
func (n *Node) MoveLeader(ctx context.Context, to uint64) error {
	target := false
	for _, p := range n.m.Members() {
		target = target || p.ID == to && !p.IsLearner
	}
	if !target {
		return fmt.Errorf("move leader to %x: %w", to, server.ErrBadLeaderTransferee)
	}
	if err := n.m.TransferLeader(to); err != nil {
		return serverError(err)
	}
	n.kick()
	for n.status.Load().Leader != to {
		select {
		case <-ctx.Done():
			return fmt.Errorf("move leader to %x: %w: %w", to, server.ErrTimeout, ctx.Err())
		case <-n.stop:
			return n.stopped()
		case <-time.After(n.cfg.TickInterval):
		}
	}
	return nil
}
