package server_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/revkv/revkv"
	"github.com/revkv/revkv/etcd/server"
	"github.com/revkv/revkv/kv"
)

// fakeReplica is a DB backend that also plays a member of a cluster: the
// test sets what it reports and the error its calls return, and reads
// what the server asked of it.
type fakeReplica struct {
	server.Backend
	server.Lessor

	mu       sync.Mutex
	barriers int
	err      error // returned by every Replicated call but Header/Status/Members
	term     uint64
	status   server.RaftStatus
	members  []server.Member
	moved    uint64
	calls    []string
}

const (
	fakeCluster = 0xc1
	fakeSelf    = 0xa
)

func (f *fakeReplica) call(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, name)
	return f.err
}

func (f *fakeReplica) ReadBarrier(ctx context.Context) error {
	f.mu.Lock()
	f.barriers++
	f.mu.Unlock()
	return f.call("barrier")
}

func (f *fakeReplica) Header() (uint64, uint64, uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fakeCluster, fakeSelf, f.term
}

func (f *fakeReplica) Status() server.RaftStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}

func (f *fakeReplica) Members() []server.Member {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.members)
}

func (f *fakeReplica) MemberAdd(ctx context.Context, urls []string, learner bool) (server.Member, []server.Member, error) {
	if err := f.call("add"); err != nil {
		return server.Member{}, nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	m := server.Member{ID: 0xd, PeerURLs: urls, IsLearner: learner}
	f.members = append(f.members, m)
	return m, slices.Clone(f.members), nil
}

func (f *fakeReplica) MemberRemove(ctx context.Context, id uint64) ([]server.Member, error) {
	if err := f.call(fmt.Sprint("remove ", id)); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.members = slices.DeleteFunc(f.members, func(m server.Member) bool { return m.ID == id })
	return slices.Clone(f.members), nil
}

func (f *fakeReplica) MemberUpdate(ctx context.Context, id uint64, urls []string) ([]server.Member, error) {
	if err := f.call(fmt.Sprint("update ", id, urls)); err != nil {
		return nil, err
	}
	return f.Members(), nil
}

func (f *fakeReplica) MemberPromote(ctx context.Context, id uint64) ([]server.Member, error) {
	if err := f.call(fmt.Sprint("promote ", id)); err != nil {
		return nil, err
	}
	return f.Members(), nil
}

func (f *fakeReplica) MoveLeader(ctx context.Context, to uint64) error {
	if err := f.call(fmt.Sprint("move ", to)); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.moved = to
	return nil
}

func (f *fakeReplica) set(fn func(f *fakeReplica)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

var _ server.Replicated = (*fakeReplica)(nil)

// startReplica serves a fakeReplica on an in-memory connection and
// returns it with a raw gRPC connection (errors exactly as sent) and a
// clientv3 client on it.
func startReplica(t *testing.T) (*fakeReplica, *grpc.ClientConn, *clientv3.Client) {
	t.Helper()
	db, err := revkv.Open("", revkv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := server.DB(db)
	f := &fakeReplica{Backend: b, Lessor: b.(server.Lessor), term: 7,
		status:  server.RaftStatus{Leader: fakeSelf, Term: 7, Index: 40, Applied: 39},
		members: []server.Member{{ID: fakeSelf, Name: "a", PeerURLs: []string{"http://127.0.0.1:1"}, ClientURLs: []string{"http://127.0.0.1:2"}}}}
	conn, cli := serveBackend(t, f)
	t.Cleanup(func() { db.Close() })
	return f, conn, cli
}

// serveBackend serves b on an in-memory connection until the test ends.
func serveBackend(t *testing.T, b server.Backend) (*grpc.ClientConn, *clientv3.Client) {
	srv := server.New(b, server.Options{})
	g := grpc.NewServer(srv.GRPCOptions()...)
	srv.Register(g)
	lis := bufconn.Listen(64 << 10)
	served := make(chan struct{})
	go func() {
		defer close(served)
		g.Serve(lis)
	}()
	dial := func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }
	conn, err := grpc.NewClient("passthrough:///fake", grpc.WithContextDialer(dial), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"passthrough:///fake"}, DialOptions: []grpc.DialOption{grpc.WithContextDialer(dial)}, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cli.Close()
		conn.Close()
		srv.Close()
		g.Stop()
		<-served
	})
	return conn, cli
}

