package member

import "errors"

// Errors of a Member. Every error a method returns wraps one of these (or
// a kv/revkv error of the state machine, for a request the DB refused;
// Open's may wrap its storage's, raftstore's or the filesystem's, and
// Step's raft's), so callers test them with errors.Is.
var (
	// ErrNoLeader: the member knows no leader (an election is going on, or
	// it is cut off): the request was not proposed. Retry later.
	ErrNoLeader = errors.New("revkv/member: no leader")
	// ErrLeaderChanged: the leader changed (or a snapshot replaced the
	// member's state) after the request was proposed and before the member
	// applied it. Its fate is unknown: it may still commit.
	ErrLeaderChanged = errors.New("revkv/member: leader changed; the request may or may not have been applied")
	// ErrProposalDropped: raft refused the proposal (a leader transfer is
	// under way, or too much is uncommitted): it was not proposed. Retry.
	ErrProposalDropped = errors.New("revkv/member: proposal dropped")
	// ErrStopped: the member is closed, was removed from the cluster, or
	// stopped after a storage failure. Returned by a call (Propose, Step,
	// ...), nothing was done; as a Pending's outcome, the request was
	// proposed and its fate is unknown, as for ErrLeaderChanged: it may
	// have committed (and be applied by the other members).
	ErrStopped = errors.New("revkv/member: stopped")
	// ErrNotLeader: a leader-only operation (KeepAlive, TransferLeader,
	// PromoteMember) on a member that is not the leader. The caller
	// forwards it.
	ErrNotLeader = errors.New("revkv/member: not the leader")
	// ErrMemberNotFound: no member has that ID.
	ErrMemberNotFound = errors.New("revkv/member: member not found")
	// ErrMemberExists: a member with that ID, or with one of those peer
	// URLs, is in the cluster already.
	ErrMemberExists = errors.New("revkv/member: member already exists")
	// ErrIDRemoved: the ID belonged to a member that was removed; an ID is
	// never reused.
	ErrIDRemoved = errors.New("revkv/member: member ID was removed")
	// ErrLastVoter: RemoveMember of the cluster's only voting member (raft
	// cannot run with none).
	ErrLastVoter = errors.New("revkv/member: cannot remove the last voting member")
	// ErrNotLearner: PromoteMember of a voting member.
	ErrNotLearner = errors.New("revkv/member: member is not a learner")
	// ErrLearnerNotReady: PromoteMember of a learner whose log is still far
	// behind the leader's.
	ErrLearnerNotReady = errors.New("revkv/member: learner is not in sync with the leader")
	// ErrInvalidRequest: a Request that does not set exactly one field or
	// holds a txn the log cannot carry (an op of an unknown type, txns
	// nested more than 64 deep), or a membership change without a usable
	// ID.
	ErrInvalidRequest = errors.New("revkv/member: invalid request")
	// ErrInvalidConfig: a Config Open cannot use.
	ErrInvalidConfig = errors.New("revkv/member: invalid config")
	// ErrCorrupt: bytes from the log or a snapshot that do not decode: an
	// entry or a snapshot container with a bad version, checksum or shape.
	ErrCorrupt = errors.New("revkv/member: corrupt data")
	// ErrNotDone: Pending.Result before the Pending is resolved.
	ErrNotDone = errors.New("revkv/member: request not done yet")
	// ErrTimeout: a request left unresolved for Config.RequestTimeoutTicks
	// ticks (a proposal or read the leader dropped without a leader
	// change). Its fate is unknown, as for ErrLeaderChanged.
	ErrTimeout = errors.New("revkv/member: request timed out")
)
