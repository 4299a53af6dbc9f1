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
// prev, then latest. Appending makes a new list whose prev shares the old
// one's backing array (the old list never looks past its own length).
type versionList struct {
	latest version
	prev   []version
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
	if len(l.prev) == 0 {
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
		r.vers.Store(&versionList{latest: v, prev: []version{r.first}})
		return
	}
	r.vers.Store(&versionList{latest: v, prev: append(old.prev, old.latest)})
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
	vs := l.prev
	i := sort.Search(len(vs), func(i int) bool { return vs[i].main > rev }) - 1
	if i < 0 {
		return version{}, false
	}
	return vs[i], true
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

// maxCopyOnCompact is the most versions of one key compaction copies. A
// longer tail is shared with the old list instead, so one hot key cannot
// make a compaction step long; the dropped versions are then freed when the
// key's list next grows (which copies it) or the next compaction copies it.
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
		case len(l.prev) == 0:
			return l, 0
		}
		return &versionList{latest: l.latest}, 0
	}
	vs := l.prev
	i := sort.Search(len(vs), func(i int) bool { return vs[i].main > rev }) - 1
	if i < 0 {
		return l, 0
	}
	if vs[i].deleted() {
		i++
	}
	if i == 0 {
		return l, 0
	}
	tail := vs[i:len(vs):len(vs)] // capped: the next append reallocates
	if len(tail) <= maxCopyOnCompact {
		// A new array: the dropped versions can be freed with the old list,
		// which older views may still hold and so stays untouched.
		tail = append([]version(nil), tail...)
		copied = len(tail)
	}
	return &versionList{latest: l.latest, prev: tail}, copied
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
