package proptest

import (
	"bytes"
	"maps"
	"slices"

	"github.com/revkv/revkv/kv"
)

// Model is the reference the state machine holds implementations to. It is
// written to be obviously correct, not fast: every revision keeps a complete
// copy of the key space in a plain map, and every range is a sort of the
// matching keys. It is meant for the small key spaces of generated tests.
//
// Model follows the contract in revkv's CONTRACT.md (etcd parity). Its
// methods mirror KV's, with the same errors.
type Model struct {
	states  []map[string]kv.KeyValue // states[r]: the key space at revision r
	events  [][]kv.Event             // events[r]: the changes of revision r
	compact int64

	txn *modelTxn

	leases *modelLeases // nil until used; see lease.go
}

type modelTxn struct {
	begin   int64
	working map[string]kv.KeyValue
	changes []kv.Event
	// failed is the txn's first failed write: later calls fail with
	// kv.ErrTxnFailed, and TxnEnd aborts.
	failed error
}

// NewModel returns the model of a new store: revision 1, compacted -1.
func NewModel() *Model {
	return &Model{
		states:  []map[string]kv.KeyValue{nil, {}},
		events:  [][]kv.Event{nil, nil},
		compact: -1,
	}
}

// Rev is the current revision.
func (m *Model) Rev() int64 { return int64(len(m.states) - 1) }

// CompactRev is the compacted revision.
func (m *Model) CompactRev() int64 { return m.compact }

// At returns the key space at revision rev, for any rev in 1..Rev(), even
// below the compacted revision (views taken before a compaction still see it).
func (m *Model) At(rev int64) map[string]kv.KeyValue { return m.states[rev] }

func inRange(k string, key, end []byte) bool {
	switch {
	case end == nil:
		return k == string(key)
	case len(end) == 0:
		return k >= string(key)
	default:
		return k >= string(key) && k < string(end)
	}
}

