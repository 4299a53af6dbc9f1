package engine

import (
	"bytes"
	"hash/maphash"
	"math/bits"
	"sync/atomic"
)

// Point reads by hash.
//
// A point read through the key index descends a B+tree: at a million keys
// four or five levels, a few cache misses in each, most of a read's time.
// The point table
// finds a key's record by a hash of the key instead: one cache line of the
// table, rarely two, and the record.
//
// The table holds the writer's current record of every key in its index
// (see the hooks: insertLocked, compaction, an abort's undo). The writer
// changes it in place while readers probe it; a state holds the table that
// was the writer's when the state was published, so a reader may find, for
// its key, a record made or replaced after its state. That record is the
// one to read if it has a version at the read's revision r (r <= the
// state's revision):
//   - a record made after the state (a new key, a key compacted away and
//     made again) has only versions above the state's revision, or, if a
//     txn that the writer then aborted made it, a version at a revision
//     that no state saw while the table held the record (the abort removes
//     it before the next write reuses the revision);
//   - a record that compaction made in place of another holds a suffix of
//     the other's versions (every version after the one visible at the
//     compacted revision), and the latest version at or below r among a
//     suffix of a list, if any, is the list's latest at or below r;
//   - versions appended after the state are above its revision, and an
//     abort's undo restores a prefix of a record's list.
//
// A table that growth replaced is left as it was, with records that were
// current when it was replaced, which is after the publication of every
// state that holds it: the same argument holds. So a read takes the
// table's record if it has a version at r, and otherwise (no record, or
// none at r) asks the state's index, as reads did before; a read of a
// missing key pays for the probe and the descent.
//
// A store has a table only if Options.PointIndex asks for one, as the
// table costs memory and time on every new key (see there). Small stores
// have none (their trees are shallow and in cache): the writer builds one
// when its index reaches pointMinKeys keys.

// pointSlots is the number of slots of a pointGroup: with its control
// word, a group is one 64-byte cache line.
const pointSlots = 7

// pointGroup is 7 slots and their control bytes: byte i of ctrl is
// pointEmpty, pointDeleted or pointFull|tag for slot i, and byte 7 is
// pointDeleted, which no probe takes for a match or for an empty slot.
type pointGroup struct {
	ctrl  atomic.Uint64
	slots [pointSlots]atomic.Pointer[keyRecord]
}

const (
	pointEmpty   = 0x00
	pointDeleted = 0x01
	pointFull    = 0x80
	// pointFresh is a group's ctrl with every slot empty.
	pointFresh = uint64(pointDeleted) << 56
	lsbs       = 0x0101010101010101
	msbs       = 0x8080808080808080
)

// pointTable is open addressing over groups: a key's hash picks its first
// group and a 7-bit tag; a probe looks at the group's control bytes for
// the tag, compares the key of each record whose tag matches, and goes on
// to the next group only if the group has no empty slot. The writer (mu)
// fills a slot before it publishes the slot's control byte, and removes a
// record by marking its control byte deleted: a reader never finds a
// record whose key it did not compare.
type pointTable struct {
	groups []pointGroup
	// Writer-only counts: used slots (full or deleted), and live ones.
	used, live int
	// sink keeps the loads of addAll's first passes from being optimized
	// away (a field, not a package variable: stores write it concurrently).
	sink uint64
}

// Load bounds, in slots per 1024: a table grows (into a new one) when its
// used slots would pass pointMaxLoad; the new one has live keys at
// pointNewLoad.
var (
	pointMaxLoad = 870
	pointNewLoad = 620
)

// pointMinKeys is how many keys the writer's index has before the writer
// builds a table. A var: tests lower it.
var pointMinKeys = 4096

var pointSeed = maphash.MakeSeed()

func pointHash(key []byte) uint64 { return maphash.Bytes(pointSeed, key) }

// pointTag returns the control byte of a full slot of a key with hash h.
func pointTag(h uint64) uint64 { return pointFull | h&0x7f }

