package member

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/revkv/revkv/kv"
)

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
			err = m.applyRequest(e.GetData(), i)
		}
	case raftpb.EntryType_EntryConfChange:
		var cc raftpb.ConfChange
		if err = proto.Unmarshal(e.GetData(), &cc); err == nil {
			err = m.applyConfChange(&cc, i)
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
// A proposal applied before (raft appended it twice) is skipped.
func (m *Member) applyRequest(data []byte, index uint64) error {
	id, req, err := decodeEntry(data)
	if err != nil {
		return err
	}
	if m.dedup.seen(id, index) {
		m.log.Debug("duplicate proposal skipped", "index", index, "member", id.Member, "seq", id.Seq)
		return nil
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
		return nil, m.compact(*req.Compact)
	case req.attrs != nil:
		if err := m.table.publish(req.attrs); err != nil {
			return nil, err
		}
		return m.table.list(), nil
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

// compact compacts the DB below rev, keeping the hash of the history up to
// rev taken just before (see CompactionHash).
func (m *Member) compact(rev int64) error {
	h, herr := m.db.HashByRev(rev)
	if err := m.db.Compact(rev); err != nil {
		return err
	}
	if herr == nil {
		m.compactHashes = append(m.compactHashes, h)
		if len(m.compactHashes) > keptCompactionHashes {
			m.compactHashes = slices.Delete(m.compactHashes, 0, len(m.compactHashes)-keptCompactionHashes)
		}
	}
	return nil
}

// applyConfChange applies a membership change: to raft's configuration
// and to the member table, or, if the table refuses it (the same decision
// on every member), to neither. A proposal applied before is skipped as in
// applyRequest (raft must still be told of the entry: as a no-op).
func (m *Member) applyConfChange(cc *raftpb.ConfChange, index uint64) error {
	var ctx confContext
	if len(cc.GetContext()) > 0 {
		var err error
		if ctx, err = decodeConfContext(cc.GetContext()); err != nil {
			return err
		}
	}
	// Bootstrap's changes have no proposer (member 0).
	if ctx.id.Member != 0 && m.dedup.seen(ctx.id, index) {
		cc.NodeId = proto.Uint64(0)
		m.confState = m.rn.ApplyConfChange(cc)
		return nil
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
		if p, ok := m.proposals[ctx.id.Seq]; ok && bytes.Equal(p.data, cc.GetContext()) {
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
