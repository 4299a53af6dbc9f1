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

// TestWatchAcrossSnapshotInstall: a watcher on a follower's DB ends when a
// snapshot from the leader replaces the DB; watching the new DB from the
// next revision it had not seen gives the rest of the history with no gap
// (the snapshot keeps the retained history, not only the latest values).
func TestWatchAcrossSnapshotInstall(t *testing.T) {
	c := newTestCluster(t, 3, smallSnapshots)
	lead := c.leader()
	fol := c.follower(lead)
	c.putMany(lead, "ka", 5)
	c.converged()
	w := c.members[fol].DB().NewWatcher()
	w.Watch([]byte("k"), true, 2)
	c.cut = func(from, to uint64) bool { return from == fol || to == fol }
	c.putMany(lead, "kb", 60)
	c.cut = nil
	before := c.members[fol].Status().SnapshotIndex
	c.converged()
	if c.members[fol].Status().SnapshotIndex <= before {
		t.Fatal("follower installed no snapshot")
	}
	var revs []int64
	for r := range w.Chan() { // ends when the old DB closes
		for _, e := range r.Events {
			revs = append(revs, e.KV.ModRevision)
		}
	}
	db := c.members[fol].DB()
	next := int64(2)
	if len(revs) > 0 {
		next = revs[len(revs)-1] + 1
	}
	w2 := db.NewWatcher()
	defer w2.Close()
	w2.Watch([]byte("k"), true, next)
	timeout := time.After(10 * time.Second)
	for len(revs) == 0 || revs[len(revs)-1] < db.Rev() {
		select {
		case r := <-w2.Chan():
			if r.Canceled {
				t.Fatalf("re-watch canceled: %v", r.Err)
			}
			for _, e := range r.Events {
				revs = append(revs, e.KV.ModRevision)
			}
		case <-timeout:
			t.Fatalf("re-watch stalled at %v, DB at %d", revs[len(revs)-1:], db.Rev())
		}
	}
	for i, rev := range revs {
		if rev != int64(i)+2 {
			t.Fatalf("event %d at revision %d: a gap or a repeat", i, rev)
		}
	}
	if len(revs) != 65 {
		t.Fatalf("%d events, want 65", len(revs))
	}
}

// TestUnreportedSnapshot: a MsgSnap the transport loses without calling
// ReportSnapshot does not stall the follower for ever: after
// RequestTimeoutTicks the leader takes it as lost and sends another.
func TestUnreportedSnapshot(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) {
		smallSnapshots(cfg)
		cfg.RequestTimeoutTicks = 30
	})
	lead := c.leader()
	fol := c.follower(lead)
	c.cut = func(from, to uint64) bool { return from == fol || to == fol }
	c.putMany(lead, "k", 60)
	c.cut = nil
	c.loseSnaps = map[uint64]bool{fol: true}
	for range 10 {
		c.tick()
	}
	if c.snapsLost == 0 {
		t.Fatal("no snapshot sent")
	}
	c.loseSnaps = nil
	c.converged()
	if c.members[fol].Status().SnapshotIndex < 40 {
		t.Fatalf("follower at %+v", c.members[fol].Status())
	}
}

// TestCompactionHash: every member keeps the hash of the history up to a
// compaction's revision, taken as it applies the compaction, and a member
// that gets the state by snapshot later has it too.
func TestCompactionHash(t *testing.T) {
	c := newTestCluster(t, 3, smallSnapshots)
	lead := c.leader()
	c.putMany(lead, "k", 30)
	const rev = 20
	want, err := c.members[lead].DB().HashByRev(rev)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.propose(lead, Request{Compact: i64(rev)}); err != nil {
		t.Fatal(err)
	}
	c.putMany(lead, "after", 30) // past a snapshot
	if _, err := c.memberOp(c.members[lead].AddMember(peerOf(4))); err != nil {
		t.Fatal(err)
	}
	c.join(4, smallSnapshots)
	c.converged()
	if c.members[4].Status().SnapshotIndex == 0 {
		t.Fatal("new member got no snapshot")
	}
	for _, id := range c.ids() {
		got, ok := c.members[id].CompactionHash(rev)
		if !ok || got != want {
			t.Fatalf("member %d: compaction hash %+v %v, want %+v", id, got, ok, want)
		}
		if _, ok := c.members[id].CompactionHash(rev + 1); ok {
			t.Fatalf("member %d: a hash for a revision never compacted", id)
		}
	}
}
