package engine

import (
	"bytes"
	"fmt"

	"github.com/revkv/revkv/kv"
	"github.com/revkv/revkv/persist"

	"github.com/tidwall/btree"
)

// txnState is an open write txn: the revision it began at and the changes it
// made so far. The changes are applied to the writer's index as they are made
// (with revision beginRev+1, which no reader can see until TxnEnd publishes
// it), so reads inside the txn see them.
type txnState struct {
	id       int64
	beginRev int64
	changes  []change
	// skipped is true when the consistent index said this txn's entry was
	// already applied: every operation in it is a no-op.
	skipped bool
	// oldIndex is the consistent index before the txn, restored if the
	// persister refuses it.
	oldIndex uint64
	size     int64 // of the changes, against MaxBatchSize
}

// rev is the revision the txn's reads see and its writes get.
func (t *txnState) rev() int64 {
	if len(t.changes) > 0 {
		return t.beginRev + 1
	}
	return t.beginRev
}

// checkIndexLocked reports whether a write should be skipped because the
// consistent index says its entry was applied before, and records the index
// otherwise. mu is held.
func (s *Store) checkIndexLocked() (skip bool) {
	g := s.opts.ConsistentIndex
	if g == nil {
		return false
	}
	ci := g.ConsistentIndex()
	if ci <= s.w.cindex {
		return true
	}
	s.w.cindex = ci
	return false
}

// Put sets key to value in a new revision and returns that revision. The
// store keeps its own copy of key and value. An empty key is kv.ErrEmptyKey.
func (s *Store) Put(key, value []byte) (rev int64, err error) {
	return s.PutLease(key, value, 0)
}

// PutLease is Put with a lease ID recorded on the new KeyValue, which
// attaches the key to that lease (and detaches it from the lease it had):
// the lease's revoke or expiry deletes it. A lease that is not live is
// ErrLeaseNotFound, and nothing is written. lease 0 is no lease.
func (s *Store) PutLease(key, value []byte, lease int64) (rev int64, err error) {
	if err := checkPut(key, value); err != nil {
		return 0, err
	}
	if err := s.lockWriter(); err != nil {
		return 0, err
	}
	oldIndex := s.w.cindex
	if s.checkIndexLocked() {
		rev = s.w.rev                 // read before the unlock
		return rev, s.unlockAndWait() // already applied: nothing changes
	}
	if err := s.checkLeaseLocked(lease); err != nil {
		s.w.cindex = oldIndex
		s.mu.Unlock()
		return 0, err
	}
	rev = s.w.rev + 1
	c := s.putLocked(key, value, lease, rev, 0)
	if err := s.logChangesLocked(rev, []change{c}); err != nil {
		s.w.cindex = oldIndex
		s.mu.Unlock()
		return 0, err
	}
	s.w.hist = s.w.hist.addOne(rev, c)
	s.w.rev = rev
	if s.w.lt.active() {
		s.attachLocked([]change{c})
	}
	s.publishLocked()
	return rev, s.unlockAndWait()
}

// DeleteRange deletes the keys in the range (see Range for how key and end
// select) under one new revision, and returns how many it deleted and the
// current revision. If nothing was deleted the revision does not move. An
// empty key with a nil end is kv.ErrEmptyKey.
func (s *Store) DeleteRange(key, end []byte) (n, rev int64, err error) {
	if err := checkRange(key, end); err != nil {
		return 0, 0, err
	}
	if err := s.lockWriter(); err != nil {
		return 0, 0, err
	}
	oldIndex := s.w.cindex
	if s.checkIndexLocked() {
		rev = s.w.rev                    // read before the unlock
		return 0, rev, s.unlockAndWait() // already applied: nothing changes
	}
	rev = s.w.rev + 1
	cs, err := s.deleteLocked(key, end, rev, 0, MaxBatchSize)
	if err != nil {
		s.w.cindex = oldIndex
		s.mu.Unlock()
		return 0, 0, err
	}
	if err := s.endWriteLocked(rev, cs, oldIndex); err != nil {
		return 0, 0, err
	}
	if len(cs) == 0 {
		rev = s.w.rev // read before the unlock
		return 0, rev, s.unlockAndWait()
	}
	return int64(len(cs)), rev, s.unlockAndWait()
}

func checkPut(key, value []byte) error {
	switch {
	case len(key) == 0:
		return kv.ErrEmptyKey
	case len(key) > MaxKeySize:
		return fmt.Errorf("key of %d bytes, limit %d: %w", len(key), MaxKeySize, kv.ErrTooLarge)
	case len(value) > MaxValueSize:
		return fmt.Errorf("value of %d bytes, limit %d: %w", len(value), MaxValueSize, kv.ErrTooLarge)
	}
	return nil
}

