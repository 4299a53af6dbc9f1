package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/revkv/revkv/etcd/member"
	"github.com/revkv/revkv/kv"
)

// Transport errors.
var (
	// ErrUnreachable: a forwarded call could not reach the peer (unknown,
	// blocked, down, or the call's context ended first).
	ErrUnreachable = errors.New("cluster: peer unreachable")
	// ErrRemote: the peer answered a forwarded call with an error that has
	// no sentinel here; its text is in the wrapping error.
	ErrRemote = errors.New("cluster: peer failed the call")
	// ErrTransportClosed: the transport was closed.
	ErrTransportClosed = errors.New("cluster: transport closed")
)

// Handler receives what peers send to a Transport. Its methods are called
// from the transport's goroutines, concurrently.
type Handler interface {
	// Step takes a raft message from a peer. It may block (the peer's
	// stream waits: back-pressure) but must return once ctx is done.
	Step(ctx context.Context, m *raftpb.Message) error
	// LeaseKeepAlive and LeaseTimeToLive answer a follower that forwards
	// the calls to this member as the leader (see Transport.KeepAlive).
	LeaseKeepAlive(ctx context.Context, id int64) (ttl int64, err error)
	LeaseTimeToLive(ctx context.Context, id int64, keys bool) (ttl, granted int64, attached [][]byte, err error)
	// MemberPromote promotes a learner for a follower that forwards the
	// call (only the leader knows whether the learner has caught up).
	MemberPromote(ctx context.Context, id uint64) error
	// ReportUnreachable: a message to peer could not be sent.
	ReportUnreachable(peer uint64)
	// ReportSnapshot: a snapshot message to peer was sent (ok) or lost;
	// raft waits for this before it sends the peer anything else.
	ReportSnapshot(peer uint64, ok bool)
	// IsRemoved reports whether peer was removed from the cluster: its
	// streams are refused, which tells it (ReportRemoved on its side).
	IsRemoved(peer uint64) bool
	// ReportRemoved: peer by refused this member's messages because it
	// was removed from the cluster.
	ReportRemoved(by uint64)
}

// TransportConfig configures a Transport.
type TransportConfig struct {
	// ID is this member's raft ID, sent with every call.
	ID uint64
	// Name and ClientURLs are this member's, told to every peer when a
	// stream opens (PeerAttributes): the member table records only what a
	// member was bootstrapped or added with.
	Name       string
	ClientURLs []string
	// Handler receives incoming messages and calls.
	Handler Handler
	// QueueSize bounds the messages waiting for each peer; a message past
	// it is dropped (raft resends). 0 means 4096.
	QueueSize int
	// MaxMessageBytes bounds one message (a snapshot is one); 0 means
	// 512 MiB.
	MaxMessageBytes int
	// Logger receives the transport's records; nil discards them.
	Logger *slog.Logger
}

// Transport carries raft messages between members over gRPC: one client
// stream to each peer (reopened when it breaks), and a server for the
// peers' streams and forwarded lease calls. Its methods are safe for
// concurrent use. Send never blocks: each peer has a queue and one
// goroutine that writes it to the peer's stream, in order.
type Transport struct {
	id      uint64
	h       Handler
	log     *slog.Logger
	qsize   int
	maxMsg  int
	g       *grpc.Server
	serveWG sync.WaitGroup

	// blockedIn counts incoming messages dropped by Block (for tests).
	blockedIn atomic.Int64

	// md is the metadata every call to a peer carries.
	md metadata.MD

	mu      sync.Mutex // guards the fields below
	peers   map[uint64]*peer
	blocked map[uint64]bool
	attrs   map[uint64]Attributes
	closed  bool
}

// Attributes are what a peer told of itself when it opened its stream.
type Attributes struct {
	Name       string
	ClientURLs []string
}

