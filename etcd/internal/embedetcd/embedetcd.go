// Package embedetcd starts etcd v3.7.3 itself, in-process, as a single
// member in a temporary directory, so that tests and benchmarks can put
// revkv's server side by side with the real thing.
//
// It is test support: Start takes a testing.TB and registers the shutdown
// with tb.Cleanup, so no goroutine or file of etcd outlives the test.
package embedetcd

import (
	"net"
	"net/url"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Etcd is one running single-member etcd.
type Etcd struct {
	// Endpoint is the client URL ("http://127.0.0.1:port").
	Endpoint string
	// Startup is how long embed.StartEtcd took until the member was ready.
	Startup time.Duration

	e *embed.Etcd
}

// Option adjusts the embed configuration before the member starts.
type Option func(*embed.Config)

// Start starts a member with its data in tb.TempDir() and stops it when
// the test ends. It fails the test if etcd cannot start within 60 s.
func Start(tb testing.TB, opts ...Option) *Etcd {
	tb.Helper()
	cfg := embed.NewConfig()
	cfg.Dir = tb.TempDir()
	cfg.Name = "default"
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
	client := freeURL(tb)
	peer := freeURL(tb)
	cfg.ListenClientUrls = []url.URL{client}
	cfg.AdvertiseClientUrls = []url.URL{client}
	cfg.ListenPeerUrls = []url.URL{peer}
	cfg.AdvertisePeerUrls = []url.URL{peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	for _, o := range opts {
		o(cfg)
	}
	begin := time.Now()
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		tb.Fatalf("embedetcd: start: %v", err)
	}
	tb.Cleanup(func() {
		e.Close()
		<-e.Server.StopNotify()
	})
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		tb.Fatalf("embedetcd: %v", err)
	case <-time.After(60 * time.Second):
		tb.Fatalf("embedetcd: not ready after 60 s")
	}
	return &Etcd{Endpoint: client.String(), Startup: time.Since(begin), e: e}
}

// Client returns a client of the member, closed when the test ends.
func (e *Etcd) Client(tb testing.TB) *clientv3.Client {
	tb.Helper()
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{e.Endpoint},
		DialTimeout: 10 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		tb.Fatalf("embedetcd: client: %v", err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// freeURL reserves a loopback port by listening on port 0 and closing the
// listener; etcd binds it again a moment later.
func freeURL(tb testing.TB) url.URL {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("embedetcd: %v", err)
	}
	addr := l.Addr().String()
	l.Close()
	return url.URL{Scheme: "http", Host: addr}
}
