package member

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/revkv/revkv/persist"
	"github.com/revkv/revkv/persist/memfs"
)

// BenchmarkWrite measures puts through a cluster whose members each run
// on a goroutine of their own (as a real deployment drives them), with
// 1, 16 or 256 concurrent proposers on the leader, on memfs (no fsync
// cost) and on the OS filesystem (a directory under the package's temp
// dir, so fsyncs reach the disk). A put is done when the leader applied
// it, that is when a majority made it durable. Metrics: the leader's
// fsyncs per put (how well concurrent puts share a write) and the median
// and 99th percentile latency of a put. memfs copies a file's content at
// every Sync (its crash model), so its figures grow with the log: compare
// them only between runs of the same length.
//
//	cd etcd && go test -run '^$' -bench 'Write/' -benchtime 2s ./member/
func BenchmarkWrite(b *testing.B) {
	for _, fsName := range []string{"memfs", "os"} {
		for _, n := range []int{1, 3, 5} {
			for _, procs := range []int{1, 16, 256} {
				b.Run(fmt.Sprintf("fs=%s/members=%d/proposers=%d", fsName, n, procs), func(b *testing.B) {
					benchWrite(b, fsName, n, procs)
				})
			}
		}
	}
}

func benchWrite(b *testing.B, fsName string, n, procs int) {
	var fsys persist.FS = memfs.New(memfs.Options{})
	dir := "."
	if fsName == "os" {
		fsys = persist.OS
		dir = b.TempDir()
	}
	syncs := map[uint64]*atomic.Int64{}
	c := newTestCluster(b, n, func(cfg *Config) {
		cfg.Storage = nil
		if syncs[cfg.ID] == nil {
			syncs[cfg.ID] = new(atomic.Int64)
		}
		cfg.FS, cfg.Dir = countSyncs{fsys, syncs[cfg.ID]}, filepath.Join(dir, fmt.Sprintf("m%d", cfg.ID))
		if fsName == "os" {
			if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
				b.Fatal(err)
			}
		}
	})
	lead := c.leader()
	ac := startAsync(b, c)
	defer ac.stop()
	b.ReportAllocs()
	var next atomic.Int64
	var latMu sync.Mutex
	var lats []time.Duration
	b.SetParallelism(max(1, procs/runtime.GOMAXPROCS(0)))
	syncs0 := syncs[lead].Load()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		defer func() {
			latMu.Lock()
			lats = append(lats, mine...)
			latMu.Unlock()
		}()
		for pb.Next() {
			start := time.Now()
			i := next.Add(1)
			p, err := c.members[lead].Propose(putReq(fmt.Sprintf("key%09d", i), "value-of-some-length"))
			if err != nil {
				b.Error(err)
				return
			}
			ac.nodes[lead].wake()
			<-p.Done()
			if _, err := p.Result(); err != nil {
				b.Error(err)
				return
			}
			mine = append(mine, time.Since(start))
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(syncs[lead].Load()-syncs0)/float64(b.N), "leader-syncs/op")
	slices.Sort(lats)
	if len(lats) > 0 {
		b.ReportMetric(float64(lats[len(lats)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lats[len(lats)*99/100].Microseconds()), "p99-µs")
	}
}

// countSyncs counts the Syncs of the files opened through it.
type countSyncs struct {
	persist.FS
	n *atomic.Int64
}

func (c countSyncs) Create(name string) (persist.File, error) {
	return c.wrap(c.FS.Create(name))
}

func (c countSyncs) Open(name string) (persist.File, error) { return c.wrap(c.FS.Open(name)) }

func (c countSyncs) OpenReadWrite(name string) (persist.File, error) {
	return c.wrap(c.FS.OpenReadWrite(name))
}

func (c countSyncs) SyncDir(dir string) error {
	c.n.Add(1)
	return c.FS.SyncDir(dir)
}

func (c countSyncs) wrap(f persist.File, err error) (persist.File, error) {
	if err != nil {
		return nil, err
	}
	return syncCounted{f, c.n}, nil
}

type syncCounted struct {
	persist.File
	n *atomic.Int64
}

func (f syncCounted) Sync() error {
	f.n.Add(1)
	return f.File.Sync()
}

// asyncCluster drives each member of a testCluster from a goroutine:
// a member's loop steps the messages in its mailbox and runs Ready,
// sending what Ready returns to the other members' mailboxes.
type asyncCluster struct {
	nodes map[uint64]*asyncNode
	wg    sync.WaitGroup
	done  chan struct{}
}

type asyncNode struct {
	m    *Member
	mu   sync.Mutex
	box  []*raftpb.Message
	sig  chan struct{}
	fail func(error)
}

func (n *asyncNode) wake() {
	select {
	case n.sig <- struct{}{}:
	default:
	}
}

func (n *asyncNode) post(msgs ...*raftpb.Message) {
	n.mu.Lock()
	n.box = append(n.box, msgs...)
	n.mu.Unlock()
	n.wake()
}

func startAsync(b testing.TB, c *testCluster) *asyncCluster {
	ac := &asyncCluster{nodes: map[uint64]*asyncNode{}, done: make(chan struct{})}
	for id, m := range c.members {
		ac.nodes[id] = &asyncNode{m: m, sig: make(chan struct{}, 1), fail: func(err error) { b.Error(err) }}
	}
	for _, n := range ac.nodes {
		ac.wg.Add(1)
		go func() {
			defer ac.wg.Done()
			ac.run(n)
		}()
	}
	return ac
}

func (ac *asyncCluster) stop() {
	close(ac.done)
	ac.wg.Wait()
}

func (ac *asyncCluster) run(n *asyncNode) {
	for {
		select {
		case <-ac.done:
			return
		case <-n.sig:
		}
		n.mu.Lock()
		box := n.box
		n.box = nil
		n.mu.Unlock()
		for _, msg := range box {
			_ = n.m.Step(msg) // a stale message is refused: as a network would lose it
		}
		msgs, err := runReady(n.m, ac.send)
		if err != nil {
			n.fail(err)
			return
		}
		ac.send(msgs)
	}
}

func (ac *asyncCluster) send(msgs []*raftpb.Message) {
	for _, msg := range msgs {
		if to, ok := ac.nodes[msg.GetTo()]; ok {
			to.post(msg)
		}
	}
}
