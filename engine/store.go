package engine

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/revkv/revkv/internal/keytree"
	"github.com/revkv/revkv/kv"
	"github.com/revkv/revkv/persist"
)

// The seed API's error names. They are the values defined in package kv,
// so errors.Is works with either name; every other error the engine returns
// is named only in package kv (kv.ErrClosed, kv.ErrEmptyKey, ...).
var (
	ErrTxnIDMismatch    = kv.ErrTxnIDMismatch
	ErrCompacted        = kv.ErrCompacted
	ErrFutureRev        = kv.ErrFutureRev
	ErrCanceled         = kv.ErrCanceled
	ErrRevisionNotFound = kv.ErrRevisionNotFound
)

// Size limits on keys, values and revisions. Writes above them fail with
// kv.ErrTooLarge, so that everything a store holds can be read back from a
// snapshot or log, whose decoders refuse larger lengths rather than
// trusting them.
const (
	MaxKeySize   = kv.MaxKeySize
	MaxValueSize = kv.MaxValueSize
	// MaxBatchSize bounds one revision's changes (a txn's puts and
	// deletes, or a DeleteRange), each counted as its key, its value and
	// 32 bytes: a write above it fails with kv.ErrTooLarge and changes
	// nothing. It bounds what a persister's decoder must hold at once.
	MaxBatchSize = kv.MaxBatchSize
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
	// already applied is a no-op. A txn is one entry: the check is made
	// when it begins (TxnBegin, Begin, Txn; a skipped Txn returns a
	// response with only Rev). A Txn that only reads
	// (kv.TxnRequest.ReadOnly) is no entry: it reads the store as it is and
	// records nothing. Writes with no changes (a delete of nothing) still
	// record the index; an aborted txn does not.
	ConsistentIndex ConsistentIndexGetter

	// Logger receives debug and error records. nil means no logging.
	Logger *slog.Logger

	// Clock is where leases get the time (deadlines, remaining TTLs, the
	// expiry timer). nil means the system's wall clock; a ManualClock
	// makes runs with leases deterministic.
	Clock Clock
	// ManualLeaseExpiry turns off the store's lease expiry timer: leases
	// then expire only when the caller runs ExpireLeases, or revokes what
	// ExpiredLeases lists. A store with a ConsistentIndex never runs the
	// timer: in a replicated deployment, expiry is decided by the leader
	// and applied from the log.
	ManualLeaseExpiry bool

	// MaxTxnOps bounds the compares, and the ops of each branch, of a
	// Store.Txn request (kv.ErrTooManyOps); 0 means DefaultMaxTxnOps.
	MaxTxnOps int

	// TxnTimeout is how long a txn opened by TxnBegin, or by Begin with a
	// context that has no deadline, may stay open: then it is aborted, so
	// that a forgotten TxnEnd or Commit cannot block writers forever. 0
	// means DefaultTxnTimeout; below 0, no limit.
	TxnTimeout time.Duration

	// PointIndex keeps a hash table of the keys beside the key index,
	// once the store has a few thousand keys, so that a point read (a
	// Range with a nil end) finds its key in about two cache misses
	// rather than a tree's descent: at a million keys, a point read of a
	// random key took 20-30% less time in bench/compare (1.2-1.5 us
	// instead of 1.5-1.9). It costs 10.5-16 bytes of heap per key (14 at
	// 1M keys; more while the table grows: old and new tables live
	// together for a while), and time on every new key and at restore:
	// the table's insert (a cache miss of its own), moving the keys to a
	// bigger table as it grows, and the pages of each new table. In the
	// same runs, 200k new keys in key order took about twice as long
	// (290-360 ns a key without the table, 620-710 with it), 1M in random
	// order 20-40% longer, and a restore of 200k keys 35-55% longer. Reads
	// return the same results either way.
	PointIndex bool
}

// Defaults for Options.
const (
	DefaultMaxTxnOps  = 128 // etcd's default
	DefaultTxnTimeout = time.Minute
)

// state is what readers see: an immutable view of the store at one revision.
// The writer publishes a new one after every write; readers load it with one
// atomic read and never wait.
//
// What most writes change (the revision, the persister's position, the
// fresh keys) is in the state itself, 48 bytes; the rest, which changes
// seldom (the trees are copied every few thousand new keys, the history
// gets a chunk every chunkSize revisions), is in a stateBase that
// consecutive states share: a write allocates a third of what a state of
// every field would take (see newStateLocked).
type state struct {
	*stateBase
	// fresh are the keys created since keys was copied (see fresh.go).
	fresh  freshKeys
	rev    int64
	cindex uint64
	pos    uint64 // the persister's position of the last batch in it
}

