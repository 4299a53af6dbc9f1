package simtest

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"testing"
	"testing/cryptotest"

	"github.com/revkv/revkv/etcd/member"
	"github.com/revkv/revkv/etcd/raftstore"
	"github.com/revkv/revkv/kv"
	"github.com/revkv/revkv/persist/memfs"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// cluster is a scripted cluster for tests of one scenario: messages
// delivered in order, no faults but those a test makes.
type cluster struct {
	t       *testing.T
	cfg     member.Config
	peers   []member.Peer
	members map[uint64]*member.Member // running ones
	disks   map[uint64]*memfs.FS      // nil: logs in memory
	cut     map[uint64]bool           // messages to and from these are dropped
	queue   []*raftpb.Message
}

// newCluster starts n members with cfg (ID and Peers set per member), on
// memfs disks if durable.
func newCluster(t *testing.T, n int, cfg member.Config, durable bool) *cluster {
	cryptotest.SetGlobalRandom(t, 1)
	c := &cluster{t: t, cfg: cfg, members: map[uint64]*member.Member{}, disks: map[uint64]*memfs.FS{}, cut: map[uint64]bool{}}
	for i := 1; i <= n; i++ {
		c.peers = append(c.peers, peerOf(uint64(i), false))
		if durable {
			c.disks[uint64(i)] = memfs.New(memfs.Options{Crash: memfs.CrashTorn, Seed: uint64(i)})
		}
	}
	for _, p := range c.peers {
		if err := c.open(p.ID, c.peers, false); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, m := range c.members {
			m.Close()
		}
	})
	return c
}

// open starts (or restarts, from its disk) member id. A panic in Open is
// returned as an error.
func (c *cluster) open(id uint64, peers []member.Peer, join bool) (err error) {
	cfg := c.cfg
	cfg.ID, cfg.Peers, cfg.Join = id, peers, join
	if fs := c.disks[id]; fs != nil {
		st, err := raftstore.Open(fs, "raft", raftstore.Options{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			return fmt.Errorf("member %d: raftstore: %w", id, err)
		}
		cfg.Storage = st
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("member %d: Open panicked: %v", id, r)
		}
	}()
	m, err := member.Open(cfg)
	if err != nil {
		return fmt.Errorf("member %d: Open: %w", id, err)
	}
	c.members[id] = m
	c.ready(m)
	return nil
}

// crash stops member id as a power loss would.
func (c *cluster) crash(id uint64) {
	fs := c.disks[id]
	fs.CrashAfter(1)
	c.members[id].Close()
	fs.Crash()
	delete(c.members, id)
}

func (c *cluster) ready(m *member.Member) {
	id := m.Status().ID
	msgs, err := m.Ready()
	if err != nil {
		if fs := c.disks[id]; fs != nil && errors.Is(err, memfs.ErrCrashed) {
			c.crash(id)
			return
		}
		c.t.Fatalf("member %d: Ready: %v", id, err)
	}
	c.queue = append(c.queue, msgs...)
}

// round ticks every member and delivers up to hops generations of
// messages (a member that resends forever cannot stall the test).
func (c *cluster) round(hops int) {
	for _, id := range slices.Sorted(maps.Keys(c.members)) {
		if m := c.members[id]; m != nil {
			m.Tick()
			c.ready(m)
		}
	}
	for range hops {
		batch := c.queue
		c.queue = nil
		for _, msg := range batch {
			if c.cut[msg.GetTo()] || c.cut[msg.GetFrom()] {
				continue
			}
			to := c.members[msg.GetTo()]
			if to == nil {
				continue
			}
			if err := to.Step(msg); err != nil {
				c.t.Logf("step %v %d->%d: %v", msg.GetType(), msg.GetFrom(), msg.GetTo(), err)
			}
			c.ready(to)
			if from := c.members[msg.GetFrom()]; msg.GetType() == raftpb.MessageType_MsgSnap && from != nil {
				from.ReportSnapshot(msg.GetTo(), false)
				c.ready(from)
			}
		}
	}
}

func (c *cluster) leader() *member.Member {
	for range 100 {
		for _, id := range slices.Sorted(maps.Keys(c.members)) {
			if st := c.members[id].Status(); st.Leader == st.ID {
				return c.members[id]
			}
		}
		c.round(4)
	}
	c.t.Fatal("no leader")
	return nil
}

// put writes key=value through m and runs the cluster until it is applied.
func (c *cluster) put(m *member.Member, key, value string) {
	p, err := m.Propose(member.Request{Txn: &kv.TxnRequest{Then: []kv.Op{kv.PutOp([]byte(key), []byte(value))}}})
	if err != nil {
		c.t.Fatal(err)
	}
	c.ready(m)
	for range 10 {
		c.round(4)
	}
	if _, err := p.Result(); err != nil {
		c.t.Fatalf("put %s=%s: %v", key, value, err)
	}
}

