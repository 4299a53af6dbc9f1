// This file is not built with revkv: TestEtcdCommon adds it to a
// temporary copy of go.etcd.io/etcd/tests/v3's common package, where it
// replaces the package's test runner (the unit runner its build tags
// would pick) with one that serves every cluster from revkv's etcd server
// and drives it with etcd's own etcdctl client of the e2e framework. Its
// name sorts last, so its init runs after the package's.

package common

import (
	"context"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"

	"google.golang.org/grpc"

	"github.com/revkv/revkv"
	"github.com/revkv/revkv/etcd/server"
	"go.etcd.io/etcd/tests/v3/framework/config"
	"go.etcd.io/etcd/tests/v3/framework/e2e"
	intf "go.etcd.io/etcd/tests/v3/framework/interfaces"
)

func init() {
	testRunner = revkvRunner{}
	clusterTestCases = func() []testCase {
		return []testCase{{name: "revkv", config: config.ClusterConfig{ClusterSize: 1}}}
	}
}

type revkvRunner struct{}

func (revkvRunner) TestMain(m *testing.M) {
	e2e.BinPath.Etcdctl = os.Getenv("REVKV_COMMON_ETCDCTL")
	os.Exit(m.Run())
}

func (revkvRunner) BeforeTest(testing.TB) {}

// NewCluster serves one revkv member whatever size the configuration
// asks for: a cluster of one is what revkv is. The member keeps its data
// in a directory, so that Stop and Start restart it on its data at the
// same address. The backend quota is passed on; TLS is not served.
func (revkvRunner) NewCluster(ctx context.Context, tb testing.TB, opts ...config.ClusterOption) intf.Cluster {
	cfg := config.NewClusterConfig(opts...)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	m := &revkvMember{dir: tb.TempDir(), addr: addr, opts: server.Options{
		ClientURLs:        []string{"http://" + addr},
		QuotaBackendBytes: cfg.QuotaBackendBytes,
	}}
	if err := m.Start(ctx); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(m.Stop)
	return &revkvCluster{m: m}
}

type revkvCluster struct{ m *revkvMember }

func (c *revkvCluster) Members() []intf.Member { return []intf.Member{c.m} }

func (c *revkvCluster) Client(opts ...config.ClientOption) (intf.Client, error) {
	return e2e.NewEtcdctl(e2e.ClientConfig{}, c.Endpoints(), opts...)
}

func (c *revkvCluster) WaitLeader(testing.TB) int { return 0 }

func (c *revkvCluster) Close() error {
	c.m.Stop()
	return nil
}

func (c *revkvCluster) Endpoints() []string { return []string{c.m.addr} }

// revkvMember is a revkv DB on a directory served on a fixed address.
type revkvMember struct {
	dir, addr string
	opts      server.Options

	mu     sync.Mutex
	db     *revkv.DB
	srv    *server.Server
	g      *grpc.Server
	served chan struct{}
}

func (m *revkvMember) Client() intf.Client {
	ctl, err := e2e.NewEtcdctl(e2e.ClientConfig{}, []string{m.addr})
	if err != nil {
		panic(err) // NewEtcdctl fails only with auth options, given none here
	}
	return ctl
}

func (m *revkvMember) Start(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.g != nil {
		return nil
	}
	db, err := revkv.Open(m.dir, revkv.Options{})
	if err != nil {
		return fmt.Errorf("revkv runner: open: %w", err)
	}
	lis, err := net.Listen("tcp", m.addr)
	if err != nil {
		db.Close()
		return fmt.Errorf("revkv runner: %w", err)
	}
	m.db, m.srv = db, server.New(server.DB(db), m.opts)
	m.g, m.served = revkvServe(m.srv, lis)
	return nil
}

func (m *revkvMember) Stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.g == nil {
		return
	}
	m.srv.Close() // ends watch streams, which GracefulStop waits for
	m.g.GracefulStop()
	<-m.served
	m.db.Close()
	m.g = nil
}

// revkvServe serves srv's services on lis in a gRPC server of their own;
// served is closed when Serve returns.
func revkvServe(srv *server.Server, lis net.Listener) (g *grpc.Server, served chan struct{}) {
	g = grpc.NewServer(srv.GRPCOptions()...)
	srv.Register(g)
	served = make(chan struct{})
	go func() {
		defer close(served)
		g.Serve(lis)
	}()
	return g, served
}
