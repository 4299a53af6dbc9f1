package engine

import (
	"bytes"

	"github.com/tidwall/btree"
)

// replayPutLocked is putLocked for replay (a snapshot's events, the log's
// batches), where keys often come in key order: a store filled in key
// order replays in revision order. A key after every key of the writer's
// index is new: its record goes in by the tree's append path (loadLocked),
// without the lookup's descent and the insert's search. Replay runs on a
// store no reader sees yet, so the trees' full copy at the next
// publication that loadLocked asks for costs nothing. mu is held (or the
// store is private).
func (s *Store) replayPutLocked(key, value []byte, lease, rev, sub int64) change {
	if !s.afterAllLocked(key) {
		return s.putLocked(key, value, lease, rev, sub)
	}
	v := version{main: rev, sub: sub, create: rev, ver: 1, lease: lease}
	if len(value) > 0 {
		v.value = value // newRecord copies it
	}
	rec := newRecord(key, v)
	s.loadLocked(rec)
	return rec.madeChange()
}

// afterAllLocked reports whether key sorts after every key of the writer's
// index: the last part's last key, found along the tree's right edge
// without a comparison, and one comparison with it. mu is held.
func (s *Store) afterAllLocked(key []byte) bool {
	x := &s.w.keys
	last, ok := x.parts[len(x.parts)-1].tree.Max()
	return ok && bytes.Compare(key, last.rec.key()) > 0
}

// repackLocked gives every tree of the writer's index nodes of its own,
// each holding its items in an array no longer than they need: after a
// replay, which inserts mostly in key order. A B-tree split leaves the left
// half of a full leaf in the full-size array, so keys inserted in order
// leave every leaf half full, at 32 bytes per 16-byte item; a node's copy
// sizes its array to the half it holds. Run once at the end of a recovery
// or a snapshot load, on a store no reader sees yet: O(n) copies, about a
// sixteenth of the items set again (each leaf holds at least 31). mu is
// held (or the store is private).
func (s *Store) repackLocked() {
	for i := range s.w.keys.parts {
		p := &s.w.keys.parts[i]
		p.tree = repacked(p.tree)
	}
	s.changedKeysLocked()
}

// repacked returns a copy of t whose nodes are all copies (see
// repackLocked): setting one item of every leaf again in a copy of t
// copies that leaf and the nodes above it.
func repacked(t *keyTree) *keyTree {
	c := t.Copy()
	var every []keyItem
	i := 0
	t.Scan(func(it keyItem) bool {
		if i%16 == 0 {
			every = append(every, it)
		}
		i++
		return true
	})
	var hint btree.PathHint
	for _, it := range every {
		c.SetHint(it, &hint)
	}
	return c
}
