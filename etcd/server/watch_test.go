package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/revkv/revkv/etcd/etcdtest"
	"github.com/revkv/revkv/etcd/server"
)

// rawWatch opens a Watch stream without clientv3's bookkeeping, to see
// exactly what the server sends.
func rawWatch(t *testing.T, cli *clientv3.Client) pb.Watch_WatchClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ws, err := pb.NewWatchClient(etcdtest.Conn(cli)).Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return ws
}

func send(t *testing.T, ws pb.Watch_WatchClient, r *pb.WatchRequest) {
	t.Helper()
	if err := ws.Send(r); err != nil {
		t.Fatal(err)
	}
}

func create(c *pb.WatchCreateRequest) *pb.WatchRequest {
	return &pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: c}}
}

func recv(t *testing.T, ws pb.Watch_WatchClient) *pb.WatchResponse {
	t.Helper()
	r, err := ws.Recv()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func evString(evs []*mvccpb.Event) string {
	var s []string
	for _, e := range evs {
		s = append(s, fmt.Sprintf("%s %s=%s@%d", e.Type, e.Kv.Key, e.Kv.Value, e.Kv.ModRevision))
	}
	return strings.Join(s, "; ")
}

func TestWatchCreatedFirstAndPinned(t *testing.T) {
	cli := newClient(t)
	mustPut(t, cli, "a", "1")
	ws := rawWatch(t, cli)
	// Writes race with the create: every event after the created header's
	// revision must come, after the created response.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 50 {
			cli.Put(context.Background(), "a", fmt.Sprint(i))
		}
	}()
	send(t, ws, create(&pb.WatchCreateRequest{Key: []byte("a")}))
	c := recv(t, ws)
	if !c.Created || c.WatchId != 0 || c.Canceled || len(c.Events) != 0 {
		t.Fatalf("first response: %+v", c)
	}
	<-done
	next := c.Header.Revision + 1
	for next <= 52 {
		r := recv(t, ws)
		for _, e := range r.Events {
			if e.Kv.ModRevision != next {
				t.Fatalf("event at %d, want %d (created at %d)", e.Kv.ModRevision, next, c.Header.Revision)
			}
			next++
		}
	}
}

func TestWatchHistoryPrevKVFilters(t *testing.T) {
	cli := newClient(t)
	ctx := ctxT(t)
	mustPut(t, cli, "k1", "a") // 2
	mustPut(t, cli, "k2", "b") // 3
	mustPut(t, cli, "k1", "c") // 4
	cli.Delete(ctx, "k2")      // 5
	wc := cli.Watch(ctx, "k", clientv3.WithPrefix(), clientv3.WithRev(2), clientv3.WithPrevKV())
	var got []*mvccpb.Event
	for len(got) < 4 {
		r := <-wc
		if err := r.Err(); err != nil {
			t.Fatal(err)
		}
		got = append(got, r.Events...)
	}
	if s := evString(got); s != "PUT k1=a@2; PUT k2=b@3; PUT k1=c@4; DELETE k2=@5" {
		t.Fatalf("events: %s", s)
	}
	if got[2].PrevKv == nil || string(got[2].PrevKv.Value) != "a" || got[3].PrevKv == nil || string(got[3].PrevKv.Value) != "b" || got[0].PrevKv != nil {
		t.Fatalf("prev kvs: %v %v %v", got[0].PrevKv, got[2].PrevKv, got[3].PrevKv)
	}
	// A delete and a put of one key in one txn (a from-key delete is not
	// a duplicate write to etcd): the put creates the key, and (as in
	// etcd) has no previous value.
	wp := cli.Watch(ctx, "k1", clientv3.WithPrevKV())
	if _, err := cli.Txn(ctx).Then(clientv3.OpDelete("k1", clientv3.WithFromKey()), clientv3.OpPut("k1", "new")).Commit(); err != nil {
		t.Fatal(err)
	}
	r := <-wp
	if len(r.Events) != 2 || r.Events[0].PrevKv == nil || r.Events[1].PrevKv != nil {
		t.Fatalf("delete and re-create in one txn: %s, prev %v, %v", evString(r.Events), r.Events[0].PrevKv, r.Events[1].PrevKv)
	}
	nodel := cli.Watch(ctx, "k", clientv3.WithPrefix(), clientv3.WithRev(2), clientv3.WithFilterDelete())
	noput := cli.Watch(ctx, "k", clientv3.WithPrefix(), clientv3.WithRev(2), clientv3.WithFilterPut())
	mustPut(t, cli, "k3", "d") // 7
	for _, c := range []struct {
		ch   clientv3.WatchChan
		want string
	}{{nodel, "PUT k1=a@2; PUT k2=b@3; PUT k1=c@4; PUT k1=new@6; PUT k3=d@7"}, {noput, "DELETE k2=@5; DELETE k1=@6"}} {
		var evs []*mvccpb.Event
		for r := range c.ch {
			evs = append(evs, r.Events...)
			if n := len(evs); n > 0 && evs[n-1].Kv.ModRevision >= 6 && (c.want[0] == 'D' || evs[n-1].Kv.ModRevision == 7) {
				break
			}
		}
		if s := evString(evs); s != c.want {
			t.Fatalf("filtered: %s, want %s", s, c.want)
		}
	}
}

