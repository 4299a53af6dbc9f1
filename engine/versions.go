package engine

import (
	"bytes"
	"math"
	"slices"
	"sort"
	"sync/atomic"
	"unsafe"

	"github.com/revkv/revkv/kv"
)

// version is one change to one key: a put or a tombstone. It is 64 bytes,
// one cache line.
type version struct {
	main   int64
	sub    int64
	create int64 // CreateRevision of the incarnation this put belongs to
	ver    int64 // Version: >= 1 for a put, 0 for a tombstone
	lease  int64
	value  []byte
}

// deleted reports whether v is a tombstone.
func (v version) deleted() bool { return v.ver == 0 }

// keyRecord is a key and its retained versions.
//
// A key written once keeps that version in the record itself (its first
// version: the fields main .. sub, its value stored right after the key),
// and vers is nil. From its second version on, vers points to a list of all
// of them (and the first version is no longer read, but stays as it was:
// a history entry may still refer to it, see chunk). A reader at revision R
// only looks at versions with main <= R, all of which were in the list
// before R was published. A record is never trimmed in place: compaction
// builds a new record and swaps it into the writer's tree, so views taken
// before the compaction keep the versions they can see.
//
// The key and the first version's value share one allocation with the
// record, right after its 32 bytes, up to maxInline bytes together (see
// allocRecord): a key written once with a small value is one object of
// the record plus its bytes, rounded to the allocator's size class
// (16-byte key, 128-byte value: 176 bytes), with one pointer for the
// garbage collector to scan (vers), and the key compares from the same
// cache lines. A first version with a lease keeps it in the 8 bytes
// before the key (leaseBit): most keys have none, and a record of 40
// bytes would put the common record above one size class. Longer bytes,
// and the keys of probes, are elsewhere, in an extRecord.
//
// Reading a key costs one cache miss after the tree node for a key with one
// version, and two or three for others (the record, its list, the slot of
// the version).
type keyRecord struct {
	vers atomic.Pointer[versionList]
	// The first version but its value and lease: its revision, how far its
	// create revision is below it (back), and its version and sub-revision,
	// in 32 bits each, which hold those of every version the engine makes
	// (see fits; newRecord starts a list for one they do not).
	main           int64
	back, ver, sub uint32
	// kn is the key's length and vn the first value's (bytes inline: at
	// most maxInline, 10 bits), with extBit or leaseBit set in kn.
	kn, vn uint16
}

// recordSize is the size of a record without its bytes: 32 on 64-bit
// platforms, where recordClasses are sized for it.
const recordSize = unsafe.Sizeof(keyRecord{})

// Flags of keyRecord.kn.
const (
	// extBit marks a record whose bytes are not right after it: it is an
	// extRecord, which holds their lengths and the first version's lease.
	extBit = 1 << 15
	// leaseBit marks a record whose first version's lease is in the 8
	// bytes after it, before the key.
	leaseBit = 1 << 14
)

// extRecord is a record whose bytes are elsewhere: ext points to them.
type extRecord struct {
	keyRecord
	ext        *byte
	klen, vlen uint32
	lease      int64
}

// asExt returns r as the extRecord it is (extBit is set).
func (r *keyRecord) asExt() *extRecord { return (*extRecord)(unsafe.Pointer(r)) }

// bytes returns the address of the record's key, which its first value
// follows.
func (r *keyRecord) bytes() *byte {
	switch {
	case r.kn&extBit != 0:
		return r.asExt().ext
	case r.kn&leaseBit != 0:
		return (*byte)(unsafe.Add(unsafe.Pointer(r), recordSize+8))
	}
	return (*byte)(unsafe.Add(unsafe.Pointer(r), recordSize))
}

// key returns the record's key. It never changes.
func (r *keyRecord) key() []byte {
	if r.kn&(extBit|leaseBit) == 0 { // most records: one test
		return unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(r), recordSize)), r.kn)
	}
	return unsafe.Slice(r.bytes(), r.keyLen())
}

// keyLen returns the length of the record's key.
func (r *keyRecord) keyLen() int {
	if r.kn&extBit != 0 {
		return int(r.asExt().klen)
	}
	return int(r.kn &^ leaseBit)
}

