package etcdctltest

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// cmdCluster is a revkv cluster of revkv-etcd processes started with
// etcd's cluster flags, as an operator would start them.
type cmdCluster struct {
	bin, token string
	eps        []string
}

func startCmdCluster(t *testing.T, etcdctl, bin string, n int) *cmdCluster {
	c := &cmdCluster{bin: bin, token: fmt.Sprintf("etcdctltest-%d", time.Now().UnixNano())}
	var names, peers, initial []string
	for i := range n {
		names = append(names, fmt.Sprint("m", i))
		peers = append(peers, freeURL(t))
		initial = append(initial, names[i]+"="+peers[i])
	}
	for i := range n {
		c.eps = append(c.eps, c.start(t, names[i], peers[i], strings.Join(initial, ","), "new"))
	}
	// Serving once a leader is elected and every member has published
	// its name and client URLs.
	ctl{t: t, bin: etcdctl, endpoint: strings.Join(c.eps, ",")}.retry("endpoint", "health", "--cluster")
	return c
}

// start starts one member process and returns its client URL.
func (c *cmdCluster) start(t *testing.T, name, peer, initial, state string) string {
	ep := "http://" + freeAddr(t)
	startProcess(t, c.bin, state == "new",
		"--name", name, "--data-dir", t.TempDir(),
		"--listen-client-urls", ep, "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", initial, "--initial-cluster-state", state, "--initial-cluster-token", c.token,
		"--log-level", "info")
	return ep
}

func (c *cmdCluster) Endpoints() []string { return c.eps }

func (c *cmdCluster) Join(t *testing.T, name, peerURL, initialCluster string) string {
	return c.start(t, name, peerURL, initialCluster, "existing")
}

// TestEtcdctlCluster runs the cluster test against three revkv-etcd
// processes.
func TestEtcdctlCluster(t *testing.T) {
	etcdctl, server := build(t)
	testCluster(t, etcdctl, startCmdCluster(t, etcdctl, server, 3))
}
