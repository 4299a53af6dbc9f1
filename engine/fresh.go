package engine

import (
	"bytes"
	"cmp"
	"hash/maphash"
	"math"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
)

// New keys between copies of the index's trees.
//
// Publishing a copy of the writer's trees is O(1), but after each copy the
// writer clones every tree node it changes again (copy-on-write, see
// internal/keytree): a leaf is 512 bytes and an inner node 768, and a new
// random key changes a leaf and, at a million keys, two or three inner
// nodes. Clones were most of what a new key cost, and most of the garbage
// collector's work. So new keys go into the writer's trees at once (its
// lookups need them) but readers get a copy of the trees only every
// freshLimit new keys (at least maxFresh, more as the trees grow); until
// then, they find the new keys in a freshKeys, and the writer clones each
// node at most once per copy. (The limits are keytree's: see freshLimit.)
//
// A freshKeys is sorted runs, like a log-structured merge tree's levels,
// an unsorted tail, and a hash index:
//   - a new key is appended to the tail, into capacity made once per tail
//     (the first tail after a copy starts small and doubles): a state
//     holds a prefix of it, which no append writes into;
//   - a full tail (freshTail keys) is sorted into a run of its own, and
//     runs of equal size merge, as the carries of a binary counter, up to
//     maxRun keys: each key is copied about log2(maxRun/freshTail) times,
//     16 bytes each, and the largest merge, of maxRun/2 + maxRun/2 keys,
//     is the longest one write does (256 KiB copied);
//   - a run of maxRun keys is frozen and merged into the big run, the one
//     run of all the keys frozen before, a few keys per new key (runMerge),
//     done before the next run is frozen;
//   - runs are never written once made, and the list of runs is copied
//     when it changes (it is at most about 9 long);
//   - the hash index (freshIndex) gets each key as it comes; it is sized
//     for freshLimit keys once they outgrow a tail, so it is rehashed only
//     while small.
//
// Keys put in key order (each after every key before it) skip all of
// that: they stay one sorted tail, with no index (freshSeg.asc), until one
// key does not come last.
//
// A point read probes the hash index (or searches an asc tail); a range
// read merges the runs, the tail's keys in range (in a pooled buffer; an
// asc tail is one more run) and the trees.

// freshItem is a fresh key: its record, and 8 bytes of its key (see
// freshSeg.k8), which tell most fresh keys apart without loading their
// records (fresh keys may belong to any part, so the tree's inline bytes
// would not compare).
type freshItem struct {
	k8  uint64
	rec *keyRecord
}

// k8 returns the 8 bytes of key that order it among fresh keys: those
// after skip, the prefix every key of the trees had when the fresh keys
// started (numbered keys like "k000000000123456" share their first 10
// bytes: their first 8 would tell none apart, and every comparison would
// load two records). A key without that prefix sorts before or after all
// that have it, and gets 0 or the largest value: the order of k8s never
// contradicts the keys' (ties compare whole keys).
func (s *freshSeg) k8(key []byte) uint64 {
	switch position(key, s.skip) {
	case -1:
		return 0
	case 1:
		return math.MaxUint64
	}
	return keyPrefix(key, len(s.skip))
}

