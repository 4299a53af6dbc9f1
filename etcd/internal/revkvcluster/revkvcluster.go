// Package revkvcluster starts revkv clusters (package cluster's Nodes,
// each with its etcd API server) in-process on loopback addresses, as
// embedetcd starts etcd's, so that tests and benchmarks drive both the
// same way: through client URLs.
//
// It is test support: everything takes a testing.TB and registers the
// shutdown with tb.Cleanup, so no goroutine or file outlives the test.
package revkvcluster

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/revkv/revkv/etcd/cluster"
	"github.com/revkv/revkv/etcd/member"
	"github.com/revkv/revkv/etcd/server"
	"github.com/revkv/revkv/persist"
)

// Options configure every member of a Cluster. The zero value is etcd's
// defaults (100 ms ticks, 10-tick elections) with the raft log in a
// temporary directory written without fsync, as embedetcd runs etcd.
type Options struct {
	// Fsync syncs the raft log as the member asks (persist.OS); without
	// it Sync and SyncDir do nothing (the directory is a throwaway).
	Fsync bool
	// TickInterval and ElectionTicks: see cluster.Config.
	TickInterval  time.Duration
	ElectionTicks int
	// Adjust, if not nil, changes each member's configuration last.
	Adjust func(*cluster.Config)
}

// Cluster is a running revkv cluster.
type Cluster struct {
	// Members are the members started so far: the initial ones (m0, m1,
	// ...) first, then those added by Join.
	Members []*Member

	opts  Options
	token string
}

// Member is one member: its Node and the etcd API server on it, at fixed
// client and peer addresses, with its raft log in a directory, so that it
// restarts (Stop, then Start) where it was.
type Member struct {
	Name string
	// Endpoint is the client URL ("http://127.0.0.1:port"), PeerURL the
	// URL the other members reach it on.
	Endpoint, PeerURL string

	c          *Cluster
	tb         testing.TB
	dir        string
	join       bool
	clientAddr string
	peerAddr   string
	initial    []member.Peer

	mu     sync.Mutex
	node   *cluster.Node
	srv    *server.Server
	g      *grpc.Server
	served chan struct{}
}

// Start starts an n-member cluster and waits until every member knows the
// same leader; it stops when the test ends.
func Start(tb testing.TB, n int, opts Options) *Cluster {
	tb.Helper()
	c := &Cluster{opts: opts, token: fmt.Sprintf("revkvcluster-%d", time.Now().UnixNano())}
	for i := range n {
		c.Members = append(c.Members, c.newMember(tb, fmt.Sprint("m", i), freeAddr(tb)))
	}
	var initial []member.Peer
	for _, m := range c.Members {
		initial = append(initial, member.Peer{Name: m.Name, PeerURLs: []string{m.PeerURL}})
	}
	for _, m := range c.Members {
		m.initial = initial
		if err := m.Start(); err != nil {
			tb.Fatal(err)
		}
	}
	c.WaitLeader(tb)
	return c
}

func (c *Cluster) newMember(tb testing.TB, name, peerAddr string) *Member {
	clientAddr := freeAddr(tb)
	m := &Member{
		Name: name, Endpoint: "http://" + clientAddr, PeerURL: "http://" + peerAddr,
		c: c, tb: tb, dir: filepath.Join(tb.TempDir(), "raft"), clientAddr: clientAddr, peerAddr: peerAddr,
	}
	tb.Cleanup(m.Stop)
	return m
}

// Endpoints are the client URLs of the members, in order.
func (c *Cluster) Endpoints() []string {
	out := make([]string, len(c.Members))
	for i, m := range c.Members {
		out[i] = m.Endpoint
	}
	return out
}

// Join starts a member that a MemberAdd of peerURL has added to the
// cluster, named name: it starts empty and gets the state from the
// leader, whom it reaches through initialCluster ("name=peerURL,...", the
// members and itself, as etcdctl member add prints ETCD_INITIAL_CLUSTER).
// It returns once the member runs (a learner may not have caught up yet).
func (c *Cluster) Join(tb testing.TB, name, peerURL, initialCluster string) *Member {
	tb.Helper()
	addr, err := hostPort(peerURL)
	if err != nil {
		tb.Fatalf("revkvcluster: join: %v", err)
	}
	m := c.newMember(tb, name, addr)
	m.join = true
	for _, entry := range strings.Split(initialCluster, ",") {
		n, u, ok := strings.Cut(entry, "=")
		if !ok {
			tb.Fatalf("revkvcluster: join: initial cluster %q: want name=URL,...", initialCluster)
		}
		m.initial = append(m.initial, member.Peer{Name: n, PeerURLs: []string{u}})
	}
	if err := m.Start(); err != nil {
		tb.Fatal(err)
	}
	c.Members = append(c.Members, m)
	return m
}

