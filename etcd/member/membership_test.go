package member

import (
	"errors"
	"slices"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// join opens a new member id with Join set, on fresh storage.
func (c *testCluster) join(id uint64, tune func(*Config)) *Member {
	c.t.Helper()
	c.stores[id] = NewMemoryStorage()
	cfg := Config{ID: id, Join: true, Clock: c.clock, Storage: c.stores[id]}
	if tune != nil {
		tune(&cfg)
	}
	m, err := Open(cfg)
	if err != nil {
		c.t.Fatalf("join member %d: %v", id, err)
	}
	c.members[id] = m
	return m
}

func (c *testCluster) memberOp(p *Pending) ([]Peer, error) {
	c.t.Helper()
	res, err := c.wait(p)
	if err != nil {
		return nil, err
	}
	return res.([]Peer), nil
}

func ids(ps []Peer) []uint64 {
	var out []uint64
	for _, p := range ps {
		out = append(out, p.ID)
	}
	return out
}

func TestMembershipChanges(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	lead := c.leader()
	fol := c.follower(lead)
	c.mustPut(lead, "a", "1")

	// Add 4 as a learner (proposed on a follower), start it: it catches up.
	learner := peerOf(4)
	learner.IsLearner = true
	learner.ClientURLs = []string{"http://m4:2379"}
	ps, err := c.memberOp(c.members[fol].AddMember(learner))
	if err != nil || !slices.Equal(ids(ps), []uint64{1, 2, 3, 4}) || !ps[3].IsLearner {
		t.Fatalf("add learner: %+v %v", ps, err)
	}
	c.join(4, nil)
	c.mustPut(lead, "b", "2")
	c.converged()
	if st := c.members[4].Status(); !st.IsLearner || st.Leader != lead {
		t.Fatalf("learner status %+v", st)
	}
	if got := c.members[4].Members(); !slices.EqualFunc(got, c.members[lead].Members(), peerEqual) {
		t.Fatalf("learner's table %+v", got)
	}

	// The new member publishes its name and client URLs (proposed on the
	// learner itself: it forwards to the leader).
	ps, err = c.memberOp(c.members[4].Publish(4, "four", []string{"http://m4:2379", "http://m4:4001"}))
	if err != nil || ps[3].Name != "four" || len(ps[3].ClientURLs) != 2 || !ps[3].IsLearner || !slices.Equal(ps[3].PeerURLs, learner.PeerURLs) {
		t.Fatalf("publish: %+v %v", ps, err)
	}
	c.converged()
	if got := c.members[1].Members(); !slices.EqualFunc(got, ps, peerEqual) {
		t.Fatalf("member 1's table after publish: %+v", got)
	}

	// Refusals, decided before proposing.
	for _, tc := range []struct {
		name string
		p    *Pending
		want error
	}{
		{"add existing", c.members[lead].AddMember(peerOf(2)), ErrMemberExists},
		{"add taken URL", c.members[lead].AddMember(Peer{ID: 9, PeerURLs: peerOf(1).PeerURLs}), ErrMemberExists},
		{"remove unknown", c.members[lead].RemoveMember(99), ErrMemberNotFound},
		{"update unknown", c.members[lead].UpdateMember(99, nil), ErrMemberNotFound},
		{"promote voter", c.members[lead].PromoteMember(2), ErrNotLearner},
		{"promote on follower", c.members[fol].PromoteMember(4), ErrNotLeader},
		{"add ID 0", c.members[lead].AddMember(Peer{}), ErrInvalidRequest},
		{"publish unknown", c.members[lead].Publish(99, "x", nil), ErrMemberNotFound},
	} {
		if _, err := c.wait(tc.p); !errors.Is(err, tc.want) {
			t.Fatalf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}

	// Promote, update, remove.
	ps, err = c.memberOp(c.members[lead].PromoteMember(4))
	if err != nil || ps[3].IsLearner {
		t.Fatalf("promote: %+v %v", ps, err)
	}
	ps, err = c.memberOp(c.members[fol].UpdateMember(4, []string{"http://m4b:2380"}))
	if err != nil || !slices.Equal(ps[3].PeerURLs, []string{"http://m4b:2380"}) || !slices.Equal(ps[3].ClientURLs, []string{"http://m4:2379", "http://m4:4001"}) {
		t.Fatalf("update: %+v %v", ps, err)
	}
	victim := fol
	ps, err = c.memberOp(c.members[lead].RemoveMember(victim))
	if err != nil || slices.Contains(ids(ps), victim) {
		t.Fatalf("remove: %+v %v", ps, err)
	}
	c.deliver()
	if st := c.members[victim].Status(); !st.Removed {
		t.Fatalf("removed member's status %+v", st)
	}
	if _, err := c.members[victim].Propose(putReq("x", "y")); !errors.Is(err, ErrStopped) {
		t.Fatalf("propose on a removed member: %v", err)
	}
	if _, err := c.wait(c.members[lead].AddMember(peerOf(victim))); !errors.Is(err, ErrIDRemoved) {
		t.Fatalf("re-add a removed ID: %v", err)
	}
	if !c.members[lead].IsRemoved(victim) {
		t.Fatal("IsRemoved")
	}
	c.members[victim].Close()
	delete(c.members, victim)

	// The cluster (now 1, 3 or 2, and 4) goes on, with 4 voting.
	lead = c.leader()
	c.mustPut(lead, "c", "3")
	c.converged()
	if got := len(c.members[4].Members()); got != 3 {
		t.Fatalf("%d members", got)
	}
}

func peerEqual(a, b Peer) bool {
	return a.ID == b.ID && a.Name == b.Name && a.IsLearner == b.IsLearner &&
		slices.Equal(a.PeerURLs, b.PeerURLs) && slices.Equal(a.ClientURLs, b.ClientURLs)
}

// TestRemoveLeader: the leader removes itself; it steps down and the rest
// elect another.
func TestRemoveLeader(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	lead := c.leader()
	if _, err := c.memberOp(c.members[lead].RemoveMember(lead)); err != nil {
		t.Fatal(err)
	}
	old := c.members[lead]
	delete(c.members, lead)
	defer old.Close()
	next := c.leader()
	if next == lead {
		t.Fatal("removed leader still leads")
	}
	c.mustPut(next, "k", "v")
	c.converged()
}

// TestOneConfChangeAtATime: a second membership change proposed on the
// same member while the first is in flight is refused at once (raft would
// drop it silently); once the first is applied, the next goes through.
func TestOneConfChangeAtATime(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	lead := c.leader()
	first := c.members[lead].AddMember(Peer{ID: 4, IsLearner: true})
	if _, err := c.members[lead].AddMember(Peer{ID: 5, IsLearner: true}).Result(); !errors.Is(err, ErrProposalDropped) {
		t.Fatalf("second change in flight: %v", err)
	}
	if _, err := c.memberOp(first); err != nil {
		t.Fatal(err)
	}
	if ps, err := c.memberOp(c.members[lead].AddMember(Peer{ID: 5, IsLearner: true})); err != nil || len(ps) != 5 {
		t.Fatalf("second change after the first: %+v %v", ps, err)
	}
}

// TestPromoteLaggingLearner: a learner far behind the leader is not
// promoted (ErrLearnerNotReady); once caught up, it is. A learner serves
// read indexes and forwards proposals.
func TestPromoteLaggingLearner(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	lead := c.leader()
	if _, err := c.memberOp(c.members[lead].AddMember(Peer{ID: 4, IsLearner: true})); err != nil {
		t.Fatal(err)
	}
	c.join(4, nil)
	c.cut = func(from, to uint64) bool { return from == 4 || to == 4 }
	c.putMany(lead, "k", 30)
	if _, err := c.wait(c.members[lead].PromoteMember(4)); !errors.Is(err, ErrLearnerNotReady) {
		t.Fatalf("promote a lagging learner: %v", err)
	}
	c.cut = nil
	c.converged()
	if _, err := c.propose(4, putReq("from-learner", "1")); err != nil {
		t.Fatalf("proposal forwarded by the learner: %v", err)
	}
	res, err := c.wait(c.members[4].ReadIndex())
	if err != nil || c.members[4].Status().Applied < res.(uint64) {
		t.Fatalf("read index on the learner: %v %v", res, err)
	}
	if _, ok, _ := c.members[4].DB().Get([]byte("from-learner")); !ok {
		t.Fatal("the learner's read index does not cover its own put")
	}
	if _, err := c.memberOp(c.members[lead].PromoteMember(4)); err != nil {
		t.Fatalf("promote a caught-up learner: %v", err)
	}
	c.converged()
	if c.members[4].Status().IsLearner {
		t.Fatal("still a learner")
	}
}

// TestRemoveLastVoter: the followers can go, the last voter cannot (raft
// would panic on every member applying it); a learner does not count.
func TestRemoveLastVoter(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	lead := c.leader()
	if _, err := c.memberOp(c.members[lead].AddMember(Peer{ID: 7, IsLearner: true})); err != nil {
		t.Fatal(err)
	}
	for _, id := range c.ids() {
		if id == lead {
			continue
		}
		if _, err := c.memberOp(c.members[lead].RemoveMember(id)); err != nil {
			t.Fatalf("remove member %d: %v", id, err)
		}
		c.members[id].Close()
		delete(c.members, id)
	}
	if _, err := c.wait(c.members[lead].RemoveMember(lead)); !errors.Is(err, ErrLastVoter) {
		t.Fatalf("remove the last voter: %v", err)
	}
	// Refused when applied too, should a member propose it with an older
	// table: the entry is a no-op on every member.
	m := c.members[lead]
	m.mu.Lock()
	rid := m.nextID()
	cc := &raftpb.ConfChange{Type: raftpb.ConfChangeType_ConfChangeRemoveNode.Enum(), NodeId: proto.Uint64(lead),
		Context: encodeConfContext(confContext{id: rid, peer: Peer{ID: lead}})}
	p := newPending(m.ticks, lead)
	p.data = cc.Context
	if err := m.rn.ProposeConfChange(cc); err != nil {
		m.mu.Unlock()
		t.Fatal(err)
	}
	m.proposals[rid.Seq] = p
	m.mu.Unlock()
	if _, err := c.wait(p); !errors.Is(err, ErrLastVoter) {
		t.Fatalf("applying the removal of the last voter: %v", err)
	}
	c.mustPut(lead, "still", "here")
	c.restart(lead) // the refused entry replays as a no-op
	c.leader()
	c.mustPut(lead, "and", "after")
}

// TestRestartRemovedMember: a removed member reopened from a snapshot
// that holds its removal is still removed: it reports it and refuses
// requests with ErrStopped, as before the restart.
func TestRestartRemovedMember(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.SnapshotEntries, cfg.CatchUpEntries = 1, 1 })
	lead := c.leader()
	fol := c.follower(lead)
	if _, err := c.memberOp(c.members[lead].RemoveMember(fol)); err != nil {
		t.Fatal(err)
	}
	c.catchUp()
	before := c.members[fol].Status()
	if !before.Removed || before.SnapshotIndex != before.Applied {
		t.Fatalf("removed member before the restart: %+v (the test needs its removal in its snapshot)", before)
	}
	m := c.restart(fol)
	if st := m.Status(); !st.Removed {
		t.Fatalf("removed member after a restart: %+v", st)
	}
	if _, err := m.Propose(putReq("k", "v")); !errors.Is(err, ErrStopped) {
		t.Fatalf("propose on the restarted removed member: %v", err)
	}
}

