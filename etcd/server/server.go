// Package server serves etcd's v3 gRPC API (go.etcd.io/etcd/api/v3,
// v3.7.3) on a revkv store, so that etcd's own clients (clientv3,
// etcdctl, Kubernetes' storage layer) use revkv unchanged.
//
// On a plain Backend (DB) the server is a single-member cluster: every
// response header carries a fixed cluster ID, member ID and raft term, the
// member is always the leader, and the revision in each header is the
// store's. A Backend that is also Replicated (package cluster's Node) is
// one member of a raft cluster: headers, Status, the Cluster service,
// MoveLeader and linearizable reads are the cluster's (see Replicated). Requests are
// validated as etcd validates them, and every error is the rpctypes error
// etcd returns, because clientv3 maps errors by their text.
//
//	srv := server.New(server.DB(db), server.Options{})
//	g := grpc.NewServer(srv.GRPCOptions()...)
//	srv.Register(g)
//	go g.Serve(lis)
//	...
//	srv.Close(); g.GracefulStop(); db.Close()
//
// (see Example). The etcdtest package wraps this for tests, and the
// revkv-etcd command for a standalone server.
//
// A Server holds no goroutine of its own but a short-lived one that
// measures the store for the quota (at start, and after compactions; Close
// waits for it): each stream (watch, keep-alive) runs in the goroutines
// gRPC gives it, plus one receiving goroutine per stream, all of which end
// with the stream.
package server

import (
	"context"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/kv"
	"github.com/revkv/revkv/watch"
)

// Backend is what a Server needs of a store: DB(db) makes one of a
// *revkv.DB.
type Backend interface {
	// Rev is the current revision, CompactRev the compacted one.
	Rev() int64
	CompactRev() int64
	// Range reads keys at a revision (see revkv.DB.Range).
	Range(key, end []byte, opts kv.RangeOptions) (kv.RangeResult, error)
	// Txn runs a conditional txn at one revision, or nothing.
	Txn(ctx context.Context, req *kv.TxnRequest) (*kv.TxnResponse, error)
	// Compact drops history below rev. A replicated Backend waits for the
	// compaction to go through the log, for up to ctx.
	Compact(ctx context.Context, rev int64) error
	// HashByRev hashes the retained history up to rev (<= 0: current).
	HashByRev(rev int64) (kv.KeyValueHash, error)
	// NewWatcher returns a stream of watches.
	NewWatcher() *watch.Watcher
	// Snapshot returns a point-in-time copy that can be written out.
	Snapshot() (*engine.Snapshot, error)
}

// Options configure a Server. The zero value serves a single member named
// "default" with etcd's defaults.
type Options struct {
	// Name is the member's name (MemberList, Status); "" means "default".
	Name string
	// ClientURLs are the member's advertised client URLs (MemberList).
	ClientURLs []string
	// ClusterID and MemberID are the IDs in every response header; 0
	// derives stable ones from Name.
	ClusterID, MemberID uint64
	// RaftTerm is the term in every header; 0 means 2, what a fresh
	// single-member etcd reports once it has elected itself.
	RaftTerm uint64
	// MaxTxnOps bounds the compares and the ops of each branch of a txn;
	// 0 means 128 (etcd's default).
	MaxTxnOps int
	// MaxRequestBytes is etcd's --max-request-bytes: a write request
	// (put, delete, txn with a write) larger than it fails with "request
	// is too large"; 0 means 1.5 MiB, etcd's default. As in etcd, gRPC
	// takes messages up to it plus 512 KiB (GRPCOptions), and the
	// responses of watches that ask for fragments are split at that size.
	MaxRequestBytes int
	// ProgressInterval is how often a watch that asked for progress
	// notifications and got no event gets one; 0 means 10 minutes.
	ProgressInterval time.Duration
	// QuotaBackendBytes is etcd's --quota-backend-bytes: a write that
	// would take the store past it raises the NOSPACE alarm (see
	// quota.go); 0 means 2 GiB, etcd's default, and below 0 no quota.
	QuotaBackendBytes int64
	// MinLeaseTTL is the shortest TTL a lease is granted (a shorter one is
	// raised to it, as etcd does); 0 means 2 seconds, etcd's default with
	// its default election timeout.
	MinLeaseTTL int64
	// Logger receives the server's records; nil discards them.
	Logger *slog.Logger
}

// Version is the etcd version the server reports (Status, and the
// etcdserver/etcdcluster versions a client may check).
const Version = "3.7.3"

// Server serves etcd's v3 API on a Backend. Its methods are safe for
// concurrent use. Register it on a grpc.Server; stop that server before
// calling Close.
type Server struct {
	b     Backend
	lease Lessor     // nil if the backend has no leases
	repl  Replicated // nil if the backend is a single member
	opts  Options
	log   *slog.Logger
	hdr   header
	start time.Time

	quota quota

	mu      sync.Mutex
	streams map[chan struct{}]struct{} // stop channels of open streams
	closed  bool

	kv          kvServer
	watch       watchServer
	leases      leaseServer
	maintenance maintenanceServer
	cluster     clusterServer
	auth        authServer
}