func TestWatchIDsCancelAndRefusals(t *testing.T) {
	cli := newClient(t)
	ws := rawWatch(t, cli)
	send(t, ws, create(&pb.WatchCreateRequest{Key: []byte("a"), WatchId: 7}))
	if r := recv(t, ws); !r.Created || r.WatchId != 7 {
		t.Fatalf("explicit id: %+v", r)
	}
	send(t, ws, create(&pb.WatchCreateRequest{Key: []byte("a"), WatchId: 7}))
	if r := recv(t, ws); !r.Created || !r.Canceled || r.WatchId != -1 || r.CancelReason != "mvcc: duplicate watch ID provided on the WatchStream" {
		t.Fatalf("duplicate id: %+v", r)
	}
	send(t, ws, create(&pb.WatchCreateRequest{Key: []byte("b"), RangeEnd: []byte("a")}))
	if r := recv(t, ws); !r.Canceled || r.WatchId != -1 || r.CancelReason != "mvcc: watcher range is empty" {
		t.Fatalf("empty range: %+v", r)
	}
	send(t, ws, create(&pb.WatchCreateRequest{Key: []byte("a"), StartRevision: -1}))
	if r := recv(t, ws); !r.Canceled || r.WatchId != -1 || r.CancelReason != rpctypes.ErrCompacted.Error() {
		t.Fatalf("negative start: %+v", r)
	}
	send(t, ws, create(&pb.WatchCreateRequest{Key: []byte("a")}))
	if r := recv(t, ws); r.WatchId != 0 {
		t.Fatalf("auto id: %+v", r)
	}
	send(t, ws, &pb.WatchRequest{RequestUnion: &pb.WatchRequest_CancelRequest{CancelRequest: &pb.WatchCancelRequest{WatchId: 7}}})
	if r := recv(t, ws); !r.Canceled || r.WatchId != 7 || r.Created {
		t.Fatalf("cancel: %+v", r)
	}
	mustPut(t, cli, "a", "x")
	if r := recv(t, ws); r.WatchId != 0 || len(r.Events) != 1 {
		t.Fatalf("after cancel, only watch 0 gets the put: %+v", r)
	}
}