// valueLen returns the length of the first version's value (0 if the
// first version is in a list).
func (r *keyRecord) valueLen() int {
	if r.kn&extBit != 0 {
		return int(r.asExt().vlen)
	}
	return int(r.vn)
}

// setLens sets the lengths of the record's key and first value, which
// allocRecord made room for.
func (r *keyRecord) setLens(kn, vn int) {
	if r.kn&extBit != 0 {
		x := r.asExt()
		x.klen, x.vlen = uint32(kn), uint32(vn)
		return
	}
	r.kn |= uint16(kn)
	r.vn = uint16(vn)
}

// firstLease returns the first version's lease (0 if it is in a list).
func (r *keyRecord) firstLease() int64 {
	switch {
	case r.kn&extBit != 0:
		return r.asExt().lease
	case r.kn&leaseBit != 0:
		return *(*int64)(unsafe.Add(unsafe.Pointer(r), recordSize))
	}
	return 0
}

// fits reports whether the record's fields hold v's revision numbers.
func fits(v version) bool {
	back := v.main - v.create
	return v.ver >= 0 && v.ver <= math.MaxUint32 && v.sub >= 0 && v.sub <= math.MaxUint32 &&
		back >= 0 && back <= math.MaxUint32
}

// firstVersion returns the version the record was made with.
func (r *keyRecord) firstVersion() version {
	v := version{main: r.main, sub: int64(r.sub), create: r.main - int64(r.back), ver: int64(r.ver)}
	if r.kn&(extBit|leaseBit) == 0 { // most records: bytes inline, no lease
		if r.vn > 0 {
			v.value = unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(r), recordSize+uintptr(r.kn))), r.vn)
		}
		return v
	}
	v.lease = r.firstLease()
	if n := r.valueLen(); n > 0 {
		v.value = unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(r.bytes()), r.keyLen())), n)
	}
	return v
}

// versionList is a key's versions, oldest first: full blocks, then a tail
// that the writer fills in place. n is how many versions the list holds;
// the writer stores a version in the slot past them before it raises n, and
// a reader loads n first, so what a reader looks at is never written again.
// Appending to a list therefore allocates nothing until its tail is full;
// then a new list takes over (a tail twice as big, or the full tail turned
// into a block and a new tail), sharing the old list's blocks.
//
// A slot points to its version, which is written once before the slot is
// and never again, and holds a copy of the version's revision: a search by
// revision reads the list's own contiguous slots, and loads a version only
// once it has found it. (Without the copies, each step of a search loaded a
// version from its slab, a cache miss of its own: the versions of one key
// are as far apart in the slabs as there were writes between them.) The writer keeps the versions of its updates in slabs
// filled in revision order (see Store.versionLocked), not in the list: an
// update then writes its version into the cache line the one before it
// used, and its key's list only a pointer, into the line of the pointer
// before it. With the versions themselves in the lists, each update wrote
// a cold 64-byte line of its own key's tail, and the writer waited for it.
// A slab, like a page of values, goes dead with the compaction that drops
// the revisions it holds (see compacted).
//
// Blocks bound the work under the writer lock: an append copies at most one
// tail, however long the key's history, and compaction drops whole blocks
// without copying them.
type versionList struct {
	n      atomic.Int64
	blocks []*versionBlock // full; never written again
	// tail has len == cap; tail[:n-len(blocks)*blockSize] is in use, never
	// empty.
	tail []vslot
	// create and ver are the newest version's, kept by the writer for the
	// next one it appends (see keyRecord.newest), so that it need not
	// load that version. Readers never look at them.
	create, ver int64
}

// blockSize is how many versions one block holds (1 KiB of pointers).
const blockSize = 128

// minTail is the tail of a key's first list: most keys written twice are
// not written a hundred times.
const minTail = 2

type versionBlock [blockSize]vslot

// vslot is a slot of a version list: a version and its main revision.
type vslot struct {
	main int64
	v    *version
}

// slotOf returns the slot of v.
func slotOf(v *version) vslot { return vslot{main: v.main, v: v} }

// firstList is a key's first list, made when its second version comes:
// the list, the record's first version (which the list needs as a version
// of its own) and the tail, in one allocation.
type firstList struct {
	l     versionList
	first version
	tail  [minTail]vslot
}

