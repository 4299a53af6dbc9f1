package main

import (
	"bytes"
	"context"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// syncBuffer is a bytes.Buffer the server's logger and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs the command until the test ends (or stop is called) and
// returns its address.
func start(t *testing.T, args ...string) (addr string, stop func() error, logs *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs = &syncBuffer{}
	ready := make(chan string, 1)
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, args, logs, ready) }()
	select {
	case addr = <-ready:
	case err := <-errc:
		cancel()
		t.Fatalf("run: %v\n%s", err, logs)
	}
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			err = <-errc
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return addr, stop, logs
}

func client(t *testing.T, endpoint string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	return cli
}

// TestServeDirRestartAndShutdown serves a directory on a unix socket,
// writes, shuts down with a watch open (graceful shutdown must not wait for
// it), and serves the directory again.
func TestServeDirRestartAndShutdown(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(t.TempDir(), "etcd.sock")
	_, stop, logs := start(t, "-dir", dir, "-listen", "unix://"+sock, "-log-level", "debug")
	cli := client(t, "unix://"+sock)
	ctx := context.Background()
	if _, err := cli.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	wc := cli.Watch(ctx, "k")
	if _, err := cli.Put(ctx, "k", "v2"); err != nil {
		t.Fatal(err)
	}
	<-wc
	if err := stop(); err != nil {
		t.Fatalf("stop: %v\n%s", err, logs)
	}
	cli.Close()
	if !strings.Contains(logs.String(), "stopped") {
		t.Fatalf("no stop record in the log:\n%s", logs)
	}

	addr, _, _ := start(t, "-dir", dir, "-listen", "127.0.0.1:0")
	cli = client(t, addr)
	defer cli.Close()
	r, err := cli.Get(ctx, "k")
	if err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "v2" || r.Header.Revision != 3 {
		t.Fatalf("after restart: %+v %v", r, err)
	}
	ml, err := cli.MemberList(ctx)
	if err != nil || ml.Members[0].ClientURLs[0] != "http://"+addr {
		t.Fatalf("member list: %+v %v", ml, err)
	}
}

func TestBadFlags(t *testing.T) {
	var out syncBuffer
	if err := run(context.Background(), []string{"-log-level", "loud"}, &out, nil); err == nil {
		t.Fatal("a bad log level was accepted")
	}
	if err := run(context.Background(), []string{"extra"}, &out, nil); err == nil {
		t.Fatal("an extra argument was accepted")
	}
}

// TestStaleSocket: a socket file left by a dead server is replaced; a live
// server's is not.
func TestStaleSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "etcd.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close() // the file stays, as after a crash
	addr, _, _ := start(t, "-listen", "unix://"+sock)
	var out syncBuffer
	if err := run(context.Background(), []string{"-listen", "unix://" + sock}, &out, nil); err == nil {
		t.Fatal("a second server took the live socket")
	}
	cli := client(t, "unix://"+sock)
	defer cli.Close()
	if _, err := cli.Put(context.Background(), "k", "v"); err != nil {
		t.Fatalf("serving on %s: %v", addr, err)
	}
}