// InitialCluster is the members' "name=peerURL,..." with one more, as
// etcdctl member add prints it for a new member.
func (c *Cluster) InitialCluster(name, peerURL string) string {
	var out []string
	for _, m := range c.Members {
		out = append(out, m.Name+"="+m.PeerURL)
	}
	return strings.Join(append(out, name+"="+peerURL), ",")
}

// WaitLeader waits (up to 30 s) until every running member knows the
// same leader, and returns that leader's index in Members.
func (c *Cluster) WaitLeader(tb testing.TB) int {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if i, ok := c.leader(); ok {
			return i
		}
		if time.Now().After(deadline) {
			tb.Fatalf("revkvcluster: no leader after 30 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// leader is the index of the leader every running member knows, if they
// agree on one that runs.
func (c *Cluster) leader() (int, bool) {
	var lead uint64
	for _, m := range c.Members {
		n := m.Node()
		if n == nil {
			continue
		}
		l := n.Status().Leader
		if l == 0 || lead != 0 && l != lead {
			return -1, false
		}
		lead = l
	}
	for i, m := range c.Members {
		if n := m.Node(); n != nil && n.ID() == lead {
			return i, true
		}
	}
	return -1, false
}

// Node is the member's running Node, nil while it is stopped.
func (m *Member) Node() *cluster.Node {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.node
}

// Start starts the member, or restarts it on its raft log, at its
// addresses; it does nothing if the member runs.
func (m *Member) Start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.node != nil {
		return nil
	}
	fsys := persist.OS
	if !m.c.opts.Fsync {
		fsys = noSync{persist.OS}
	}
	peerLis, err := listen(m.peerAddr)
	if err != nil {
		return err
	}
	cfg := cluster.Config{
		Name:           m.Name,
		ClusterToken:   m.c.token,
		FS:             fsys,
		Dir:            m.dir,
		PeerListener:   peerLis,
		PeerURLs:       []string{m.PeerURL},
		ClientURLs:     []string{m.Endpoint},
		InitialCluster: m.initial,
		Join:           m.join,
		TickInterval:   m.c.opts.TickInterval,
		ElectionTicks:  m.c.opts.ElectionTicks,
	}
	if m.c.opts.Adjust != nil {
		m.c.opts.Adjust(&cfg)
	}
	n, err := cluster.Start(cfg)
	if err != nil {
		return fmt.Errorf("revkvcluster: start %s: %w", m.Name, err)
	}
	lis, err := listen(m.clientAddr)
	if err != nil {
		n.Close()
		return err
	}
	srv := server.New(n, server.Options{Name: m.Name, ClientURLs: []string{m.Endpoint}})
	g := grpc.NewServer(srv.GRPCOptions()...)
	srv.Register(g)
	healthpb.RegisterHealthServer(g, health.NewServer())
	served := make(chan struct{})
	go func() {
		defer close(served)
		g.Serve(lis)
	}()
	m.node, m.srv, m.g, m.served = n, srv, g, served
	return nil
}

// Stop stops the member abruptly if it runs (no leadership transfer):
// its clients' streams end, its requests in flight fail.
func (m *Member) Stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.node == nil {
		return
	}
	m.srv.Close()
	m.g.Stop()
	<-m.served
	if err := m.node.Close(); err != nil {
		m.tb.Errorf("revkvcluster: stop %s: %v", m.Name, err)
	}
	m.node = nil
}

// freeAddr returns a loopback address nothing listens on now.
func freeAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("revkvcluster: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

// listen listens on addr, retrying for a while: a port just released (by
// freeAddr, or by the member's previous run) may take a moment to be free.
func listen(addr string) (net.Listener, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		l, err := net.Listen("tcp", addr)
		if err == nil {
			return l, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("revkvcluster: listen %s: %w", addr, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// hostPort is the host:port of an http:// URL.
func hostPort(rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", err
	}
	if u.Scheme != "http" || u.Host == "" {
		return "", fmt.Errorf("peer URL %q: want http://host:port", rawURL)
	}
	return u.Host, nil
}

// noSync is an FS whose files' Sync and SyncDir do nothing: the data
// reaches the page cache, never waits for the disk (etcd's
// --unsafe-no-fsync).
type noSync struct{ persist.FS }

type noSyncFile struct{ persist.File }

func (noSyncFile) Sync() error { return nil }

func (noSync) SyncDir(string) error { return nil }

func (f noSync) Create(name string) (persist.File, error) { return wrap(f.FS.Create(name)) }
func (f noSync) Open(name string) (persist.File, error)   { return wrap(f.FS.Open(name)) }
func (f noSync) OpenReadWrite(name string) (persist.File, error) {
	return wrap(f.FS.OpenReadWrite(name))
}

func wrap(f persist.File, err error) (persist.File, error) {
	if err != nil {
		return nil, err
	}
	return noSyncFile{f}, nil
}
