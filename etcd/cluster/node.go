package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/revkv/revkv"
	"github.com/revkv/revkv/etcd/member"
	"github.com/revkv/revkv/etcd/server"
)

// Node is a running cluster member: a member.Member driven by one
// goroutine (ticks, peer messages, Ready), its peer Transport, and the
// server.Backend, server.Lessor and server.Replicated an etcd API server
// serves from. Its methods are safe for concurrent use.
//
// Txns (read-only ones too: see Txn), compactions, lease grants and
// revokes and membership changes are proposed and return once this member
// has applied them; ranges are served by the member's DB, made
// linearizable by ReadBarrier.
// A proposal whose outcome is unknown (the leader changed, or it timed
// out) fails with server.ErrLeaderChanged or server.ErrTimeout: it may
// still be applied.
type Node struct {
	cfg       Config
	log       *slog.Logger
	m         *member.Member
	tr        *Transport
	clusterID uint64

	kickc      chan struct{} // cap 1: run Ready soon
	stop       chan struct{} // closed by Close
	done       chan struct{} // closed when the loop returns
	removed    chan struct{} // closed (once, by markRemoved) when the member learns it was removed
	removeOnce sync.Once
	failed     chan struct{} // closed (once, by fail) when the member stopped on an error
	failOnce   sync.Once
	failErr    error // set before failed is closed

	// status is the member's status after the last Ready, so that
	// headers and Status do not wait for the member's lock (held while
	// Ready writes the log).
	status atomic.Pointer[member.Status]
	// dbp is the member's DB after the last Ready (see db).
	dbp atomic.Pointer[revkv.DB]
	// peers is the member table the transport was last given.
	peers []member.Peer

	publisher sync.WaitGroup // the goroutine that publishes the attributes

	closeOnce sync.Once
	closeErr  error
}

// Start opens the member (bootstrapping, restarting or joining, see
// Config), starts serving its peers on cfg.PeerListener and runs it. Close
// the Node when done. If Start fails, it closes cfg.PeerListener.
func Start(cfg Config) (*Node, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		if cfg.PeerListener != nil {
			cfg.PeerListener.Close()
		}
		return nil, err
	}
	m, err := member.Open(c.memberConfig())
	if err != nil {
		c.PeerListener.Close()
		return nil, fmt.Errorf("cluster: start member %x: %w", c.ID, err)
	}
	n := &Node{
		cfg:       c,
		log:       c.Logger.With("member", fmt.Sprintf("%x", c.ID)),
		m:         m,
		clusterID: ClusterID(c.ClusterToken),
		kickc:     make(chan struct{}, 1),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
		removed:   make(chan struct{}),
		failed:    make(chan struct{}),
	}
	n.tr = NewTransport(TransportConfig{ID: c.ID, Name: c.Name, ClientURLs: c.ClientURLs, Handler: (*handler)(n), Logger: n.log})
	if c.Join {
		// A joining member's table is empty until the leader's entries or
		// snapshot arrive, but it must answer the leader before that: it
		// reaches the members it was told of.
		for _, p := range c.InitialCluster {
			if p.ID != c.ID {
				if err := n.tr.AddPeer(p.ID, p.PeerURLs); err != nil {
					n.log.Warn("peer", "id", fmt.Sprintf("%x", p.ID), "err", err)
				}
			}
		}
	}
	n.syncPeers()
	n.refresh()
	n.tr.Serve(c.PeerListener)
	go n.run()
	n.publisher.Go(n.publish)
	n.log.Info("member started", "name", c.Name, "peer-urls", c.PeerURLs, "join", c.Join)
	return n, nil
}

// ID returns the member's raft ID.
func (n *Node) ID() uint64 { return n.cfg.ID }

// Member returns the member the Node drives (its DB, Status, Members).
func (n *Node) Member() *member.Member { return n.m }

// Transport returns the peer transport (Block and Unblock partition the
// member in tests).
func (n *Node) Transport() *Transport { return n.tr }

// Close stops the member abruptly (no leadership transfer: the others
// elect a new leader): the loop and the transport end, requests in flight
// fail with server.ErrStopped, and the member's log and DB are closed. No
// goroutine of the Node's is left when it returns. Later calls return the
// first call's result.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		close(n.stop)
		<-n.done
		n.publisher.Wait()
		n.tr.Close()
		n.closeErr = n.m.Close()
		n.log.Info("member stopped")
	})
	return n.closeErr
}

