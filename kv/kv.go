// Package kv holds the value types and error values that every revkv package
// shares: a key's value at a revision (KeyValue), a change to a key (Event),
// and a position in the history (Revision).
//
// It depends on nothing but the standard library, so that packages that only
// consume history (watchers, persisters, snapshot readers) need not import the
// engine.
package kv

import (
	"errors"
	"fmt"
)

// Size limits on keys and values. The engine refuses larger ones with
// ErrTooLarge, so that decoders of files (snapshots, logs) can refuse larger
// lengths as corrupt instead of trusting them.
const (
	MaxKeySize   = 64 << 10
	MaxValueSize = 16 << 20
	MaxBatchSize = 256 << 20 // one revision's changes; see engine.MaxBatchSize
)

// Errors returned by revkv packages. Each failure has one value, defined
// here; other packages re-export a name only where the seed API demands it
// (package engine: the first five). Callers test for them with errors.Is;
// returned errors may wrap them with context (a revision, a file, an
// offset).
//
// The first five carry the names of etcd's early v3 storage package, so that
// code written against that API reads the same; the txn errors carry the
// names of the etcd v3 API's errors they stand for.
var (
	// ErrTxnIDMismatch: a Txn* call named a txn that is not the open one.
	ErrTxnIDMismatch = errors.New("revkv: txn id mismatch")
	// ErrCompacted: the revision asked for is below the compacted revision.
	ErrCompacted = errors.New("revkv: required revision has been compacted")
	// ErrFutureRev: the revision asked for is above the current revision.
	ErrFutureRev = errors.New("revkv: required revision is a future revision")
	// ErrCanceled: the watcher or operation was canceled. A canceled
	// watch's last response says why in its Err: ErrCanceled (Cancel),
	// ErrCompacted (it needed history that was compacted), or ErrClosed
	// (its watcher or store was closed).
	ErrCanceled = errors.New("revkv: watcher is canceled")
	// ErrRevisionNotFound: a revision that should be in the history is not
	// (for example, a snapshot stream with a gap in it).
	ErrRevisionNotFound = errors.New("revkv: revision not found")

	// ErrClosed: the store (or watcher, or snapshot) was closed.
	ErrClosed = errors.New("revkv: closed")
	// ErrEmptyKey: a nil or empty key where a key is required (Put, or a
	// single-key Range or DeleteRange).
	ErrEmptyKey = errors.New("revkv: key is empty")
	// ErrTooLarge: a key or value above the size limits (MaxKeySize,
	// MaxValueSize in package engine).
	ErrTooLarge = errors.New("revkv: key or value too large")
	// ErrCorrupt: bytes read back from a snapshot or log are not a valid
	// encoding (bad magic, version, checksum, length or ordering).
	ErrCorrupt = errors.New("revkv: corrupt data")
	// ErrStopped: the engine stopped accepting writes after its persister
	// failed (fail-stop); the error also wraps the cause.
	ErrStopped = errors.New("revkv: stopped after a persistence failure")
	// ErrInvalidOptions: options that contradict each other (revkv.Open
	// given both a directory and a persister).
	ErrInvalidOptions = errors.New("revkv: invalid options")
	// ErrNotEmpty: a snapshot loaded into a store that is not new.
	ErrNotEmpty = errors.New("revkv: store is not empty")

	// ErrTxnEnded: an operation on a txn that has ended: committed,
	// aborted, or ended by its context or by Close. When the txn was ended
	// for it, the error also wraps the cause (the context's error, or
	// ErrClosed).
	ErrTxnEnded = errors.New("revkv: txn has ended")
	// ErrTxnFailed: Commit of a txn in which an operation failed. The txn
	// is aborted instead: nothing it wrote is applied. The error also wraps
	// the first failure.
	ErrTxnFailed = errors.New("revkv: txn aborted after a failed operation")
	// ErrKeyNotFound: a put with IgnoreValue or IgnoreLease of a key that
	// does not exist (etcd's "key not found").
	ErrKeyNotFound = errors.New("revkv: key not found")
	// ErrValueProvided: a put with IgnoreValue that also gives a value.
	ErrValueProvided = errors.New("revkv: value is provided")
	// ErrLeaseProvided: a put with IgnoreLease that also gives a lease.
	ErrLeaseProvided = errors.New("revkv: lease is provided")
	// ErrDuplicateKey: a txn that would write a key twice (see
	// TxnRequest for the rule).
	ErrDuplicateKey = errors.New("revkv: duplicate key given in txn request")
	// ErrTooManyOps: a txn with more compares or operations in a branch
	// than the limit (see engine.Options.MaxTxnOps).
	ErrTooManyOps = errors.New("revkv: too many operations in txn request")
	// ErrInvalidSortOption: a range with a SortOrder or SortTarget that is
	// not one of the defined values.
	ErrInvalidSortOption = errors.New("revkv: invalid sort option")

	// ErrEmptyRange: a watch on a range with end <= key would see nothing.
	ErrEmptyRange = errors.New("revkv: empty key range")
	// ErrWatchNotFound: Cancel of an ID that is not an open watch.
	ErrWatchNotFound = errors.New("revkv: no such watch")
	// ErrDuplicateWatchID: a watch request named an ID already open on its
	// watcher.
	ErrDuplicateWatchID = errors.New("revkv: duplicate watch ID")
)