// putLocked appends a put of key at (rev, sub) to the writer's index and
// returns the change. mu is held.
func (s *Store) putLocked(key, value []byte, lease, rev, sub int64) change {
	if len(value) > 0 {
		value = bytes.Clone(value)
	}
	return s.putOwnedLocked(key, value, lease, rev, sub)
}

// putOwnedLocked is putLocked for a value the store may keep as it is (a
// loader's, freshly read). mu is held.
func (s *Store) putOwnedLocked(key, value []byte, lease, rev, sub int64) change {
	v := version{main: rev, sub: sub, create: rev, ver: 1, lease: lease}
	if len(value) > 0 {
		v.value = value
	}
	var hint btree.PathHint
	rec := s.w.keys.lookupHint(key, &hint)
	if rec == nil {
		rec = newRecord(key, v)
		s.insertLocked(rec, &hint)
		return change{key: rec.key(), v: v}
	}
	if last, ok := rec.at(rev); ok && !last.deleted() {
		v.create, v.ver = last.create, last.ver+1
	}
	rec.append(v)
	return change{key: s.historyKeyLocked(rec.key()), v: v}
}

// historyKeyLocked returns a copy of a key for the history's change of a
// key that already had a version (an update or a delete).
//
// The change of a new key shares the key of its record: most keys are
// short and live inside their record, so the history then leads the
// garbage collector through records in the order they were made, which it
// marks much faster than in key order. But compaction replaces the records
// of keys that had several versions, and a change sharing the old record's
// key would keep that record alive, with every version it lists, until a
// later compaction dropped the change. An update's change therefore gets a
// copy, packed with others into pages that only the history refers to: it
// costs the key's bytes and no allocation of its own. (A new key's record
// is replaced only once the change that made it is below the compacted
// revision, so at most in the chunk of history that compaction keeps.)
// mu is held.
func (s *Store) historyKeyLocked(k []byte) []byte {
	if len(k) > keyPage/8 {
		return bytes.Clone(k)
	}
	p := s.w.keyPage
	if cap(p)-len(p) < len(k) {
		p = make([]byte, 0, keyPage)
	}
	n := len(p)
	p = append(p, k...)
	s.w.keyPage = p
	return p[n:len(p):len(p)]
}

// keyPage is the size of the allocations historyKeyLocked packs keys into.
const keyPage = 4096

// deleteLocked appends tombstones at (rev, sub...) for the keys live in the
// range and returns the changes. If their size (see changeSize) would be
// above budget it changes nothing and returns kv.ErrTooLarge. mu is held.
func (s *Store) deleteLocked(key, end []byte, rev, sub, budget int64) ([]change, error) {
	var recs []*keyRecord
	if end == nil {
		if rec := s.w.keys.lookup(key); rec != nil {
			recs = append(recs, rec)
		}
	} else if !emptyRange(key, end) {
		s.w.keys.ascend(key, rangeEnd(end), func(r *keyRecord) bool {
			recs = append(recs, r)
			return true
		})
	}
	live := recs[:0]
	var size int64
	for _, rec := range recs {
		if last, ok := rec.at(rev); ok && !last.deleted() {
			live = append(live, rec)
			size += changeSize(rec.key(), nil)
		}
	}
	if size > budget {
		return nil, fmt.Errorf("delete of %d keys (%d bytes), limit %d: %w", len(live), size, budget, kv.ErrTooLarge)
	}
	cs := make([]change, 0, len(live))
	for _, rec := range live {
		v := version{main: rev, sub: sub}
		sub++
		rec.append(v)
		cs = append(cs, change{key: s.historyKeyLocked(rec.key()), v: v})
	}
	return cs, nil
}

// changeSize is what a change counts against MaxBatchSize: its key and
// value, and a fixed allowance for its encoding.
func changeSize(key, value []byte) int64 { return int64(len(key) + len(value) + 32) }

// endWriteLocked ends a write that made the changes cs at revision rev (none:
// the revision stays, but the consistent index may have moved from
// oldIndex): it hands them to the persister and publishes them. If the
// persister refuses them, nothing is published, the store stops, and mu is
// released; otherwise mu is still held. mu is held.
func (s *Store) endWriteLocked(rev int64, cs []change, oldIndex uint64) error {
	var err error
	if len(cs) > 0 {
		err = s.logChangesLocked(rev, cs)
	} else if s.w.cindex != oldIndex {
		err = s.logLocked(&persist.Batch{Rev: s.w.rev, Index: s.w.cindex})
	}
	if err != nil {
		s.w.cindex = oldIndex
		s.mu.Unlock()
		return err
	}
	if len(cs) > 0 {
		s.w.hist = s.w.hist.add(rev, cs)
		s.w.rev = rev
		s.attachLocked(cs)
	}
	s.publishLocked()
	return nil
}

