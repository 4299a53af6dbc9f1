package watch

import (
	"errors"
	"fmt"
	"github.com/revkv/revkv/internal/leaktest"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/kv"
)

func b(s string) []byte { return []byte(s) }

// memory returns a new in-memory engine store.
func memory() *engine.Store {
	s, err := engine.Open(nil, engine.Options{})
	if err != nil {
		panic(err) // Open with no persister does not fail
	}
	return s
}

func newStore(t *testing.T, opts Options) *Store {
	t.Helper()
	s := New(memory(), opts)
	t.Cleanup(func() { s.Close() })
	return s
}

// recv returns the next Response, failing after a generous timeout (a
// failure, not a synchronisation: tests never sleep to wait for delivery).
func recv(t *testing.T, w *Watcher) Response {
	t.Helper()
	select {
	case r, ok := <-w.Chan():
		if !ok {
			t.Fatal("channel closed")
		}
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no response in 10s")
	}
	return Response{}
}

// events reads Responses until it has n events, and returns them as
// "TYPE key@rev" strings.
func events(t *testing.T, w *Watcher, n int) []string {
	t.Helper()
	var out []string
	for len(out) < n {
		r := recv(t, w)
		if r.Canceled {
			t.Fatalf("canceled after %v: %v", out, r.Err)
		}
		for _, ev := range r.Events {
			out = append(out, fmt.Sprintf("%s %s@%d", ev.Type, ev.KV.Key, ev.KV.ModRevision))
		}
	}
	return out
}

func TestWatchKeyPrefixRange(t *testing.T) {
	s := newStore(t, Options{})
	w := s.NewWatcher()
	defer w.Close()
	w.Watch(b("a"), false, 0)                                  // key a
	w.Watch(b("p/"), true, 0)                                  // prefix p/
	w.WatchRange(Request{Key: b("m"), End: b("o")})            // [m, o)
	w.WatchRange(Request{Key: b("x"), End: []byte{}, ID: 100}) // every key >= x
	for _, k := range []string{"a", "ab", "p/1", "p0", "m", "n9", "o", "x", "zz"} {
		s.Put(b(k), b("v"))
	}
	got := map[int64][]string{}
	for n := 0; n < 6; {
		r := recv(t, w)
		for _, ev := range r.Events {
			got[r.WatchID] = append(got[r.WatchID], string(ev.KV.Key))
			n++
		}
	}
	want := map[int64][]string{1: {"a"}, 2: {"p/1"}, 3: {"m", "n9"}, 100: {"x", "zz"}}
	for id, keys := range want {
		if !slices.Equal(got[id], keys) {
			t.Errorf("watch %d got %q, want %q", id, got[id], keys)
		}
	}
}

