package simtest

import (
	"bytes"
	"fmt"
	"maps"
	"slices"

	"github.com/revkv/revkv/kv"
	"go.etcd.io/raft/v3/raftpb"
)

// The checkers: each takes what the simulation observed and returns an
// error naming the first violation. They are plain functions of their
// input, so checker_test.go feeds each a planted violation.

// leaderLog records, for each term, the leader some member reported: raft
// allows at most one per term, and a member only learns of a term's leader
// from that leader, so two members naming different leaders for one term
// is a split brain.
type leaderLog map[uint64]uint64

// observe records that member by reported leader in term; 0 (no leader
// known) is ignored.
func (l leaderLog) observe(by, term, leader uint64) error {
	if leader == 0 {
		return nil
	}
	if prev, ok := l[term]; ok && prev != leader {
		return fmt.Errorf("two leaders in term %d: %d and %d (reported by %d)", term, prev, leader, by)
	}
	l[term] = leader
	return nil
}

// watchEvent is one event a watcher delivered, flattened.
type watchEvent struct {
	Rev, Sub        int64
	Delete          bool
	Key, Value      string
	Create, Version int64
}

func eventOf(ev kv.Event) watchEvent {
	return watchEvent{
		Rev: ev.KV.ModRevision, Sub: ev.Sub, Delete: ev.Type == kv.Delete,
		Key: string(ev.KV.Key), Value: string(ev.KV.Value),
		Create: ev.KV.CreateRevision, Version: ev.KV.Version,
	}
}

// watchLog is one member's watch history across all the watchers it had
// (each reopened where the last one stopped).
type watchLog struct {
	From   int64 // the revision the first watcher started at
	Events []watchEvent
}

// checkWatchHistories checks that each member's history is gap-free from
// its start to its final revision (every revision in between has events, as
// every revision of the simulated store is a write; subs count from 0
// within a revision) and that all members agree on every event they share.
func checkWatchHistories(logs map[uint64]*watchLog, final map[uint64]int64) error {
	ref := map[[2]int64]watchEvent{}
	refBy := map[[2]int64]uint64{}
	for _, id := range slices.Sorted(maps.Keys(logs)) {
		l := logs[id]
		next := [2]int64{max(l.From, 2), 0} // revision 1 is the empty store: no events
		for i, ev := range l.Events {
			at := [2]int64{ev.Rev, ev.Sub}
			// The next event continues its revision or starts the next one.
			if at != next && (i == 0 || at != [2]int64{next[0] + 1, 0}) {
				return fmt.Errorf("member %d watch history: event %d is at %d.%d after %d.%d (a gap, a repeat or a wrong start)", id, i, ev.Rev, ev.Sub, next[0], next[1]-1)
			}
			next = [2]int64{ev.Rev, ev.Sub + 1}
			if r, ok := ref[at]; ok && r != ev {
				return fmt.Errorf("watch histories differ at %d.%d: member %d saw %+v, member %d saw %+v", ev.Rev, ev.Sub, refBy[at], r, id, ev)
			} else if !ok {
				ref[at], refBy[at] = ev, id
			}
		}
		last := next[0]
		if len(l.Events) == 0 {
			last = max(l.From, 2) - 1
		}
		if last != final[id] {
			return fmt.Errorf("member %d watch history ends at revision %d, its store is at %d", id, last, final[id])
		}
	}
	return nil
}

// checkHashes checks that every member that reported a hash at a revision
// reported the same one (hashes[member][rev]).
func checkHashes(hashes map[uint64]map[int64]kv.KeyValueHash) error {
	ref := map[int64]kv.KeyValueHash{}
	refBy := map[int64]uint64{}
	for _, id := range slices.Sorted(maps.Keys(hashes)) {
		for _, rev := range slices.Sorted(maps.Keys(hashes[id])) {
			h := hashes[id][rev]
			if r, ok := ref[rev]; ok && r != h {
				return fmt.Errorf("HashByRev(%d) differs: member %d %+v, member %d %+v", rev, refBy[rev], r, id, h)
			} else if !ok {
				ref[rev], refBy[rev] = h, id
			}
		}
	}
	return nil
}

