package engine

import (
	"fmt"
	"sort"
	"sync"

	"github.com/revkv/revkv/kv"
	"github.com/revkv/revkv/snapshot"
)

// KeyValueHash is the hash of a store's retained history; see kv.KeyValueHash.
type KeyValueHash = kv.KeyValueHash

// Hash returns the hash of the retained history up to the current revision.
func (s *Store) Hash() (uint32, error) {
	h, err := s.HashByRev(0)
	return h.Hash, err
}

// HashByRev returns the hash of the retained history up to revision rev (the
// current revision if rev <= 0). rev above the current revision is
// ErrFutureRev, below the compacted revision ErrCompacted. It reads a view and
// never blocks writers.
//
// The first call after a compaction walks every retained key and revision;
// later calls hash only the revisions written since the furthest one hashed
// so far (or at most 255 below it, for an older rev), so hashing a store
// periodically, as a consistency check does, costs the writes in between
// rather than the whole store. A call made while another is hashing does
// not wait for it: it walks the store itself.
//
// What is hashed (snapshot.Hasher): for each key live at the compacted
// revision, in key order, its KeyValue then; then every change after the
// compacted revision up to rev, in revision order. A snapshot's
// snapshot.Status reports the same hash. The compacted revision itself is
// returned beside the hash, not mixed into it.
func (s *Store) HashByRev(rev int64) (KeyValueHash, error) {
	if s.closed.Load() {
		return KeyValueHash{}, kv.ErrClosed
	}
	st := s.cur.Load()
	rev, err := st.hashRev(rev)
	if err != nil {
		return KeyValueHash{}, err
	}
	var sum uint32
	if s.hashes.mu.TryLock() {
		sum = s.hashes.sum(st, rev)
		s.hashes.mu.Unlock()
	} else {
		sum = st.hasher(rev).Sum32()
	}
	return KeyValueHash{Hash: sum, CompactRev: st.compactRev, Rev: rev}, nil
}

// hashRev resolves and checks the revision HashByRev was asked for.
func (st *state) hashRev(rev int64) (int64, error) {
	if rev > st.rev {
		return 0, fmt.Errorf("hash at %d, current %d: %w", rev, st.rev, ErrFutureRev)
	}
	if rev <= 0 {
		rev = st.rev
	}
	if rev < st.compactRev {
		return 0, fmt.Errorf("hash at %d, compacted %d: %w", rev, st.compactRev, ErrCompacted)
	}
	return rev, nil
}

// hasher walks the state's retained history up to rev (checked) into a new
// Hasher.
func (st *state) hasher(rev int64) *snapshot.Hasher {
	h := snapshot.NewHasher()
	st.addBase(h)
	st.addChanges(h, st.compactRev+1, rev)
	return h
}

func (st *state) addBase(h *snapshot.Hasher) {
	var e snapshot.Entry
	st.base(func(key []byte, v version) { h.Add(v.entry(key, &e)) })
}

func (st *state) addChanges(h *snapshot.Hasher, from, to int64) {
	var e snapshot.Entry
	st.changes(from, to, func(c change) bool {
		h.Add(c.v.entry(c.key, &e))
		return true
	})
}

// hashCache remembers how far HashByRev has hashed the history since the
// last compaction: a Hasher that has seen everything up to revision
// through, and clones of it taken every markEvery revisions on the way, so
// that a hash at an older revision starts from the clone below it.
// Revisions at or below a state's revision never change, so what it holds
// stays right until the compacted revision (the base) moves.
type hashCache struct {
	mu      sync.Mutex // taken with TryLock: a hash never waits for another
	valid   bool
	base    int64 // the compacted revision it assumes
	through int64
	run     *snapshot.Hasher
	marks   []hashMark // ascending; marks[0] is the base alone
}

type hashMark struct {
	rev int64 // the mark has seen every change up to rev
	h   *snapshot.Hasher
}

// markEvery is how many revisions apart the cache keeps clones (about 100
// bytes each): a hash below the furthest one hashed walks at most this many.
const markEvery = 256

// sum returns the hash of st's retained history up to rev (checked), using
// and extending what the cache has. mu is held.
func (c *hashCache) sum(st *state, rev int64) uint32 {
	if !c.valid || c.base != st.compactRev {
		h := snapshot.NewHasher()
		st.addBase(h)
		c.valid, c.base, c.through, c.run = true, st.compactRev, st.compactRev, h
		c.marks = []hashMark{{rev: st.compactRev, h: h.Clone()}}
	}
	if rev < c.through {
		i := sort.Search(len(c.marks), func(i int) bool { return c.marks[i].rev > rev }) - 1
		m := c.marks[i]
		h := m.h.Clone()
		st.addChanges(h, m.rev+1, rev)
		return h.Sum32()
	}
	for from := c.through + 1; from <= rev; {
		to := min(rev, (from/markEvery+1)*markEvery-1)
		st.addChanges(c.run, from, to)
		if (to+1)%markEvery == 0 {
			c.marks = append(c.marks, hashMark{rev: to, h: c.run.Clone()})
		}
		from = to + 1
	}
	c.through = rev
	return c.run.Sum32()
}

// base calls fn, in key order, for each key live at the compacted revision
// with the version that makes it live. A store never compacted has none.
func (st *state) base(fn func(key []byte, v version)) {
	if st.compactRev < 1 {
		return
	}
	st.ascend(nil, nil, func(r *keyRecord) bool {
		if v, ok := r.at(st.compactRev); ok && !v.deleted() {
			fn(r.key(), v)
		}
		return true
	})
}

// changes calls fn for each change with main revision in [from, to], in
// revision order, until fn returns false. The caller keeps from >= the
// compacted revision and to <= the state's revision.
func (st *state) changes(from, to int64, fn func(change) bool) {
	for rev := max(from, st.hist.first); rev <= to; rev++ {
		if !st.hist.each(rev, fn) {
			return
		}
	}
}
