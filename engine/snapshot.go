package engine

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"sync"
	"unsafe"

	"github.com/revkv/revkv/kv"
	"github.com/revkv/revkv/snapshot"
)

// Snapshot is a point-in-time copy of a store's retained history, taken in
// O(1). Writing it out walks the view it holds; the store goes on serving
// reads and writes meanwhile. A Snapshot is safe for concurrent use.
type Snapshot struct {
	mu   sync.Mutex
	st   *state // nil after Close
	size int64  // -1 until computed
}

// Snapshot returns a snapshot of the store at its current revision.
func (s *Store) Snapshot() (*Snapshot, error) {
	if s.closed.Load() {
		return nil, kv.ErrClosed
	}
	return &Snapshot{st: s.cur.Load(), size: -1}, nil
}

func (sn *Snapshot) state() (*state, error) {
	sn.mu.Lock()
	defer sn.mu.Unlock()
	if sn.st == nil {
		return nil, kv.ErrClosed
	}
	return sn.st, nil
}

// Rev returns the revision the snapshot was taken at; 0 after Close.
func (sn *Snapshot) Rev() int64 {
	st, err := sn.state()
	if err != nil {
		return 0
	}
	return st.rev
}

// CompactRev returns the compacted revision of the snapshot's state; 0
// after Close.
func (sn *Snapshot) CompactRev() int64 {
	st, err := sn.state()
	if err != nil {
		return 0
	}
	return st.compactRev
}

// ConsistentIndex returns the consistent index of the snapshot's state; 0
// after Close.
func (sn *Snapshot) ConsistentIndex() uint64 {
	st, err := sn.state()
	if err != nil {
		return 0
	}
	return st.cindex
}

// Size returns the number of bytes WriteTo writes. The first call encodes
// (and compresses) the snapshot once to count them; 0 after Close.
func (sn *Snapshot) Size() int64 {
	sn.mu.Lock()
	defer sn.mu.Unlock()
	if sn.st == nil {
		return 0
	}
	if sn.size < 0 {
		n, _ := sn.st.writeSnapshot(io.Discard)
		sn.size = n
	}
	return sn.size
}

// WriteTo writes the snapshot to w in the format of package snapshot and
// returns the bytes written. It holds one block of the format in memory,
// whatever the store's size. After Close it returns kv.ErrClosed.
func (sn *Snapshot) WriteTo(w io.Writer) (int64, error) {
	st, err := sn.state()
	if err != nil {
		return 0, err
	}
	return st.writeSnapshot(w)
}

