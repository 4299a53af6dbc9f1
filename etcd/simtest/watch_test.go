package simtest

import (
	"errors"
	"time"

	"github.com/revkv/revkv"
	"github.com/revkv/revkv/kv"
	"github.com/revkv/revkv/watch"
)

// memberWatch is the watch the simulation keeps on one member's DB: every
// key, from revision 1 (a joiner: from the first revision its DB holds).
// When the DB goes away (crash, restart, snapshot install) the watcher is
// closed and a new one opened on the new DB from the revision after the
// last event received, so log is one history across all of them.
type memberWatch struct {
	db   *revkv.DB
	w    *revkv.Watcher
	log  watchLog
	next int64 // the next revision the history needs; 0: not started
	dead bool  // the watch ended (its DB closed): reopen it
}

// drainTimeout bounds the wait for a watcher to catch up: the watch
// goroutines run on their own, the rest of the simulation does not.
const drainTimeout = 20 * time.Second

// syncWatch moves n's watch onto n's current DB, takes the Responses that
// are ready and, if drain is set, waits until the watch has caught up
// with the DB's revision.
func (s *sim) syncWatch(n *node, drain bool) {
	ws := &n.w
	var db *revkv.DB
	if n.up() {
		db = n.m.DB()
	}
	if ws.w != nil && (ws.db != db || ws.dead) {
		if db != nil {
			s.stats.watchReopens++ // the DB was replaced under the watch
		}
		s.pump(n)
		ws.w.Close()
		for r := range ws.w.Chan() {
			s.take(n, r)
		}
		ws.w, ws.db, ws.dead = nil, nil, false
	}
	if db == nil {
		return
	}
	if ws.w == nil {
		if ws.next == 0 {
			ws.log.From = 1
			if n.joined {
				ws.log.From = max(1, db.CompactRev())
			}
			ws.next = ws.log.From
		}
		w := db.NewWatcher()
		if _, err := w.WatchRange(watch.Request{Key: []byte{0}, End: []byte{}, StartRev: ws.next}); err != nil {
			s.fatalf("member %d: watch from %d: %v", n.id, ws.next, err)
		}
		ws.w, ws.db = w, db
	}
	s.pump(n)
	if !drain {
		return
	}
	rev := db.Rev()
	ws.w.RequestProgress()
	timeout := time.After(drainTimeout)
	for {
		select {
		case r, ok := <-ws.w.Chan():
			if !ok {
				s.fatalf("member %d: watcher closed while draining", n.id)
			}
			s.take(n, r)
			if ws.dead {
				s.syncWatch(n, true) // reopened (a joiner's watch moved up to its DB's first revision)
				return
			}
			if r.Progress && r.WatchID == -1 && r.Revision >= rev {
				return
			}
		case <-timeout:
			s.fatalf("member %d: watch did not catch up with revision %d in %v (at %d)", n.id, rev, drainTimeout, ws.next)
		}
	}
}

// pump takes the Responses n's watcher has ready, without waiting.
func (s *sim) pump(n *node) {
	for {
		select {
		case r, ok := <-n.w.w.Chan():
			if !ok {
				n.w.dead = true
				return
			}
			s.take(n, r)
		default:
			return
		}
	}
}

// take adds a Response's events to n's history.
func (s *sim) take(n *node, r watch.Response) {
	ws := &n.w
	for _, ev := range r.Events {
		e := eventOf(ev)
		ws.log.Events = append(ws.log.Events, e)
		ws.next = max(ws.next, e.Rev+1)
	}
	if !r.Canceled {
		return
	}
	ws.dead = true
	if errors.Is(r.Err, kv.ErrCompacted) {
		if n.joined && len(ws.log.Events) == 0 {
			// A joiner's DB was replaced by a snapshot whose history
			// starts later: its history starts there.
			ws.log.From, ws.next = r.CompactRevision, r.CompactRevision
			return
		}
		s.fatalf("member %d: watch from %d compacted at %d: its history would have a gap", n.id, ws.next, r.CompactRevision)
	}
}

// watchFloor returns the lowest revision a member's watch history still
// needs (every watch drained first): compacting at or below it leaves
// every reopened watch able to resume. Joiners with no events yet do not
// count: their history may start anywhere.
func (s *sim) watchFloor() int64 {
	floor := int64(-1)
	for _, id := range s.ids(func(n *node) bool { return !n.removed }) {
		n := s.nodes[id]
		if n.up() {
			s.syncWatch(n, true)
		}
		if n.w.next == 0 || n.joined && len(n.w.log.Events) == 0 {
			continue
		}
		if floor < 0 || n.w.next < floor {
			floor = n.w.next
		}
	}
	return floor
}
