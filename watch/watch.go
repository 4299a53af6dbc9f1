package watch

import (
	"sync/atomic"
	"time"

	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/kv"
)

// Options configure a Store's watchers. The zero value is usable.
type Options struct {
	// MaxEvents is the default cap on events per Response (a Request may
	// set its own); 0 means 1000. A revision is never split across
	// Responses unless it alone has more events than the cap.
	MaxEvents int
	// ChanSize is how many Responses a Watcher's channel buffers; 0 means 16.
	ChanSize int
	// ProgressInterval, if > 0, is how long a watch that asked for progress
	// notifications may stay quiet before it gets one.
	ProgressInterval time.Duration
}

func (o Options) maxEvents() int {
	if o.MaxEvents > 0 {
		return o.MaxEvents
	}
	return 1000
}

func (o Options) chanSize() int {
	if o.ChanSize > 0 {
		return o.ChanSize
	}
	return 16
}

// Store is an engine.Store that can be watched: the seed's WatchableKV. It
// has the seed API's KV methods, which it passes to the engine store, plus
// NewWatcher and Stats.
//
// It holds the engine store rather than embedding it, and the engine tells
// it of every compaction before the compaction takes effect (see
// engine.Store.OnCompact), so no compaction, through this Store or through
// the engine store it was made from, ends a watch that can still be
// served: a watch is ended by compaction only if it starts below the
// compacted revision.
type Store struct {
	kv *engine.Store
	h  hub // in the Store: one allocation for both
}

// New makes s watchable. Its first Watcher starts one goroutine, which
// Close stops; a Store never watched runs none. The returned Store owns s:
// close the Store, not s.
func New(s *engine.Store, opts Options) *Store {
	ws := &Store{kv: s}
	ws.h.init(s, opts)
	s.OnCompact(ws.h.beforeCompact)
	return ws
}

// NewWatcher returns a new Watcher on the store. After Close it returns a
// Watcher whose Watch calls fail with kv.ErrClosed and whose channel is closed.
func (s *Store) NewWatcher() *Watcher { return s.h.newWatcher() }

// Compact is engine.Store.Compact. Before the compaction takes effect,
// every revision up to rev reaches the watches that keep up, and every
// watch still reading history below rev keeps that history (as a View
// does) until it has read it; so compaction never ends a watch already
// running. The memory of the history such a watch keeps is freed as it
// reads on, or when it is canceled.
func (s *Store) Compact(rev int64) error { return s.kv.Compact(rev) }

// Close closes every Watcher (each gets no more Responses and its channel
// is closed), stops the store's goroutines, waits for them, and closes the
// engine store. Later calls return kv.ErrClosed.
func (s *Store) Close() error {
	if !s.h.close() {
		return kv.ErrClosed
	}
	return s.kv.Close()
}

// The seed's KV methods, as engine.Store has them.

// Rev is engine.Store.Rev.
func (s *Store) Rev() int64 { return s.kv.Rev() }

// CompactRev is engine.Store.CompactRev.
func (s *Store) CompactRev() int64 { return s.kv.CompactRev() }

// Range is engine.Store.Range.
func (s *Store) Range(key, end []byte, limit, rangeRev int64) ([]kv.KeyValue, int64, error) {
	return s.kv.Range(key, end, limit, rangeRev)
}

// RangeWithOptions is engine.Store.RangeWithOptions.
func (s *Store) RangeWithOptions(key, end []byte, opts engine.RangeOptions) (engine.RangeResult, error) {
	return s.kv.RangeWithOptions(key, end, opts)
}

// View is engine.Store.View.
func (s *Store) View() (*engine.View, error) { return s.kv.View() }

// Put is engine.Store.Put.
func (s *Store) Put(key, value []byte) (rev int64, err error) { return s.kv.Put(key, value) }

// PutLease is engine.Store.PutLease.
func (s *Store) PutLease(key, value []byte, lease int64) (rev int64, err error) {
	return s.kv.PutLease(key, value, lease)
}

// DeleteRange is engine.Store.DeleteRange.
func (s *Store) DeleteRange(key, end []byte) (n, rev int64, err error) {
	return s.kv.DeleteRange(key, end)
}

// TxnBegin is engine.Store.TxnBegin.
func (s *Store) TxnBegin() (int64, error) { return s.kv.TxnBegin() }

// TxnEnd is engine.Store.TxnEnd.
func (s *Store) TxnEnd(txnID int64) error { return s.kv.TxnEnd(txnID) }

