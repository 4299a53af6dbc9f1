package server

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// clusterServer is etcd's Cluster service: one member, never changing.
type clusterServer struct {
	pb.UnimplementedClusterServer
	s *Server
}

var errMembership = status.Error(codes.Unimplemented, "revkv: a single-member server cannot change its membership")

func (c *clusterServer) member() *pb.Member {
	o := &c.s.opts
	return &pb.Member{ID: o.MemberID, Name: o.Name, PeerURLs: []string{"http://localhost:2380"}, ClientURLs: o.ClientURLs}
}

// MemberList lists the one member, with stable IDs (Options).
func (c *clusterServer) MemberList(ctx context.Context, r *pb.MemberListRequest) (*pb.MemberListResponse, error) {
	return &pb.MemberListResponse{Header: c.s.hdr.now(), Members: []*pb.Member{c.member()}}, nil
}

// MemberAdd is refused: the server is a single member.
func (c *clusterServer) MemberAdd(context.Context, *pb.MemberAddRequest) (*pb.MemberAddResponse, error) {
	return nil, errMembership
}

// MemberRemove of another member is etcd's "member not found"; of itself,
// refused.
func (c *clusterServer) MemberRemove(ctx context.Context, r *pb.MemberRemoveRequest) (*pb.MemberRemoveResponse, error) {
	if r.ID != c.s.opts.MemberID {
		return nil, rpctypes.ErrGRPCMemberNotFound
	}
	return nil, errMembership
}

// MemberUpdate of another member is etcd's "member not found"; of itself,
// refused.
func (c *clusterServer) MemberUpdate(ctx context.Context, r *pb.MemberUpdateRequest) (*pb.MemberUpdateResponse, error) {
	if r.ID != c.s.opts.MemberID {
		return nil, rpctypes.ErrGRPCMemberNotFound
	}
	return nil, errMembership
}

// MemberPromote: the one member is no learner.
func (c *clusterServer) MemberPromote(ctx context.Context, r *pb.MemberPromoteRequest) (*pb.MemberPromoteResponse, error) {
	if r.ID != c.s.opts.MemberID {
		return nil, rpctypes.ErrGRPCMemberNotFound
	}
	return nil, rpctypes.ErrGRPCMemberNotLearner
}