func TestWatchFromHistory(t *testing.T) {
	s := newStore(t, Options{})
	s.Put(b("k"), b("1")) // 2
	s.Put(b("k"), b("2")) // 3
	s.DeleteRange(b("k"), nil)
	w := s.NewWatcher()
	defer w.Close()
	w.Watch(b("k"), false, 3)
	s.Put(b("k"), b("3")) // 5
	got := events(t, w, 3)
	if want := []string{"PUT k@3", "DELETE k@4", "PUT k@5"}; !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestWatchFutureStart(t *testing.T) {
	s := newStore(t, Options{})
	w := s.NewWatcher()
	defer w.Close()
	w.Watch(b("k"), false, 4)
	for i := range 4 {
		s.Put(b("k"), []byte{byte('0' + i)})
	}
	if got := events(t, w, 2); !slices.Equal(got, []string{"PUT k@4", "PUT k@5"}) {
		t.Fatalf("got %q", got)
	}
}

func TestWatchCompactedStart(t *testing.T) {
	s := newStore(t, Options{})
	for range 5 {
		s.Put(b("k"), b("v"))
	}
	if err := s.Compact(4); err != nil {
		t.Fatal(err)
	}
	w := s.NewWatcher()
	defer w.Close()
	w.Watch(b("k"), false, 3)
	r := recv(t, w)
	if !r.Canceled || !errors.Is(r.Err, kv.ErrCompacted) || r.CompactRevision != 4 || len(r.Events) != 0 {
		t.Fatalf("got %+v, want a cancel with kv.ErrCompacted at 4", r)
	}
	// Starting at the compacted revision itself is fine.
	w.Watch(b("k"), false, 4)
	if got := events(t, w, 3); !slices.Equal(got, []string{"PUT k@4", "PUT k@5", "PUT k@6"}) {
		t.Fatalf("got %q", got)
	}
}

func TestCancelAndErrors(t *testing.T) {
	s := newStore(t, Options{})
	w := s.NewWatcher()
	defer w.Close()
	cancel := w.Watch(b("k"), false, 0)
	cancel()
	r := recv(t, w)
	if !r.Canceled || !errors.Is(r.Err, kv.ErrCanceled) || r.WatchID != 1 {
		t.Fatalf("after cancel: %+v", r)
	}
	s.Put(b("k"), b("v"))
	if err := w.Cancel(1); !errors.Is(err, kv.ErrWatchNotFound) {
		t.Fatalf("second cancel: %v", err)
	}
	if _, err := w.WatchRange(Request{Key: b("b"), End: b("a")}); !errors.Is(err, kv.ErrEmptyRange) {
		t.Fatalf("end < key: %v", err)
	}
	if _, err := w.WatchRange(Request{}); !errors.Is(err, kv.ErrEmptyKey) {
		t.Fatalf("empty key: %v", err)
	}
	w.WatchRange(Request{Key: b("x"), ID: 7})
	if _, err := w.WatchRange(Request{Key: b("y"), ID: 7}); !errors.Is(err, kv.ErrDuplicateWatchID) {
		t.Fatalf("duplicate id: %v", err)
	}
	// The seed's Watch reports errors on the channel.
	w.Watch(b("b"), false, 0)
	w.Watch(nil, false, 0)
	r = recv(t, w)
	if !r.Canceled || r.WatchID != -1 || !errors.Is(r.Err, kv.ErrEmptyKey) {
		t.Fatalf("seed Watch with an empty key: %+v", r)
	}
}

func TestPrevKVAndFilters(t *testing.T) {
	s := newStore(t, Options{})
	s.Put(b("k"), b("old"))
	w := s.NewWatcher()
	defer w.Close()
	w.WatchRange(Request{Key: b("k"), PrevKV: true})
	w.WatchRange(Request{Key: b("k"), NoPut: true})
	s.Put(b("k"), b("new"))
	s.DeleteRange(b("k"), nil)
	seen := map[int64][]kv.Event{}
	for n := 0; n < 3; {
		r := recv(t, w)
		seen[r.WatchID] = append(seen[r.WatchID], r.Events...)
		n += len(r.Events)
	}
	evs := seen[1]
	if len(evs) != 2 || evs[0].PrevKV == nil || string(evs[0].PrevKV.Value) != "old" || string(evs[1].PrevKV.Value) != "new" {
		t.Fatalf("prevKV watch got %+v", evs)
	}
	if d := seen[2]; len(d) != 1 || d[0].Type != kv.Delete || d[0].PrevKV != nil {
		t.Fatalf("NoPut watch got %+v", d)
	}
}

// A txn's events arrive together, and a response never splits a revision
// unless that revision alone is over the cap.
func TestMaxEventsKeepsRevisionsWhole(t *testing.T) {
	s := newStore(t, Options{MaxEvents: 3})
	w := s.NewWatcher()
	defer w.Close()
	w.Watch(b("k"), true, 0)
	txn := func(n int) {
		id, _ := s.TxnBegin()
		for i := range n {
			s.TxnPut(id, []byte(fmt.Sprintf("k%d", i)), nil)
		}
		s.TxnEnd(id)
	}
	txn(2) // rev 2
	txn(2) // rev 3
	txn(5) // rev 4: alone over the cap
	txn(1) // rev 5
	size := map[int64]int{2: 2, 3: 2, 4: 5, 5: 1}
	inResponses := map[int64]int{}
	for total := 0; total < 10; {
		r := recv(t, w)
		if len(r.Events) > 3 {
			t.Fatalf("response of %d events, cap 3", len(r.Events))
		}
		revs := map[int64]bool{}
		for _, ev := range r.Events {
			revs[ev.KV.ModRevision] = true
		}
		for rev := range revs {
			inResponses[rev]++
		}
		total += len(r.Events)
	}
	for rev, n := range inResponses {
		if size[rev] <= 3 && n != 1 {
			t.Errorf("revision %d (%d events) spread over %d responses", rev, size[rev], n)
		}
	}
	if inResponses[4] < 2 {
		t.Errorf("revision 4 (5 events, cap 3) in %d responses", inResponses[4])
	}
}

func TestProgress(t *testing.T) {
	s := newStore(t, Options{ProgressInterval: 5 * time.Millisecond})
	w := s.NewWatcher()
	defer w.Close()
	w.WatchRange(Request{Key: b("quiet"), ProgressNotify: true})
	s.Put(b("other"), nil)
	s.Put(b("other"), nil)
	// A periodic notification for the quiet watch, eventually at the
	// current revision.
	for {
		r := recv(t, w)
		if !r.Progress || r.WatchID != 1 {
			t.Fatalf("got %+v", r)
		}
		if r.Revision == s.Rev() {
			break
		}
	}
	w2 := s.NewWatcher()
	defer w2.Close()
	w2.Watch(b("k"), false, 0)
	s.Put(b("k"), nil)
	w2.RequestProgress()
	for {
		r := recv(t, w2)
		if r.Progress {
			if r.WatchID != -1 || r.Revision != s.Rev() {
				t.Fatalf("progress %+v, want -1 at %d", r, s.Rev())
			}
			break
		}
	}
}

// A receiver that stops reading does not block writers; when it reads
// again it gets every event exactly once, in order.
func TestSlowReceiverCatchesUp(t *testing.T) {
	s := newStore(t, Options{MaxEvents: 10, ChanSize: 1})
	w := s.NewWatcher()
	defer w.Close()
	w.Watch(b("k"), true, 0)
	const n = 5000
	for i := range n {
		if _, err := s.Put([]byte(fmt.Sprintf("k%d", i%7)), nil); err != nil {
			t.Fatal(err)
		}
	}
	// The hub works beside the writers: let it hand out every revision
	// before looking at what it did with them.
	s.h.waitDispatched(s.Rev())
	st := s.Stats()
	if st.SlowReceivers == 0 {
		t.Errorf("stats %+v: a stalled receiver should have been moved to history", st)
	}
	if st.Pending > 4*10 {
		t.Errorf("%d events pending for one stalled watch, want <= 40", st.Pending)
	}
	next := int64(2)
	for next < n+2 {
		r := recv(t, w)
		for _, ev := range r.Events {
			if ev.KV.ModRevision != next {
				t.Fatalf("event at %d, want %d", ev.KV.ModRevision, next)
			}
			next++
		}
	}
}

// Compaction ends neither a lagging watch nor one that keeps up: both get
// every event. Only a watch that starts below the compacted revision ends
// with ErrCompacted (TestWatchCompactedStart).
func TestCompactionKeepsLaggingWatch(t *testing.T) {
	s := newStore(t, Options{MaxEvents: 1, ChanSize: 1})
	lag := s.NewWatcher()
	defer lag.Close()
	lag.Watch(b("k"), false, 0)
	keep := s.NewWatcher()
	defer keep.Close()
	keep.Watch(b("k"), false, 0)
	got := 0
	for i := range 100 {
		s.Put(b("k"), nil)
		// keep reads everything as it comes.
		for got < i+1 {
			got += len(recv(t, keep).Events)
		}
	}
	if err := s.Compact(s.Rev()); err != nil {
		t.Fatal(err)
	}
	s.Put(b("k"), nil)
	if n := len(recv(t, keep).Events); n != 1 {
		t.Fatalf("keeping-up watch got %d events after compaction", n)
	}
	readAll(t, lag, 2, 101)
}

func TestCloseStopsGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	s := New(memory(), Options{ProgressInterval: time.Millisecond})
	var ws []*Watcher
	for range 10 {
		w := s.NewWatcher()
		w.Watch(b("k"), true, 0)
		ws = append(ws, w)
	}
	s.Put(b("k"), nil)
	ws[0].Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); !errors.Is(err, kv.ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
	for _, w := range ws {
		for range w.Chan() {
		}
	}
	if after := leaktest.Settle(before); after > before {
		t.Fatalf("%d goroutines after Close, %d before", after, before)
	}
	w := s.NewWatcher()
	if _, err := w.WatchRange(Request{Key: b("k")}); !errors.Is(err, kv.ErrClosed) {
		t.Fatalf("watch after Close: %v", err)
	}
	if _, ok := <-w.Chan(); ok {
		t.Fatal("a Watcher made after Close has an open channel")
	}
}

func TestStats(t *testing.T) {
	s := newStore(t, Options{})
	w := s.NewWatcher()
	defer w.Close()
	w.Watch(b("a"), false, 0)
	w.Watch(b("a"), false, 1)
	s.Put(b("a"), nil)
	events(t, w, 2)
	ReportEventReceived()
	st := s.Stats()
	if st.Watchers != 1 || st.Synced+st.CatchingUp != 2 || st.EventsSent < 2 || st.EventsReceived < 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestPrefixEnd(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"a", "b"}, {"a\xff", "b"}, {"\xff\xff", ""}, {"", ""}, {"ab", "ac"},
	} {
		got := prefixEnd([]byte(tt.in))
		if string(got) != tt.want || got == nil {
			t.Errorf("prefixEnd(%q) = %q", tt.in, got)
		}
	}
}
