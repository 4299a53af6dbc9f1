package engine

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/revkv/revkv/kv"
)

// txnState is an open write txn: the revision it began at and the changes it
// made so far. The changes are applied to the writer's index as they are made
// (with revision beginRev+1, which no reader can see until the commit
// publishes it), so reads inside the txn see them; undo can take them back.
//
// While a txn is open it holds mu (the writer lock) on behalf of whoever
// ends it: the caller's Commit or Abort, or the context callback, or Close.
// Whoever takes it out of Store.txn (under txnMu) ends it.
type txnState struct {
	id       int64
	beginRev int64
	changes  []change
	undo     *undoLog // the writer's (one txn at a time)
	// apart says that changes are not in the writer's slab of changes
	// but in an array of their own (see moveChangesLocked), or in the
	// exec state's buffer (see startExecLocked).
	apart bool
	// skipped is true when the consistent index said this txn's entry was
	// already applied: every operation in it is a no-op.
	skipped bool
	// oldIndex is the consistent index before the txn, restored if it
	// aborts or the persister refuses it.
	oldIndex uint64
	size     int64 // of the changes, against MaxBatchSize

	// failed is the first error of a write in the txn: from then on the
	// txn can only abort. Guarded by txnMu.
	failed error
	// ended says why the txn ended, once it has. Guarded by txnMu.
	ended error
	// stop unregisters the context callback; nil if there is none.
	stop func() bool
	// deadline is when the store's txn timer aborts the txn (see
	// txnTimer); zero if it does not.
	deadline time.Time
}

// rev is the revision the txn's reads see and its writes get.
func (t *txnState) rev() int64 {
	if len(t.changes) > 0 {
		return t.beginRev + 1
	}
	return t.beginRev
}

// fail records err, if it is the txn's first failure, and returns it.
// txnMu is held.
func (t *txnState) fail(err error) error {
	if err != nil && t.failed == nil {
		t.failed = err
	}
	return err
}

// Txn is an open write txn (see Store.Begin). Its methods are safe for
// concurrent use, but a txn is meant to be used by one goroutine.
type Txn struct {
	s *Store
	t *txnState
}

// Begin opens a write txn. It waits until no other txn or write is in
// progress (ctx does not bound that wait; the other txn's own context
// does); until the txn ends, other writers wait. All writes of the txn
// share one main revision, with sub-revisions in operation order; its
// reads see its own earlier writes. A txn that changes nothing does not
// move the revision when it commits.
//
// The txn ends with Commit or Abort, or is aborted when ctx is done (its
// later calls then return kv.ErrTxnEnded wrapping context.Cause(ctx)) or
// when the store is closed (kv.ErrTxnEnded wrapping kv.ErrClosed). A ctx
// without a deadline gets Options.TxnTimeout's, so that a forgotten
// Commit cannot block writers forever. A
// failed Put or DeleteRange poisons the txn: every later operation fails
// with kv.ErrTxnFailed, and Commit aborts it. An aborted txn changes
// nothing: no revision, no event, no key, not even the consistent index.
//
// After Close, Begin returns kv.ErrClosed.
func (s *Store) Begin(ctx context.Context) (*Txn, error) {
	var timeout time.Duration
	if _, ok := ctx.Deadline(); !ok {
		timeout = s.txnTimeout()
	}
	t, err := s.begin(ctx, timeout)
	if err != nil {
		return nil, err
	}
	return &Txn{s: s, t: t}, nil
}

// txnTimeout is Options.TxnTimeout resolved: 0 for no limit.
func (s *Store) txnTimeout() time.Duration {
	switch d := s.opts.TxnTimeout; {
	case d == 0:
		return DefaultTxnTimeout
	case d > 0:
		return d
	}
	return 0
}

