package cluster

import (
	"errors"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/revkv/revkv/etcd/member"
)

// TestReconfigQuorums: etcd's started-member counts, case by case.
func TestReconfigQuorums(t *testing.T) {
	peers := func(started ...bool) []member.Peer {
		var ps []member.Peer
		for i, s := range started {
			p := member.Peer{ID: uint64(i + 1)}
			if s {
				p.Name = "m"
			}
			ps = append(ps, p)
		}
		return ps
	}
	cases := []struct {
		name                  string
		vs                    []member.Peer
		add, remove1, promote bool
	}{
		{"one started", peers(true), true, false, true},
		{"three started", peers(true, true, true), true, true, true},
		{"two of three started", peers(true, true, false), false, false, true},
		{"one of three started", peers(true, false, false), false, false, false},
		{"two of four started", peers(true, true, false, false), false, false, true},
		{"three of four started", peers(true, true, true, false), true, true, true},
	}
	for _, c := range cases {
		if got := readyToAddVoter(c.vs); got != c.add {
			t.Errorf("%s: readyToAddVoter = %v", c.name, got)
		}
		if got := readyToRemoveVoter(c.vs, 1); got != c.remove1 {
			t.Errorf("%s: readyToRemoveVoter(1) = %v", c.name, got)
		}
		if got := readyToPromote(c.vs); got != c.promote {
			t.Errorf("%s: readyToPromote = %v", c.name, got)
		}
	}
	now := time.Now()
	active := map[uint64]time.Time{2: now.Add(-time.Minute), 3: now}
	vs := peers(true, true, true, true)
	if got := connectedSince(vs, 1, now.Add(-time.Second), func(id uint64) time.Time { return active[id] }); got != 2 {
		t.Errorf("connectedSince = %d, want 2 (itself and member 2)", got)
	}
	// etcd's rule for an addition: a quorum of the voters plus the new
	// one, not counting the new one.
	for _, c := range []struct {
		connected, voters int
		ok                bool
	}{
		{1, 1, true}, {1, 2, false}, {2, 2, true}, {2, 3, false}, {3, 3, true},
		{3, 4, true}, {2, 4, false}, {3, 5, false}, {4, 5, true},
	} {
		if got := connectedToAdd(c.connected, c.voters); got != c.ok {
			t.Errorf("connectedToAdd(%d of %d voters) = %v, want %v", c.connected, c.voters, got, c.ok)
		}
	}
}

// TestClusterStrictReconfig: a member that has not been connected to
// enough voters for the health interval refuses additions and the removal
// of an active voter (etcd's "unhealthy cluster"), but removes a member
// that is down; a single member does not remove itself ("not enough
// started members").
func TestClusterStrictReconfig(t *testing.T) {
	c := newTestCluster(t, 3, func(c *testCluster) { c.healthInterval = time.Hour })
	lead := c.leader()
	ctx := ctxT(t, 30*time.Second)
	cli := c.client(lead)
	if _, err := cli.MemberAddAsLearner(ctx, []string{"http://" + freeAddr(t)}); !errors.Is(err, rpctypes.ErrUnhealthy) {
		t.Fatalf("MemberAdd while not healthy for long enough: %v", err)
	}
	active := c.members[(lead+1)%3].current().ID()
	if _, err := cli.MemberRemove(ctx, active); !errors.Is(err, rpctypes.ErrUnhealthy) {
		t.Fatalf("MemberRemove of an active voter: %v", err)
	}
	down := (lead + 2) % 3
	downID := c.members[down].current().ID()
	c.members[down].stop(false)
	waitFor(t, "the stopped member to be seen down", func() bool {
		return c.members[lead].current().Transport().ActiveSince(downID).IsZero()
	})
	if _, err := cli.MemberRemove(ctx, downID); err != nil {
		t.Fatalf("MemberRemove of a member that is down: %v", err)
	}

	one := newTestCluster(t, 1)
	one.leader()
	solo := one.client(0)
	if _, err := solo.MemberRemove(ctx, one.members[0].current().ID()); !errors.Is(err, rpctypes.ErrMemberNotEnoughStarted) {
		t.Fatalf("a single member removing itself: %v", err)
	}
}