// stateBase is the part of a state that changes seldom. Never written once
// published.
type stateBase struct {
	keys       keyIndex // a copy of the writer's tree; never written
	hist       history
	compactRev int64
	// points is the writer's point table when the state was published
	// (see points.go), nil for a small store or one without
	// Options.PointIndex.
	points *pointIndex
	// leases are the live leases (a copy of the writer's tree; never
	// written), nil before the first one.
	leases *leaseTree
	// lastLeaseID is the highest lease ID granted (see leaseTable).
	lastLeaseID int64
}

// Store is an in-memory MVCC key-value store.
//
// All methods are safe for concurrent use. Reads (Range, View, Hash,
// Snapshot) never block and are never blocked: they work on the last
// published state. Writes (Put, DeleteRange, txns, Compact) are serialized;
// while a txn is open, other writes wait for it to end. A goroutine that
// holds a txn and calls a non-txn write method therefore waits until the
// txn's context ends it (for TxnBegin, Options.TxnTimeout): the txn is
// aborted, and the write goes through. Close ends an open txn.
type Store struct {
	opts Options
	p    persist.Persister // nil: pure memory

	// pubq holds states waiting for their batches to be durable (only
	// with a persister).
	pubq pubQueue
	// stopped is set, once, by a persistence failure: the error writes get.
	stopped atomic.Pointer[error]

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
	// aborted is the last txn that ended without TxnEnd or Commit (by
	// its context, Close or Abort), so that its ID gets the reason.
	aborted *txnState // guarded by txnMu
	// txnTimer aborts txns open past the txn timeout (see txnTimer).
	txnTimer txnTimer // guarded by txnMu

	// compactMu serializes compactions, which release mu between steps.
	compactMu    sync.Mutex
	compactHooks []func(rev int64) func() // guarded by compactMu; see OnCompact
	// waiting counts writers blocked on mu, so compaction can step aside.
	waiting atomic.Int32
	// lastCompactStep is the longest time (ns) the last compaction held mu
	// in one step: the longest it made a writer wait.
	lastCompactStep atomic.Int64

	notifyMu    sync.Mutex
	notify      notifier // guarded by notifyMu
	notifyArmed atomic.Bool

	// hashes lets HashByRev hash only what was written since its last call.
	hashes hashCache

	// leaseMu guards the parts of w.lt that readers and the expiry timer
	// use without mu (see leaseTable). Lock order: mu, then leaseMu.
	leaseMu sync.Mutex
	// exp is the lease expiry goroutine; nil until the first lease. mu.
	exp *expiry

	closed atomic.Bool
}

