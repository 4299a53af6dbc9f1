package cluster

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
)

// The peer service, written by hand: members exchange raft messages, each
// one raftpb.Message encoded by proto.Marshal and carried as one gRPC
// message by rawCodec, so no generated code or .proto file is needed.
//
//	/revkv.cluster.Peer/Raft         client stream of raft messages; the
//	                                 server answers nothing and reads until
//	                                 the stream ends
//	/revkv.cluster.Peer/LeaseKeepAlive   unary: etcdserverpb.LeaseKeepAliveRequest
//	                                     -> LeaseKeepAliveResponse
//	/revkv.cluster.Peer/LeaseTimeToLive  unary: etcdserverpb.LeaseTimeToLiveRequest
//	                                     -> LeaseTimeToLiveResponse
//	/revkv.cluster.Peer/MemberPromote    unary: etcdserverpb.MemberPromoteRequest
//	                                     -> MemberPromoteResponse (empty)
//
// Every call carries the sender's member ID in the metadata key
// "revkv-from" (hex), so a receiver can drop a blocked peer's calls, and
// its name and client URLs ("revkv-name", "revkv-client-urls"), which
// MemberList shows.
const (
	serviceName     = "revkv.cluster.Peer"
	methodRaft      = "/" + serviceName + "/Raft"
	methodKeepAlive = "/" + serviceName + "/LeaseKeepAlive"
	methodTTL       = "/" + serviceName + "/LeaseTimeToLive"
	methodPromote   = "/" + serviceName + "/MemberPromote"
	fromKey         = "revkv-from"
	nameKey         = "revkv-name"
	clientURLsKey   = "revkv-client-urls"
)

// rawCodec carries byte slices as they are. It is chosen by content
// subtype ("revkv-raw"), so it applies only to the calls that ask for it
// (the peer service's) and never to etcd's services on the same server.
type rawCodec struct{}

const rawSubtype = "revkv-raw"

func init() { encoding.RegisterCodec(rawCodec{}) }

// errNotBytes: a message of another type than *[]byte reached rawCodec.
var errNotBytes = errors.New("cluster: raw codec takes only *[]byte")

func (rawCodec) Marshal(v any) ([]byte, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("%w, not %T", errNotBytes, v)
	}
	return *b, nil
}

// Unmarshal copies: gRPC may reuse data once it returns.
func (rawCodec) Unmarshal(data []byte, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("%w, not %T", errNotBytes, v)
	}
	*b = append((*b)[:0], data...)
	return nil
}

func (rawCodec) Name() string { return rawSubtype }

// peerService is what the service desc's handlers call.
type peerService interface {
	raftStream(stream grpc.ServerStream) error
	unary(ctx context.Context, method string, req []byte) ([]byte, error)
}

// serviceDesc describes the peer service for grpc.Server.RegisterService.
var serviceDesc = grpc.ServiceDesc{
	ServiceName: serviceName,
	HandlerType: (*peerService)(nil),
	Streams: []grpc.StreamDesc{{
		StreamName:    "Raft",
		ClientStreams: true,
		Handler: func(srv any, stream grpc.ServerStream) error {
			return srv.(peerService).raftStream(stream)
		},
	}},
	Methods: []grpc.MethodDesc{
		{MethodName: "LeaseKeepAlive", Handler: unaryHandler(methodKeepAlive)},
		{MethodName: "LeaseTimeToLive", Handler: unaryHandler(methodTTL)},
		{MethodName: "MemberPromote", Handler: unaryHandler(methodPromote)},
	},
}

// raftStreamDesc is the client's view of the Raft stream.
var raftStreamDesc = grpc.StreamDesc{StreamName: "Raft", ClientStreams: true}

func unaryHandler(method string) grpc.MethodHandler {
	return func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
		var req []byte
		if err := dec(&req); err != nil {
			return nil, err
		}
		resp, err := srv.(peerService).unary(ctx, method, req)
		if err != nil {
			return nil, err
		}
		return &resp, nil
	}
}
