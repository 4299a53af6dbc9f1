package watch

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/kv"
)

// Test hooks (nil except in tests): testHookCatchUpRead runs after a
// catch-up read and before its result is applied; testHookCatchUpDone after
// it is applied (the watch may have rejoined the hub) and before its
// Response is sent. Writes and their dispatch can slip in at both points.
var testHookCatchUpRead, testHookCatchUpDone func()

// scanLimit bounds how many history events one catch-up step reads, so a
// narrow watch far behind a busy store shares its Watcher fairly.
const scanLimit = 64 << 10

// watch is one watched range on a Watcher. All fields but the immutable
// request ones are guarded by hub.mu.
type watch struct {
	id, seq  int64
	s        *Watcher
	key, end []byte // end nil: every key >= key (or just key, if one)
	one      bool   // a single-key watch
	prevKV   bool
	noPut    bool
	noDelete bool
	progress bool
	max      int

	// A synced watch is in the hub's index and gets events as they are
	// written, from revision minRev on. An unsynced one reads history from
	// next.
	synced bool
	minRev int64
	next   kv.Revision
	// pending are events handed out by the hub, not yet in a Response. An
	// unsynced watch sends those it still holds (from before it fell
	// behind) before it reads history.
	pending []kv.Event
	ready   bool // in s.ready
	// pins hold, for an unsynced watch, the history it still needs from
	// below a compaction: views taken before each compaction that passed
	// its position, oldest first (see hub.beforeCompact). Each is dropped
	// once the watch has read past its revision.
	pins []*engine.View

	canceled       bool
	progressQueued bool
	lastSent       time.Time // of progress watches only (see markSent)
}

func (w *watch) single() bool { return w.one }

// pin gives an unsynced watch v, a view taken before a compaction to rev,
// if it will read history below rev that no view it has holds. hub.mu is
// held.
func (w *watch) pin(v *engine.View, rev int64) {
	needs := w.next.Main
	if n := len(w.pins); n > 0 {
		needs = max(needs, w.pins[n-1].Rev()+1)
	}
	if needs < rev {
		w.pins = append(w.pins, v)
	}
}

func (w *watch) maxPending() int { return 4 * w.max }

// markSent records that w's events were just put in a Response. Only a
// watch that asked for progress notifications reads the time (see
// queueProgress): the clock is not read per Response for the others.
func (w *watch) markSent() {
	if w.progress {
		w.lastSent = time.Now()
	}
}

func (w *watch) contains(key []byte) bool {
	if w.one {
		return bytes.Equal(key, w.key)
	}
	return bytes.Compare(key, w.key) >= 0 && endAfter(w.end, key)
}

// wants reports whether the watch's filters let ev through.
func (w *watch) wants(ev kv.Event) bool {
	return !(ev.Type == kv.Put && w.noPut) && !(ev.Type == kv.Delete && w.noDelete)
}

// Watcher is a stream of watches sharing one channel of Responses: the
// seed's Watcher, with etcd's watch features. It is safe for concurrent use.
//
// Each Watcher has one goroutine that sends its Responses; a receiver that
// stops reading only holds up that goroutine, never writers, other Watchers
// or compaction. While a watch keeps up it gets events as they are written,
// holding at most 4x its MaxEvents of them; a watch whose receiver falls
// further behind sends those and then reads history instead, so its memory
// does not grow with its backlog. Compaction does not end a running watch:
// one behind it keeps the history it still needs (see the package doc).
//
// Memory: a Watcher costs its goroutine (a few KiB of stack) and its
// channel; a watch costs its range's keys and a few hundred bytes (measured
// in the package doc), and up to 4x MaxEvents pending events while it
// keeps up.
type Watcher struct {
	h    *hub
	ch   chan Response
	wake chan struct{}
	stop chan struct{}
	done chan struct{}

	// Guarded by hub.mu:
	watches     map[int64]*watch
	lastID      int64
	ready       []*watch // synced watches with pending events
	readyArr    []*watch // the array ready is in, from its front (pushReady)
	unsynced    []*watch // watches reading history
	control     []Response
	progressReq int64 // RequestProgress's target revision; 0 if none
	closed      bool
	// inWake is true while the Watcher is in the list of Watchers a
	// dispatch will deliver to (see deliver), so it is put there once.
	inWake bool
	// sending is true from when the sender goroutine picks work (a Response
	// or a history read) until it has sent it: the hub only delivers to
	// the channel itself while it is false, so each watch's events stay in
	// order.
	sending bool
}

