package watch

import (
	"math"
	"sync"
	"sync/atomic"

	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/kv"
)

// dispatchBatch is how many events the dispatcher hands out before it
// releases the hub's lock (between two revisions), so Watchers are not held
// up by a burst of history.
const dispatchBatch = 1024

// hub delivers new revisions to the synced watches of every Watcher of one
// store. Its goroutine (run) wakes when the store's revision moves, reads
// the new revisions' events from a view, and appends each event to the
// pending list of every synced watch whose range holds the key, found
// through the index. It never blocks on a receiver: delivery is the
// Watchers' work.
type hub struct {
	store *engine.Store
	opts  Options

	mu sync.Mutex
	// Guarded by mu:
	idx      index
	nextRev  int64                 // every revision below it has been handed to synced watches
	watchers map[*Watcher]struct{} // nil until the first Watcher
	// progressWaiters have asked for progress and wait for the dispatch
	// to pass their target revision; nil until the first does.
	progressWaiters map[*Watcher]struct{}
	seq             uint64
	closed          bool
	pending         int
	// dispatched, if not nil, is closed when nextRev next moves: made only
	// when someone waits (waitDispatched).
	dispatched chan struct{}
	// inflight is the view beforeCompact took for a compaction to
	// inflightRev that has not yet taken effect; nil otherwise.
	inflight    *engine.View
	inflightRev int64

	// plain and withPrev hold the events dispatched to watches, without
	// and with their previous KV (see arena). Only the hub's goroutine
	// uses them.
	plain, withPrev arena

	// wakeBuf is dispatchNew's list of Watchers to deliver to, reused:
	// with many Watchers it is most of what a dispatch allocates.
	// Only the hub's goroutine uses it.
	wakeBuf []*Watcher

	// started says the run loop was started (by the first Watcher, see
	// start): a store nobody watches pays for no goroutine. kick, stop
	// and done are made with it. Guarded by mu.
	started bool
	kick    chan struct{} // wakes an idle run loop: a watch became synced
	stop    chan struct{}
	done    chan struct{}

	slow, sent atomic.Uint64
}

// init readies h for store s. The run loop is not started: see start.
func (h *hub) init(s *engine.Store, opts Options) {
	h.store = s
	h.opts = opts
	h.nextRev = s.Rev() + 1
}

// start starts the run loop, once, when the first Watcher is made: until
// then no watch exists, so no revision is owed to anyone. Close stops it
// (close). mu is held and the hub is not closed.
func (h *hub) start() {
	if h.started {
		return
	}
	h.started = true
	h.kick = make(chan struct{}, 1)
	h.stop = make(chan struct{})
	h.done = make(chan struct{})
	go h.run()
}

func (h *hub) run() {
	defer close(h.done)
	for {
		h.mu.Lock()
		idle := h.idx.len() == 0
		after := h.nextRev - 1
		h.mu.Unlock()
		if idle {
			// No watch keeps up, so no revision is owed to anyone: sleep
			// until one does, rather than wake on every write.
			select {
			case <-h.kick:
			case <-h.stop:
				return
			}
			continue
		}
		select {
		case <-h.store.Notify(after):
		case <-h.kick:
		case <-h.stop:
			return
		}
		if !h.dispatchNew() {
			<-h.stop // the store is closed: nothing more will come
			return
		}
	}
}

