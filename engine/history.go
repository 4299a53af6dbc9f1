package engine

import (
	"slices"
	"sync/atomic"
	"unsafe"
)

// change is one entry of a revision's change list: which key, and what
// version it got.
type change struct {
	key []byte
	v   version
	// rec, if set, is the record that v made (a new key): v is its first
	// version, and key its key, so that the history can keep the record
	// alone for a revision of this one change.
	rec *keyRecord
}

// chunkSize is how many main revisions one history chunk holds. A chunk is a
// fixed array, so appending a revision never moves earlier ones and a reader
// can index it without a lock.
const chunkSize = 256

// chunk holds the changes of main revisions first .. first+size-1, one
// slot per revision, in one of five arrays, each allocated when a
// revision first needs it:
//
//   - recs: a revision whose only change made a new key (its record's
//     first version, sub-revision 0) is the record itself: 8 bytes, as the
//     record keeps that version whatever comes after (see keyRecord). A
//     store loaded with new keys has only this array.
//   - one: any other revision of one change (a delete, an update in a
//     txn) is packed, 48 bytes with no allocation of its own.
//   - made: a revision of several changes that each made a new key (a
//     txn of new keys) is their records, 8 bytes each where a change
//     takes 96 and three pointers: the records hold the rest.
//   - many: a revision of other changes (a txn) is their slice.
//   - upd: a Put that updated a key is where the version it appended is
//     in the writer's slabs (see Store.versionLocked), and the length of
//     its key, which is in the page right before the version's value (see
//     Store.putVersionLocked): 8 bytes with no pointer for the garbage
//     collector to follow, where a packed change has two. The chunk
//     keeps the slabs its entries are in alive.
//
// A slot's revision is in exactly one of them; a reader tries recs, made,
// many, upd, then one. Every chunk holds chunkSize revisions but a history's
// first one, which starts with firstChunkSize and is replaced by one twice
// its size when it fills (see slot): a store that sees a few writes, as
// most stores in tests do, does not pay for 12 KB of entries it never
// fills.
//
// The writer fills a revision's entry (allocating and storing its array
// first, if need be) before it publishes the revision; readers only read
// entries at or below the revision of their view.
type chunk struct {
	first int64
	size  int64 // slots; never changes
	recs  atomic.Pointer[[]*keyRecord]
	one   atomic.Pointer[[]packed]
	made  atomic.Pointer[[][]*keyRecord]
	many  atomic.Pointer[[][]change]
	upd   atomic.Pointer[[]updated]
	// slabs are the writer's slabs of versions (each by its first
	// version) that upd's entries are in, in the order they were first
	// needed; readers index it with an entry's slab.
	slabs atomic.Pointer[[]*version]
}

// firstChunkSize is the size of a history's first chunk.
const firstChunkSize = 4

func newChunk(first int64, size int) *chunk {
	return &chunk{first: first, size: int64(size)}
}

// array returns the array of a, allocating it (size slots) if need be.
// Only the writer calls it.
func array[T any](a *atomic.Pointer[[]T], size int64) []T {
	if p := a.Load(); p != nil {
		return *p
	}
	s := make([]T, size)
	a.Store(&s)
	return s
}

// loaded returns the array of a, nil if there is none.
func loaded[T any](a *atomic.Pointer[[]T]) []T {
	if p := a.Load(); p != nil {
		return *p
	}
	return nil
}

// packed is the change of a revision that has only that one: its main
// revision is its slot's and its sub-revision 0, and its slices are a
// pointer and a length each. 48 bytes where a change takes 96.
type packed struct {
	key, value  *byte
	klen, vlen  uint32 // keys and values are far below 4 GiB (MaxValueSize)
	create, ver int64
	lease       int64
}

func pack(c change) packed {
	return packed{
		key: unsafe.SliceData(c.key), klen: uint32(len(c.key)),
		value: unsafe.SliceData(c.v.value), vlen: uint32(len(c.v.value)),
		create: c.v.create, ver: c.v.ver, lease: c.v.lease,
	}
}

// packable reports whether c, the only change of revision rev, can be
// packed: true of every lone change the engine makes (sub-revision 0).
func packable(c change, rev int64) bool { return c.v.main == rev && c.v.sub == 0 }

