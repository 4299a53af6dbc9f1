package persist

import (
	"errors"
	"io"
)

// ErrInUse is Recover's error for a target of a second store: the
// persister serves another. The store that got it must not close the
// persister, which is not its own.
var ErrInUse = errors.New("revkv/persist: persister already serves another store")

// Persister makes an engine's writes durable and gives them back after a
// restart. The engine calls it like this:
//
//  1. Recover, once, before any write: the persister feeds the target the
//     newest good snapshot it has (LoadSnapshot) and then every batch
//     written after it (Apply). The same store may call it again later
//     (a restore); a persister refuses it for another store (see
//     OwnedTarget): it serves one.
//  2. Append for each committed write, in revision order, from one
//     goroutine at a time (the engine's writer, under its write lock), so
//     Append must not wait for I/O; it returns the batch's position.
//  3. Wait(pos) after releasing the write lock: it returns once the batch
//     at pos is as durable as the persister's policy promises for every
//     write (for a sync-on-every-commit policy: on stable storage). Many
//     writers waiting at once is how group commit shares one sync.
//  4. Sync when the user calls Commit: everything appended so far durable.
//  5. Close, once, after the last Append.
//
// An error from Append, Wait or Sync is final: the engine stops accepting
// writes (fail-stop) and reports it. A persister must not call back into
// the engine from Append or Wait; it may call Target.Snapshot from its own
// goroutines at any time between Recover and Close.
//
// No persister at all (a nil Persister) is a first-class choice: the engine
// is then a pure in-memory store.
type Persister interface {
	Recover(t Target) error
	// Append must not keep b or its Changes slice once it returns: the
	// engine reuses them. The keys and values they point to never change,
	// and may be kept.
	Append(b *Batch) (pos uint64, err error)
	Wait(pos uint64) error
	Sync() error
	Close() error
}

// Target is the engine as a persister sees it.
type Target interface {
	// LoadSnapshot replaces the target's state with the snapshot read from
	// r (the format of package snapshot). An error wrapping kv.ErrCorrupt
	// or snapshot.ErrVersion means r is unusable and leaves the target as
	// it was, so the persister may try an older snapshot.
	LoadSnapshot(r io.Reader) error
	// Apply replays a batch. Batches the state already holds (written
	// before its snapshot) are skipped, so replay may start early; a batch
	// that does not follow the state (a gap, or a change that contradicts
	// it) is an error wrapping kv.ErrCorrupt. b and the memory it points to
	// are valid only during the call: the persister reuses them for the
	// next batch, so the target copies what it keeps.
	Apply(b *Batch) error
	// Snapshot returns an O(1) snapshot of the target's current state,
	// whose WriteTo writes the format of package snapshot. Its Header
	// tells what it covers.
	Snapshot() (Snapshot, error)
}

// OwnedTarget is a Target that tells which store it recovers for. A
// persister serves one store: the engine's Restore recovers into a fresh
// private state whose Owner is the store, while a second store opened on
// the same persister has another Owner, and its Recover is refused.
type OwnedTarget interface {
	Target
	Owner() any
}

// Snapshot is a point-in-time state a persister can write out.
type Snapshot interface {
	Rev() int64
	CompactRev() int64
	ConsistentIndex() uint64
	WriteTo(w io.Writer) (int64, error)
	Close() error
}

// Batch is one durable step of the engine: the changes of one revision, a
// compaction, a change to the lease table, or a new consistent index alone.
type Batch struct {
	// Rev is the store's revision after the batch. A batch with changes
	// makes revision Rev; the other kinds leave the revision as it is.
	Rev int64
	// Index is the consistent index recorded with the batch; 0 if the
	// engine has no ConsistentIndexGetter.
	Index uint64
	// Changes are the puts and deletes of revision Rev, in sub-revision
	// order. Their byte slices belong to the engine and never change: a
	// persister may keep them until it has written them, but not modify
	// them.
	Changes []Change
	// Compaction makes this a compaction to revision Compact (which may be
	// 0: a new store's compacted revision is -1); Changes is then empty.
	Compaction bool
	Compact    int64
	// Leases are changes to the lease table, applied after Changes. With
	// Changes (a revoke or an expiry, whose deletes they travel with) the
	// batch makes revision Rev; alone (a grant, a keep-alive, a revoke of
	// a lease with no keys) it leaves the revision at Rev. See
	// LeaseChange.
	Leases []LeaseChange
	// Prepared is what the target's Prepare made of the batch ahead of
	// Apply (see Preparer); nil if nothing. Persisters set it only in
	// the batches they replay into a Preparer, and write it nowhere.
	Prepared any
}

// Preparer is a Target that can do part of Apply's work on a batch ahead
// of it, and off the goroutine that applies: a persister that decodes its
// log ahead of the replay (on another core) may call Prepare on each batch
// it will hand to Apply, there, and set the batch's Prepared to what it
// returns. Prepare must be safe to call concurrently with Apply and must
// not change the target's state: what it makes only saves Apply work, and
// Apply checks that it fits the batch (a persister may prepare batches it
// never applies, or skip Prepare). b is valid only during the call.
type Preparer interface {
	Target
	Prepare(b *Batch) any
}

// Covered reports whether a state with revision rev, compacted revision
// compactRev and consistent index index already holds the effect of b.
// Every kind of batch is idempotent on such a state, which is what lets a
// persister replay its log from before the snapshot it loaded.
func (b *Batch) Covered(rev, compactRev int64, index uint64) bool {
	switch {
	case len(b.Changes) > 0:
		return b.Rev <= rev
	case len(b.Leases) > 0:
		return b.leasesCovered(rev, index)
	case b.Compaction:
		return b.Compact <= compactRev
	default:
		return b.Index <= index
	}
}

// Change is one put or delete of a key.
type Change struct {
	Key    []byte
	Value  []byte
	Lease  int64
	Delete bool
}
