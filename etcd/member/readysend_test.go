package member

import (
	"fmt"
	"sync"
	"testing"

	"go.etcd.io/raft/v3/raftpb"

	revkv "github.com/revkv/revkv"
	"github.com/revkv/revkv/persist/memfs"
)

// TestReadySendEarly: the leader's appends of a new entry go out before
// its own write (through send, which may call the member), a follower's acknowledgement only after
// its write (returned), and the put commits on the two followers'
// durable copies while the leader's write has not even started.
func TestReadySendEarly(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	lead := c.leader()
	l := c.members[lead]
	p, err := l.Propose(putReq("k", "v"))
	if err != nil {
		t.Fatal(err)
	}
	before, err := c.stores[lead].LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	var early []*raftpb.Message
	rest, err := l.ReadySend(func(msgs []*raftpb.Message) {
		// The leader's write is not done: its log does not hold the entry.
		if last, _ := c.stores[lead].LastIndex(); last != before {
			t.Errorf("send called after the leader wrote index %d", last)
		}
		// send runs without the member's lock: it may call the member.
		if st := l.Status(); st.Committed > before {
			t.Errorf("index %d committed before the appends went out", st.Committed)
		}
		early = append(early, msgs...)
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := countType(early, raftpb.MessageType_MsgApp); got != 2 {
		t.Fatalf("early MsgApps: %d, want 2 (%v)", got, early)
	}
	if got := countType(rest, raftpb.MessageType_MsgApp); got != 0 {
		t.Fatalf("MsgApps returned after the write: %d, want 0", got)
	}
	for _, msg := range early {
		if err := c.members[msg.GetTo()].Step(msg); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range c.ids() {
		if id == lead {
			continue
		}
		called := false
		out, err := c.members[id].ReadySend(func([]*raftpb.Message) { called = true })
		if err != nil {
			t.Fatal(err)
		}
		if called {
			t.Errorf("follower %d sent before its write", id)
		}
		if countType(out, raftpb.MessageType_MsgAppResp) != 1 {
			t.Errorf("follower %d: no MsgAppResp after its write: %v", id, out)
		}
	}
	c.deliver()
	if _, err := c.wait(p); err != nil {
		t.Fatal(err)
	}
}

// TestReadySendFollowerNothingEarly: a follower sends nothing before its
// write, not even a forwarded proposal.
func TestReadySendFollowerNothingEarly(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	lead := c.leader()
	fol := c.follower(lead)
	f := c.members[fol]
	if _, err := f.Propose(putReq("k", "v")); err != nil {
		t.Fatal(err)
	}
	out, err := f.ReadySend(func(msgs []*raftpb.Message) { t.Errorf("follower sent early: %v", msgs) })
	if err != nil {
		t.Fatal(err)
	}
	if countType(out, raftpb.MessageType_MsgProp) != 1 {
		t.Fatalf("forwarded proposal not returned: %v", out)
	}
}

// TestConcurrentWrites runs 3 members on goroutines of their own (on
// memfs, through raftstore) with 8 concurrent proposers and a reader of
// Status and Members, so that proposals, steps and reads land while Ready
// writes the log or a snapshot without the lock (run it under -race);
// every put succeeds exactly once and the members converge.
func TestConcurrentWrites(t *testing.T) {
	fsys := memfs.New(memfs.Options{})
	c := newTestCluster(t, 3, func(cfg *Config) {
		cfg.Storage = nil
		cfg.FS, cfg.Dir = fsys, fmt.Sprintf("m%d", cfg.ID)
		cfg.SnapshotEntries, cfg.CatchUpEntries = 50, 10 // snapshots while proposals land
	})
	lead := c.leader()
	ac := startAsync(t, c)
	stopRead := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stopRead:
				return
			default:
				_ = c.members[lead].Status()
				_ = c.members[lead].Members()
			}
		}
	})
	const procs, puts = 8, 40
	var pw sync.WaitGroup
	for p := range procs {
		pw.Go(func() {
			for i := range puts {
				pend, err := c.members[lead].Propose(putReq(fmt.Sprintf("k%d-%d", p, i), "v"))
				if err != nil {
					t.Error(err)
					return
				}
				ac.nodes[lead].wake()
				<-pend.Done()
				if _, err := pend.Result(); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	pw.Wait()
	close(stopRead)
	wg.Wait()
	ac.stop()
	c.converged()
	if st := c.members[lead].Status(); st.SnapshotIndex == 0 {
		t.Fatalf("no snapshot taken: %+v", st)
	}
	res, err := c.members[lead].DB().Range([]byte("k"), []byte("l"), revkv.RangeOptions{CountOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Count != procs*puts {
		t.Fatalf("%d keys, want %d", res.Count, procs*puts)
	}
}