// unpack returns the change packed in p at main revision rev.
func (p *packed) unpack(rev int64) change {
	c := change{
		key: unsafe.Slice(p.key, p.klen),
		v:   version{main: rev, create: p.create, ver: p.ver, lease: p.lease},
	}
	if p.value != nil {
		c.v.value = unsafe.Slice(p.value, p.vlen)
	}
	return c
}

// history is the revision-ordered list of changes: what watchers and
// persisters read ("everything since R") and what hashing and snapshots walk.
//
// Main revisions are contiguous, so a revision's chunk is found by arithmetic
// in O(1); the chunk slice itself is append-only and copied only when
// compaction drops a prefix, so a view shares it with the writer.
type history struct {
	chunks []*chunk
	first  int64 // lowest main revision that may be stored (chunks[0].first)
}

// each calls fn for each change of main revision rev, if it is stored,
// and reports whether fn always returned true. The caller guarantees rev is
// at or below its view's revision.
func (h history) each(rev int64, fn func(change) bool) bool {
	if len(h.chunks) == 0 || rev < h.first {
		return true
	}
	i := (rev - h.first) / chunkSize
	if i >= int64(len(h.chunks)) {
		return true
	}
	c := h.chunks[i]
	j := rev - c.first
	if j >= c.size {
		return true // past the first chunk's revisions so far
	}
	if recs := loaded(&c.recs); recs != nil && recs[j] != nil {
		return fn(recs[j].firstChange())
	}
	if m := loaded(&c.made); m != nil && m[j] != nil {
		for _, r := range m[j] {
			if !fn(r.firstChange()) {
				return false
			}
		}
		return true
	}
	if m := loaded(&c.many); m != nil && m[j] != nil {
		for _, ch := range m[j] {
			if !fn(ch) {
				return false
			}
		}
		return true
	}
	if upd := loaded(&c.upd); upd != nil && upd[j].klen != 0 {
		return fn(c.updatedChange(upd[j]))
	}
	one := loaded(&c.one)
	if one == nil {
		return true // nothing stored at rev
	}
	return fn(one[j].unpack(rev))
}

// add records the changes of main revision rev (at least one), which must
// be one past the last added (or the first ever). Only the writer calls it;
// the returned history is published with the revision. It keeps no
// reference to cs if it holds one packable change, or changes that each
// made a new key (madeOnly).
func (h history) add(rev int64, cs []change) history {
	if len(cs) == 1 && packable(cs[0], rev) {
		return h.addOne(rev, cs[0])
	}
	h, c, j := h.slot(rev)
	if madeOnly(cs) {
		recs := make([]*keyRecord, len(cs))
		for i := range cs {
			recs[i] = cs[i].rec
		}
		array(&c.made, c.size)[j] = recs
		return h
	}
	array(&c.many, c.size)[j] = cs
	return h
}

// keeps reports whether the history keeps the slice cs, a revision's
// changes, once the writer adds them (endWriteLocked): not one change,
// which addOne packs or copies, nor changes that each made a new key,
// which add keeps as their records.
func keeps(cs []change) bool { return len(cs) > 1 && !madeOnly(cs) }

// madeOnly reports whether every change of cs made a new key, whose
// record holds it as its first version (change.rec).
func madeOnly(cs []change) bool {
	for i := range cs {
		if cs[i].rec == nil {
			return false
		}
	}
	return true
}

// addOne is add for a revision of one change, without a slice when it can
// be packed (or is a record's first version).
func (h history) addOne(rev int64, ch change) history {
	if !packable(ch, rev) {
		return h.add(rev, []change{ch})
	}
	h, c, j := h.slot(rev)
	if ch.rec != nil {
		array(&c.recs, c.size)[j] = ch.rec
		return h
	}
	array(&c.one, c.size)[j] = pack(ch)
	return h
}