// NewTransport returns a transport that serves nothing yet: call Serve
// with the peer listener, and AddPeer for each peer.
func NewTransport(cfg TransportConfig) *Transport {
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 4096
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = 512 << 20
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &Transport{
		id:      cfg.ID,
		h:       cfg.Handler,
		log:     log,
		qsize:   cfg.QueueSize,
		maxMsg:  cfg.MaxMessageBytes,
		peers:   map[uint64]*peer{},
		blocked: map[uint64]bool{},
		attrs:   map[uint64]Attributes{},
		md:      metadata.Pairs(fromKey, strconv.FormatUint(cfg.ID, 16), nameKey, cfg.Name),
	}
	for _, u := range cfg.ClientURLs {
		t.md.Append(clientURLsKey, u)
	}
	// WaitForHandlers: Stop returns only once every handler has, so no
	// goroutine of ours outlives Close.
	t.g = grpc.NewServer(grpc.MaxRecvMsgSize(t.maxMsg), grpc.MaxSendMsgSize(t.maxMsg), grpc.WaitForHandlers(true))
	t.g.RegisterService(&serviceDesc, t)
	return t
}

// Serve serves the peers' calls on lis, in a goroutine, until Close.
func (t *Transport) Serve(lis net.Listener) {
	t.serveWG.Go(func() {
		if err := t.g.Serve(lis); err != nil {
			t.log.Warn("peer server ended", "err", err)
		}
	})
}

// AddPeer starts sending to peer id at the first of its URLs
// ("http://host:port" or "host:port"), replacing an earlier address.
func (t *Transport) AddPeer(id uint64, urls []string) error {
	if len(urls) == 0 {
		return fmt.Errorf("cluster: peer %x has no URL", id)
	}
	addr, err := hostPort(urls[0])
	if err != nil {
		return err
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return ErrTransportClosed
	}
	old := t.peers[id]
	if old != nil && old.addr == addr {
		t.mu.Unlock()
		return nil
	}
	p, err := t.newPeer(id, addr)
	if err == nil {
		t.peers[id] = p
	}
	t.mu.Unlock()
	// Stopped outside mu: its goroutine takes mu (isBlocked) until it ends.
	if old != nil && err == nil {
		old.stop()
	}
	return err
}

// RemovePeer stops sending to peer id; its queued messages are dropped.
func (t *Transport) RemovePeer(id uint64) {
	t.mu.Lock()
	p := t.peers[id]
	delete(t.peers, id)
	t.mu.Unlock()
	if p != nil {
		p.stop()
	}
}

// hostPort returns the dial address of a peer URL.
func hostPort(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err == nil && u.Host != "" {
		return u.Host, nil
	}
	if _, _, err := net.SplitHostPort(raw); err == nil {
		return raw, nil
	}
	return "", fmt.Errorf("cluster: bad peer URL %q", raw)
}

// ActiveSince returns when this member's current stream to peer id was
// opened, or the zero time if it has none (or the peer is blocked): etcd's
// measure of a healthy connection, for the reconfiguration checks.
func (t *Transport) ActiveSince(id uint64) time.Time {
	t.mu.Lock()
	p, blocked := t.peers[id], t.blocked[id]
	t.mu.Unlock()
	if p == nil || blocked {
		return time.Time{}
	}
	if ns := p.since.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// Block drops every message to and from peer id, and its forwarded
// calls, until Unblock: a network partition, for tests.
func (t *Transport) Block(id uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.blocked[id] = true
}

// Unblock ends Block.
func (t *Transport) Unblock(id uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.blocked, id)
}

func (t *Transport) isBlocked(id uint64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.blocked[id]
}

// Send queues messages for their peers (m.To) and returns at once. A
// message to an unknown or blocked peer, or past a full queue, is dropped
// and reported to the Handler (unreachable, or a lost snapshot).
func (t *Transport) Send(msgs []*raftpb.Message) {
	for _, m := range msgs {
		t.send(m)
	}
}

func (t *Transport) send(m *raftpb.Message) {
	to := m.GetTo()
	snap := m.GetType() == raftpb.MsgSnap
	t.mu.Lock()
	p, blocked := t.peers[to], t.blocked[to]
	t.mu.Unlock()
	if p == nil || blocked || !p.enqueue(m, snap) {
		t.dropped(to, snap)
	}
}

// dropped reports a message that was not sent.
func (t *Transport) dropped(to uint64, snap bool) {
	t.h.ReportUnreachable(to)
	if snap {
		t.h.ReportSnapshot(to, false)
	}
}

// Close stops every peer stream and the server, and waits for all of the
// transport's goroutines and handlers.
func (t *Transport) Close() {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	t.closed = true
	peers := t.peers
	t.peers = map[uint64]*peer{}
	t.mu.Unlock()
	for _, p := range peers {
		p.stop()
	}
	t.g.Stop()
	t.serveWG.Wait()
}