// Chan returns the channel of Responses. It is closed by Close.
func (s *Watcher) Chan() <-chan Response { return s.ch }

func (s *Watcher) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Watch is the seed's call: it watches key, or every key with the prefix
// key if prefix is true, from startRev (<= 0: the next revision). Errors,
// which the seed's signature cannot return, arrive as a canceled Response
// with WatchID -1.
func (s *Watcher) Watch(key []byte, prefix bool, startRev int64) CancelFunc {
	req := Request{Key: key, StartRev: startRev}
	if prefix {
		req.End = prefixEnd(key)
	}
	id, err := s.WatchRange(req)
	if err != nil {
		s.h.mu.Lock()
		if !s.closed {
			s.control = append(s.control, Response{WatchID: -1, Canceled: true, Err: err})
		}
		s.h.mu.Unlock()
		s.poke()
		return func() {}
	}
	return func() { s.Cancel(id) }
}

// WatchRange starts a watch and returns its ID. Errors: kv.ErrEmptyKey (nil
// End with an empty Key), kv.ErrEmptyRange (End <= Key), kv.ErrDuplicateWatchID,
// kv.ErrClosed.
func (s *Watcher) WatchRange(req Request) (int64, error) {
	switch {
	case req.End == nil && len(req.Key) == 0:
		return 0, kv.ErrEmptyKey
	case len(req.End) > 0 && bytes.Compare(req.End, req.Key) <= 0:
		return 0, fmt.Errorf("watch [%q, %q): %w", req.Key, req.End, kv.ErrEmptyRange)
	}
	w := &watch{
		key:      bytes.Clone(req.Key),
		one:      req.End == nil,
		prevKV:   req.PrevKV,
		noPut:    req.NoPut,
		noDelete: req.NoDelete,
		progress: req.ProgressNotify,
		max:      req.MaxEvents,
		s:        s,
	}
	w.markSent()
	if w.key == nil {
		w.key = []byte{}
	}
	if len(req.End) > 0 {
		w.end = bytes.Clone(req.End)
	}
	if w.max <= 0 {
		w.max = s.h.opts.maxEvents()
	}
	h := s.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.closed {
		return 0, kv.ErrClosed
	}
	if req.ID != 0 {
		if _, ok := s.watches[req.ID]; ok {
			return 0, fmt.Errorf("watch ID %d: %w", req.ID, kv.ErrDuplicateWatchID)
		}
		w.id = req.ID
	} else {
		for {
			s.lastID++
			if _, ok := s.watches[s.lastID]; !ok {
				break
			}
		}
		w.id = s.lastID
	}
	h.seq++
	w.seq = int64(h.seq)
	s.watches[w.id] = w

	start := req.StartRev
	if start <= 0 {
		start = h.store.Rev() + 1
	}
	h.fastForward(start)
	if start >= h.nextRev {
		// Nothing at or after start has been dispatched: keep up from here.
		h.addSynced(w, start)
	} else {
		w.next = kv.Revision{Main: start}
		if h.inflight != nil {
			// A compaction has not taken effect yet: this watch started
			// before it, so it keeps the history it needs too.
			w.pin(h.inflight, h.inflightRev)
		}
		s.unsynced = append(s.unsynced, w)
		s.poke()
	}
	return w.id, nil
}

// Cancel ends the watch id: no more of its events are put in Responses
// (one already being sent may still arrive), and a last Response with
// Canceled and kv.ErrCanceled follows. An ID that is not open is
// kv.ErrWatchNotFound.
func (s *Watcher) Cancel(id int64) error {
	h := s.h
	h.mu.Lock()
	defer h.mu.Unlock()
	w, ok := s.watches[id]
	if !ok || s.closed {
		return fmt.Errorf("watch %d: %w", id, kv.ErrWatchNotFound)
	}
	s.end(w, Response{WatchID: id, Canceled: true, Err: kv.ErrCanceled})
	return nil
}