// TxnRange is engine.Store.TxnRange.
func (s *Store) TxnRange(txnID int64, key, end []byte, limit, rangeRev int64) ([]kv.KeyValue, int64, error) {
	return s.kv.TxnRange(txnID, key, end, limit, rangeRev)
}

// TxnPut is engine.Store.TxnPut.
func (s *Store) TxnPut(txnID int64, key, value []byte) (rev int64, err error) {
	return s.kv.TxnPut(txnID, key, value)
}

// TxnDeleteRange is engine.Store.TxnDeleteRange.
func (s *Store) TxnDeleteRange(txnID int64, key, end []byte) (n, rev int64, err error) {
	return s.kv.TxnDeleteRange(txnID, key, end)
}

// Hash is engine.Store.Hash.
func (s *Store) Hash() (uint32, error) { return s.kv.Hash() }

// HashByRev is engine.Store.HashByRev.
func (s *Store) HashByRev(rev int64) (kv.KeyValueHash, error) { return s.kv.HashByRev(rev) }

// Snapshot is engine.Store.Snapshot.
func (s *Store) Snapshot() (*engine.Snapshot, error) { return s.kv.Snapshot() }

// Commit is engine.Store.Commit.
func (s *Store) Commit() error { return s.kv.Commit() }

// Restore is engine.Store.Restore.
func (s *Store) Restore() error { return s.kv.Restore() }

// Stats returns the store's watch metrics.
func (s *Store) Stats() Stats { return s.h.stats() }

// Stats are watch metrics: counts now, and totals since the Store was made.
type Stats struct {
	Watchers   int // open Watchers
	Synced     int // watches keeping up, fed as revisions are written
	CatchingUp int // watches reading history from their position
	// Pending is the number of events handed to watches by the dispatcher
	// and not yet taken into a Response.
	Pending int
	// SlowReceivers counts the times a watch's receiver fell so far behind
	// that the watch left the dispatcher to read history after the events
	// it held.
	SlowReceivers uint64
	// EventsSent counts events sent in Responses.
	EventsSent uint64
	// EventsReceived counts calls of ReportEventReceived (process-wide).
	EventsReceived uint64
}

var eventsReceived atomic.Uint64

// ReportEventReceived reports that a receiver got an event from a Watcher;
// it counts in Stats.EventsReceived. It is the seed API's hook: call it from
// the code that consumes events, if you want that count.
func ReportEventReceived() { eventsReceived.Add(1) }

// CancelFunc cancels a watch. It does not wait for delivery to stop: at
// most the Response already being sent may still carry the watch's events.
type CancelFunc func()

// Request describes a watch.
type Request struct {
	// Key and End select keys as engine.Store.Range does: End nil is the
	// single Key, a non-nil empty End every key >= Key, otherwise [Key, End).
	Key, End []byte
	// StartRev is the first revision to deliver; <= 0 means the next
	// revision to be written. A StartRev below the compacted revision ends
	// the watch with kv.ErrCompacted; one above the current revision waits.
	StartRev int64
	// ID names the watch in Responses; 0 picks an unused one.
	ID int64
	// PrevKV attaches to each event the key's value before its revision.
	PrevKV bool
	// NoPut and NoDelete leave out those events.
	NoPut, NoDelete bool
	// ProgressNotify asks for a progress Response when the watch has been
	// quiet for Options.ProgressInterval.
	ProgressNotify bool
	// MaxEvents caps events per Response for this watch; 0 means
	// Options.MaxEvents.
	MaxEvents int
}

// Response is what a Watcher's channel carries: events of one watch, a
// progress notification, or the end of a watch.
type Response struct {
	// WatchID is the watch this is for; -1 for a progress Response asked
	// for with RequestProgress, which covers every watch of the Watcher.
	WatchID int64
	// Events are whole revisions, in order, unless one revision alone has
	// more events than the watch's cap. They may share memory with the
	// Responses of other watches that got the same events (one copy of
	// an event serves them all): read them, and copy before changing one.
	Events []kv.Event
	// Revision is the store's revision this Response is current to: the
	// watch has been sent every event up to it.
	Revision int64
	// Progress marks a progress notification (no events).
	Progress bool
	// Canceled marks the watch's last Response; Err says why and, for
	// kv.ErrCompacted, CompactRevision is the compacted revision.
	Canceled        bool
	Err             error
	CompactRevision int64
}

// prefixEnd returns the end of the range of keys that start with prefix:
// the prefix with its last byte below 0xff incremented, or the non-nil
// empty slice ("every key >= prefix") if there is none.
func prefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return []byte{}
}
