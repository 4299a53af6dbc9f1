package cluster

import (
	"errors"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestClusterMembership drives etcd's Cluster API through clientv3: a
// learner is added and joins (it gets the state from the leader), is
// promoted through a follower (forwarded to the leader), serves
// linearizable reads and writes; a member is removed and the rest go on;
// and the refusals are etcd's errors.
func TestClusterMembership(t *testing.T) {
	c := newTestCluster(t, 3)
	lead := c.leader()
	ctx := ctxT(t, 60*time.Second)
	cli := c.client(0, 1, 2)
	for i := range 50 {
		if _, err := cli.Put(ctx, "k", string(rune('a'+i%26))); err != nil {
			t.Fatal(err)
		}
	}

	nm := c.add()
	url := "http://" + nm.peerAddr
	add, err := cli.MemberAddAsLearner(ctx, []string{url})
	if err != nil {
		t.Fatal(err)
	}
	if add.Member.ID != MemberID(DefaultClusterToken, []string{url}) || !add.Member.IsLearner || len(add.Members) != 4 {
		t.Fatalf("MemberAdd = %v", add)
	}
	if _, err := cli.MemberAdd(ctx, []string{url}); !errors.Is(err, rpctypes.ErrPeerURLExist) {
		t.Fatalf("MemberAdd of a taken URL: %v", err)
	}
	nm.start()
	learner := c.client(3)
	waitFor(t, "the learner to catch up", func() bool {
		resp, err := learner.Get(ctx, "k", clientv3.WithSerializable())
		return err == nil && len(resp.Kvs) == 1 && resp.Kvs[0].Version == 50
	})
	st, err := learner.Status(ctx, nm.clientAddr)
	if err != nil || !st.IsLearner {
		t.Fatalf("learner status %v, %v", st, err)
	}
	if _, err := learner.Put(ctxT(t, 2*time.Second), "x", "y"); err == nil || rpctypes.ErrorDesc(err) != rpctypes.ErrorDesc(rpctypes.ErrGRPCNotSupportedForLearner) {
		t.Fatalf("put on a learner: %v", err)
	}

	follower := c.client((lead + 1) % 3)
	waitFor(t, "the promotion", func() bool {
		_, err := follower.MemberPromote(ctx, add.Member.ID)
		if err != nil && !errors.Is(err, rpctypes.ErrMemberLearnerNotReady) {
			t.Fatalf("MemberPromote: %v", err)
		}
		return err == nil
	})
	if _, err := follower.MemberPromote(ctx, add.Member.ID); !errors.Is(err, rpctypes.ErrMemberNotLearner) {
		t.Fatalf("MemberPromote of a voter: %v", err)
	}
	waitFor(t, "the new member to publish its name", func() bool {
		for _, p := range c.members[lead].current().Member().Members() {
			if p.ID == add.Member.ID {
				return p.Name == nm.name && len(p.ClientURLs) == 1
			}
		}
		return false
	})
	if _, err := learner.Put(ctx, "new", "member"); err != nil {
		t.Fatalf("put through the promoted member: %v", err)
	}
	if resp, err := learner.Get(ctx, "new"); err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("linearizable get through the promoted member: %v, %v", resp, err)
	}

	// Remove the leader; the other three go on.
	leadID := c.members[lead].current().ID()
	rm, err := follower.MemberRemove(ctx, leadID)
	if err != nil || len(rm.Members) != 3 {
		t.Fatalf("MemberRemove = %v, %v", rm, err)
	}
	if _, err := follower.MemberRemove(ctx, leadID); !errors.Is(err, rpctypes.ErrMemberNotFound) {
		t.Fatalf("MemberRemove of a removed member: %v", err)
	}
	select {
	case <-c.members[lead].current().Removed():
	case <-time.After(10 * time.Second):
		t.Fatal("the removed member did not learn it")
	}
	c.members[lead].stop(false)
	c.leader()
	if _, err := follower.MemberUpdate(ctx, add.Member.ID, []string{url}); err != nil {
		t.Fatalf("MemberUpdate: %v", err)
	}
	if _, err := learner.Put(ctx, "after", "removal"); err != nil {
		t.Fatalf("put after the removal: %v", err)
	}
	// A member removed while cut off never gets the entry that removes
	// it: the others refuse its messages once it is back, which tells it.
	cut := (lead + 2) % 3
	if c.leader() == cut {
		cut = (lead + 1) % 3
		follower = c.client((lead + 2) % 3)
	}
	cutID := c.members[cut].current().ID()
	c.partition(cut, true)
	if _, err := learner.MemberRemove(ctx, cutID); err != nil {
		t.Fatalf("MemberRemove of a cut-off member: %v", err)
	}
	c.partition(cut, false)
	select {
	case <-c.members[cut].current().Removed():
	case <-time.After(10 * time.Second):
		t.Fatal("the member removed while cut off did not learn it")
	}
	if _, err := c.client(cut).Put(ctx, "x", "y"); !errors.Is(err, rpctypes.ErrStopped) {
		t.Fatalf("put through a removed member: %v", err)
	}
	c.members[cut].stop(false)

	list, err := follower.MemberList(ctx)
	if err != nil || len(list.Members) != 2 {
		t.Fatalf("MemberList = %v, %v", list, err)
	}
	for _, m := range list.Members {
		if m.ID == leadID || m.IsLearner || m.Name == "" || len(m.ClientURLs) != 1 {
			t.Fatalf("member list after removal and promotion: %v", list.Members)
		}
	}
}

// TestClusterRemoveSelfLeader: the leader of two voters removes itself
// (through its own client): it first hands the leadership to the other,
// which then commits the removal and goes on alone.
func TestClusterRemoveSelfLeader(t *testing.T) {
	c := newTestCluster(t, 2)
	lead := c.leader()
	ctx := ctxT(t, 30*time.Second)
	cli := c.client(lead)
	if _, err := cli.Put(ctx, "before", "x"); err != nil {
		t.Fatal(err)
	}
	leadNode := c.members[lead].current()
	waitFor(t, "the leader to see its peer active", func() bool {
		for _, p := range leadNode.Member().Members() {
			if p.ID != leadNode.ID() && leadNode.Transport().ActiveSince(p.ID).IsZero() {
				return false
			}
		}
		return true
	})
	if _, err := cli.MemberRemove(ctx, leadNode.ID()); err != nil {
		t.Fatalf("the leader removing itself: %v", err)
	}
	other := c.members[1-lead].current()
	waitFor(t, "the other member to lead alone", func() bool {
		st := other.Status()
		return st.Leader == other.ID() && len(other.Member().Members()) == 1
	})
	if _, err := c.client(1-lead).Put(ctx, "after", "y"); err != nil {
		t.Fatalf("put on the member left: %v", err)
	}
	select {
	case <-leadNode.Removed():
	case <-ctx.Done():
		t.Fatal("the removed leader does not know it was removed")
	}
}
