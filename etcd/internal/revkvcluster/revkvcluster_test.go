package revkvcluster

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/revkv/revkv/etcd/cluster"
	"go.uber.org/zap"
)

func client(t *testing.T, eps ...string) *clientv3.Client {
	c, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestCluster starts three members with fast ticks, writes through one,
// reads from each; stops the leader, writes again through the others,
// restarts it and reads the write from it; then adds a learner, starts
// it and promotes it.
func TestCluster(t *testing.T) {
	// Without the strict check, a MemberAdd does not wait until every
	// member has been connected to every other for 5 s.
	c := Start(t, 3, Options{TickInterval: 20 * time.Millisecond, ElectionTicks: 15, Adjust: func(cfg *cluster.Config) {
		cfg.DisableStrictReconfigCheck = true
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := client(t, c.Members[0].Endpoint).Put(ctx, "k", "v1"); err != nil {
		t.Fatal(err)
	}
	for _, m := range c.Members {
		resp, err := client(t, m.Endpoint).Get(ctx, "k")
		if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v1" {
			t.Fatalf("%s: %v %v", m.Name, resp, err)
		}
	}

	lead := c.Members[c.WaitLeader(t)]
	lead.Stop()
	// A write during the election may fail as etcd's do ("leader
	// changed"): wait for the new leader.
	c.WaitLeader(t)
	var others []string
	for _, m := range c.Members {
		if m != lead {
			others = append(others, m.Endpoint)
		}
	}
	if _, err := client(t, others...).Put(ctx, "k", "v2"); err != nil {
		t.Fatal(err)
	}
	if err := lead.Start(); err != nil {
		t.Fatal(err)
	}
	if resp, err := client(t, lead.Endpoint).Get(ctx, "k"); err != nil || string(resp.Kvs[0].Value) != "v2" {
		t.Fatalf("restarted %s: %v %v", lead.Name, resp, err)
	}

	cli := client(t, c.Endpoints()...)
	peer := "http://" + freeAddr(t)
	add, err := cli.MemberAddAsLearner(ctx, []string{peer})
	if err != nil {
		t.Fatal(err)
	}
	j := c.Join(t, "m3", peer, c.InitialCluster("m3", peer))
	if j.Node().ID() != add.Member.ID {
		t.Fatalf("joined as %x, added %x", j.Node().ID(), add.Member.ID)
	}
	for {
		_, err := cli.MemberPromote(ctx, add.Member.ID)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("promote: %v (status of the learner: %+v)", err, j.Node().Status())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if resp, err := client(t, j.Endpoint).Get(ctx, "k"); err != nil || string(resp.Kvs[0].Value) != "v2" {
		t.Fatalf("%s: %v %v", j.Name, resp, err)
	}
}