// Close releases the snapshot's view. Later WriteTo calls return kv.ErrClosed.
func (sn *Snapshot) Close() error {
	sn.mu.Lock()
	defer sn.mu.Unlock()
	if sn.st == nil {
		return kv.ErrClosed
	}
	sn.st = nil
	return nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// entry fills e with version v of key.
func (v version) entry(key []byte, e *snapshot.Entry) *snapshot.Entry {
	*e = snapshot.Entry{Key: key, Value: v.value, Main: v.main, Sub: v.sub,
		Create: v.create, Version: v.ver, Lease: v.lease, Delete: v.deleted()}
	return e
}

// writeSnapshot writes the state's retained history: the keys live at the
// compacted revision, then every change from it on (those at the compacted
// revision too, so that a restored store replays them to a watcher starting
// there), then the live leases, then the number of keys live at the
// state's revision.
func (st *state) writeSnapshot(w io.Writer) (int64, error) {
	cw := &countWriter{w: w}
	sw, err := snapshot.NewWriter(cw, snapshot.Header{Rev: st.rev, CompactRev: st.compactRev, ConsistentIndex: st.cindex})
	if err != nil {
		return cw.n, err
	}
	var e snapshot.Entry
	st.base(func(key []byte, v version) {
		if err == nil {
			err = sw.Base(v.entry(key, &e))
		}
	})
	st.changes(st.compactRev, st.rev, func(c change) bool {
		err = sw.Event(c.v.entry(c.key, &e))
		return err == nil
	})
	if st.leases != nil && err == nil {
		st.leases.Scan(func(it leaseItem) bool {
			err = sw.Lease(&snapshot.Lease{ID: it.id, TTL: it.ttl, Deadline: it.deadline})
			return err == nil
		})
	}
	if st.lastLeaseID > 0 && err == nil {
		err = sw.LastLeaseID(st.lastLeaseID)
	}
	if err != nil {
		return cw.n, err
	}
	var keys uint64
	st.ascend(nil, nil, func(r *keyRecord) bool {
		if v, ok := r.at(st.rev); ok && !v.deleted() {
			keys++
		}
		return true
	})
	err = sw.Finish(keys)
	return cw.n, err
}

// LoadSnapshot fills a new in-memory store with a snapshot written by
// Snapshot.WriteTo (the format of package snapshot): afterwards it holds
// the same retained history as the store the snapshot was taken of: the
// same revision, compacted revision, consistent index, reads, events and
// hash, and the leases with their deadlines (a snapshot of version 1 has
// none), which start expiring as Open's do. It is the same step a
// persister takes when it recovers a store (persist.Target.LoadSnapshot).
//
// The store must be new: from Open with a nil persister, never written
// (revision 1, no lease); otherwise kv.ErrNotEmpty, and nothing changes.
// Fill it before anyone else uses it.
//
// Every entry is checked as it is replayed (order, revisions, versions),
// and the stream's checksums as they come; any damage, truncation or
// inconsistency is an error wrapping kv.ErrCorrupt (or ErrRevisionNotFound
// as well, for a gap in the history) with the offset, and the store stays
// empty. Memory beyond what the store holds is one block of the format
// and the entries decoded ahead (at most three chunks of 256 KiB: the
// entries are decoded in a goroutine, ended before LoadSnapshot returns).
func (s *Store) LoadSnapshot(r io.Reader) error {
	if err := s.lockWriter(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if s.p != nil || s.w.rev != 1 || s.w.compactRev != -1 || s.w.lt.byID != nil {
		return fmt.Errorf("load a snapshot into a store at revision %d: %w", s.w.rev, kv.ErrNotEmpty)
	}
	loaded, err := load(r, s.opts)
	if err != nil {
		return err
	}
	loaded.changedKeysLocked()
	s.leaseMu.Lock() // the expiry timer and TimeToLive read s.w.lt under it
	s.w = loaded.w
	s.leaseMu.Unlock()
	s.w.full = true
	s.publishLocked()
	s.kickExpiryLocked()
	return nil
}

// load reads a snapshot into a new private store, whose state the caller
// moves into another (LoadSnapshot, and a persister's recovery).
func load(r io.Reader, opts Options) (*Store, error) {
	sr, err := snapshot.NewReader(r)
	if err != nil {
		return nil, err
	}
	// The store copies every key it keeps, and every value: into a new
	// key's record, or a clone for an update. So the reader may decode
	// ahead in a goroutine of its own (which Close ends before load
	// returns) while the store takes in the entries before; and that
	// goroutine makes the records of the entries that may be new keys
	// (prepareRecord), which the store takes if they are.
	sr.ReadAheadPrepared(prepareRecord)
	defer sr.Close()
	h := sr.Header()
	s := newStore(opts)
	// The store is private until it is returned, and publishes once at
	// the end: new keys need not wait in the fresh slice, which would be
	// copied for every one of them.
	s.changedKeysLocked()
	l := loader{s: s, sr: sr, rev: h.Rev, compactRev: h.CompactRev, next: max(h.CompactRev, 2)}
	if err := l.run(); err != nil {
		return nil, err
	}
	s.w.rev, s.w.compactRev, s.w.cindex = h.Rev, h.CompactRev, h.ConsistentIndex
	if err := s.loadLeases(sr.Leases(), sr.LastLeaseID()); err != nil {
		return nil, err
	}
	s.publishLocked()
	return s, nil
}

// loader replays a snapshot's entries into a new store that no one else can
// see yet, so it writes the writer state without taking mu.
type loader struct {
	s          *Store
	sr         *snapshot.Reader
	rev        int64
	compactRev int64
	next       int64 // the main revision the next new event group must have
	groupRev   int64
	group      []change
	lastKey    []byte
	tail       replayTail // the loader alone fills the store: it never removes keys
}

func (l *loader) corrupt(format string, args ...any) error {
	return fmt.Errorf("revkv/engine: snapshot entry before offset %d: %s: %w", l.sr.Offset(), fmt.Sprintf(format, args...), kv.ErrCorrupt)
}

// missing reports a gap in the history: ErrRevisionNotFound, and kv.ErrCorrupt
// like every other damage.
func (l *loader) missing(format string, args ...any) error {
	return fmt.Errorf("%w: %w", ErrRevisionNotFound, l.corrupt(format, args...))
}

func (l *loader) run() error {
	for {
		e, event, err := l.sr.Next()
		if err == io.EOF {
			l.flush()
			if last := l.next - 1; l.rev >= max(l.compactRev, 2) && last != l.rev {
				return l.missing("history ends at %d, revision is %d", last, l.rev)
			}
			return nil
		}
		if err != nil {
			return err
		}
		if event {
			err = l.event(e)
		} else {
			err = l.base(e)
		}
		if err != nil {
			return err
		}
	}
}

func (l *loader) base(e *snapshot.Entry) error {
	switch {
	case l.lastKey != nil && bytes.Compare(e.Key, l.lastKey) <= 0:
		return l.corrupt("base key %q out of order", e.Key)
	case e.Delete || e.Main < 2 || e.Main > l.compactRev || e.Sub < 0:
		return l.corrupt("base entry of %q at %d.%d, compacted %d", e.Key, e.Main, e.Sub, l.compactRev)
	case e.Create < 2 || e.Create > e.Main || e.Version < 1:
		return l.corrupt("base entry of %q with create %d, version %d", e.Key, e.Create, e.Version)
	}
	l.lastKey = append(l.lastKey[:0], e.Key...)
	rec := l.prepared()
	if rec == nil {
		v := version{main: e.Main, sub: e.Sub, create: e.Create, ver: e.Version, lease: e.Lease, value: e.Value}
		rec = newRecord(e.Key, v) // copies the key and the value
	}
	l.s.loadLocked(rec)
	l.tail.rec = rec // base keys come in key order
	return nil
}

func (l *loader) event(e *snapshot.Entry) error {
	if e.Main != l.groupRev {
		l.flush()
		if e.Main != l.next {
			return l.missing("event at revision %d, expected %d", e.Main, l.next)
		}
		if e.Main > l.rev {
			return l.corrupt("event at revision %d past snapshot revision %d", e.Main, l.rev)
		}
		l.groupRev = e.Main
		l.next++
	}
	if e.Sub != int64(len(l.group)) {
		return l.corrupt("event %d.%d out of order", e.Main, e.Sub)
	}
	if e.Main == l.compactRev {
		// Already reflected in the base: kept only for Events.
		v := version{main: e.Main, sub: e.Sub, create: e.Create, ver: e.Version, lease: e.Lease, value: bytes.Clone(e.Value)}
		l.group = append(l.group, change{key: bytes.Clone(e.Key), v: v})
		return nil
	}
	var c change
	if e.Delete {
		cs, _ := l.s.deleteLocked(e.Key, nil, e.Main, e.Sub, MaxBatchSize)
		if len(cs) != 1 {
			return l.corrupt("delete of %q at %d, which is not live", e.Key, e.Main)
		}
		c = cs[0]
	} else {
		if err := checkPut(e.Key, e.Value); err != nil {
			return l.corrupt("%v", err)
		}
		c = l.s.replayPutLocked(&l.tail, l.prepared(), e.Key, e.Value, e.Lease, e.Main, e.Sub) // copies the value
	}
	if c.v.create != e.Create || c.v.ver != e.Version {
		return l.corrupt("event %d.%d on %q: create %d version %d, history says %d, %d",
			e.Main, e.Sub, e.Key, e.Create, e.Version, c.v.create, c.v.ver)
	}
	l.group = append(l.group, c)
	return nil
}

// prepared returns the record prepareRecord made of the entry Next
// returned last, if it did.
func (l *loader) prepared() *keyRecord {
	rec, _ := l.sr.Prepared().(*keyRecord)
	return rec
}

// prepareRecord is the snapshot.Prepare of a load: it makes, in the
// reader's goroutine, the record that the entry e makes if its key is new
// (newRecord, with the version a base entry keeps, or the first version
// of a key an event puts). For other entries (deletes, events that do not
// start a key) it makes nothing; a record the load does not use (the key
// was not new) is garbage.
func prepareRecord(e *snapshot.Entry, event bool) (any, []byte, []byte) {
	if e.Delete || event && (e.Create != e.Main || e.Version != 1) {
		return nil, nil, nil
	}
	v := version{main: e.Main, sub: e.Sub, create: e.Create, ver: e.Version, lease: e.Lease, value: e.Value}
	if !fits(v) {
		return nil, nil, nil
	}
	rec := newRecord(e.Key, v)
	key := rec.key()
	var value []byte
	if len(e.Value) > 0 {
		data := unsafe.Slice(rec.bytes(), len(key)+len(e.Value))
		value = data[len(key):len(data):len(data)]
	}
	return rec, key, value
}

// flush adds the finished group of events to the history.
func (l *loader) flush() {
	if len(l.group) == 0 {
		return
	}
	switch {
	case len(l.group) == 1:
		// Packed into the history, or copied: the group's slice is free
		// again.
		l.s.w.hist = l.s.w.hist.addOne(l.groupRev, l.group[0])
		l.group = l.group[:0]
	case !keeps(l.group):
		// Kept as its new keys' records: the slice is free again.
		l.s.w.hist = l.s.w.hist.add(l.groupRev, l.group)
		l.group = l.group[:0]
	default:
		l.s.w.hist = l.s.w.hist.add(l.groupRev, slices.Clip(l.group))
		l.group = nil
	}
}
