package engine

import (
	"bytes"
	"encoding/binary"
	"sort"

	"github.com/revkv/revkv/internal/keytree"
)

// keyItem is what the key index stores: a record, and 8 bytes of its key
// inline, big-endian, so that most comparisons during a descent touch only
// the node, not the record: at a million keys a lookup is dominated by cache
// misses.
//
// The 8 bytes are those after the prefix that all the keys of the item's
// tree share (see keyPart): keys like "/registry/pods/..." or "user:000123"
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
	switch n := len(k); {
	case n >= 8:
		return binary.BigEndian.Uint64(k)
	case n >= 4:
		// Two loads of 4 bytes that overlap unless n is 8: the bytes
		// they share land on the same bits. (A copy into a zeroed array
		// called memmove: 10-11 ns against 1.8 in a micro-benchmark, for
		// "k%015d" keys past a 9-byte prefix, in every probe, insert and
		// fresh key of such keys.)
		hi := uint64(binary.BigEndian.Uint32(k)) << 32
		return hi | uint64(binary.BigEndian.Uint32(k[n-4:]))<<(8*(8-n))
	}
	var v uint64
	for i, c := range k {
		v |= uint64(c) << (56 - 8*i)
	}
	return v
}

// cmpRecord compares key with r's key: what the key index's trees call
// when two prefixes tie.
func cmpRecord(key []byte, r *keyRecord) int { return bytes.Compare(key, r.key()) }

// keyTree is one tree of the key index: a copy-on-write B+tree whose
// nodes keep the items' prefixes apart from their records, so that a
// descent reads a node's prefixes as contiguous words and loads a record
// only when prefixes tie (see internal/keytree).
type keyTree = keytree.Tree[keyRecord]

func newKeyTree() *keyTree { return keytree.New(cmpRecord) }

// keyIndex is the key index: one tree or more (parts), each of the keys in
// one range, whose items hold the bytes after the prefix the part's keys
// share. Readers get it by value, with parts no one writes.
//
// A part's prefix is what its keys share, shortened (and the part rebuilt)
// when a key that does not share it arrives while the part is small
// (rebuildLimit keys). A key that would shorten a bigger part's prefix
// starts a part of its own instead, so no Put pays for a rebuild of a big
// tree, and keys loaded in key order, which share less and less with the
// first ones, still get inline bytes that tell them apart: "k000000000100000"
// and the keys after it start a new part beside the one that skips
// "k0000000000", and skip "k000000000" themselves.
type keyIndex struct {
	parts []keyPart // at least one; in key order
}

// keyPart is one range of the index: the keys k with lo <= k < the next
// part's lo (the first part has no lower bound). Every key in tree starts
// with common, and so does lo.
type keyPart struct {
	tree   *keyTree
	common []byte // never written
	lo     []byte // never written; unused in the first part
}

// maxCommon bounds the shared prefix a part skips.
const maxCommon = 32

// rebuildLimit is the largest part that a key without its common prefix
// rebuilds (for a shorter prefix: O(n), about 1 ms per 10k keys); next to
// bigger ones, such keys start a part of their own.
var rebuildLimit = 1 << 15 // a var: tests lower it

// find returns the index of the part whose range holds key.
func (x *keyIndex) find(key []byte) int {
	n := len(x.parts)
	if n == 1 {
		return 0
	}
	return sort.Search(n-1, func(i int) bool { return bytes.Compare(x.parts[i+1].lo, key) > 0 })
}

// len returns the number of keys in the index.
func (x *keyIndex) len() int {
	n := 0
	for _, p := range x.parts {
		n += p.tree.Len()
	}
	return n
}