// Stop stops the member gracefully: a leader first hands its leadership
// to another voting member (waiting up to ctx, or two election timeouts),
// so that the cluster need not wait an election timeout to notice; then
// Close. As etcd does on shutdown.
func (n *Node) Stop(ctx context.Context) error {
	n.handOver(ctx, "stop")
	return n.Close()
}

// handOver moves the leadership, if this member has it, to the first
// voter it can reach, waiting up to two election timeouts; why names the
// occasion in the log.
func (n *Node) handOver(ctx context.Context, why string) {
	if st := n.status.Load(); st.Leader != n.cfg.ID || n.stopped() != nil {
		return
	}
	for _, p := range n.m.Members() {
		if p.ID == n.cfg.ID || p.IsLearner || n.tr.ActiveSince(p.ID).IsZero() {
			continue // not a voter this member can reach
		}
		tctx, cancel := context.WithTimeout(ctx, 2*time.Duration(n.cfg.ElectionTicks)*n.cfg.TickInterval)
		err := n.MoveLeader(tctx, p.ID)
		cancel()
		n.log.Info("leadership handed over", "at", why, "to", fmt.Sprintf("%x", p.ID), "err", err)
		return
	}
}

// publish records this member's name and client URLs in the member table
// (through the log, as etcd members publish theirs at start), unless the
// table has them already; it retries until it succeeds or the Node stops.
func (n *Node) publish() {
	for {
		if n.published() {
			return
		}
		ctx, cancel := n.timeout()
		_, err := n.wait(ctx, n.m.Publish(n.cfg.ID, n.cfg.Name, n.cfg.ClientURLs))
		cancel()
		if err == nil {
			n.log.Info("published name and client URLs", "name", n.cfg.Name, "client-urls", n.cfg.ClientURLs)
			return
		}
		n.log.Debug("publish", "err", err)
		select {
		case <-n.stop:
			return
		case <-n.removed:
			return
		case <-time.After(5 * n.cfg.TickInterval):
		}
	}
}

// published reports whether the member table has this member's name and
// client URLs as configured.
func (n *Node) published() bool {
	for _, p := range n.m.Members() {
		if p.ID == n.cfg.ID {
			return p.Name == n.cfg.Name && slices.Equal(p.ClientURLs, n.cfg.ClientURLs)
		}
	}
	return false
}

// run is the Node's goroutine: it ticks the member, and runs Ready after
// every tick and every kick (a message stepped, a request made), sending
// the messages Ready returns.
func (n *Node) run() {
	defer close(n.done)
	tick := time.NewTicker(n.cfg.TickInterval)
	defer tick.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-tick.C:
			n.m.Tick()
		case <-n.kickc:
		}
		n.ready()
	}
}

// ready runs the member's Ready, which hands the messages to the
// transport as soon as they may go (a leader's before its own log write).
func (n *Node) ready() {
	msgs, err := n.m.ReadySend(n.tr.Send)
	n.tr.Send(msgs)
	if err != nil {
		n.fail(err)
	}
	n.syncPeers()
	n.refresh()
}

// kick asks the loop for a Ready soon.
func (n *Node) kick() {
	select {
	case n.kickc <- struct{}{}:
	default:
	}
}

// refresh caches the member's DB and status. Only the loop (and Start, before
// it) calls it.
func (n *Node) refresh() {
	n.dbp.Store(n.m.DB())
	st := n.m.Status()
	if st.Removed {
		n.markRemoved("applied its removal")
	}
	n.status.Store(&st)
}

// markRemoved records that the member was removed from the cluster:
// from its own log, or from a peer that refused its messages (a member
// removed while cut off never gets the entry that removes it).
func (n *Node) markRemoved(how string) {
	n.removeOnce.Do(func() {
		n.log.Warn("this member was removed from the cluster", "how", how)
		close(n.removed)
	})
}

// fail records that the member stopped for good on err (a storage
// failure, or a log entry or snapshot that does not decode): the Node
// serves nothing more.
func (n *Node) fail(err error) {
	n.failOnce.Do(func() {
		n.log.Error("member failed", "err", err)
		n.failErr = err
		close(n.failed)
	})
}