// end removes w and queues its last Response. hub.mu is held.
func (s *Watcher) end(w *watch, last Response) {
	h := s.h
	if w.synced {
		h.unindex(w)
	}
	h.pending -= len(w.pending)
	w.pending, w.pins = nil, nil
	w.synced = false
	w.canceled = true
	delete(s.watches, w.id)
	last.Revision = h.nextRev - 1
	s.control = append(s.control, last)
	s.poke()
}

// RequestProgress asks for a progress Response (WatchID -1) with a
// revision up to which every watch of the Watcher has been sent its events;
// it is at least the store's revision when RequestProgress was called. It is
// sent once no watch has events waiting or history to read.
func (s *Watcher) RequestProgress() {
	h := s.h
	h.mu.Lock()
	if !s.closed {
		s.progressReq = max(h.store.Rev(), 1)
		if h.progressWaiters == nil {
			h.progressWaiters = map[*Watcher]struct{}{}
		}
		h.progressWaiters[s] = struct{}{}
		h.fastForward(s.progressReq + 1)
	}
	h.mu.Unlock()
	s.poke()
}

// Close cancels every watch, stops the Watcher's goroutine, waits for it,
// and closes the channel. Responses not yet received are dropped.
func (s *Watcher) Close() {
	h := s.h
	h.mu.Lock()
	if s.closed {
		h.mu.Unlock()
		<-s.done
		return
	}
	s.closed = true
	for _, w := range s.watches {
		if w.synced {
			h.unindex(w)
		}
		h.pending -= len(w.pending)
		w.pending, w.pins = nil, nil
		w.canceled = true
	}
	s.watches = nil
	delete(h.watchers, s)
	delete(h.progressWaiters, s)
	h.mu.Unlock()
	close(s.stop)
	<-s.done
	close(s.ch)
}

// run sends the Watcher's Responses until Close.
func (s *Watcher) run() {
	defer close(s.done)
	var tick <-chan time.Time
	if iv := s.h.opts.ProgressInterval; iv > 0 {
		t := time.NewTicker(iv)
		defer t.Stop()
		tick = t.C
	}
	for {
		resp, ok := s.next()
		if !ok {
			select {
			case <-s.wake:
			case <-tick:
				s.queueProgress()
			case <-s.stop:
				return
			}
			continue
		}
		// Count before the send so that a receiver that has an event in
		// hand always finds it in Stats.EventsSent.
		n := uint64(len(resp.Events))
		s.h.sent.Add(n)
		select {
		case s.ch <- resp:
		case <-s.stop:
			s.h.sent.Add(-n)
			return
		}
		s.h.mu.Lock()
		s.sending = false
		s.h.mu.Unlock()
	}
}

// deliverDirect sends what s has ready straight to its channel while the
// channel has room and the sender goroutine is idle, sparing a goroutine
// wake-up per Response. It reports whether nothing is left for the sender.
// hub.mu is held.
func (s *Watcher) deliverDirect() bool {
	h := s.h
	if s.closed || s.sending || len(s.control) > 0 || len(s.unsynced) > 0 || s.progressReq > 0 {
		return false
	}
	for {
		w := s.firstReady()
		if w == nil {
			return true
		}
		r, rest := s.readyResponse(w)
		n := uint64(len(r.Events))
		h.sent.Add(n) // before the send, as in run
		select {
		case s.ch <- r:
		default:
			h.sent.Add(-n)
			return false // full: the sender takes over
		}
		s.took(w, r, rest)
	}
}

// firstReady returns the first synced watch with pending events, dropping
// from s.ready those that have none. hub.mu is held.
func (s *Watcher) firstReady() *watch {
	for len(s.ready) > 0 {
		w := s.ready[0]
		if !w.canceled && w.synced && len(w.pending) > 0 {
			return w
		}
		w.ready = false
		s.popReady()
	}
	return nil
}

