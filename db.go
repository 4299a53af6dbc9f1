package revkv

import (
	"fmt"

	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/kv"
	"github.com/revkv/revkv/persist"
	"github.com/revkv/revkv/persist/filelog"
	"github.com/revkv/revkv/watch"
)

// Options configure a DB. The zero value is usable: in memory, or, with a
// directory, the file log's defaults (every write durable when it
// returns, periodic snapshots).
type Options struct {
	// Engine configures the store: the consistent index, the logger, the
	// limits of txns, the clock of leases. See engine.Options.
	Engine engine.Options
	// Log configures the file log of a DB opened on a directory (its sync
	// policy, segment and snapshot sizes, the filesystem). See
	// filelog.Options.
	Log filelog.Options
	// Persister, if not nil, persists the DB instead of a file log; Open's
	// dir must then be "". The DB owns it from then on: Close closes it,
	// and so does a failed Open.
	Persister persist.Persister
	// Watch configures watchers. See watch.Options.
	Watch watch.Options
}

// DB is an MVCC key-value store: every method is safe for concurrent use.
// Reads never block and are never blocked; writes are serialized.
type DB struct {
	e *engine.Store
	w *watch.Store // holds e; Close closes both
}

// Open opens a DB. With dir "" and no Options.Persister, the DB is in
// memory: nothing is written anywhere, and Close leaves nothing behind.
// With a directory, the DB is persisted there by a file log (created if the
// directory holds none, recovered if it does); a second Open of the same
// directory, in this or another process, fails while the first is open.
// With Options.Persister, that persister is used (dir must then be "",
// else kv.ErrInvalidOptions).
//
// Close the DB when done with it: Close stops its goroutines and closes its
// files.
func Open(dir string, opts Options) (*DB, error) {
	p := opts.Persister
	switch {
	case p != nil && dir != "":
		p.Close()
		return nil, fmt.Errorf("open %s with a Persister as well: %w", dir, kv.ErrInvalidOptions)
	case dir != "":
		l, err := filelog.Open(dir, opts.Log)
		if err != nil {
			return nil, err
		}
		p = l
	}
	e, err := engine.Open(p, opts.Engine)
	if err != nil {
		return nil, err
	}
	return &DB{e: e, w: watch.New(e, opts.Watch)}, nil
}

// ConsistentIndexGetter reports the index of the consensus-log entry being
// applied; see engine.Options.ConsistentIndex.
type ConsistentIndexGetter = engine.ConsistentIndexGetter

// New is the seed API's constructor: a DB persisted in the directory at
// path with the file log's defaults ("" for one in memory), whose writes
// record the consistent index from ig (nil for none). It is Open with
// Options.Engine.ConsistentIndex set to ig.
func New(path string, ig ConsistentIndexGetter) (*DB, error) {
	return Open(path, Options{Engine: engine.Options{ConsistentIndex: ig}})
}

// Close closes every Watcher, ends any open txn, makes every write durable
// and closes the persister. When it returns, no goroutine of the DB runs
// and no file of it is open. It returns the error of the last commit (or
// the persistence failure that stopped the DB, see Err). Later calls
// return kv.ErrClosed.
func (db *DB) Close() error { return db.w.Close() }

// Err returns nil while the DB accepts writes, and after a persistence
// failure the error every write returns (it wraps kv.ErrStopped and the
// cause). Reads go on working; Close and Open again to recover.
func (db *DB) Err() error { return db.e.Err() }

// Commit makes every write before it durable, whatever the sync policy.
// An in-memory DB has nothing to make durable.
func (db *DB) Commit() error { return db.e.Commit() }

// Rev returns the current revision: 1 for a new DB, then the revision of
// the last write that changed something.
func (db *DB) Rev() int64 { return db.e.Rev() }

// CompactRev returns the compacted revision, -1 if the DB was never
// compacted.
func (db *DB) CompactRev() int64 { return db.e.CompactRev() }

// Compact drops the history below rev: reads below it fail with
// kv.ErrCompacted; reads at rev and later are unchanged. rev <= CompactRev
// is kv.ErrCompacted and rev > Rev kv.ErrFutureRev.
//
// Compaction never ends a running watch: one that is behind it keeps the
// history it still needs until it has read it. Only a watch that starts
// below the compacted revision ends with kv.ErrCompacted.
func (db *DB) Compact(rev int64) error { return db.w.Compact(rev) }

// Hash returns a hash of the retained history at the current revision;
// see HashByRev.
func (db *DB) Hash() (uint32, error) { return db.e.Hash() }

// HashByRev returns the hash of the retained history up to rev (<= 0: the
// current revision): two DBs with the same compacted revision hash the
// same at the same revision, however they got there.
func (db *DB) HashByRev(rev int64) (KeyValueHash, error) { return db.e.HashByRev(rev) }

// View returns a read-only view of the DB at its current revision, which
// keeps that revision however long it is held. See engine.View.
func (db *DB) View() (*engine.View, error) { return db.e.View() }

// Snapshot returns an O(1) snapshot of the DB, whose WriteTo writes the
// snapshot format. See engine.Snapshot.
func (db *DB) Snapshot() (*engine.Snapshot, error) { return db.e.Snapshot() }

// NewWatcher returns a Watcher: a stream of watches sharing one channel.
// After Close it returns one whose watches fail with kv.ErrClosed.
func (db *DB) NewWatcher() *Watcher { return db.w.NewWatcher() }

// WatchStats returns the DB's watch metrics.
func (db *DB) WatchStats() watch.Stats { return db.w.Stats() }

// The shared types of package kv and package watch, under this package.
type (
	KeyValue      = kv.KeyValue
	Event         = kv.Event
	RangeOptions  = kv.RangeOptions
	RangeResult   = kv.RangeResult
	KeyValueHash  = kv.KeyValueHash
	Watcher       = watch.Watcher
	WatchRequest  = watch.Request
	WatchResponse = watch.Response
)
