package engine

import "bytes"

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
