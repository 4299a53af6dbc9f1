package raftstore

import (
	"fmt"

	"go.etcd.io/raft/v3/raftpb"
)

// logState is the log as raft sees it: ents[0] is a dummy holding the
// index and term of the entry before the first one available (the last
// one compacted, or a snapshot's), as in raft.MemoryStorage. The same
// methods apply a live change and replay its record on open, so the two
// cannot disagree.
//
// Entries are never changed once in ents: a slice handed out by Entries
// may still point at them (raft.Storage's rule), so every change builds
// a new backing array where it would overwrite one.
type logState struct {
	ents []*raftpb.Entry
}

func dummy(index, term uint64) *raftpb.Entry {
	return &raftpb.Entry{Index: new(index), Term: new(term)}
}

func newLogState(index, term uint64) logState {
	return logState{ents: []*raftpb.Entry{dummy(index, term)}}
}

func (l *logState) offset() uint64     { return l.ents[0].GetIndex() }
func (l *logState) offsetTerm() uint64 { return l.ents[0].GetTerm() }
func (l *logState) first() uint64      { return l.offset() + 1 }
func (l *logState) last() uint64       { return l.offset() + uint64(len(l.ents)) - 1 }

// term returns the term of entry i, which is in [offset, last].
func (l *logState) term(i uint64) uint64 { return l.ents[i-l.offset()].GetTerm() }

// checkAppend says whether ents (consecutive, as checkConsecutive
// verified) can be appended: they must not leave a gap after the last
// entry.
func (l *logState) checkAppend(ents []*raftpb.Entry) error {
	if len(ents) > 0 && ents[0].GetIndex() > l.last()+1 {
		return fmt.Errorf("entries from index %d leave a gap after the last entry %d: %w", ents[0].GetIndex(), l.last(), ErrInvalid)
	}
	return nil
}

// appendEntries replaces the entries at and after ents[0]'s index with
// ents, skipping those already compacted, as MemoryStorage.Append does.
// checkAppend passed.
func (l *logState) appendEntries(ents []*raftpb.Entry) {
	if len(ents) == 0 {
		return
	}
	first := l.first()
	if last := ents[0].GetIndex() + uint64(len(ents)) - 1; last < first {
		return
	}
	if first > ents[0].GetIndex() {
		ents = ents[first-ents[0].GetIndex():]
	}
	at := ents[0].GetIndex() - l.offset()
	if at == uint64(len(l.ents)) {
		// Past the end: no slice handed out reaches there.
		l.ents = append(l.ents, ents...)
		return
	}
	// An overwrite: the full slice expression makes append copy instead
	// of writing over entries a caller of Entries may hold.
	l.ents = append(l.ents[:at:at], ents...)
}

// replayEntries replays an entries record. Save writes only entries past
// the offset, so in a replay from the first segment ever, that is what
// it finds; a replay that starts from a later segment's base takes
// entries up to that base's last index as compacted (see replay), and
// may find a record from below its offset: the record still replaces
// every entry from its first index on, so it drops those past the
// offset, and adds its own past the offset.
func (l *logState) replayEntries(ents []*raftpb.Entry) {
	if off := l.offset(); ents[0].GetIndex() <= off {
		l.ents = l.ents[:1:1]
		ents = liveEntries(ents, off+1)
	}
	l.appendEntries(ents)
}

// compact drops the entries up to i (offset < i <= last).
func (l *logState) compact(i uint64) {
	at := i - l.offset()
	ents := make([]*raftpb.Entry, 1, uint64(len(l.ents))-at)
	ents[0] = dummy(i, l.ents[at].GetTerm())
	l.ents = append(ents, l.ents[at+1:]...)
}

// compactTo replays a compact record (index, term). Unlike a live
// compact, it may find the index at or below the offset (a replay that
// starts from a later segment's base, see replay) or past the last
// entry (the same), and then it takes the mark as the new dummy.
func (l *logState) compactTo(m mark) {
	switch {
	case m.index < l.offset():
	case m.index == l.offset():
		l.ents[0] = dummy(m.index, m.term)
	case m.index <= l.last():
		l.compact(m.index)
	default:
		*l = newLogState(m.index, m.term)
	}
}

// reset drops every entry: a snapshot at (index, term) was applied.
func (l *logState) reset(index, term uint64) { *l = newLogState(index, term) }
