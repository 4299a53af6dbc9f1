package proptest_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/kv"
	"github.com/revkv/revkv/proptest"
	"github.com/revkv/revkv/watch"
	"pgregory.net/rapid"
)

// TestWatch runs a rapid state machine of writers, compactions and
// watchers against the reference model. Watchers watch keys, prefixes and
// ranges from random start revisions (compacted ones included), with small
// caps and channels so that receivers that read late (or only at the
// checks) fall behind and catch up from history; watches are canceled and
// watchers closed at random. At each check every watcher asks for progress
// and is read until it reports the current revision; then each open watch
// must have received exactly the model's history for its range from its
// start, in order, and each ended one a prefix of it and the right error.
func TestWatch(t *testing.T) {
	var actions int
	var slow uint64
	counts, done := map[string]int{}, map[string]int{}
	rapid.Check(t, func(rt *rapid.T) {
		opts := watch.Options{
			MaxEvents: rapid.IntRange(1, 4).Draw(rt, "maxEvents"),
			ChanSize:  rapid.IntRange(1, 2).Draw(rt, "chanSize"),
		}
		ws := watch.New(memory(engine.Options{}), opts)
		defer ws.Close()
		m := &watchMachine{s: ws, m: proptest.NewModel(), maxEvents: opts.MaxEvents}
		// Start with watchers and watches, so that most steps have
		// something to act on.
		for range 2 {
			m.newWatcher(rt)
		}
		for range 3 {
			m.watch(rt)
		}
		// Writes are drawn more often than checks, so receivers that are
		// not drained fall behind between checks.
		acts := map[string]func(*rapid.T){
			"put":          m.put,
			"put2":         m.put,
			"burst":        m.burst,
			"delete":       m.delete,
			"txn":          m.txn,
			"compact":      m.compact,
			"newWatcher":   m.newWatcher,
			"watch":        m.watch,
			"watch2":       m.watch,
			"cancel":       m.cancel,
			"drain":        m.drain,
			"closeWatcher": m.closeWatcher,
			"check":        m.check,
		}
		for name, f := range acts {
			acts[name] = func(rt *rapid.T) { counts[name]++; f(rt); done[name]++; actions++ }
		}
		rt.Repeat(acts)
		m.check(rt)
		slow += ws.Stats().SlowReceivers
	})
	t.Logf("%d actions; started %v; completed %v; slow receivers %d", actions, counts, done, slow)
	if f := rapidChecks(); f == "150" && actions < 2000 {
		t.Errorf("ran %d actions, want at least 2000", actions)
	}
}

type expectWatch struct {
	key, end         []byte
	start            int64
	noPut, noDelete  bool
	compactedAtStart bool
	canceledByUs     bool
	got              []kv.Event
	last             *watch.Response // the Canceled response, once received
	responses        int
	revResponses     map[int64]map[int]bool // revision -> responses it was in
}

type testWatcher struct {
	max     int // events per Response
	w       *watch.Watcher
	closed  bool
	watches map[int64]*expectWatch
}

type watchMachine struct {
	s         *watch.Store
	m         *proptest.Model
	watchers  []*testWatcher
	maxEvents int
}

func (m *watchMachine) put(t *rapid.T) {
	key, value := []byte(rapid.SampledFrom(keys).Draw(t, "key")), drawValue(t)
	want, _ := m.m.Put(key, value, 0)
	if got, err := m.s.Put(key, value); err != nil || got != want {
		t.Fatalf("Put = %d, %v; model %d", got, err, want)
	}
}

// burst writes many puts in a row, faster than a receiver that is not
// drained can keep up with.
func (m *watchMachine) burst(t *rapid.T) {
	for range rapid.IntRange(5, 30).Draw(t, "burst") {
		m.put(t)
	}
}

func (m *watchMachine) delete(t *rapid.T) {
	key, end := drawRange(t)
	if end == nil && len(key) == 0 {
		key = []byte("a")
	}
	wantN, _, _ := m.m.DeleteRange(key, end)
	if n, _, err := m.s.DeleteRange(key, end); err != nil || n != wantN {
		t.Fatalf("DeleteRange = %d, %v; model %d", n, err, wantN)
	}
}

func (m *watchMachine) txn(t *rapid.T) {
	id, err := m.s.TxnBegin()
	if err != nil {
		t.Fatal(err)
	}
	m.m.TxnBegin()
	for range rapid.IntRange(1, 5).Draw(t, "ops") {
		key := []byte(rapid.SampledFrom(keys).Draw(t, "key"))
		if rapid.IntRange(0, 2).Draw(t, "op") > 0 {
			m.m.TxnPut(key, []byte("t"), 0)
			m.s.TxnPut(id, key, []byte("t"))
		} else {
			m.m.TxnDeleteRange(key, nil)
			m.s.TxnDeleteRange(id, key, nil)
		}
	}
	m.m.TxnEnd()
	if err := m.s.TxnEnd(id); err != nil {
		t.Fatal(err)
	}
}

