package server

import (
	"context"
	"errors"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/metadata"

	"github.com/revkv/revkv/kv"
)

// Replicated is implemented by a Backend that is one member of a raft
// cluster (package cluster's Node). A Server on such a Backend serves the
// cluster's view: headers carry the cluster's IDs and the current raft
// term, linearizable reads wait for ReadBarrier, the Cluster service
// changes the membership, and Maintenance reports and moves the leader.
// A Backend that does not implement it is a single member that is always
// the leader (the DB adapter).
//
// Writes still go through Backend.Txn, Compact and the Lessor: a
// Replicated Backend proposes them and returns once they are applied
// locally. A Txn without a write is run locally and may be stale: the
// Server calls ReadBarrier first unless the client asked for a
// serializable read.
//
// Errors are the sentinels below (wrapped, errors.Is-testable), the
// Backend's kv errors, or context errors; each maps to the rpctypes error
// etcd returns for the same failure. Methods are called concurrently.
type Replicated interface {
	// ReadBarrier returns once this member has applied everything the
	// cluster had committed when it was called (raft's ReadIndex), so a
	// read after it is linearizable. Errors: ErrNoLeader, ErrTimeout,
	// ErrNotSupportedForLearner, ErrStopped, ctx's.
	ReadBarrier(ctx context.Context) error
	// Header returns the IDs and raft term of every response header.
	Header() (clusterID, memberID, term uint64)
	// Status reports this member's raft state.
	Status() RaftStatus
	// Members lists the cluster's members, in ID order.
	Members() []Member
	// MemberAdd adds a member (a learner if learner) with the given peer
	// URLs, picks its ID, and returns it and the new member list once
	// applied. Errors: ErrPeerURLExists, ErrTooManyLearners, ErrUnhealthy
	// and ErrNotEnoughStartedMembers (etcd's strict reconfiguration
	// check), ErrNoLeader, ErrLeaderChanged, ErrTimeout, ctx's.
	MemberAdd(ctx context.Context, peerURLs []string, learner bool) (Member, []Member, error)
	// MemberRemove removes a member. Errors: ErrMemberNotFound,
	// ErrUnhealthy (removing it would lose the quorum), and MemberAdd's.
	MemberRemove(ctx context.Context, id uint64) ([]Member, error)
	// MemberUpdate changes a member's peer URLs. Errors: ErrMemberNotFound,
	// ErrPeerURLExists, and MemberAdd's.
	MemberUpdate(ctx context.Context, id uint64, peerURLs []string) ([]Member, error)
	// MemberPromote makes a learner a voting member. Errors:
	// ErrMemberNotFound, ErrMemberNotLearner, ErrLearnerNotReady (it has
	// not caught up with the leader), and MemberAdd's.
	MemberPromote(ctx context.Context, id uint64) ([]Member, error)
	// MoveLeader transfers the leadership to member to and returns once
	// it leads. Errors: ErrNotLeader (this member does not lead),
	// ErrBadLeaderTransferee (not a voting member), ErrTimeout, ctx's.
	MoveLeader(ctx context.Context, to uint64) error
}

// CompactionHasher is implemented by a Backend that hashes the history up
// to each revision it compacts at, just before compacting, and keeps the
// last few of those hashes: HashKV at a compaction's revision answers it
// (so compacting does not change the hash of that revision, as in etcd).
// A replicated Backend does it where each member applies the compaction,
// so that every member answers the same. Without it, the Server keeps the
// hashes of the compactions it was asked for.
type CompactionHasher interface {
	// CompactionHash returns the hash taken before the compaction at rev,
	// if it is one of the last kept.
	CompactionHash(rev int64) (kv.KeyValueHash, bool)
}

// Member is one member of a cluster, as the Cluster service lists it.
type Member struct {
	ID                   uint64
	Name                 string // "" until the member has started
	PeerURLs, ClientURLs []string
	IsLearner            bool
}

// RaftStatus is a member's raft state, as Maintenance.Status reports it.
type RaftStatus struct {
	// Leader is the leader's ID, 0 if there is none known.
	Leader uint64
	// Term is the raft term, Index the last index in the raft log
	// (etcd's RaftIndex), Applied the last index applied to the store.
	Term, Index, Applied uint64
	IsLearner            bool
}

// The errors of a Replicated Backend, each the failure of the etcd error
// it is named after (the Server returns that rpctypes error).
var (
	ErrNoLeader                = errors.New("server: no leader")
	ErrNotLeader               = errors.New("server: not the leader")
	ErrLeaderChanged           = errors.New("server: leader changed")
	ErrTimeout                 = errors.New("server: request timed out")
	ErrStopped                 = errors.New("server: member stopped")
	ErrMemberNotFound          = errors.New("server: member not found")
	ErrMemberExists            = errors.New("server: member ID already exists")
	ErrPeerURLExists           = errors.New("server: peer URL already exists")
	ErrMemberNotLearner        = errors.New("server: member is not a learner")
	ErrLearnerNotReady         = errors.New("server: learner is not in sync with the leader")
	ErrTooManyLearners         = errors.New("server: too many learners")
	ErrUnhealthy               = errors.New("server: the change would leave the cluster unhealthy")
	ErrNotEnoughStartedMembers = errors.New("server: not enough started members for the change")
	ErrBadLeaderTransferee     = errors.New("server: bad leader transferee")
	ErrNotSupportedForLearner  = errors.New("server: not supported on a learner")
)

// replicaIDs returns the header IDs: the Replicated backend's, or the
// fixed ones of Options.
func (s *Server) replicaIDs() (cluster, member, term uint64) {
	if s.repl != nil {
		return s.repl.Header()
	}
	return s.opts.ClusterID, s.opts.MemberID, s.opts.RaftTerm
}

// readBarrier makes a read linearizable on a Replicated backend (a single
// member's reads are).
func (s *Server) readBarrier(ctx context.Context) error {
	if s.repl == nil {
		return nil
	}
	return toGRPC(s.repl.ReadBarrier(ctx))
}

// A watch stream whose client requires a leader (clientv3.WithRequireLeader)
// is refused by a member that knows none, and ended once the member has
// known none at leaderChecks checks in a row, leaderCheck apart, as
// etcd's: the client then watches through another member.
const (
	leaderCheck  = 500 * time.Millisecond
	leaderChecks = 3
)

// requiresLeader reports whether a stream's client asked for a leader;
// only a Replicated backend can lack one.
func (s *Server) requiresLeader(ctx context.Context) bool {
	if s.repl == nil {
		return false
	}
	md, _ := metadata.FromIncomingContext(ctx)
	v := md.Get(rpctypes.MetadataRequireLeaderKey)
	return len(v) > 0 && v[0] == rpctypes.MetadataHasLeader
}

func (s *Server) hasLeader() bool { return s.repl == nil || s.repl.Status().Leader != 0 }