// newPointTable returns an empty table with room for keys keys, and for
// most keys (>= keys) before it is full.
func newPointTable(keys, most int) *pointTable {
	// At pointNewLoad, and below pointMaxLoad with a key more: a table of
	// a few keys has room to grow before it is full.
	n := max(ceilDiv(keys*1024, pointNewLoad*pointSlots), ceilDiv((most+2)*1024, pointMaxLoad*pointSlots))
	t := &pointTable{groups: make([]pointGroup, n)}
	for i := range t.groups {
		t.groups[i].ctrl.Store(pointFresh)
	}
	return t
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// start returns the first group a probe for hash h looks at.
func (t *pointTable) start(h uint64) int {
	hi, _ := bits.Mul64(h, uint64(len(t.groups)))
	return int(hi)
}

// match returns the bytes of ctrl equal to b (pointEmpty or a tag), as
// their most significant bits.
func match(ctrl, b uint64) uint64 {
	x := ctrl ^ (lsbs * b)
	return ^(((x &^ msbs) + ^uint64(msbs)) | x | ^uint64(msbs))
}

// find returns the record of key (whose hash is h), or nil.
func (t *pointTable) find(key []byte, h uint64) *keyRecord {
	tag := pointTag(h)
	g := t.start(h)
	for range len(t.groups) {
		grp := &t.groups[g]
		c := grp.ctrl.Load()
		for m := match(c, tag); m != 0; m &= m - 1 {
			r := grp.slots[bits.TrailingZeros64(m)/8].Load()
			if r != nil && bytes.Equal(r.key(), key) {
				return r
			}
		}
		if match(c, pointEmpty) != 0 {
			return nil
		}
		if g++; g == len(t.groups) {
			g = 0
		}
	}
	return nil
}

// slotOf returns the group and slot that hold rec, if any. Writer only.
func (t *pointTable) slotOf(rec *keyRecord) (*pointGroup, int, bool) {
	h := pointHash(rec.key())
	tag := pointTag(h)
	g := t.start(h)
	for range len(t.groups) {
		grp := &t.groups[g]
		c := grp.ctrl.Load()
		for m := match(c, tag); m != 0; m &= m - 1 {
			i := bits.TrailingZeros64(m) / 8
			if grp.slots[i].Load() == rec {
				return grp, i, true
			}
		}
		if match(c, pointEmpty) != 0 {
			return nil, 0, false
		}
		if g++; g == len(t.groups) {
			g = 0
		}
	}
	return nil, 0, false
}

// full reports whether one more key would pass the table's load bound.
func (t *pointTable) full() bool {
	return (t.used+1)*1024 > pointMaxLoad*pointSlots*len(t.groups)
}

// add adds rec, whose key the table does not have, with hash h; the table
// is not full. Writer only.
func (t *pointTable) add(rec *keyRecord, h uint64) {
	g := t.start(h)
	for range len(t.groups) {
		grp := &t.groups[g]
		c := grp.ctrl.Load()
		free := match(c, pointEmpty) | match(c, pointDeleted)&^(uint64(0x80)<<56)
		if free != 0 {
			i := bits.TrailingZeros64(free) / 8
			b := 8 * i
			if (c>>b)&0xff == pointEmpty {
				t.used++
			}
			t.live++
			grp.slots[i].Store(rec)
			grp.ctrl.Store(c&^(0xff<<b) | pointTag(h)<<b)
			return
		}
		if g++; g == len(t.groups) {
			g = 0
		}
	}
	// Unreachable while tables are sized as pointsAddLocked sizes them; a
	// panic rather than a writer spinning for ever with the lock held.
	panic("revkv/engine: point table full")
}

// remove removes rec, if the table holds it, and reports whether it did.
// Writer only.
func (t *pointTable) remove(rec *keyRecord) bool {
	grp, i, ok := t.slotOf(rec)
	if !ok {
		return false
	}
	b := 8 * i
	grp.ctrl.Store(grp.ctrl.Load()&^(0xff<<b) | pointDeleted<<b)
	grp.slots[i].Store(nil) // keep nothing alive
	t.live--
	return true
}

// replace puts rec in place of old, a record of the same key, if the
// table holds old, and reports whether it did. Writer only.
func (t *pointTable) replace(old, rec *keyRecord) bool {
	grp, i, ok := t.slotOf(old)
	if ok {
		grp.slots[i].Store(rec)
	}
	return ok
}

// pointIndex is the point table a state holds: cur, and while the writer
// moves the records of a table that grew into cur, that table (old), whose
// moved slots are marked deleted. A key is in one of them. A pointIndex is
// never written; the tables are.
type pointIndex struct {
	cur, old *pointTable
}

// find returns the record of key, or nil. A record the writer moves from
// old to cur between the two probes is missed: the caller asks the index.
func (x *pointIndex) find(key []byte) *keyRecord {
	h := pointHash(key)
	if r := x.cur.find(key, h); r != nil {
		return r
	}
	if x.old != nil {
		return x.old.find(key, h)
	}
	return nil
}

// pointBatch is how many records the writer hashes and adds at once: their
// loads (of each record's key, then of each target group) go out together
// rather than one after the other.
const pointBatch = 64

// addAll adds recs, whose keys the table does not have, with room for
// them. The records' keys are loaded first, then the groups they go to,
// in separate passes, so that the cache misses of a batch overlap.
func (t *pointTable) addAll(recs []*keyRecord) {
	var hs [pointBatch]uint64
	for len(recs) > 0 {
		b := recs[:min(len(recs), pointBatch)]
		recs = recs[len(b):]
		var sink uint32
		for _, r := range b {
			sink += uint32(r.kn) // the record's first line, where its key is
		}
		for i, r := range b {
			hs[i] = pointHash(r.key())
		}
		var sink2 uint64
		for i := range b {
			sink2 += t.groups[t.start(hs[i])].ctrl.Load()
		}
		t.sink = sink2 + uint64(sink)
		for i, r := range b {
			t.add(r, hs[i])
		}
	}
}

// pointMigrate is how many groups of an old table the writer moves to the
// new one per key it adds: the old table's memory is freed after about
// 1/24 as many new keys as it held (at 1/6 group per key), and a put moves
// at most about 28 keys. The new table has room for its live keys plus one
// per put until the move ends, however many groups the old one has (one
// whose keys compaction mostly deleted has many): see pointsAddLocked.
var pointMigrate = 4 // a var: tests lower it

// pointsAddLocked adds a new record of the writer's index to the point
// table, growing it as needed, and moves part of the old table's records
// if it is growing. mu is held.
func (s *Store) pointsAddLocked(rec *keyRecord) {
	x := s.w.points
	if x == nil {
		return // built at the next publication, if the index is big enough
	}
	if x.cur.full() {
		if x.old != nil {
			s.pointsMigrateLocked(len(x.old.groups)) // not expected: see pointMigrate
			x = s.w.points
		}
		// The new table takes the old one's live records, and a key per
		// put until they have all moved: room for both, or it could fill
		// first (an old table whose slots compaction mostly deleted has
		// many groups to move for its few live keys), and add would find
		// no free slot.
		moves := ceilDiv(len(x.cur.groups), pointMigrate)
		x = &pointIndex{cur: newPointTable(x.cur.live+1, x.cur.live+1+moves), old: x.cur}
		s.w.points = x
	}
	x.cur.add(rec, pointHash(rec.key()))
	if x.old != nil {
		s.pointsMigrateLocked(pointMigrate)
	}
}

// pointsMigrateLocked moves the records of n more groups of the old table
// to the new one, and drops the old table when it has moved them all. mu
// is held.
func (s *Store) pointsMigrateLocked(n int) {
	x := s.w.points
	old := x.old
	var recs [pointBatch]*keyRecord
	for n > 0 && s.w.migrated < len(old.groups) {
		// A batch of whole groups.
		from, k := s.w.migrated, 0
		for n > 0 && s.w.migrated < len(old.groups) && k+pointSlots <= len(recs) {
			grp := &old.groups[s.w.migrated]
			for m := fullSlots(grp.ctrl.Load()); m != 0; m &= m - 1 {
				recs[k] = grp.slots[bits.TrailingZeros64(m)/8].Load()
				k++
			}
			s.w.migrated++
			n--
		}
		x.cur.addAll(recs[:k])
		clear(recs[:k])
		// Now in cur, where readers look first: gone from old.
		for g := from; g < s.w.migrated; g++ {
			grp := &old.groups[g]
			c := grp.ctrl.Load()
			m := fullSlots(c)
			grp.ctrl.Store(c&^((m>>7)*0xff) | m>>7) // each full byte to pointDeleted
			for ; m != 0; m &= m - 1 {
				grp.slots[bits.TrailingZeros64(m)/8].Store(nil)
				old.live--
			}
		}
	}
	if s.w.migrated == len(old.groups) {
		s.w.points = &pointIndex{cur: x.cur}
		s.w.migrated = 0
	}
}

// fullSlots returns the full slots of a group's ctrl, as the most
// significant bits of their bytes.
func fullSlots(c uint64) uint64 { return c & msbs }

// pointsBuildLocked makes a point table of the writer's index if it has
// none and has at least pointMinKeys keys. mu is held.
func (s *Store) pointsBuildLocked() {
	if s.w.points != nil || !s.opts.PointIndex {
		return
	}
	n := s.w.keys.len()
	if n < pointMinKeys {
		return
	}
	t := newPointTable(n, n)
	batch := make([]*keyRecord, 0, pointBatch)
	s.w.keys.ascend(nil, nil, func(r *keyRecord) bool {
		if batch = append(batch, r); len(batch) == pointBatch {
			t.addAll(batch)
			batch = batch[:0]
		}
		return true
	})
	t.addAll(batch)
	s.w.points = &pointIndex{cur: t}
	s.w.migrated = 0
}

// pointAt returns the version of key at rev if the state's point table
// holds a record of key with a version at rev (see above: then it is the
// version the state's index has); ok false means the caller must ask the
// index.
func (st *state) pointAt(key []byte, rev int64) (rec *keyRecord, v version, ok bool) {
	if st.points == nil {
		return nil, version{}, false
	}
	rec = st.points.find(key)
	if rec == nil {
		return nil, version{}, false
	}
	v, ok = rec.at(rev)
	return rec, v, ok
}

// pointsRemoveLocked removes rec, which left the writer's index, from the
// point table. mu is held.
func (s *Store) pointsRemoveLocked(rec *keyRecord) {
	if x := s.w.points; x != nil && !x.cur.remove(rec) && x.old != nil {
		x.old.remove(rec)
	}
}

// pointsReplaceLocked puts rec in the point table in place of old, which
// rec replaced in the writer's index. mu is held.
func (s *Store) pointsReplaceLocked(old, rec *keyRecord) {
	if x := s.w.points; x != nil && !x.cur.replace(old, rec) && x.old != nil {
		x.old.replace(old, rec)
	}
}
