package engine

import (
	"fmt"

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
// never blocks writers; it costs a walk of every retained key and revision.
//
// What is hashed (snapshot.Hasher): for each key live at the compacted
// revision, in key order, its KeyValue then; then every change after the
// compacted revision up to rev, in revision order. A snapshot's
// snapshot.Status reports the same hash. The compacted revision itself is
// returned beside the hash, not mixed into it.
func (s *Store) HashByRev(rev int64) (KeyValueHash, error) {
	if s.closed.Load() {
		return KeyValueHash{}, ErrClosed
	}
	return s.cur.Load().hash(rev)
}

func (st *state) hash(rev int64) (KeyValueHash, error) {
	if rev > st.rev {
		return KeyValueHash{}, fmt.Errorf("hash at %d, current %d: %w", rev, st.rev, ErrFutureRev)
	}
	if rev <= 0 {
		rev = st.rev
	}
	if rev < st.compactRev {
		return KeyValueHash{}, fmt.Errorf("hash at %d, compacted %d: %w", rev, st.compactRev, ErrCompacted)
	}
	h := snapshot.NewHasher()
	var e snapshot.Entry
	st.base(func(key []byte, v version) { h.Add(v.entry(key, &e)) })
	st.changes(st.compactRev+1, rev, func(c change) bool {
		h.Add(c.v.entry(c.key, &e))
		return true
	})
	return KeyValueHash{Hash: h.Sum32(), CompactRev: st.compactRev, Rev: rev}, nil
}

// base calls fn, in key order, for each key live at the compacted revision
// with the version that makes it live. A store never compacted has none.
func (st *state) base(fn func(key []byte, v version)) {
	if st.compactRev < 1 {
		return
	}
	st.ascend(nil, nil, func(r *keyRecord) bool {
		if v, ok := r.at(st.compactRev); ok && !v.deleted() {
			fn(r.key, v)
		}
		return true
	})
}

// changes calls fn for each change with main revision in [from, to], in
// revision order, until fn returns false. The caller keeps from >= the
// compacted revision and to <= the state's revision.
func (st *state) changes(from, to int64, fn func(change) bool) {
	for rev := max(from, st.hist.first); rev <= to; rev++ {
		for _, c := range st.hist.at(rev) {
			if !fn(c) {
				return
			}
		}
	}
}
