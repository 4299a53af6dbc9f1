package cluster

import (
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/kv"
)

// TestClusterLeaseExpiry: a lease kept alive through a follower (the
// renewal forwarded to the leader, whose clock decides expiry) outlives
// its TTL; left alone, it expires, and its key is deleted on every
// member.
func TestClusterLeaseExpiry(t *testing.T) {
	clock := engine.NewManualClock(time.Now())
	c := newTestCluster(t, 3, func(c *testCluster) { c.clock = clock })
	lead := c.leader()
	ctx := ctxT(t, 30*time.Second)
	follower := c.client((lead + 1) % 3)
	other := c.client((lead + 2) % 3)

	l, err := follower.Grant(ctx, 5)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := follower.Put(ctx, "leased", "v", clientv3.WithLease(l.ID)); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		clock.Advance(3 * time.Second)
		ka, err := follower.KeepAliveOnce(ctx, l.ID)
		if err != nil || ka.TTL != 5 {
			t.Fatalf("keep-alive through a follower: %v, %v", ka, err)
		}
	}
	time.Sleep(5 * c.tick) // ticks pass: nothing is due
	if resp, err := other.Get(ctx, "leased"); err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("kept-alive key: %v, %v", resp, err)
	}
	ttl, err := other.TimeToLive(ctx, l.ID)
	if err != nil || ttl.TTL < 4 || ttl.TTL > 5 {
		t.Fatalf("TimeToLive through a follower (the leader's deadline): %v, %v", ttl, err)
	}

	clock.Advance(6 * time.Second)
	waitFor(t, "the lease to expire on every member", func() bool {
		for i := range c.members {
			resp, err := c.members[i].current().Range([]byte("leased"), nil, kv.RangeOptions{CountOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			if resp.Count != 0 {
				return false
			}
		}
		return true
	})
	if ttl, err := follower.TimeToLive(ctx, l.ID); err != nil || ttl.TTL != -1 {
		t.Fatalf("TimeToLive of an expired lease: %v, %v", ttl, err)
	}
}
