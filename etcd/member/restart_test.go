package member

import (
	"errors"
	"runtime"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/revkv/revkv/persist/memfs"
)

func (c *testCluster) restart(id uint64) *Member {
	c.t.Helper()
	if err := c.members[id].Close(); err != nil {
		c.t.Fatalf("close member %d: %v", id, err)
	}
	delete(c.members, id)
	return c.open(id)
}

// TestRestartFollower: a follower closed while the cluster moves on (past
// a snapshot) reopens from its log and catches up, applying each entry
// once.
func TestRestartFollower(t *testing.T) {
	for _, name := range []string{"no snapshot", "snapshots"} {
		t.Run(name, func(t *testing.T) {
			tune := smallSnapshots
			if name == "no snapshot" {
				tune = nil
			}
			c := newTestCluster(t, 3, tune)
			lead := c.leader()
			fol := c.follower(lead)
			c.putMany(lead, "a", 30)
			c.converged()
			c.members[fol].Close()
			delete(c.members, fol)
			c.putMany(lead, "b", 30)
			m := c.open(fol)
			if st := m.Status(); st.Applied != st.SnapshotIndex {
				t.Fatalf("reopened member: %+v", st)
			}
			c.converged()
			c.mustPut(fol, "c", "1")
			c.converged()
		})
	}
}

// TestRestartAll: every member closes and reopens; the state is the same,
// and the cluster takes writes again.
func TestRestartAll(t *testing.T) {
	t.Run("memory", func(t *testing.T) { testRestartAll(t, smallSnapshots) })
	t.Run("raftstore", func(t *testing.T) {
		fss := map[uint64]*memfs.FS{}
		testRestartAll(t, func(cfg *Config) {
			smallSnapshots(cfg)
			if fss[cfg.ID] == nil {
				fss[cfg.ID] = memfs.New(memfs.Options{})
			}
			cfg.Storage, cfg.FS, cfg.Dir = nil, fss[cfg.ID], "/m"
		})
	})
}

func testRestartAll(t *testing.T, tune func(*Config)) {
	c := newTestCluster(t, 3, tune)
	lead := c.leader()
	c.grant(lead, 5, 100)
	c.putMany(lead, "a", 45)
	if _, err := c.propose(lead, Request{Compact: i64(20)}); err != nil {
		t.Fatal(err)
	}
	c.converged()
	want, err := c.members[lead].DB().HashByRev(0)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range c.ids() {
		c.restart(id)
	}
	lead = c.leader()
	c.converged()
	got, err := c.members[lead].DB().HashByRev(want.Rev)
	if err != nil || got != want {
		t.Fatalf("hash after restart %+v %v, before %+v", got, err, want)
	}
	if !c.live(5) {
		t.Fatal("lease lost in the restart")
	}
	c.mustPut(lead, "after", "1")
	c.converged()
}

// TestRestartLeader: the leader closes with a lease kept alive and a
// proposal in flight; the proposal fails with ErrStopped, the others
// elect a leader that keeps the lease (a full TTL from its election), and
// the old leader reopens as a follower that catches up.
func TestRestartLeader(t *testing.T) {
	c := newTestCluster(t, 3, smallSnapshots)
	lead := c.leader()
	c.grant(lead, 8, 3)
	c.putMany(lead, "a", 25)
	p, err := c.members[lead].Propose(putReq("inflight", "1"))
	if err != nil {
		t.Fatal(err)
	}
	old := c.members[lead]
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Result(); !errors.Is(err, ErrStopped) {
		t.Fatalf("proposal of a closed member: %v", err)
	}
	for _, err := range []error{
		func() error { _, err := old.Propose(putReq("x", "y")); return err }(),
		func() error { _, err := old.ReadIndex().Result(); return err }(),
		func() error { _, err := old.Ready(); return err }(),
		old.Step(&raftpb.Message{}),
		old.Close(),
	} {
		if !errors.Is(err, ErrStopped) {
			t.Fatalf("closed member: %v", err)
		}
	}
	delete(c.members, lead)
	next := c.leader()
	if !c.live(8) {
		t.Fatal("lease lost with the leader")
	}
	c.putMany(next, "b", 5)
	c.open(lead)
	c.converged()
	if c.members[lead].Status().Leader == lead {
		t.Fatal("reopened leader leads at once")
	}
}

// TestNoGoroutineOutlivesClose: members on raftstore, with watchers, a
// snapshot install (a DB replaced) and restarts, leave no goroutine behind
// once closed.
func TestNoGoroutineOutlivesClose(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		fss := map[uint64]*memfs.FS{}
		c := newTestCluster(t, 3, func(cfg *Config) {
			smallSnapshots(cfg)
			if fss[cfg.ID] == nil {
				fss[cfg.ID] = memfs.New(memfs.Options{})
			}
			cfg.Storage, cfg.FS, cfg.Dir = nil, fss[cfg.ID], "/m"
		})
		lead := c.leader()
		fol := c.follower(lead)
		for _, id := range c.ids() {
			c.members[id].DB().NewWatcher().Watch([]byte("k"), true, 0)
		}
		c.cut = func(from, to uint64) bool { return from == fol || to == fol }
		c.putMany(lead, "k", 60)
		c.cut = nil
		c.converged() // fol installs a snapshot: its DB is replaced
		c.restart(lead)
		c.leader()
		c.converged()
		for _, id := range c.ids() {
			if err := c.members[id].Close(); err != nil {
				t.Fatal(err)
			}
			delete(c.members, id)
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines before, %d after Close:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
