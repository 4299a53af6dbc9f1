package member

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/kv"
)

// testCluster drives members by hand on one goroutine: a tiny network
// that collects every member's Ready messages and steps them into their
// recipients, and a shared manual clock.
type testCluster struct {
	t       testing.TB
	clock   *engine.ManualClock
	members map[uint64]*Member
	stores  map[uint64]Storage
	cfg     func(id uint64) Config // the config a member (re)opens with
	// cut, if it reports true, drops the message from -> to.
	cut func(from, to uint64) bool
	// drop, if it reports true, drops the message (as cut, by content).
	drop func(msg *raftpb.Message) bool
	// loseSnaps, if set, drops the MsgSnaps to that member without a
	// report (a transport that forgets to call ReportSnapshot).
	loseSnaps map[uint64]bool
	snapsLost int
	// onFail, if set, is told of a member whose Ready failed; if it
	// returns true the test goes on (it took the member down).
	onFail func(id uint64, err error) bool
}

func peerOf(id uint64) Peer {
	return Peer{ID: id, Name: fmt.Sprintf("m%d", id), PeerURLs: []string{fmt.Sprintf("http://m%d:2380", id)}}
}

// newTestCluster bootstraps n members with IDs 1..n on memory storage.
func newTestCluster(t testing.TB, n int, tune func(*Config)) *testCluster {
	t.Helper()
	c := &testCluster{
		t:       t,
		clock:   engine.NewManualClock(time.Unix(1_700_000_000, 0)),
		members: map[uint64]*Member{},
		stores:  map[uint64]Storage{},
	}
	var peers []Peer
	for id := uint64(1); id <= uint64(n); id++ {
		peers = append(peers, peerOf(id))
	}
	c.cfg = func(id uint64) Config {
		cfg := Config{ID: id, Peers: peers, Clock: c.clock, Storage: c.stores[id]}
		if tune != nil {
			tune(&cfg)
		}
		return cfg
	}
	for id := uint64(1); id <= uint64(n); id++ {
		c.stores[id] = NewMemoryStorage()
		c.open(id)
	}
	t.Cleanup(func() {
		for _, m := range c.members {
			m.Close()
		}
	})
	return c
}

func (c *testCluster) open(id uint64) *Member {
	c.t.Helper()
	m, err := Open(c.cfg(id))
	if err != nil {
		c.t.Fatalf("open member %d: %v", id, err)
	}
	c.members[id] = m
	return m
}

