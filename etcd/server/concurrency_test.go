package server_test

import (
	"context"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/revkv/revkv"
	"github.com/revkv/revkv/etcd/etcdtest"
	"github.com/revkv/revkv/watch"
)

// TestSlowWatcherDoesNotBlockWriters: a watch stream whose client does
// not read, on every key, while 6 MiB are written; the writes finish, and
// the watch still gets every event once its client reads.
func TestSlowWatcherDoesNotBlockWriters(t *testing.T) {
	// A watch holds up to 4x its MaxEvents events while it keeps up: a
	// small cap makes it fall behind within a few thousand puts.
	f := startFake(t, etcdtest.Config{DB: revkv.Options{Watch: watch.Options{MaxEvents: 100}}})
	cli := f.Client(clientv3.Config{})
	ctx := ctxT(t)
	ws, err := pb.NewWatchClient(etcdtest.Conn(cli)).Watch(ctx, grpc.MaxCallRecvMsgSize(math.MaxInt32))
	if err != nil {
		t.Fatal(err)
	}
	send(t, ws, create(&pb.WatchCreateRequest{Key: []byte{0}, RangeEnd: []byte{0}}))
	created := recv(t, ws)
	val := strings.Repeat("v", 2<<10)
	start := time.Now()
	const n = 3000
	for i := range n {
		if _, err := cli.Put(ctx, fmt.Sprintf("k%04d", i), val); err != nil {
			t.Fatal(err)
		}
	}
	took := time.Since(start)
	if st := f.DB.WatchStats(); st.SlowReceivers == 0 {
		t.Errorf("the watch kept up (stats %+v): the test did not stall it", st)
	}
	next := created.Header.Revision + 1
	for next <= created.Header.Revision+n {
		r := recv(t, ws)
		for _, e := range r.Events {
			if e.Kv.ModRevision != next {
				t.Fatalf("event at %d, want %d", e.Kv.ModRevision, next)
			}
			next++
		}
	}
	t.Logf("%d puts of 2 KiB with a stalled watcher: %v", n, took)
}

// TestConcurrentClients: clients writing, reading, watching and running
// txns at once; every watch sees every revision in order.
func TestConcurrentClients(t *testing.T) {
	f := startFake(t, etcdtest.Config{})
	ctx := ctxT(t)
	const writers, perWriter = 4, 100
	watchers := make([]clientv3.WatchChan, 3)
	for i := range watchers {
		watchers[i] = f.Client(clientv3.Config{}).Watch(ctx, "c/", clientv3.WithPrefix(), clientv3.WithRev(2))
	}
	var wg sync.WaitGroup
	for w := range writers {
		cli := f.Client(clientv3.Config{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				k := fmt.Sprintf("c/%d", w)
				var err error
				switch i % 3 {
				case 0:
					_, err = cli.Put(ctx, k, fmt.Sprint(i))
				case 1:
					_, err = cli.Txn(ctx).If(clientv3.Compare(clientv3.Version(k), ">", 0)).
						Then(clientv3.OpPut(k, fmt.Sprint(i)), clientv3.OpGet("c/", clientv3.WithPrefix())).Commit()
				case 2:
					_, err = cli.Get(ctx, "c/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByValue, clientv3.SortDescend))
					if err == nil {
						_, err = cli.Put(ctx, k, fmt.Sprint(i))
					}
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	last := f.DB.Rev()
	for _, wc := range watchers {
		next := int64(2)
		for next <= last {
			r := <-wc
			if r.Err() != nil {
				t.Fatal(r.Err())
			}
			for _, e := range r.Events {
				if e.Kv.ModRevision != next {
					t.Fatalf("event at %d, want %d", e.Kv.ModRevision, next)
				}
				next++
			}
		}
	}
	if want := int64(1 + writers*perWriter); last != want {
		t.Fatalf("revision %d, want %d", last, want)
	}
}

// TestLargeRangeAndRangeStream: a 24 MiB range in one response, and the
// same keys streamed in chunks.
func TestLargeRangeAndRangeStream(t *testing.T) {
	f := startFake(t, etcdtest.Config{})
	cli := f.Client(clientv3.Config{})
	ctx := context.Background()
	val := []byte(strings.Repeat("x", 8<<10))
	const n = 3000
	for i := range n {
		if _, err := f.DB.Put([]byte(fmt.Sprintf("r%05d", i)), val); err != nil {
			t.Fatal(err)
		}
	}
	r, err := cli.Get(ctx, "r", clientv3.WithPrefix())
	if err != nil || len(r.Kvs) != n || r.Count != n {
		t.Fatalf("large range: %d kvs, %v", len(r.Kvs), err)
	}
	rs, err := pb.NewKVClient(etcdtest.Conn(cli)).RangeStream(ctx, &pb.RangeRequest{Key: []byte("r"), RangeEnd: []byte("s"), Limit: n - 1})
	if err != nil {
		t.Fatal(err)
	}
	got, chunks := 0, 0
	var last *pb.RangeResponse
	for {
		m, err := rs.Recv()
		if err != nil {
			if err != io.EOF {
				t.Fatal(err)
			}
			break
		}
		if chunks == 0 {
			f.DB.Put([]byte("r0"), []byte("later")) // not seen: the stream is pinned
		}
		chunks++
		got += len(m.RangeResponse.Kvs)
		for _, kv := range m.RangeResponse.Kvs {
			if string(kv.Value) == "later" {
				t.Fatal("a write after the stream began is in it")
			}
		}
		last = m.RangeResponse
	}
	if got != n-1 || chunks < 3 || last.Header == nil || last.Header.Revision != n+1 || !last.More || last.Count != n {
		t.Fatalf("range stream: %d kvs in %d chunks, last %+v", got, chunks, last.GetHeader())
	}
	// A target with no order is accepted, as etcd accepts it; an order is
	// not.
	rs, err = pb.NewKVClient(etcdtest.Conn(cli)).RangeStream(ctx, &pb.RangeRequest{Key: []byte("r00000"), RangeEnd: []byte("r00005"), SortTarget: pb.RangeRequest_CREATE})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := rs.Recv(); err != nil || len(m.RangeResponse.Kvs) != 5 {
		t.Fatalf("range stream by create revision: %v", err)
	}
	rs, err = pb.NewKVClient(etcdtest.Conn(cli)).RangeStream(ctx, &pb.RangeRequest{Key: []byte("r"), RangeEnd: []byte("s"), SortTarget: pb.RangeRequest_VALUE, SortOrder: pb.RangeRequest_ASCEND})
	if err == nil {
		_, err = rs.Recv()
	}
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("range stream with a sort order: %v", err)
	}
}
