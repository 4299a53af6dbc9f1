package engine

import (
	"bytes"
	"cmp"
	"hash/maphash"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
)

// New keys between copies of the index's trees.
//
// Publishing a copy of the writer's trees is O(1), but after each copy the
// writer clones every tree node it changes again (tidwall/btree's
// copy-on-write): a node of degree 32 is 1-1.5 KB, and a new random key
// changes a leaf and, at a million keys, one or two inner nodes. Clones
// were most of what a new key cost, and most of the garbage collector's
// work. So new keys go into the writer's trees at once (its lookups need
// them) but readers get a copy of the trees only every maxFresh new keys;
// until then, they find the new keys in a freshKeys, and the writer clones
// each node at most once per maxFresh new keys: at a million random keys
// (22k leaves, 500 inner nodes) the inner nodes were cloned about once per
// key at 64 and are once per 16 keys at 8192, and leaves 0.8 times per key
// instead of 1; keys in key order clone almost nothing. (Measured: 4096,
// 8192 and 16384 fresh keys cost 1823, 1657 and 1488 bytes per random new
// key at 1M keys; the largest bounds the work of one write, see below.)
//
// A freshKeys is sorted runs, like a log-structured merge tree's levels,
// an unsorted tail, and a hash index:
//   - a new key is appended to the tail, into capacity made once per tail
//     (the first tail after a copy starts small and doubles): a state
//     holds a prefix of it, which no append writes into;
//   - a full tail (freshTail keys) is sorted into a run of its own, and
//     runs of equal size merge, as the carries of a binary counter: each
//     key is copied about log2(maxFresh/freshTail) times, 16 bytes each,
//     and the largest merge, of maxFresh/2 keys, is the longest one write
//     does (about 128 KB copied);
//   - runs are never written once made, and the list of runs is copied
//     when it changes (it is at most about 7 long);
//   - the hash index (freshIndex) gets each key as it comes; it is sized
//     for maxFresh keys once they outgrow a tail, so it is rehashed only
//     while small.
//
// A point read probes the hash index; a range read merges the runs, the
// tail's keys in range (in a pooled buffer) and the trees.

// freshItem is a fresh key: its record, and the first 8 bytes of its whole
// key, which tell most fresh keys apart without loading their records
// (fresh keys may belong to any part, so the tree's inline bytes would not
// compare).
type freshItem struct {
	k8  uint64
	rec *keyRecord
}

func freshOf(rec *keyRecord) freshItem {
	return freshItem{k8: keyPrefix(rec.key(), 0), rec: rec}
}

func compareFresh(a, b freshItem) int {
	if a.k8 != b.k8 {
		return cmp.Compare(a.k8, b.k8)
	}
	return bytes.Compare(a.rec.key(), b.rec.key())
}

// before reports whether it's key is before key (whose 8 bytes are k8).
func (it *freshItem) before(k8 uint64, key []byte) bool {
	if it.k8 != k8 {
		return it.k8 < k8
	}
	return bytes.Compare(it.rec.key(), key) < 0
}

// maxFresh is how many new keys wait beside the trees before readers get a
// new copy of them; freshTail is the size of the unsorted tail. Vars:
// tests lower them.
var (
	maxFresh  = 8192
	freshTail = 64
)

// freshKeys are the keys created since the published trees were copied.
// A state holds one by value (16 bytes: a state is allocated per write);
// the writer's grows (add) without writing anything a state holds.
type freshKeys struct {
	seg  *freshSeg // nil: no fresh keys
	tail int       // the keys in seg.tail
}

// freshSeg is the runs, the array of the tail and the hash index, from
// one change of any of them to the next. Only the tail's slots at and past
// a state's length are ever written, and only the index's empty slots.
type freshSeg struct {
	runs   [][]freshItem // sorted, longest first; never written
	inRuns int           // keys in runs
	tail   []freshItem   // the tail's array: len is its capacity
	index  *freshIndex
}

// len returns the number of fresh keys.
func (f *freshKeys) len() int {
	if f.seg == nil {
		return 0
	}
	return f.seg.inRuns + f.tail
}

// tailKeys returns the tail's keys.
func (f *freshKeys) tailKeys() []freshItem {
	if f.seg == nil {
		return nil
	}
	return f.seg.tail[:f.tail]
}

// firstTail is the capacity of the first tail after a copy of the trees:
// a store that sees few new keys pays for few slots.
const firstTail = 4