// TestReplicatedHeader: every header carries the backend's IDs and its
// current term.
func TestReplicatedHeader(t *testing.T) {
	f, _, cli := startReplica(t)
	ctx := context.Background()
	resp, err := cli.Put(ctx, "k", "v")
	if err != nil {
		t.Fatal(err)
	}
	if h := resp.Header; h.ClusterId != fakeCluster || h.MemberId != fakeSelf || h.RaftTerm != 7 {
		t.Fatalf("header %v", h)
	}
	f.set(func(f *fakeReplica) { f.term = 9 })
	get, err := cli.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if get.Header.RaftTerm != 9 || get.Header.Revision != resp.Header.Revision {
		t.Fatalf("header after a term change: %v", get.Header)
	}
}

// TestReplicatedReadBarrier: linearizable reads (ranges, read-only txns,
// lease lists, linearizable member lists) wait for the barrier;
// serializable reads and writes do not.
func TestReplicatedReadBarrier(t *testing.T) {
	f, _, cli := startReplica(t)
	ctx := context.Background()
	cases := []struct {
		name    string
		op      func() error
		barrier bool
	}{
		{"get", func() error { _, err := cli.Get(ctx, "k"); return err }, true},
		{"serializable get", func() error { _, err := cli.Get(ctx, "k", clientv3.WithSerializable()); return err }, false},
		{"put", func() error { _, err := cli.Put(ctx, "k", "v"); return err }, false},
		{"read-only txn", func() error {
			_, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.Version("k"), ">", 0)).Then(clientv3.OpGet("k")).Commit()
			return err
		}, true},
		{"serializable txn", func() error {
			_, err := cli.Txn(ctx).Then(clientv3.OpGet("k", clientv3.WithSerializable())).Commit()
			return err
		}, false},
		{"txn with a nested linearizable get", func() error {
			_, err := cli.Txn(ctx).Then(clientv3.OpGet("a", clientv3.WithSerializable()), clientv3.OpTxn(nil, []clientv3.Op{clientv3.OpGet("k")}, nil)).Commit()
			return err
		}, true},
		{"txn that writes", func() error {
			_, err := cli.Txn(ctx).Then(clientv3.OpGet("k"), clientv3.OpPut("k", "w")).Commit()
			return err
		}, false},
		{"lease list", func() error { _, err := cli.Leases(ctx); return err }, true},
		{"member list", func() error { _, err := cli.MemberList(ctx); return err }, true},
		{"serializable member list", func() error { _, err := cli.MemberList(ctx, clientv3.WithSerializable()); return err }, false},
		{"watch", func() error {
			wctx, cancel := context.WithCancel(ctx)
			defer cancel()
			wch := cli.Watch(wctx, "k", clientv3.WithRev(1))
			<-wch
			return nil
		}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := f.barriers
			if err := c.op(); err != nil {
				t.Fatal(err)
			}
			f.mu.Lock()
			got := f.barriers - before
			f.mu.Unlock()
			if got != 0 != c.barrier {
				t.Fatalf("%d barriers, want barrier: %v", got, c.barrier)
			}
		})
	}
}

