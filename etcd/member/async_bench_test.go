package member

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/revkv/revkv/persist"
	"github.com/revkv/revkv/persist/memfs"
)

// BenchmarkWrite measures puts through a cluster whose members each run
// on a goroutine of their own (as a real deployment drives them), with
// 1, 16 or 256 concurrent proposers on the leader, on memfs (no fsync
// cost) and on the OS filesystem (a directory under the package's temp
// dir, so fsyncs reach the disk). A put is done when the leader applied
// it, that is when a majority made it durable.
//
//	cd etcd && go test -run '^$' -bench 'Write/' -benchtime 2s ./member/
func BenchmarkWrite(b *testing.B) {
	for _, fsName := range []string{"memfs", "os"} {
		for _, n := range []int{1, 3} {
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
	c := newTestCluster(b, n, func(cfg *Config) {
		cfg.Storage = nil
		cfg.FS, cfg.Dir = fsys, filepath.Join(dir, fmt.Sprintf("m%d", cfg.ID))
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
	b.SetParallelism(max(1, procs/2)) // GOMAXPROCS is 2 on the benchmark machine
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
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
		}
	})
	b.StopTimer()
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

func startAsync(b *testing.B, c *testCluster) *asyncCluster {
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
