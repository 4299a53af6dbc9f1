package server_test

import (
	"context"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/revkv/revkv"
	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/etcd/etcdtest"
)

func TestLeases(t *testing.T) {
	clock := engine.NewManualClock(time.Unix(1000, 0))
	f := startFake(t, etcdtest.Config{DB: revkv.Options{Engine: engine.Options{Clock: clock}}})
	cli := f.Client(clientv3.Config{})
	ctx := ctxT(t)

	g, err := cli.Grant(ctx, 1)
	if err != nil || g.TTL != 2 || g.ID == 0 {
		t.Fatalf("grant below the minimum TTL: %+v %v", g, err)
	}
	g2, err := cli.Grant(ctx, 30)
	if err != nil || g2.TTL != 30 {
		t.Fatalf("grant: %+v %v", g2, err)
	}
	_, err = cli.Lease.(interface {
		Grant(context.Context, int64) (*clientv3.LeaseGrantResponse, error)
	}).Grant(ctx, 10_000_000_000)
	wantErr(t, err, rpctypes.ErrLeaseTTLTooLarge)

	mustPut(t, cli, "a", "1", clientv3.WithLease(g2.ID))
	mustPut(t, cli, "b", "1", clientv3.WithLease(g2.ID))
	_, err = cli.Put(ctx, "c", "1", clientv3.WithLease(12345))
	wantErr(t, err, rpctypes.ErrLeaseNotFound)
	// etcd checks the lease before the key.
	_, err = cli.Put(ctx, "nokey", "", clientv3.WithLease(12345), clientv3.WithIgnoreValue())
	wantErr(t, err, rpctypes.ErrLeaseNotFound)
	// ignore_lease keeps the key's lease.
	mustPut(t, cli, "a", "2", clientv3.WithIgnoreLease())
	if r, _ := cli.Get(ctx, "a"); r.Kvs[0].Lease != int64(g2.ID) {
		t.Fatalf("ignore lease lost the lease: %+v", r.Kvs[0])
	}

	clock.Advance(10 * time.Second)
	ttl, err := cli.TimeToLive(ctx, g2.ID, clientv3.WithAttachedKeys())
	if err != nil || ttl.TTL != 20 || ttl.GrantedTTL != 30 || len(ttl.Keys) != 2 || string(ttl.Keys[0]) != "a" {
		t.Fatalf("time to live: %+v %v", ttl, err)
	}
	ka, err := cli.KeepAliveOnce(ctx, g2.ID)
	if err != nil || ka.TTL != 30 {
		t.Fatalf("keep alive: %+v %v", ka, err)
	}
	// g expired at the advance; the store's expiry timer revokes it soon.
	ls, err := cli.Leases(ctx)
	for deadline := time.Now().Add(5 * time.Second); err == nil && len(ls.Leases) > 1 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
		ls, err = cli.Leases(ctx)
	}
	if err != nil || len(ls.Leases) != 1 || ls.Leases[0].ID != g2.ID {
		t.Fatalf("leases: %+v %v", ls, err)
	}

	rev, err := cli.Revoke(ctx, g2.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := cli.Get(ctx, "a", clientv3.WithRange("c")); len(r.Kvs) != 0 || rev.Header.Revision != r.Header.Revision {
		t.Fatalf("revoke left %d keys (revoke header %d, now %d)", len(r.Kvs), rev.Header.Revision, r.Header.Revision)
	}
	_, err = cli.Revoke(ctx, g2.ID)
	wantErr(t, err, rpctypes.ErrLeaseNotFound)
	ttl, err = cli.TimeToLive(ctx, g2.ID)
	if err != nil || ttl.TTL != -1 {
		t.Fatalf("time to live of a revoked lease: %+v %v", ttl, err)
	}
	_, err = cli.KeepAliveOnce(ctx, g2.ID)
	wantErr(t, err, rpctypes.ErrLeaseNotFound) // clientv3's answer to TTL 0

	// Expiry deletes the lease's keys.
	g, err = cli.Grant(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, cli, "e", "1", clientv3.WithLease(g.ID))
	clock.Advance(3 * time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for {
		r, _ := cli.Get(ctx, "e")
		if len(r.Kvs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("expired lease's key still there")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestKeepAliveStream(t *testing.T) {
	cli := newClient(t)
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	g, err := cli.Grant(ctx, 5)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := cli.KeepAlive(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r == nil || r.ID != g.ID || r.TTL != 5 {
		t.Fatalf("keep alive stream: %+v", r)
	}
}
