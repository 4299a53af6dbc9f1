package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/revkv/revkv/etcd/member"
	"github.com/revkv/revkv/kv"
)

// recorder is a Handler that records what it is given.
type recorder struct {
	mu          sync.Mutex
	msgs        []*raftpb.Message
	unreachable map[uint64]int
	snaps       map[bool]int
	removedBy   []uint64
	arrived     chan struct{} // a token per message, if not full
}

func newRecorder() *recorder {
	return &recorder{unreachable: map[uint64]int{}, snaps: map[bool]int{}, arrived: make(chan struct{}, 1<<16)}
}

func (r *recorder) Step(ctx context.Context, m *raftpb.Message) error {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
	select {
	case r.arrived <- struct{}{}:
	default:
	}
	return nil
}

func (r *recorder) LeaseKeepAlive(ctx context.Context, id int64) (int64, error) {
	if id == 404 {
		return 0, fmt.Errorf("handler: %w", kv.ErrLeaseNotFound)
	}
	if id == 500 {
		return 0, errors.New("not the leader")
	}
	return id * 10, nil
}

func (r *recorder) LeaseTimeToLive(ctx context.Context, id int64, keys bool) (int64, int64, [][]byte, error) {
	if id == 404 {
		return 0, 0, nil, kv.ErrLeaseNotFound
	}
	var ks [][]byte
	if keys {
		ks = [][]byte{[]byte("a"), []byte("b")}
	}
	return id, id * 2, ks, nil
}

func (r *recorder) MemberPromote(ctx context.Context, id uint64) error {
	if id == 404 {
		return fmt.Errorf("promote: %w", member.ErrLearnerNotReady)
	}
	return nil
}

func (r *recorder) IsRemoved(peer uint64) bool { return peer == 66 }

func (r *recorder) ReportRemoved(by uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.removedBy = append(r.removedBy, by)
}

func (r *recorder) ReportUnreachable(peer uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.unreachable[peer]++
}

func (r *recorder) ReportSnapshot(peer uint64, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.snaps[ok]++
}

func (r *recorder) received() []*raftpb.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*raftpb.Message(nil), r.msgs...)
}

// waitFor waits until cond holds, for up to 30 s (the machine may be
// very busy).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// node is one transport of a test, with its recorder and address.
type tnode struct {
	id   uint64
	tr   *Transport
	rec  *recorder
	addr string
}