// writerState is the writer's private, mutable copy of the index.
type writerState struct {
	keys keyIndex // its trees are never published themselves: readers get copies
	pub  keyIndex // the copy of keys readers have
	// fresh are the keys created since pub was copied (see fresh.go). It
	// only grows; whatever removes a key starts it again
	// (changedKeysLocked).
	fresh freshKeys
	// full says keys changed in a way fresh does not describe (or fresh
	// grew to freshLimit): the next publication copies the tree.
	full bool
	// freshLimit is how many fresh keys wait until the next copy of the
	// trees: freshLimit of the trees' size at the last copy.
	freshLimit int
	// appended is the first fresh key if every fresh key since went after
	// all the keys before it (keys put in key order), nil if not: see
	// addFreshLocked.
	appended []byte
	// inOrder says that the keys of the last copy's fresh keys came in
	// key order all along (appended was still set when the trees were
	// copied): the next ones likely do too, and get their whole tail at
	// once (see freshKeys.start).
	inOrder    bool
	hist       history
	rev        int64
	compactRev int64
	cindex     uint64
	pos        uint64 // the persister's position of the last batch appended
	// page is where pageCopyLocked packs copies of keys and values; its
	// first pageUsed bytes are taken.
	page     []byte
	pageUsed int
	// vslab is where versionLocked puts versions; vslab[vnext:] is free.
	vslab []version
	vnext int
	// batch is handed to the persister for each write, and reused.
	batch persist.Batch
	// lt is the lease table.
	lt leaseTable
	// undo is the open txn's record of what its writes changed, so that
	// an abort can take them back; nil outside txns (see undo.go).
	undo *undoLog
	// undoBuf is the undo log every txn uses in turn, reused.
	undoBuf undoLog
	// applyBuf is where target.Apply collects the changes of a batch a
	// persister replays, reused (cleared after each batch).
	applyBuf []change
	// exec is the state of the txns Store.Txn runs, reused.
	exec txnState
	// changeBuf is the slab where the txns of TxnBegin and Begin collect
	// their changes (see changeRoomLocked): its first len are committed
	// txns' that the history keeps (see keeps).
	changeBuf []change
	// memo is Store.Txn's last lookup for a compare (see lookupMemo).
	memo lookupMemo
	// hot is the records of keys updated lately (see hotCache).
	hot hotCache
	// base is the stateBase of the last state published (see baseLocked).
	base *stateBase
	// txnBase is the stateBase of txnView's states, reused.
	txnBase *stateBase
	// states is the rest of the slab publishLocked takes states from
	// (see newStateLocked); slabFirst and slabCompact are the history's
	// first revision and the compacted revision its states were made at.
	states                 []state
	stateNext              int // states[stateNext:] are free
	slabFirst, slabCompact int64
	// last is the record of the greatest key in keys (nil: keys has
	// none) if lastOK, so that a new key above it skips the lookup's
	// descent (see aboveAllLocked). Every insert keeps it; what removes or
	// replaces records (changedKeysLocked) drops it, which also keeps it
	// from holding a replaced record alive.
	last   *keyRecord
	lastOK bool
	// points finds the records of keys by hash, for point reads (see
	// points.go); nil until the index has pointMinKeys keys.
	points *pointIndex
	// migrated is how many groups of points.old have moved to points.cur.
	migrated int
}

// newStore returns an empty store at revision 1, with compacted revision
// -1, and no persister.
func newStore(opts Options) *Store {
	s := &Store{opts: opts}
	s.w = writerState{keys: keyIndex{parts: []keyPart{{tree: newKeyTree()}}}, rev: 1, compactRev: -1, freshLimit: maxFresh}
	// Published states are never written, so every new store can show
	// readers the same empty one: a store made for one test and one put
	// skips copying its empty tree. w.pub stays unset, so the first
	// publication copies the writer's trees (publishLocked).
	s.cur.Store(emptyState)
	return s
}

// emptyState is what readers of a new store see (see newStore): the state
// its first publication would make.
var emptyState = &state{stateBase: &stateBase{keys: keyIndex{parts: []keyPart{{tree: newKeyTree()}}}, compactRev: -1}, rev: 1}

// publishLocked makes the writer's state visible to readers. mu is held.
func (s *Store) publishLocked() {
	copied := false
	if s.w.full || s.w.pub.parts == nil {
		s.w.keys.dropEmpty()
		s.w.pub = s.w.keys.copy()
		s.w.fresh = freshKeys{}
		s.w.freshLimit = freshLimit(s.w.keys.len())
		s.w.inOrder = s.w.appended != nil
		s.w.appended = nil
		s.w.full = false
		copied = true
	}
	s.pointsBuildLocked()
	st := s.newStateLocked(copied)
	*st = state{
		stateBase: s.baseLocked(),
		fresh:     s.w.fresh,
		rev:       s.w.rev,
		cindex:    s.w.cindex,
		pos:       s.w.pos,
	}
	if s.p != nil {
		s.queueLocked(st)
		return
	}
	s.cur.Store(st)
	s.wake()
}

// setHistLocked makes h the writer's history. It stores h only if it is
// not the same history (see sameHistory), which most writes leave as it
// is: a store of its chunk slice is a write barrier while the garbage
// collector marks. mu is held.
func (w *writerState) setHistLocked(h history) {
	if !sameHistory(h, w.hist) {
		w.hist = h
	}
}

// baseLocked returns the stateBase of the writer's state: the last one
// published if nothing in it changed, else a new one. mu is held.
func (s *Store) baseLocked() *stateBase {
	leases := s.w.lt.publish()
	if b := s.w.base; b != nil && sameParts(b.keys, s.w.pub) && sameHistory(b.hist, s.w.hist) &&
		b.compactRev == s.w.compactRev && b.leases == leases && b.lastLeaseID == s.w.lt.lastID &&
		b.points == s.w.points {
		return b
	}
	s.w.base = &stateBase{
		keys:        s.w.pub,
		hist:        s.w.hist,
		compactRev:  s.w.compactRev,
		points:      s.w.points,
		leases:      leases,
		lastLeaseID: s.w.lt.lastID,
	}
	return s.w.base
}

