package member

import (
	"errors"
	"testing"
)

// isolateLeader cuts lead off and ticks until the others elect another
// leader, which it returns.
func (c *testCluster) isolateLeader(lead uint64) uint64 {
	c.t.Helper()
	c.cut = func(from, to uint64) bool { return from == lead || to == lead }
	for range 500 {
		c.tick()
		for _, id := range c.ids() {
			if id != lead && c.members[id].Status().Leader == id {
				return id
			}
		}
	}
	c.t.Fatal("no new leader")
	return 0
}

// TestLeaderChangeFailsProposals: a proposal the isolated leader could not
// commit fails with ErrLeaderChanged once it learns of the new leader,
// and so does a read index; the cluster goes on.
func TestLeaderChangeFailsProposals(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	lead := c.leader()
	c.mustPut(lead, "before", "1")
	c.cut = func(from, to uint64) bool { return from == lead || to == lead }
	p, err := c.members[lead].Propose(putReq("lost", "1"))
	if err != nil {
		t.Fatal(err)
	}
	read := c.members[lead].ReadIndex()
	next := c.isolateLeader(lead)
	c.mustPut(next, "after", "1")
	c.cut = nil
	for _, q := range []*Pending{p, read} {
		if _, err := c.wait(q); !errors.Is(err, ErrLeaderChanged) {
			t.Fatalf("request on the old leader: %v", err)
		}
	}
	c.converged()
	for _, id := range c.ids() {
		if _, ok, _ := c.members[id].DB().Get([]byte("lost")); ok {
			t.Fatalf("member %d: the uncommitted put was applied", id)
		}
		if _, ok, _ := c.members[id].DB().Get([]byte("after")); !ok {
			t.Fatalf("member %d: the new leader's put is missing", id)
		}
	}
}

// TestProposalTimeout: a proposal that never reaches a leader (every
// message from the follower is lost, the leader does not change) fails
// with ErrTimeout after RequestTimeoutTicks.
func TestProposalTimeout(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.RequestTimeoutTicks = 30 })
	lead := c.leader()
	fol := c.follower(lead)
	c.cut = func(from, to uint64) bool { return from == fol }
	p, err := c.members[fol].Propose(putReq("x", "y"))
	if err != nil {
		t.Fatal(err)
	}
	for range 50 {
		c.tick()
	}
	if _, err := p.Result(); !errors.Is(err, ErrTimeout) {
		t.Fatalf("got %v, want ErrTimeout", err)
	}
}

func TestTransferLeader(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	lead := c.leader()
	fol := c.follower(lead)
	if err := c.members[fol].TransferLeader(lead); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("transfer on a follower: %v", err)
	}
	if err := c.members[lead].TransferLeader(42); !errors.Is(err, ErrMemberNotFound) {
		t.Fatalf("transfer to no member: %v", err)
	}
	if err := c.members[lead].TransferLeader(fol); err != nil {
		t.Fatal(err)
	}
	for range 50 {
		c.tick()
		if c.leader() == fol {
			c.mustPut(fol, "k", "v")
			c.converged()
			return
		}
	}
	t.Fatalf("leadership did not move to %d", fol)
}
