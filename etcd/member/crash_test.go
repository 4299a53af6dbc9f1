package member

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"testing"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/revkv/revkv/etcd/raftstore"
	"github.com/revkv/revkv/kv"
	"github.com/revkv/revkv/persist/memfs"
)

// TestCrashRestart crashes members of a 3-member cluster on memfs at
// random operations of their raft log (mid-Save, mid-snapshot, with torn
// or grown-first tails), reopens each from what survived, and checks
// after every recovery that all members converge: the same applied index,
// consistent index and hash, and a key count equal to the revisions made
// (every put applied once, none skipped). Every acknowledged put is
// there at the end.
func TestCrashRestart(t *testing.T) {
	const crashesPerModel = 20
	for _, model := range []memfs.CrashModel{memfs.CrashDrop, memfs.CrashTorn, memfs.CrashGrowFirst} {
		t.Run(model.String(), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(model), 7))
			fss := map[uint64]*memfs.FS{}
			for id := uint64(1); id <= 3; id++ {
				fss[id] = memfs.New(memfs.Options{Crash: model, Seed: uint64(model)*10 + id})
			}
			c := newTestCluster(t, 3, func(cfg *Config) {
				smallSnapshots(cfg)
				cfg.Storage, cfg.FS, cfg.Dir = nil, fss[cfg.ID], "/member"
			})
			down := map[uint64]bool{}
			c.onFail = func(id uint64, err error) bool {
				if !errors.Is(err, ErrStopped) {
					return false
				}
				c.members[id].Close()
				delete(c.members, id)
				down[id] = true
				return true
			}
			acked := map[string]int64{}
			n := 0
			put := func() {
				lead := c.leader()
				key := fmt.Sprintf("k%05d", n)
				n++
				p, err := c.members[lead].Propose(putReq(key, "v"))
				if err != nil {
					return
				}
				for range 200 {
					if _, ok := c.members[lead]; !ok {
						return // crashed
					}
					c.deliver()
					if res, err := p.Result(); !errors.Is(err, ErrNotDone) {
						if err == nil {
							acked[key] = res.(*kv.TxnResponse).Rev
						}
						return
					}
					c.tick()
				}
			}
			crashes, fromSnap := 0, 0
			for range crashesPerModel {
				victim := uint64(rng.IntN(3)) + 1
				fss[victim].CrashAfter(int64(rng.IntN(60)) + 1)
				for range 100 {
					if down[victim] {
						break
					}
					put()
				}
				if !down[victim] {
					t.Fatalf("member %d never crashed", victim)
				}
				crashes++
				fss[victim].Crash()
				delete(down, victim)
				if c.open(victim).Status().SnapshotIndex > 0 {
					fromSnap++
				}
				c.converged()
				c.checkOnce()
			}
			for range 5 {
				put()
			}
			c.converged()
			c.checkOnce()
			for _, id := range c.ids() {
				for k, rev := range acked {
					got, ok, err := c.members[id].DB().Get([]byte(k))
					if err != nil || !ok || got.ModRevision != rev {
						t.Fatalf("member %d: acknowledged %s at %d: %+v %v %v", id, k, rev, got, ok, err)
					}
				}
			}
			if crashes < crashesPerModel || fromSnap == 0 || len(acked) < 50 {
				t.Fatalf("%d crashes (%d reopened from a snapshot), %d acknowledged puts", crashes, fromSnap, len(acked))
			}
			t.Logf("%v: %d crashes (%d reopened from a snapshot), %d puts, %d acknowledged", model, crashes, fromSnap, n, len(acked))
		})
	}
}

// checkOnce checks that each member's DB holds one key per revision (the
// test's puts write new keys only): no put applied twice or skipped.
func (c *testCluster) checkOnce() {
	c.t.Helper()
	for _, id := range c.ids() {
		db := c.members[id].DB()
		res, err := db.Range([]byte("k"), []byte("l"), revkvCount)
		if err != nil || res.Count != db.Rev()-1 {
			c.t.Fatalf("member %d: %d keys at revision %d: %v", id, res.Count, db.Rev(), err)
		}
	}
}

// TestStorageFaultStops: a failed write or fsync of the raft log stops
// the member (Ready's error and every later request wrap ErrStopped;
// nothing is applied past what was durable); after a crash it reopens
// and converges with the others.
func TestStorageFaultStops(t *testing.T) {
	for _, fault := range []string{"sync", "write"} {
		t.Run(fault, func(t *testing.T) {
			fss := map[uint64]*memfs.FS{}
			for id := uint64(1); id <= 3; id++ {
				fss[id] = memfs.New(memfs.Options{LinuxSyncFailures: true})
			}
			c := newTestCluster(t, 3, func(cfg *Config) {
				cfg.Storage, cfg.FS, cfg.Dir = nil, fss[cfg.ID], "/member"
			})
			lead := c.leader()
			fol := c.follower(lead)
			c.putMany(lead, "ka", 5)
			var failure error
			c.onFail = func(id uint64, err error) bool {
				if id != fol || !errors.Is(err, ErrStopped) {
					return false
				}
				failure = err
				return true
			}
			if fault == "sync" {
				fss[fol].FailSync(1)
			} else {
				fss[fol].FailWrite(1)
			}
			c.putMany(lead, "kb", 3) // a majority without fol
			if failure == nil {
				t.Fatal("no failure reported")
			}
			stopped := c.members[fol]
			if _, err := stopped.Propose(putReq("x", "y")); !errors.Is(err, ErrStopped) {
				t.Fatalf("propose on a stopped member: %v", err)
			}
			if _, err := stopped.Ready(); !errors.Is(err, ErrStopped) {
				t.Fatalf("Ready on a stopped member: %v", err)
			}
			c.onFail = nil
			stopped.Close()
			fss[fol].Crash()
			c.open(fol)
			c.converged()
			c.checkOnce()
		})
	}
}