// New returns a Server on b. If b also implements Lessor, the Lease
// service serves its leases; otherwise every lease call fails as for an
// unknown lease.
func New(b Backend, opts Options) *Server {
	if opts.Name == "" {
		opts.Name = "default"
	}
	if opts.ClusterID == 0 {
		opts.ClusterID = hashID("cluster/" + opts.Name)
	}
	if opts.MemberID == 0 {
		opts.MemberID = hashID("member/" + opts.Name)
	}
	if opts.RaftTerm == 0 {
		opts.RaftTerm = 2
	}
	if opts.MaxTxnOps <= 0 {
		opts.MaxTxnOps = 128
	}
	if opts.MaxRequestBytes <= 0 {
		opts.MaxRequestBytes = 3 << 19
	}
	if opts.ProgressInterval <= 0 {
		opts.ProgressInterval = 10 * time.Minute
	}
	if opts.QuotaBackendBytes == 0 {
		opts.QuotaBackendBytes = defaultQuotaBytes
	}
	if opts.MinLeaseTTL <= 0 {
		opts.MinLeaseTTL = 2
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		b:       b,
		opts:    opts,
		log:     log,
		start:   time.Now(),
		streams: map[chan struct{}]struct{}{},
	}
	s.repl, _ = b.(Replicated)
	s.hdr = header{ids: s.replicaIDs, rev: b.Rev}
	s.quota.limit = opts.QuotaBackendBytes
	s.remeasure()
	s.lease, _ = b.(Lessor)
	s.kv.s = s
	s.watch.s = s
	s.leases.s = s
	s.maintenance.s = s
	s.cluster.s = s
	s.auth.s = s
	return s
}

// grpcOverhead is what etcd allows a gRPC message above MaxRequestBytes.
const grpcOverhead = 512 << 10

// maxMessage is the largest gRPC message the server takes, and the size
// at which fragmenting watches split their responses.
func (s *Server) maxMessage() int { return s.opts.MaxRequestBytes + grpcOverhead }

// checkSize refuses a write request above MaxRequestBytes, as etcd
// refuses to propose one.
func (s *Server) checkSize(m proto.Message) error {
	if proto.Size(m) > s.opts.MaxRequestBytes {
		return rpctypes.ErrGRPCRequestTooLarge
	}
	return nil
}

// hashID derives a stable non-zero ID from a name.
func hashID(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	if id := h.Sum64(); id != 0 {
		return id
	}
	return 1
}

// Register registers the server's services (KV, Watch, Lease, Maintenance,
// Cluster, Auth) on g.
func (s *Server) Register(g grpc.ServiceRegistrar) {
	pb.RegisterKVServer(g, &s.kv)
	pb.RegisterWatchServer(g, &s.watch)
	pb.RegisterLeaseServer(g, &s.leases)
	pb.RegisterMaintenanceServer(g, &s.maintenance)
	pb.RegisterClusterServer(g, &s.cluster)
	pb.RegisterAuthServer(g, &s.auth)
}

// Close ends every open stream (watches and lease keep-alives; each
// returns to its client with etcd's "server stopped" error, on which
// clientv3 retries elsewhere or reports it), refuses new ones, and waits
// for a measurement of the store's size (for the quota) that runs. It
// does not close the Backend, and does not wait for the streams: their
// goroutines end as their handlers return. grpc.Server.GracefulStop waits
// for every stream, so call Close before it; close the Backend after.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	for stop := range s.streams {
		close(stop)
	}
	clear(s.streams)
	s.mu.Unlock()
	s.quota.waitMeasured()
}

// track registers a stream: its stop channel is closed by Close. It
// returns false if the server is closed; otherwise call untrack when the
// stream ends.
func (s *Server) track() (stop chan struct{}, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, false
	}
	stop = make(chan struct{})
	s.streams[stop] = struct{}{}
	return stop, true
}

func (s *Server) untrack(stop chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.streams, stop) // Close may have removed (and closed) it
}

// header fills response headers.
type header struct {
	ids func() (cluster, member, term uint64)
	rev func() int64
}

// fill sets the cluster's fields of h and, if it has none, the store's
// current revision.
func (h *header) fill(rh *pb.ResponseHeader) *pb.ResponseHeader {
	rh.ClusterId, rh.MemberId, rh.RaftTerm = h.ids()
	if rh.Revision == 0 {
		rh.Revision = h.rev()
	}
	return rh
}

// at returns a filled header at revision rev.
func (h *header) at(rev int64) *pb.ResponseHeader {
	rh := &pb.ResponseHeader{Revision: rev}
	rh.ClusterId, rh.MemberId, rh.RaftTerm = h.ids()
	return rh
}

// now returns a filled header at the current revision.
func (h *header) now() *pb.ResponseHeader { return h.at(h.rev()) }