func startTransport(t *testing.T, id uint64, addr string) *tnode {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var lis net.Listener
	var err error
	// A restarted member's port may take a moment to be free again.
	for range 50 {
		if lis, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	tr := NewTransport(TransportConfig{ID: id, Handler: rec})
	tr.Serve(lis)
	t.Cleanup(tr.Close)
	return &tnode{id: id, tr: tr, rec: rec, addr: lis.Addr().String()}
}

// connect makes every transport a peer of every other.
func connect(t *testing.T, ns ...*tnode) {
	t.Helper()
	for _, a := range ns {
		for _, b := range ns {
			if a != b {
				if err := a.tr.AddPeer(b.id, []string{"http://" + b.addr}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

func msg(from, to, index uint64) *raftpb.Message {
	return &raftpb.Message{Type: raftpb.MsgApp.Enum(), From: &from, To: &to, Index: &index,
		Entries: []*raftpb.Entry{{Data: []byte(fmt.Sprint("entry ", index))}}}
}

func indexes(ms []*raftpb.Message, from uint64) []uint64 {
	var out []uint64
	for _, m := range ms {
		if m.GetFrom() == from {
			out = append(out, m.GetIndex())
		}
	}
	return out
}

// TestTransportDeliversInOrder: messages arrive whole, to their peer, in
// the order each sender sent them.
func TestTransportDeliversInOrder(t *testing.T) {
	a, b, c := startTransport(t, 1, ""), startTransport(t, 2, ""), startTransport(t, 3, "")
	connect(t, a, b, c)
	const n = 500
	for i := uint64(1); i <= n; i++ {
		a.tr.Send([]*raftpb.Message{msg(1, 2, i), msg(1, 3, i)})
		c.tr.Send([]*raftpb.Message{msg(3, 2, i)})
	}
	waitFor(t, "all messages", func() bool { return len(b.rec.received()) == 2*n && len(c.rec.received()) == n })
	for _, from := range []uint64{1, 3} {
		got := indexes(b.rec.received(), from)
		for i, idx := range got {
			if idx != uint64(i+1) {
				t.Fatalf("from %d: message %d has index %d", from, i, idx)
			}
		}
	}
	want := msg(1, 3, 7)
	if got := c.rec.received()[6]; !proto.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// TestTransportBlock: a blocked peer gets nothing and its messages are
// dropped, in both directions; Unblock heals the partition.
func TestTransportBlock(t *testing.T) {
	a, b := startTransport(t, 1, ""), startTransport(t, 2, "")
	connect(t, a, b)
	a.tr.Send([]*raftpb.Message{msg(1, 2, 1)})
	waitFor(t, "first message", func() bool { return len(b.rec.received()) == 1 })

	a.tr.Block(2)
	b.tr.Send([]*raftpb.Message{msg(2, 1, 1)}) // dropped on the way in
	waitFor(t, "the incoming message to be dropped", func() bool { return a.tr.blockedIn.Load() == 1 })
	a.tr.Send([]*raftpb.Message{msg(1, 2, 2)}) // dropped on the way out
	if _, err := a.tr.KeepAlive(context.Background(), 2, 1); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("keep-alive to a blocked peer: %v", err)
	}
	if _, err := b.tr.KeepAlive(context.Background(), 1, 1); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("keep-alive from a blocked peer: %v", err)
	}
	a.tr.Unblock(2)
	a.tr.Send([]*raftpb.Message{msg(1, 2, 3)})
	b.tr.Send([]*raftpb.Message{msg(2, 1, 2)})
	waitFor(t, "messages after unblock", func() bool { return len(b.rec.received()) == 2 && len(a.rec.received()) == 1 })
	if got := indexes(b.rec.received(), 1); got[1] != 3 {
		t.Fatalf("b got %v, want [1 3]", got)
	}
	if got := indexes(a.rec.received(), 2); got[0] != 2 {
		t.Fatalf("a got %v, want [2]", got)
	}
	a.rec.mu.Lock()
	defer a.rec.mu.Unlock()
	if a.rec.unreachable[2] == 0 {
		t.Fatal("the message dropped by Block was not reported")
	}
}

// TestTransportReconnects: a peer that stops and comes back on the same
// address gets messages again, on a new stream.
func TestTransportReconnects(t *testing.T) {
	a, b := startTransport(t, 1, ""), startTransport(t, 2, "")
	connect(t, a, b)
	a.tr.Send([]*raftpb.Message{msg(1, 2, 1)})
	waitFor(t, "first message", func() bool { return len(b.rec.received()) == 1 })
	b.tr.Close()

	b2 := startTransport(t, 2, b.addr)
	i := uint64(2)
	// Messages sent while the stream is being reopened may be lost, as
	// raft tolerates; keep sending until they arrive.
	waitFor(t, "messages after the restart", func() bool {
		a.tr.Send([]*raftpb.Message{msg(1, 2, i)})
		i++
		return len(b2.rec.received()) > 0
	})
	got := indexes(b2.rec.received(), 1)
	for j := 1; j < len(got); j++ {
		if got[j] <= got[j-1] {
			t.Fatalf("out of order after reconnect: %v", got)
		}
	}
}

// TestTransportSnapshotReports: a snapshot message sent is reported as
// sent; one to an unknown peer as lost.
func TestTransportSnapshotReports(t *testing.T) {
	a, b := startTransport(t, 1, ""), startTransport(t, 2, "")
	connect(t, a, b)
	from, to, lost := uint64(1), uint64(2), uint64(9)
	snap := &raftpb.Message{Type: raftpb.MsgSnap.Enum(), From: &from, To: &to,
		Snapshot: &raftpb.Snapshot{Data: make([]byte, 3<<20)}}
	a.tr.Send([]*raftpb.Message{snap, {Type: raftpb.MsgSnap.Enum(), From: &from, To: &lost}})
	waitFor(t, "snapshot", func() bool { return len(b.rec.received()) == 1 })
	waitFor(t, "reports", func() bool {
		a.rec.mu.Lock()
		defer a.rec.mu.Unlock()
		return a.rec.snaps[true] == 1 && a.rec.snaps[false] == 1 && a.rec.unreachable[lost] == 1
	})
	if got := len(b.rec.received()[0].GetSnapshot().GetData()); got != 3<<20 {
		t.Fatalf("snapshot data %d bytes", got)
	}
}

// TestTransportForwardsLeaseCalls: keep-alive and TimeToLive reach the
// peer's Handler, and its errors come back testable.
func TestTransportForwardsLeaseCalls(t *testing.T) {
	a, b := startTransport(t, 1, ""), startTransport(t, 2, "")
	connect(t, a, b)
	ctx := context.Background()
	if ttl, err := a.tr.KeepAlive(ctx, 2, 7); err != nil || ttl != 70 {
		t.Fatalf("KeepAlive = %d, %v", ttl, err)
	}
	if _, err := a.tr.KeepAlive(ctx, 2, 404); !errors.Is(err, kv.ErrLeaseNotFound) {
		t.Fatalf("KeepAlive of a missing lease: %v", err)
	}
	if _, err := a.tr.KeepAlive(ctx, 2, 500); !errors.Is(err, ErrRemote) {
		t.Fatalf("KeepAlive failed by the peer: %v", err)
	}
	ttl, granted, keys, err := a.tr.TimeToLive(ctx, 2, 3, true)
	if err != nil || ttl != 3 || granted != 6 || len(keys) != 2 || string(keys[1]) != "b" {
		t.Fatalf("TimeToLive = %d %d %q %v", ttl, granted, keys, err)
	}
	if _, _, _, err := a.tr.TimeToLive(ctx, 2, 404, false); !errors.Is(err, kv.ErrLeaseNotFound) {
		t.Fatalf("TimeToLive of a missing lease: %v", err)
	}
	if err := a.tr.MemberPromote(ctx, 2, 3); err != nil {
		t.Fatalf("MemberPromote: %v", err)
	}
	if err := a.tr.MemberPromote(ctx, 2, 404); !errors.Is(err, member.ErrLearnerNotReady) {
		t.Fatalf("MemberPromote of a learner not ready: %v", err)
	}
	if _, err := a.tr.KeepAlive(ctx, 5, 1); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("KeepAlive to an unknown peer: %v", err)
	}
	b.tr.Close()
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := a.tr.KeepAlive(cctx, 2, 1); err == nil {
		t.Fatal("KeepAlive to a closed peer succeeded")
	}
}

// TestTransportCloseLeavesNoGoroutine: Close stops every stream, peer
// goroutine and server goroutine, with streams open in both directions.
func TestTransportCloseLeavesNoGoroutine(t *testing.T) {
	run := func(t *testing.T) {
		a, b, c := startTransport(t, 1, ""), startTransport(t, 2, ""), startTransport(t, 3, "")
		connect(t, a, b, c)
		for i := uint64(1); i <= 10; i++ {
			a.tr.Send([]*raftpb.Message{msg(1, 2, i), msg(1, 3, i)})
			b.tr.Send([]*raftpb.Message{msg(2, 1, i)})
		}
		waitFor(t, "messages", func() bool { return len(b.rec.received()) == 10 && len(a.rec.received()) == 10 })
		a.tr.RemovePeer(3)
		a.tr.KeepAlive(context.Background(), 2, 1)
		a.tr.Close()
		b.tr.Close()
		c.tr.Close()
	}
	t.Run("warm", run) // gRPC starts goroutines it keeps for the process
	before := runtime.NumGoroutine()
	for i := range 3 {
		t.Run(fmt.Sprint(i), run)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("%d goroutines before, %d after:\n%s", before, runtime.NumGoroutine(), buf[:n])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestTransportRefusesRemovedMember: a member the Handler says was removed
// has its stream refused, and learns it (ReportRemoved).
func TestTransportRefusesRemovedMember(t *testing.T) {
	a, gone := startTransport(t, 1, ""), startTransport(t, 66, "")
	connect(t, a, gone)
	waitFor(t, "the removed member to learn it", func() bool {
		gone.tr.Send([]*raftpb.Message{msg(66, 1, 1)})
		gone.rec.mu.Lock()
		defer gone.rec.mu.Unlock()
		return len(gone.rec.removedBy) > 0 && gone.rec.removedBy[0] == 1
	})
	if n := len(a.rec.received()); n != 0 {
		t.Fatalf("%d messages from a removed member were stepped", n)
	}
}

// TestTransportPeerMoves: a peer given a new address (MemberUpdate) gets
// messages there, while messages flow.
func TestTransportPeerMoves(t *testing.T) {
	a, b := startTransport(t, 1, ""), startTransport(t, 2, "")
	connect(t, a, b)
	b2 := startTransport(t, 2, "")
	stop := make(chan struct{})
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for i := uint64(1); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			a.tr.Send([]*raftpb.Message{msg(1, 2, i)})
			time.Sleep(time.Millisecond)
		}
	}()
	waitFor(t, "messages at the old address", func() bool { return len(b.rec.received()) > 0 })
	if err := a.tr.AddPeer(2, []string{"http://" + b2.addr}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "messages at the new address", func() bool { return len(b2.rec.received()) > 0 })
	close(stop)
	<-sent
}

// TestTransportSendNeverBlocks: messages to a peer that is down are
// dropped (and reported) without Send ever waiting.
func TestTransportSendNeverBlocks(t *testing.T) {
	a := startTransport(t, 1, "")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := l.Addr().String()
	l.Close()
	if err := a.tr.AddPeer(2, []string{"http://" + down}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	const n = 20000 // more than the queue holds
	for i := uint64(1); i <= n; i++ {
		a.tr.Send([]*raftpb.Message{msg(1, 2, i)})
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("sending %d messages to a peer that is down took %v", n, d)
	}
	waitFor(t, "the drops to be reported", func() bool {
		a.rec.mu.Lock()
		defer a.rec.mu.Unlock()
		return a.rec.unreachable[2] >= n-a.tr.qsize
	})
}