// pushReady appends w to s.ready. An empty list starts again at the
// front of its array, so the Watcher reuses one array however many watches
// it takes from the front (popReady). hub.mu is held.
func (s *Watcher) pushReady(w *watch) {
	if len(s.ready) == 0 {
		s.ready = s.readyArr[:0]
	}
	c := cap(s.ready)
	s.ready = append(s.ready, w)
	if cap(s.ready) != c {
		s.readyArr = s.ready[:0] // a new array: remember its front
	}
}

// popReady drops the first of s.ready. hub.mu is held.
func (s *Watcher) popReady() {
	s.ready[0] = nil
	s.ready = s.ready[1:]
}

// readyResponse makes a Response of w's pending events, up to its cap; rest
// is what would be left. hub.mu is held.
func (s *Watcher) readyResponse(w *watch) (Response, []kv.Event) {
	batch, rest := cut(w.pending, w.max)
	return Response{WatchID: w.id, Events: batch, Revision: s.h.nextRev - 1}, rest
}

// took records that r, made by readyResponse, left w's pending events
// rest. hub.mu is held.
func (s *Watcher) took(w *watch, r Response, rest []kv.Event) {
	s.h.pending -= len(r.Events)
	w.pending = rest
	w.markSent()
	if len(rest) == 0 {
		w.ready = false
		s.popReady()
	}
}

// next returns the next Response to send, if there is one now.
func (s *Watcher) next() (Response, bool) {
	h := s.h
	for {
		h.mu.Lock()
		if s.closed {
			s.sending = false
			h.mu.Unlock()
			return Response{}, false
		}
		s.sending = true
		if len(s.control) > 0 {
			r := s.control[0]
			s.control = s.control[1:]
			if w := s.watches[r.WatchID]; w != nil && r.Progress {
				w.progressQueued = false
			}
			h.mu.Unlock()
			return r, true
		}
		if w := s.firstReady(); w != nil {
			r, rest := s.readyResponse(w)
			s.took(w, r, rest)
			h.mu.Unlock()
			return r, true
		}
		for len(s.unsynced) > 0 && (s.unsynced[0].canceled || s.unsynced[0].synced) {
			s.unsynced = s.unsynced[1:]
		}
		if len(s.unsynced) > 0 {
			w := s.unsynced[0]
			// Round robin: the watch goes to the back while it reads.
			s.unsynced = append(s.unsynced[1:], w)
			if len(w.pending) > 0 {
				r := s.heldResponse(w)
				h.mu.Unlock()
				return r, true
			}
			from := w.next
			v, err := s.historyView(w)
			h.mu.Unlock()
			if r, ok := s.catchUp(w, from, v, err); ok {
				return r, true
			}
			continue
		}
		if s.progressReq > 0 && h.nextRev > s.progressReq {
			s.progressReq = 0
			delete(h.progressWaiters, s)
			r := Response{WatchID: -1, Progress: true, Revision: h.nextRev - 1}
			h.mu.Unlock()
			return r, true
		}
		s.sending = false
		h.mu.Unlock()
		return Response{}, false
	}
}

// heldResponse makes a Response of the events an unsynced watch still
// holds from when it kept up. hub.mu is held.
func (s *Watcher) heldResponse(w *watch) Response {
	batch, rest := cut(w.pending, w.max)
	s.h.pending -= len(batch)
	w.pending = rest
	w.markSent()
	return Response{WatchID: w.id, Events: batch, Revision: batch[len(batch)-1].KV.ModRevision}
}

// historyView returns the view w reads history from: its oldest pin that
// it has not read past, or else the store's current view. It is chosen
// under hub.mu, so a compaction either pinned a view for w before this or
// has not yet taken effect. hub.mu is held.
func (s *Watcher) historyView(w *watch) (*engine.View, error) {
	for len(w.pins) > 0 && w.pins[0].Rev() < w.next.Main {
		w.pins[0] = nil
		w.pins = w.pins[1:]
	}
	if len(w.pins) > 0 {
		return w.pins[0], nil
	}
	w.pins = nil
	return s.h.store.View()
}

