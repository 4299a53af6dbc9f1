package simtest

import (
	"fmt"
	"os"
	"slices"
	"testing"
	"testing/cryptotest"

	"github.com/revkv/revkv/etcd/member"
	"github.com/revkv/revkv/kv"
	"go.etcd.io/raft/v3/raftpb"
)

// cluster is a scripted cluster for tests of one scenario: every message
// delivered in order, no faults.
type cluster struct {
	t       *testing.T
	members map[uint64]*member.Member
	queue   []*raftpb.Message
}

func newCluster(t *testing.T, n int, cfg member.Config) *cluster {
	cryptotest.SetGlobalRandom(t, 1)
	c := &cluster{t: t, members: map[uint64]*member.Member{}}
	var peers []member.Peer
	for i := 1; i <= n; i++ {
		peers = append(peers, peerOf(uint64(i), false))
	}
	for _, p := range peers {
		cfg.ID, cfg.Peers = p.ID, peers
		c.start(cfg)
	}
	t.Cleanup(func() {
		for _, m := range c.members {
			m.Close()
		}
	})
	return c
}

func (c *cluster) start(cfg member.Config) {
	m, err := member.Open(cfg)
	if err != nil {
		c.t.Fatalf("open member %d: %v", cfg.ID, err)
	}
	c.members[cfg.ID] = m
	c.ready(m)
}

func (c *cluster) ready(m *member.Member) {
	msgs, err := m.Ready()
	if err != nil {
		c.t.Fatalf("member %d: Ready: %v", m.Status().ID, err)
	}
	c.queue = append(c.queue, msgs...)
}

// round ticks every member and delivers up to hops generations of
// messages (a member that resends forever cannot stall the test).
func (c *cluster) round(hops int) {
	ids := slices.Sorted(func(yield func(uint64) bool) {
		for id := range c.members {
			if !yield(id) {
				return
			}
		}
	})
	for _, id := range ids {
		c.members[id].Tick()
		c.ready(c.members[id])
	}
	for range hops {
		batch := c.queue
		c.queue = nil
		for _, msg := range batch {
			to, from := c.members[msg.GetTo()], c.members[msg.GetFrom()]
			if to == nil {
				continue
			}
			if err := to.Step(msg); err != nil {
				c.t.Logf("step %v %d->%d: %v", msg.GetType(), msg.GetFrom(), msg.GetTo(), err)
			}
			c.ready(to)
			if msg.GetType() == raftpb.MessageType_MsgSnap && from != nil {
				from.ReportSnapshot(msg.GetTo(), false)
				c.ready(from)
			}
		}
	}
}

func (c *cluster) leader() *member.Member {
	for range 100 {
		for _, m := range c.members {
			if st := m.Status(); st.Leader == st.ID {
				return m
			}
		}
		c.round(4)
	}
	c.t.Fatal("no leader")
	return nil
}

// TestJoinIdleCluster: a member added to an idle cluster whose log was
// compacted behind the leader's newest snapshot must catch up without
// more writes. Known bug (see /work/notes/raft-sim.md): the leader sends
// its newest snapshot, taken before the member was added, so raft on the
// new member ignores it (the snapshot's ConfState does not list it), and
// the leader resends it in a loop until a later snapshot is taken, which
// on an idle cluster is never. Run it with REVKV_SIM_KNOWN_BUGS=1.
func TestJoinIdleCluster(t *testing.T) {
	if os.Getenv("REVKV_SIM_KNOWN_BUGS") == "" {
		t.Skip("known member bug: a member added to an idle cluster never catches up (REVKV_SIM_KNOWN_BUGS=1 runs it)")
	}
	cfg := member.Config{SnapshotEntries: 5, CatchUpEntries: 1}
	c := newCluster(t, 3, cfg)
	lead := c.leader()
	// Write until the leader has just taken a snapshot (and compacted its
	// log behind it), so the addition is the first entry after it.
	for i := 0; i < 5 || lead.Status().SnapshotIndex != lead.Status().Applied; i++ {
		p, err := lead.Propose(member.Request{Txn: &kv.TxnRequest{Then: []kv.Op{kv.PutOp([]byte("k"), fmt.Appendf(nil, "v%d", i))}}})
		if err != nil {
			t.Fatal(err)
		}
		c.ready(lead)
		for range 10 {
			c.round(4)
		}
		if _, err := p.Result(); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	add := lead.AddMember(peerOf(4, false))
	c.ready(lead)
	cfg.ID, cfg.Peers, cfg.Join = 4, nil, true
	c.start(cfg)
	for range 200 {
		c.round(4)
	}
	if _, err := add.Result(); err != nil {
		t.Fatalf("add member 4: %v", err)
	}
	want, got := lead.Status(), c.members[4].Status()
	if got.Applied != want.Applied || c.members[4].DB().Rev() != lead.DB().Rev() {
		t.Fatalf("member 4 after 200 rounds: applied %d, revision %d; leader: applied %d (snapshot %d), revision %d",
			got.Applied, c.members[4].DB().Rev(), want.Applied, want.SnapshotIndex, lead.DB().Rev())
	}
}
