package server

import (
	"context"
	"errors"
	"io"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/revkv/revkv/kv"
)

// Lessor is the lease half of a store: a Backend that has it serves etcd's
// Lease service. Errors are kv's lease errors (kv.ErrLeaseNotFound,
// kv.ErrLeaseExists, kv.ErrLeaseTTLTooLarge). ctx is the client's call's:
// a replicated Lessor waits for the log, or the leader, for up to it.
type Lessor interface {
	// LeaseGrant grants a lease of ttl seconds with ID id (0: the store
	// picks one) and returns its ID and TTL.
	LeaseGrant(ctx context.Context, id, ttl int64) (leaseID, grantedTTL int64, err error)
	// LeaseRevoke revokes a lease and deletes its keys.
	LeaseRevoke(ctx context.Context, id int64) error
	// LeaseKeepAlive renews a lease to its granted TTL and returns it.
	LeaseKeepAlive(ctx context.Context, id int64) (ttl int64, err error)
	// LeaseTimeToLive reports a lease's remaining and granted TTL and,
	// if keys, its keys.
	LeaseTimeToLive(ctx context.Context, id int64, keys bool) (ttl, grantedTTL int64, attached [][]byte, err error)
	// LeaseIDs lists the live leases.
	LeaseIDs() ([]int64, error)
}

var errNoLeases = status.Error(codes.Unimplemented, "revkv: this store has no leases")

// leaseServer is etcd's Lease service.
type leaseServer struct {
	pb.UnimplementedLeaseServer
	s *Server
}

func (l *leaseServer) lessor() (Lessor, error) {
	if l.s.lease == nil {
		return nil, errNoLeases
	}
	return l.s.lease, nil
}

// LeaseGrant grants a lease. A TTL below Options.MinLeaseTTL is raised to
// it, as etcd raises it to its minimum.
func (l *leaseServer) LeaseGrant(ctx context.Context, r *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error) {
	le, err := l.lessor()
	if err != nil {
		return nil, err
	}
	if err := l.s.checkQuota(leaseOverhead); err != nil {
		return nil, err
	}
	if err := l.s.maintenance.noSpace(); err != nil {
		return nil, err
	}
	if r.TTL > kv.MaxLeaseTTL {
		return nil, rpctypes.ErrGRPCLeaseTTLTooLarge
	}
	id, ttl, err := le.LeaseGrant(ctx, r.ID, max(r.TTL, l.s.opts.MinLeaseTTL))
	if err != nil {
		return nil, toGRPC(err)
	}
	l.s.charge(leaseOverhead)
	return &pb.LeaseGrantResponse{Header: l.s.hdr.now(), ID: id, TTL: ttl}, nil
}

// LeaseRevoke revokes a lease; its keys are deleted at one revision.
func (l *leaseServer) LeaseRevoke(ctx context.Context, r *pb.LeaseRevokeRequest) (*pb.LeaseRevokeResponse, error) {
	le, err := l.lessor()
	if err != nil {
		return nil, err
	}
	if err := le.LeaseRevoke(ctx, r.ID); err != nil {
		return nil, toGRPC(err)
	}
	return &pb.LeaseRevokeResponse{Header: l.s.hdr.now()}, nil
}

// LeaseTimeToLive reports a lease; an unknown lease has TTL -1 (not an
// error), as etcd reports it.
func (l *leaseServer) LeaseTimeToLive(ctx context.Context, r *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error) {
	le, err := l.lessor()
	if err != nil {
		return nil, err
	}
	ttl, granted, keys, err := le.LeaseTimeToLive(ctx, r.ID, r.Keys)
	if errors.Is(err, kv.ErrLeaseNotFound) {
		return &pb.LeaseTimeToLiveResponse{Header: l.s.hdr.now(), ID: r.ID, TTL: -1}, nil
	}
	if err != nil {
		return nil, toGRPC(err)
	}
	return &pb.LeaseTimeToLiveResponse{Header: l.s.hdr.now(), ID: r.ID, TTL: ttl, GrantedTTL: granted, Keys: keys}, nil
}

// LeaseLeases lists the live leases.
func (l *leaseServer) LeaseLeases(ctx context.Context, r *pb.LeaseLeasesRequest) (*pb.LeaseLeasesResponse, error) {
	le, err := l.lessor()
	if err != nil {
		return nil, err
	}
	if err := l.s.readBarrier(ctx); err != nil {
		return nil, err
	}
	ids, err := le.LeaseIDs()
	if err != nil {
		return nil, toGRPC(err)
	}
	out := make([]*pb.LeaseStatus, len(ids))
	for i, id := range ids {
		out[i] = &pb.LeaseStatus{ID: id}
	}
	return &pb.LeaseLeasesResponse{Header: l.s.hdr.now(), Leases: out}, nil
}

// LeaseKeepAlive renews leases as the client asks, one response per
// request; an unknown lease gets TTL 0, as etcd answers. The stream ends
// with its context, or with Server.Close.
func (l *leaseServer) LeaseKeepAlive(stream pb.Lease_LeaseKeepAliveServer) error {
	le, err := l.lessor()
	if err != nil {
		return err
	}
	stop, ok := l.s.track()
	if !ok {
		return rpctypes.ErrGRPCStopped
	}
	defer l.s.untrack(stop)
	// The loop runs apart, so that Close ends the stream while it waits
	// for a request; it ends when the stream's context does, which is
	// when this returns.
	errc := make(chan error, 1)
	go func() { errc <- l.keepAlive(le, stream) }()
	select {
	case err := <-errc:
		return err
	case <-stop:
		return rpctypes.ErrGRPCStopped
	case <-stream.Context().Done():
		return stream.Context().Err()
	}
}

func (l *leaseServer) keepAlive(le Lessor, stream pb.Lease_LeaseKeepAliveServer) error {
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		ttl, err := le.LeaseKeepAlive(stream.Context(), req.ID)
		if errors.Is(err, kv.ErrLeaseNotFound) {
			ttl, err = 0, nil
		}
		if err != nil {
			return toGRPC(err)
		}
		if err := stream.Send(&pb.LeaseKeepAliveResponse{Header: l.s.hdr.now(), ID: req.ID, TTL: ttl}); err != nil {
			return err
		}
	}
}
