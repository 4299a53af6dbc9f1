package revkv

import (
	"time"

	"github.com/revkv/revkv/engine"
)

// Lease and LeaseStatus describe leases; see engine.Lease.
type (
	Lease       = engine.Lease
	LeaseStatus = engine.LeaseStatus
)

// Grant grants a lease of ttl seconds, due ttl seconds from now on the
// DB's clock (Options.Engine.Clock). id 0 lets the DB choose a new
// positive ID; another positive id is used as given, and is
// kv.ErrLeaseExists if a live lease has it. A ttl below 1 is taken as 1;
// one above kv.MaxLeaseTTL is kv.ErrLeaseTTLTooLarge. Granting does not
// move the revision; the lease is durable when Grant returns, and a
// restart keeps what is left of its TTL.
//
// Put a key with WithLease(id) to attach it: when the lease is revoked, or
// expires (its deadline passes with no KeepAlive), every key attached to
// it is deleted, all at one revision.
func (db *DB) Grant(id, ttl int64) (Lease, error) { return db.e.Grant(id, ttl) }

// Revoke removes a lease and deletes every key attached to it, at one new
// revision (unchanged if it had none), which it returns. A lease that is
// not live is kv.ErrLeaseNotFound.
func (db *DB) Revoke(id int64) (rev int64, err error) { return db.e.Revoke(id) }

// KeepAlive renews a lease, due its granted TTL from now, and returns that
// TTL. A lease that is not live is kv.ErrLeaseNotFound.
func (db *DB) KeepAlive(id int64) (ttl int64, err error) { return db.e.KeepAlive(id) }

// TimeToLive reports a live lease's remaining and granted TTL, and with
// keys the keys attached to it. A lease that is not live is
// kv.ErrLeaseNotFound.
func (db *DB) TimeToLive(id int64, keys bool) (LeaseStatus, error) {
	return db.e.TimeToLive(id, keys)
}

// Leases returns the live leases in ID order.
func (db *DB) Leases() ([]Lease, error) { return db.e.Leases() }

// ExpiredLeases returns the IDs of the live leases due at or before now,
// soonest first. It only reads. With Options.Engine.ManualLeaseExpiry (or
// a consistent index), leases expire only when the caller says so: a
// replicated deployment's leader lists them here and applies a Revoke for
// each from its log.
func (db *DB) ExpiredLeases(now time.Time) []int64 { return db.e.ExpiredLeases(now) }

// ExpireLeases revokes every lease due at or before now, each at a
// revision of its own, and returns how many it revoked: what the DB's own
// expiry timer does, for a DB opened with Options.Engine.ManualLeaseExpiry.
func (db *DB) ExpireLeases(now time.Time) (int, error) { return db.e.ExpireLeases(now) }