// begin opens a txn that ctx ends, and that the store's txn timer ends
// after timeout if it is above 0 (a timer costs less than a context with
// a deadline).
func (s *Store) begin(ctx context.Context, timeout time.Duration) (*txnState, error) {
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	if err := s.lockWriter(); err != nil {
		return nil, err
	}
	t := &txnState{beginRev: s.w.rev, oldIndex: s.w.cindex, undo: &s.w.undoBuf, changes: s.changeRoomLocked(s.w.rev + 1)}
	t.skipped = s.checkIndexLocked()
	s.txnMu.Lock()
	defer s.txnMu.Unlock()
	if s.closed.Load() {
		// Close set the flag and looked for an open txn before this one
		// was registered.
		s.w.cindex = t.oldIndex
		s.mu.Unlock()
		return nil, kv.ErrClosed
	}
	s.txnID++
	t.id = s.txnID
	s.txn = t
	s.w.undo = t.undo
	// The callbacks run at once if ctx is already done, and wait for
	// txnMu: the txn is registered by then.
	if ctx.Done() != nil {
		t.stop = context.AfterFunc(ctx, func() {
			s.abortTxn(t, fmt.Errorf("%w: %w", kv.ErrTxnEnded, context.Cause(ctx)))
		})
	}
	if timeout > 0 {
		t.deadline = time.Now().Add(timeout)
		s.txnTimer.armLocked(s, timeout)
	}
	return t, nil
}

// txnTimer aborts the txns that stay open past the store's txn timeout
// (Store.txnTimeout). One timer serves every txn, rather than one made,
// added to the runtime's timers and stopped per txn: it is armed when a txn
// with a deadline begins and it is not, and when it fires it aborts the
// open txn if that txn's deadline has passed, or waits until that
// deadline if not. It is never late: every deadline is the timeout after
// its txn's begin, so a timer armed (or waiting) for an earlier txn fires
// before the deadline of any txn that began after that one.
type txnTimer struct {
	t *time.Timer // nil until the first txn with a deadline
	// armed says that t will fire, or is firing and will see the open
	// txn. Guarded by txnMu.
	armed bool
}

// armLocked makes sure the timer fires within d. txnMu is held.
func (x *txnTimer) armLocked(s *Store, d time.Duration) {
	switch {
	case x.armed:
	case x.t == nil:
		x.t = time.AfterFunc(d, s.txnTimedOut)
	default:
		x.t.Reset(d)
	}
	x.armed = true
}

// stopLocked stops the timer: Close, after which no txn begins. txnMu is
// held.
func (x *txnTimer) stopLocked() {
	if x.t != nil {
		x.t.Stop()
	}
	x.armed = false
}

// txnTimedOut is the txn timer's callback: it aborts the open txn if its
// deadline has passed, and arms the timer again for it if not.
func (s *Store) txnTimedOut() {
	s.txnMu.Lock()
	defer s.txnMu.Unlock()
	t := s.txn
	if t == nil || t.deadline.IsZero() || s.closed.Load() {
		// The next txn with a deadline arms it; after Close (which sets
		// closed before it stops the timer), none: a txn that Close is
		// aborting must not arm it again.
		s.txnTimer.armed = false
		return
	}
	if d := time.Until(t.deadline); d > 0 {
		s.txnTimer.t.Reset(d)
		return
	}
	s.txnTimer.armed = false
	s.abortTxnLocked(t, fmt.Errorf("%w: open longer than %v: %w", kv.ErrTxnEnded, s.txnTimeout(), context.DeadlineExceeded))
}

// endLocked takes t out of the store: from now on its caller owns mu.
// txnMu is held.
func (s *Store) endLocked(t *txnState, why error) {
	s.txn = nil
	s.w.undo = nil
	t.ended = why
	if t.stop != nil {
		t.stop()
	}
}

// abortTxn aborts t if it is still open, and reports whether it did.
func (s *Store) abortTxn(t *txnState, why error) bool {
	s.txnMu.Lock()
	defer s.txnMu.Unlock()
	return s.abortTxnLocked(t, why)
}

// abortTxnLocked is abortTxn with txnMu held.
func (s *Store) abortTxnLocked(t *txnState, why error) bool {
	if s.txn != t {
		return false
	}
	s.endLocked(t, why)
	s.aborted = t
	s.rollbackLocked(t)
	s.mu.Unlock()
	return true
}

// abortOpenTxn aborts the open txn, if there is one, and stops the txn
// timer: Close calls it, once no txn can begin.
func (s *Store) abortOpenTxn(why error) {
	s.txnMu.Lock()
	t := s.txn
	s.txnTimer.stopLocked()
	s.txnMu.Unlock()
	if t != nil {
		s.abortTxn(t, why)
	}
}

