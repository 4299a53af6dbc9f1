package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestClusterBasics: a 3-member cluster serves writes from any member,
// linearizable reads on every member see them, headers and Status carry
// the cluster's view, and leases and watches work across members.
func TestClusterBasics(t *testing.T) {
	c := newTestCluster(t, 3)
	lead := c.leader()
	ctx := ctxT(t, 30*time.Second)
	clis := []*clientv3.Client{c.client(0), c.client(1), c.client(2)}

	wch := clis[(lead+1)%3].Watch(ctx, "k", clientv3.WithPrefix())
	for i, cli := range clis {
		if _, err := cli.Put(ctx, fmt.Sprint("k", i), fmt.Sprint("v", i)); err != nil {
			t.Fatalf("put through member %d: %v", i, err)
		}
	}
	for i, cli := range clis {
		resp, err := cli.Get(ctx, "k", clientv3.WithPrefix())
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Kvs) != 3 {
			t.Fatalf("member %d sees %d keys", i, len(resp.Kvs))
		}
		if resp.Header.MemberId != c.members[i].current().ID() || resp.Header.ClusterId != ClusterID(DefaultClusterToken) || resp.Header.RaftTerm == 0 {
			t.Fatalf("member %d header %v", i, resp.Header)
		}
	}
	// A txn that only reads, with a compare, through a follower and the
	// leader: it runs (it once was skipped on the member's DB).
	for _, i := range []int{lead, (lead + 1) % 3} {
		resp, err := clis[i].Txn(ctx).If(clientv3.Compare(clientv3.Value("k0"), "!=", "v9")).Then(clientv3.OpGet("k0")).Commit()
		if err != nil || !resp.Succeeded || len(resp.Responses) != 1 || len(resp.Responses[0].GetResponseRange().Kvs) != 1 {
			t.Fatalf("read-only txn through member %d: %v, %v", i, resp, err)
		}
		resp, err = clis[i].Txn(ctx).Then(clientv3.OpGet("k", clientv3.WithPrefix(), clientv3.WithSerializable())).Commit()
		if err != nil || len(resp.Responses[0].GetResponseRange().Kvs) != 3 {
			t.Fatalf("serializable txn through member %d: %v, %v", i, resp, err)
		}
	}
	var events int
	for events < 3 {
		wr := <-wch
		if err := wr.Err(); err != nil {
			t.Fatal(err)
		}
		events += len(wr.Events)
	}

	// Status on every member names the same leader.
	for i := range clis {
		st, err := clis[i].Status(ctx, c.members[i].clientAddr)
		if err != nil {
			t.Fatal(err)
		}
		if st.Leader != c.members[lead].current().ID() || st.RaftIndex == 0 || st.RaftAppliedIndex == 0 {
			t.Fatalf("member %d status %+v", i, st)
		}
	}
	// Every member publishes its name and client URLs through the log.
	waitFor(t, "members to publish", func() bool {
		for _, m := range c.members {
			for _, p := range m.current().Member().Members() {
				if p.Name == "" || len(p.ClientURLs) != 1 {
					return false
				}
			}
		}
		return true
	})
	// Every member lists every member's name and client URLs.
	for i, cli := range clis {
		waitFor(t, "member attributes", func() bool {
			list, err := cli.MemberList(ctx)
			if err != nil || len(list.Members) != 3 {
				t.Fatalf("member %d: MemberList = %v, %v", i, list, err)
			}
			for _, m := range list.Members {
				if m.Name == "" || len(m.PeerURLs) != 1 || len(m.ClientURLs) != 1 {
					return false
				}
			}
			return true
		})
	}

	// A lease granted through one member, kept alive through a follower
	// (forwarded to the leader), and revoked through another.
	follower := (lead + 1) % 3
	lease, err := clis[lead].Grant(ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := clis[follower].Put(ctx, "leased", "x", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	ka, err := clis[follower].KeepAliveOnce(ctx, lease.ID)
	if err != nil || ka.TTL != 30 {
		t.Fatalf("keep-alive through a follower = %v, %v", ka, err)
	}
	ttl, err := clis[follower].TimeToLive(ctx, lease.ID, clientv3.WithAttachedKeys())
	if err != nil || ttl.GrantedTTL != 30 || len(ttl.Keys) != 1 {
		t.Fatalf("TimeToLive through a follower = %v, %v", ttl, err)
	}
	if _, err := clis[(lead+2)%3].Revoke(ctx, lease.ID); err != nil {
		t.Fatal(err)
	}
	if resp, err := clis[follower].Get(ctx, "leased"); err != nil || len(resp.Kvs) != 0 {
		t.Fatalf("leased key after revoke: %v, %v", resp, err)
	}
	if _, err := clis[follower].KeepAliveOnce(ctx, lease.ID); !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		t.Fatalf("keep-alive of a revoked lease: %v", err)
	}

	// Compaction through a follower reaches every member.
	rev, err := clis[0].Get(ctx, "k0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := clis[follower].Compact(ctx, rev.Header.Revision); err != nil {
		t.Fatal(err)
	}
	for i, cli := range clis {
		if _, err := cli.Get(ctx, "k0", clientv3.WithRev(rev.Header.Revision-1)); !errors.Is(err, rpctypes.ErrCompacted) {
			t.Fatalf("member %d: read below the compaction: %v", i, err)
		}
	}
	// HashKV at the compacted revision is the same on every member (each
	// hashed it as it applied the compaction).
	var hashes []uint32
	for i, cli := range clis {
		h, err := cli.HashKV(ctx, c.members[i].clientAddr, rev.Header.Revision)
		if err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, h.Hash)
	}
	if hashes[0] != hashes[1] || hashes[1] != hashes[2] {
		t.Fatalf("HashKV at the compaction: %x", hashes)
	}
}