// TestJoinIdleCluster: a member added to an idle cluster whose log was
// compacted behind the leader's newest snapshot must catch up without
// more writes. (The simulation found it: the leader sent its newest
// snapshot, taken before the member was added, which raft on the new
// member ignores as its ConfState does not list it, again and again.
// member now sends a snapshot of the state at the time of sending.)
func TestJoinIdleCluster(t *testing.T) {
	cfg := member.Config{SnapshotEntries: 5, CatchUpEntries: 1}
	c := newCluster(t, 3, cfg, false)
	lead := c.leader()
	// Write until the leader has just taken a snapshot (and compacted its
	// log behind it), so the addition is the first entry after it.
	for i := 0; i < 5 || lead.Status().SnapshotIndex != lead.Status().Applied; i++ {
		c.put(lead, "k", fmt.Sprintf("v%d", i))
	}
	add := lead.AddMember(peerOf(4, false))
	c.ready(lead)
	if err := c.open(4, nil, true); err != nil {
		t.Fatal(err)
	}
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

// TestRestartAfterCrashInstallingSnapshot: a follower that crashes at any
// point while it installs a snapshot from the leader restarts and catches
// up. Each k crashes its disk at the k-th operation of the install, until
// an install completes without reaching it. (The simulation found that a
// crash after the snapshot was durable and before the hard state raising
// the commit index to it was left a log on which raft panicked at every
// restart; member.Open now raises the commit index.)
func TestRestartAfterCrashInstallingSnapshot(t *testing.T) {
	for k := int64(1); ; k++ {
		c := newCluster(t, 3, member.Config{SnapshotEntries: 3, CatchUpEntries: 1}, true)
		lead := c.leader()
		f := lead.Status().ID%3 + 1 // a follower
		c.cut[f] = true
		for i := range 8 {
			c.put(lead, "k", fmt.Sprintf("v%d", i))
		}
		c.cut[f] = false
		c.disks[f].CrashAfter(k)
		for range 20 {
			c.round(4)
		}
		if c.members[f] != nil {
			if st := c.members[f].Status(); st.Applied != lead.Status().Applied {
				t.Fatalf("k=%d: follower %d applied %d, leader %d", k, f, st.Applied, lead.Status().Applied)
			}
			t.Logf("an install takes fewer than %d disk operations: every crash point tried", k)
			return
		}
		if err := c.open(f, c.peers, false); err != nil {
			t.Fatalf("restart after a crash at operation %d of a snapshot install: %v", k, err)
		}
		for range 20 {
			c.round(4)
		}
		if got, want := c.members[f].Status().Applied, lead.Status().Applied; got != want {
			t.Fatalf("k=%d: after its restart follower %d applied %d, leader %d", k, f, got, want)
		}
	}
}

// TestDuplicatedProposal: a proposal forwarded by a follower and delivered
// twice to the leader (a transport that retries) must be applied once.
// (The simulation found, as a non-linearizable history, that raft appends
// both copies and member applied both; member now skips a request ID it
// applied before.)
func TestDuplicatedProposal(t *testing.T) {
	c := newCluster(t, 3, member.Config{}, false)
	lead := c.leader()
	f := c.members[lead.Status().ID%3+1]
	for range 5 {
		c.round(4) // the follower learns who leads
	}
	before := lead.DB().Rev()
	p, err := f.Propose(member.Request{Txn: &kv.TxnRequest{Then: []kv.Op{kv.PutOp([]byte("k"), []byte("v"))}}})
	if err != nil {
		t.Fatal(err)
	}
	c.ready(f)
	for _, m := range c.queue {
		if m.GetType() == raftpb.MessageType_MsgProp {
			c.queue = append(c.queue, proto.Clone(m).(*raftpb.Message))
			break
		}
	}
	for range 10 {
		c.round(4)
	}
	res, err := p.Result()
	if err != nil {
		t.Fatal(err)
	}
	if rev := res.(*kv.TxnResponse).Rev; rev != before+1 || lead.DB().Rev() != rev {
		t.Fatalf("one put from revision %d: acknowledged at %d, the store is at %d", before, rev, lead.DB().Rev())
	}
}

// TestRemoveLastVoter: removing members one by one down to the last
// voter, and then that one, must be refused (an error on the Pending), not
// panic raft ("removed all voters") on every member as the entry is
// applied, and again at every restart as it is replayed. (The simulation
// found that it did; member now refuses it with ErrLastVoter.)
func TestRemoveLastVoter(t *testing.T) {
	c := newCluster(t, 3, member.Config{}, false)
	lead := c.leader()
	for range 5 {
		c.round(4)
	}
	remove := func(m *member.Member, id uint64) (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v", r)
			}
		}()
		p := m.RemoveMember(id)
		c.ready(m)
		for range 30 {
			c.round(4)
		}
		_, err = p.Result()
		return err
	}
	// The two followers go, then the leader itself.
	for _, id := range []uint64{lead.Status().ID%3 + 1, (lead.Status().ID+1)%3 + 1} {
		if err := remove(lead, id); err != nil {
			t.Fatalf("remove member %d: %v", id, err)
		}
		c.members[id].Close()
		delete(c.members, id)
	}
	err := remove(lead, lead.Status().ID)
	if !errors.Is(err, member.ErrLastVoter) {
		t.Fatalf("removing the last voter: %v, want a refusal", err)
	}
}
