// This file is not built with revkv: TestEtcdCommon adds it, beside
// zz_revkv_runner_test.go, to a temporary copy of go.etcd.io/etcd/tests/v3's
// common package. With REVKV_COMMON_CLUSTER_SIZE set it replaces that
// runner with one that serves every cluster from revkv's replicated
// members (package cluster), as many as each test asks for, and runs the
// suite's cluster test cases at that size. Its name sorts after the single
// runner's, so its init runs last.

package common

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/revkv/revkv/etcd/cluster"
	"github.com/revkv/revkv/etcd/member"
	"github.com/revkv/revkv/etcd/server"
	"github.com/revkv/revkv/persist"
	"go.etcd.io/etcd/tests/v3/framework/config"
	"go.etcd.io/etcd/tests/v3/framework/e2e"
	intf "go.etcd.io/etcd/tests/v3/framework/interfaces"
)

func init() {
	n, err := strconv.Atoi(os.Getenv("REVKV_COMMON_CLUSTER_SIZE"))
	if err != nil || n < 1 {
		return
	}
	testRunner = revkvClusterRunner{}
	clusterTestCases = func() []testCase {
		return []testCase{{name: fmt.Sprintf("revkv-%d", n), config: config.ClusterConfig{ClusterSize: n}}}
	}
}

type revkvClusterRunner struct{ revkvRunner }

// NewCluster starts as many members as the configuration asks for (the
// suite's default is 3), each with its raft log in a directory, so that
// Stop and Start restart a member on its log at the same addresses. The
// backend quota and the strict reconfiguration check are passed on; TLS
// is not served.
func (revkvClusterRunner) NewCluster(ctx context.Context, tb testing.TB, opts ...config.ClusterOption) intf.Cluster {
	cfg := config.NewClusterConfig(opts...)
	c := &revkvReplicas{token: fmt.Sprintf("common-%d", time.Now().UnixNano())}
	var initial []member.Peer
	for i := range max(cfg.ClusterSize, 1) {
		m := &revkvReplica{
			c: c, name: fmt.Sprint("m", i), dir: filepath.Join(tb.TempDir(), "raft"),
			clientAddr: revkvFreeAddr(tb), peerAddr: revkvFreeAddr(tb), quota: cfg.QuotaBackendBytes,
			noStrict: !cfg.StrictReconfigCheck,
		}
		c.members = append(c.members, m)
		initial = append(initial, member.Peer{Name: m.name, PeerURLs: []string{"http://" + m.peerAddr}})
	}
	c.initial = initial
	for _, m := range c.members {
		if err := m.Start(ctx); err != nil {
			tb.Fatal(err)
		}
	}
	tb.Cleanup(func() { c.Close() })
	c.WaitLeader(tb)
	return c
}

func revkvFreeAddr(tb testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// revkvListen listens on addr, retrying while a just-released port is busy.
func revkvListen(addr string) (net.Listener, error) {
	var err error
	for range 250 {
		var l net.Listener
		if l, err = net.Listen("tcp", addr); err == nil {
			return l, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil, err
}

type revkvReplicas struct {
	token   string
	initial []member.Peer
	members []*revkvReplica
}

func (c *revkvReplicas) Members() []intf.Member {
	out := make([]intf.Member, len(c.members))
	for i, m := range c.members {
		out[i] = m
	}
	return out
}

func (c *revkvReplicas) Client(opts ...config.ClientOption) (intf.Client, error) {
	return e2e.NewEtcdctl(e2e.ClientConfig{}, c.Endpoints(), opts...)
}

// WaitLeader waits until the running members agree on a running leader
// and returns its index.
func (c *revkvReplicas) WaitLeader(tb testing.TB) int {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		var lead uint64
		agree := true
		for _, m := range c.members {
			if n := m.running(); n != nil {
				l := n.Status().Leader
				agree = agree && l != 0 && (lead == 0 || l == lead)
				lead = l
			}
		}
		for i, m := range c.members {
			if n := m.running(); agree && n != nil && n.ID() == lead {
				return i
			}
		}
	}
	tb.Fatal("revkv cluster runner: no leader after 30 s")
	return -1
}

func (c *revkvReplicas) Close() error {
	for _, m := range c.members {
		m.Stop()
	}
	return nil
}

func (c *revkvReplicas) Endpoints() []string {
	out := make([]string, len(c.members))
	for i, m := range c.members {
		out[i] = m.clientAddr
	}
	return out
}

// revkvReplica is one member: a cluster.Node and the etcd API server on
// it.
type revkvReplica struct {
	c                    *revkvReplicas
	name, dir            string
	clientAddr, peerAddr string
	quota                int64
	noStrict             bool

	mu     sync.Mutex
	node   *cluster.Node
	srv    *server.Server
	g      *grpc.Server
	served chan struct{}
}

func (m *revkvReplica) Client() intf.Client {
	ctl, err := e2e.NewEtcdctl(e2e.ClientConfig{}, []string{m.clientAddr})
	if err != nil {
		panic(err) // NewEtcdctl fails only with auth options, given none here
	}
	return ctl
}

func (m *revkvReplica) running() *cluster.Node {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.node
}

func (m *revkvReplica) Start(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.node != nil {
		return nil
	}
	peerLis, err := revkvListen(m.peerAddr)
	if err != nil {
		return fmt.Errorf("revkv cluster runner: %w", err)
	}
	urls := []string{"http://" + m.clientAddr}
	n, err := cluster.Start(cluster.Config{
		Name:           m.name,
		ClusterToken:   m.c.token,
		FS:             persist.OS,
		Dir:            m.dir,
		PeerListener:   peerLis,
		PeerURLs:       []string{"http://" + m.peerAddr},
		ClientURLs:     urls,
		InitialCluster: m.c.initial,

		DisableStrictReconfigCheck: m.noStrict,
	})
	if err != nil {
		return fmt.Errorf("revkv cluster runner: %w", err)
	}
	lis, err := revkvListen(m.clientAddr)
	if err != nil {
		n.Close()
		return fmt.Errorf("revkv cluster runner: %w", err)
	}
	m.node = n
	m.srv = server.New(n, server.Options{Name: m.name, ClientURLs: urls, QuotaBackendBytes: m.quota})
	m.g, m.served = revkvServe(m.srv, lis)
	return nil
}

func (m *revkvReplica) Stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.node == nil {
		return
	}
	// Abruptly, as a crash: a request waiting for a quorum that is gone
	// would hold a graceful stop.
	m.srv.Close()
	m.g.Stop()
	<-m.served
	m.node.Close()
	m.node = nil
}