func (m *watchMachine) compact(t *rapid.T) {
	if m.m.CompactRev() >= m.m.Rev() {
		t.Skip("nothing to compact")
	}
	rev := rapid.Int64Range(m.m.CompactRev()+1, m.m.Rev()).Draw(t, "compactRev")
	m.m.Compact(rev)
	if err := m.s.Compact(rev); err != nil {
		t.Fatalf("Compact(%d): %v", rev, err)
	}
}

func (m *watchMachine) newWatcher(t *rapid.T) {
	open := 0
	for _, w := range m.watchers {
		if !w.closed {
			open++
		}
	}
	if open >= 3 {
		t.Skip("enough watchers")
	}
	m.watchers = append(m.watchers, &testWatcher{w: m.s.NewWatcher(), watches: map[int64]*expectWatch{}, max: m.maxEvents})
}

func (m *watchMachine) open(t *rapid.T) *testWatcher {
	var open []*testWatcher
	for _, w := range m.watchers {
		if !w.closed {
			open = append(open, w)
		}
	}
	if len(open) == 0 {
		t.Skip("no open watcher")
	}
	return open[rapid.IntRange(0, len(open)-1).Draw(t, "watcher")]
}

func (m *watchMachine) watch(t *rapid.T) {
	tw := m.open(t)
	key := []byte(rapid.SampledFrom(keys).Draw(t, "key"))
	req := watch.Request{Key: key}
	switch rapid.IntRange(0, 3).Draw(t, "kind") {
	case 1: // prefix
		req.End = append(bytes.Clone(key[:len(key)-1]), key[len(key)-1]+1)
	case 2: // from key
		req.End = []byte{}
	case 3: // range
		req.Key = nil
		req.End = []byte(rapid.SampledFrom(keys).Draw(t, "end"))
	}
	req.StartRev = rapid.Int64Range(-1, m.m.Rev()+2).Draw(t, "start")
	req.NoPut = rapid.IntRange(0, 5).Draw(t, "noPut") == 0
	req.NoDelete = rapid.IntRange(0, 5).Draw(t, "noDelete") == 0
	id, err := tw.w.WatchRange(req)
	if err != nil {
		t.Fatalf("WatchRange(%+v): %v", req, err)
	}
	start := req.StartRev
	if start <= 0 {
		start = m.m.Rev() + 1
	}
	tw.watches[id] = &expectWatch{
		key: req.Key, end: req.End, start: start, noPut: req.NoPut, noDelete: req.NoDelete,
		compactedAtStart: start < m.m.CompactRev(),
	}
}

