package server

import (
	"context"
	"net"
	"net/url"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// clusterServer is etcd's Cluster service: the members of a Replicated
// backend, or the one member of a single-member server, which never
// changes.
type clusterServer struct {
	pb.UnimplementedClusterServer
	s *Server
}

var errMembership = status.Error(codes.Unimplemented, "revkv: a single-member server cannot change its membership")

// self is the single member.
func (c *clusterServer) self() *pb.Member {
	o := &c.s.opts
	return &pb.Member{ID: o.MemberID, Name: o.Name, PeerURLs: []string{"http://localhost:2380"}, ClientURLs: o.ClientURLs}
}

func members(ms []Member) []*pb.Member {
	out := make([]*pb.Member, len(ms))
	for i, m := range ms {
		out[i] = &pb.Member{ID: m.ID, Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, IsLearner: m.IsLearner}
	}
	return out
}

// MemberList lists the members. etcd's Linearizable option is honoured
// on a replicated backend by a read barrier.
func (c *clusterServer) MemberList(ctx context.Context, r *pb.MemberListRequest) (*pb.MemberListResponse, error) {
	if c.s.repl == nil {
		return &pb.MemberListResponse{Header: c.s.hdr.now(), Members: []*pb.Member{c.self()}}, nil
	}
	if r.Linearizable {
		if err := c.s.readBarrier(ctx); err != nil {
			return nil, err
		}
	}
	return &pb.MemberListResponse{Header: c.s.hdr.now(), Members: members(c.s.repl.Members())}, nil
}

// checkURLs refuses peer URLs as etcd does: none, or one that is not
// http(s)://host:port without a path, or unix(s)://.
func checkURLs(urls []string) error {
	if len(urls) == 0 {
		return rpctypes.ErrGRPCMemberBadURLs
	}
	for _, raw := range urls {
		u, err := url.Parse(strings.TrimSpace(raw))
		if err != nil {
			return rpctypes.ErrGRPCMemberBadURLs
		}
		switch u.Scheme {
		case "http", "https":
			if _, _, err := net.SplitHostPort(u.Host); err != nil || u.Path != "" {
				return rpctypes.ErrGRPCMemberBadURLs
			}
		case "unix", "unixs":
		default:
			return rpctypes.ErrGRPCMemberBadURLs
		}
	}
	return nil
}

// MemberAdd adds a member (a learner if asked) to a replicated backend.
func (c *clusterServer) MemberAdd(ctx context.Context, r *pb.MemberAddRequest) (*pb.MemberAddResponse, error) {
	if c.s.repl == nil {
		return nil, errMembership
	}
	if err := checkURLs(r.PeerURLs); err != nil {
		return nil, err
	}
	m, ms, err := c.s.repl.MemberAdd(ctx, r.PeerURLs, r.IsLearner)
	if err != nil {
		return nil, toGRPC(err)
	}
	added := &pb.Member{ID: m.ID, PeerURLs: m.PeerURLs, IsLearner: m.IsLearner}
	return &pb.MemberAddResponse{Header: c.s.hdr.now(), Member: added, Members: members(ms)}, nil
}

// MemberRemove removes a member. On a single member, another member is
// etcd's "member not found", and itself is refused.
func (c *clusterServer) MemberRemove(ctx context.Context, r *pb.MemberRemoveRequest) (*pb.MemberRemoveResponse, error) {
	if c.s.repl == nil {
		if r.ID != c.s.opts.MemberID {
			return nil, rpctypes.ErrGRPCMemberNotFound
		}
		return nil, errMembership
	}
	ms, err := c.s.repl.MemberRemove(ctx, r.ID)
	if err != nil {
		return nil, toGRPC(err)
	}
	return &pb.MemberRemoveResponse{Header: c.s.hdr.now(), Members: members(ms)}, nil
}

// MemberUpdate changes a member's peer URLs; on a single member as
// MemberRemove.
func (c *clusterServer) MemberUpdate(ctx context.Context, r *pb.MemberUpdateRequest) (*pb.MemberUpdateResponse, error) {
	if c.s.repl == nil {
		if r.ID != c.s.opts.MemberID {
			return nil, rpctypes.ErrGRPCMemberNotFound
		}
		return nil, errMembership
	}
	if err := checkURLs(r.PeerURLs); err != nil {
		return nil, err
	}
	ms, err := c.s.repl.MemberUpdate(ctx, r.ID, r.PeerURLs)
	if err != nil {
		return nil, toGRPC(err)
	}
	return &pb.MemberUpdateResponse{Header: c.s.hdr.now(), Members: members(ms)}, nil
}

// MemberPromote makes a learner a voting member. A single member is no
// learner.
func (c *clusterServer) MemberPromote(ctx context.Context, r *pb.MemberPromoteRequest) (*pb.MemberPromoteResponse, error) {
	if c.s.repl == nil {
		if r.ID != c.s.opts.MemberID {
			return nil, rpctypes.ErrGRPCMemberNotFound
		}
		return nil, rpctypes.ErrGRPCMemberNotLearner
	}
	ms, err := c.s.repl.MemberPromote(ctx, r.ID)
	if err != nil {
		return nil, toGRPC(err)
	}
	return &pb.MemberPromoteResponse{Header: c.s.hdr.now(), Members: members(ms)}, nil
}