// cut splits pending events into a Response's worth, ending at a revision
// boundary unless the first revision alone has more than max events. The
// batch is not a copy: its capacity ends where rest starts, so the hub's
// appends to rest never write into it.
func cut(evs []kv.Event, max int) (batch, rest []kv.Event) {
	n := len(evs)
	if n > max {
		n = max
		for n > 0 && evs[n].KV.ModRevision == evs[n-1].KV.ModRevision {
			n--
		}
		if n == 0 {
			n = max
		}
	}
	batch = evs[:n:n]
	if n == len(evs) {
		return batch, nil
	}
	return batch, evs[n:]
}

// catchUp reads w's events from history in v starting at from, up to its
// cap or scanLimit events read, and returns them as a Response (ok false if
// none matched). When it reaches the end of the store's history and nothing
// newer has been dispatched, w goes back to keeping up. err is the error of
// getting v (the store is closed).
func (s *Watcher) catchUp(w *watch, from kv.Revision, v *engine.View, err error) (Response, bool) {
	h := s.h
	if err != nil {
		h.mu.Lock()
		if !w.canceled {
			s.end(w, Response{WatchID: w.id, Canceled: true, Err: kv.ErrClosed})
		}
		h.mu.Unlock()
		return Response{}, false
	}
	var evs []kv.Event
	pos := kv.Revision{Main: v.Rev() + 1} // where the next read starts
	scanned := 0
	prev := int64(0)
	var readErr error
	for ev, err := range v.Events(from.Main) {
		if err != nil {
			readErr = err
			break
		}
		rev := ev.KV.ModRevision
		if ev.Revision().Less(from) {
			continue
		}
		if rev != prev {
			if len(evs) >= w.max || scanned >= scanLimit {
				pos = kv.Revision{Main: rev}
				break
			}
			prev = rev
		}
		scanned++
		if w.contains(ev.KV.Key) && w.wants(ev) {
			if w.prevKV {
				ev.PrevKV = previous(v, ev)
			}
			evs = append(evs, ev)
		}
	}
	if len(evs) > w.max {
		batch, rest := cut(evs, w.max)
		evs, pos = batch, rest[0].Revision()
	}
	if testHookCatchUpRead != nil {
		testHookCatchUpRead()
	}

	h.mu.Lock()
	defer func() {
		h.mu.Unlock()
		if testHookCatchUpDone != nil {
			testHookCatchUpDone()
		}
	}()
	if w.canceled {
		return Response{}, false
	}
	if readErr != nil {
		r := Response{WatchID: w.id, Canceled: true, Err: kv.ErrCompacted, CompactRevision: v.CompactRev()}
		if !errors.Is(readErr, kv.ErrCompacted) {
			r.Err = readErr
		}
		s.end(w, r)
		return Response{}, false
	}
	w.next = pos
	if pos.Main > v.Rev() {
		h.fastForward(pos.Main)
		if pos.Main >= h.nextRev {
			// Caught up, and the hub has handed out nothing at or after
			// pos: keep up from pos on (revisions the hub hands out below
			// pos were sent here already).
			w.pins = nil
			h.addSynced(w, pos.Main)
		}
	}
	if len(evs) == 0 {
		return Response{}, false
	}
	w.markSent()
	return Response{WatchID: w.id, Events: evs, Revision: v.Rev()}, true
}

// queueProgress queues a progress Response for each synced watch that
// asked for them and has been quiet for the progress interval.
func (s *Watcher) queueProgress() {
	h := s.h
	h.mu.Lock()
	defer h.mu.Unlock()
	iv := h.opts.ProgressInterval
	queued := false
	for _, w := range s.watches {
		if !w.progress || !w.synced || len(w.pending) > 0 || w.progressQueued || time.Since(w.lastSent) < iv {
			continue
		}
		w.progressQueued = true
		w.lastSent = time.Now()
		s.control = append(s.control, Response{WatchID: w.id, Progress: true, Revision: h.nextRev - 1})
		queued = true
	}
	if queued {
		s.poke()
	}
}
