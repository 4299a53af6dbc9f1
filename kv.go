package revkv

import (
	"github.com/revkv/revkv/kv"
)

// Get returns the current value of key, and whether it exists. An empty
// key is kv.ErrEmptyKey.
func (db *DB) Get(key []byte) (KeyValue, bool, error) {
	res, err := db.e.RangeWithOptions(key, nil, RangeOptions{})
	if err != nil || len(res.KVs) == 0 {
		return KeyValue{}, false, err
	}
	return res.KVs[0], true, nil
}

// Range reads the keys selected by key and end at opts.Rev (<= 0: the
// current revision). end nil selects the single key; a non-nil empty end
// every key >= key; otherwise [key, end). opts sorts, filters, limits and
// counts as kv.RangeOptions says. A revision above the current one is
// kv.ErrFutureRev, one below the compacted one kv.ErrCompacted; a failed
// read still reports the current revision in the result.
func (db *DB) Range(key, end []byte, opts RangeOptions) (RangeResult, error) {
	return db.e.RangeWithOptions(key, end, opts)
}

// An OpOption modifies a Put or a Delete, as etcd's client options do.
type OpOption func(*kv.Op)

// WithLease attaches the put key to a lease (see Grant): the key is
// deleted when the lease is revoked or expires. An ID that names no live
// lease is kv.ErrLeaseNotFound.
func WithLease(id int64) OpOption { return func(o *kv.Op) { o.Put.Lease = id } }

// WithPrevKV makes a Put return the key's value before it, and a Delete
// the values of the keys it deleted.
func WithPrevKV() OpOption {
	return func(o *kv.Op) { o.Put.PrevKV, o.Delete.PrevKV = true, true }
}

// WithIgnoreValue makes a Put keep the key's current value (the value
// given must be empty, else kv.ErrValueProvided), and WithIgnoreLease its
// current lease: the key must exist (kv.ErrKeyNotFound).
func WithIgnoreValue() OpOption { return func(o *kv.Op) { o.Put.IgnoreValue = true } }

// WithIgnoreLease: see WithIgnoreValue.
func WithIgnoreLease() OpOption { return func(o *kv.Op) { o.Put.IgnoreLease = true } }

// Put sets key to value at a new revision. An empty key is
// kv.ErrEmptyKey; a key or value above the size limits kv.ErrTooLarge. On
// error nothing changes.
func (db *DB) Put(key, value []byte, opts ...OpOption) (PutResult, error) {
	if len(opts) == 0 {
		rev, err := db.e.Put(key, value)
		return PutResult{Rev: rev}, err
	}
	var op kv.Op
	for _, o := range opts {
		o(&op)
	}
	return db.e.PutWithOptions(key, value, op.Put)
}

// Delete deletes the keys selected by key and end (as in Range), all at
// one new revision, and returns how many it deleted and the revision
// (unchanged if it deleted nothing). On error nothing changes.
func (db *DB) Delete(key, end []byte, opts ...OpOption) (DeleteResult, error) {
	var op kv.Op
	for _, o := range opts {
		o(&op)
	}
	if !op.Delete.PrevKV {
		n, rev, err := db.e.DeleteRange(key, end)
		return DeleteResult{Deleted: n, Rev: rev}, err
	}
	return db.e.DeleteRangeWithOptions(key, end, op.Delete)
}

// The result types of Put and Delete.
type (
	PutResult    = kv.PutResult
	DeleteResult = kv.DeleteResult
)