// side returns the tree that holds key if it is in the index, and how many
// bytes its items skip.
func (x *keyIndex) side(key []byte) (*keyTree, int) {
	p := &x.parts[x.find(key)]
	return p.tree, len(p.common)
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
// start with the part's common prefix, selecting the same keys of its
// tree; ok false means it selects none.
func (p *keyPart) bounds(key, end []byte) (k, e []byte, ok bool) {
	switch position(key, p.common) {
	case 1:
		return nil, nil, false
	case -1:
		key = p.common // every key is at or after its common prefix
	}
	if end != nil {
		switch position(end, p.common) {
		case -1:
			return nil, nil, false
		case 1:
			end = nil
		}
	}
	return key, end, true
}

func (x *keyIndex) lookup(key []byte) *keyRecord { return x.lookupHint(key, nil) }

// lookupHint is lookup that leaves in hint the path it took, so that an
// insert of the same key right after (SetHint) skips the searches.
func (x *keyIndex) lookupHint(key []byte, hint *keytree.Hint) *keyRecord {
	pt := &x.parts[x.find(key)]
	if !bytes.HasPrefix(key, pt.common) {
		return nil
	}
	return pt.tree.Get(keyPrefix(key, len(pt.common)), key, hint)
}

// ascend calls fn for each record with key in [key, end), in key order,
// until fn returns false. end == nil means "to the last key". The end test
// looks at the inline prefix first, so the walk itself touches only tree
// nodes: fn decides when to load the records.
func (x *keyIndex) ascend(key, end []byte, fn func(*keyRecord) bool) {
	x.ascendItems(key, end, func(_ *keyPart, it keyItem) bool { return fn(it.rec) })
}

// ascendItems is ascend that gives fn the tree items, with their part.
func (x *keyIndex) ascendItems(key, end []byte, fn func(*keyPart, keyItem) bool) {
	if len(x.parts) == 1 {
		p := &x.parts[0]
		if k, e, ok := p.bounds(key, end); ok {
			ascendTree(p, k, e, fn)
		}
		return
	}
	goOn := true
	f := func(p *keyPart, it keyItem) bool {
		goOn = fn(p, it)
		return goOn
	}
	for i := x.find(key); i < len(x.parts) && goOn; i++ {
		p := &x.parts[i]
		if end != nil && i > 0 && bytes.Compare(p.lo, end) >= 0 {
			return // this part and the ones after hold keys at or past end
		}
		if k, e, ok := p.bounds(key, end); ok {
			ascendTree(p, k, e, f)
		}
	}
}

// ascendTree is ascendItems over one part; key and end (if not nil) start
// with its common prefix.
func ascendTree(pt *keyPart, key, end []byte, fn func(*keyPart, keyItem) bool) {
	l := len(pt.common)
	var endPrefix uint64
	if end != nil {
		endPrefix = keyPrefix(end, l)
	}
	pt.tree.Ascend(keyPrefix(key, l), key, func(prefix uint64, rec *keyRecord) bool {
		if end != nil && prefix >= endPrefix {
			if prefix > endPrefix || bytes.Compare(rec.key(), end) >= 0 {
				return false
			}
		}
		return fn(pt, keyItem{prefix: prefix, rec: rec})
	})
}

// lookup returns the record of key as of the state, if it has one.
func (st *state) lookup(key []byte) *keyRecord {
	if rec := st.keys.lookup(key); rec != nil {
		return rec
	}
	return st.fresh.find(key)
}

// ascend is ascend over the state's keys: the index's, merged with fresh
// (which the index's trees never hold). Which of a fresh key and a tree
// item comes first is decided, for most items, by the item's inline bytes
// (freshMerge.before): the walk does not load each record, which its
// caller loads in batches (see state.each).
func (st *state) ascend(key, end []byte, fn func(*keyRecord) bool) {
	if st.fresh.seg == nil {
		st.keys.ascend(key, end, fn)
		return
	}
	m := st.fresh.merge(key, end)
	defer m.release()
	stopped := false
	st.keys.ascendItems(key, end, func(p *keyPart, it keyItem) bool {
		for m.before(p, it) {
			if !fn(m.head()) {
				stopped = true
				return false
			}
			m.pop()
		}
		if !fn(it.rec) {
			stopped = true
			return false
		}
		return true
	})
	for f := m.head(); !stopped && f != nil; f = m.head() {
		if !fn(f) {
			return
		}
		m.pop()
	}
}

// sharedPrefix returns the prefix that every key of x has: what its
// smallest and largest keys share (nil if x is empty).
func (x *keyIndex) sharedPrefix() []byte {
	_, lo, ok1 := x.parts[0].tree.Min()
	_, hi, ok2 := x.parts[len(x.parts)-1].tree.Max()
	if !ok1 || !ok2 {
		return nil
	}
	a, b := lo.key(), hi.key()
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return bytes.Clone(a[:n])
}

// isLast reports whether rec is the index's last key.
func (x *keyIndex) isLast(rec *keyRecord) bool {
	_, last, ok := x.parts[len(x.parts)-1].tree.Max()
	return ok && last == rec
}