// listOf returns a list holding a copy of vs (oldest first, not empty).
func listOf(vs []version) *versionList {
	own := slices.Clone(vs)
	ps := make([]*version, len(own))
	for i := range own {
		ps[i] = &own[i]
	}
	return listOfPtrs(ps)
}

// listOfPtrs returns a list of the versions ps points to (oldest first, not
// empty); it keeps none of ps itself.
func listOfPtrs(ps []*version) *versionList {
	l := &versionList{}
	rest := ps
	for len(rest) > blockSize {
		b := new(versionBlock)
		fillSlots(b[:], rest)
		l.blocks = append(l.blocks, b)
		rest = rest[blockSize:]
	}
	c := minTail
	for c < len(rest) {
		c *= 2
	}
	l.tail = make([]vslot, c)
	fillSlots(l.tail, rest)
	l.setNewest(ps[len(ps)-1])
	l.n.Store(int64(len(ps)))
	return l
}

// fillSlots sets the slots of ss to the versions of ps (len(ps) at most).
func fillSlots(ss []vslot, ps []*version) {
	for i, p := range ps[:min(len(ps), len(ss))] {
		ss[i] = slotOf(p)
	}
}

// setNewest records v as l's newest version for the writer (see create).
func (l *versionList) setNewest(v *version) { l.create, l.ver = v.create, v.ver }

// newest returns the create and ver of the record's newest version (ver 0:
// a tombstone). Only the writer calls it.
func (r *keyRecord) newest() (create, ver int64) {
	if l := r.vers.Load(); l != nil {
		return l.create, l.ver
	}
	return r.main - int64(r.back), int64(r.ver)
}

// len returns the number of versions in l.
func (l *versionList) len() int { return int(l.n.Load()) }

// used returns the tail's versions in use, for n as loaded from l.n.
func (l *versionList) used(n int64) []vslot { return l.tail[:int(n)-len(l.blocks)*blockSize] }

// latest returns l's newest version.
func (l *versionList) latest() version {
	t := l.used(l.n.Load())
	return *t[len(t)-1].v
}

// since returns the versions from position i on (oldest first), in a new
// slice. Compaction keeps these: it copies no version it drops.
func (l *versionList) since(i int) []*version {
	n := int(l.n.Load())
	vs := make([]*version, 0, n-i)
	nb := len(l.blocks) * blockSize
	for ; i < nb; i = (i/blockSize + 1) * blockSize {
		vs = appendVersions(vs, l.blocks[i/blockSize][i%blockSize:])
	}
	return appendVersions(vs, l.tail[i-nb:n-nb])
}

// appendVersions appends the versions of ss to vs.
func appendVersions(vs []*version, ss []vslot) []*version {
	for _, s := range ss {
		vs = append(vs, s.v)
	}
	return vs
}

// newRecord returns a record for key holding one version; it copies the
// key and v's value.
func newRecord(key []byte, first version) *keyRecord {
	// A version whose numbers the record's fields do not hold (never made
	// by the engine's own writes) goes into a list, which has room for
	// any, and holds its lease and the length of its value there.
	inList := !fits(first)
	lease, vn := first.lease, len(first.value)
	if inList {
		lease, vn = 0, 0
	}
	r, data := allocRecord(len(key)+len(first.value), lease)
	copy(data, key)
	copy(data[len(key):], first.value)
	r.setLens(len(key), vn)
	if inList {
		if len(first.value) > 0 {
			first.value = data[len(key):len(data):len(data)]
		}
		r.vers.Store(listOf([]version{first}))
		return r
	}
	r.main, r.back = first.main, uint32(first.main-first.create)
	r.ver, r.sub = uint32(first.ver), uint32(first.sub)
	return r
}

// madeChange returns the change of a record just made by newRecord: its
// one version, which the history can refer to by the record alone (see
// chunk), unless newRecord had to keep it in a list.
func (r *keyRecord) madeChange() change {
	if l := r.vers.Load(); l != nil {
		return change{key: r.key(), v: l.latest()}
	}
	return r.firstChange()
}

// firstChange returns the change of the record's first version, which
// stays in the record whatever comes after. The record must have been
// made with it inline (madeChange set rec).
func (r *keyRecord) firstChange() change {
	return change{key: r.key(), v: r.firstVersion(), rec: r}
}