// add adds a key the trees did not have.
func (f *freshKeys) add(it freshItem) {
	if f.seg == nil {
		f.seg = &freshSeg{tail: make([]freshItem, min(firstTail, freshTail)), index: newFreshIndex(firstTail)}
	}
	f.growLocked()
	f.seg.tail[f.tail] = it
	f.tail++
	f.seg.index.add(it.rec)
	if f.tail < freshTail {
		return
	}
	run := slices.Clone(f.seg.tail[:f.tail]) // states hold the tail: sort a copy
	slices.SortFunc(run, compareFresh)
	runs := f.seg.runs
	for len(runs) > 0 && len(runs[len(runs)-1]) <= len(run) {
		run = mergeRuns(runs[len(runs)-1], run)
		runs = runs[:len(runs)-1]
	}
	// Clipped, so the append copies: states hold the old list.
	runs = append(slices.Clip(runs), run)
	*f = freshKeys{seg: &freshSeg{runs: runs, inRuns: f.seg.inRuns + f.tail, tail: make([]freshItem, freshTail), index: f.seg.index}}
}

// growLocked makes room for one more key: in the tail's array, and in the
// index (at most half full, so that a probe soon meets an empty slot).
// Either grows into a new segment: states hold the old one.
func (f *freshKeys) growLocked() {
	full := f.tail == len(f.seg.tail)
	crowded := 2*(f.len()+1) > len(f.seg.index.slots)
	if !full && !crowded {
		return
	}
	seg := *f.seg
	if full {
		seg.tail = make([]freshItem, min(2*len(seg.tail), freshTail))
		copy(seg.tail, f.seg.tail)
	}
	if crowded {
		seg.index = f.seg.index.grown(f.len() + 1)
	}
	f.seg = &seg
}

// freshIndex finds fresh keys by a hash of their key: open addressing,
// linear probing, in slots the writer fills (each once, atomically) while
// readers probe. A state may find a key made after it: its record has no
// version at or below the state's revision, so the read sees no key, as
// it would have without it. (A key leaves the fresh keys only with a new
// copy of the trees, which starts a new index.)
type freshIndex struct {
	slots []atomic.Pointer[keyRecord] // len a power of 2
}

var freshSeed = maphash.MakeSeed()

func newFreshIndex(keys int) *freshIndex {
	n := 8
	for n < 2*keys {
		n *= 2
	}
	return &freshIndex{slots: make([]atomic.Pointer[keyRecord], n)}
}

// grown returns an index with x's keys and room for keys: twice as many
// slots while the fresh keys fit a tail, then room for maxFresh at once,
// so that no write pays for rehashing thousands of keys.
func (x *freshIndex) grown(keys int) *freshIndex {
	if keys > freshTail {
		keys = maxFresh
	}
	nx := newFreshIndex(max(keys, len(x.slots)))
	for i := range x.slots {
		if r := x.slots[i].Load(); r != nil {
			nx.add(r)
		}
	}
	return nx
}

// add adds rec, whose key x does not have.
func (x *freshIndex) add(rec *keyRecord) {
	mask := uint64(len(x.slots) - 1)
	h := maphash.Bytes(freshSeed, rec.key()) & mask
	for x.slots[h].Load() != nil {
		h = (h + 1) & mask
	}
	x.slots[h].Store(rec)
}

// find returns the record of key, or nil.
func (x *freshIndex) find(key []byte) *keyRecord {
	mask := uint64(len(x.slots) - 1)
	for h := maphash.Bytes(freshSeed, key) & mask; ; h = (h + 1) & mask {
		r := x.slots[h].Load()
		if r == nil || bytes.Equal(r.key(), key) {
			return r
		}
	}
}

// mergeRuns returns a new run of the items of a and b.
func mergeRuns(a, b []freshItem) []freshItem {
	out := make([]freshItem, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		if compareFresh(a[0], b[0]) <= 0 {
			out, a = append(out, a[0]), a[1:]
		} else {
			out, b = append(out, b[0]), b[1:]
		}
	}
	out = append(out, a...)
	return append(out, b...)
}

// search returns the index of the first item of run with a key >= key
// (whose first 8 bytes are k8).
func search(run []freshItem, k8 uint64, key []byte) int {
	return sort.Search(len(run), func(i int) bool { return !run[i].before(k8, key) })
}

// find returns the record of key, or nil; maybe of a key made after the
// state (see freshIndex).
func (f *freshKeys) find(key []byte) *keyRecord {
	if f.seg == nil {
		return nil
	}
	return f.seg.index.find(key)
}

