package engine

import (
	"encoding/binary"
	"fmt"

	"github.com/cespare/xxhash/v2"
	"github.com/revkv/revkv/kv"
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
// What is hashed, with xxhash: for each key live at the compacted revision,
// in key order, its KeyValue then; then every change after the compacted
// revision up to rev, in revision order. The compacted revision itself is
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
	// Records are gathered into a buffer and hashed 32 KiB at a time: the
	// digest costs much less per byte on big writes than on small ones.
	d := xxhash.New()
	buf := make([]byte, 0, 40<<10)
	add := func(key []byte, v version) {
		buf = appendRecord(buf, key, v)
		if len(buf) >= 32<<10 {
			d.Write(buf)
			buf = buf[:0]
		}
	}
	st.base(add)
	st.changes(st.compactRev+1, rev, func(c change) bool {
		add(c.key, c.v)
		return true
	})
	d.Write(buf)
	sum := d.Sum64()
	return KeyValueHash{Hash: uint32(sum ^ sum>>32), CompactRev: st.compactRev, Rev: rev}, nil
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

// appendRecord appends a self-delimiting encoding of one version of key.
// Hashing and the snapshot format both use it, so a snapshot's records hash
// the same as the store they came from.
func appendRecord(b []byte, key []byte, v version) []byte {
	var flags byte
	if v.deleted() {
		flags = 1
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, uint64(len(key)))
	b = append(b, key...)
	b = binary.AppendVarint(b, v.main)
	b = binary.AppendVarint(b, v.sub)
	if v.deleted() {
		return b
	}
	b = binary.AppendVarint(b, v.create)
	b = binary.AppendVarint(b, v.ver)
	b = binary.AppendVarint(b, v.lease)
	b = binary.AppendUvarint(b, uint64(len(v.value)))
	return append(b, v.value...)
}
