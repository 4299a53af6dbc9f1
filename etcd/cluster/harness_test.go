package cluster

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/etcd/member"
	"github.com/revkv/revkv/etcd/server"
	"github.com/revkv/revkv/persist"
	"github.com/revkv/revkv/persist/memfs"
)

// testCluster is a cluster of real members on loopback, each with its etcd
// API server, for the tests of this package.
type testCluster struct {
	t       testing.TB
	members []*testMember
	tick    time.Duration
	// snapshotEntries: see Config (small, so that tests take snapshots
	// and send them to members that fell behind).
	snapshotEntries uint64
	// clock, if not nil, is every member's lease clock.
	clock engine.Clock
	// healthInterval: see Config (0: 100 ms).
	healthInterval time.Duration
	// requestTimeout: see Config (0: 5 s).
	requestTimeout time.Duration
	// osDir, if not "", holds the members' logs on the real filesystem
	// (osDir/<name>) instead of memfs.
	osDir string
}

// testMember is one member: fixed peer and client addresses (so that a
// restarted member is found where it was), and the log that survives its
// restarts.
type testMember struct {
	c                    *testCluster
	name                 string
	peerAddr, clientAddr string
	// fs holds the member's raft log; crash drops (or tears) what was
	// not synced, as a power loss.
	fs *memfs.FS
	// join: the member was added with MemberAdd.
	join bool

	mu     sync.Mutex
	node   *Node
	srv    *server.Server
	g      *grpc.Server
	served chan struct{}
}

// freeAddr returns a loopback address nothing listens on now, and none
// returned before in this process: the kernel may hand a port just
// released out again, and two members on one address would be one.
func freeAddr(t testing.TB) string {
	given.mu.Lock()
	defer given.mu.Unlock()
	if given.addrs == nil {
		given.addrs = map[string]bool{}
	}
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		if !given.addrs[addr] {
			given.addrs[addr] = true
			return addr
		}
	}
}

// given holds the addresses freeAddr returned.
var given struct {
	mu    sync.Mutex
	addrs map[string]bool
}