// rollbackLocked takes back everything t wrote. mu is held by t's ender.
func (s *Store) rollbackLocked(t *txnState) {
	s.undoLocked(t.undo)
	s.w.cindex = t.oldIndex
	clear(t.changes) // an ended txn keeps no key or value alive
	t.changes = t.changes[:0]
}

// commitChangesLocked hands t's changes to the persister and publishes
// them (endWriteLocked). mu is held by t's ender; if the persister refuses
// them, it is released.
//
// The history keeps a revision's slice of changes if it has more than one
// and they did not all make new keys (see history.add). The txns of
// TxnBegin and Begin collect theirs in the writer's slab of changes (see
// changeRoomLocked), where the history then keeps them; the exec state's
// txns collect theirs in a buffer they reuse, and big txns in an array of
// their own (see moveChangesLocked), so the history gets a copy of exactly
// their size.
func (s *Store) commitChangesLocked(t *txnState) error {
	cs := t.changes
	kept := keeps(cs)
	if t.apart && kept {
		cs = slices.Clone(cs)
	}
	if err := s.endWriteLocked(t.beginRev+1, cs[:len(cs):len(cs)], t.oldIndex); err != nil {
		return err // mu is released: the buffer is left to t
	}
	if t.apart || !kept {
		// The history kept no reference to t.changes: the buffer, or the
		// slab's room, is used again, and keeps no key or value alive.
		clear(t.changes)
		return nil
	}
	s.w.changeBuf = s.w.changeBuf[:len(s.w.changeBuf)+len(cs)]
	return nil
}

// changeRoomLocked returns an empty slice, with capacity, for the changes
// of a txn that would make revision rev: the free part of the writer's
// slab of changes (changeBuf, whose length is the part committed txns
// filled and the history keeps, see keeps), which txns fill in revision
// order as pages fill with values.
// A slab holds the changes of one chunk of the history only, so that the
// chunks compaction drops leave no slab alive (with the records and
// values their changes point to) beside the chunks it keeps. mu is held.
func (s *Store) changeRoomLocked(rev int64) []change {
	b, first := s.w.changeBuf, s.w.hist.first
	// (A slab whose chunk compaction dropped starts below first: the
	// division would round its index up to the first chunk's.)
	if len(b) > 0 && (b[0].v.main < first || (b[0].v.main-first)/chunkSize != (rev-first)/chunkSize) {
		// Stored only when a new slab starts (see pageCopyLocked).
		b = make([]change, 0, cap(b))
		s.w.changeBuf = b
	}
	return b[len(b):len(b):cap(b)]
}

// addChangeLocked appends c to t's changes. mu is held by t.
func (s *Store) addChangeLocked(t *txnState, c change) {
	s.changeRoomForLocked(t, 1)
	t.changes = append(t.changes, c)
}

// changeRoomForLocked makes room for n more changes of t in the writer's
// slab of changes, if t's changes are there. mu is held by t.
func (s *Store) changeRoomForLocked(t *txnState, n int) {
	if len(t.changes)+n > cap(t.changes) && !t.apart {
		s.moveChangesLocked(t, n)
	}
}

// moveChangesLocked moves t's changes, which are in the writer's slab of
// changes and fill its room, to a new slab with room for n more; or, if
// they would be more than maxChangeSlab, to an array of their own, which
// append grows: a slab that grew with a big txn would keep up to half of
// it unused once its chunk of the history is full. mu is held by t.
func (s *Store) moveChangesLocked(t *txnState, n int) {
	k := len(t.changes)
	if k+n > maxChangeSlab {
		own := slices.Grow(t.changes[:k:k], n)
		clear(t.changes) // the slab keeps none of them alive
		t.changes, t.apart = own, true
		return
	}
	size := min(max(2*cap(s.w.changeBuf), minChangeSlab, 2*(k+n)), maxChangeSlab)
	b := make([]change, size)
	copy(b, t.changes)
	clear(t.changes) // the old slab keeps none of them alive
	s.w.changeBuf = b[:0]
	t.changes = b[:k:size]
}

// minChangeSlab and maxChangeSlab bound how many changes one slab of
// changes holds (1.5 and 24 KiB): each slab is twice the last, as pages
// grow, so that a store that sees few txns does not pay for a big one.
const (
	minChangeSlab = 16
	maxChangeSlab = 256
)

