package engine

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/revkv/revkv/kv"
)

// Errors returned by the engine, with the seed API's names. They are the
// values defined in package kv, so errors.Is works with either name.
var (
	ErrTxnIDMismatch    = kv.ErrTxnIDMismatch
	ErrCompacted        = kv.ErrCompacted
	ErrFutureRev        = kv.ErrFutureRev
	ErrCanceled         = kv.ErrCanceled
	ErrRevisionNotFound = kv.ErrRevisionNotFound
	ErrClosed           = kv.ErrClosed
	ErrEmptyKey         = kv.ErrEmptyKey
	ErrCorrupt          = kv.ErrCorrupt
	ErrTooLarge         = kv.ErrTooLarge
)

// Size limits on keys and values. Puts above them fail with ErrTooLarge, so
// that everything a store holds can be read back from a snapshot, whose
// decoder refuses larger lengths rather than trusting them.
const (
	MaxKeySize   = 64 << 10
	MaxValueSize = 16 << 20
)

// ConsistentIndexGetter reports the index of the consensus-log entry being
// applied. See Options.ConsistentIndex.
type ConsistentIndexGetter interface {
	ConsistentIndex() uint64
}

// Options configure a Store. The zero value is a pure in-memory store.
type Options struct {
	// ConsistentIndex, if set, is asked for the index of the log entry each
	// write belongs to. The store records the index with the revision it
	// makes, and skips (with an empty result and no error) any write whose
	// index is not larger than the one recorded: replaying an entry that was
	// already applied is a no-op. A txn is one entry: the check is made at
	// TxnBegin. Writes with no changes (a delete of nothing) still record the
	// index.
	ConsistentIndex ConsistentIndexGetter

	// Logger receives debug and error records. nil means no logging.
	Logger *slog.Logger
}

// state is what readers see: an immutable view of the store at one revision.
// The writer publishes a new one after every write; readers load it with one
// atomic read and never wait.
type state struct {
	keys       *keyTree // shared read-only; never written after publication
	hist       history
	rev        int64
	compactRev int64
	cindex     uint64
}

// Store is an in-memory MVCC key-value store.
//
// All methods are safe for concurrent use. Reads (Range, View, Hash,
// Snapshot) never block and are never blocked: they work on the last
// published state. Writes (Put, DeleteRange, txns, Compact) are serialized;
// while a txn is open, other writes wait for it to end, so a goroutine that
// holds a txn must not call the non-txn write methods.
type Store struct {
	opts Options

	cur atomic.Pointer[state]

	// mu serializes writers. It is held for one Put or DeleteRange, from
	// TxnBegin to TxnEnd, and for one bounded step of compaction.
	mu sync.Mutex
	w  writerState // guarded by mu

	// txnMu guards the open txn's bookkeeping, so that concurrent misuse of
	// a txn ID is an error and not a data race.
	txnMu sync.Mutex
	txn   *txnState // guarded by txnMu; nil when no txn is open
	txnID int64     // guarded by txnMu; last txn ID handed out

	// compactMu serializes compactions, which release mu between steps.
	compactMu sync.Mutex
	// waiting counts writers blocked on mu, so compaction can step aside.
	waiting atomic.Int32
	// lastCompactStep is the longest time (ns) the last compaction held mu
	// in one step: the longest it made a writer wait.
	lastCompactStep atomic.Int64

	notifyMu    sync.Mutex
	notify      notifier // guarded by notifyMu
	notifyArmed atomic.Bool

	closed atomic.Bool
}

// writerState is the writer's private, mutable copy of the index.
type writerState struct {
	keys *keyTree
	// keysShared is true when keys is also the tree of the published state:
	// the next structural change must copy it first (copy-on-write).
	keysShared bool
	hist       history
	rev        int64
	compactRev int64
	cindex     uint64
}

// New returns an empty store at revision 1, with compacted revision -1.
func New(opts Options) *Store {
	s := &Store{opts: opts}
	s.w = writerState{keys: newKeyTree(), rev: 1, compactRev: -1}
	s.publishLocked()
	return s
}

// publishLocked makes the writer's state visible to readers. mu is held.
func (s *Store) publishLocked() {
	st := &state{
		keys:       s.w.keys,
		hist:       s.w.hist,
		rev:        s.w.rev,
		compactRev: s.w.compactRev,
		cindex:     s.w.cindex,
	}
	s.w.keysShared = true
	s.cur.Store(st)
	s.wake()
}

// keysForWrite returns the writer's key tree, ready for a structural change.
// When the tree is shared with the published state it is copied first: Copy
// is O(1), and the nodes are cloned lazily as the writer touches them.
func (s *Store) keysForWrite() *keyTree {
	if s.w.keysShared {
		s.w.keys = s.w.keys.Copy()
		s.w.keysShared = false
	}
	return s.w.keys
}

// lockWriter takes mu and checks the store is open.
func (s *Store) lockWriter() error {
	if s.closed.Load() {
		return ErrClosed
	}
	if !s.mu.TryLock() {
		s.waiting.Add(1)
		s.mu.Lock()
		s.waiting.Add(-1)
	}
	if s.closed.Load() {
		s.mu.Unlock()
		return ErrClosed
	}
	return nil
}

// Rev returns the current revision: the main revision of the last write that
// changed something, or 1 for a new store.
func (s *Store) Rev() int64 { return s.cur.Load().rev }

// CompactRev returns the compacted revision, -1 if the store was never
// compacted.
func (s *Store) CompactRev() int64 { return s.cur.Load().compactRev }

// ConsistentIndex returns the consistent index recorded with the last write.
func (s *Store) ConsistentIndex() uint64 { return s.cur.Load().cindex }

// Commit makes every write before it durable. A pure in-memory store has
// nothing to make durable, and Commit only reports ErrClosed after Close.
func (s *Store) Commit() error {
	if s.closed.Load() {
		return ErrClosed
	}
	return nil
}

// Restore rebuilds the store's in-memory state from its durable copy. A pure
// in-memory store's state is its only copy, so Restore leaves it as it is;
// to rebuild a store from a snapshot stream, use Load.
func (s *Store) Restore() error {
	if s.closed.Load() {
		return ErrClosed
	}
	return nil
}

// Close releases the store. It waits for an open txn and an in-progress
// compaction step to end. Every later call returns ErrClosed; views and
// snapshots taken before Close keep working until they are dropped. Close is
// idempotent; calls after the first return ErrClosed.
func (s *Store) Close() error {
	if s.closed.Load() {
		return ErrClosed
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Swap(true) {
		return ErrClosed
	}
	s.notifyArmed.Store(true)
	s.wake()
	return nil
}

func (s *Store) logger() *slog.Logger {
	if s.opts.Logger == nil {
		return discard
	}
	return s.opts.Logger
}

var discard = slog.New(slog.DiscardHandler)

// checkRev resolves a read revision against a state: rev <= 0 means the
// state's revision.
func (st *state) checkRev(rev int64) (int64, error) {
	if rev > st.rev {
		return 0, fmt.Errorf("revision %d, current %d: %w", rev, st.rev, ErrFutureRev)
	}
	if rev <= 0 {
		rev = st.rev
	}
	if rev < st.compactRev {
		return 0, fmt.Errorf("revision %d, compacted %d: %w", rev, st.compactRev, ErrCompacted)
	}
	return rev, nil
}