func TestWatchCompacted(t *testing.T) {
	cli := newClient(t)
	ctx := ctxT(t)
	for i := range 5 {
		mustPut(t, cli, "k", fmt.Sprint(i))
	}
	if _, err := cli.Compact(ctx, 4); err != nil {
		t.Fatal(err)
	}
	ws := rawWatch(t, cli)
	send(t, ws, create(&pb.WatchCreateRequest{Key: []byte("k"), StartRevision: 2}))
	if r := recv(t, ws); !r.Created || r.Canceled {
		t.Fatalf("created: %+v", r)
	}
	if r := recv(t, ws); !r.Canceled || r.CompactRevision != 4 || r.WatchId != 0 {
		t.Fatalf("compacted: %+v", r)
	}
	r := <-cli.Watch(ctx, "k", clientv3.WithRev(3))
	if r.Err() != rpctypes.ErrCompacted || r.CompactRevision != 4 {
		t.Fatalf("clientv3 compacted: %v %d", r.Err(), r.CompactRevision)
	}
	// A watch from the compacted revision itself is served.
	r = <-cli.Watch(ctx, "k", clientv3.WithRev(4))
	if r.Err() != nil || len(r.Events) != 3 {
		t.Fatalf("watch from compact rev: %v %s", r.Err(), evString(r.Events))
	}
}

func TestWatchProgress(t *testing.T) {
	f := startFake(t, etcdtest.Config{Server: server.Options{ProgressInterval: 50 * time.Millisecond}})
	cli := f.Client(clientv3.Config{})
	ctx := ctxT(t)
	mustPut(t, cli, "x", "1")
	wc := cli.Watch(ctx, "k", clientv3.WithProgressNotify())
	r := <-wc
	if !r.IsProgressNotify() || r.Header.Revision != 2 {
		t.Fatalf("progress notify: %+v", r)
	}
	// RequestProgress on a stream with a watch.
	ws := rawWatch(t, cli)
	send(t, ws, create(&pb.WatchCreateRequest{Key: []byte("q")}))
	recv(t, ws)
	mustPut(t, cli, "y", "1")
	send(t, ws, &pb.WatchRequest{RequestUnion: &pb.WatchRequest_ProgressRequest{ProgressRequest: &pb.WatchProgressRequest{}}})
	if r := recv(t, ws); r.WatchId != -1 || r.Header.Revision != 3 || len(r.Events) != 0 || r.Created || r.Canceled {
		t.Fatalf("requested progress: %+v", r)
	}
}

func TestWatchFragment(t *testing.T) {
	f := startFake(t, etcdtest.Config{Server: server.Options{MaxRequestBytes: 1024}})
	cli := f.Client(clientv3.Config{})
	ctx := ctxT(t)
	// Written directly: the 1 KiB limit caps requests too. Fragments are
	// cut at the limit plus etcd's 512 KiB allowance.
	const n = 300
	for i := range n {
		if _, err := f.DB.Put([]byte(fmt.Sprintf("k%03d", i)), []byte(strings.Repeat("v", 4<<10))); err != nil {
			t.Fatal(err)
		}
	}
	ws := rawWatch(t, cli)
	send(t, ws, create(&pb.WatchCreateRequest{Key: []byte("k"), RangeEnd: []byte("l"), StartRevision: 2, Fragment: true}))
	recv(t, ws)
	got, frags := 0, 0
	for got < n {
		r := recv(t, ws)
		got += len(r.Events)
		if r.Fragment {
			frags++
		}
	}
	if frags < 1 {
		t.Fatalf("%d fragments for 1.2 MiB of events at a 1 KiB limit", frags)
	}
	_, err := cli.Put(ctx, "big", strings.Repeat("v", 2<<10))
	wantErr(t, err, rpctypes.ErrRequestTooLarge)
	// clientv3 reassembles them.
	wc := cli.Watch(ctx, "k", clientv3.WithPrefix(), clientv3.WithRev(2), clientv3.WithFragment())
	for got := 0; got < n; {
		r := <-wc
		if r.Err() != nil || r.Canceled {
			t.Fatalf("clientv3 fragmented watch: %v", r.Err())
		}
		got += len(r.Events)
	}
}
