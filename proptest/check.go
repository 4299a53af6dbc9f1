package proptest

import (
	"bytes"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/revkv/revkv/kv"
	"pgregory.net/rapid"
)

// KV is what Check drives: the seed's KV API as revkv's engine spells it.
// *engine.Store has every method but View; wrap it (or your own store) in a
// small adapter to satisfy it, as this package's tests do.
type KV interface {
	Rev() int64
	Range(key, end []byte, limit, rangeRev int64) ([]kv.KeyValue, int64, error)
	PutLease(key, value []byte, lease int64) (int64, error)
	DeleteRange(key, end []byte) (n, rev int64, err error)
	TxnBegin() (int64, error)
	TxnRange(txnID int64, key, end []byte, limit, rangeRev int64) ([]kv.KeyValue, int64, error)
	TxnPutLease(txnID int64, key, value []byte, lease int64) (int64, error)
	TxnDeleteRange(txnID int64, key, end []byte) (n, rev int64, err error)
	TxnEnd(txnID int64) error
	Compact(rev int64) error
	HashByRev(rev int64) (kv.KeyValueHash, error)
	// View returns a read view at the current revision that keeps seeing
	// that revision after later writes and compactions.
	View() (View, error)
	Close() error
}

// View is a read view at one revision.
type View interface {
	Rev() int64
	Range(key, end []byte, limit, rangeRev int64) ([]kv.KeyValue, error)
	// Events returns every change from main revision from to the view's.
	Events(from int64) ([]kv.Event, error)
}

// Stats counts what Check ran.
type Stats struct {
	Runs    int // rapid test cases, each with two fresh KVs
	Actions int // state machine steps across all runs
}

// Check runs a rapid state machine that drives two KVs made by open and the
// reference Model side by side, and fails t at the first difference in a
// result, an error or a revision, with a minimal sequence of actions that
// shows it. Actions: puts (with leases), single-key, range and from-key
// deletes, ranges at current and historical revisions with random limits,
// txns mixing reads and writes (and calls with a wrong txn ID; a failed
// write makes TxnEnd abort the txn), compactions
// at valid and invalid revisions, HashByRev compared between the two KVs,
// views held across later writes and compactions, and history reads
// (Events). If both KVs are TxnKVs, also: conditional txns (every compare
// target and result, ranges, nested txns, invalid requests), range options
// (sorts, filters, limits with More, counts), puts and deletes with their
// options (prevKV, ignore value or lease), and interactive txns ended by
// Commit or Abort. At the end of each run both KVs are closed, and every
// call must then fail with kv.ErrClosed.
//
// The number of runs and their length come from rapid's flags:
// -rapid.checks (runs, default 100) and -rapid.steps (average actions per
// run, default 30). For example:
//
//	go test ./proptest -run TestEngine -rapid.checks=2000 -rapid.steps=200
func Check(t *testing.T, open func() (KV, error)) Stats {
	t.Helper()
	var runs, actions atomic.Int64
	rapid.Check(t, func(rt *rapid.T) {
		runs.Add(1)
		a, err := open()
		if err != nil {
			rt.Fatalf("open: %v", err)
		}
		b, err := open()
		if err != nil {
			rt.Fatalf("open: %v", err)
		}
		m := &machine{a: a, b: b, m: NewModel(), keys: keys}
		if rapid.Bool().Draw(rt, "prefixedKeys") {
			m.keys = prefixedKeys
		}
		acts := m.actions()
		for name, f := range m.txnActions() {
			acts[name] = f
		}
		for name, f := range acts {
			if name == "" {
				continue
			}
			acts[name] = func(rt *rapid.T) { actions.Add(1); f(rt) }
		}
		rt.Repeat(acts)
		m.checkClose(rt)
	})
	return Stats{Runs: int(runs.Load()), Actions: int(actions.Load())}
}

type heldView struct {
	v               View
	rev, compactRev int64
}

type machine struct {
	a, b  KV
	m     *Model
	keys  keySet
	views []heldView
	// hashes remembers HashByRev results by revision, for the current
	// compacted revision: a revision's hash must not change as the store
	// grows, and two revisions' hashes must differ (their histories do).
	hashes     map[int64]uint32
	hashesAtCR int64
}

// keySet is the keys a run draws from: mostly from often, sometimes from
// rare.
type keySet struct{ often, rare []string }