// dispatchNew hands the revisions written since the last call to the synced
// watches. It returns false if the store is closed.
func (h *hub) dispatchNew() bool {
	v, err := h.store.View()
	if err != nil {
		return false
	}
	h.mu.Lock()
	from := h.nextRev
	h.mu.Unlock()
	if from > v.Rev() {
		return true
	}
	wake := h.wakeBuf[:0] // only the hub's goroutine dispatches
	var overflow []*watch
	h.mu.Lock()
	n := 0
	prev := int64(0) // revision of the previous event
	for ev, err := range v.Events(from) {
		if err != nil {
			// Compacted past what was dispatched (the engine was compacted
			// directly, not through Store.Compact): every synced watch
			// missed events, so each goes back to history, where it will
			// find kv.ErrCompacted.
			h.desyncAll(kv.Revision{Main: from})
			break
		}
		if rev := ev.KV.ModRevision; rev != prev {
			// Every revision below rev is handed out: a safe place to let
			// Watchers in.
			if n >= dispatchBatch {
				h.advance(rev)
				wake = deliver(wake)
				h.mu.Unlock()
				wakeAll(wake)
				wake = wake[:0]
				h.mu.Lock()
				n = 0
			}
			prev = rev
		}
		n++
		// The event, without and with its previous KV, is stored at most
		// once (in h.plain or h.withPrev) for all the watches that get it.
		plain, withPrev := -1, -1
		h.idx.stab(ev.KV.Key, func(w *watch) {
			if ev.KV.ModRevision < w.minRev || !w.wants(ev) {
				return
			}
			a, at := &h.plain, &plain
			if w.prevKV {
				a, at = &h.withPrev, &withPrev
			}
			if *at < 0 {
				e := ev
				if w.prevKV {
					e.PrevKV = previous(v, ev)
				}
				*at = a.add(e)
			}
			if len(w.pending) == 0 && !w.ready {
				w.ready = true
				w.s.pushReady(w)
				if !w.s.inWake {
					// Once per Watcher: it has many watches on the key.
					w.s.inWake = true
					wake = append(wake, w.s)
				}
			}
			w.pending = a.extend(w.pending, *at)
			h.pending++
			if len(w.pending) == w.maxPending() {
				overflow = append(overflow, w)
			}
		})
		// Not inside stab: desync changes the index stab walks.
		for _, w := range overflow {
			h.desync(w, h.trimPending(w))
			wake = append(wake, w.s)
		}
		overflow = overflow[:0]
	}
	h.advance(v.Rev() + 1)
	wake = deliver(wake)
	h.mu.Unlock()
	wakeAll(wake)
	clear(wake)
	h.wakeBuf = wake[:0]
	return true
}

// advance records that every revision below next has been handed out. mu
// is held.
func (h *hub) advance(next int64) {
	if next <= h.nextRev {
		return
	}
	h.nextRev = next
	if h.dispatched != nil {
		close(h.dispatched)
		h.dispatched = nil
	}
	for s := range h.progressWaiters {
		if next > s.progressReq {
			s.poke()
		}
	}
}

// waitDispatched waits until revision rev has been handed to the synced
// watches, or the hub or the store is closed.
func (h *hub) waitDispatched(rev int64) {
	for {
		h.mu.Lock()
		h.fastForward(rev + 1)
		if h.nextRev > rev || h.closed || !h.started {
			// Not started: no watch was ever made, so fastForward has
			// moved nextRev as far as the store's revision.
			h.mu.Unlock()
			return
		}
		if h.dispatched == nil {
			h.dispatched = make(chan struct{})
		}
		ch, done := h.dispatched, h.done
		h.mu.Unlock()
		select {
		case <-ch:
		case <-done:
			return
		case <-h.store.Notify(math.MaxInt64):
			// Closed (or just written: look again). A closed store
			// dispatches nothing more.
			if _, err := h.store.View(); err != nil {
				return
			}
		}
	}
}

// beforeCompact runs in the engine's Compact(rev) before the compaction
// takes effect (engine.Store.OnCompact). A watch is ended by compaction
// only if the history it needs is gone, so first every revision up to rev
// is handed to the synced watches (they then need nothing below rev), and
// then every watch that will read history below rev keeps a view taken
// now, before the compaction, which holds that history for it until it
// has read it. A watch started before the compaction takes effect gets
// the view too (inflight); the returned function, run once it has taken
// effect, drops it from the hub.
func (h *hub) beforeCompact(rev int64) func() {
	h.waitDispatched(rev)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil
	}
	v, err := h.store.View()
	if err != nil {
		return nil
	}
	for s := range h.watchers {
		for _, w := range s.watches {
			if !w.synced {
				w.pin(v, rev)
			}
		}
	}
	h.inflight = v
	h.inflightRev = rev
	return func() {
		h.mu.Lock()
		if h.inflight == v {
			h.inflight = nil
		}
		h.mu.Unlock()
	}
}