// Failed is closed when the member stopped for good on an error (Err
// returns it): a storage failure (after which nothing it wrote can be
// trusted to be durable) or a corrupt log. It serves nothing more
// (requests fail with server.ErrStopped); close it, and restart it once
// the cause is fixed.
func (n *Node) Failed() <-chan struct{} { return n.failed }

// Err returns the error the member failed with, once Failed is closed;
// nil before.
func (n *Node) Err() error {
	select {
	case <-n.failed:
		return n.failErr
	default:
		return nil
	}
}

// Removed is closed when the member learns that it was removed from the
// cluster: it serves nothing more (requests fail with server.ErrStopped);
// close it.
func (n *Node) Removed() <-chan struct{} { return n.removed }

// syncPeers gives the transport the member table's peers when it changed.
func (n *Node) syncPeers() {
	ps := n.m.Members()
	if slices.EqualFunc(ps, n.peers, samePeer) {
		return
	}
	for _, old := range n.peers {
		if !slices.ContainsFunc(ps, func(p member.Peer) bool { return p.ID == old.ID }) {
			n.tr.RemovePeer(old.ID)
		}
	}
	for _, p := range ps {
		if p.ID == n.cfg.ID {
			continue
		}
		if err := n.tr.AddPeer(p.ID, p.PeerURLs); err != nil {
			n.log.Warn("peer", "id", fmt.Sprintf("%x", p.ID), "err", err)
		}
	}
	n.peers = ps
}

func samePeer(a, b member.Peer) bool {
	return a.ID == b.ID && slices.Equal(a.PeerURLs, b.PeerURLs)
}

// handler is the Node as the transport's Handler.
type handler Node

func (h *handler) Step(ctx context.Context, m *raftpb.Message) error {
	n := (*Node)(h)
	if err := n.m.Step(m); err != nil {
		// A stopped member drops messages; raft copes with the rest.
		n.log.Debug("step", "err", err)
	}
	n.kick()
	return nil
}

func (h *handler) LeaseKeepAlive(ctx context.Context, id int64) (int64, error) {
	return h.m.KeepAlive(id)
}

func (h *handler) LeaseTimeToLive(ctx context.Context, id int64, keys bool) (int64, int64, [][]byte, error) {
	if st := h.status.Load(); st.Leader != st.ID {
		return 0, 0, nil, fmt.Errorf("lease TimeToLive on member %x: %w", st.ID, member.ErrNotLeader)
	}
	ls, err := h.m.TimeToLive(id, keys)
	return ls.TTL, ls.GrantedTTL, ls.Keys, err
}

func (h *handler) MemberPromote(ctx context.Context, id uint64) error {
	_, err := (*Node)(h).untilLeader(ctx, func() (*member.Pending, error) { return early(h.m.PromoteMember(id)) })
	return err
}

func (h *handler) ReportUnreachable(peer uint64) { h.m.ReportUnreachable(peer) }

func (h *handler) IsRemoved(peer uint64) bool { return h.m.IsRemoved(peer) }

func (h *handler) ReportRemoved(by uint64) {
	(*Node)(h).markRemoved(fmt.Sprintf("member %x refuses its messages", by))
}

func (h *handler) ReportSnapshot(peer uint64, ok bool) {
	h.m.ReportSnapshot(peer, !ok)
	(*Node)(h).kick()
}

// wait kicks the loop and waits for p: its result, or ctx's error, or
// server.ErrStopped if the Node closes first.
func (n *Node) wait(ctx context.Context, p *member.Pending) (any, error) {
	n.kick()
	select {
	case <-p.Done():
		return p.Result()
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-n.stop:
		return nil, fmt.Errorf("member %x: %w", n.cfg.ID, server.ErrStopped)
	}
}

// retryable reports whether a request failed before it was proposed
// because there is no leader yet (or raft dropped it during a leader
// transfer): it is tried again until a leader is elected.
func retryable(err error) bool {
	return errors.Is(err, member.ErrNoLeader) || errors.Is(err, member.ErrProposalDropped)
}

// untilLeader calls try until it returns an error other than a retryable
// one, for up to the request timeout (or ctx), waiting a tick between
// tries.
func (n *Node) untilLeader(ctx context.Context, try func() (*member.Pending, error)) (any, error) {
	return n.retry(ctx, retryable, try)
}

