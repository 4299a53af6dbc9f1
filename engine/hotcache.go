package engine

import (
	"bytes"
	"hash/maphash"
)

// hotCache remembers the records of keys the writer updated lately, so that
// an update of a hot key skips the tree's descent: at a million keys that
// descent is over half of what a put of an existing key costs. It is a
// table of pairs of slots (a hash of a key picks its pair; a key that
// finds both taken replaces the record in the pair's first), owned by the
// writer (mu): with one slot per key, a fifth of 1,000 keys updated round
// robin would share their slot with another and miss every time.
//
// A record in the cache is good while it is its key's record in the
// writer's index. Records leave the index, or are replaced there, only by
// what calls changedKeysLocked (compaction, an abort's undo), which
// empties the cache: a replaced record must not stay reachable from it
// either, with every version it lists (TestCompactionFreesMemory).
type hotCache struct {
	slots   []*keyRecord // nil until the store has made hotAfter updates
	dirty   bool         // slots hold records
	updates int
}

// hotSlots is the table's size (32 KiB).
const hotSlots = 4096

// hotAfter is how many updates a store makes before it has a table, so
// that small stores do not pay for one. A var: tests lower it.
var hotAfter = 256

var hotSeed = maphash.MakeSeed()

func hotIndex(key []byte) uint64 { return maphash.Bytes(hotSeed, key) & (hotSlots - 1) }

// get returns the cached record of key, or nil if it has none, and the
// slot where key's record is or goes, for updated.
func (c *hotCache) get(key []byte) (*keyRecord, int) {
	if c.slots == nil {
		return nil, -1
	}
	i := int(hotIndex(key))
	if rec := c.slots[i]; rec == nil {
		return nil, i
	} else if bytes.Equal(rec.key(), key) {
		return rec, i
	}
	if rec := c.slots[i^1]; rec == nil {
		return nil, i ^ 1
	} else if bytes.Equal(rec.key(), key) {
		return rec, i ^ 1
	}
	return nil, i
}

// updated records that rec, its key's record in the writer's index, was
// updated; slot is what get returned for its key, -1 if not called.
func (c *hotCache) updated(rec *keyRecord, slot int) {
	if c.slots == nil {
		if c.updates++; c.updates < hotAfter {
			return
		}
		c.slots = make([]*keyRecord, hotSlots)
	}
	if slot < 0 {
		_, slot = c.get(rec.key())
	}
	if c.slots[slot] != rec { // no write barrier for a key updated again
		c.slots[slot] = rec
	}
	c.dirty = true
}

// forget drops every record the cache holds. Compaction calls it once per
// record it replaces: only the first call after an update clears.
func (c *hotCache) forget() {
	if c.dirty {
		clear(c.slots)
		c.dirty = false
	}
}
