package engine

import (
	"bytes"
	"encoding/binary"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/revkv/revkv/kv"
	"github.com/tidwall/btree"
)

// version is one change to one key: a put or a tombstone. It is 64 bytes:
// version lists are copied as they grow, and history holds one per change.
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
// A key written once keeps that version inline in first, and vers is nil.
// From its second version on, vers points to an immutable list of all of
// them, which the writer replaces with a longer one on each write (and
// first is no longer read). A reader at revision R only looks at versions
// with main <= R, all of which were in the list before R was published.
// A record is never trimmed in place: compaction builds a new record and
// swaps it into the writer's tree, so views taken before the compaction keep
// the versions they can see.
//
// Reading a key costs one cache miss after the tree node for a key with one
// version (the record, whose 128 bytes the hardware fetches as a pair of
// lines), and two for others (the record, then its list, which holds the
// latest version inline).
type keyRecord struct {
	vers  atomic.Pointer[versionList]
	first version
	key   []byte
	// inline holds keys up to its size, so comparing a key does not touch
	// another cache line.
	inline [24]byte
}

// versionList is an immutable list of a key's versions, oldest first:
// the full blocks, then tail, then latest. Appending makes a new list that
// shares the old one's blocks and tail backing array (the old list never
// looks past its own lengths); when the tail fills, it becomes a block. So
// an append copies at most one block's worth of versions, however long the
// key's history, and compaction drops whole blocks without copying.
type versionList struct {
	latest version
	tail   []version
	blocks []*versionBlock
}

// blockSize is how many versions one block holds (8 KiB).
const blockSize = 128

type versionBlock [blockSize]version

// listOf returns a list holding a copy of vs (oldest first, not empty).
func listOf(vs []version) *versionList {
	n := len(vs)
	l := &versionList{latest: vs[n-1]}
	rest := vs[:n-1]
	for len(rest) >= blockSize {
		b := new(versionBlock)
		copy(b[:], rest)
		l.blocks = append(l.blocks, b)
		rest = rest[blockSize:]
	}
	if len(rest) > 0 {
		l.tail = append([]version(nil), rest...)
	}
	return l
}

// len returns the number of versions in l.
func (l *versionList) len() int { return len(l.blocks)*blockSize + len(l.tail) + 1 }

// appended returns a new list: l followed by v.
func (l *versionList) appended(v version) *versionList {
	nl := &versionList{latest: v, tail: append(l.tail, l.latest), blocks: l.blocks}
	if len(nl.tail) == blockSize {
		nl.blocks = append(nl.blocks, (*versionBlock)(nl.tail))
		nl.tail = nil
	}
	return nl
}

// all returns every version, oldest first. It allocates: for tests and
// debugging.
func (l *versionList) all() []version {
	vs := make([]version, 0, l.len())
	for _, b := range l.blocks {
		vs = append(vs, b[:]...)
	}
	return append(append(vs, l.tail...), l.latest)
}

// newRecord returns a record for key holding one version.
func newRecord(key []byte, first version) *keyRecord {
	r := &keyRecord{first: first}
	if len(key) <= len(r.inline) {
		r.key = r.inline[:len(key):len(key)]
		copy(r.key, key)
	} else {
		r.key = bytes.Clone(key)
	}
	return r
}

// recordOf makes a record holding the versions of l.
func recordOf(key []byte, l *versionList) *keyRecord {
	if l.len() == 1 {
		return newRecord(key, l.latest)
	}
	r := newRecord(key, version{})
	r.vers.Store(l)
	return r
}

// append adds v. Only the writer calls it.
func (r *keyRecord) append(v version) {
	old := r.vers.Load()
	if old == nil {
		old = &versionList{latest: r.first}
	}
	r.vers.Store(old.appended(v))
}

// at returns the latest version with main <= rev, if any.
func (r *keyRecord) at(rev int64) (version, bool) { return r.atList(r.vers.Load(), rev) }

// atList is at, given the record's list as loaded from vers.
func (r *keyRecord) atList(l *versionList, rev int64) (version, bool) {
	if l != nil {
		return l.at(rev)
	}
	if r.first.main <= rev {
		return r.first, true
	}
	return version{}, false
}

// at returns the latest version in l with main <= rev, if any.
func (l *versionList) at(rev int64) (version, bool) {
	// Reads at the current revision hit the latest version.
	if l.latest.main <= rev {
		return l.latest, true
	}
	if t := l.tail; len(t) > 0 && t[0].main <= rev {
		return t[searchVersions(t, rev)], true
	}
	bs := l.blocks
	i := sort.Search(len(bs), func(i int) bool { return bs[i][0].main > rev }) - 1
	if i < 0 {
		return version{}, false
	}
	return bs[i][searchVersions(bs[i][:], rev)], true
}

