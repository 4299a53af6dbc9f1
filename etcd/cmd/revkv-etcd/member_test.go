package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/revkv/revkv/etcd/cluster"
)

// TestClusterFlags: etcd's cluster flags, parsed and checked.
func TestClusterFlags(t *testing.T) {
	const initial = "a=http://127.0.0.1:2380,b=http://127.0.0.1:2381,a=http://10.0.0.1:2380"
	c, err := parse([]string{"--name", "a", "--data-dir", "/d", "--listen-client-urls", "http://127.0.0.1:3379",
		"--listen-peer-urls", "http://0.0.0.0:2380", "--initial-cluster", initial,
		"--initial-advertise-peer-urls", "http://10.0.0.1:2380,http://127.0.0.1:2380",
		"--initial-cluster-state", "existing", "--initial-cluster-token", "tok"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.dir != "/d" || c.listen != "127.0.0.1:3379" {
		t.Fatalf("dir %q listen %q", c.dir, c.listen)
	}
	cfg, peerListen, err := memberConfig(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if peerListen != "0.0.0.0:2380" || cfg.DisableStrictReconfigCheck || !cfg.Join || cfg.ClusterToken != "tok" || cfg.Dir != "/d" || cfg.FS == nil {
		t.Fatalf("config %+v, peer listen %s", cfg, peerListen)
	}
	if len(cfg.InitialCluster) != 2 || cfg.InitialCluster[0].Name != "a" || len(cfg.InitialCluster[0].PeerURLs) != 2 || cfg.InitialCluster[1].PeerURLs[0] != "http://127.0.0.1:2381" {
		t.Fatalf("initial cluster %+v", cfg.InitialCluster)
	}
	// The same IDs on every member: derived from the token and peer URLs.
	if id := cluster.MemberID("tok", []string{"http://127.0.0.1:2380", "http://10.0.0.1:2380"}); id != cluster.MemberID("tok", cfg.PeerURLs) {
		t.Fatal("member ID depends on the URLs' order")
	}

	bad := []struct {
		args []string
		want string
	}{
		{[]string{"--initial-cluster-state", "old"}, "want new or existing"},
		{[]string{"--listen-client-urls", "127.0.0.1:2379"}, "not http://host:port"},
		{[]string{"--listen-client-urls", "http://a:1,http://b:1"}, "one URL only"},
		{[]string{"--election-ticks", "1"}, "election-ticks"},
		{[]string{"--name", "c", "--initial-cluster", initial}, `"c" is not in -initial-cluster`},
		{[]string{"--name", "a", "--initial-cluster", "a"}, "not name=URL"},
		{[]string{"--name", "a", "--initial-cluster", "a=127.0.0.1:1"}, "not http://host:port"},
		{[]string{"--name", "b", "--initial-cluster", initial, "--initial-advertise-peer-urls", "http://127.0.0.1:9"}, "differ"},
		{[]string{"--name", "b", "--initial-cluster", initial, "--listen-peer-urls", "https://x:1"}, "listen-peer-urls"},
	}
	for _, b := range bad {
		c, err := parse(b.args, io.Discard)
		if err == nil {
			_, _, err = memberConfig(c, nil)
		}
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%q: %v, want %q", b.args, err, b.want)
		}
	}
}

// freeAddrs returns n distinct loopback addresses nothing listens on now
// (all held at once while chosen, so the kernel cannot hand one out
// twice).
func freeAddrs(t *testing.T, n int) []string {
	var addrs []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		addrs = append(addrs, l.Addr().String())
	}
	return addrs
}

// TestClusterCommand runs three members of a cluster as the command
// (one in memory, two on directories), writes through one and reads
// through another, stops one and restarts it from its directory.
func TestClusterCommand(t *testing.T) {
	var peers, clients [3]string
	var initial []string
	addrs := freeAddrs(t, 6)
	for i := range 3 {
		peers[i], clients[i] = addrs[2*i], addrs[2*i+1]
		initial = append(initial, fmt.Sprintf("m%d=http://%s", i, peers[i]))
	}
	dirs := [3]string{t.TempDir(), t.TempDir(), ""}
	args := func(i int) []string {
		return []string{"--name", fmt.Sprint("m", i), "--data-dir", dirs[i],
			"--listen-client-urls", "http://" + clients[i], "--listen-peer-urls", "http://" + peers[i],
			"--initial-cluster", strings.Join(initial, ","), "--heartbeat-interval", "20ms"}
	}
	var stops [3]func() error
	for i := range 3 {
		_, stops[i], _ = start(t, args(i)...)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: clients[:], DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	if err := stops[0](); err != nil {
		t.Fatal(err)
	}
	_, stops[0], _ = start(t, args(0)...)
	one := client(t, clients[0])
	defer one.Close()
	resp, err := one.Get(ctx, "k")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
		t.Fatalf("get through the restarted member: %v, %v", resp, err)
	}
	list, err := one.MemberList(ctx)
	if err != nil || len(list.Members) != 3 {
		t.Fatalf("member list: %v, %v", list, err)
	}
	st, err := one.Status(ctx, clients[0])
	if err != nil || st.Leader == 0 || st.Header.MemberId != cluster.MemberID(cluster.DefaultClusterToken, []string{"http://" + peers[0]}) {
		t.Fatalf("status: %v, %v", st, err)
	}
}
