package member

import (
	"errors"
	"testing"
	"time"

	"github.com/revkv/revkv/kv"
)

func leasedPut(key string, lease int64) Request {
	return Request{Txn: &kv.TxnRequest{Then: []kv.Op{{Type: kv.OpPut, Key: []byte(key), Value: []byte("v"), Put: kv.PutOptions{Lease: lease}}}}}
}

func (c *testCluster) grant(on uint64, id, ttl int64) {
	c.t.Helper()
	if _, err := c.propose(on, Request{LeaseGrant: &LeaseGrant{ID: id, TTL: ttl}}); err != nil {
		c.t.Fatalf("grant %d: %v", id, err)
	}
	if _, err := c.propose(on, leasedPut("key", id)); err != nil {
		c.t.Fatalf("put with lease %d: %v", id, err)
	}
}

// live reports whether every member has lease id (and its key), failing
// the test if they disagree.
func (c *testCluster) live(id int64) bool {
	c.t.Helper()
	c.converged()
	var first *bool
	for _, mid := range c.ids() {
		_, err := c.members[mid].DB().TimeToLive(id, false)
		ok := err == nil
		if first != nil && *first != ok {
			c.t.Fatalf("members disagree on lease %d", id)
		}
		first = &ok
	}
	return *first
}

func TestLeaseExpiresOnLeaderTicks(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	lead := c.leader()
	c.grant(c.follower(lead), 1, 2) // 2 s: 20 ticks of 100 ms
	for range 15 {
		c.tick()
	}
	if !c.live(1) {
		t.Fatal("lease gone before its TTL")
	}
	for range 10 {
		c.tick()
	}
	if c.live(1) {
		t.Fatal("lease live after its TTL")
	}
	for _, id := range c.ids() {
		if _, ok, _ := c.members[id].DB().Get([]byte("key")); ok {
			t.Fatalf("member %d: key of the expired lease is live", id)
		}
	}
}

func TestLeaseKeepAlive(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	lead := c.leader()
	fol := c.follower(lead)
	c.grant(lead, 7, 2)
	if _, err := c.members[fol].KeepAlive(7); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("keep-alive on a follower: %v", err)
	}
	if _, err := c.members[lead].KeepAlive(99); !errors.Is(err, kv.ErrLeaseNotFound) {
		t.Fatalf("keep-alive of no lease: %v", err)
	}
	for range 10 { // 5 s, renewed every second
		for range 10 {
			c.tick()
		}
		if ttl, err := c.members[lead].KeepAlive(7); err != nil || ttl != 2 {
			t.Fatalf("keep-alive: %d %v", ttl, err)
		}
		if ls, err := c.members[lead].TimeToLive(7, true); err != nil || ls.TTL != 2 || len(ls.Keys) != 1 {
			t.Fatalf("time to live: %+v %v", ls, err)
		}
	}
	if !c.live(7) {
		t.Fatal("renewed lease expired")
	}
	for range 25 {
		c.tick()
	}
	if c.live(7) {
		t.Fatal("lease live 2.5 s after its last renewal")
	}
}

// TestLeaseNewLeaderRenews: a new leader gives every lease a full TTL from
// its election, whatever the old leader's deadlines were.
func TestLeaseNewLeaderRenews(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	lead := c.leader()
	c.grant(lead, 3, 3)
	for range 20 { // 2 of its 3 s gone
		c.tick()
	}
	c.cut = func(from, to uint64) bool { return from == lead || to == lead }
	var next uint64
	for range 500 {
		c.tick()
		for _, id := range c.ids() {
			if id != lead && c.members[id].Status().Leader == id {
				next = id
			}
		}
		if next != 0 {
			break
		}
	}
	if next == 0 {
		t.Fatal("no new leader")
	}
	c.cut = nil
	c.leader()
	for range 20 { // 2 s after the election: within the new full TTL
		c.tick()
	}
	if !c.live(3) {
		t.Fatal("the new leader expired a lease within its TTL after the election")
	}
	for range 20 {
		c.tick()
	}
	if c.live(3) {
		t.Fatal("lease live 4 s after the election")
	}
}

// TestLeaseDeposedLeaderProposesNoRevoke: a leader that learns of a new
// leader (a Step) and ticks before its next Ready must not decide lease
// expiry from its old deadline table: raft would forward its revoke to
// the new leader, which gave the lease a full TTL at its election (and
// renews it on keep-alives the old leader never sees).
func TestLeaseDeposedLeaderProposesNoRevoke(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	old := c.leader()
	c.grant(old, 5, 1)
	// Cut the leader off, without ticking it (it keeps its leadership and
	// its deadlines), until the others elect a new leader.
	c.cut = func(from, to uint64) bool { return from == old || to == old }
	var next uint64
	for range 500 {
		c.clock.Advance(100 * time.Millisecond)
		for _, id := range c.ids() {
			if id != old {
				c.members[id].Tick()
			}
		}
		c.deliver()
		for _, id := range c.ids() {
			if id != old && c.members[id].Status().Leader == id {
				next = id
			}
		}
		if next != 0 {
			break
		}
	}
	if next == 0 {
		t.Fatal("no new leader")
	}
	c.cut = nil
	// The new leader's heartbeat reaches the old one, which then ticks
	// (its lease's old deadline is past) before its Ready.
	c.members[next].Tick()
	msgs, err := c.members[next].Ready()
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range msgs {
		if msg.GetTo() == old {
			if err := c.members[old].Step(msg); err != nil {
				t.Fatal(err)
			}
		}
	}
	if st := c.members[old].Status(); st.Leader != next {
		t.Fatalf("old leader after the new one's message: %+v", st)
	}
	if _, err := c.members[old].KeepAlive(5); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("keep-alive on the deposed leader: %v", err)
	}
	c.members[old].Tick()
	c.deliver()
	for range 3 { // 0.3 s after the election: within the new leader's TTL
		c.tick()
	}
	if !c.live(5) {
		t.Fatal("lease revoked by the deposed leader's stale deadline, within the new leader's TTL")
	}
}
