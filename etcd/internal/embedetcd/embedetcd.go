// Package embedetcd starts etcd v3.7.3 itself, in-process, in temporary
// directories, so that tests and benchmarks can put revkv's server side by
// side with the real thing: a single member (Start) or a cluster of
// members on loopback addresses (StartCluster), to which more members can
// be added (Cluster.Join, after a MemberAdd).
//
// It is test support: everything takes a testing.TB and registers the
// shutdown with tb.Cleanup, so no goroutine or file of etcd outlives the
// test.
package embedetcd

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Etcd is one running etcd member.
type Etcd struct {
	// Name is the member's name ("default" for Start, "m0", "m1"... in
	// a cluster).
	Name string
	// Endpoint is the client URL ("http://127.0.0.1:port").
	Endpoint string
	// PeerURL is the URL other members reach it on.
	PeerURL string
	// Startup is how long embed.StartEtcd took until the member was ready.
	Startup time.Duration

	e     *embed.Etcd
	begin time.Time // when StartEtcd was called
}

// ID is the member's ID, as MemberList reports it.
func (e *Etcd) ID() uint64 { return uint64(e.e.Server.MemberID()) }

// Option adjusts the embed configuration before a member starts.
type Option func(*embed.Config)

// readyTimeout bounds a member's start: on a loaded shared machine a
// cluster's first election can take seconds, never a minute.
const readyTimeout = 60 * time.Second

// Start starts a single member with its data in tb.TempDir() and stops it
// when the test ends. It fails the test if etcd cannot start within 60 s.
func Start(tb testing.TB, opts ...Option) *Etcd {
	tb.Helper()
	cfg := memberConfig(tb, "default")
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	for _, o := range opts {
		o(cfg)
	}
	e := start(tb, cfg)
	e.wait(tb)
	return e
}

// memberConfig is the configuration of one member named name: data in a
// temporary directory, fresh loopback client and peer URLs, a quiet
// logger, no fsync.
func memberConfig(tb testing.TB, name string) *embed.Config {
	tb.Helper()
	cfg := embed.NewConfig()
	cfg.Dir = tb.TempDir()
	cfg.Name = name
	// Panics and fatal errors only, to stderr: etcd logs why before it dies;
	// that line is the whole diagnosis.
	lc := zap.NewProductionConfig()
	lc.Level = zap.NewAtomicLevelAt(zap.DPanicLevel)
	lc.OutputPaths, lc.ErrorOutputPaths = []string{"stderr"}, []string{"stderr"}
	lg, err := lc.Build()
	if err != nil {
		tb.Fatalf("embedetcd: logger: %v", err)
	}
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(lg)
	// fsync only costs time here: the directory is thrown away.
	cfg.UnsafeNoFsync = true
	client := FreeURL(tb)
	peer := FreeURL(tb)
	cfg.ListenClientUrls = []url.URL{client}
	cfg.AdvertiseClientUrls = []url.URL{client}
	cfg.ListenPeerUrls = []url.URL{peer}
	cfg.AdvertisePeerUrls = []url.URL{peer}
	return cfg
}

// start starts a member without waiting for it to be ready (a cluster's
// members are ready only once a quorum of them runs) and registers its
// shutdown.
func start(tb testing.TB, cfg *embed.Config) *Etcd {
	tb.Helper()
	begin := time.Now()
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		tb.Fatalf("embedetcd: start %s: %v", cfg.Name, err)
	}
	tb.Cleanup(func() {
		e.Close()
		<-e.Server.StopNotify()
	})
	return &Etcd{
		Name:     cfg.Name,
		Endpoint: cfg.AdvertiseClientUrls[0].String(),
		PeerURL:  cfg.AdvertisePeerUrls[0].String(),
		e:        e,
		begin:    begin,
	}
}