// keys are short keys, some prefixes of others.
var keys = keySet{often: []string{"a", "ab", "b", "b\x00", "c", "d", "e"}}

// prefixedKeys share long prefixes, as real keys do ("/registry/pods/..."),
// and a few rare ones share less of it or none, so that an implementation
// that makes use of a shared prefix meets keys that shorten it, and range
// bounds on either side of it.
var prefixedKeys = keySet{
	often: []string{"reg/pods/a", "reg/pods/ab", "reg/pods/b", "reg/pods/b\x00", "reg/pods/c",
		"reg/pods/cccccccccccccccccccccccccccccccccccccccc1", "reg/pods/cccccccccccccccccccccccccccccccccccccccc2"},
	rare: []string{"reg/svc/d", "reg/", "reg", "r", "s", "reg/pods/c\xff"},
}

func (ks keySet) draw(t *rapid.T, label string) string {
	if len(ks.rare) > 0 && rapid.IntRange(0, 9).Draw(t, label+"Rare") == 0 {
		return rapid.SampledFrom(ks.rare).Draw(t, label)
	}
	return rapid.SampledFrom(ks.often).Draw(t, label)
}

func (ks keySet) drawKey(t *rapid.T, label string) []byte {
	if rapid.IntRange(0, 24).Draw(t, label+"Empty") == 0 {
		return nil
	}
	return []byte(ks.draw(t, label))
}

// drawRange draws a key and an end: nil (one key), empty (from key), or
// another key (which may be <= key, an empty range).
func (ks keySet) drawRange(t *rapid.T) (key, end []byte) {
	key = ks.drawKey(t, "key")
	switch rapid.IntRange(0, 3).Draw(t, "endKind") {
	case 0:
		return key, nil
	case 1:
		return key, []byte{}
	default:
		return key, []byte(ks.draw(t, "end"))
	}
}

func drawValue(t *rapid.T) []byte {
	return rapid.SliceOfN(rapid.Byte(), 0, 4).Draw(t, "value")
}

func drawLease(t *rapid.T) int64 {
	return rapid.SampledFrom([]int64{0, 0, 7}).Draw(t, "lease")
}

// drawRev draws a read revision around the interesting ones: <= 0 (current),
// below and at the compacted revision, historical, current, future.
func drawRev(t *rapid.T, cur int64) int64 {
	return rapid.Int64Range(-1, cur+1).Draw(t, "rev")
}

func sameErr(got, want error) bool {
	if want == nil {
		return got == nil
	}
	return errors.Is(got, want)
}

func (m *machine) actions() map[string]func(*rapid.T) {
	return map[string]func(*rapid.T){
		"":            m.invariants,
		"put":         m.put,
		"delete":      m.delete,
		"range":       m.rangeRead,
		"txn":         m.txn,
		"compact":     m.compact,
		"hash":        m.hash,
		"takeView":    m.takeView,
		"readView":    m.readView,
		"events":      m.events,
		"putSameKeys": m.putMany,
	}
}

func (m *machine) invariants(t *rapid.T) {
	want := m.m.Rev()
	if got := m.a.Rev(); got != want {
		t.Fatalf("Rev() = %d, model %d", got, want)
	}
	if got := m.b.Rev(); got != want {
		t.Fatalf("second KV: Rev() = %d, model %d", got, want)
	}
}

func (m *machine) put(t *rapid.T) {
	key, value, lease := m.keys.drawKey(t, "key"), drawValue(t), drawLease(t)
	want, wantErr := m.m.Put(key, value, lease)
	for i, s := range []KV{m.a, m.b} {
		got, err := s.PutLease(key, value, lease)
		if !sameErr(err, wantErr) || (wantErr == nil && got != want) {
			t.Fatalf("KV %d: Put(%q, %q, %d) = %d, %v; model %d, %v", i, key, value, lease, got, err, want, wantErr)
		}
	}
}

// putMany puts several of a few keys in a row, to grow version chains.
func (m *machine) putMany(t *rapid.T) {
	n := rapid.IntRange(2, 6).Draw(t, "n")
	for range n {
		m.put(t)
	}
}

