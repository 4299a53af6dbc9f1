package member

import (
	"errors"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
)

// TestReadIndexBatches: reads that arrive together share one raft read
// request; a read that arrives while one is in flight goes with the next.
func TestReadIndexBatches(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	lead := c.leader()
	fol := c.follower(lead)
	c.mustPut(lead, "k", "v")
	m := c.members[fol]
	var ps []*Pending
	for range 10 {
		ps = append(ps, m.ReadIndex())
	}
	msgs, err := m.Ready()
	if err != nil {
		t.Fatal(err)
	}
	if n := countType(msgs, raftpb.MessageType_MsgReadIndex); n != 1 {
		t.Fatalf("%d read requests for 10 reads", n)
	}
	late := m.ReadIndex() // waits for the answer to the first request
	if msgs2, _ := m.Ready(); countType(msgs2, raftpb.MessageType_MsgReadIndex) != 0 {
		t.Fatal("a second request while the first is in flight")
	}
	for _, msg := range msgs {
		c.members[msg.GetTo()].Step(msg)
	}
	ps = append(ps, late)
	for _, p := range ps {
		res, err := c.wait(p)
		if err != nil || res.(uint64) < 1 || m.Status().Applied < res.(uint64) {
			t.Fatalf("read: %v %v", res, err)
		}
	}
}

// TestReadIndexLostRequest: a read request lost on the way does not hold
// the reads after it beyond an election timeout; its own reads time out.
func TestReadIndexLostRequest(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.RequestTimeoutTicks = 60 })
	lead := c.leader()
	fol := c.follower(lead)
	c.cut = func(from, to uint64) bool { return from == fol } // the request is lost
	lost := c.members[fol].ReadIndex()
	c.deliver()
	c.cut = nil
	for range 10 { // an election timeout
		c.tick()
	}
	start := c.members[fol].ticks
	res, err := c.wait(c.members[fol].ReadIndex())
	if took := c.members[fol].ticks - start; err != nil || took > 3 {
		t.Fatalf("read after a lost request: %v %v after %d ticks", res, err, took)
	}
	for range 60 {
		c.tick()
	}
	if _, err := lost.Result(); !errors.Is(err, ErrTimeout) {
		t.Fatalf("the lost request's read: %v", err)
	}
}

func countType(msgs []*raftpb.Message, typ raftpb.MessageType) int {
	n := 0
	for _, m := range msgs {
		if m.GetType() == typ {
			n++
		}
	}
	return n
}

// TestReadIndexTimesOutWaitingForApply: a read whose index the leader
// answered, on a member that never gets the entries up to it (here the
// leader's appends to it are lost; a member removed while cut off is the
// same for ever), fails with ErrTimeout like any request left unresolved,
// rather than waiting for ever.
func TestReadIndexTimesOutWaitingForApply(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.RequestTimeoutTicks = 30 })
	lead := c.leader()
	fol := c.follower(lead)
	c.drop = func(msg *raftpb.Message) bool {
		return msg.GetTo() == fol && (msg.GetType() == raftpb.MessageType_MsgApp || msg.GetType() == raftpb.MessageType_MsgSnap)
	}
	c.mustPut(lead, "k", "v") // committed by the two others
	read := c.members[fol].ReadIndex()
	for range 60 {
		c.tick()
	}
	if st := c.members[fol].Status(); st.Leader != lead {
		t.Fatalf("the follower lost the leader (%d): the test needs it kept", st.Leader)
	}
	if _, err := read.Result(); !errors.Is(err, ErrTimeout) {
		t.Fatalf("read waiting for entries it never gets, after 60 ticks: %v", err)
	}
}