// sameParts reports whether a and b are the same copy of the trees.
func sameParts(a, b keyIndex) bool {
	return len(a.parts) == len(b.parts) && unsafe.SliceData(a.parts) == unsafe.SliceData(b.parts)
}

// sameHistory reports whether a and b are the same history: the chunks
// already in it fill in place (see history).
func sameHistory(a, b history) bool {
	return a.first == b.first && len(a.chunks) == len(b.chunks) && unsafe.SliceData(a.chunks) == unsafe.SliceData(b.chunks)
}

// newStateLocked returns a state for publishLocked to fill. States come
// from slabs of up to maxStateSlab (the first ones smaller, each twice the
// last one used up: a store that sees few writes makes few), one
// allocation for many writes. A state is never reused: a reader may keep
// it as long as it likes, and with it its whole slab. So that a reader
// holding a state keeps no more than the states next to it would, a slab
// holds only states that share the same copy of the trees (copied: this
// state's is new) and the same compaction (a compaction replaces records
// and drops history, which an older state of the slab would keep alive).
// mu is held.
func (s *Store) newStateLocked(copied bool) *state {
	// (The history's first revision is 0 until its first write.)
	dropped := s.w.slabFirst != s.w.hist.first && s.w.slabFirst != 0
	usedUp := s.w.stateNext == len(s.w.states)
	if usedUp || copied || dropped || s.w.slabCompact != s.w.compactRev {
		size := len(s.w.states)
		if usedUp {
			size = min(max(2*size, 1), maxStateSlab)
		}
		// The slab is stored only when a new one starts (a write barrier
		// while the garbage collector marks, see pageCopyLocked).
		s.w.states, s.w.stateNext = make([]state, size), 0
		s.w.slabFirst, s.w.slabCompact = s.w.hist.first, s.w.compactRev
	}
	st := &s.w.states[s.w.stateNext]
	s.w.stateNext++
	return st
}

// maxStateSlab is the most states one allocation holds (1.5 KiB).
const maxStateSlab = 32

// copy returns a copy of x for readers: its trees copied (O(1) each), in a
// slice of its own.
func (x *keyIndex) copy() keyIndex {
	ps := make([]keyPart, len(x.parts))
	for i, p := range x.parts {
		ps[i] = keyPart{tree: p.tree.Copy(), common: p.common, lo: p.lo}
	}
	return keyIndex{parts: ps}
}

// dropEmpty removes the parts that compaction or an abort emptied (but
// one): the part before each takes over its range.
func (x *keyIndex) dropEmpty() {
	if len(x.parts) == 1 {
		return
	}
	x.parts = slices.DeleteFunc(x.parts, func(p keyPart) bool { return p.tree.Len() == 0 })
	if len(x.parts) == 0 {
		x.parts = []keyPart{{tree: newKeyTree()}}
	}
	x.parts[0].lo = nil
}

// insertLocked adds a record for a key the writer's index does not have.
// hint is the path of the lookup that found it missing; nil if the key is
// above every key of the index (aboveAllLocked), which goes in by the
// tree's append path. mu is held.
func (s *Store) insertLocked(rec *keyRecord, hint *keytree.Hint) {
	var t *keyTree
	var l int
	var same bool
	if p := &s.w.keys.parts[len(s.w.keys.parts)-1]; hint == nil && p.tree.Len() > 0 && bytes.HasPrefix(rec.key(), p.common) {
		// Above every key, with the last part's prefix: placeLocked
		// would find the last part, after a search of the parts.
		t, l = p.tree, len(p.common)
	} else {
		t, l, same = s.placeLocked(rec.key())
	}
	k := rec.key()
	switch {
	case hint == nil:
		if t.Load(keyPrefix(k, l), k, rec) != nil {
			panic("revkv/engine: a key above every key of the index was there (writerState.last is wrong)")
		}
	case same:
		t.Set(keyPrefix(k, l), k, rec, hint)
	default:
		t.Set(keyPrefix(k, l), k, rec, nil) // the hint is of another tree
	}
	if s.w.lastOK && (s.w.last == nil || bytes.Compare(rec.key(), s.w.last.key()) > 0) {
		s.w.last = rec
	}
	s.pointsAddLocked(rec)
	switch {
	case s.w.full:
		// The next publication copies the trees anyway.
	case s.w.fresh.seg != nil && s.w.fresh.len() >= s.w.fresh.seg.limit:
		appended := s.w.appended
		s.changedKeysLocked()
		if s.w.keys.isLast(rec) {
			s.w.appended = appended
		}
	default:
		s.addFreshLocked(rec, hint == nil)
	}
}