// recordOf makes a record holding the versions of l.
func recordOf(key []byte, l *versionList) *keyRecord {
	if l.len() == 1 {
		return newRecord(key, l.latest())
	}
	r := newRecord(key, version{})
	r.vers.Store(l)
	return r
}

// append adds *v, which is never written again. Only the writer calls it.
func (r *keyRecord) append(v *version) {
	l := r.vers.Load()
	if l == nil {
		f := &firstList{first: r.firstVersion()}
		f.tail = [minTail]vslot{slotOf(&f.first), slotOf(v)}
		f.l.tail = f.tail[:]
		f.l.setNewest(v)
		f.l.n.Store(2)
		r.vers.Store(&f.l)
		return
	}
	n := l.n.Load()
	k := int(n) - len(l.blocks)*blockSize
	if k < len(l.tail) {
		// Readers look at no slot at or past n.
		l.tail[k] = slotOf(v)
		l.setNewest(v)
		l.n.Store(n + 1)
		return
	}
	var nl *versionList
	if len(l.tail) < blockSize {
		nl = &versionList{blocks: l.blocks, tail: make([]vslot, 2*len(l.tail))}
		copy(nl.tail, l.tail)
		nl.tail[k] = slotOf(v)
	} else {
		// A key with a full block is hot: its next tail is a whole block.
		// The old list never looks past its own blocks, so appending to
		// the shared backing array is safe.
		nl = &versionList{blocks: append(l.blocks, (*versionBlock)(l.tail)), tail: make([]vslot, blockSize)}
		nl.tail[0] = slotOf(v)
	}
	nl.setNewest(v)
	nl.n.Store(n + 1)
	r.vers.Store(nl)
}

// at returns the latest version with main <= rev, if any.
func (r *keyRecord) at(rev int64) (version, bool) { return r.atList(r.vers.Load(), rev) }

// atList is at, given the record's list as loaded from vers.
func (r *keyRecord) atList(l *versionList, rev int64) (version, bool) {
	if l != nil {
		return l.at(rev)
	}
	if r.main <= rev {
		return r.firstVersion(), true
	}
	return version{}, false
}

// at returns the latest version in l with main <= rev, if any.
func (l *versionList) at(rev int64) (version, bool) {
	t := l.used(l.n.Load())
	// Reads at the current revision hit the latest version.
	if last := t[len(t)-1]; last.main <= rev {
		return *last.v, true
	}
	if t[0].main <= rev {
		return *t[searchVersions(t, rev)].v, true
	}
	bs := l.blocks
	i := sort.Search(len(bs), func(i int) bool { return bs[i][0].main > rev }) - 1
	if i < 0 {
		return version{}, false
	}
	return *bs[i][searchVersions(bs[i][:], rev)].v, true
}

// searchVersions returns the index of the last slot in vs with main <=
// rev; vs[0].main <= rev.
func searchVersions(vs []vslot, rev int64) int {
	// A binary search without a closure: lo's slot is always <= rev.
	lo, n := 0, len(vs)
	for n > 1 {
		half := n >> 1
		if vs[lo+half].main <= rev {
			lo += half
		}
		n -= half
	}
	return lo
}

// live returns the key's value at rev, if the key exists then.
func (r *keyRecord) live(rev int64) (kv.KeyValue, bool) { return r.liveList(r.vers.Load(), rev) }

// liveList is live, given the record's list as loaded from vers.
func (r *keyRecord) liveList(l *versionList, rev int64) (kv.KeyValue, bool) {
	if l == nil && r.kn&(extBit|leaseBit) == 0 {
		// Most records a range reads: one version, its bytes inline, no
		// lease. Built here, not from firstVersion's version, this path
		// reads no field twice and makes no copy of a version on the way.
		if r.main > rev || r.ver == 0 {
			return kv.KeyValue{}, false
		}
		p := unsafe.Add(unsafe.Pointer(r), recordSize)
		out := kv.KeyValue{Key: unsafe.Slice((*byte)(p), r.kn), CreateRevision: r.main - int64(r.back), ModRevision: r.main, Version: int64(r.ver)}
		if r.vn > 0 {
			out.Value = unsafe.Slice((*byte)(unsafe.Add(p, r.kn)), r.vn)
		}
		return out, true
	}
	v, ok := r.atList(l, rev)
	if !ok || v.deleted() {
		return kv.KeyValue{}, false
	}
	return v.keyValue(r.key()), true
}