func (m *machine) delete(t *rapid.T) {
	key, end := m.keys.drawRange(t)
	wantN, wantRev, wantErr := m.m.DeleteRange(key, end)
	for i, s := range []KV{m.a, m.b} {
		n, rev, err := s.DeleteRange(key, end)
		if !sameErr(err, wantErr) || (wantErr == nil && (n != wantN || rev != wantRev)) {
			t.Fatalf("KV %d: DeleteRange(%q, %q) = %d, %d, %v; model %d, %d, %v", i, key, end, n, rev, err, wantN, wantRev, wantErr)
		}
	}
}

func (m *machine) rangeRead(t *rapid.T) {
	key, end := m.keys.drawRange(t)
	limit := rapid.Int64Range(-1, 4).Draw(t, "limit")
	rangeRev := drawRev(t, m.m.Rev())
	want, wantRev, wantErr := m.m.Range(key, end, limit, rangeRev)
	got, rev, err := m.a.Range(key, end, limit, rangeRev)
	if !sameErr(err, wantErr) {
		t.Fatalf("Range(%q, %q, %d, %d) error %v; model %v", key, end, limit, rangeRev, err, wantErr)
	}
	if wantErr == nil {
		checkKVs(t, fmt.Sprintf("Range(%q, %q, %d, %d)", key, end, limit, rangeRev), got, want)
		if rev != wantRev {
			t.Fatalf("Range(%q, %q, %d, %d) rev %d; model %d", key, end, limit, rangeRev, rev, wantRev)
		}
	}
}

func (m *machine) txn(t *rapid.T) {
	ids := make([]int64, 2)
	for i, s := range []KV{m.a, m.b} {
		id, err := s.TxnBegin()
		if err != nil {
			t.Fatalf("KV %d: TxnBegin: %v", i, err)
		}
		ids[i] = id
	}
	m.m.TxnBegin()
	n := rapid.IntRange(0, 6).Draw(t, "ops")
	for range n {
		switch rapid.IntRange(0, 4).Draw(t, "op") {
		case 0, 1:
			key, value, lease := m.keys.drawKey(t, "key"), drawValue(t), drawLease(t)
			want, wantErr := m.m.TxnPut(key, value, lease)
			for i, s := range []KV{m.a, m.b} {
				got, err := s.TxnPutLease(ids[i], key, value, lease)
				if !sameErr(err, wantErr) || (wantErr == nil && got != want) {
					t.Fatalf("KV %d: TxnPut(%q, %q) = %d, %v; model %d, %v", i, key, value, got, err, want, wantErr)
				}
			}
		case 2:
			key, end := m.keys.drawRange(t)
			wantN, wantRev, wantErr := m.m.TxnDeleteRange(key, end)
			for i, s := range []KV{m.a, m.b} {
				n, rev, err := s.TxnDeleteRange(ids[i], key, end)
				if !sameErr(err, wantErr) || (wantErr == nil && (n != wantN || rev != wantRev)) {
					t.Fatalf("KV %d: TxnDeleteRange(%q, %q) = %d, %d, %v; model %d, %d, %v", i, key, end, n, rev, err, wantN, wantRev, wantErr)
				}
			}
		case 3:
			key, end := m.keys.drawRange(t)
			limit := rapid.Int64Range(-1, 4).Draw(t, "limit")
			rangeRev := drawRev(t, m.m.Rev()+1)
			want, wantRev, wantErr := m.m.TxnRange(key, end, limit, rangeRev)
			got, rev, err := m.a.TxnRange(ids[0], key, end, limit, rangeRev)
			what := fmt.Sprintf("TxnRange(%q, %q, %d, %d)", key, end, limit, rangeRev)
			if !sameErr(err, wantErr) {
				t.Fatalf("%s error %v; model %v", what, err, wantErr)
			}
			if wantErr == nil {
				checkKVs(t, what, got, want)
				if rev != wantRev {
					t.Fatalf("%s rev %d; model %d", what, rev, wantRev)
				}
			}
		case 4:
			// A call with another txn's ID fails and changes nothing.
			if _, err := m.a.TxnPutLease(ids[0]+1, []byte("a"), nil, 0); !errors.Is(err, kv.ErrTxnIDMismatch) {
				t.Fatalf("TxnPut with a wrong txn ID: %v, want ErrTxnIDMismatch", err)
			}
		}
	}
	wantErr := m.m.TxnEnd()
	for i, s := range []KV{m.a, m.b} {
		if err := s.TxnEnd(ids[i]); !sameErr(err, wantErr) {
			t.Fatalf("KV %d: TxnEnd: %v; model %v", i, err, wantErr)
		}
		if err := s.TxnEnd(ids[i]); !errors.Is(err, kv.ErrTxnIDMismatch) {
			t.Fatalf("KV %d: second TxnEnd: %v, want ErrTxnIDMismatch", i, err)
		}
	}
}