// addFreshLocked adds rec, just inserted, to the fresh keys, and keeps
// appended. While keys come in key order, the trees are copied every
// maxFresh of them: such keys clone only the trees' right edge after a
// copy, so more of them would save nothing; once one does not, the copy
// waits for freshLimit keys. mu is held.
//
// above says that rec's key was above every key (aboveAllLocked), so it is
// the last; a key a lookup found missing may be the last too, which is
// looked up only if it matters (keys in key order so far).
func (s *Store) addFreshLocked(rec *keyRecord, above bool) {
	last := above
	if !above && (s.w.fresh.seg == nil || s.w.appended != nil) {
		last = s.w.keys.isLast(rec)
	}
	if s.w.fresh.seg == nil {
		limit := s.w.freshLimit
		s.w.appended = nil
		if last {
			s.w.appended = rec.key()
			limit = min(limit, maxFresh)
		}
		// Fresh keys that come in key order stay one sorted run
		// (freshSeg.asc) while they do.
		s.w.fresh.start(limit, s.w.keys.sharedPrefix(), last, s.w.inOrder)
	} else if s.w.appended != nil && !last {
		s.w.appended = nil
		s.w.fresh.seg.limit = s.w.freshLimit // the writer's alone (see freshSeg)
	}
	s.w.fresh.add(rec, s.w.appended != nil)
}

// loadLocked adds a record for a key above every key of the writer's index,
// as a snapshot's base entries come. mu is held (or the store is private).
func (s *Store) loadLocked(rec *keyRecord) {
	t, l, _ := s.placeLocked(rec.key())
	t.Load(keyPrefix(rec.key(), l), rec.key(), rec)
	s.pointsAddLocked(rec)
	s.changedKeysLocked()
}

// placeLocked returns the writer's tree that a new key goes into and how
// many bytes its items skip, and whether that tree is the one a lookup of
// the key searched (so its path hint holds).
//
// The key goes to the part whose range holds it if it starts with that
// part's prefix. If not, it falls after all the part's keys (or, in the
// first part, maybe before them all), and goes, in this order of
// preference: to the next part, if it starts with that one's prefix (whose
// range then starts at the key); into the part, with a prefix shortened to
// what they share, if the part has at most rebuildLimit keys; into the
// next part shortened likewise; or into a new part of its own. An empty
// part takes the key's prefix. mu is held.
func (s *Store) placeLocked(key []byte) (t *keyTree, l int, same bool) {
	x := &s.w.keys
	i := x.find(key)
	p := &x.parts[i]
	pos := position(key, p.common)
	if p.tree.Len() == 0 {
		if c := key[:min(len(key), maxCommon)]; !bytes.Equal(c, p.common) {
			p.common = bytes.Clone(c)
			if i > 0 {
				p.lo = bytes.Clone(key) // up from the old lo: no key is in between
			}
			s.changedKeysLocked()
		}
		return p.tree, len(p.common), pos == 0
	}
	if pos == 0 {
		return p.tree, len(p.common), true
	}
	var next *keyPart // where the key may go instead, if it is after p's keys
	if pos > 0 && i+1 < len(x.parts) {
		next = &x.parts[i+1]
	}
	switch {
	case next != nil && bytes.HasPrefix(key, next.common):
		next.lo = bytes.Clone(key)
		return next.tree, len(next.common), false
	case p.tree.Len() <= rebuildLimit:
		s.shortenCommonLocked(p, key)
		return p.tree, len(p.common), false
	case next != nil && next.tree.Len() <= rebuildLimit:
		s.shortenCommonLocked(next, key)
		next.lo = bytes.Clone(key)
		return next.tree, len(next.common), false
	}
	return s.newPartLocked(i, pos, key)
}