// listenRetry listens on addr, waiting for a just-closed listener's port.
func listenRetry(t testing.TB, addr string) net.Listener {
	var err error
	for range 100 {
		var l net.Listener
		if l, err = net.Listen("tcp", addr); err == nil {
			return l
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("listen %s: %v", addr, err)
	return nil
}

// newTestCluster starts n members, after opts change the cluster's
// settings; the test's Cleanup stops them.
func newTestCluster(t testing.TB, n int, opts ...func(*testCluster)) *testCluster {
	c := &testCluster{t: t, tick: 20 * time.Millisecond, snapshotEntries: 300}
	for _, o := range opts {
		o(c)
	}
	for i := range n {
		c.members = append(c.members, &testMember{
			c: c, name: fmt.Sprint("m", i), peerAddr: freeAddr(t), clientAddr: freeAddr(t),
			fs: memfs.New(memfs.Options{Crash: memfs.CrashTorn, Seed: uint64(i)}),
		})
	}
	for _, m := range c.members {
		m.start()
	}
	t.Cleanup(func() {
		for _, m := range c.members {
			m.stop(false)
		}
	})
	return c
}

func (c *testCluster) initial() []member.Peer {
	var ps []member.Peer
	for _, m := range c.members {
		ps = append(ps, member.Peer{Name: m.name, PeerURLs: []string{"http://" + m.peerAddr}})
	}
	return ps
}

// add adds a member that joins the running cluster (after MemberAdd of
// its peer URL, which it returns).
func (c *testCluster) add() *testMember {
	m := &testMember{c: c, name: fmt.Sprint("m", len(c.members)), peerAddr: freeAddr(c.t), clientAddr: freeAddr(c.t),
		fs: memfs.New(memfs.Options{Crash: memfs.CrashTorn}), join: true}
	c.members = append(c.members, m)
	return m
}

// start starts (or restarts) the member on its log.
func (m *testMember) start() {
	t := m.c.t
	m.mu.Lock()
	defer m.mu.Unlock()
	var fsys persist.FS = m.fs
	dir := "raft"
	if m.c.osDir != "" {
		fsys, dir = persist.OS, filepath.Join(m.c.osDir, m.name)
	}
	n, err := Start(Config{
		Name:            m.name,
		FS:              fsys,
		Dir:             dir,
		SnapshotEntries: m.c.snapshotEntries,
		CatchUpEntries:  m.c.snapshotEntries / 4,
		PeerListener:    listenRetry(t, m.peerAddr),
		PeerURLs:        []string{"http://" + m.peerAddr},
		ClientURLs:      []string{"http://" + m.clientAddr},
		InitialCluster:  m.c.initial(),
		Join:            m.join,
		TickInterval:    m.c.tick,
		// Generous: -race on two busy cores stalls goroutines for a
		// while, and a spurious election costs more than a slow one.
		ElectionTicks:  15,
		RequestTimeout: cmp.Or(m.c.requestTimeout, 5*time.Second),
		HealthInterval: cmp.Or(m.c.healthInterval, 100*time.Millisecond),
		Logger:         testLogger(),
		Clock:          m.c.clock,
	})
	if err != nil {
		t.Fatalf("start %s: %v", m.name, err)
	}
	srv := server.New(n, server.Options{Name: m.name, ClientURLs: []string{"http://" + m.clientAddr}})
	g := grpc.NewServer(srv.GRPCOptions()...)
	srv.Register(g)
	lis := listenRetry(t, m.clientAddr)
	served := make(chan struct{})
	go func() {
		defer close(served)
		g.Serve(lis)
	}()
	m.node, m.srv, m.g, m.served = n, srv, g, served
}

// stop stops the member, if it runs: abruptly (no leadership transfer);
// with crash, its disk first loses what it had not synced, as at a power
// loss, and the member fails from then on until it is stopped.
func (m *testMember) stop(crash bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.node == nil {
		return
	}
	if crash {
		m.fs.Crash()
	}
	m.srv.Close()
	m.g.Stop()
	<-m.served
	if err := m.node.Close(); err != nil && !crash {
		m.c.t.Errorf("close %s: %v", m.name, err)
	}
	m.node = nil
}

func (m *testMember) current() *Node {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.node
}

// leader waits for a leader that every running member knows, and returns
// its index.
func (c *testCluster) leader() int {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		lead, agree := uint64(0), true
		for _, m := range c.members {
			n := m.current()
			if n == nil || n.Transport().isBlockedAny() {
				continue
			}
			l := n.Status().Leader
			if l == 0 || lead != 0 && l != lead {
				agree = false
			}
			lead = l
		}
		if agree && lead != 0 {
			for i, m := range c.members {
				if n := m.current(); n != nil && n.ID() == lead {
					return i
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.t.Fatal("no leader")
	return -1
}

// client returns a clientv3 client on the given members' endpoints.
func (c *testCluster) client(members ...int) *clientv3.Client {
	c.t.Helper()
	var eps []string
	for _, i := range members {
		eps = append(eps, c.members[i].clientAddr)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cli.Close() })
	return cli
}

// isBlockedAny reports whether the transport blocks some peer.
func (t *Transport) isBlockedAny() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.blocked) > 0
}

// partition cuts member i off from every other member, or heals it.
func (c *testCluster) partition(i int, cut bool) {
	a := c.members[i].current()
	for j, m := range c.members {
		b := m.current()
		if j == i || a == nil || b == nil {
			continue
		}
		if cut {
			a.Transport().Block(b.ID())
			b.Transport().Block(a.ID())
		} else {
			a.Transport().Unblock(b.ID())
			b.Transport().Unblock(a.ID())
		}
	}
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// testLogger logs to stderr when REVKV_CLUSTER_LOG is set (debug, info,
// warn or error), else nowhere.
func testLogger() *slog.Logger {
	v := os.Getenv("REVKV_CLUSTER_LOG")
	if v == "" {
		return nil
	}
	var level slog.Level
	level.UnmarshalText([]byte(v))
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}