// TestClusterMoveLeader: MoveLeader through the leader moves it; through a
// follower it is etcd's "not leader".
func TestClusterMoveLeader(t *testing.T) {
	c := newTestCluster(t, 3)
	lead := c.leader()
	ctx := ctxT(t, 30*time.Second)
	to := (lead + 1) % 3
	target := c.members[to].current().ID()
	if _, err := c.client(to).MoveLeader(ctx, target); !errors.Is(err, rpctypes.ErrNotLeader) {
		t.Fatalf("MoveLeader through a follower: %v", err)
	}
	if _, err := c.client(lead).MoveLeader(ctx, target); err != nil {
		t.Fatal(err)
	}
	if got := c.leader(); got != to {
		t.Fatalf("leader %d, want %d", got, to)
	}

	// A leader that stops gracefully hands its leadership over first.
	m := c.members[to]
	m.mu.Lock()
	m.srv.Close()
	m.g.Stop()
	<-m.served
	err := m.node.Stop(ctx)
	m.node = nil
	m.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if got := c.leader(); got == to {
		t.Fatalf("the stopped member %d still leads", to)
	}
}

// TestNodeCloseLeavesNoGoroutine: stopping every member of a cluster that
// served clients, watches and keep-alives leaves no goroutine behind.
func TestNodeCloseLeavesNoGoroutine(t *testing.T) {
	run := func(t *testing.T) {
		c := newTestCluster(t, 3)
		c.leader()
		ctx := ctxT(t, 30*time.Second)
		cli := c.client(0, 1, 2)
		if _, err := cli.Put(ctx, "k", "v"); err != nil {
			t.Fatal(err)
		}
		cli.Watch(ctx, "k")
		l, err := cli.Grant(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cli.KeepAlive(ctx, l.ID); err != nil {
			t.Fatal(err)
		}
		cli.Close()
		for _, m := range c.members {
			m.stop(false)
		}
	}
	t.Run("warm", run)
	before := runtime.NumGoroutine()
	t.Run("again", run)
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("%d goroutines before, %d after:\n%s", before, runtime.NumGoroutine(), buf[:n])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestNodeCloseLeavesNoFile: members on the real filesystem, stopped
// (one crashed and restarted on the way), leave no file descriptor open.
func TestNodeCloseLeavesNoFile(t *testing.T) {
	if _, err := os.ReadDir("/proc/self/fd"); err != nil {
		t.Skip("no /proc/self/fd:", err)
	}
	fds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	run := func(t *testing.T) {
		c := newTestCluster(t, 3, func(c *testCluster) { c.osDir = t.TempDir() })
		c.leader()
		ctx := ctxT(t, 30*time.Second)
		cli := c.client(0, 1, 2)
		for i := range 20 {
			if _, err := cli.Put(ctx, fmt.Sprint("k", i), "v"); err != nil {
				t.Fatal(err)
			}
		}
		c.members[1].stop(false)
		c.members[1].start()
		if _, err := c.client(1).Get(ctx, "k0"); err != nil {
			t.Fatal(err)
		}
		cli.Close()
		for _, m := range c.members {
			m.stop(false)
		}
	}
	t.Run("warm", run)
	before := fds()
	t.Run("again", run)
	deadline := time.Now().Add(10 * time.Second)
	for fds() > before {
		if time.Now().After(deadline) {
			ents, _ := os.ReadDir("/proc/self/fd")
			var open []string
			for _, e := range ents {
				l, _ := os.Readlink("/proc/self/fd/" + e.Name())
				open = append(open, l)
			}
			t.Fatalf("%d descriptors before, %d after: %v", before, fds(), open)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestClusterCutOffMember: a member cut off from the others fails writes
// and linearizable reads with etcd's errors once its request timeout
// passes (not with the client's deadline), and serves serializable reads.
func TestClusterCutOffMember(t *testing.T) {
	c := newTestCluster(t, 3, func(c *testCluster) { c.requestTimeout = 500 * time.Millisecond })
	lead := c.leader()
	x := (lead + 1) % 3
	ctx := ctxT(t, 30*time.Second)
	cli := c.client(x)
	if _, err := cli.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	c.partition(x, true)
	unavailable := func(err error) bool {
		return errors.Is(err, rpctypes.ErrNoLeader) || errors.Is(err, rpctypes.ErrTimeout) || errors.Is(err, rpctypes.ErrLeaderChanged)
	}
	for i := range 3 {
		if _, err := cli.Put(ctx, "k", fmt.Sprint(i)); !unavailable(err) {
			t.Fatalf("put through a cut-off member: %v", err)
		}
	}
	if resp, err := cli.Get(ctx, "k", clientv3.WithSerializable()); err != nil || string(resp.Kvs[0].Value) != "v" {
		t.Fatalf("serializable get through a cut-off member: %v, %v", resp, err)
	}
	gctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := cli.Get(gctx, "k"); err == nil {
		t.Fatal("a linearizable get through a cut-off member succeeded")
	}
	c.partition(x, false)
	c.leader()
	if _, err := cli.Put(ctx, "k", "w"); err != nil {
		t.Fatalf("put after healing: %v", err)
	}
}

// TestClusterWholeCrash: every member crashes at once (their disks keep
// only what was synced, the rest torn) and restarts: every acknowledged
// write is there, on every member, and the cluster takes writes again.
func TestClusterWholeCrash(t *testing.T) {
	c := newTestCluster(t, 3, func(c *testCluster) { c.snapshotEntries = 40 })
	c.leader()
	ctx := ctxT(t, 60*time.Second)
	cli := c.client(0, 1, 2)
	var last int64
	for i := range 100 {
		resp, err := cli.Put(ctx, fmt.Sprint("k", i%30), fmt.Sprint(i))
		if err != nil {
			t.Fatal(err)
		}
		last = resp.Header.Revision
	}
	for _, m := range c.members {
		m.stop(true)
	}
	for _, m := range c.members {
		m.start()
	}
	c.leader()
	c.converged(last)
	for i := range c.members {
		resp, err := c.client(i).Get(ctx, "k", clientv3.WithPrefix(), clientv3.WithSerializable())
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Kvs) != 30 || resp.Header.Revision < last {
			t.Fatalf("member %d after the crash: %d keys at revision %d, want 30 at %d", i, len(resp.Kvs), resp.Header.Revision, last)
		}
		for _, kv := range resp.Kvs {
			var j int
			if _, err := fmt.Sscanf(string(kv.Key), "k%d", &j); err != nil {
				t.Fatal(err)
			}
			// The last put to key j was the last i < 100 with i%30 == j.
			if want := fmt.Sprint(j + 30*((99-j)/30)); string(kv.Value) != want {
				t.Fatalf("member %d: %s = %s, want %s", i, kv.Key, kv.Value, want)
			}
		}
	}
	if _, err := cli.Put(ctx, "after", "crash"); err != nil {
		t.Fatal(err)
	}
}

// TestClusterMemberFails: a member whose disk fails an fsync stops for
// good (Failed, Err) and serves nothing more, while the others go on; it
// restarts from its log and catches up.
func TestClusterMemberFails(t *testing.T) {
	c := newTestCluster(t, 3)
	lead := c.leader()
	x := (lead + 1) % 3
	ctx := ctxT(t, 60*time.Second)
	cli, xcli := c.client(lead), c.client(x)
	if _, err := cli.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	node := c.members[x].current()
	c.members[x].fs.FailSync(1)
	for i := 0; ; i++ {
		if _, err := cli.Put(ctx, "k", fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
		select {
		case <-node.Failed():
		case <-time.After(10 * time.Millisecond):
			continue
		}
		break
	}
	if err := node.Err(); err == nil {
		t.Fatal("Failed closed without an error")
	}
	if _, err := xcli.Put(ctx, "k", "x"); !errors.Is(err, rpctypes.ErrStopped) {
		t.Fatalf("put through the failed member: %v", err)
	}
	if _, err := xcli.Get(ctx, "k", clientv3.WithSerializable()); !errors.Is(err, rpctypes.ErrStopped) {
		t.Fatalf("serializable get through the failed member: %v", err)
	}
	last, err := cli.Put(ctx, "k", "after")
	if err != nil {
		t.Fatalf("put through the others: %v", err)
	}
	c.members[x].stop(true)
	c.members[x].start()
	c.converged(last.Header.Revision)
}