// crashAfterSnapshot is a raftstore whose filesystem crashes right after
// a snapshot from the leader is durable, before the hard state that goes
// with it is saved.
type crashAfterSnapshot struct {
	*raftstore.Store
	fs *memfs.FS
}

func (s crashAfterSnapshot) ApplySnapshot(snap *raftpb.Snapshot) error {
	err := s.Store.ApplySnapshot(snap)
	s.fs.CrashAfter(1)
	return err
}

// TestCrashAfterSnapshotInstall: a new member that crashes between saving
// the snapshot from the leader and saving its hard state reopens (its
// commit index raised to the snapshot's) and catches up.
func TestCrashAfterSnapshotInstall(t *testing.T) {
	fs := memfs.New(memfs.Options{})
	c := newTestCluster(t, 3, smallSnapshots)
	lead := c.leader()
	c.putMany(lead, "k", 60)
	if _, err := c.memberOp(c.members[lead].AddMember(peerOf(4))); err != nil {
		t.Fatal(err)
	}
	st, err := raftstore.Open(fs, "/m", raftstore.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{ID: 4, Join: true, Clock: c.clock, Storage: crashAfterSnapshot{st, fs}}
	smallSnapshots(&cfg)
	if c.members[4], err = Open(cfg); err != nil {
		t.Fatal(err)
	}
	crashed := false
	c.onFail = func(id uint64, err error) bool {
		if id != 4 {
			return false
		}
		crashed = true
		c.members[4].Close()
		delete(c.members, 4)
		return true
	}
	for range 50 {
		if c.tick(); crashed {
			break
		}
	}
	if !crashed {
		t.Fatal("no snapshot installed")
	}
	c.onFail = nil
	fs.Crash()
	st, err = raftstore.Open(fs, "/m", raftstore.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	hs, _, _ := st.InitialState()
	snap, _ := st.Snapshot()
	if snap.GetMetadata().GetIndex() == 0 || hs.GetCommit() >= snap.GetMetadata().GetIndex() {
		t.Fatalf("hard state %v, snapshot at %d after the crash: the test does not test", hs, snap.GetMetadata().GetIndex())
	}
	cfg.Storage = st
	if c.members[4], err = Open(cfg); err != nil {
		t.Fatal(err)
	}
	c.converged()
	c.checkOnce()
}

// TestCrashTornBootstrap: a single member that crashes in its first Save
// with the bootstrap entries durable and the hard state torn off (a torn
// tail) restarts with a log but no hard state and no snapshot. It must
// still know its configuration, elect itself and take writes; raft
// restarted on that alone has no voters and never campaigns.
func TestCrashTornBootstrap(t *testing.T) {
	reached := 0
	for seed := uint64(1); seed <= 64 && reached < 3; seed++ {
		fs := memfs.New(memfs.Options{Crash: memfs.CrashTorn, Seed: seed})
		cfg := Config{ID: 1, Peers: []Peer{peerOf(1)}, FS: fs, Dir: "/m"}
		m, err := Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		fs.CrashAfter(2) // the Save's write goes through, its fsync crashes
		if _, err := m.Ready(); err == nil {
			t.Fatal("Ready survived the crash")
		}
		m.Close()
		fs.Crash()
		st, err := raftstore.Open(fs, "/m", raftstore.Options{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		hs, _, _ := st.InitialState()
		last, _ := st.LastIndex()
		st.Close()
		if last == 0 || hs.GetCommit() > 0 {
			continue // not the state this test is about
		}
		reached++
		m, err = Open(cfg)
		if err != nil {
			t.Fatalf("seed %d: reopen: %v", seed, err)
		}
		var p *Pending
		for range 100 {
			m.Tick()
			if _, err := m.Ready(); err != nil {
				t.Fatal(err)
			}
			if p == nil {
				if p, err = m.Propose(putReq("k", "v")); err != nil {
					p = nil
				}
				m.Ready()
			}
		}
		if p == nil {
			t.Fatalf("seed %d: no leader after 100 ticks: %+v, members %v", seed, m.Status(), m.Members())
		}
		if _, err := p.Result(); err != nil {
			t.Fatalf("seed %d: put: %v", seed, err)
		}
		m.Close()
	}
	if reached == 0 {
		t.Fatal("no crash left the bootstrap entries without their hard state")
	}
}