// checkCommittedPrefixes checks that the members' committed raft entries
// (logs[member], each in index order, not necessarily from index 1) agree
// at every index two of them hold.
func checkCommittedPrefixes(logs map[uint64][]*raftpb.Entry) error {
	ref := map[uint64]*raftpb.Entry{}
	refBy := map[uint64]uint64{}
	for _, id := range slices.Sorted(maps.Keys(logs)) {
		for _, e := range logs[id] {
			i := e.GetIndex()
			if r, ok := ref[i]; ok && (r.GetTerm() != e.GetTerm() || r.GetType() != e.GetType() || !bytes.Equal(r.GetData(), e.GetData())) {
				return fmt.Errorf("committed entry %d differs: member %d has term %d %v (%d bytes), member %d term %d %v (%d bytes)",
					i, refBy[i], r.GetTerm(), r.GetType(), len(r.GetData()), id, e.GetTerm(), e.GetType(), len(e.GetData()))
			} else if !ok {
				ref[i], refBy[i] = e, id
			}
		}
	}
	return nil
}

// ackedWrite is a write a client saw succeed, with the revision it was
// acknowledged at.
type ackedWrite struct {
	Rev    int64
	Key    string
	Value  string
	Delete bool
}

// checkAckedWrites checks that every acknowledged write is in the watch
// history at the revision it was acknowledged with.
func checkAckedWrites(acked []ackedWrite, logs map[uint64]*watchLog) error {
	for _, w := range acked {
		seen := false
		for _, id := range slices.Sorted(maps.Keys(logs)) {
			l := logs[id]
			i, _ := slices.BinarySearchFunc(l.Events, w.Rev, func(e watchEvent, rev int64) int { return int(e.Rev - rev) })
			if i == len(l.Events) || l.Events[i].Rev != w.Rev {
				continue // this member's history does not reach back to it
			}
			seen = true
			found := false
			for ; i < len(l.Events) && l.Events[i].Rev == w.Rev; i++ {
				e := l.Events[i]
				if e.Key == w.Key && e.Delete == w.Delete && (w.Delete || e.Value == w.Value) {
					found = true
				}
			}
			if !found {
				return fmt.Errorf("acknowledged write %+v lost: member %d has other events at revision %d", w, id, w.Rev)
			}
		}
		if !seen && !slices.ContainsFunc(slices.Collect(maps.Values(logs)), func(l *watchLog) bool { return l.From > w.Rev }) {
			return fmt.Errorf("acknowledged write %+v lost: no member's history has revision %d", w, w.Rev)
		}
	}
	return nil
}

// serialRead is a read served from one member's DB without ReadIndex.
type serialRead struct {
	Member uint64
	Key    string
	Rev    int64 // the revision the member answered at
	Found  bool
	Value  string
	Mod    int64
}

// checkSerialReads checks every serializable read against the watch
// history (identical on every member, checked apart): the key must be
// what the history makes it at the read's revision. Reads below the start
// of every complete history are not checked.
func checkSerialReads(reads []serialRead, logs map[uint64]*watchLog) error {
	var ref *watchLog
	for _, id := range slices.Sorted(maps.Keys(logs)) {
		if ref == nil || logs[id].From < ref.From {
			ref = logs[id]
		}
	}
	if ref == nil || ref.From > 1 {
		return nil
	}
	for _, r := range reads {
		var want serialRead
		last := int64(1)
		for _, e := range ref.Events {
			if e.Rev > r.Rev {
				break
			}
			last = e.Rev
			if e.Key == r.Key {
				want.Found, want.Value, want.Mod = !e.Delete, e.Value, e.Rev
				if e.Delete {
					want.Value, want.Mod = "", 0
				}
			}
		}
		if last != r.Rev {
			return fmt.Errorf("member %d answered a read at revision %d, which the history does not have (it is at %d)", r.Member, r.Rev, last)
		}
		want.Member, want.Key, want.Rev = r.Member, r.Key, r.Rev
		if r != want {
			return fmt.Errorf("member %d read %+v, the history has %+v at that revision", r.Member, r, want)
		}
	}
	return nil
}
