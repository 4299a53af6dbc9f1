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
}

// chunkSize is how many main revisions one history chunk holds. A chunk is a
// fixed array, so appending a revision never moves earlier ones and a reader
// can index it without a lock.
const chunkSize = 256

// chunk holds the changes of main revisions first .. first+len(one)-1.
// Most revisions are one change (a Put): that change is stored packed in
// one, with no allocation of its own; a revision of several changes has
// them in many, which a chunk gets at its first such revision (most chunks
// of a store written by single puts never do).
//
// Every chunk holds chunkSize revisions but a history's first one, which
// starts with firstChunkSize and is replaced by one twice its size when it
// fills (see slot): a store that sees a few writes, as most stores in
// tests do, does not pay for 12 KB of entries it never fills.
//
// The writer fills a revision's entry before it publishes the revision;
// readers only read entries at or below the revision of their view.
type chunk struct {
	first int64
	one   []packed // len is the chunk's size; never resliced
	many  atomic.Pointer[[][]change]
}

// firstChunkSize is the size of a history's first chunk.
const firstChunkSize = 4

func newChunk(first int64, size int) *chunk {
	return &chunk{first: first, one: make([]packed, size)}
}

// packed is the change of a revision that has only that one: its main
// revision is its slot's and its sub-revision 0, and its slices are a
// pointer and a length each. 48 bytes where a change takes 88: history
// holds one per revision, so this is most of its memory.
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
	if j >= int64(len(c.one)) {
		return true // past the first chunk's revisions so far
	}
	if m := c.many.Load(); m != nil && (*m)[j] != nil {
		for _, ch := range (*m)[j] {
			if !fn(ch) {
				return false
			}
		}
		return true
	}
	return fn(c.one[j].unpack(rev))
}

// add records the changes of main revision rev (at least one), which must
// be one past the last added (or the first ever). Only the writer calls it;
// the returned history is published with the revision.
func (h history) add(rev int64, cs []change) history {
	h, c, j := h.slot(rev)
	if len(cs) == 1 && packable(cs[0], rev) {
		c.one[j] = pack(cs[0])
		return h
	}
	m := c.many.Load()
	if m == nil {
		ms := make([][]change, len(c.one))
		m = &ms
		c.many.Store(m)
	}
	(*m)[j] = cs
	return h
}

// addOne is add for a revision of one change, without a slice when it can
// be packed.
func (h history) addOne(rev int64, ch change) history {
	if !packable(ch, rev) {
		return h.add(rev, []change{ch})
	}
	h, c, j := h.slot(rev)
	c.one[j] = pack(ch)
	return h
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
	if j >= int64(len(c.one)) {
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
	n := len(c.one)
	for int64(n) <= j {
		n *= 2
	}
	g := newChunk(c.first, min(n, chunkSize))
	copy(g.one, c.one)
	if m := c.many.Load(); m != nil {
		ms := make([][]change, len(g.one))
		copy(ms, *m)
		g.many.Store(&ms)
	}
	return g
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
