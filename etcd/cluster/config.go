package cluster

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/etcd/member"
	"github.com/revkv/revkv/persist"
)

// ErrInvalidConfig: a Config Start cannot use.
var ErrInvalidConfig = errors.New("cluster: invalid config")

// Config configures a Node.
type Config struct {
	// Name is the member's name (etcd's --name), listed by MemberList.
	Name string
	// ID is the member's raft ID; 0 derives it from PeerURLs and
	// ClusterToken (MemberID), as every member derives the IDs of the
	// initial cluster, and as MemberAdd derives a new member's.
	ID uint64
	// ClusterToken is etcd's --initial-cluster-token: the cluster ID (in
	// every response header) is derived from it. "" means "etcd-cluster".
	ClusterToken string

	// FS and Dir hold the member's raft log and snapshots (its only
	// durable state). FS nil keeps them in memory (Storage, if set).
	FS  persist.FS
	Dir string
	// Storage, if not nil, is the member's log instead of FS/Dir: a test
	// "restarts" a member by starting a new Node on the same Storage.
	Storage member.Storage

	// PeerListener is where the member serves its peers (etcd's
	// --listen-peer-urls); Start takes it and Close closes it.
	PeerListener net.Listener
	// PeerURLs and ClientURLs are what the member advertises (etcd's
	// --initial-advertise-peer-urls and --advertise-client-urls).
	PeerURLs, ClientURLs []string

	// InitialCluster lists the members of a new cluster, this one
	// included (etcd's --initial-cluster); a peer with ID 0 gets
	// MemberID(ClusterToken, its PeerURLs). Every member must be given the
	// same list (it is the first entries of every member's log). Used only
	// when the log is empty and Join is false.
	InitialCluster []member.Peer
	// Join starts a member that was added with MemberAdd (etcd's
	// --initial-cluster-state existing): it starts empty and gets the
	// state from the leader, whom it reaches through InitialCluster (the
	// members it was told of, itself included, as etcd's --initial-cluster
	// after member add).
	Join bool

	// TickInterval is the raft tick; 0 means 100 ms (etcd's heartbeat).
	// ElectionTicks is the election timeout in ticks; 0 means 10.
	TickInterval  time.Duration
	ElectionTicks int
	// RequestTimeout bounds the calls that take no context (Compact and
	// the lease calls) and the wait for a leader; 0 means 5 s plus two
	// election timeouts (etcd's).
	RequestTimeout time.Duration
	// DisableStrictReconfigCheck turns off etcd's strict reconfiguration
	// check (on by default, as etcd's --strict-reconfig-check; see
	// reconfig.go). HealthInterval is how long a peer must have been
	// connected to count as healthy for it; 0 means 5 s (etcd's).
	DisableStrictReconfigCheck bool
	HealthInterval             time.Duration
	// SnapshotEntries and CatchUpEntries: see member.Config.
	SnapshotEntries, CatchUpEntries uint64

	// Clock gives lease deadlines; nil means the system clock.
	Clock engine.Clock
	// Logger receives the node's records; nil discards them.
	Logger *slog.Logger
	// MaxTxnOps: see member.Config.
	MaxTxnOps int
}

// DefaultClusterToken is etcd's default --initial-cluster-token.
const DefaultClusterToken = "etcd-cluster"

// MemberID derives a member's raft ID from its peer URLs (in any order)
// and the cluster token, as etcd derives it: every member of a new
// cluster computes the same IDs for the same --initial-cluster. Adding a
// member again at the URLs of a removed one derives the removed ID, which
// raft never reuses: give it another URL.
func MemberID(token string, peerURLs []string) uint64 {
	urls := slices.Clone(peerURLs)
	slices.Sort(urls)
	return hash64("member\x00" + token + "\x00" + strings.Join(urls, "\x00"))
}

// ClusterID derives the cluster ID from the cluster token.
func ClusterID(token string) uint64 { return hash64("cluster\x00" + token) }

// hash64 is the first 8 bytes of s's SHA-256 (never 0): IDs of similar
// URLs look nothing alike, as etcd's do.
func hash64(s string) uint64 {
	sum := sha256.Sum256([]byte(s))
	if id := binary.BigEndian.Uint64(sum[:8]); id != 0 {
		return id
	}
	return 1
}

// withDefaults fills the zero fields and checks the rest.
func (c Config) withDefaults() (Config, error) {
	if c.ClusterToken == "" {
		c.ClusterToken = DefaultClusterToken
	}
	if c.PeerListener == nil {
		return c, fmt.Errorf("%w: no peer listener", ErrInvalidConfig)
	}
	if len(c.PeerURLs) == 0 {
		return c, fmt.Errorf("%w: no advertised peer URL", ErrInvalidConfig)
	}
	if c.ID == 0 {
		c.ID = MemberID(c.ClusterToken, c.PeerURLs)
	}
	c.InitialCluster = slices.Clone(c.InitialCluster)
	for i := range c.InitialCluster {
		p := &c.InitialCluster[i]
		if p.ID == 0 {
			p.ID = MemberID(c.ClusterToken, p.PeerURLs)
		}
	}
	if c.TickInterval <= 0 {
		c.TickInterval = 100 * time.Millisecond
	}
	if c.ElectionTicks <= 0 {
		c.ElectionTicks = 10
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 5*time.Second + 2*time.Duration(c.ElectionTicks)*c.TickInterval
	}
	if c.HealthInterval <= 0 {
		c.HealthInterval = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// memberConfig is the member's part of c.
func (c *Config) memberConfig() member.Config {
	mc := member.Config{
		ID:              c.ID,
		FS:              c.FS,
		Dir:             c.Dir,
		Storage:         c.Storage,
		Join:            c.Join,
		ElectionTick:    c.ElectionTicks,
		HeartbeatTick:   1,
		SnapshotEntries: c.SnapshotEntries,
		CatchUpEntries:  c.CatchUpEntries,
		Clock:           c.Clock,
		Logger:          c.Logger,
		MaxTxnOps:       c.MaxTxnOps,
	}
	if !c.Join {
		mc.Peers = c.InitialCluster
	}
	return mc
}