func (m *watchMachine) cancel(t *rapid.T) {
	tw := m.open(t)
	var ids []int64
	for id, e := range tw.watches {
		if !e.canceledByUs && e.last == nil {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		t.Skip("no watch to cancel")
	}
	id := rapid.SampledFrom(ids).Draw(t, "id")
	if err := tw.w.Cancel(id); err != nil && !errors.Is(err, kv.ErrWatchNotFound) {
		t.Fatalf("Cancel(%d): %v", id, err)
	}
	tw.watches[id].canceledByUs = true
}

// record files one Response under its watch.
func (tw *testWatcher) record(t *rapid.T, r watch.Response) {
	if r.Progress {
		return
	}
	e := tw.watches[r.WatchID]
	if e == nil {
		t.Fatalf("response for unknown watch %d: %+v", r.WatchID, r)
	}
	if e.last != nil {
		t.Fatalf("watch %d: response %+v after its last one", r.WatchID, r)
	}
	if len(r.Events) > tw.max {
		t.Fatalf("watch %d: response of %d events, cap %d", r.WatchID, len(r.Events), tw.max)
	}
	if e.revResponses == nil {
		e.revResponses = map[int64]map[int]bool{}
	}
	for _, ev := range r.Events {
		rev := ev.KV.ModRevision
		if e.revResponses[rev] == nil {
			e.revResponses[rev] = map[int]bool{}
		}
		e.revResponses[rev][e.responses] = true
	}
	e.responses++
	e.got = append(e.got, r.Events...)
	if r.Canceled {
		e.last = &r
	}
}

// drain reads what the watcher has ready, up to a few Responses.
func (m *watchMachine) drain(t *rapid.T) {
	tw := m.open(t)
	for range rapid.IntRange(1, 4).Draw(t, "n") {
		select {
		case r := <-tw.w.Chan():
			tw.record(t, r)
		default:
			return
		}
	}
}

func (m *watchMachine) closeWatcher(t *rapid.T) {
	tw := m.open(t)
	defer m.newWatcher(t) // keep watchers around
	tw.w.Close()
	tw.closed = true
	for r := range tw.w.Chan() {
		tw.record(t, r)
	}
	for id, e := range tw.watches {
		m.verify(t, id, e, false)
	}
}

// check reads every open watcher up to a progress report at the current
// revision, then verifies every watch.
func (m *watchMachine) check(t *rapid.T) {
	target := m.m.Rev()
	for _, tw := range m.watchers {
		if tw.closed {
			continue
		}
		tw.w.RequestProgress()
		deadline := time.After(20 * time.Second)
	read:
		for {
			select {
			case r := <-tw.w.Chan():
				if r.Progress && r.WatchID == -1 {
					if r.Revision < target {
						t.Fatalf("progress at %d, store at %d", r.Revision, target)
					}
					break read
				}
				tw.record(t, r)
			case <-deadline:
				t.Fatalf("no progress report in 20s")
			}
		}
		for id, e := range tw.watches {
			m.verify(t, id, e, true)
		}
	}
}

func (e *expectWatch) matches(ev kv.Event) bool {
	k := ev.KV.Key
	switch {
	case e.end == nil:
		if !bytes.Equal(k, e.key) {
			return false
		}
	case len(e.end) == 0:
		if bytes.Compare(k, e.key) < 0 {
			return false
		}
	default:
		if bytes.Compare(k, e.key) < 0 || bytes.Compare(k, e.end) >= 0 {
			return false
		}
	}
	return !(ev.Type == kv.Put && e.noPut) && !(ev.Type == kv.Delete && e.noDelete)
}

// verify checks one watch's received events against the model. complete
// says the watcher reported progress at the current revision, so a watch
// still open must have everything.
func (m *watchMachine) verify(t *rapid.T, id int64, e *expectWatch, complete bool) {
	all, _ := m.m.EventsView(e.start, m.m.Rev(), -1)
	var want []kv.Event
	for _, ev := range all {
		if e.matches(ev) {
			want = append(want, ev)
		}
	}
	what := fmt.Sprintf("watch %d [%q, %q) from %d", id, e.key, e.end, e.start)
	perRev := map[int64]int{}
	for _, ev := range want {
		perRev[ev.KV.ModRevision]++
	}
	for rev, rs := range e.revResponses {
		if len(rs) > 1 && perRev[rev] <= m.maxEvents {
			t.Fatalf("%s: revision %d (%d events, cap %d) split over %d responses", what, rev, perRev[rev], m.maxEvents, len(rs))
		}
	}
	if len(e.got) > len(want) {
		t.Fatalf("%s: got %d events, model has %d: %v", what, len(e.got), len(want), e.got)
	}
	for i, ev := range e.got {
		w := want[i]
		if ev.Type != w.Type || ev.Sub != w.Sub || !bytes.Equal(ev.KV.Key, w.KV.Key) || !bytes.Equal(ev.KV.Value, w.KV.Value) ||
			ev.KV.ModRevision != w.KV.ModRevision || ev.KV.CreateRevision != w.KV.CreateRevision || ev.KV.Version != w.KV.Version {
			t.Fatalf("%s: event %d = %+v, model %+v", what, i, ev, w)
		}
	}
	if e.last != nil {
		switch {
		case errors.Is(e.last.Err, kv.ErrCanceled) && e.canceledByUs:
		case errors.Is(e.last.Err, kv.ErrClosed):
		case errors.Is(e.last.Err, kv.ErrCompacted):
			// Only a watch that starts below the compacted revision is
			// ended by compaction: a running one keeps the history it
			// needs.
			if !e.compactedAtStart {
				t.Fatalf("%s: a running watch was ended by compaction after %d events (compacted %d)", what, len(e.got), e.last.CompactRevision)
			}
			if len(e.got) > 0 {
				t.Fatalf("%s: started below the compacted revision but got %d events", what, len(e.got))
			}
			if e.last.CompactRevision <= e.start {
				t.Fatalf("%s: ErrCompacted with compacted revision %d", what, e.last.CompactRevision)
			}
		default:
			t.Fatalf("%s: ended with %+v", what, e.last)
		}
		return
	}
	if !complete || e.canceledByUs {
		return
	}
	if e.compactedAtStart {
		t.Fatalf("%s: started below the compacted revision, still open", what)
	}
	if len(e.got) != len(want) {
		t.Fatalf("%s: got %d events, model %d", what, len(e.got), len(want))
	}
}

var keys = []string{"a", "ab", "b", "b\x00", "c", "d"}

func drawValue(t *rapid.T) []byte { return rapid.SliceOfN(rapid.Byte(), 0, 3).Draw(t, "value") }

func drawRange(t *rapid.T) (key, end []byte) {
	key = []byte(rapid.SampledFrom(keys).Draw(t, "key"))
	switch rapid.IntRange(0, 2).Draw(t, "endKind") {
	case 0:
		return key, nil
	case 1:
		return key, []byte{}
	}
	return key, []byte(rapid.SampledFrom(keys).Draw(t, "end"))
}
