// Package etcdtest gives Go tests an etcd backed by an in-memory revkv:
// a real *clientv3.Client in one call, with nothing to start or stop.
//
//	func TestMyThing(t *testing.T) {
//		cli := etcdtest.NewClient(t)
//		cli.Put(ctx, "k", "v")
//		...
//	}
//
// Three fakes, one server: NewClient connects over an in-memory gRPC
// connection (no port, no disk); NewInProcessClient calls the server with
// no connection at all (the cheapest, for tests that make many clients or
// requests; every message is still encoded and decoded, so client and
// server see what they would over gRPC); NewEndpoint listens on a loopback
// port, for code that builds its own client from an address. Start,
// StartInProcess and StartEndpoint return the Fake, to configure it, reach
// its DB, or make more clients. Everything a fake starts is stopped by the
// test's Cleanup: no goroutine, connection or file is left behind.
package etcdtest

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/test/bufconn"

	"github.com/revkv/revkv"
	"github.com/revkv/revkv/etcd/server"
)

// Config configures a Fake. The zero value is an in-memory DB with
// defaults and a server with etcd's defaults.
type Config struct {
	// DB configures the revkv DB (for example a lease clock); it is always
	// in memory.
	DB revkv.Options
	// Server configures the etcd server.
	Server server.Options
}

// Fake is a running etcd server on an in-memory revkv DB, for one test.
type Fake struct {
	// DB is the store the server serves: a test may read or write it
	// directly, and see the same data as clients.
	DB *revkv.DB
	// Server is the etcd API server.
	Server *server.Server

	tb     testing.TB
	g      *grpc.Server      // nil for an in-process fake
	buf    *bufconn.Listener // nil but for an in-memory fake
	addr   string            // "" but for a TCP fake
	served chan struct{}     // closed when Serve returns
	inproc *conn             // nil but for an in-process fake

	mu      sync.Mutex
	clients []*clientv3.Client
	closed  bool
}

// bufconnEndpoint is the endpoint clients of an in-memory fake dial (the
// dialer ignores it).
const bufconnEndpoint = "revkv-fake"

// bufSize is the in-memory connection's buffer: big enough that a client
// writing a large request does not wait for the server to read it.
const bufSize = 64 << 10

// Start starts a Fake on an in-memory connection. The test's Cleanup stops
// it and closes every client it made.
func Start(tb testing.TB, cfg Config) *Fake {
	tb.Helper()
	if cfg.Server.ClientURLs == nil {
		// What MemberList advertises: the name clients dial (so a client
		// that syncs its endpoints keeps dialing the fake).
		cfg.Server.ClientURLs = []string{bufconnEndpoint}
	}
	lis := bufconn.Listen(bufSize)
	f := start(tb, cfg, lis)
	f.buf = lis
	return f
}

// StartEndpoint starts a Fake listening on a loopback TCP port; Endpoint
// returns its address, which MemberList advertises (so clients that sync
// their endpoints keep it).
func StartEndpoint(tb testing.TB, cfg Config) *Fake {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("etcdtest: listen: %v", err)
	}
	if cfg.Server.ClientURLs == nil {
		cfg.Server.ClientURLs = []string{"http://" + lis.Addr().String()}
	}
	f := start(tb, cfg, lis)
	f.addr = lis.Addr().String()
	return f
}

// newFake opens the DB and makes the server.
func newFake(tb testing.TB, cfg Config) *Fake {
	db, err := revkv.Open("", cfg.DB)
	if err != nil {
		tb.Fatalf("etcdtest: open: %v", err)
	}
	return &Fake{DB: db, Server: server.New(server.DB(db), cfg.Server), tb: tb}
}

func start(tb testing.TB, cfg Config, lis net.Listener) *Fake {
	f := newFake(tb, cfg)
	f.g = grpc.NewServer(f.Server.GRPCOptions()...)
	f.Server.Register(f.g)
	f.served = make(chan struct{})
	go func() {
		defer close(f.served)
		f.g.Serve(lis)
	}()
	tb.Cleanup(f.Close)
	return f
}

// Close stops the fake now: it closes the clients it made, ends watch
// streams, stops the server and closes the DB. The test's Cleanup calls
// it; calling it earlier (to stop many fakes in one test, or in a
// benchmark loop) is fine, and later calls do nothing.
func (f *Fake) Close() {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return
	}
	f.closed = true
	clients := f.clients
	f.clients = nil
	f.mu.Unlock()
	for _, c := range clients {
		c.Close()
		inProcess.Delete(c)
	}
	f.Server.Close() // ends streams, which GracefulStop would wait for
	if f.g != nil {
		f.g.GracefulStop()
		<-f.served
	}
	if f.inproc != nil {
		f.inproc.wait()
	}
	f.DB.Close()
}

// Endpoint returns the address of a Fake started by StartEndpoint, and ""
// for one on an in-memory connection.
func (f *Fake) Endpoint() string { return f.addr }

// Client returns a new client of the fake, closed when the fake is (by
// the test's Cleanup, or Close). cfg may set timeouts and other client
// options; its Endpoints and dialer are the fake's. A client of an
// in-process fake (StartInProcess) ignores cfg, and has no connection
// (ActiveConnection is nil).
func (f *Fake) Client(cfg clientv3.Config) *clientv3.Client {
	f.tb.Helper()
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	if f.inproc != nil {
		return f.track(inProcessClient(context.Background(), f.inproc))
	}
	if f.buf != nil {
		lis := f.buf
		cfg.Endpoints = []string{bufconnEndpoint}
		cfg.DialOptions = append(cfg.DialOptions, grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return lis.DialContext(ctx)
		}))
	} else {
		cfg.Endpoints = []string{f.addr}
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		f.tb.Fatalf("etcdtest: client: %v", err)
	}
	return f.track(cli)
}

// track registers a client for Close.
func (f *Fake) track(cli *clientv3.Client) *clientv3.Client {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		cli.Close()
		f.tb.Fatalf("etcdtest: Client of a closed fake")
	}
	f.clients = append(f.clients, cli)
	return cli
}

// NewClient starts an in-memory Fake and returns a client of it: an etcd
// for the test in one call. The test's Cleanup closes both.
func NewClient(tb testing.TB) *clientv3.Client {
	tb.Helper()
	return Start(tb, Config{}).Client(clientv3.Config{})
}

// NewInProcessClient starts an in-process Fake (see StartInProcess) and
// returns a client of it: the cheapest etcd for a test, with no connection
// at all. The test's Cleanup closes both.
func NewInProcessClient(tb testing.TB) *clientv3.Client {
	tb.Helper()
	return StartInProcess(tb, Config{}).Client(clientv3.Config{})
}

// NewEndpoint starts a Fake on a loopback port and returns its address
// ("127.0.0.1:port"), for code that builds its own client. The test's
// Cleanup stops it; close your clients first (a t.Cleanup registered
// after this call runs before it).
func NewEndpoint(tb testing.TB) string {
	tb.Helper()
	return StartEndpoint(tb, Config{}).Endpoint()
}
