package etcdtest

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// conn is an in-process grpc.ClientConnInterface: it calls the server's
// handlers directly, with no transport. Every message still goes through
// protobuf encoding both ways, so client and server share no memory and
// see exactly what they would over gRPC (empty bytes arrive as nil, and so
// on); only the transport (HTTP/2, flow control, message size limits) is
// skipped.
type conn struct {
	unary   map[string]unaryHandler
	streams map[string]streamHandler
	wg      sync.WaitGroup // stream handlers running
}

type unaryHandler struct {
	srv any
	h   grpc.MethodHandler
}

type streamHandler struct {
	srv  any
	desc grpc.StreamDesc
}

var _ grpc.ClientConnInterface = (*conn)(nil)

func newConn() *conn {
	return &conn{unary: map[string]unaryHandler{}, streams: map[string]streamHandler{}}
}

// RegisterService makes conn a grpc.ServiceRegistrar, so the server
// registers its services on it as on a grpc.Server.
func (c *conn) RegisterService(sd *grpc.ServiceDesc, srv any) {
	for _, m := range sd.Methods {
		c.unary["/"+sd.ServiceName+"/"+m.MethodName] = unaryHandler{srv, m.Handler}
	}
	for _, s := range sd.Streams {
		c.streams["/"+sd.ServiceName+"/"+s.StreamName] = streamHandler{srv, s}
	}
}

// copyInto copies a message through its encoding, as the wire does.
func copyInto(dst, src any) error {
	b, err := encode(src)
	if err != nil {
		return err
	}
	return decode(dst, b)
}

func encode(m any) ([]byte, error) {
	b, err := proto.Marshal(m.(proto.Message))
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return b, nil
}

func decode(dst any, b []byte) error {
	if err := proto.Unmarshal(b, dst.(proto.Message)); err != nil {
		return status.Error(codes.Internal, err.Error())
	}
	return nil
}

// wireError is the error a gRPC client would see for a handler's error.
func wireError(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return status.FromContextError(err).Err()
	}
	return status.Convert(err).Err()
}

func (c *conn) Invoke(ctx context.Context, method string, args, reply any, _ ...grpc.CallOption) error {
	u, ok := c.unary[method]
	if !ok {
		return status.Errorf(codes.Unimplemented, "unknown method %s", method)
	}
	if err := ctx.Err(); err != nil {
		return wireError(err)
	}
	resp, err := u.h(u.srv, serverContext(ctx), func(m any) error { return copyInto(m, args) }, nil)
	if err != nil {
		return wireError(err)
	}
	return copyInto(reply, resp)
}

// serverContext is the context a handler gets: the caller's, with its
// outgoing metadata as incoming metadata.
func serverContext(ctx context.Context) context.Context {
	if md, ok := metadata.FromOutgoingContext(ctx); ok {
		return metadata.NewIncomingContext(ctx, md)
	}
	return ctx
}

func (c *conn) NewStream(ctx context.Context, _ *grpc.StreamDesc, method string, _ ...grpc.CallOption) (grpc.ClientStream, error) {
	s, ok := c.streams[method]
	if !ok {
		return nil, status.Errorf(codes.Unimplemented, "unknown method %s", method)
	}
	sctx, cancel := context.WithCancel(serverContext(ctx))
	p := &pipe{
		ctx:    sctx,
		cancel: cancel,
		reqs:   make(chan []byte),
		resps:  make(chan []byte),
		done:   make(chan struct{}),
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		err := s.desc.Handler(s.srv, serverEnd{p})
		p.err = wireError(err)
		close(p.done)
		cancel()
	}()
	return clientEnd{p}, nil
}

// wait waits for every stream handler to return.
func (c *conn) wait() { c.wg.Wait() }

// pipe is one stream between the two ends: each message crosses encoded.
// reqs and resps are unbuffered, so a send waits for the other end to take
// it, as flow control makes a sender wait for a reader that does not read.
type pipe struct {
	ctx       context.Context // ends with the caller's, or with the handler
	cancel    context.CancelFunc
	reqs      chan []byte // closed by CloseSend
	closeOnce sync.Once
	resps     chan []byte
	done      chan struct{} // closed when the handler has returned; err is then set
	err       error
}

// clientEnd is the caller's end of a pipe.
type clientEnd struct{ p *pipe }