// newPartLocked adds a part for key, which falls after the keys of part i
// (pos 1) or before them (pos -1, i 0), and returns its tree. mu is held.
func (s *Store) newPartLocked(i, pos int, key []byte) (t *keyTree, l int, same bool) {
	x := &s.w.keys
	np := keyPart{tree: newKeyTree(), common: bytes.Clone(key[:min(len(key), maxCommon)])}
	if pos > 0 {
		np.lo = bytes.Clone(key)
		i++
	} else {
		// The old first part now starts at its prefix, which sorts
		// before its keys and after key.
		x.parts[0].lo = x.parts[0].common
	}
	x.parts = slices.Insert(x.parts, i, np)
	s.logger().Debug("revkv: key index part added", "parts", len(x.parts), "prefix", len(np.common))
	s.changedKeysLocked()
	return np.tree, len(np.common), false
}

// shortenCommonLocked rebuilds part p for the prefix that its keys and key
// share. mu is held.
func (s *Store) shortenCommonLocked(p *keyPart, key []byte) {
	n := 0
	for n < len(p.common) && n < len(key) && key[n] == p.common[n] {
		n++
	}
	nt := newKeyTree()
	// The new inline bytes are the old ones moved right by the bytes the
	// prefix lost, which come in front: no record is read.
	shift := len(p.common) - n
	var lost [8]byte
	copy(lost[:], p.common[n:])
	front := binary.BigEndian.Uint64(lost[:])
	p.tree.Scan(func(prefix uint64, rec *keyRecord) bool {
		if shift < 8 {
			prefix = front | prefix>>(8*shift)
		} else {
			prefix = front
		}
		nt.Load(prefix, rec.key(), rec)
		return true
	})
	s.logger().Debug("revkv: key index part rebuilt for a shorter common prefix", "keys", nt.Len(), "prefix", len(p.common), "now", n)
	p.tree, p.common = nt, p.common[:n:n]
	s.changedKeysLocked()
}

// changedKeysLocked records that the writer's tree changed other than by
// insertLocked (compaction replaced or removed records): the next
// publication copies the tree. mu is held.
func (s *Store) changedKeysLocked() {
	s.w.full, s.w.fresh, s.w.appended = true, freshKeys{}, nil
	s.w.hot.forget()
	s.w.last, s.w.lastOK = nil, false
}

// aboveAllLocked reports whether key sorts after every key of the writer's
// index, so that it is new and goes in at the end: a comparison with the
// greatest key, which the writer keeps (writerState.last) and finds again
// along the last tree's right edge after changedKeysLocked. A store filled
// in key order thus puts each key without a descent. mu is held.
func (s *Store) aboveAllLocked(key []byte) bool {
	if !s.w.lastOK {
		for i := len(s.w.keys.parts) - 1; i >= 0; i-- {
			if _, last, ok := s.w.keys.parts[i].tree.Max(); ok {
				s.w.last = last
				break
			}
		}
		s.w.lastOK = true
	}
	return s.w.last == nil || bytes.Compare(key, s.w.last.key()) > 0
}

// lockWriter takes mu and checks the store is open and not stopped.
func (s *Store) lockWriter() error {
	if s.closed.Load() {
		return kv.ErrClosed
	}
	if err := s.Err(); err != nil {
		return err
	}
	if !s.mu.TryLock() {
		s.waiting.Add(1)
		s.mu.Lock()
		s.waiting.Add(-1)
	}
	if s.closed.Load() {
		s.mu.Unlock()
		return kv.ErrClosed
	}
	if err := s.Err(); err != nil {
		s.mu.Unlock()
		return err
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

// Close releases the store. It aborts an open txn (whose later calls
// return kv.ErrTxnEnded wrapping kv.ErrClosed), waits for a write or
// compaction step in progress to end, makes every write durable (as
// Commit), closes the persister, whose goroutines and files are gone when
// Close returns, and stops the lease expiry timer (leases stop expiring).
// It returns the error of that last commit, or the stop error if the store
// had stopped (see Err). Every later call returns kv.ErrClosed; views and
// snapshots taken before Close keep working until they are dropped. Calling
// Close again is safe but not silent: it changes nothing and returns
// kv.ErrClosed.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return kv.ErrClosed
	}
	// A txn opened before the flag was set ends here; Begin checks the flag
	// under txnMu, so none opens after.
	s.abortOpenTxn(errEndedByClose)
	s.mu.Lock()
	err := s.closePersister()
	s.notifyArmed.Store(true)
	s.wake()
	exp := s.exp
	s.mu.Unlock()
	exp.stopAndWait() // after Unlock: the timer may be waiting for mu
	return err
}

// errEndedByClose is why Close ends an open txn; made once, as most stores
// close with none open.
var errEndedByClose = fmt.Errorf("%w: %w", kv.ErrTxnEnded, kv.ErrClosed)

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
