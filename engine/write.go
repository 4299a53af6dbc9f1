package engine

import (
	"bytes"
	"fmt"

	"github.com/revkv/revkv/kv"
	"github.com/revkv/revkv/persist"
)

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
// kv.ErrLeaseNotFound, and nothing is written. lease 0 is no lease.
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
	c, paired := s.putVersionLocked(key, value, lease, rev, 0)
	if err := s.logChangesLocked(rev, []change{c}); err != nil {
		s.w.cindex = oldIndex
		s.mu.Unlock()
		return 0, err
	}
	if paired {
		slab, idx := s.lastVersionLocked()
		s.w.setHistLocked(s.w.hist.addUpdated(rev, slab, idx, len(c.key)))
	} else {
		s.w.setHistLocked(s.w.hist.addOne(rev, c))
	}
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
// returns the change. It copies value: into the record of a new key, which
// holds its first value in the same allocation, or into the writer's pages
// for an update (see pageCopyLocked). mu is held.
func (s *Store) putLocked(key, value []byte, lease, rev, sub int64) change {
	c, _ := s.putVersionLocked(key, value, lease, rev, sub)
	return c
}

// putVersionLocked is putLocked, and also reports whether it was an update
// whose key and value went into one page together, the value right after
// the key (see pageCopyPairLocked): then the version it appended is the
// last one in the writer's slabs (see lastVersionLocked), and the history
// can keep the revision as where that version is and the key's length
// (see history.addUpdated). mu is held.
func (s *Store) putVersionLocked(key, value []byte, lease, rev, sub int64) (change, bool) {
	v := version{main: rev, sub: sub, create: rev, ver: 1, lease: lease}
	if len(value) > 0 {
		v.value = value
	}
	slot := -1
	rec, hint, ok := s.w.memo.take(key)
	h := &hint
	if !ok {
		if rec, slot = s.w.hot.get(key); rec == nil {
			if s.aboveAllLocked(key) {
				h = nil // new, and last: no lookup
			} else {
				rec = s.w.keys.lookupHint(key, h)
			}
		}
	}
	if rec == nil {
		rec = newRecord(key, v)
		s.insertLocked(rec, h)
		s.w.undo.created(rec)
		return rec.madeChange(), false
	}
	if create, ver := rec.newest(); ver != 0 { // not a tombstone
		v.create, v.ver = create, ver+1
	}
	// The history's copy of the key (see historyKeyLocked) and the value
	// go into the pages together.
	k, val, paired := s.pageCopyPairLocked(rec.key(), v.value)
	v.value = val
	s.w.undo.touched(rec)
	rec.append(s.versionLocked(v))
	s.w.hot.updated(rec, slot)
	return change{key: k, v: v}, paired
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
// copy (see pageCopyLocked). (A new key's record is replaced only once the
// change that made it is below the compacted revision, so at most in the
// chunk of history that compaction keeps.) mu is held.
func (s *Store) historyKeyLocked(k []byte) []byte { return s.pageCopyLocked(k) }

// pageCopyLocked returns a copy of b, a key for the history (see
// historyKeyLocked) or the value of a version that is not a key's first
// (which lives in the key's record), packed with others into pages that
// the garbage collector does not scan: it costs the bytes and no
// allocation of their own. Longer ones (above page/8) get their own.
// An empty b gets nil.
//
// The pages fill in revision order, as the history does, so what a page
// holds goes dead together at the compaction that drops the history
// around it: the versions it drops and their changes. What compaction
// keeps of a revision below the compacted one, a key's version visible at
// it, gets a copy of its own then (see versionList.compacted), so that it
// keeps no page alive beside it. mu is held.
func (s *Store) pageCopyLocked(b []byte) []byte {
	switch {
	case len(b) == 0:
		return nil
	case len(b) > maxPaged:
		return bytes.Clone(b)
	}
	p := s.pageTakeLocked(len(b))
	copy(p, b)
	return p
}

// pageCopyPairLocked returns copies of k, a key for the history, and b, a
// value, as pageCopyLocked makes them, and whether they are in one page
// with the value right after the key (b not empty, and together at most
// maxPaged bytes): the value's slice then finds the key. mu is held.
func (s *Store) pageCopyPairLocked(k, b []byte) (kc, bc []byte, paired bool) {
	if len(b) == 0 || len(k)+len(b) > maxPaged {
		return s.pageCopyLocked(k), s.pageCopyLocked(b), false
	}
	p := s.pageTakeLocked(len(k) + len(b))
	copy(p, k)
	copy(p[len(k):], b)
	return p[:len(k):len(k)], p[len(k):], true
}

// pageTakeLocked returns the next n bytes of the writer's page (n at most
// maxPaged), starting a new page if they do not fit. mu is held.
func (s *Store) pageTakeLocked(n int) []byte {
	// The page itself is stored only when a new one starts: a store of a
	// pointer into the heap costs a write barrier while the garbage
	// collector marks, which it does for much of a long run of puts.
	p, used := s.w.page, s.w.pageUsed
	if len(p)-used < n {
		p, used = make([]byte, min(max(2*len(p), minPage), maxPage)), 0
		s.w.page = p
	}
	s.w.pageUsed = used + n
	return p[used : used+n : used+n]
}

// minPage and maxPage bound the size of the allocations pageCopyLocked
// packs bytes into: a store's first page is minPage bytes, each next one
// twice the last up to maxPage, so a store that updates a few keys does
// not pay for a big page, and one that updates many allocates a span
// per 32 KiB of bytes instead of per 8 KiB (two 4 KiB pages), which was
// a tenth of the CPU of an update (BenchmarkPutUpdate).
const (
	minPage = 4 << 10
	maxPage = 32 << 10
)

// maxPaged is the longest bytes pageCopyLocked packs into a page.
const maxPaged = 512

// versionLocked returns a copy of v for a version list to point to (see
// versionList), in the writer's current slab of versions, which the
// versions of successive writes fill in revision order, as pages fill
// with their values. mu is held.
func (s *Store) versionLocked(v version) *version {
	if s.w.vnext == len(s.w.vslab) {
		// Stored only when a new slab starts, like a page (see
		// pageCopyLocked).
		s.w.vslab, s.w.vnext = make([]version, min(max(2*len(s.w.vslab), minVersionSlab), maxVersionSlab)), 0
	}
	p := &s.w.vslab[s.w.vnext]
	s.w.vnext++
	*p = v
	return p
}

// lastVersionLocked returns the slab of the version versionLocked
// returned last (by its first version) and its index there. mu is held.
func (s *Store) lastVersionLocked() (slab *version, idx int) {
	return &s.w.vslab[0], s.w.vnext - 1
}

// minVersionSlab and maxVersionSlab bound how many versions one slab
// holds (4 and 16 KiB): each slab is twice the last, as pages grow.
const (
	minVersionSlab = 64
	maxVersionSlab = 256
)

// deleteLocked appends tombstones at (rev, sub...) for the keys live in the
// range and returns the changes. If their size (see changeSize) would be
// above budget it changes nothing and returns kv.ErrTooLarge. mu is held.
func (s *Store) deleteLocked(key, end []byte, rev, sub, budget int64) ([]change, error) {
	s.w.memo = lookupMemo{}
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
		s.w.undo.touched(rec)
		rec.append(s.versionLocked(v))
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
	switch {
	case len(cs) == 1:
		// addOne keeps no reference to cs, which a txn may reuse.
		s.w.setHistLocked(s.w.hist.addOne(rev, cs[0]))
		s.w.rev = rev
	case len(cs) > 1:
		s.w.hist = s.w.hist.add(rev, cs)
		s.w.rev = rev
	}
	s.attachLocked(cs) // keeps no reference to cs either
	s.publishLocked()
	return nil
}
