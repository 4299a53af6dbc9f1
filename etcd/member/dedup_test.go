package member

import (
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/revkv/revkv/kv"
)

func TestDedupWindow(t *testing.T) {
	d := dedup{}
	id := func(seq uint64) requestID { return requestID{Member: 1, Epoch: 5, Seq: seq} }
	for _, s := range []uint64{1, 2, 4, 3, 6} {
		if d.seen(id(s), s) {
			t.Fatalf("seq %d taken for a duplicate", s)
		}
	}
	for _, s := range []uint64{1, 2, 3, 4, 6} {
		if !d.seen(id(s), 100) {
			t.Fatalf("duplicate seq %d not caught", s)
		}
	}
	w := d[incarnation{1, 5}]
	if w.floor != 4 || len(w.above) != 1 {
		t.Fatalf("window %+v", w)
	}
	// A gap (seq 5 never comes) is folded in past dedupWindow seqs.
	for s := uint64(7); s < 7+dedupWindow+1; s++ {
		d.seen(id(s), s)
	}
	if len(w.above) > dedupWindow || w.floor < 5 {
		t.Fatalf("window not folded: floor %d, %d above", w.floor, len(w.above))
	}
	// Old incarnations of a member are dropped, newest kept.
	for e := uint64(10); e < 10+dedupIncarnations+2; e++ {
		d.seen(requestID{Member: 1, Epoch: e, Seq: 1}, 10000+e)
	}
	n := 0
	for inc := range d {
		if inc.member == 1 {
			n++
		}
	}
	if n != dedupIncarnations || d[incarnation{1, 5}] != nil {
		t.Fatalf("%d incarnations kept: %v", n, d.sorted())
	}
}

// TestDuplicatedProposal: a proposal forwarded by a follower and delivered
// twice to the leader is in the log twice and applied once.
func TestDuplicatedProposal(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	lead := c.leader()
	fol := c.follower(lead)
	before := c.members[lead].DB().Rev()
	p, err := c.members[fol].Propose(putReq("k", "v"))
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := c.members[fol].Ready()
	if err != nil {
		t.Fatal(err)
	}
	dups := 0
	for _, m := range msgs {
		if err := c.members[m.GetTo()].Step(m); err != nil {
			t.Fatal(err)
		}
		if m.GetType() == raftpb.MessageType_MsgProp {
			dups++
			if err := c.members[m.GetTo()].Step(proto.Clone(m).(*raftpb.Message)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if dups != 1 {
		t.Fatalf("%d proposals forwarded", dups)
	}
	res, err := c.wait(p)
	if err != nil {
		t.Fatal(err)
	}
	c.converged()
	if rev := res.(*kv.TxnResponse).Rev; rev != before+1 || c.members[lead].DB().Rev() != rev {
		t.Fatalf("one put from revision %d: acknowledged at %d, the store is at %d", before, rev, c.members[lead].DB().Rev())
	}
	// Every member skipped the copy, and a restart replaying the log skips
	// it again.
	c.restart(fol)
	c.converged()
	if got := c.members[fol].DB().Rev(); got != before+1 {
		t.Fatalf("after a replay the store is at %d", got)
	}
}

// TestSeqsWithoutGaps: proposals, membership changes and lease revokes
// share one counter with no gaps (read indexes and refused proposals
// take none), so the applied-proposal record stays a bare floor.
func TestSeqsWithoutGaps(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	lead := c.leader()
	m := c.members[lead]
	c.mustPut(lead, "a", "1")
	c.wait(m.ReadIndex())
	if _, err := m.Propose(Request{}); err == nil {
		t.Fatal("invalid request proposed")
	}
	if _, err := c.memberOp(m.AddMember(Peer{ID: 9, IsLearner: true})); err != nil {
		t.Fatal(err)
	}
	c.grant(lead, 4, 1)
	for range 30 { // the lease expires: the leader proposes its revoke
		c.tick()
	}
	c.wait(m.ReadIndex())
	c.mustPut(lead, "b", "1")
	c.converged()
	for _, id := range c.ids() {
		d := c.members[id].dedup
		w := d[incarnation{uint64(lead), m.epoch}]
		if w == nil || w.floor != m.seq || len(w.above) != 0 {
			t.Fatalf("member %d: record %+v, leader's seq %d", id, w, m.seq)
		}
	}
}