func rangeOf(space map[string]kv.KeyValue, key, end []byte, limit int64) []kv.KeyValue {
	var names []string
	for k := range space {
		if inRange(k, key, end) {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	if limit > 0 && int64(len(names)) > limit {
		names = names[:limit]
	}
	var out []kv.KeyValue
	for _, k := range names {
		out = append(out, space[k])
	}
	return out
}

// Range returns the keys in the range at rangeRev, and the current revision.
func (m *Model) Range(key, end []byte, limit, rangeRev int64) ([]kv.KeyValue, int64, error) {
	return m.rangeAt(key, end, limit, rangeRev, m.Rev(), m.compact, nil)
}

// RangeView is Range on a view taken when the revision was cur and the
// compacted revision compact.
func (m *Model) RangeView(key, end []byte, limit, rangeRev, cur, compact int64) ([]kv.KeyValue, error) {
	kvs, _, err := m.rangeAt(key, end, limit, rangeRev, cur, compact, nil)
	return kvs, err
}

// rangeAt reads at rangeRev against a current revision cur and compacted
// revision compact; working, if not nil, is the key space at cur (an open
// txn's).
func (m *Model) rangeAt(key, end []byte, limit, rangeRev, cur, compact int64, working map[string]kv.KeyValue) ([]kv.KeyValue, int64, error) {
	if end == nil && len(key) == 0 {
		return nil, 0, kv.ErrEmptyKey
	}
	if rangeRev > cur {
		return nil, 0, kv.ErrFutureRev
	}
	if rangeRev <= 0 {
		rangeRev = cur
	}
	if rangeRev < compact {
		return nil, 0, kv.ErrCompacted
	}
	space := working
	if space == nil || rangeRev != cur {
		space = m.states[rangeRev]
	}
	return rangeOf(space, key, end, limit), cur, nil
}

// Events returns every change from main revision from to the current one.
func (m *Model) Events(from int64) ([]kv.Event, error) {
	return m.EventsView(from, m.Rev(), m.compact)
}

// EventsView is Events on a view taken when the revision was cur and the
// compacted revision compact.
func (m *Model) EventsView(from, cur, compact int64) ([]kv.Event, error) {
	if from < compact {
		return nil, kv.ErrCompacted
	}
	var out []kv.Event
	for r := max(from, 1); r <= cur; r++ {
		out = append(out, m.events[r]...)
	}
	return out, nil
}

func put(space map[string]kv.KeyValue, key, value []byte, lease, rev, sub int64) kv.Event {
	nv := kv.KeyValue{Key: bytes.Clone(key), CreateRevision: rev, ModRevision: rev, Version: 1, Lease: lease}
	if len(value) > 0 {
		nv.Value = bytes.Clone(value)
	}
	if old, ok := space[string(key)]; ok {
		nv.CreateRevision, nv.Version = old.CreateRevision, old.Version+1
	}
	space[string(key)] = nv
	return kv.Event{Type: kv.Put, KV: nv, Sub: sub}
}

func del(space map[string]kv.KeyValue, key, end []byte, rev, sub int64) []kv.Event {
	var names []string
	for k := range space {
		if inRange(k, key, end) {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	var evs []kv.Event
	for _, k := range names {
		delete(space, k)
		evs = append(evs, kv.Event{Type: kv.Delete, KV: kv.KeyValue{Key: []byte(k), ModRevision: rev}, Sub: sub})
		sub++
	}
	return evs
}

func (m *Model) commit(space map[string]kv.KeyValue, evs []kv.Event) {
	m.states = append(m.states, space)
	m.events = append(m.events, evs)
}

// Put sets key to value in a new revision. A lease that is not live is
// kv.ErrLeaseNotFound.
func (m *Model) Put(key, value []byte, lease int64) (int64, error) {
	if len(key) == 0 {
		return 0, kv.ErrEmptyKey
	}
	if err := m.checkLease(lease); err != nil {
		return 0, err
	}
	space := maps.Clone(m.states[m.Rev()])
	rev := m.Rev() + 1
	m.commit(space, []kv.Event{put(space, key, value, lease, rev, 0)})
	return rev, nil
}

// DeleteRange deletes the live keys in the range under one new revision.
func (m *Model) DeleteRange(key, end []byte) (n, rev int64, err error) {
	if end == nil && len(key) == 0 {
		return 0, 0, kv.ErrEmptyKey
	}
	space := maps.Clone(m.states[m.Rev()])
	evs := del(space, key, end, m.Rev()+1, 0)
	if len(evs) == 0 {
		return 0, m.Rev(), nil
	}
	m.commit(space, evs)
	return int64(len(evs)), m.Rev(), nil
}

// Compact moves the compacted revision to rev.
func (m *Model) Compact(rev int64) error {
	if rev <= m.compact {
		return kv.ErrCompacted
	}
	if rev > m.Rev() {
		return kv.ErrFutureRev
	}
	m.compact = rev
	return nil
}

// TxnBegin opens the model's txn.
func (m *Model) TxnBegin() {
	m.txn = &modelTxn{begin: m.Rev(), working: maps.Clone(m.states[m.Rev()])}
}

func (t *modelTxn) rev() int64 {
	if len(t.changes) > 0 {
		return t.begin + 1
	}
	return t.begin
}

// TxnRange reads inside the open txn.
func (m *Model) TxnRange(key, end []byte, limit, rangeRev int64) ([]kv.KeyValue, int64, error) {
	t := m.txn
	if t.failed != nil {
		return nil, 0, kv.ErrTxnFailed
	}
	cur := t.rev()
	if rangeRev == cur || rangeRev <= 0 {
		// The txn's own revision: its working copy (which also holds the
		// begin revision's keys when it has not written).
		return m.rangeAt(key, end, limit, rangeRev, cur, m.compact, t.working)
	}
	return m.rangeAt(key, end, limit, rangeRev, cur, m.compact, nil)
}

// TxnPut puts inside the open txn.
func (m *Model) TxnPut(key, value []byte, lease int64) (int64, error) {
	t := m.txn
	switch {
	case t.failed != nil:
		return 0, kv.ErrTxnFailed
	case len(key) == 0:
		t.failed = kv.ErrEmptyKey
		return 0, kv.ErrEmptyKey
	}
	if err := m.checkLease(lease); err != nil {
		t.failed = err
		return 0, err
	}
	t.changes = append(t.changes, put(t.working, key, value, lease, t.begin+1, int64(len(t.changes))))
	return t.begin + 1, nil
}

// TxnDeleteRange deletes inside the open txn.
func (m *Model) TxnDeleteRange(key, end []byte) (n, rev int64, err error) {
	t := m.txn
	switch {
	case t.failed != nil:
		return 0, 0, kv.ErrTxnFailed
	case end == nil && len(key) == 0:
		t.failed = kv.ErrEmptyKey
		return 0, 0, kv.ErrEmptyKey
	}
	evs := del(t.working, key, end, t.begin+1, int64(len(t.changes)))
	t.changes = append(t.changes, evs...)
	return int64(len(evs)), t.rev(), nil
}

// TxnEnd commits the open txn; a txn that changed nothing makes no
// revision. A txn in which a write failed is aborted instead, with
// kv.ErrTxnFailed.
func (m *Model) TxnEnd() error {
	t := m.txn
	m.txn = nil
	if t.failed != nil {
		return kv.ErrTxnFailed
	}
	if len(t.changes) > 0 {
		m.commit(t.working, t.changes)
	}
	return nil
}

// TxnAbort ends the open txn without applying anything.
func (m *Model) TxnAbort() { m.txn = nil }