// fastForward moves nextRev up to next (at most the store's next revision)
// when no watch is synced: every revision below it is then handed to every
// synced watch, vacuously. An idle hub thus has no history to skip when a
// watch joins. mu is held.
func (h *hub) fastForward(next int64) {
	if h.idx.len() == 0 {
		h.advance(min(next, h.store.Rev()+1))
	}
}

// addSynced puts w in the index, to get events from revision from on, and
// wakes the run loop if it was idle. mu is held.
func (h *hub) addSynced(w *watch, from int64) {
	w.synced, w.minRev = true, from
	h.idx.add(w)
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// unindex takes a synced watch out of the index. When it was the last one,
// no revision is owed to anyone any more: fast-forward, so that progress
// requests waiting on revisions the (now idle) run loop will not dispatch
// are answered. mu is held.
func (h *hub) unindex(w *watch) {
	h.idx.remove(w)
	if h.idx.len() == 0 {
		h.fastForward(h.store.Rev() + 1)
	}
}

// desync moves a synced watch back to reading history from position from,
// once it has sent the pending events it holds (all before from). mu is
// held.
func (h *hub) desync(w *watch, from kv.Revision) {
	h.unindex(w)
	w.synced = false
	w.next = from
	w.s.unsynced = append(w.s.unsynced, w)
	h.slow.Add(1)
}

// trimPending drops from a watch's pending events those of the last
// revision, which the dispatch may not have handed out whole, and returns
// that revision: the watch keeps whole revisions and reads the rest from
// history, so no revision is split between the two. mu is held.
func (h *hub) trimPending(w *watch) kv.Revision {
	last := w.pending[len(w.pending)-1].KV.ModRevision
	n := len(w.pending)
	for n > 0 && w.pending[n-1].KV.ModRevision == last {
		n--
	}
	h.pending -= len(w.pending) - n
	// Not cleared: the dropped events may be shared (see dispatchNew).
	// Clipped, so that the next append does not write over them.
	w.pending = w.pending[:n:n]
	return kv.Revision{Main: last}
}

// desyncAll desyncs every synced watch. mu is held.
func (h *hub) desyncAll(from kv.Revision) {
	for s := range h.watchers {
		for _, w := range s.watches {
			if w.synced {
				h.desync(w, from)
			}
		}
	}
}

// deliver hands what the dispatch made ready to the Watchers: straight to
// the channel of an idle one with room, else by waking its sender. mu is
// held.
func deliver(ws []*Watcher) []*Watcher {
	wake := ws[:0]
	for _, s := range ws {
		s.inWake = false
		if !s.deliverDirect() {
			wake = append(wake, s)
		}
	}
	return wake
}

func wakeAll(ws []*Watcher) {
	for _, s := range ws {
		s.poke()
	}
}

// previous returns the key's value before the event's revision, if it
// existed and that revision is still readable in v.
func previous(v *engine.View, ev kv.Event) *kv.KeyValue {
	res, err := v.Range(ev.KV.Key, nil, engine.RangeOptions{Rev: ev.KV.ModRevision - 1})
	if err != nil || len(res.KVs) == 0 {
		return nil
	}
	return &res.KVs[0]
}

func (h *hub) newWatcher() *Watcher {
	s := &Watcher{
		h:       h,
		ch:      make(chan Response, h.opts.chanSize()),
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		watches: map[int64]*watch{},
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		s.closed = true
		close(s.done)
		close(s.ch)
		return s
	}
	h.start()
	if h.watchers == nil {
		h.watchers = map[*Watcher]struct{}{}
	}
	h.watchers[s] = struct{}{}
	h.mu.Unlock()
	go s.run()
	return s
}

// close closes every Watcher and stops the hub. It returns false if the hub
// was already closed.
func (h *hub) close() bool {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return false
	}
	h.closed = true
	started := h.started // no Watcher, and so no run loop, starts after closed
	ws := make([]*Watcher, 0, len(h.watchers))
	for s := range h.watchers {
		ws = append(ws, s)
	}
	h.mu.Unlock()
	for _, s := range ws {
		s.Close()
	}
	if started {
		close(h.stop)
		<-h.done
	}
	return true
}