// freshMerge yields the fresh keys of a range in key order: the smallest
// of the heads of the runs (from the range's start) and of the tail's keys
// in range. The tail's are not sorted: a range read with a limit mostly
// stops before it reaches many fresh keys, so the smallest is found by a
// scan of at most freshTail keys, again after each one taken.
type freshMerge struct {
	lists [][]freshItem // each sorted, its head in range
	tail  []freshItem   // buffer of the tail's keys in range
	tmin  int           // the tail's smallest; -1: none
	// min is the list whose head is smallest, len(lists) if the tail's
	// smallest is smaller, -1 if none is left.
	min int
	end []byte // nil: no end
	e8  uint64

	// The head's place in the part that before last looked at: where
	// it falls against the part's keys (see position) and, if among
	// them, its inline bytes there.
	part   *keyPart
	pos    int
	inline uint64
}

var freshMerges = sync.Pool{New: func() any { return new(freshMerge) }}

// merge returns the fresh keys in [key, end) (end nil: no end); there are
// some (seg is not nil). Call release when done.
func (f *freshKeys) merge(key, end []byte) *freshMerge {
	m := freshMerges.Get().(*freshMerge)
	m.end = end
	if end != nil {
		m.e8 = keyPrefix(end, 0)
	}
	k8 := keyPrefix(key, 0)
	for _, run := range f.seg.runs {
		if l := run[search(run, k8, key):]; len(l) > 0 && m.inRange(&l[0]) {
			m.lists = append(m.lists, l)
		}
	}
	tail := m.tail[:0]
	for _, it := range f.tailKeys() {
		if !it.before(k8, key) && m.inRange(&it) {
			tail = append(tail, it)
		}
	}
	m.tail = tail
	m.scanTail()
	m.pick()
	return m
}

func (m *freshMerge) inRange(it *freshItem) bool {
	return m.end == nil || it.before(m.e8, m.end)
}

// scanTail finds the tail's smallest key.
func (m *freshMerge) scanTail() {
	m.tmin = -1
	for i := range m.tail {
		if m.tmin < 0 || compareFresh(m.tail[i], m.tail[m.tmin]) < 0 {
			m.tmin = i
		}
	}
}

// pick finds the smallest head.
func (m *freshMerge) pick() {
	m.min = -1
	var best *freshItem
	for i := range m.lists {
		if best == nil || compareFresh(m.lists[i][0], *best) < 0 {
			m.min, best = i, &m.lists[i][0]
		}
	}
	if m.tmin >= 0 && (best == nil || compareFresh(m.tail[m.tmin], *best) < 0) {
		m.min = len(m.lists)
	}
}

// headItem returns the smallest fresh key not yet popped, nil if none is
// left in range.
func (m *freshMerge) headItem() *freshItem {
	switch {
	case m.min < 0:
		return nil
	case m.min == len(m.lists):
		return &m.tail[m.tmin]
	}
	return &m.lists[m.min][0]
}

// head returns the record of headItem, or nil.
func (m *freshMerge) head() *keyRecord {
	if h := m.headItem(); h != nil {
		return h.rec
	}
	return nil
}

// before reports whether the head comes before the item it of part p,
// loading it's record only if the head's inline bytes in p are it's.
func (m *freshMerge) before(p *keyPart, it keyItem) bool {
	h := m.headItem()
	if h == nil {
		return false
	}
	hk := h.rec.key()
	if m.part != p {
		m.part, m.pos = p, position(hk, p.common)
		if m.pos == 0 {
			m.inline = keyPrefix(hk, len(p.common))
		}
	}
	switch {
	case m.pos != 0:
		return m.pos < 0
	case m.inline != it.prefix:
		return m.inline < it.prefix
	}
	return bytes.Compare(hk, it.rec.key()) < 0
}

// pop drops the head.
func (m *freshMerge) pop() {
	if m.min == len(m.lists) {
		last := len(m.tail) - 1
		m.tail[m.tmin] = m.tail[last]
		m.tail[last] = freshItem{} // a pooled buffer keeps no record alive
		m.tail = m.tail[:last]
		m.scanTail()
	} else {
		l := m.lists[m.min][1:]
		if len(l) > 0 && m.inRange(&l[0]) {
			m.lists[m.min] = l
		} else {
			m.lists = slices.Delete(m.lists, m.min, m.min+1)
		}
	}
	m.pick()
	m.part = nil // a new head
}

// release returns m to the pool, holding no record.
func (m *freshMerge) release() {
	clear(m.lists)
	clear(m.tail)
	*m = freshMerge{lists: m.lists[:0], tail: m.tail[:0]}
	freshMerges.Put(m)
}
