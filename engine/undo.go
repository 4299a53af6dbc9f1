package engine

// Taking back an open txn's writes.
//
// A txn applies its writes to the writer's index as it makes them (so its
// reads see them), at a revision no reader can see before the commit
// publishes it. To abort, the writer restores what those writes changed:
// the version lists of the records they appended to, and the index, for
// the records they created. Readers never see the difference: they read at
// the published revision, below every version the txn added.
//
// A version list that a reader may hold is never written where the reader
// looks (see versionList). So an abort does not shrink a list in place: it
// gives the record a new list with the old versions (its full blocks
// shared, its tail copied), and the aborted versions stay, unread, in the
// list readers hold until they drop it.

// undoEntry is what one write changed in one record.
type undoEntry struct {
	rec *keyRecord
	// list and n are rec's version list and its length before the write
	// (list nil: the record's single inline version).
	list *versionList
	n    int64
	// created: the write made rec; the abort removes it from the index.
	created bool
}

// undoLog lists an open txn's writes, oldest first. Its methods do nothing
// on a nil log, which is what writes outside txns have.
type undoLog struct {
	entries []undoEntry
}

// touched records rec's versions before a write appends to them.
func (u *undoLog) touched(rec *keyRecord) {
	if u == nil {
		return
	}
	e := undoEntry{rec: rec, list: rec.vers.Load()}
	if e.list != nil {
		e.n = e.list.n.Load()
	}
	u.entries = append(u.entries, e)
}

// created records that a write made rec and put it into the index.
func (u *undoLog) created(rec *keyRecord) {
	if u == nil {
		return
	}
	u.entries = append(u.entries, undoEntry{rec: rec, created: true})
}

// reset empties u, keeping its memory for the next txn.
func (u *undoLog) reset() {
	clear(u.entries)
	u.entries = u.entries[:0]
}

// undoLocked takes back every write u lists, newest first, and empties u.
// mu is held.
func (s *Store) undoLocked(u *undoLog) {
	removed := false
	for i := len(u.entries) - 1; i >= 0; i-- {
		e := u.entries[i]
		if e.created {
			s.removeLocked(e.rec)
			removed = true
			continue
		}
		e.rec.vers.Store(restoredList(e.list, e.n))
	}
	if removed {
		// Removed keys may be among the fresh ones: the next
		// publication copies the trees instead.
		s.changedKeysLocked()
	}
	u.reset()
}

// removeLocked removes rec from the writer's index. mu is held.
func (s *Store) removeLocked(rec *keyRecord) {
	t, l := s.w.keys.side(rec.key())
	t.Delete(keyPrefix(rec.key(), l), rec.key())
	s.pointsRemoveLocked(rec)
}

// restoredList returns a list holding the first n versions of l, which
// must not be l itself: l may have grown in place, and a list that
// replaced it may share the backing array of l's blocks (so the copy's
// blocks are capped: its first full tail gets a new array).
func restoredList(l *versionList, n int64) *versionList {
	if l == nil {
		return nil
	}
	nl := &versionList{
		blocks: l.blocks[:len(l.blocks):len(l.blocks)],
		tail:   make([]vslot, len(l.tail)),
	}
	t := l.used(n)
	copy(nl.tail, t)
	nl.setNewest(t[len(t)-1].v)
	nl.n.Store(n)
	return nl
}