// searchVersions returns the index of the last version in vs with main <=
// rev; vs[0].main <= rev.
func searchVersions(vs []version, rev int64) int {
	return sort.Search(len(vs), func(i int) bool { return vs[i].main > rev }) - 1
}

// live returns the key's value at rev, if the key exists then.
func (r *keyRecord) live(rev int64) (kv.KeyValue, bool) {
	v, ok := r.at(rev)
	if !ok || v.deleted() {
		return kv.KeyValue{}, false
	}
	return v.keyValue(r.key), true
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
// holding the cut on, keeping at most blockSize-1 dropped versions (never
// read: they are below the compacted revision) and freeing the rest.
const maxCopyOnCompact = 1024

// compacted returns the list a compaction at rev keeps: the version visible
// at rev if it is a put, and every version after rev. It returns l itself if
// nothing is dropped, nil if nothing is kept, and how many versions it
// copied.
func (l *versionList) compacted(rev int64) (kept *versionList, copied int) {
	if l.latest.main <= rev {
		switch {
		case l.latest.deleted():
			return nil, 0
		case l.len() == 1:
			return l, 0
		}
		return &versionList{latest: l.latest}, 0
	}
	// cut is the position (in all versions, oldest first) of the version
	// visible at rev; inBlock is the block it is in, -1 for the tail.
	nb := len(l.blocks) * blockSize
	var cut, inBlock int
	if t := l.tail; len(t) > 0 && t[0].main <= rev {
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
	if n := l.len() - first; n <= maxCopyOnCompact {
		vs := l.all()
		return listOf(vs[first:]), n
	}
	if inBlock <= 0 {
		return l, 0 // the cut is in the first block: nothing whole to drop
	}
	return &versionList{latest: l.latest, tail: l.tail, blocks: l.blocks[inBlock:len(l.blocks):len(l.blocks)]}, 0
}

// versionAt returns the version at position i (oldest first).
func (l *versionList) versionAt(i int) version {
	nb := len(l.blocks) * blockSize
	switch {
	case i < nb:
		return l.blocks[i/blockSize][i%blockSize]
	case i < nb+len(l.tail):
		return l.tail[i-nb]
	}
	return l.latest
}

// keyItem is what the key index stores. The 8-byte big-endian key prefix is
// inline so that most comparisons during a descent touch only the node, not
// the record: at a million keys a lookup is dominated by cache misses.
type keyItem struct {
	prefix uint64
	rec    *keyRecord
}

func keyPrefix(k []byte) uint64 {
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

// probe builds a search item for key. The tree calls its less func through
// a pointer, so a probe record on the stack would escape: probes come from a
// pool instead. Call release when the search is done.
func probe(key []byte) keyItem {
	r := probes.Get().(*keyRecord)
	r.key = key
	return keyItem{prefix: keyPrefix(key), rec: r}
}

func (it keyItem) release() {
	it.rec.key = nil
	probes.Put(it.rec)
}

var probes = sync.Pool{New: func() any { return new(keyRecord) }}

func lookup(t *keyTree, key []byte) *keyRecord {
	return lookupHint(t, key, nil)
}

// lookupHint is lookup that leaves in hint the path it took, so that an
// insert of the same key right after (SetHint) skips the searches.
func lookupHint(t *keyTree, key []byte, hint *btree.PathHint) *keyRecord {
	p := probe(key)
	it, ok := t.GetHint(p, hint)
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
func ascend(t *keyTree, key, end []byte, fn func(*keyRecord) bool) {
	p := probe(key)
	defer p.release()
	endPrefix := keyPrefix(end)
	t.Ascend(p, func(it keyItem) bool {
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
	if rec := lookup(st.keys, key); rec != nil {
		return rec
	}
	f := st.fresh
	if i := searchFresh(f, key); i < len(f) && bytes.Equal(f[i].rec.key, key) {
		return f[i].rec
	}
	return nil
}

// searchFresh returns the index of the first item of f with a key >= key.
func searchFresh(f []keyItem, key []byte) int {
	if len(f) == 0 {
		return 0
	}
	p := keyPrefix(key)
	return sort.Search(len(f), func(i int) bool {
		it := f[i]
		return it.prefix > p || it.prefix == p && bytes.Compare(it.rec.key, key) >= 0
	})
}

// ascend is ascend over the state's keys: the tree's, merged with fresh
// (which the tree never holds).
func (st *state) ascend(key, end []byte, fn func(*keyRecord) bool) {
	f := st.fresh[searchFresh(st.fresh, key):]
	inRange := func(it keyItem) bool { return end == nil || bytes.Compare(it.rec.key, end) < 0 }
	stopped := false
	ascend(st.keys, key, end, func(r *keyRecord) bool {
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