// Revision is a position in the history: Main counts write transactions that
// changed something (store-wide, from 2 for the first write), and Sub numbers
// the changes inside one transaction from 0.
type Revision struct {
	Main int64
	Sub  int64
}

// Less reports whether r comes before o in the history.
func (r Revision) Less(o Revision) bool {
	if r.Main != o.Main {
		return r.Main < o.Main
	}
	return r.Sub < o.Sub
}

// String formats r as "main.sub".
func (r Revision) String() string { return fmt.Sprintf("%d.%d", r.Main, r.Sub) }

// KeyValue is a key's value as of some revision.
//
// Key and Value returned by revkv share memory with the store: they are
// immutable, and callers must not modify them. Holding one keeps the
// memory it lies in alive: a key's record, or, for the value of an
// update, the engine's page of recent values (4 KiB); copy what you keep
// for long.
type KeyValue struct {
	Key   []byte
	Value []byte
	// CreateRevision is the main revision of the put that created this
	// incarnation of the key (a put after a delete starts a new one).
	CreateRevision int64
	// ModRevision is the main revision of the last change to the key.
	ModRevision int64
	// Version is 1 on creation and grows by one with each put; a delete resets
	// it, so the next put is version 1 again.
	Version int64
	// Lease is the lease ID given to the put, or 0.
	Lease int64
}

// EventType says what an Event did to its key.
type EventType uint8

const (
	// Put set a key's value.
	Put EventType = iota
	// Delete removed a key.
	Delete
)

// String returns "PUT" or "DELETE".
func (t EventType) String() string {
	switch t {
	case Put:
		return "PUT"
	case Delete:
		return "DELETE"
	}
	return fmt.Sprintf("EventType(%d)", uint8(t))
}

// Event is one change in the history. For a Put, KV is the key's new value.
// For a Delete, KV carries the key and ModRevision (the delete's main
// revision); its other fields are zero.
type Event struct {
	Type EventType
	KV   KeyValue
	// Sub is the change's position inside its main revision (KV.ModRevision).
	Sub int64
	// PrevKV is the key's value before the event's main revision, when a
	// watcher asked for it and the key existed then; otherwise nil.
	PrevKV *KeyValue
}

// Revision returns the event's position in the history.
func (e Event) Revision() Revision { return Revision{Main: e.KV.ModRevision, Sub: e.Sub} }

// KeyValueHash is the hash of a store's retained history up to a revision.
// Two stores with the same CompactRev and Hash at the same Rev hold the same
// retained history, however they got there (written live, compacted, or
// restored from a snapshot).
type KeyValueHash struct {
	Hash       uint32
	CompactRev int64
	Rev        int64
}