// commitTxn ends t: it applies t's changes as one revision, or aborts t if
// a write in it failed.
func (s *Store) commitTxn(t *txnState) (rev int64, err error) {
	s.txnMu.Lock()
	if s.txn != t {
		err := t.endedErr()
		s.txnMu.Unlock()
		return 0, err
	}
	s.endLocked(t, kv.ErrTxnEnded)
	if t.failed != nil {
		s.rollbackLocked(t)
		s.txnMu.Unlock()
		s.mu.Unlock()
		return 0, fmt.Errorf("%w: %w", kv.ErrTxnFailed, t.failed)
	}
	s.txnMu.Unlock()
	t.undo.reset()
	if err := s.commitChangesLocked(t); err != nil {
		return 0, err
	}
	rev = s.w.rev // read before the unlock
	return rev, s.unlockAndWait()
}

// endedErr is the error of a call on t after it ended. txnMu is held.
func (t *txnState) endedErr() error {
	if t.ended == nil {
		return kv.ErrTxnEnded
	}
	return t.ended
}

// usable returns the error an operation on t gets, if any. txnMu is held.
func (s *Store) usable(t *txnState) error {
	switch {
	case s.txn != t:
		return t.endedErr()
	case t.failed != nil:
		return fmt.Errorf("%w: %w", kv.ErrTxnFailed, t.failed)
	}
	return nil
}

// Rev returns the revision the txn's reads see: its begin revision, plus
// one once it has written.
func (x *Txn) Rev() int64 {
	x.s.txnMu.Lock()
	defer x.s.txnMu.Unlock()
	return x.t.rev()
}

// Range reads a range as Store.RangeWithOptions does, inside the txn: it
// sees the txn's own writes, and its result's Rev is the txn's Rev. A
// failed Range does not poison the txn.
func (x *Txn) Range(key, end []byte, opts RangeOptions) (RangeResult, error) {
	s := x.s
	s.txnMu.Lock()
	defer s.txnMu.Unlock()
	if err := s.usable(x.t); err != nil {
		return RangeResult{Rev: x.t.rev()}, err
	}
	return s.txnRangeLocked(x.t, key, end, opts)
}

// Put sets key to value inside the txn (see kv.PutOptions). Its result's
// Rev is the txn's revision.
func (x *Txn) Put(key, value []byte, opts kv.PutOptions) (kv.PutResult, error) {
	s := x.s
	s.txnMu.Lock()
	defer s.txnMu.Unlock()
	if err := s.usable(x.t); err != nil {
		return kv.PutResult{}, err
	}
	res, err := s.txnPutLocked(x.t, key, value, opts)
	return res, x.t.fail(err)
}

// DeleteRange deletes the keys in a range (selected as in Store.Range)
// inside the txn.
func (x *Txn) DeleteRange(key, end []byte, opts kv.DeleteOptions) (kv.DeleteResult, error) {
	s := x.s
	s.txnMu.Lock()
	defer s.txnMu.Unlock()
	if err := s.usable(x.t); err != nil {
		return kv.DeleteResult{}, err
	}
	res, err := s.txnDeleteLocked(x.t, key, end, opts)
	return res, x.t.fail(err)
}

// Commit ends the txn: it applies its writes as one revision (made durable
// and published as a Put's), lets other writers in, and returns the
// store's revision. If a write in the txn failed, Commit aborts it instead
// and returns kv.ErrTxnFailed wrapping that failure. After the txn ended,
// Commit returns kv.ErrTxnEnded (wrapping why, if it was aborted).
func (x *Txn) Commit() (rev int64, err error) { return x.s.commitTxn(x.t) }

// Abort ends the txn and takes back everything it wrote. It returns
// kv.ErrTxnEnded if the txn had ended already, so a deferred Abort after
// Commit is harmless.
func (x *Txn) Abort() error {
	if x.s.abortTxn(x.t, kv.ErrTxnEnded) {
		return nil
	}
	x.s.txnMu.Lock()
	defer x.s.txnMu.Unlock()
	return x.t.endedErr()
}

