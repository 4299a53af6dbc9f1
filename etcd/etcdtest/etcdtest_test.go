package etcdtest_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/revkv/revkv/etcd/etcdtest"
)

// exercise uses every kind of stream a client opens: a watch that stays
// open, a lease with a keep-alive stream, a session (its own keep-alive),
// and plain requests.
func exercise(t *testing.T, cli *clientv3.Client) {
	t.Helper()
	ctx := context.Background()
	wc := cli.Watch(ctx, "k", clientv3.WithPrefix())
	if _, err := cli.Put(ctx, "k1", "v"); err != nil {
		t.Fatal(err)
	}
	if r := <-wc; len(r.Events) != 1 {
		t.Fatalf("watch: %+v", r)
	}
	g, err := cli.Grant(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.KeepAlive(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	s, err := concurrency.NewSession(cli)
	if err != nil {
		t.Fatal(err)
	}
	m := concurrency.NewMutex(s, "/lock")
	if err := m.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Get(ctx, "k", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
}

// TestNoGoroutineLeft runs fakes of both kinds with open watches, keep-alive
// streams and sessions left open, and checks that their cleanup leaves no
// goroutine behind.
func TestNoGoroutineLeft(t *testing.T) {
	// A first run starts the goroutines gRPC keeps for the process.
	t.Run("warm", func(t *testing.T) {
		exercise(t, etcdtest.NewClient(t))
		exercise(t, etcdtest.NewInProcessClient(t))
	})
	before := runtime.NumGoroutine()
	for i := range 3 {
		t.Run(fmt.Sprint("bufconn", i), func(t *testing.T) { exercise(t, etcdtest.NewClient(t)) })
		t.Run(fmt.Sprint("inproc", i), func(t *testing.T) { exercise(t, etcdtest.NewInProcessClient(t)) })
		t.Run(fmt.Sprint("endpoint", i), func(t *testing.T) {
			f := etcdtest.StartEndpoint(t, etcdtest.Config{})
			exercise(t, f.Client(clientv3.Config{}))
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("%d goroutines before, %d after:\n%s", before, runtime.NumGoroutine(), buf[:n])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestNewEndpoint: code that builds its own client from an address.
func TestNewEndpoint(t *testing.T) {
	addr := etcdtest.NewEndpoint(t)
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("endpoint %q", addr)
	}
	// RejectOldCluster checks the server's version; Sync reads its client
	// URLs from MemberList.
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{addr}, DialTimeout: 5 * time.Second, RejectOldCluster: true})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.Put(context.Background(), "a", "b"); err != nil {
		t.Fatal(err)
	}
	if err := cli.Sync(context.Background()); err != nil || len(cli.Endpoints()) != 1 || cli.Endpoints()[0] != "http://"+addr {
		t.Fatalf("sync: %v, endpoints %v", err, cli.Endpoints())
	}
}

// TestSyncKeepsFake: a client of an in-memory fake that syncs its
// endpoints from MemberList keeps reaching the fake.
func TestSyncKeepsFake(t *testing.T) {
	cli := etcdtest.Start(t, etcdtest.Config{}).Client(clientv3.Config{})
	ctx := context.Background()
	if err := cli.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "a", "b"); err != nil {
		t.Fatalf("put after sync (endpoints %v): %v", cli.Endpoints(), err)
	}
}

// TestFakeDBIsShared: the DB a fake serves is the test's to use too.
func TestFakeDBIsShared(t *testing.T) {
	f := etcdtest.Start(t, etcdtest.Config{})
	cli := f.Client(clientv3.Config{})
	if _, err := f.DB.Put([]byte("direct"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	r, err := cli.Get(context.Background(), "direct")
	if err != nil || len(r.Kvs) != 1 {
		t.Fatalf("get: %+v %v", r, err)
	}
	f.Close()
	f.Close() // a second Close does nothing
}
