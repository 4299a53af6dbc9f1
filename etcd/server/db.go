package server

import (
	"context"
	"math"

	"google.golang.org/grpc"

	"github.com/revkv/revkv"
)

// DB adapts a revkv DB to a Backend that is also a Lessor. The Server
// does not close it.
func DB(db *revkv.DB) Backend { return dbBackend{db} }

// dbBackend is a *revkv.DB, with the adapters the Server needs.
type dbBackend struct{ *revkv.DB }

// GRPCOptions returns the grpc.ServerOptions etcd serves with: messages up
// to Options.MaxRequestBytes plus 512 KiB, responses of any size, and no
// limit on concurrent streams per connection (each watch and keep-alive is
// one).
func (s *Server) GRPCOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(s.maxMessage()),
		grpc.MaxSendMsgSize(math.MaxInt32),
		grpc.MaxConcurrentStreams(math.MaxUint32),
	}
}

// The Lessor methods, on the DB's leases.

// Compact compacts the DB (ctx is not needed: it is done at once).
func (b dbBackend) Compact(_ context.Context, rev int64) error { return b.DB.Compact(rev) }

func (b dbBackend) LeaseGrant(_ context.Context, id, ttl int64) (int64, int64, error) {
	l, err := b.Grant(id, ttl)
	return l.ID, l.TTL, err
}

func (b dbBackend) LeaseRevoke(_ context.Context, id int64) error {
	_, err := b.Revoke(id)
	return err
}

func (b dbBackend) LeaseKeepAlive(_ context.Context, id int64) (int64, error) {
	return b.KeepAlive(id)
}

func (b dbBackend) LeaseTimeToLive(_ context.Context, id int64, keys bool) (int64, int64, [][]byte, error) {
	st, err := b.TimeToLive(id, keys)
	return st.TTL, st.GrantedTTL, st.Keys, err
}

func (b dbBackend) LeaseIDs() ([]int64, error) {
	ls, err := b.Leases()
	ids := make([]int64, len(ls))
	for i, l := range ls {
		ids[i] = l.ID
	}
	return ids, err
}

var _ Lessor = dbBackend{}