// peer is the sending side to one peer: a queue and the goroutine that
// drains it into a stream.
type peer struct {
	t    *Transport
	id   uint64
	addr string
	// since is when the open stream to the peer was opened (UnixNano), 0
	// while there is none.
	since  atomic.Int64
	conn   *grpc.ClientConn
	queue  chan outMsg
	cancel context.CancelFunc
	done   chan struct{}
}

type outMsg struct {
	data []byte
	snap bool
}

// reconnect bounds how long a broken connection waits to be redialled:
// a restarted member is reached within it.
var reconnect = backoff.Config{BaseDelay: 20 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 500 * time.Millisecond}

func (t *Transport) newPeer(id uint64, addr string) (*peer, error) {
	conn, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: reconnect, MinConnectTimeout: time.Second}),
		grpc.WithDefaultCallOptions(grpc.CallContentSubtype(rawSubtype), grpc.MaxCallRecvMsgSize(t.maxMsg), grpc.MaxCallSendMsgSize(t.maxMsg)),
	)
	if err != nil {
		return nil, fmt.Errorf("cluster: peer %x at %s: %w", id, addr, err)
	}
	ctx, cancel := context.WithCancel(metadata.NewOutgoingContext(context.Background(), t.md))
	p := &peer{t: t, id: id, addr: addr, conn: conn, queue: make(chan outMsg, t.qsize), cancel: cancel, done: make(chan struct{})}
	go p.run(ctx)
	return p, nil
}

// enqueue marshals m onto the queue; false if the queue is full.
func (p *peer) enqueue(m *raftpb.Message, snap bool) bool {
	data, err := proto.Marshal(m)
	if err != nil {
		p.t.log.Error("marshal raft message", "to", p.id, "err", err)
		return false
	}
	select {
	case p.queue <- outMsg{data, snap}:
		return true
	default:
		return false
	}
}

// stop ends the peer's goroutine and connection, and waits for them.
func (p *peer) stop() {
	p.cancel()
	<-p.done
	p.conn.Close()
}

// run sends the queue down a stream, opening a new one whenever the last
// broke. A message whose send fails is dropped (raft resends what
// matters); a lost snapshot is reported. The stream is opened before any
// message needs it, and reopened while idle, so that the peer learns
// this member's attributes even if raft has nothing to tell it
// (followers do not talk to each other).
func (p *peer) run(ctx context.Context) {
	defer close(p.done)
	var s *outStream
	defer func() { s.close() }()
	retry := time.NewTicker(reopenInterval)
	defer retry.Stop()
	for {
		if s == nil && !p.t.isBlocked(p.id) {
			var err error
			if s, err = p.open(ctx); err != nil {
				p.t.log.Debug("open raft stream", "peer", p.id, "err", err)
				p.drain() // what waited for the peer is stale now
			} else {
				p.since.Store(time.Now().UnixNano())
			}
		}
		var m outMsg
		select {
		case <-ctx.Done():
			return
		case <-retry.C:
			continue
		case m = <-p.queue:
		}
		if s == nil || p.t.isBlocked(p.id) {
			p.t.dropped(p.id, m.snap)
			continue
		}
		if err := s.SendMsg(&m.data); err != nil {
			p.t.log.Debug("send raft message", "peer", p.id, "err", err)
			if errors.Is(err, io.EOF) && isRemovedStatus(s.RecvMsg(new([]byte))) {
				p.t.h.ReportRemoved(p.id)
			}
			p.since.Store(0)
			s.close()
			s = nil
			p.t.dropped(p.id, m.snap)
			continue
		}
		if m.snap {
			p.t.h.ReportSnapshot(p.id, true)
		}
	}
}

// drain drops every message queued, as unreachable.
func (p *peer) drain() {
	for {
		select {
		case m := <-p.queue:
			p.t.dropped(p.id, m.snap)
		default:
			return
		}
	}
}

// reopenInterval is how often an idle peer without a stream tries to
// open one.
const reopenInterval = 200 * time.Millisecond

// outStream is one client stream and the context that ends it.
type outStream struct {
	grpc.ClientStream
	cancel context.CancelFunc
}

func (s *outStream) close() {
	if s != nil {
		s.cancel()
	}
}

