package kv

import "errors"

// Lease errors. They are defined once, here; the engine and every layer
// above it return these values (wrapped with context), so callers test
// them with errors.Is.
var (
	// ErrLeaseNotFound: a lease ID that names no live lease (never
	// granted, revoked, or expired), given to Revoke, KeepAlive,
	// TimeToLive, or a put that attaches a key to it.
	ErrLeaseNotFound = errors.New("revkv: lease not found")
	// ErrLeaseExists: Grant with a caller-chosen ID that a live lease has.
	ErrLeaseExists = errors.New("revkv: lease already exists")
	// ErrLeaseTTLTooLarge: Grant with a TTL above MaxLeaseTTL.
	ErrLeaseTTLTooLarge = errors.New("revkv: lease TTL is too large")
)

// MaxLeaseTTL is the largest TTL, in seconds, a lease may be granted:
// etcd's limit (about 285 years). A deadline past what an int64 of
// nanoseconds since 1970 holds (year 2262) is kept at that maximum.
const MaxLeaseTTL = 9_000_000_000