// addUpdated is add for a revision whose one change (sub-revision 0) is
// an update whose version is the idx-th of the slab that starts at slab,
// and whose key of klen bytes is right before its value in the same page
// (see Store.putVersionLocked). The version is never written again.
func (h history) addUpdated(rev int64, slab *version, idx, klen int) history {
	h, c, j := h.slot(rev)
	slabs := loaded(&c.slabs)
	n := len(slabs)
	if n == 0 || slabs[n-1] != slab {
		// Readers of the slice this one replaces never look past its
		// end, where append may write. (A variable of its own: one
		// whose address is taken is allocated at every call.)
		grown := append(slabs, slab)
		c.slabs.Store(&grown)
		n++
	}
	array(&c.upd, c.size)[j] = updated{slab: uint16(n - 1), idx: uint16(idx), klen: uint32(klen)}
	return h
}

// updated is a revision that addUpdated stored: its version is the idx-th
// of its chunk's slab number slab, and its key the klen bytes before the
// version's value. klen is 0 in a slot addUpdated did not fill (keys are
// not empty). A chunk's slabs are at most one per revision and a slab
// holds at most maxVersionSlab versions, so 16 bits hold both indexes.
type updated struct {
	slab, idx uint16
	klen      uint32
}

// updatedChange returns the change u, an entry of c, stands for.
func (c *chunk) updatedChange(u updated) change {
	first := loaded(&c.slabs)[u.slab]
	v := *(*version)(unsafe.Add(unsafe.Pointer(first), uintptr(u.idx)*unsafe.Sizeof(version{})))
	k := unsafe.Add(unsafe.Pointer(unsafe.SliceData(v.value)), -int(u.klen))
	return change{key: unsafe.Slice((*byte)(k), u.klen), v: v}
}

// slot returns the chunk and index where revision rev goes, adding a chunk
// if it is the first revision past the last one, and growing the first
// chunk if rev is past its size.
func (h history) slot(rev int64) (history, *chunk, int64) {
	if len(h.chunks) == 0 {
		h.first = rev
		h.chunks = []*chunk{newChunk(rev, firstChunkSize)}
	}
	i := (rev - h.first) / chunkSize
	if i == int64(len(h.chunks)) {
		h.chunks = append(h.chunks, newChunk(h.first+i*chunkSize, chunkSize))
	}
	c := h.chunks[i]
	j := rev - c.first
	if j >= c.size {
		c = c.grown(j)
		// Views hold the old chunk and the slice that has it: the
		// grown one goes into a copy (of one chunk: only a history's
		// first chunk is ever small).
		h.chunks = slices.Clone(h.chunks)
		h.chunks[i] = c
	}
	return h, c, j
}

// grown returns a copy of c, which must be a history's only chunk, with
// room for index j: its size doubled until j fits, up to chunkSize. Views
// keep reading c, whose entries they need are already written.
func (c *chunk) grown(j int64) *chunk {
	n := c.size
	for n <= j {
		n *= 2
	}
	g := newChunk(c.first, int(min(n, chunkSize)))
	growInto(&g.recs, &c.recs, g.size)
	growInto(&g.one, &c.one, g.size)
	growInto(&g.made, &c.made, g.size)
	growInto(&g.many, &c.many, g.size)
	growInto(&g.upd, &c.upd, g.size)
	g.slabs.Store(c.slabs.Load()) // appended to past c's end only
	return g
}

// growInto stores in to a copy of from's array with size slots, if from
// has an array.
func growInto[T any](to, from *atomic.Pointer[[]T], size int64) {
	if old := loaded(from); old != nil {
		s := make([]T, size)
		copy(s, old)
		to.Store(&s)
	}
}

// dropBefore forgets whole chunks whose revisions are all below rev. The
// chunk holding rev and later ones stay. The slice is copied so that the old
// chunks become garbage once no view holds them.
func (h history) dropBefore(rev int64) history {
	if len(h.chunks) == 0 || rev <= h.first {
		return h
	}
	n := (rev - h.first) / chunkSize
	if n == 0 {
		return h
	}
	if n > int64(len(h.chunks)) {
		n = int64(len(h.chunks))
	}
	h.chunks = append([]*chunk(nil), h.chunks[n:]...)
	if len(h.chunks) == 0 {
		// Keep the alignment: the next revision lands where it would have.
		h.first += n * chunkSize
		return h
	}
	h.first = h.chunks[0].first
	return h
}
