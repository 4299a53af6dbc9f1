package member

import (
	"fmt"
	"log/slog"

	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/persist"
)

// Config configures a Member. See Open.
type Config struct {
	// ID is this member's raft ID; not 0.
	ID uint64
	// FS and Dir are where the member's raft log and snapshots live
	// (package raftstore): the only durable state a member has. With
	// FS nil (and no Storage), the member keeps its log in memory only
	// and cannot be restarted.
	FS  persist.FS
	Dir string
	// Storage, if not nil, is used instead of a raftstore on FS/Dir
	// (tests and simulations that bring their own log). The member owns
	// it: Close (and a failed Open) closes it. A NewMemoryStorage value
	// can be given again to a new Open: that is a restart.
	Storage Storage

	// Peers are the initial members when bootstrapping a new cluster:
	// every member gets the same list (voters only; add learners later
	// with AddMember). Empty on a restart (the state comes from the log)
	// and when Join is set.
	Peers []Peer
	// Join marks a member added with AddMember that starts with an empty
	// log: it gets the state from the leader (entries or a snapshot).
	Join bool

	// ElectionTick and HeartbeatTick are raft's election timeout and
	// heartbeat interval in ticks; 0 means 10 and 1.
	ElectionTick, HeartbeatTick int
	// SnapshotEntries is the number of applied entries between local
	// snapshots (after which the log is compacted); 0 means 10000.
	SnapshotEntries uint64
	// CatchUpEntries is how many entries a compaction keeps behind a
	// snapshot, so that a slow follower catches up from the log rather
	// than by a snapshot; 0 means 5000.
	CatchUpEntries uint64
	// RequestTimeoutTicks is how many ticks a Pending may stay unresolved
	// before it fails with ErrTimeout (a proposal or read dropped on the
	// way to the leader); 0 means 50 election timeouts.
	RequestTimeoutTicks int

	// Clock gives lease deadlines (leader-local, never replicated) and
	// the DB's remaining TTLs. nil means the system clock.
	Clock engine.Clock
	// Logger receives the member's and raft's records; nil means none.
	Logger *slog.Logger
	// MaxTxnOps bounds a txn's compares and ops per branch in the state
	// machine (engine.Options.MaxTxnOps); 0 means the engine's default.
	MaxTxnOps int
}

// Peer is a cluster member as the membership table records it.
type Peer struct {
	ID         uint64
	Name       string
	PeerURLs   []string
	ClientURLs []string
	IsLearner  bool
}

func (c *Config) withDefaults() (Config, error) {
	d := *c
	if d.ID == 0 {
		return d, fmt.Errorf("member ID 0: %w", ErrInvalidConfig)
	}
	if d.Join && len(d.Peers) > 0 {
		return d, fmt.Errorf("both Join and Peers: %w", ErrInvalidConfig)
	}
	seen, urls := map[uint64]bool{}, map[string]bool{}
	for _, p := range d.Peers {
		if p.ID == 0 || seen[p.ID] {
			return d, fmt.Errorf("peer ID %d zero or repeated: %w", p.ID, ErrInvalidConfig)
		}
		if p.IsLearner {
			return d, fmt.Errorf("bootstrap peer %d is a learner (add learners with AddMember): %w", p.ID, ErrInvalidConfig)
		}
		seen[p.ID] = true
		// The member table refuses a peer URL another member has, while
		// raft's Bootstrap takes every peer: they must not disagree.
		for _, u := range p.PeerURLs {
			if urls[u] {
				return d, fmt.Errorf("peer URL %s of peer %d is another peer's: %w", u, p.ID, ErrInvalidConfig)
			}
		}
		for _, u := range p.PeerURLs {
			urls[u] = true
		}
	}
	if len(d.Peers) > 0 && !seen[d.ID] {
		return d, fmt.Errorf("member %d is not among the bootstrap peers: %w", d.ID, ErrInvalidConfig)
	}
	if d.ElectionTick == 0 {
		d.ElectionTick = 10
	}
	if d.HeartbeatTick == 0 {
		d.HeartbeatTick = 1
	}
	if d.HeartbeatTick < 1 || d.ElectionTick <= d.HeartbeatTick {
		return d, fmt.Errorf("election tick %d, heartbeat tick %d: %w", d.ElectionTick, d.HeartbeatTick, ErrInvalidConfig)
	}
	if d.SnapshotEntries == 0 {
		d.SnapshotEntries = 10000
	}
	if d.CatchUpEntries == 0 {
		d.CatchUpEntries = 5000
	}
	if d.RequestTimeoutTicks < 0 {
		return d, fmt.Errorf("request timeout %d ticks: %w", d.RequestTimeoutTicks, ErrInvalidConfig)
	}
	if d.RequestTimeoutTicks == 0 {
		d.RequestTimeoutTicks = 50 * d.ElectionTick
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	return d, nil
}
