package embedetcd

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

func TestStart(t *testing.T) {
	e := Start(t)
	c := e.Client(t)
	ctx := context.Background()
	if _, err := c.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	resp, err := c.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
		t.Fatalf("got %v", resp.Kvs)
	}
	t.Logf("startup %v", e.Startup)
}

// TestCluster starts three members, writes through one and reads the
// write from each of the others, then adds a learner and promotes it.
func TestCluster(t *testing.T) {
	// Without the strict check, etcd does not wait until every member
	// has been connected to every other for 5 s before a MemberAdd.
	c := StartCluster(t, 3, func(cfg *embed.Config) { cfg.StrictReconfigCheck = false })
	ctx := context.Background()
	if _, err := c.Members[0].Client(t).Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	for _, m := range c.Members[1:] {
		resp, err := m.Client(t).Get(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
			t.Fatalf("%s: got %v", m.Name, resp.Kvs)
		}
	}
	cli := c.Client(t)
	peer := FreeURL(t)
	add, err := cli.MemberAddAsLearner(ctx, []string{peer.String()})
	if err != nil {
		t.Fatal(err)
	}
	var initial []string
	for _, m := range add.Members {
		name := m.Name
		if m.ID == add.Member.ID {
			name = "m3"
		}
		for _, u := range m.PeerURLs {
			initial = append(initial, name+"="+u)
		}
	}
	j := c.Join(t, "m3", peer.String(), strings.Join(initial, ","))
	if j.ID() != add.Member.ID {
		t.Fatalf("joined as %x, added %x", j.ID(), add.Member.ID)
	}
	// A learner is promotable once it has caught up; etcd says so with
	// an error until then.
	retry(t, func() error {
		_, err := cli.MemberPromote(ctx, add.Member.ID)
		return err
	})
	list, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Members) != 4 {
		t.Fatalf("members: %v", list.Members)
	}
	for _, m := range list.Members {
		if m.IsLearner {
			t.Fatalf("still a learner: %v", m)
		}
	}
	t.Logf("startup: %v, join: %v", c.Members[0].Startup, j.Startup)
}

// retry calls f until it succeeds, for up to 30 s.
func retry(t *testing.T, f func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