// TestReplicatedErrors: each Replicated error, wrapped, reaches the
// client as the rpctypes error etcd sends for it.
func TestReplicatedErrors(t *testing.T) {
	f, conn, _ := startReplica(t)
	kvc := pb.NewKVClient(conn)
	cases := []struct {
		err  error
		want error
	}{
		{server.ErrNoLeader, rpctypes.ErrGRPCNoLeader},
		{server.ErrNotLeader, rpctypes.ErrGRPCNotLeader},
		{server.ErrLeaderChanged, rpctypes.ErrGRPCLeaderChanged},
		{server.ErrTimeout, rpctypes.ErrGRPCTimeout},
		{server.ErrStopped, rpctypes.ErrGRPCStopped},
		{server.ErrMemberNotFound, rpctypes.ErrGRPCMemberNotFound},
		{server.ErrMemberExists, rpctypes.ErrGRPCMemberExist},
		{server.ErrPeerURLExists, rpctypes.ErrGRPCPeerURLExist},
		{server.ErrMemberNotLearner, rpctypes.ErrGRPCMemberNotLearner},
		{server.ErrLearnerNotReady, rpctypes.ErrGRPCLearnerNotReady},
		{server.ErrTooManyLearners, rpctypes.ErrGRPCTooManyLearners},
		{server.ErrUnhealthy, rpctypes.ErrGRPCUnhealthy},
		{server.ErrNotEnoughStartedMembers, rpctypes.ErrGRPCMemberNotEnoughStarted},
		{server.ErrBadLeaderTransferee, rpctypes.ErrGRPCBadLeaderTransferee},
		{server.ErrNotSupportedForLearner, rpctypes.ErrGRPCNotSupportedForLearner},
	}
	for _, c := range cases {
		t.Run(rpctypes.ErrorDesc(c.want), func(t *testing.T) {
			f.set(func(f *fakeReplica) { f.err = fmt.Errorf("member 3: %w", c.err) })
			_, err := kvc.Range(context.Background(), &pb.RangeRequest{Key: []byte("k")})
			if !sameStatus(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

// TestReplicatedCluster: the Cluster service changes the backend's
// membership, validates peer URLs as etcd, and maps its errors.
func TestReplicatedCluster(t *testing.T) {
	f, conn, cli := startReplica(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	list, err := cli.MemberList(ctx)
	if err != nil || len(list.Members) != 1 || list.Members[0].Name != "a" || list.Members[0].ClientURLs[0] != "http://127.0.0.1:2" {
		t.Fatalf("MemberList = %v, %v", list, err)
	}
	add, err := cli.MemberAddAsLearner(ctx, []string{"http://127.0.0.1:3"})
	if err != nil {
		t.Fatal(err)
	}
	if add.Member.ID != 0xd || !add.Member.IsLearner || len(add.Members) != 2 || add.Header.MemberId != fakeSelf {
		t.Fatalf("MemberAdd = %v", add)
	}
	// clientv3 checks URLs itself: the server's check is for other clients.
	cc := pb.NewClusterClient(conn)
	for _, bad := range [][]string{nil, {"127.0.0.1:3"}, {"http://127.0.0.1:3/path"}, {"ftp://h:1"}, {"http://nohost"}} {
		if _, err := cc.MemberAdd(ctx, &pb.MemberAddRequest{PeerURLs: bad}); !sameStatus(err, rpctypes.ErrGRPCMemberBadURLs) {
			t.Fatalf("MemberAdd %q: %v", bad, err)
		}
		if _, err := cc.MemberUpdate(ctx, &pb.MemberUpdateRequest{ID: fakeSelf, PeerURLs: bad}); !sameStatus(err, rpctypes.ErrGRPCMemberBadURLs) {
			t.Fatalf("MemberUpdate %q: %v", bad, err)
		}
	}
	if _, err := cli.MemberUpdate(ctx, 0xd, []string{"http://127.0.0.1:4"}); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.MemberPromote(ctx, 0xd); err != nil {
		t.Fatal(err)
	}
	rm, err := cli.MemberRemove(ctx, 0xd)
	if err != nil || len(rm.Members) != 1 {
		t.Fatalf("MemberRemove = %v, %v", rm, err)
	}
	f.mu.Lock()
	calls := slices.Clone(f.calls)
	f.mu.Unlock()
	want := []string{"add", "update 13 [http://127.0.0.1:4]", "promote 13", "remove 13"}
	calls = slices.DeleteFunc(calls, func(c string) bool { return c == "barrier" })
	if !slices.Equal(calls, want) {
		t.Fatalf("calls %q, want %q", calls, want)
	}

	f.set(func(f *fakeReplica) { f.err = server.ErrLearnerNotReady })
	if _, err := cli.MemberPromote(ctx, 0xd); !errors.Is(err, rpctypes.ErrMemberLearnerNotReady) {
		t.Fatalf("MemberPromote: %v", err)
	}
	f.set(func(f *fakeReplica) { f.err = fmt.Errorf("remove: %w", server.ErrMemberNotFound) })
	if _, err := cli.MemberRemove(ctx, 0xe); !errors.Is(err, rpctypes.ErrMemberNotFound) {
		t.Fatalf("MemberRemove: %v", err)
	}
	f.set(func(f *fakeReplica) { f.err = server.ErrPeerURLExists })
	if _, err := cli.MemberAdd(ctx, []string{"http://127.0.0.1:1"}); !errors.Is(err, rpctypes.ErrPeerURLExist) {
		t.Fatalf("MemberAdd: %v", err)
	}
}

// TestReplicatedStatusAndMoveLeader: Status reports the raft state (and
// "no leader" when there is none); MoveLeader is refused by a follower
// and done by the leader.
func TestReplicatedStatusAndMoveLeader(t *testing.T) {
	f, _, cli := startReplica(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ep := cli.Endpoints()[0]
	st, err := cli.Status(ctx, ep)
	if err != nil {
		t.Fatal(err)
	}
	if st.Leader != fakeSelf || st.RaftTerm != 7 || st.RaftIndex != 40 || st.RaftAppliedIndex != 39 || st.IsLearner || len(st.Errors) != 0 {
		t.Fatalf("Status = %v", st)
	}
	if _, err := cli.MoveLeader(ctx, 0xb); err != nil {
		t.Fatal(err)
	}
	if f.moved != 0xb {
		t.Fatalf("moved to %x", f.moved)
	}
	f.set(func(f *fakeReplica) { f.err = server.ErrBadLeaderTransferee })
	if _, err := cli.MoveLeader(ctx, 0xe); !errors.Is(err, rpctypes.ErrBadLeaderTransferee) {
		t.Fatalf("MoveLeader to a bad transferee: %v", err)
	}

	f.set(func(f *fakeReplica) { f.status = server.RaftStatus{Term: 8, Index: 41, Applied: 41, IsLearner: true} })
	st, err = cli.Status(ctx, ep)
	if err != nil {
		t.Fatal(err)
	}
	if st.Leader != 0 || !st.IsLearner || !slices.Equal(st.Errors, []string{"etcdserver: no leader"}) {
		t.Fatalf("Status without a leader = %v", st)
	}
	if _, err := cli.MoveLeader(ctx, 0xb); !errors.Is(err, rpctypes.ErrNotLeader) {
		t.Fatalf("MoveLeader on a follower: %v", err)
	}
}

// sameStatus reports whether err is the gRPC error want (code and text).
func sameStatus(err, want error) bool {
	return err != nil && status.Convert(err).String() == status.Convert(want).String()
}

// TestReplicatedWatchRequiresLeader: a watch that requires a leader is
// refused by a member without one, and ended once the member has lost
// it for a while; other watches go on.
func TestReplicatedWatchRequiresLeader(t *testing.T) {
	f, _, cli := startReplica(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	noLeader := func(f *fakeReplica) { f.status.Leader = 0 }
	leader := func(f *fakeReplica) { f.status.Leader = fakeSelf }

	f.set(leader)
	wch := cli.Watch(clientv3.WithRequireLeader(ctx), "k")
	plain := cli.Watch(ctx, "k")
	if _, err := cli.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	if wr := <-wch; len(wr.Events) != 1 {
		t.Fatalf("watch with a leader: %v", wr)
	}
	<-plain
	f.set(noLeader)
	start := time.Now()
	for wr := range wch {
		if err := wr.Err(); err != nil && !errors.Is(err, rpctypes.ErrNoLeader) {
			t.Fatalf("watch ended with %v", err)
		}
	}
	if d := time.Since(start); d < time.Second {
		t.Fatalf("watch ended %v after the leader was lost: too soon", d)
	}
	wr, ok := <-cli.Watch(clientv3.WithRequireLeader(ctx), "k")
	if !ok || !errors.Is(wr.Err(), rpctypes.ErrNoLeader) {
		t.Fatalf("watch without a leader: %v, %v", wr.Err(), ok)
	}
	f.set(leader)
	if _, err := cli.Put(ctx, "k", "w"); err != nil {
		t.Fatal(err)
	}
	if wr := <-plain; len(wr.Events) != 1 {
		t.Fatalf("plain watch after the loss: %v", wr)
	}
}

// hashingDB is a DB backend that keeps its own compaction hashes.
type hashingDB struct {
	server.Backend
	server.Lessor
}

func (hashingDB) CompactionHash(rev int64) (kv.KeyValueHash, bool) {
	return kv.KeyValueHash{Hash: 42, Rev: rev, CompactRev: rev}, rev == 3
}

// TestCompactionHasher: HashKV at a compaction's revision is the
// backend's own hash when it keeps them, else the one the server took.
func TestCompactionHasher(t *testing.T) {
	for _, own := range []bool{false, true} {
		t.Run(fmt.Sprint("backend keeps hashes: ", own), func(t *testing.T) {
			db, err := revkv.Open("", revkv.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var b server.Backend = server.DB(db)
			if own {
				b = hashingDB{Backend: b, Lessor: b.(server.Lessor)}
			}
			_, cli := serveBackend(t, b)
			ctx := context.Background()
			for range 4 {
				if _, err := cli.Put(ctx, "k", "v"); err != nil {
					t.Fatal(err)
				}
			}
			before, err := cli.HashKV(ctx, endpoint(cli), 3)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := cli.Compact(ctx, 3); err != nil {
				t.Fatal(err)
			}
			after, err := cli.HashKV(ctx, endpoint(cli), 3)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case own && after.Hash != 42:
				t.Fatalf("HashKV at the compaction: %d, want the backend's 42", after.Hash)
			case !own && after.Hash != before.Hash:
				t.Fatalf("HashKV at the compaction changed: %d, before %d", after.Hash, before.Hash)
			}
		})
	}
}