func (m *machine) compact(t *rapid.T) {
	rev := rapid.Int64Range(m.m.CompactRev()-1, m.m.Rev()+1).Draw(t, "compactRev")
	wantErr := m.m.Compact(rev)
	for i, s := range []KV{m.a, m.b} {
		if err := s.Compact(rev); !sameErr(err, wantErr) {
			t.Fatalf("KV %d: Compact(%d) = %v; model %v", i, rev, err, wantErr)
		}
	}
}

func (m *machine) hash(t *rapid.T) {
	rev := drawRev(t, m.m.Rev())
	var wantErr error
	switch {
	case rev > m.m.Rev():
		wantErr = kv.ErrFutureRev
	case rev > 0 && rev < m.m.CompactRev():
		wantErr = kv.ErrCompacted
	}
	ha, errA := m.a.HashByRev(rev)
	hb, errB := m.b.HashByRev(rev)
	if !sameErr(errA, wantErr) || !sameErr(errB, wantErr) {
		t.Fatalf("HashByRev(%d) errors %v, %v; want %v", rev, errA, errB, wantErr)
	}
	if wantErr == nil && ha != hb {
		t.Fatalf("HashByRev(%d) differs between two KVs fed the same operations: %+v vs %+v", rev, ha, hb)
	}
	if wantErr != nil {
		return
	}
	if ha.CompactRev != m.m.CompactRev() {
		t.Fatalf("HashByRev(%d).CompactRev = %d, model %d", rev, ha.CompactRev, m.m.CompactRev())
	}
	if rev <= 0 {
		rev = m.m.Rev()
	}
	if ha.Rev != rev {
		t.Fatalf("HashByRev(%d).Rev = %d, want %d", rev, ha.Rev, rev)
	}
	if m.hashes == nil || m.hashesAtCR != ha.CompactRev {
		m.hashes, m.hashesAtCR = map[int64]uint32{}, ha.CompactRev
	}
	if old, ok := m.hashes[rev]; ok && old != ha.Hash {
		t.Fatalf("HashByRev(%d) changed from %08x to %08x with no compaction", rev, old, ha.Hash)
	}
	for r, h := range m.hashes {
		// A collision here has probability 2^-32 per pair.
		if r != rev && h == ha.Hash {
			t.Fatalf("HashByRev(%d) == HashByRev(%d) == %08x, but their histories differ", rev, r, h)
		}
	}
	m.hashes[rev] = ha.Hash
}

func (m *machine) takeView(t *rapid.T) {
	if len(m.views) >= 4 {
		m.views = m.views[1:]
	}
	v, err := m.a.View()
	if err != nil {
		t.Fatalf("View: %v", err)
	}
	if v.Rev() != m.m.Rev() {
		t.Fatalf("View().Rev() = %d, model %d", v.Rev(), m.m.Rev())
	}
	m.views = append(m.views, heldView{v: v, rev: m.m.Rev(), compactRev: m.m.CompactRev()})
}

func (m *machine) readView(t *rapid.T) {
	if len(m.views) == 0 {
		t.Skip("no view held")
	}
	h := m.views[rapid.IntRange(0, len(m.views)-1).Draw(t, "view")]
	key, end := m.keys.drawRange(t)
	limit := rapid.Int64Range(-1, 4).Draw(t, "limit")
	rangeRev := drawRev(t, h.rev)
	want, wantErr := m.m.RangeView(key, end, limit, rangeRev, h.rev, h.compactRev)
	got, err := h.v.Range(key, end, limit, rangeRev)
	what := fmt.Sprintf("view@%d Range(%q, %q, %d, %d)", h.rev, key, end, limit, rangeRev)
	if !sameErr(err, wantErr) {
		t.Fatalf("%s error %v; model %v", what, err, wantErr)
	}
	if wantErr == nil {
		checkKVs(t, what, got, want)
	}
	from := drawRev(t, h.rev)
	wantEv, wantErr := m.m.EventsView(from, h.rev, h.compactRev)
	gotEv, err := h.v.Events(from)
	checkEvents(t, fmt.Sprintf("view@%d Events(%d)", h.rev, from), gotEv, err, wantEv, wantErr)
}

