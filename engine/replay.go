package engine

import (
	"bytes"
	"unsafe"

	"github.com/revkv/revkv/persist"
)

// replayPutLocked is putLocked for replay (a snapshot's events, the log's
// batches), where keys often come in key order: a store filled in key
// order replays in revision order. A key after every key of the writer's
// index is new: its record goes in by the tree's append path (loadLocked),
// without the lookup's descent and the insert's search. Replay runs on a
// store no reader sees yet, so the trees' full copy at the next
// publication that loadLocked asks for costs nothing. t is the replay's
// memory of the greatest key. pre, if not nil, is the record of key's
// first version (the one a new key gets here), made ahead (see
// prepareRecord). mu is held (or the store is private).
func (s *Store) replayPutLocked(t *replayTail, pre *keyRecord, key, value []byte, lease, rev, sub int64) change {
	if !t.before(s, key) {
		return s.putLocked(key, value, lease, rev, sub)
	}
	v := version{main: rev, sub: sub, create: rev, ver: 1, lease: lease}
	if len(value) > 0 {
		v.value = value // newRecord copies it
	}
	rec := pre
	if rec == nil {
		rec = newRecord(key, v)
	}
	s.loadLocked(rec)
	t.rec = rec
	if !fits(v) { // never made by the engine's own writes
		return rec.madeChange()
	}
	// The change of rec's first version (rec.firstChange), from what
	// made it rather than read back from the new record.
	k, data := rec.key(), unsafe.Slice(rec.bytes(), len(key)+len(value))
	if len(value) > 0 {
		v.value = data[len(key):len(data):len(data)]
	}
	return change{key: k, v: v, rec: rec}
}

// prepareChange returns the record that replayPutLocked makes for c, change
// sub of revision rev, if its key is new; nil for a delete, or for a
// version a record does not hold inline (see fits).
func prepareChange(c *persist.Change, rev int64, sub int) *keyRecord {
	v := version{main: rev, sub: int64(sub), create: rev, ver: 1, lease: c.Lease}
	if c.Delete || !fits(v) {
		return nil
	}
	if len(c.Value) > 0 {
		v.value = c.Value // newRecord copies it
	}
	return newRecord(c.Key, v)
}

// preparedFor returns the record Prepare made (p, a batch's Prepared) for
// c, change sub of revision rev, if it made one and it is the one
// prepareChange makes for c: key, revision, lease and value length
// checked (the persister sets Prepared; the bytes of the value came from
// the same batch).
func preparedFor(p any, sub int, c *persist.Change, rev int64) *keyRecord {
	var rec *keyRecord
	switch p := p.(type) {
	case *keyRecord:
		if sub == 0 {
			rec = p
		}
	case []*keyRecord:
		if sub < len(p) {
			rec = p[sub]
		}
	}
	if rec == nil || rec.vers.Load() != nil || rec.main != rev || rec.back != 0 || rec.ver != 1 || int64(rec.sub) != int64(sub) ||
		rec.firstLease() != c.Lease || rec.valueLen() != len(c.Value) || !bytes.Equal(rec.key(), c.Key) {
		return nil
	}
	return rec
}

// replayTail is what a replay knows of the greatest key of the writer's
// index: its record, or nil if it does not know (then the tree's right
// edge tells, see lastLocked). A replay that puts keys in key order then
// tells a new key by one comparison with the key it put last. Only the
// replay changes the index meanwhile, and puts only add keys, so the
// record stays the greatest until something removes keys: compaction,
// after which the replay forgets it (forget).
type replayTail struct{ rec *keyRecord }

// before reports whether key sorts after every key of s's writer index.
// mu is held.
func (t *replayTail) before(s *Store, key []byte) bool {
	if t.rec == nil {
		t.rec = s.lastLocked()
	}
	return t.rec != nil && bytes.Compare(key, t.rec.key()) > 0
}

// forget drops what t knows: the index lost keys, maybe its greatest.
func (t *replayTail) forget() { t.rec = nil }

// lastLocked returns the record of the greatest key of the writer's index
// (nil if it has none): the last part's last key, found along the tree's
// right edge without a comparison. mu is held.
func (s *Store) lastLocked() *keyRecord {
	x := &s.w.keys
	_, last, ok := x.parts[len(x.parts)-1].tree.Max()
	if !ok {
		return nil
	}
	return last
}
