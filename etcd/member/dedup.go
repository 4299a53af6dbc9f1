package member

import (
	"cmp"
	"maps"
	"slices"
)

// Duplicate proposals. raft appends a MsgProp each time it arrives: a
// transport that delivers a forwarded proposal twice (a retry, a
// duplicating network) puts it in the log twice. Every entry carries its
// proposal's ID, so apply skips an entry whose ID it applied before. The
// record of applied IDs is part of the replicated state (every member
// makes the same decisions from the log alone, and a snapshot carries
// it), and is bounded:
//
//   - per proposing incarnation (member, epoch), the IDs are counters that
//     the proposer hands out in order, so the record is a floor (every seq
//     at or below it was applied, or is given up on) and the few seqs above
//     it applied out of order (proposals reordered on their way to the
//     leader); the floor moves up over the seqs applied in a row;
//   - gaps (a proposal the leader dropped) would keep seqs above the floor
//     for ever: past dedupWindow of them, the lower half is folded into the
//     floor, so a proposal delayed past that many later ones from the
//     same incarnation would be taken for a duplicate (its Pending then
//     times out: an unknown fate, as documented);
//   - a member keeps the records of its dedupIncarnations newest
//     incarnations (by the log index they were first seen at): a restart
//     starts a new one, and an old one's proposals stop coming.
const (
	dedupWindow       = 4096
	dedupIncarnations = 4
)

type incarnation struct{ member, epoch uint64 }

// seqWindow is one incarnation's record.
type seqWindow struct {
	first uint64 // the log index its first entry was applied at
	floor uint64
	above map[uint64]bool
}

type dedup map[incarnation]*seqWindow

// seen reports whether the proposal id was applied before, and records it
// as applied otherwise. index is the entry's.
func (d dedup) seen(id requestID, index uint64) bool {
	inc := incarnation{id.Member, id.Epoch}
	w := d[inc]
	if w == nil {
		w = &seqWindow{first: index, above: map[uint64]bool{}}
		d[inc] = w
		d.evict(id.Member)
	}
	if id.Seq <= w.floor || w.above[id.Seq] {
		return true
	}
	w.above[id.Seq] = true
	w.advance()
	return false
}

// advance moves the floor over the seqs applied in a row, and folds the
// lower half of the seqs above it in when there are too many.
func (w *seqWindow) advance() {
	for w.above[w.floor+1] {
		delete(w.above, w.floor+1)
		w.floor++
	}
	if len(w.above) <= dedupWindow {
		return
	}
	seqs := slices.Sorted(maps.Keys(w.above))
	for _, s := range seqs[:len(seqs)/2] {
		delete(w.above, s)
	}
	w.floor = seqs[len(seqs)/2-1]
	w.advance()
}

// evict drops the oldest incarnations of member beyond dedupIncarnations.
func (d dedup) evict(member uint64) {
	var incs []incarnation
	for inc := range d {
		if inc.member == member {
			incs = append(incs, inc)
		}
	}
	if len(incs) <= dedupIncarnations {
		return
	}
	slices.SortFunc(incs, func(a, b incarnation) int { return cmp.Compare(d[a].first, d[b].first) })
	for _, inc := range incs[:len(incs)-dedupIncarnations] {
		delete(d, inc)
	}
}

// sorted returns the incarnations in (member, epoch) order: the order the
// snapshot container writes them in.
func (d dedup) sorted() []incarnation {
	incs := slices.Collect(maps.Keys(d))
	slices.SortFunc(incs, func(a, b incarnation) int {
		if c := cmp.Compare(a.member, b.member); c != 0 {
			return c
		}
		return cmp.Compare(a.epoch, b.epoch)
	})
	return incs
}