// txnView is the state a txn's reads see: the writer's index (private to
// the txn while it holds mu) at the txn's revision. Its stateBase is the
// writer's, reused by every call (so a txn's read allocates none): a view
// is good until the next call. mu is held.
func (s *Store) txnView(t *txnState) state {
	if s.w.txnBase == nil {
		s.w.txnBase = new(stateBase)
	}
	*s.w.txnBase = stateBase{keys: s.w.keys, compactRev: s.w.compactRev}
	return state{stateBase: s.w.txnBase, rev: t.rev()}
}

// txnRangeLocked is a range read inside t. mu is held by t.
func (s *Store) txnRangeLocked(t *txnState, key, end []byte, opts RangeOptions) (RangeResult, error) {
	if t.skipped {
		return RangeResult{Rev: t.beginRev}, nil
	}
	st := s.txnView(t)
	return st.rangeKeys(key, end, opts)
}

// txnPutLocked is a put inside t. mu is held by t.
func (s *Store) txnPutLocked(t *txnState, key, value []byte, opts kv.PutOptions) (kv.PutResult, error) {
	if err := checkPut(key, value); err != nil {
		return kv.PutResult{}, err
	}
	if err := opts.Check(value); err != nil {
		return kv.PutResult{}, err
	}
	if t.skipped {
		return kv.PutResult{Rev: t.beginRev}, nil
	}
	if !opts.IgnoreLease {
		// A lease the put names is checked before the key it may keep the
		// value of, so that the error is etcd's.
		if err := s.checkLeaseLocked(opts.Lease); err != nil {
			return kv.PutResult{}, err
		}
	}
	var res kv.PutResult
	if opts.PrevKV || opts.IgnoreValue || opts.IgnoreLease {
		prev, ok := s.liveLocked(key, t.rev())
		if !ok && (opts.IgnoreValue || opts.IgnoreLease) {
			return kv.PutResult{}, fmt.Errorf("put of %q keeping its value or lease: %w", key, kv.ErrKeyNotFound)
		}
		if opts.IgnoreValue {
			value = prev.Value
		}
		if opts.IgnoreLease {
			opts.Lease = prev.Lease
		}
		if ok && opts.PrevKV {
			res.PrevKV = &prev
		}
	}
	if opts.IgnoreLease {
		if err := s.checkLeaseLocked(opts.Lease); err != nil {
			return kv.PutResult{}, err
		}
	}
	size := t.size + changeSize(key, value)
	if size > MaxBatchSize {
		return kv.PutResult{}, fmt.Errorf("txn of %d bytes, limit %d: %w", size, MaxBatchSize, kv.ErrTooLarge)
	}
	res.Rev = t.beginRev + 1
	s.addChangeLocked(t, s.putLocked(key, value, opts.Lease, res.Rev, int64(len(t.changes))))
	t.size = size
	return res, nil
}

// liveLocked returns key's value at rev in the writer's index. mu is held.
func (s *Store) liveLocked(key []byte, rev int64) (kv.KeyValue, bool) {
	rec := s.w.keys.lookup(key)
	if rec == nil {
		return kv.KeyValue{}, false
	}
	return rec.live(rev)
}

// txnDeleteLocked is a DeleteRange inside t. mu is held by t.
func (s *Store) txnDeleteLocked(t *txnState, key, end []byte, opts kv.DeleteOptions) (kv.DeleteResult, error) {
	if err := checkRange(key, end); err != nil {
		return kv.DeleteResult{}, err
	}
	if t.skipped {
		return kv.DeleteResult{Rev: t.beginRev}, nil
	}
	var prev []kv.KeyValue
	if opts.PrevKV {
		st := s.txnView(t)
		st.each(key, end, st.rev, 0, func(kv KeyValue) bool {
			prev = append(prev, kv)
			return true
		})
	}
	cs, err := s.deleteLocked(key, end, t.beginRev+1, int64(len(t.changes)), MaxBatchSize-t.size)
	if err != nil {
		return kv.DeleteResult{}, err
	}
	s.changeRoomForLocked(t, len(cs))
	t.changes = append(t.changes, cs...)
	for _, c := range cs {
		t.size += changeSize(c.key, nil)
	}
	return kv.DeleteResult{Deleted: int64(len(cs)), Rev: t.rev(), PrevKVs: prev}, nil
}