// open opens a stream to the peer; it waits for the connection at most
// about one election, so that a dead peer costs one dropped message per
// attempt rather than a stuck queue.
func (p *peer) open(ctx context.Context) (*outStream, error) {
	sctx, cancel := context.WithCancel(ctx)
	dctx, dcancel := context.WithTimeout(sctx, time.Second)
	defer dcancel()
	p.conn.Connect()
	for st := p.conn.GetState(); st != connectivity.Ready; st = p.conn.GetState() {
		if !p.conn.WaitForStateChange(dctx, st) {
			cancel()
			return nil, fmt.Errorf("%w: %s", ErrUnreachable, st)
		}
	}
	cs, err := p.conn.NewStream(sctx, &raftStreamDesc, methodRaft)
	if err != nil {
		cancel()
		return nil, err
	}
	return &outStream{cs, cancel}, nil
}

// raftStream is the server side of a peer's stream: it steps every
// message the peer sends until the stream ends.
func (t *Transport) raftStream(stream grpc.ServerStream) error {
	ctx := stream.Context()
	t.learnAttributes(ctx)
	if from := callerID(ctx); from != 0 && t.h.IsRemoved(from) {
		return errRemovedStatus
	}
	for {
		var b []byte
		if err := stream.RecvMsg(&b); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		m := &raftpb.Message{}
		if err := proto.Unmarshal(b, m); err != nil {
			t.log.Warn("bad raft message from a peer", "err", err)
			return status.Error(codes.InvalidArgument, "cluster: bad raft message")
		}
		if m.GetTo() != t.id {
			continue
		}
		if t.isBlocked(m.GetFrom()) {
			t.blockedIn.Add(1)
			continue
		}
		if t.h.IsRemoved(m.GetFrom()) {
			return errRemovedStatus
		}
		if err := t.h.Step(ctx, m); err != nil {
			return status.FromContextError(err).Err()
		}
	}
}

// learnAttributes records the attributes a peer's stream carries.
func (t *Transport) learnAttributes(ctx context.Context) {
	md, _ := metadata.FromIncomingContext(ctx)
	id := callerID(ctx)
	if id == 0 {
		return
	}
	a := Attributes{ClientURLs: md.Get(clientURLsKey)}
	if v := md.Get(nameKey); len(v) == 1 {
		a.Name = v[0]
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.attrs[id] = a
}

// PeerAttributes returns what peer id told of itself, if it opened a
// stream to this member.
func (t *Transport) PeerAttributes(id uint64) (Attributes, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	a, ok := t.attrs[id]
	return a, ok
}

// errRemovedStatus ends the stream of a member removed from the cluster.
var errRemovedStatus = status.Error(codes.PermissionDenied, "revkv: member removed from the cluster")

func isRemovedStatus(err error) bool {
	st, _ := status.FromError(err)
	return st.Code() == codes.PermissionDenied && st.Message() == "revkv: member removed from the cluster"
}

// callerID returns the member ID a call carries, 0 if none.
func callerID(ctx context.Context) uint64 {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(fromKey); len(v) == 1 {
		id, _ := strconv.ParseUint(v[0], 16, 64)
		return id
	}
	return 0
}

// unary serves a forwarded lease call.
func (t *Transport) unary(ctx context.Context, method string, req []byte) ([]byte, error) {
	if t.isBlocked(callerID(ctx)) {
		return nil, status.Error(codes.Unavailable, "cluster: blocked")
	}
	switch method {
	case methodKeepAlive:
		var r pb.LeaseKeepAliveRequest
		if err := proto.Unmarshal(req, &r); err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		ttl, err := t.h.LeaseKeepAlive(ctx, r.ID)
		if err != nil {
			return nil, remoteError(err)
		}
		return proto.Marshal(&pb.LeaseKeepAliveResponse{ID: r.ID, TTL: ttl})
	case methodTTL:
		var r pb.LeaseTimeToLiveRequest
		if err := proto.Unmarshal(req, &r); err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		ttl, granted, keys, err := t.h.LeaseTimeToLive(ctx, r.ID, r.Keys)
		if err != nil {
			return nil, remoteError(err)
		}
		return proto.Marshal(&pb.LeaseTimeToLiveResponse{ID: r.ID, TTL: ttl, GrantedTTL: granted, Keys: keys})
	case methodPromote:
		var r pb.MemberPromoteRequest
		if err := proto.Unmarshal(req, &r); err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		if err := t.h.MemberPromote(ctx, r.ID); err != nil {
			return nil, remoteError(err)
		}
		return proto.Marshal(&pb.MemberPromoteResponse{})
	}
	return nil, status.Error(codes.Unimplemented, method)
}

// sentinels are the errors a forwarded call's answer keeps: the caller
// gets them back, errors.Is-testable.
var sentinels = []error{
	kv.ErrLeaseNotFound,
	member.ErrNotLeader, member.ErrNoLeader, member.ErrLeaderChanged, member.ErrTimeout,
	member.ErrStopped, member.ErrProposalDropped,
	member.ErrMemberNotFound, member.ErrMemberExists, member.ErrIDRemoved,
	member.ErrNotLearner, member.ErrLearnerNotReady,
}

// remoteError encodes a Handler's error for the caller: one of sentinels
// as its text (localError turns it back into the sentinel), a context
// error as gRPC's, and the rest as text.
func remoteError(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return status.FromContextError(err).Err()
	}
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return status.Error(codes.FailedPrecondition, s.Error())
		}
	}
	return status.Error(codes.Unknown, err.Error())
}

