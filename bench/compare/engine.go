// Package compare runs the same workloads on revkv and on the stores a Go
// programmer would compare it with (etcd's mvcc on bbolt, buntdb,
// go-memdb), alternating engines so that the drift of a shared machine hits
// all of them alike, and reports each engine's cost per operation and
// etcd's time over revkv's.
package compare

import "errors"

// Engine opens fresh stores of one kind.
type Engine interface {
	Name() string
	// Open returns an empty store whose files, if any, live in dir.
	Open(dir string) (Store, error)
}

// Store is what every engine can do.
type Store interface {
	Put(key, value []byte) error
	// Get reports whether key exists.
	Get(key []byte) (bool, error)
	// Scan reads up to limit keys from key on and returns how many it read.
	Scan(key []byte, limit int) (int, error)
	// TxnPut puts keys in one transaction.
	TxnPut(keys [][]byte, value []byte) error
	// Sync makes everything written so far visible and, for stores with
	// files, committed: the end of every timed write workload.
	Sync() error
	Close() error
}

// Optional capabilities. A workload that needs one skips engines without it.
type (
	// Versioned stores keep revisions.
	Versioned interface {
		Rev() int64
		GetAt(key []byte, rev int64) (bool, error)
		Compact(rev int64) error
		Hash() error
	}
	// Watchable stores deliver change events.
	Watchable interface {
		// Watch calls fn for each event on keys in [key, end) (end nil: the
		// key only) from revision start (0: from now) until stop is closed,
		// and returns once the watch is set up.
		Watch(key, end []byte, start int64, fn func(n int), stop <-chan struct{}) error
	}
	// Durable engines keep their stores in files: Open on the directory of
	// a closed store reopens it.
	Durable interface {
		Durable()
	}
)

// ErrUnsupported marks a workload an engine cannot run.
var ErrUnsupported = errors.New("unsupported by this engine")
