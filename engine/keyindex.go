package engine

import (
	"bytes"
	"encoding/binary"
	"sort"
	"sync"

	"github.com/tidwall/btree"
)

// keyItem is what the key index stores: a record, and 8 bytes of its key
// inline, big-endian, so that most comparisons during a descent touch only
// the node, not the record: at a million keys a lookup is dominated by cache
// misses.
//
// The 8 bytes are those after the prefix that every key of the index
// shares (see keyIndex): keys like "/registry/pods/..." or "user:000123"
// agree on their first bytes, and an inline copy of those would tell no two
// keys apart, so that every comparison loaded both records.
type keyItem struct {
	prefix uint64
	rec    *keyRecord
}

// keyPrefix returns the 8 bytes of k after its first l, zero-padded. Items
// made with the same l order as their keys do, except on ties.
func keyPrefix(k []byte, l int) uint64 {
	k = k[l:]
	if len(k) >= 8 {
		return binary.BigEndian.Uint64(k)
	}
	var b [8]byte
	copy(b[:], k)
	return binary.BigEndian.Uint64(b[:])
}

func lessItem(a, b keyItem) bool {
	if a.prefix != b.prefix {
		return a.prefix < b.prefix
	}
	return bytes.Compare(a.rec.key, b.rec.key) < 0
}

type keyTree = btree.BTreeG[keyItem]

// Degree 32 (the library default) measured best for both lookups and
// copy-on-write inserts at 100k and 1M keys among 8, 16 and 32.
func newKeyTree() *keyTree {
	return btree.NewBTreeGOptions(lessItem, btree.Options{NoLocks: true})
}

// keyIndex is a tree of keys and the prefix that all of them share. Its
// items hold the bytes after that prefix. Readers get it by value, with
// the tree a copy no one writes.
type keyIndex struct {
	tree   *keyTree
	common []byte // never written; a prefix of every key in tree
}

// maxCommon bounds the shared prefix an index skips.
const maxCommon = 32

func (x keyIndex) item(rec *keyRecord) keyItem {
	return keyItem{prefix: keyPrefix(rec.key, len(x.common)), rec: rec}
}

// position tells where k falls against keys that all start with common:
// -1 before every one of them, +1 after every one, 0 if k itself starts
// with common (and may fall anywhere).
func position(k, common []byte) int {
	if bytes.HasPrefix(k, common) {
		return 0
	}
	n := min(len(k), len(common))
	if c := bytes.Compare(k[:n], common[:n]); c != 0 {
		return c
	}
	return -1 // k is a proper prefix of common
}

// bounds maps a range [key, end) (end nil: no end) to one whose bounds
// start with the index's common prefix, selecting the same keys of the
// index; ok false means it selects none.
func (x keyIndex) bounds(key, end []byte) (k, e []byte, ok bool) {
	switch position(key, x.common) {
	case 1:
		return nil, nil, false
	case -1:
		key = x.common // every key is at or after its common prefix
	}
	if end != nil {
		switch position(end, x.common) {
		case -1:
			return nil, nil, false
		case 1:
			end = nil
		}
	}
	return key, end, true
}

// probe builds a search item for key, which starts with the index's common
// prefix. The tree calls its less func through a pointer, so a probe record
// on the stack would escape: probes come from a pool instead. Call release
// when the search is done.
func (x keyIndex) probe(key []byte) keyItem {
	r := probes.Get().(*keyRecord)
	r.key = key
	return keyItem{prefix: keyPrefix(key, len(x.common)), rec: r}
}

func (it keyItem) release() {
	it.rec.key = nil
	probes.Put(it.rec)
}

var probes = sync.Pool{New: func() any { return new(keyRecord) }}

func (x keyIndex) lookup(key []byte) *keyRecord { return x.lookupHint(key, nil) }

// lookupHint is lookup that leaves in hint the path it took, so that an
// insert of the same key right after (SetHint) skips the searches.
func (x keyIndex) lookupHint(key []byte, hint *btree.PathHint) *keyRecord {
	if !bytes.HasPrefix(key, x.common) {
		return nil
	}
	p := x.probe(key)
	it, ok := x.tree.GetHint(p, hint)
	p.release()
	if !ok {
		return nil
	}
	return it.rec
}

// ascend calls fn for each record with key in [key, end), in key order,
// until fn returns false. end == nil means "to the last key". The end test
// looks at the inline prefix first, so the walk itself touches only tree
// nodes: fn decides when to load the records.
func (x keyIndex) ascend(key, end []byte, fn func(*keyRecord) bool) {
	key, end, ok := x.bounds(key, end)
	if !ok {
		return
	}
	x.ascendWithin(key, end, fn)
}

// ascendWithin is ascend for bounds that bounds has mapped.
func (x keyIndex) ascendWithin(key, end []byte, fn func(*keyRecord) bool) {
	p := x.probe(key)
	defer p.release()
	var endPrefix uint64
	if end != nil {
		endPrefix = keyPrefix(end, len(x.common))
	}
	x.tree.Ascend(p, func(it keyItem) bool {
		if end != nil && it.prefix >= endPrefix {
			if it.prefix > endPrefix || bytes.Compare(it.rec.key, end) >= 0 {
				return false
			}
		}
		return fn(it.rec)
	})
}

// lookup returns the record of key as of the state, if it has one.
func (st *state) lookup(key []byte) *keyRecord {
	if rec := st.keys.lookup(key); rec != nil {
		return rec
	}
	f := st.fresh
	if len(f) == 0 || !bytes.HasPrefix(key, st.keys.common) {
		return nil
	}
	if i := searchFresh(f, len(st.keys.common), key); i < len(f) && bytes.Equal(f[i].rec.key, key) {
		return f[i].rec
	}
	return nil
}

// searchFresh returns the index of the first item of f with a key >= key;
// the items' prefixes skip l bytes, and key starts with the index's common
// prefix.
func searchFresh(f []keyItem, l int, key []byte) int {
	if len(f) == 0 {
		return 0
	}
	p := keyPrefix(key, l)
	return sort.Search(len(f), func(i int) bool {
		it := f[i]
		return it.prefix > p || it.prefix == p && bytes.Compare(it.rec.key, key) >= 0
	})
}

// ascend is ascend over the state's keys: the tree's, merged with fresh
// (which the tree never holds).
func (st *state) ascend(key, end []byte, fn func(*keyRecord) bool) {
	key, end, ok := st.keys.bounds(key, end)
	if !ok {
		return
	}
	f := st.fresh[searchFresh(st.fresh, len(st.keys.common), key):]
	inRange := func(it keyItem) bool { return end == nil || bytes.Compare(it.rec.key, end) < 0 }
	stopped := false
	st.keys.ascendWithin(key, end, func(r *keyRecord) bool {
		for len(f) > 0 && bytes.Compare(f[0].rec.key, r.key) < 0 {
			if !fn(f[0].rec) {
				stopped = true
				return false
			}
			f = f[1:]
		}
		if !fn(r) {
			stopped = true
			return false
		}
		return true
	})
	for ; !stopped && len(f) > 0 && inRange(f[0]); f = f[1:] {
		if !fn(f[0].rec) {
			return
		}
	}
}