func (v version) keyValue(key []byte) kv.KeyValue {
	return kv.KeyValue{
		Key:            key,
		Value:          v.value,
		CreateRevision: v.create,
		ModRevision:    v.main,
		Version:        v.ver,
		Lease:          v.lease,
	}
}

func (v version) event(key []byte) kv.Event {
	if v.deleted() {
		return kv.Event{Type: kv.Delete, KV: kv.KeyValue{Key: key, ModRevision: v.main}, Sub: v.sub}
	}
	return kv.Event{Type: kv.Put, KV: v.keyValue(key), Sub: v.sub}
}

// maxCopyOnCompact is the most versions compaction copies to make a key's
// new list. Above it, the new list shares the old one's blocks from the one
// holding the cut on (and its tail), keeping at most blockSize-1 dropped
// versions (never read: they are below the compacted revision) and freeing
// the rest.
const maxCopyOnCompact = 1024

// compacted returns the list a compaction at rev keeps: the version visible
// at rev if it is a put, and every version after rev. It returns l itself if
// nothing is dropped, nil if nothing is kept, and how many versions it
// copied. Only the writer calls it.
func (l *versionList) compacted(rev int64) (kept *versionList, copied int) {
	n := l.n.Load()
	t := l.used(n)
	if latest := *t[len(t)-1].v; latest.main <= rev {
		switch {
		case latest.deleted():
			return nil, 0
		case n == 1:
			return l, 0
		}
		return listOf([]version{latest}), 0 // recordOf copies its value
	}
	// cut is the position (in all versions, oldest first) of the version
	// visible at rev; inBlock is the block it is in, -1 for the tail.
	nb := len(l.blocks) * blockSize
	var cut, inBlock int
	if t[0].main <= rev {
		cut, inBlock = nb+searchVersions(t, rev), -1
	} else {
		bs := l.blocks
		i := sort.Search(len(bs), func(i int) bool { return bs[i][0].main > rev }) - 1
		if i < 0 {
			return l, 0 // every version is after rev
		}
		cut, inBlock = i*blockSize+searchVersions(bs[i][:], rev), i
	}
	first := cut
	if l.versionAt(cut).deleted() {
		first++
	}
	if first == 0 {
		return l, 0
	}
	if k := int(n) - first; k <= maxCopyOnCompact {
		return listOfPtrs(ownFirst(l.since(first))), k
	}
	if inBlock <= 0 {
		return l, 0 // the cut is in the first block: nothing whole to drop
	}
	// The new list shares l's tail: the writer appends only to the new one,
	// past every slot l holds.
	nl := &versionList{blocks: l.blocks[inBlock:len(l.blocks):len(l.blocks)], tail: l.tail, create: l.create, ver: l.ver}
	nl.n.Store(n - int64(inBlock*blockSize))
	return nl, 0
}

// ownFirst gives the first of vs, the oldest version a compaction keeps,
// a version of its own, with a copy of its value if that value may be in
// one of the writer's pages (see Store.pageCopyLocked), and returns vs,
// which must be a copy. Every list compaction makes thus starts with a
// version that keeps no page or slab of versions alive, and a version that
// is below the compacted revision and kept is the first of its list (or
// its record's own), so the pages and slabs of the revisions compaction
// dropped go with them, whatever keys stay. (A list that keeps over
// maxCopyOnCompact versions shares whole blocks instead: what stays of its
// first kept block may keep its pages and slabs.)
//
// A list of one version needs no copy: its record takes the value inline
// (recordOf).
func ownFirst(vs []*version) []*version {
	if len(vs) > 1 {
		v := *vs[0]
		if len(v.value) > 0 && len(v.value) <= maxPaged {
			v.value = bytes.Clone(v.value)
		}
		vs[0] = &v
	}
	return vs
}

// versionAt returns the version at position i (oldest first).
func (l *versionList) versionAt(i int) version {
	if nb := len(l.blocks) * blockSize; i >= nb {
		return *l.tail[i-nb].v
	}
	return *l.blocks[i/blockSize][i%blockSize].v
}