func (m *machine) events(t *rapid.T) {
	v, err := m.a.View()
	if err != nil {
		t.Fatalf("View: %v", err)
	}
	from := drawRev(t, m.m.Rev())
	want, wantErr := m.m.Events(from)
	got, err := v.Events(from)
	checkEvents(t, fmt.Sprintf("Events(%d)", from), got, err, want, wantErr)
}

// checkClose closes both KVs and checks that every call then fails with
// kv.ErrClosed.
func (m *machine) checkClose(t *rapid.T) {
	for i, s := range []KV{m.a, m.b} {
		if err := s.Close(); err != nil {
			t.Fatalf("KV %d: Close: %v", i, err)
		}
		if _, err := s.PutLease([]byte("a"), nil, 0); !errors.Is(err, kv.ErrClosed) {
			t.Fatalf("KV %d: Put after Close: %v, want ErrClosed", i, err)
		}
		if _, _, err := s.Range([]byte("a"), nil, 0, 0); !errors.Is(err, kv.ErrClosed) {
			t.Fatalf("KV %d: Range after Close: %v, want ErrClosed", i, err)
		}
		if _, _, err := s.DeleteRange([]byte("a"), nil); !errors.Is(err, kv.ErrClosed) {
			t.Fatalf("KV %d: DeleteRange after Close: %v, want ErrClosed", i, err)
		}
		if _, err := s.TxnBegin(); !errors.Is(err, kv.ErrClosed) {
			t.Fatalf("KV %d: TxnBegin after Close: %v, want ErrClosed", i, err)
		}
		if err := s.Compact(0); !errors.Is(err, kv.ErrClosed) {
			t.Fatalf("KV %d: Compact after Close: %v, want ErrClosed", i, err)
		}
		if _, err := s.HashByRev(0); !errors.Is(err, kv.ErrClosed) {
			t.Fatalf("KV %d: HashByRev after Close: %v, want ErrClosed", i, err)
		}
		if err := s.Close(); !errors.Is(err, kv.ErrClosed) {
			t.Fatalf("KV %d: second Close: %v, want ErrClosed", i, err)
		}
	}
	// Views outlive Close.
	for _, h := range m.views {
		want, _ := m.m.RangeView([]byte{}, []byte{}, 0, 0, h.rev, h.compactRev)
		got, err := h.v.Range([]byte{}, []byte{}, 0, 0)
		if err != nil {
			t.Fatalf("view@%d after Close: %v", h.rev, err)
		}
		checkKVs(t, fmt.Sprintf("view@%d after Close", h.rev), got, want)
	}
}

func equalKV(a, b kv.KeyValue) bool {
	return bytes.Equal(a.Key, b.Key) && bytes.Equal(a.Value, b.Value) &&
		a.CreateRevision == b.CreateRevision && a.ModRevision == b.ModRevision &&
		a.Version == b.Version && a.Lease == b.Lease
}

func checkKVs(t *rapid.T, what string, got, want []kv.KeyValue) {
	if len(got) != len(want) {
		t.Fatalf("%s returned %d keys %v; model %d %v", what, len(got), got, len(want), want)
	}
	for i := range got {
		if !equalKV(got[i], want[i]) {
			t.Fatalf("%s[%d] = %+v; model %+v", what, i, got[i], want[i])
		}
	}
}

func checkEvents(t *rapid.T, what string, got []kv.Event, err error, want []kv.Event, wantErr error) {
	if !sameErr(err, wantErr) {
		t.Fatalf("%s error %v; model %v", what, err, wantErr)
	}
	if len(got) != len(want) {
		t.Fatalf("%s returned %d events %v; model %d %v", what, len(got), got, len(want), want)
	}
	for i := range got {
		if got[i].Type != want[i].Type || got[i].Sub != want[i].Sub || !equalKV(got[i].KV, want[i].KV) {
			t.Fatalf("%s[%d] = %+v; model %+v", what, i, got[i], want[i])
		}
	}
}