func (c *testCluster) ids() []uint64 {
	ids := make([]uint64, 0, len(c.members))
	for id := range c.members {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// deliver runs every member's Ready and delivers the messages until none
// is left.
func (c *testCluster) deliver() {
	c.t.Helper()
	for round := range 1000 {
		var msgs []*raftpb.Message
		for _, id := range c.ids() {
			// A leader's appends go out before its own write (ReadySend),
			// so they are delivered even when the write fails.
			out, err := c.members[id].ReadySend(func(early []*raftpb.Message) { msgs = append(msgs, early...) })
			msgs = append(msgs, out...) // made durable before the failure
			if err != nil && (c.onFail == nil || !c.onFail(id, err)) {
				c.t.Fatalf("member %d: Ready: %v", id, err)
			}
		}
		if len(msgs) == 0 {
			return
		}
		for _, msg := range msgs {
			to, from := msg.GetTo(), msg.GetFrom()
			if round > 990 {
				c.t.Logf("round %d: %v %d->%d term %d index %d logterm %d reject %v hint %d", round, msg.GetType(), from, to, msg.GetTerm(), msg.GetIndex(), msg.GetLogTerm(), msg.GetReject(), msg.GetRejectHint())
			}
			r, ok := c.members[to]
			if msg.GetType() == raftpb.MessageType_MsgSnap && c.loseSnaps[to] {
				c.snapsLost++
				continue
			}
			if !ok || (c.cut != nil && c.cut(from, to)) || (c.drop != nil && c.drop(msg)) {
				if s, ok := c.members[from]; ok && msg.GetType() == raftpb.MessageType_MsgSnap {
					s.ReportSnapshot(to, true)
				}
				continue
			}
			if err := r.Step(msg); err != nil {
				c.t.Logf("member %d: step %v from %d: %v", to, msg.GetType(), from, err)
			}
			if s, ok := c.members[from]; ok && msg.GetType() == raftpb.MessageType_MsgSnap {
				s.ReportSnapshot(to, false)
			}
		}
	}
	c.t.Fatal("messages still flowing after 1000 rounds")
}

// tick ticks every member once (the clock moves 100ms) and delivers.
func (c *testCluster) tick() {
	c.clock.Advance(100 * time.Millisecond)
	for _, id := range c.ids() {
		c.members[id].Tick()
	}
	c.deliver()
}

// leader ticks until the members agree on a leader, and returns it.
func (c *testCluster) leader() uint64 {
	c.t.Helper()
	for range 500 {
		c.deliver()
		var lead uint64
		agree := true
		for _, id := range c.ids() {
			st := c.members[id].Status()
			if st.Removed {
				continue
			}
			if st.Leader == 0 || (lead != 0 && st.Leader != lead) {
				agree = false
				break
			}
			lead = st.Leader
		}
		if agree && lead != 0 && c.members[lead] != nil && c.members[lead].Status().Leader == lead {
			return lead
		}
		c.tick()
	}
	c.t.Fatal("no leader after 500 ticks")
	return 0
}

// wait delivers and ticks until p is resolved, and returns its outcome.
func (c *testCluster) wait(p *Pending) (any, error) {
	c.t.Helper()
	for range 500 {
		c.deliver()
		select {
		case <-p.Done():
			return p.Result()
		default:
		}
		c.tick()
	}
	c.t.Fatal("request not resolved after 500 ticks")
	return nil, nil
}

// propose proposes req on member id and waits for the outcome.
func (c *testCluster) propose(id uint64, req Request) (any, error) {
	c.t.Helper()
	p, err := c.members[id].Propose(req)
	if err != nil {
		return nil, err
	}
	return c.wait(p)
}

func putReq(key, value string) Request {
	return Request{Txn: &kv.TxnRequest{Then: []kv.Op{{Type: kv.OpPut, Key: []byte(key), Value: []byte(value)}}}}
}

func (c *testCluster) mustPut(id uint64, key, value string) int64 {
	c.t.Helper()
	res, err := c.propose(id, putReq(key, value))
	if err != nil {
		c.t.Fatalf("put %s on member %d: %v", key, id, err)
	}
	return res.(*kv.TxnResponse).Rev
}

// follower returns a member that is not lead.
func (c *testCluster) follower(lead uint64) uint64 {
	for _, id := range c.ids() {
		if id != lead {
			return id
		}
	}
	c.t.Fatal("no follower")
	return 0
}

// catchUp ticks until every live member has applied what the leader
// committed (at most 200 ticks).
func (c *testCluster) catchUp() {
	c.t.Helper()
	for range 200 {
		c.deliver()
		var lo, hi uint64 = ^uint64(0), 0
		for _, id := range c.ids() {
			st := c.members[id].Status()
			if st.Removed {
				continue
			}
			lo, hi = min(lo, st.Applied), max(hi, st.Committed, st.Applied)
		}
		if lo == hi {
			return
		}
		c.tick()
	}
}

// converged checks that every member applied the same: the same applied
// index, revision and hash.
func (c *testCluster) converged() {
	c.t.Helper()
	c.catchUp()
	var want kv.KeyValueHash
	var wantApplied, wantCI uint64
	for i, id := range c.ids() {
		m := c.members[id]
		if m.Status().Removed {
			continue
		}
		h, err := m.DB().HashByRev(0)
		if err != nil {
			c.t.Fatalf("member %d: hash: %v", id, err)
		}
		applied := m.Status().Applied
		sn, err := m.DB().Snapshot()
		if err != nil {
			c.t.Fatalf("member %d: %v", id, err)
		}
		ci := sn.ConsistentIndex()
		sn.Close()
		if ci > applied {
			c.t.Fatalf("member %d: consistent index %d above applied %d", id, ci, applied)
		}
		if i == 0 {
			want, wantApplied, wantCI = h, applied, ci
			continue
		}
		if h != want || applied != wantApplied || ci != wantCI {
			c.t.Fatalf("member %d: hash %+v applied %d index %d, member %d: %+v applied %d index %d", id, h, applied, ci, c.ids()[0], want, wantApplied, wantCI)
		}
	}
}

func TestThreeMembersPutAndReadIndex(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	lead := c.leader()
	fol := c.follower(lead)

	rev1 := c.mustPut(lead, "a", "1")
	rev2 := c.mustPut(fol, "b", "2")
	if rev2 != rev1+1 {
		t.Fatalf("revisions %d then %d", rev1, rev2)
	}
	c.converged()
	for _, id := range c.ids() {
		for k, v := range map[string]string{"a": "1", "b": "2"} {
			got, ok, err := c.members[id].DB().Get([]byte(k))
			if err != nil || !ok || string(got.Value) != v {
				t.Fatalf("member %d: get %s = %q %v %v", id, k, got.Value, ok, err)
			}
		}
	}
	// A read index on each member covers both puts.
	for _, id := range c.ids() {
		res, err := c.wait(c.members[id].ReadIndex())
		if err != nil {
			t.Fatalf("member %d: read index: %v", id, err)
		}
		if idx := res.(uint64); idx < c.members[lead].Status().Committed || c.members[id].Status().Applied < idx {
			t.Fatalf("member %d: read index %d, applied %d", id, idx, c.members[id].Status().Applied)
		}
	}
	if got := len(c.members[fol].Members()); got != 3 {
		t.Fatalf("%d members", got)
	}
}

var revkvCount = kv.RangeOptions{CountOnly: true, TotalCount: true}

func TestSingleMember(t *testing.T) {
	c := newTestCluster(t, 1, nil)
	if lead := c.leader(); lead != 1 {
		t.Fatalf("leader %d", lead)
	}
	rev := c.mustPut(1, "k", "v")
	res, err := c.wait(c.members[1].ReadIndex())
	if err != nil || res.(uint64) < c.members[1].Status().Committed {
		t.Fatalf("read index %v %v", res, err)
	}
	if got, ok, _ := c.members[1].DB().Get([]byte("k")); !ok || got.ModRevision != rev {
		t.Fatalf("get: %+v %v", got, ok)
	}
}