func (s *freshSeg) itemOf(rec *keyRecord) freshItem {
	return freshItem{k8: s.k8(rec.key()), rec: rec}
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

// How many new keys wait beside the trees before readers get a new copy of
// them: maxFresh, or a freshShare-th of the trees' keys if that is more,
// up to maxFreshGrown. Clones are what a copy costs the writer afterwards:
// a random new key at a million keys clones 0.8 leaves at 8192 keys per
// copy, 0.2 at 131072 (a leaf is cloned at most once per copy, and the
// chance that a copy's keys miss it falls with their number). What waiting
// keys cost instead grows with log(keys) per key (merges of runs) and the
// hash index is sized for them when a copy starts: 2 MiB at 131072.
// freshTail is the size of the unsorted tail; maxRun the largest run that
// merges of runs make in one write: a bigger one is merged into the big run
// in steps (see runMerge), each freeze copying the big run once more: a
// key is copied about freshLimit/(2*maxRun) times by those merges.
//
// With keytree's nodes, a quarter of the trees' keys between copies
// (rather than an eighth) and runs of 16384 keys (rather than 8192)
// allocate 8-9% fewer bytes per new key: 6.3 KiB for a txn of 10 random
// numbered keys into a store that grows to 200k keys (6.9 KiB before),
// 639 bytes a key for a million keys put one by one (706)
// (BenchmarkTxnPutNewRun, BenchmarkPutRandomRun). Vars: tests lower them.
var (
	maxFresh      = 8192
	maxFreshGrown = 131072
	freshShare    = 4
	freshTail     = 64
	maxRun        = 16384
)

// freshLimit returns how many new keys wait beside trees of n keys.
func freshLimit(n int) int {
	return max(maxFresh, min(maxFreshGrown, n/freshShare))
}

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
//
// The runs are in two levels. runs are merged in one write each, up to
// maxRun keys; a run that reaches maxRun is frozen and merged into big, the
// one run of the keys before it, a few keys per write (merge), so that no
// write copies more than maxRun keys however many keys wait: readers see
// big and frozen apart until the merge is done.
type freshSeg struct {
	big    []freshItem   // sorted; never written
	frozen []freshItem   // sorted, being merged into big; never written
	runs   [][]freshItem // sorted, longest first; never written
	inRuns int           // keys in big, frozen and runs
	tail   []freshItem   // the tail's array: len is its capacity
	index  *freshIndex
	// skip is the prefix that k8 skips; never written.
	skip []byte
	// limit is the most keys this copy's fresh keys will hold: what the
	// index is sized for once they outgrow a tail. The writer's alone
	// (readers never look at it); it may raise it.
	limit int
	// merge merges frozen into big; the writer's alone (readers never
	// look at it), nil if frozen is.
	merge *runMerge
	// asc says that every fresh key came after every key before it (keys
	// put in key order): the tail is then sorted, holds them all (it grows
	// past freshTail, up to limit), and there are no runs and no index:
	// readers search the tail. Such keys need no sorting or merging, and
	// no hashing. The first key that does not come last ends it (unsort).
	// Never written.
	asc bool
}

// sorted calls fn with each sorted run of s: big, frozen, runs.
func (s *freshSeg) sorted(fn func([]freshItem)) {
	if len(s.big) > 0 {
		fn(s.big)
	}
	if len(s.frozen) > 0 {
		fn(s.frozen)
	}
	for _, run := range s.runs {
		fn(run)
	}
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

// start makes the first segment: limit is freshLimit of the trees, skip a
// prefix every key of the trees has (see k8), asc whether the keys will
// come in key order (see freshSeg.asc), and whole whether they likely do
// up to limit (the last ones did): the tail then gets room for limit keys
// at once, rather than doubling (which copies each key once more and
// allocates twice the bytes). There are no fresh keys.
func (f *freshKeys) start(limit int, skip []byte, asc, whole bool) {
	if asc {
		n := min(firstTail, limit)
		if whole {
			n = limit
		}
		f.seg = &freshSeg{tail: make([]freshItem, n), limit: limit, skip: skip, asc: true}
		return
	}
	f.seg = &freshSeg{tail: make([]freshItem, min(firstTail, freshTail)), index: newFreshIndex(firstTail), limit: limit, skip: skip}
}

// add adds the record of a key the trees did not have; start was called.
// last says that it comes after every key, the trees' and the fresh ones.
func (f *freshKeys) add(rec *keyRecord, last bool) {
	if f.seg.asc {
		if last {
			f.appendAsc(rec)
			return
		}
		f.unsort()
	}
	it := f.seg.itemOf(rec)
	f.growLocked()
	f.seg.tail[f.tail] = it
	f.tail++
	f.seg.index.add(it.rec)
	f.stepMerge()
	if f.tail < freshTail {
		return
	}
	f.sealTail()
}

// appendAsc adds rec, which comes after every fresh key, to the sorted
// tail of an asc segment. A full tail (one that start did not make whole)
// doubles, up to limit, into a new segment (states hold the old one).
func (f *freshKeys) appendAsc(rec *keyRecord) {
	if f.tail == len(f.seg.tail) {
		seg := *f.seg
		seg.tail = make([]freshItem, max(f.tail+1, min(2*f.tail, seg.limit)))
		copy(seg.tail, f.seg.tail)
		f.seg = &seg
	}
	f.seg.tail[f.tail] = f.seg.itemOf(rec)
	f.tail++
}

// unsort ends an asc segment: its sorted tail becomes the big run (no
// copy: the tail's array is never written again, the writer's next tail is
// a new one), and every key goes into a new hash index, sized as growLocked
// would have sized it. That is one rehash of at most maxFresh keys (the
// limit of an asc segment, see Store.addFreshLocked), about as long as the
// largest merge of runs.
func (f *freshKeys) unsort() {
	n := f.tail
	seg := *f.seg
	seg.asc = false
	seg.big = f.seg.tail[:n:n]
	seg.inRuns = n
	seg.tail = make([]freshItem, min(firstTail, freshTail))
	keys := n + 1
	if keys > freshTail {
		keys = max(keys, seg.limit)
	}
	seg.index = newFreshIndex(max(keys, firstTail))
	for _, it := range seg.big {
		seg.index.add(it.rec)
	}
	*f = freshKeys{seg: &seg}
}

// sealTail sorts the full tail into a run, merges it with the runs no
// longer than it, and freezes the result if it reached maxRun.
func (f *freshKeys) sealTail() {
	run := slices.Clone(f.seg.tail[:f.tail]) // states hold the tail: sort a copy
	slices.SortFunc(run, compareFresh)
	runs := f.seg.runs
	for len(runs) > 0 && len(runs[len(runs)-1]) <= len(run) {
		run = mergeRuns(runs[len(runs)-1], run)
		runs = runs[:len(runs)-1]
	}
	seg := *f.seg
	seg.inRuns += f.tail
	seg.tail = make([]freshItem, freshTail)
	if len(run) >= maxRun {
		// Every shorter run merged into this one: runs is empty.
		seg.finishMerge()
		seg.freeze(run)
		seg.runs = slices.Clip(runs)
	} else {
		// Clipped, so the append copies: states hold the old list.
		seg.runs = append(slices.Clip(runs), run)
	}
	*f = freshKeys{seg: &seg}
}

// freeze starts the merge of run into big (run is big if big is empty).
// No merge is under way.
func (s *freshSeg) freeze(run []freshItem) {
	if len(s.big) == 0 {
		s.big = run
		return
	}
	s.frozen = run
	s.merge = newRunMerge(s.big, run)
}

// finishMerge ends the merge under way, if any, at once: a run reached
// maxRun again before it was done (it is paced not to be).
func (s *freshSeg) finishMerge() {
	if s.merge == nil {
		return
	}
	s.merge.step(len(s.big) + len(s.frozen))
	s.big, s.frozen, s.merge = s.merge.out, nil, nil
}

// stepMerge does one write's share of the merge under way, and publishes
// its result in a new segment when it is done.
func (f *freshKeys) stepMerge() {
	m := f.seg.merge
	if m == nil || !m.step(m.perAdd) {
		return
	}
	seg := *f.seg
	seg.big, seg.frozen, seg.merge = m.out, nil, nil
	f.seg = &seg
}

// runMerge merges two sorted runs into a new one a few items at a time.
// out is written by the writer only and read by no one until it is done.
type runMerge struct {
	a, b []freshItem // what is left of each
	out  []freshItem
	// perAdd is how many items each new fresh key moves: enough to be
	// done before maxRun more keys freeze another run.
	perAdd int
}

// runMergePace, if above 0, replaces perAdd: tests slow merges down so
// that a run reaches maxRun again before one is done.
var runMergePace = 0

func newRunMerge(a, b []freshItem) *runMerge {
	n := len(a) + len(b)
	per := n/max(1, maxRun/2) + 1
	if runMergePace > 0 {
		per = runMergePace
	}
	return &runMerge{a: a, b: b, out: make([]freshItem, 0, n), perAdd: per}
}

// step moves up to n items into out and reports whether the merge is done.
func (m *runMerge) step(n int) bool {
	out, a, b := m.out, m.a, m.b
	for ; n > 0 && len(a) > 0 && len(b) > 0; n-- {
		if compareFresh(a[0], b[0]) <= 0 {
			out, a = append(out, a[0]), a[1:]
		} else {
			out, b = append(out, b[0]), b[1:]
		}
	}
	if n > 0 && (len(a) == 0 || len(b) == 0) {
		rest := a
		if len(a) == 0 {
			rest = b
		}
		k := min(n, len(rest))
		out = append(out, rest[:k]...)
		rest = rest[k:]
		if len(a) == 0 {
			b = rest
		} else {
			a = rest
		}
	}
	m.out, m.a, m.b = out, a, b
	return len(a) == 0 && len(b) == 0
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
		seg.index = f.seg.index.grown(f.len()+1, seg.limit)
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
// slots while the fresh keys fit a tail, then room for limit at once, so
// that no write pays for rehashing thousands of keys.
func (x *freshIndex) grown(keys, limit int) *freshIndex {
	if keys > freshTail {
		keys = max(keys, limit)
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
	if f.seg.asc {
		t := f.tailKeys()
		if i := search(t, f.seg.k8(key), key); i < len(t) && bytes.Equal(t[i].rec.key(), key) {
			return t[i].rec
		}
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
	skip   []byte // the prefix the fresh keys' 8 bytes skip (freshSeg.skip)
}

var freshMerges = sync.Pool{New: func() any { return new(freshMerge) }}

// merge returns the fresh keys in [key, end) (end nil: no end); there are
// some (seg is not nil). Call release when done.
func (f *freshKeys) merge(key, end []byte) *freshMerge {
	m := freshMerges.Get().(*freshMerge)
	m.end = end
	m.skip = f.seg.skip
	if end != nil {
		m.e8 = f.seg.k8(end)
	}
	k8 := f.seg.k8(key)
	f.seg.sorted(func(run []freshItem) {
		if l := run[search(run, k8, key):]; len(l) > 0 && m.inRange(&l[0]) {
			m.lists = append(m.lists, l)
		}
	})
	tail := m.tail[:0]
	if f.seg.asc {
		// The tail is sorted: one more run.
		run := f.tailKeys()
		if l := run[search(run, k8, key):]; len(l) > 0 && m.inRange(&l[0]) {
			m.lists = append(m.lists, l)
		}
	} else {
		for _, it := range f.tailKeys() {
			if !it.before(k8, key) && m.inRange(&it) {
				tail = append(tail, it)
			}
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
	if m.part != p {
		m.part = p
		m.place(h, p)
	}
	switch {
	case m.pos != 0:
		return m.pos < 0
	case m.inline != it.prefix:
		return m.inline < it.prefix
	}
	return bytes.Compare(h.rec.key(), it.rec.key()) < 0
}

// place finds where the head h falls against part p's keys (pos, inline:
// see freshMerge). If p skips the prefix the fresh keys' 8 bytes skip, h's
// 8 bytes are its inline bytes in p, and the head's record is not loaded:
// a range read loads the records it returns in batches (state.each),
// which a load here, one at a time, would not overlap. k8 is 0 or the
// largest value also for keys without that prefix: for those, the key
// decides.
func (m *freshMerge) place(h *freshItem, p *keyPart) {
	if h.k8 != 0 && h.k8 != math.MaxUint64 && bytes.Equal(p.common, m.skip) {
		m.pos, m.inline = 0, h.k8
		return
	}
	hk := h.rec.key()
	m.pos = position(hk, p.common)
	if m.pos == 0 {
		m.inline = keyPrefix(hk, len(p.common))
	}
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
