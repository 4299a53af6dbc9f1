// This file is not built with revkv: TestEtcdCommon lays it, through go
// test -overlay, into the package go.etcd.io/etcd/tests/v3/common of the
// module cache, where it replaces the package's test runner (the unit
// runner its build tags would pick) with one that serves every cluster
// from revkv's etcd server and drives it with etcd's own etcdctl client
// of the e2e framework. Its name sorts last, so its init runs after the
// package's.

package common

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/revkv/revkv/etcd/etcdtest"
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

// NewCluster serves one revkv member whatever the configuration asks for:
// a cluster of one is what revkv is. TLS and quotas are not served.
func (revkvRunner) NewCluster(ctx context.Context, tb testing.TB, opts ...config.ClusterOption) intf.Cluster {
	f := etcdtest.StartEndpoint(tb, etcdtest.Config{})
	return &revkvCluster{tb: tb, f: f}
}

type revkvCluster struct {
	tb testing.TB
	f  *etcdtest.Fake
}

func (c *revkvCluster) client() intf.Client {
	ctl, err := e2e.NewEtcdctl(e2e.ClientConfig{}, c.Endpoints())
	if err != nil {
		c.tb.Fatal(err)
	}
	return ctl
}

func (c *revkvCluster) Members() []intf.Member { return []intf.Member{revkvMember{c}} }

func (c *revkvCluster) Client(opts ...config.ClientOption) (intf.Client, error) {
	return e2e.NewEtcdctl(e2e.ClientConfig{}, c.Endpoints(), opts...)
}

func (c *revkvCluster) WaitLeader(testing.TB) int { return 0 }

func (c *revkvCluster) Close() error {
	c.f.Close()
	return nil
}

func (c *revkvCluster) Endpoints() []string { return []string{c.f.Endpoint()} }

type revkvMember struct{ c *revkvCluster }

func (m revkvMember) Client() intf.Client { return m.c.client() }

// Start and Stop would restart the member on its data: the in-memory fake
// has none to restart on.
func (m revkvMember) Start(context.Context) error {
	return errors.New("revkv runner: member restart not supported")
}

func (m revkvMember) Stop() {}
