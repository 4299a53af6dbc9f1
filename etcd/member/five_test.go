package member

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/revkv/revkv/kv"
)

// TestFiveMembersPartition: with 5 members, the side of a partition with
// 3 elects a leader and takes writes; the side with 2 cannot (its
// proposals fail or time out); after healing, everyone converges on the
// majority's history.
func TestFiveMembersPartition(t *testing.T) {
	c := newTestCluster(t, 5, func(cfg *Config) { cfg.RequestTimeoutTicks = 40 })
	lead := c.leader()
	c.mustPut(lead, "before", "1")
	minority := map[uint64]bool{lead: true, c.follower(lead): true}
	c.cut = func(from, to uint64) bool { return minority[from] != minority[to] }
	var p *Pending
	var err error
	if p, err = c.members[lead].Propose(putReq("minority", "1")); err != nil {
		t.Fatal(err)
	}
	var next uint64
	for range 300 {
		c.tick()
		for _, id := range c.ids() {
			if !minority[id] && c.members[id].Status().Leader == id {
				next = id
			}
		}
		if next != 0 {
			break
		}
	}
	if next == 0 {
		t.Fatal("majority elected no leader")
	}
	c.mustPut(next, "majority", "1")
	for range 50 {
		c.tick()
	}
	if _, err := p.Result(); !errors.Is(err, ErrLeaderChanged) && !errors.Is(err, ErrTimeout) {
		t.Fatalf("minority proposal: %v", err)
	}
	c.cut = nil
	c.converged()
	for _, id := range c.ids() {
		db := c.members[id].DB()
		if _, ok, _ := db.Get([]byte("minority")); ok {
			t.Fatalf("member %d applied the minority's put", id)
		}
		if _, ok, _ := db.Get([]byte("majority")); !ok {
			t.Fatalf("member %d lacks the majority's put", id)
		}
	}
}

// TestLossyNetwork: 5 members, a seeded run of random proposals on random
// members while 15% of the messages are lost. Every acknowledged write is
// on every member at the end, each applied once (the revisions count
// them), and every member has the same history.
func TestLossyNetwork(t *testing.T) {
	for seed := range uint64(3) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 99))
			c := newTestCluster(t, 5, smallSnapshots)
			c.leader()
			c.cut = func(from, to uint64) bool { return rng.IntN(100) < 15 }
			acked := map[string]int64{}
			var inflight []*Pending
			var keys []string
			for i := range 300 {
				id := c.ids()[rng.IntN(5)]
				key := fmt.Sprintf("k%d", i)
				if p, err := c.members[id].Propose(putReq(key, "v")); err == nil {
					inflight = append(inflight, p)
					keys = append(keys, key)
				}
				c.tick()
			}
			c.cut = nil
			c.converged()
			for i, p := range inflight {
				if res, err := p.Result(); err == nil {
					acked[keys[i]] = res.(*kv.TxnResponse).Rev
				}
			}
			if len(acked) < 50 {
				t.Fatalf("only %d of %d writes acknowledged", len(acked), len(inflight))
			}
			for _, id := range c.ids() {
				db := c.members[id].DB()
				for k, rev := range acked {
					got, ok, err := db.Get([]byte(k))
					if err != nil || !ok || got.ModRevision != rev {
						t.Fatalf("member %d: acknowledged %s at %d: got %+v %v %v", id, k, rev, got, ok, err)
					}
				}
				res, err := db.Range([]byte("k"), []byte("l"), revkvCount)
				if err != nil || res.Count != db.Rev()-1 {
					t.Fatalf("member %d: %d keys at revision %d (a put applied twice or lost)", id, res.Count, db.Rev())
				}
			}
		})
	}
}