// localError decodes a forwarded call's error.
func localError(to uint64, err error) error {
	st, _ := status.FromError(err)
	switch st.Code() {
	case codes.FailedPrecondition:
		for _, s := range sentinels {
			if st.Message() == s.Error() {
				return fmt.Errorf("peer %x: %w", to, s)
			}
		}
		fallthrough
	case codes.Unknown:
		return fmt.Errorf("%w: peer %x: %s", ErrRemote, to, st.Message())
	}
	return fmt.Errorf("%w: %x: %s", ErrUnreachable, to, st.Message())
}

// invoke makes a forwarded call to peer to.
func (t *Transport) invoke(ctx context.Context, to uint64, method string, req, resp proto.Message) error {
	t.mu.Lock()
	p, blocked := t.peers[to], t.blocked[to]
	t.mu.Unlock()
	if p == nil || blocked {
		return fmt.Errorf("%w: %x", ErrUnreachable, to)
	}
	in, err := proto.Marshal(req)
	if err != nil {
		return err
	}
	ctx = metadata.NewOutgoingContext(ctx, t.md)
	var out []byte
	if err := p.conn.Invoke(ctx, method, &in, &out); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return localError(to, err)
	}
	if err := proto.Unmarshal(out, resp); err != nil {
		return fmt.Errorf("%w: peer %x: bad answer: %v", ErrRemote, to, err)
	}
	return nil
}

// KeepAlive forwards a lease keep-alive to peer to (the leader) and
// returns the TTL it renewed the lease to. Errors: kv.ErrLeaseNotFound,
// ErrUnreachable, ErrRemote (the leader's own error, such as not being
// the leader any more), or ctx's error.
func (t *Transport) KeepAlive(ctx context.Context, to uint64, id int64) (int64, error) {
	var resp pb.LeaseKeepAliveResponse
	if err := t.invoke(ctx, to, methodKeepAlive, &pb.LeaseKeepAliveRequest{ID: id}, &resp); err != nil {
		return 0, err
	}
	return resp.TTL, nil
}

// TimeToLive forwards a lease TimeToLive to peer to, as KeepAlive.
func (t *Transport) TimeToLive(ctx context.Context, to uint64, id int64, keys bool) (ttl, granted int64, attached [][]byte, err error) {
	var resp pb.LeaseTimeToLiveResponse
	if err := t.invoke(ctx, to, methodTTL, &pb.LeaseTimeToLiveRequest{ID: id, Keys: keys}, &resp); err != nil {
		return 0, 0, nil, err
	}
	return resp.TTL, resp.GrantedTTL, resp.Keys, nil
}

// MemberPromote forwards a learner's promotion to peer to (the leader),
// and returns once the leader has applied it. Errors: the member package's
// (ErrNotLearner, ErrLearnerNotReady, ErrMemberNotFound, ErrNotLeader...),
// ErrUnreachable, ErrRemote, or ctx's.
func (t *Transport) MemberPromote(ctx context.Context, to, id uint64) error {
	return t.invoke(ctx, to, methodPromote, &pb.MemberPromoteRequest{ID: id}, &pb.MemberPromoteResponse{})
}