// wait waits until the member serves clients and sets Startup.
func (e *Etcd) wait(tb testing.TB) {
	tb.Helper()
	select {
	case <-e.e.Server.ReadyNotify():
	case err := <-e.e.Err():
		tb.Fatalf("embedetcd: %s: %v", e.Name, err)
	case <-time.After(readyTimeout):
		tb.Fatalf("embedetcd: %s not ready after %v", e.Name, readyTimeout)
	}
	e.Startup = time.Since(e.begin)
}

// Client returns a client of the member, closed when the test ends.
func (e *Etcd) Client(tb testing.TB) *clientv3.Client {
	tb.Helper()
	return NewClient(tb, e.Endpoint)
}

// NewClient returns a quiet client of the given endpoints, closed when
// the test ends.
func NewClient(tb testing.TB, endpoints ...string) *clientv3.Client {
	tb.Helper()
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 10 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		tb.Fatalf("embedetcd: client: %v", err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// Cluster is a running etcd cluster on loopback addresses.
type Cluster struct {
	// Members are the members started so far, in order of start (the
	// initial ones first, then those added by Join). Stopped members stay.
	Members []*Etcd

	token string
	opts  []Option
}

// StartCluster starts an n-member cluster and waits until every member
// serves clients (a leader is elected); the cluster stops when the test
// ends. Members are named m0, m1...; opts apply to every member.
func StartCluster(tb testing.TB, n int, opts ...Option) *Cluster {
	tb.Helper()
	c := &Cluster{token: fmt.Sprintf("embedetcd-%d", time.Now().UnixNano()), opts: opts}
	cfgs := make([]*embed.Config, n)
	var initial []string
	for i := range cfgs {
		cfgs[i] = memberConfig(tb, fmt.Sprintf("m%d", i))
		initial = append(initial, cfgs[i].Name+"="+cfgs[i].AdvertisePeerUrls[0].String())
	}
	for _, cfg := range cfgs {
		cfg.InitialCluster = strings.Join(initial, ",")
		cfg.InitialClusterToken = c.token
		for _, o := range opts {
			o(cfg)
		}
		c.Members = append(c.Members, start(tb, cfg))
	}
	for _, m := range c.Members {
		m.wait(tb)
	}
	return c
}

// Endpoints are the client URLs of the members, in order.
func (c *Cluster) Endpoints() []string {
	out := make([]string, len(c.Members))
	for i, m := range c.Members {
		out[i] = m.Endpoint
	}
	return out
}

// Client returns a client of every member, closed when the test ends.
func (c *Cluster) Client(tb testing.TB) *clientv3.Client {
	tb.Helper()
	return NewClient(tb, c.Endpoints()...)
}

// Join starts a member that a MemberAdd (of peerURL) has already added to
// the cluster: it joins the running cluster with the initial-cluster
// string the MemberAdd's caller computes (etcdctl member add prints it as
// ETCD_INITIAL_CLUSTER), named name and listening for peers on peerURL.
// It returns once the member serves clients; a learner is ready when it
// has caught up with the leader's snapshot.
func (c *Cluster) Join(tb testing.TB, name, peerURL, initialCluster string) *Etcd {
	tb.Helper()
	cfg := memberConfig(tb, name)
	u, err := url.Parse(peerURL)
	if err != nil {
		tb.Fatalf("embedetcd: join: %v", err)
	}
	cfg.ListenPeerUrls = []url.URL{*u}
	cfg.AdvertisePeerUrls = []url.URL{*u}
	cfg.InitialCluster = initialCluster
	cfg.InitialClusterToken = c.token
	cfg.ClusterState = embed.ClusterStateFlagExisting
	for _, o := range c.opts {
		o(cfg)
	}
	m := start(tb, cfg)
	m.wait(tb)
	c.Members = append(c.Members, m)
	return m
}

// FreeURL reserves a loopback port by listening on port 0 and closing the
// listener; the server binds it again a moment later.
func FreeURL(tb testing.TB) url.URL {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("embedetcd: %v", err)
	}
	addr := l.Addr().String()
	l.Close()
	return url.URL{Scheme: "http", Host: addr}
}