func (e clientEnd) SendMsg(m any) error {
	b, err := encode(m)
	if err != nil {
		return err
	}
	select {
	case e.p.reqs <- b:
		return nil
	case <-e.p.done:
		return io.EOF // as gRPC: the error is for RecvMsg to report
	case <-e.p.ctx.Done():
		return io.EOF
	}
}

func (e clientEnd) RecvMsg(m any) error {
	select {
	case b := <-e.p.resps:
		return decode(m, b)
	case <-e.p.done:
		if e.p.err == nil {
			return io.EOF
		}
		return e.p.err
	case <-e.p.ctx.Done():
		select {
		case <-e.p.done: // the handler returned: report how
			if e.p.err == nil {
				return io.EOF
			}
			return e.p.err
		default:
		}
		return wireError(e.p.ctx.Err())
	}
}

func (e clientEnd) CloseSend() error {
	e.p.closeOnce.Do(func() { close(e.p.reqs) })
	return nil
}

func (e clientEnd) Header() (metadata.MD, error) { return metadata.MD{}, nil }
func (e clientEnd) Trailer() metadata.MD         { return metadata.MD{} }
func (e clientEnd) Context() context.Context     { return e.p.ctx }

// serverEnd is the handler's end of a pipe.
type serverEnd struct{ p *pipe }

func (e serverEnd) SendMsg(m any) error {
	b, err := encode(m)
	if err != nil {
		return err
	}
	select {
	case e.p.resps <- b:
		return nil
	case <-e.p.ctx.Done():
		return wireError(e.p.ctx.Err())
	}
}

func (e serverEnd) RecvMsg(m any) error {
	select {
	case b, ok := <-e.p.reqs:
		if !ok {
			return io.EOF
		}
		return decode(m, b)
	case <-e.p.ctx.Done():
		return wireError(e.p.ctx.Err())
	}
}

func (e serverEnd) SetHeader(metadata.MD) error  { return nil }
func (e serverEnd) SendHeader(metadata.MD) error { return nil }
func (e serverEnd) SetTrailer(metadata.MD)       {}
func (e serverEnd) Context() context.Context     { return e.p.ctx }

// StartInProcess starts a Fake whose clients (InProcessClient) call the
// server directly, with no connection: the cheapest fake, for tests that
// make many clients or many requests. Requests and responses still go
// through protobuf encoding, so what client and server see is what they
// would over gRPC; what it skips is the transport (no HTTP/2, no gRPC
// message size limit, no flow control but a stream's own). Client
// returns the same kind of client; as clientv3 closes a client that has no
// connection, its Close returns context.Canceled.
func StartInProcess(tb testing.TB, cfg Config) *Fake {
	tb.Helper()
	f := newFake(tb, cfg)
	f.inproc = newConn()
	f.Server.Register(f.inproc)
	tb.Cleanup(f.Close)
	return f
}

// inProcess maps each in-process client to its conn, for Conn.
var inProcess sync.Map

// Conn returns the connection a client of a fake talks over, for raw
// etcdserverpb clients (pb.NewKVClient(etcdtest.Conn(cli)), and so on):
// the client's ActiveConnection, or for an in-process client the fake's
// in-process connection. It is nil for any other client.
func Conn(cli *clientv3.Client) grpc.ClientConnInterface {
	if c := cli.ActiveConnection(); c != nil {
		return c
	}
	if c, ok := inProcess.Load(cli); ok {
		return c.(*conn)
	}
	return nil
}

// inProcessClient returns a client whose every service is on conn.
func inProcessClient(ctx context.Context, c *conn) *clientv3.Client {
	cli := clientv3.NewCtxClient(ctx, clientv3.WithZapLogger(zap.NewNop()))
	inProcess.Store(cli, c)
	cli.KV = clientv3.NewKVFromKVClient(pb.NewKVClient(c), cli)
	cli.Watcher = clientv3.NewWatchFromWatchClient(pb.NewWatchClient(c), cli)
	cli.Lease = clientv3.NewLeaseFromLeaseClient(pb.NewLeaseClient(c), cli, time.Second)
	cli.Cluster = clientv3.NewClusterFromClusterClient(pb.NewClusterClient(c), cli)
	cli.Maintenance = clientv3.NewMaintenanceFromMaintenanceClient(pb.NewMaintenanceClient(c), cli)
	cli.Auth = clientv3.NewAuthFromAuthClient(pb.NewAuthClient(c), cli)
	return cli
}