func (h *hub) stats() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := Stats{
		Watchers:       len(h.watchers),
		Synced:         h.idx.len(),
		Pending:        h.pending,
		SlowReceivers:  h.slow.Load(),
		EventsSent:     h.sent.Load(),
		EventsReceived: eventsReceived.Load(),
	}
	for s := range h.watchers {
		st.CatchingUp += len(s.watches)
	}
	st.CatchingUp -= st.Synced
	return st
}

// arenaChunk is how many events an arena's chunk holds. A chunk stays in
// memory while any watch or Response still holds one of its events: a
// larger chunk means fewer copies for a watch that falls behind across a
// chunk's end, but more memory kept by a slow receiver.
const arenaChunk = 1024

// arena stores dispatched events once for every watch that gets them. Its
// current chunk is append-only: an event, once added, is never written
// again, so watches' pending lists and the Responses made of them (which
// receivers read without the hub's lock) can be slices of the chunk. A
// watch that got every event since its pending list was last emptied (a
// prefix watch on a busy prefix, say) has a pending list that is one run
// of the chunk, and extend grows it in place: many watches on one prefix
// then share one copy of each event, and a burst of events costs them no
// allocation at all.
//
// When a chunk is full, the next one starts with a copy of the old one's
// last events, as many as the longest run that ended at its last event
// (at most half the new chunk): a run there goes on in the new chunk, over
// the copies, instead of being copied into an array of its own for every
// watch that had one. (Without the carried tail, 10,000 watches on one
// prefix that lagged behind a burst each copied their pending events at
// every chunk's end: 117 B allocated per event delivered, in
// BenchmarkPrefixWatches' shape.) Only the hub's goroutine uses an arena.
type arena struct {
	chunk []kv.Event
	// tailRun is the length of the longest run that extend made ending at
	// the chunk's last event (0 once another event is added).
	tailRun int
	// carried is how many events the chunk starts with that are copies of
	// the previous chunk's last ones, and prevLast that chunk's last
	// event (which keeps that chunk in memory until the next one starts).
	carried  int
	prevLast *kv.Event
}

// add appends ev to the current chunk, starting a new one when it is full,
// and returns its index in the chunk.
func (a *arena) add(ev kv.Event) int {
	if len(a.chunk) == cap(a.chunk) {
		a.roll()
	}
	a.chunk = append(a.chunk, ev)
	a.tailRun = 0
	return len(a.chunk) - 1
}

// roll starts a new chunk with the full one's tail (see arena).
func (a *arena) roll() {
	old := a.chunk
	// The first chunks are small, so a store with few events (a fake in
	// a test) does not pay for a full one.
	a.chunk = make([]kv.Event, 0, min(max(2*cap(old), 64), arenaChunk))
	a.carried = min(a.tailRun, cap(a.chunk)/2)
	a.prevLast = nil
	if a.carried > 0 {
		a.chunk = append(a.chunk, old[len(old)-a.carried:]...)
		a.prevLast = &old[len(old)-1]
	}
}

// extend returns pending with the event at index i of the current chunk
// appended. If pending is empty, or is the run of the chunk that ends just
// before i, or the run of the previous chunk that ended it and that this
// one starts with copies of, the result is a run of the chunk, capacity
// clipped at its end so that no append through it writes into the chunk;
// otherwise the event is appended to pending (its own array, or a new one).
func (a *arena) extend(pending []kv.Event, i int) []kv.Event {
	n := len(pending)
	if n == 0 || (i >= n && &a.chunk[i-n] == &pending[0]) || a.continues(pending, i) {
		if i == len(a.chunk)-1 {
			a.tailRun = max(a.tailRun, n+1)
		}
		return a.chunk[i-n : i+1 : i+1]
	}
	return append(pending, a.chunk[i])
}

// continues reports whether pending is a run that ended the previous
// chunk, whose copies this chunk starts with, and i the first event after
// them.
func (a *arena) continues(pending []kv.Event, i int) bool {
	n := len(pending)
	return i == a.carried && n <= a.carried && &pending[n-1] == a.prevLast
}