// TestRemovedMemberFailsItsRequests: the requests in flight on a member
// when it applies its own removal fail with ErrStopped at once (it gets
// no more entries to resolve them with), not after RequestTimeoutTicks.
func TestRemovedMemberFailsItsRequests(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	lead := c.leader()
	fol := c.follower(lead)
	c.cut = func(from, to uint64) bool { return from == fol && to == lead } // its proposal is lost
	p, err := c.members[fol].Propose(putReq("k", "v"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.memberOp(c.members[lead].RemoveMember(fol)); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		c.tick()
	}
	if !c.members[fol].Status().Removed {
		t.Fatal("the follower did not apply its removal")
	}
	if _, err := p.Result(); !errors.Is(err, ErrStopped) {
		t.Fatalf("proposal in flight on the removed member: %v", err)
	}
}

// TestRemoveLeaderThenRestart: in a 2-voter cluster the leader removes
// itself and goes away; the other member applies the removal, then
// restarts. It must come back as the only voter: the commit index of a
// membership change is made durable before the change is applied (a commit
// index is otherwise volatile, re-learned from the leader, and the leader
// that could tell it is gone: with the old configuration it would wait
// for the removed member's vote for ever).
func TestRemoveLeaderThenRestart(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	lead := c.leader()
	if _, err := c.memberOp(c.members[lead].RemoveMember(c.follower(lead))); err != nil {
		t.Fatal(err)
	}
	for _, id := range c.ids() {
		if c.members[id].Status().Removed {
			c.members[id].Close()
			delete(c.members, id)
		}
	}
	lead = c.leader()
	fol := c.follower(lead)
	if _, err := c.memberOp(c.members[lead].RemoveMember(lead)); err != nil {
		t.Fatal(err)
	}
	c.deliver()
	if st := c.members[fol].Status(); len(c.members[fol].Members()) != 1 {
		t.Fatalf("the remaining member did not apply the leader's removal: %+v %v", st, c.members[fol].Members())
	}
	c.members[lead].Close()
	delete(c.members, lead)
	c.restart(fol)
	if got := c.leader(); got != fol {
		t.Fatalf("leader %d", got)
	}
	c.mustPut(fol, "k", "v")
}

// TestRemoveLeaderAheadOfFollower: the leader of a 2-voter cluster removes
// itself, and appends an entry after the removal that the other member
// does not get before the leader applies the removal. Had the removed
// leader stepped down then, the other member, which has not learnt that
// the removal committed, would need its vote, which it refuses (its log is
// longer), while it never campaigns (it is no voter): no leader, for
// ever. A removed leader that leads on brings the other member up to date;
// that member then ignores it (as a transport ignores removed members)
// and elects itself.
func TestRemoveLeaderAheadOfFollower(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	lead := c.leader()
	if _, err := c.memberOp(c.members[lead].RemoveMember(c.follower(lead))); err != nil {
		t.Fatal(err)
	}
	for _, id := range c.ids() {
		if c.members[id].Status().Removed {
			c.members[id].Close()
			delete(c.members, id)
		}
	}
	lead = c.leader()
	fol := c.follower(lead)
	L, F := c.members[lead], c.members[fol]
	step := func(to *Member, msgs []*raftpb.Message) {
		for _, msg := range msgs {
			if err := to.Step(msg); err != nil {
				t.Logf("step %v: %v", msg.GetType(), err)
			}
		}
	}
	ready := func(m *Member) []*raftpb.Message {
		msgs, err := m.Ready()
		if err != nil {
			t.Fatal(err)
		}
		return msgs
	}
	p := L.RemoveMember(lead)
	step(F, ready(L))                                         // the removal's entry
	step(L, ready(F))                                         // its ack: the leader commits it
	if _, err := L.Propose(putReq("late", "v")); err != nil { // appended after it
		t.Fatal(err)
	}
	ready(L) // applies the removal; what it sends is lost
	if _, err := p.Result(); err != nil {
		t.Fatalf("remove the leader: %v", err)
	}
	c.drop = func(msg *raftpb.Message) bool {
		to, ok := c.members[msg.GetTo()]
		return ok && to.IsRemoved(msg.GetFrom())
	}
	for range 100 {
		c.tick()
		if F.Status().Leader == fol {
			break
		}
	}
	if st := F.Status(); st.Leader != fol || len(F.Members()) != 1 {
		t.Fatalf("the member left: %+v, members %v", st, ids(F.Members()))
	}
	c.members[lead].Close()
	delete(c.members, lead)
	c.mustPut(fol, "k", "v")
}

// TestRemovedLeaderTransfers: a leader that applied its own removal still
// leads (see TestRemoveLeaderAheadOfFollower) and may hand leadership to
// a member, as a live leader would, rather than refuse with ErrStopped.
func TestRemovedLeaderTransfers(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	lead := c.leader()
	if _, err := c.memberOp(c.members[lead].RemoveMember(lead)); err != nil {
		t.Fatal(err)
	}
	to := c.follower(lead)
	if err := c.members[lead].TransferLeader(to); err != nil {
		t.Fatalf("transfer from the removed leader: %v", err)
	}
	for range 50 {
		if c.members[to].Status().Leader == to {
			break
		}
		c.tick()
	}
	if st := c.members[to].Status(); st.Leader != to {
		t.Fatalf("after the transfer: %+v", st)
	}
	if _, err := c.members[lead].Propose(putReq("k", "v")); !errors.Is(err, ErrStopped) {
		t.Fatalf("propose on the removed member: %v", err)
	}
}
