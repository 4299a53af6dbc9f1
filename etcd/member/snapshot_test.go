package member

import (
	"fmt"
	"testing"
	"time"
)

func smallSnapshots(cfg *Config) {
	cfg.SnapshotEntries = 20
	cfg.CatchUpEntries = 5
}

func (c *testCluster) putMany(on uint64, prefix string, n int) {
	c.t.Helper()
	for i := range n {
		c.mustPut(on, fmt.Sprintf("%s%03d", prefix, i), "v")
	}
}

func (c *testCluster) firstIndex(id uint64) uint64 {
	c.t.Helper()
	i, err := c.stores[id].FirstIndex()
	if err != nil {
		c.t.Fatal(err)
	}
	return i
}

// TestSnapshotToNewMember: the log is compacted, so a member added later
// gets the state as a snapshot; a watcher on its DB before the install
// ends (its channel closes) and DB() is the new one.
func TestSnapshotToNewMember(t *testing.T) {
	c := newTestCluster(t, 3, smallSnapshots)
	lead := c.leader()
	c.putMany(lead, "k", 60)
	c.converged()
	for _, id := range c.ids() {
		st := c.members[id].Status()
		if st.SnapshotIndex < 40 || c.firstIndex(id) <= 2 {
			t.Fatalf("member %d: snapshot at %d, first index %d", id, st.SnapshotIndex, c.firstIndex(id))
		}
	}
	if _, err := c.memberOp(c.members[lead].AddMember(peerOf(4))); err != nil {
		t.Fatal(err)
	}
	m4 := c.join(4, smallSnapshots)
	w := m4.DB().NewWatcher()
	w.Watch([]byte("k"), true, 0)
	c.converged()
	select {
	case _, ok := <-w.Chan():
		for ok {
			_, ok = <-w.Chan()
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watcher on the replaced DB did not end")
	}
	if m4.Status().SnapshotIndex == 0 {
		t.Fatal("new member got no snapshot")
	}
	if got := len(m4.Members()); got != 4 {
		t.Fatalf("new member's table has %d members", got)
	}
	c.putMany(c.leader(), "after", 30)
	c.converged()
	res, err := m4.DB().Range([]byte("k"), []byte("l"), revkvCount)
	if err != nil || res.Count != 60 {
		t.Fatalf("new member's keys: %d %v", res.Count, err)
	}
}

// TestSnapshotToLaggingFollower: a follower cut off while the log moves
// past what the leader keeps catches up by snapshot.
func TestSnapshotToLaggingFollower(t *testing.T) {
	c := newTestCluster(t, 3, smallSnapshots)
	lead := c.leader()
	fol := c.follower(lead)
	c.cut = func(from, to uint64) bool { return from == fol || to == fol }
	c.putMany(lead, "k", 60)
	before := c.members[fol].Status().SnapshotIndex
	c.cut = nil
	c.converged()
	if after := c.members[fol].Status().SnapshotIndex; after <= before || after < 40 {
		t.Fatalf("follower's snapshot index %d -> %d", before, after)
	}
}