// retry calls try until it fails with an error again does not accept
// (or succeeds), for up to the request timeout (or ctx), waiting a tick
// between tries.
//
// The request timeout ending a wait is etcd's "request timed out"
// (server.ErrTimeout: the request's fate is unknown); ctx ending it is
// ctx's error.
func (n *Node) retry(ctx context.Context, again func(error) bool, try func() (*member.Pending, error)) (any, error) {
	tctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	defer cancel()
	for {
		p, err := try()
		if err == nil {
			var res any
			res, err = n.wait(tctx, p)
			if err != nil && tctx.Err() != nil && ctx.Err() == nil {
				return nil, fmt.Errorf("member %x: no outcome in %v: %w", n.cfg.ID, n.cfg.RequestTimeout, server.ErrTimeout)
			}
			if err == nil || !again(err) {
				return res, err
			}
		} else if !again(err) {
			return nil, err
		}
		select {
		case <-tctx.Done():
			return nil, err
		case <-n.stop:
			return nil, fmt.Errorf("member %x: %w", n.cfg.ID, server.ErrStopped)
		case <-time.After(n.cfg.TickInterval):
		}
	}
}

// propose proposes req (waiting for a leader if there is none) and waits
// for its outcome.
func (n *Node) propose(ctx context.Context, req member.Request) (any, error) {
	if err := n.stopped(); err != nil {
		return nil, err
	}
	if n.status.Load().IsLearner {
		return nil, fmt.Errorf("member %x: %w", n.cfg.ID, server.ErrNotSupportedForLearner)
	}
	res, err := n.untilLeader(ctx, func() (*member.Pending, error) { return n.m.Propose(req) })
	return res, serverError(err)
}

// timeout returns a context for the calls that take none.
func (n *Node) timeout() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), n.cfg.RequestTimeout)
}

// serverErrors maps the member's errors to the server's, which the server
// maps to etcd's.
var serverErrors = []struct{ from, to error }{
	{member.ErrNoLeader, server.ErrNoLeader},
	{member.ErrProposalDropped, server.ErrNoLeader},
	{member.ErrLeaderChanged, server.ErrLeaderChanged},
	{member.ErrTimeout, server.ErrTimeout},
	{member.ErrStopped, server.ErrStopped},
	{member.ErrNotLeader, server.ErrNotLeader},
	{member.ErrMemberNotFound, server.ErrMemberNotFound},
	{member.ErrIDRemoved, server.ErrMemberNotFound},
	{member.ErrMemberExists, server.ErrPeerURLExists},
	{member.ErrNotLearner, server.ErrMemberNotLearner},
	{member.ErrLearnerNotReady, server.ErrLearnerNotReady},
	{member.ErrLastVoter, server.ErrNotEnoughStartedMembers},
	{ErrUnreachable, server.ErrNoLeader},
}

// serverError wraps err with the server's sentinel for it (both stay
// errors.Is-testable); kv, context and other errors pass unchanged (a
// context error is the client's: gRPC reports it as such).
func serverError(err error) error {
	if err == nil {
		return nil
	}
	for _, m := range serverErrors {
		if errors.Is(err, m.from) {
			return fmt.Errorf("%w: %w", m.to, err)
		}
	}
	return err
}

// db returns the member's DB as of its last Ready, without waiting for the
// member's lock (Ready holds it while it writes the log). A snapshot from
// the leader replaces the DB during a Ready and closes the old one: a
// read of the old one fails with kv.ErrClosed, never returns stale data;
// freshDB gives the new one at once.
func (n *Node) db() *revkv.DB { return n.dbp.Load() }

// freshDB returns the member's current DB, waiting for its lock. (Only
// the loop caches it, so that an older DB is never cached after a newer.)
func (n *Node) freshDB() *revkv.DB { return n.m.DB() }

// stopped returns the error of a Node that no longer serves (closed,
// removed from the cluster, or failed), or nil.
func (n *Node) stopped() error {
	select {
	case <-n.stop:
		return fmt.Errorf("member %x closed: %w", n.cfg.ID, server.ErrStopped)
	case <-n.removed:
		return fmt.Errorf("member %x was removed from the cluster: %w", n.cfg.ID, server.ErrStopped)
	case <-n.failed:
		return fmt.Errorf("member %x failed: %w: %w", n.cfg.ID, server.ErrStopped, n.failErr)
	default:
		return nil
	}
}