// TxnBegin opens a write txn and returns its ID. It waits until no other txn
// or write is in progress; until TxnEnd, other writers wait. All writes of
// the txn share one main revision, with sub-revisions in operation order;
// its reads see its own earlier writes. A txn that changes nothing does not
// move the revision.
//
// After Close, TxnBegin returns kv.ErrClosed.
func (s *Store) TxnBegin() (int64, error) {
	if err := s.lockWriter(); err != nil {
		return 0, err
	}
	oldIndex := s.w.cindex
	skip := s.checkIndexLocked()
	s.txnMu.Lock()
	defer s.txnMu.Unlock()
	s.txnID++
	s.txn = &txnState{id: s.txnID, beginRev: s.w.rev, skipped: skip, oldIndex: oldIndex}
	return s.txnID, nil
}

// openTxn returns the open txn if id names it. txnMu is held.
func (s *Store) openTxn(id int64) (*txnState, error) {
	if s.txn == nil || s.txn.id != id {
		return nil, fmt.Errorf("txn %d: %w", id, ErrTxnIDMismatch)
	}
	return s.txn, nil
}

// TxnEnd commits the txn's changes as one revision, publishes it, and lets
// other writers in. A wrong ID is ErrTxnIDMismatch and leaves the txn open.
func (s *Store) TxnEnd(txnID int64) error {
	s.txnMu.Lock()
	t, err := s.openTxn(txnID)
	if err != nil {
		s.txnMu.Unlock()
		return err
	}
	s.txn = nil
	s.txnMu.Unlock()

	if err := s.endWriteLocked(t.beginRev+1, t.changes, t.oldIndex); err != nil {
		return err
	}
	return s.unlockAndWait()
}

// TxnRange is Range inside the txn: it reads the txn's own writes, and the
// returned revision is the txn's (begin revision, plus one if it has
// written).
func (s *Store) TxnRange(txnID int64, key, end []byte, limit, rangeRev int64) ([]KeyValue, int64, error) {
	s.txnMu.Lock()
	defer s.txnMu.Unlock()
	t, err := s.openTxn(txnID)
	if err != nil {
		return nil, 0, err
	}
	if t.skipped {
		return nil, t.beginRev, nil
	}
	// The writer's tree is private to mu's holder, which is this txn.
	st := state{keys: s.w.keys, rev: t.rev(), compactRev: s.w.compactRev}
	res, err := st.rangeKeys(key, end, RangeOptions{Limit: limit, Rev: rangeRev})
	return res.KVs, res.Rev, err
}

// TxnPut is Put inside the txn. It returns the txn's revision.
func (s *Store) TxnPut(txnID int64, key, value []byte) (rev int64, err error) {
	return s.TxnPutLease(txnID, key, value, 0)
}

// TxnPutLease is PutLease inside the txn. A lease that is not live is
// ErrLeaseNotFound; the put is not made and the txn stays open.
func (s *Store) TxnPutLease(txnID int64, key, value []byte, lease int64) (rev int64, err error) {
	s.txnMu.Lock()
	defer s.txnMu.Unlock()
	t, err := s.openTxn(txnID)
	if err != nil {
		return 0, err
	}
	if err := checkPut(key, value); err != nil {
		return 0, err
	}
	if t.skipped {
		return t.beginRev, nil
	}
	if err := s.checkLeaseLocked(lease); err != nil {
		return 0, err
	}
	if size := t.size + changeSize(key, value); size > MaxBatchSize {
		return 0, fmt.Errorf("txn of %d bytes, limit %d: %w", size, MaxBatchSize, kv.ErrTooLarge)
	}
	rev = t.beginRev + 1
	t.changes = append(t.changes, s.putLocked(key, value, lease, rev, int64(len(t.changes))))
	t.size += changeSize(key, value)
	return rev, nil
}

// TxnDeleteRange is DeleteRange inside the txn. It returns how many keys it
// deleted and the txn's revision.
func (s *Store) TxnDeleteRange(txnID int64, key, end []byte) (n, rev int64, err error) {
	s.txnMu.Lock()
	defer s.txnMu.Unlock()
	t, err := s.openTxn(txnID)
	if err != nil {
		return 0, 0, err
	}
	if err := checkRange(key, end); err != nil {
		return 0, 0, err
	}
	if t.skipped {
		return 0, t.beginRev, nil
	}
	cs, err := s.deleteLocked(key, end, t.beginRev+1, int64(len(t.changes)), MaxBatchSize-t.size)
	if err != nil {
		return 0, 0, err
	}
	t.changes = append(t.changes, cs...)
	for _, c := range cs {
		t.size += changeSize(c.key, nil)
	}
	return int64(len(cs)), t.rev(), nil
}
