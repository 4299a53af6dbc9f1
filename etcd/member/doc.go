// Package member is one member of a replicated revkv cluster: a raft node
// (go.etcd.io/raft/v3's RawNode) whose committed log entries are applied,
// in order, to a revkv DB through the same txn executor a single-node
// server uses (DB.Txn with a kv.TxnRequest).
//
// # A deterministic state machine
//
// A Member has no goroutine, no timer and no network. Its driver (package
// cluster, or a simulation) calls:
//
//   - Tick at a fixed interval: raft's logical clock (elections,
//     heartbeats), lease expiry on the leader, request timeouts;
//   - Step for each raft message received from a peer;
//   - Propose, ReadIndex, AddMember, ... for requests, each returning a
//     *Pending at once;
//   - Ready after any of these: it persists what raft needs persisted,
//     applies what is committed, resolves Pendings, and returns the
//     messages to send (send them after Ready returns; report every MsgSnap
//     with ReportSnapshot).
//
// The only clock read is Config.Clock (lease deadlines, which are
// leader-local); nothing that reaches the log or the state depends on map
// order or time. Randomness comes from crypto/rand only: raft's randomized
// election timeouts, and the incarnation number in the member's request
// IDs; testing/cryptotest.SetGlobalRandom makes both repeatable.
//
// # Durable state
//
// The raft log, hard state and snapshots (package raftstore on
// Config.FS/Dir) are the member's only durable state; the DB is in
// memory. Open on a directory holding a log restarts: the newest snapshot
// is loaded into a fresh DB and raft replays the committed entries after
// it (raft.Config.Applied is the snapshot's index), so each entry is
// applied exactly once per incarnation; the DB's consistent index (the
// index of the entry being applied, engine.Options.ConsistentIndex) makes
// a replayed write a no-op should one ever come twice.
//
// Every Config.SnapshotEntries applied entries the member writes a
// snapshot: a container of its own (the member table and the DB's engine
// snapshot, checksummed; see snapshot.go) at the applied index, and
// compacts the log up to Config.CatchUpEntries behind it. A follower too
// far behind, or a member just added, gets a snapshot of the leader's
// state at the time of sending (raft's MsgSnap, whose stored snapshot the
// leader replaces by a current one). Installing one replaces the DB: the
// old DB is closed, so its watchers' channels close and reads of it fail
// with kv.ErrClosed; clients call DB again and re-watch from the
// revision they had.
//
// # Requests
//
// Everything that changes state goes through the log, encoded by the
// entry codec (codec.go): txns (puts and deletes are 1-op txns),
// compactions, lease grants (the ID chosen by the proposer, or by the DB
// deterministically) and revokes, and membership changes (raft
// ConfChanges carrying the member's attributes). A request the DB refuses
// is refused the same way on every member; that is its outcome.
//
// A proposal carries a request ID (the proposer's member ID, its
// incarnation and a counter); the proposer resolves its Pending when it
// applies that entry. Every member skips an entry whose ID it applied
// before (a proposal a transport delivered twice is in the log twice), by
// a bounded record that is part of the replicated state (dedup.go). If the leader changes (or a snapshot replaces the
// state) first, the Pending fails with ErrLeaderChanged: the entry may
// still commit. One that gets no outcome for Config.RequestTimeoutTicks
// (a proposal dropped on its way to the leader) fails with ErrTimeout.
//
// ReadIndex gives linearizable reads: its Pending is resolved once the
// member has applied the leader's commit index as of the request. Reads
// that arrive while a raft read request is in flight share the next one
// (read.go).
//
// Each member also keeps, for its last compactions, the hash of the
// history up to the compaction's revision as it was when the compaction
// was applied (CompactionHash): etcd's HashKV at a compacted revision.
//
// # Leases
//
// Leases live in the DB (granted and revoked through the log); their
// deadlines live on the leader alone, as in etcd's lessor: KeepAlive
// renews a lease on the leader without logging anything (ErrNotLeader
// elsewhere), the leader proposes a revoke for each lease whose deadline
// passed, and a new leader gives every lease a full TTL from its election.
//
// # Membership
//
// AddMember (a voter or a learner), PromoteMember, UpdateMember and
// RemoveMember propose raft ConfChanges; the member table (Members) and
// raft's configuration change together when one is applied, after the
// same checks on every member (ErrMemberExists, ErrMemberNotFound,
// ErrIDRemoved, ErrNotLearner, ErrLastVoter). A member added with AddMember is started
// with Config.Join and gets the state from the leader. A removed member
// stops taking requests (ErrStopped) and reports Status().Removed.
package member
