package proptest

import (
	"bytes"
	"maps"
	"slices"
	"sort"

	"github.com/revkv/revkv/kv"
)

// The model of etcd's v3 operations beyond the seed API: range options,
// put and delete options, conditional (and nested) txns, and interactive
// txns that abort. Written from etcd's rules as kv documents them, apart
// from the engine's code.

// RangeWithOptions is Range with every option of kv.RangeOptions. Its
// result reports the current revision even when it fails.
func (m *Model) RangeWithOptions(key, end []byte, opts kv.RangeOptions) (kv.RangeResult, error) {
	return m.rangeOptsAt(key, end, opts, m.Rev(), nil)
}

// rangeOptsAt reads with options against the current revision cur and an
// open txn's key space working (or nil), as etcd's server does: the keys
// in the range in key order; with no sort order (or ascending by key) and
// no filter, only the first Limit+1 of them; the filters; the sort; the
// limit.
func (m *Model) rangeOptsAt(key, end []byte, o kv.RangeOptions, cur int64, working map[string]kv.KeyValue) (kv.RangeResult, error) {
	res := kv.RangeResult{Rev: cur}
	if o.SortOrder > kv.SortDescend || o.SortTarget > kv.SortByValue {
		return res, kv.ErrInvalidSortOption
	}
	kvs, _, err := m.rangeAt(key, end, 0, o.Rev, cur, m.compact, working)
	if err != nil {
		return res, err
	}
	total := int64(len(kvs))
	filtered := o.MinModRevision != 0 || o.MaxModRevision != 0 || o.MinCreateRevision != 0 || o.MaxCreateRevision != 0
	limitFirst := (o.SortOrder == kv.SortNone || o.SortTarget == kv.SortByKey && o.SortOrder == kv.SortAscend) && !filtered
	if limitFirst && o.Limit > 0 && int64(len(kvs)) > o.Limit+1 {
		kvs = kvs[:o.Limit+1]
	}
	kvs = slices.DeleteFunc(kvs, func(kv kv.KeyValue) bool {
		return o.MinModRevision != 0 && kv.ModRevision < o.MinModRevision ||
			o.MaxModRevision != 0 && kv.ModRevision > o.MaxModRevision ||
			o.MinCreateRevision != 0 && kv.CreateRevision < o.MinCreateRevision ||
			o.MaxCreateRevision != 0 && kv.CreateRevision > o.MaxCreateRevision
	})
	modelSort(kvs, o.SortTarget, o.SortOrder)
	if o.Limit > 0 && int64(len(kvs)) > o.Limit {
		kvs, res.More = kvs[:o.Limit], true
	}
	if o.KeysOnly {
		for i := range kvs {
			kvs[i].Value = nil
		}
	}
	if o.CountOnly {
		kvs, res.More = nil, false
	}
	res.KVs = kvs
	res.Count = int64(len(kvs))
	if o.CountOnly || o.TotalCount {
		res.Count = total
	}
	return res, nil
}

// byField sorts KeyValues with sort.Sort, as etcd's server does: ties end
// where that algorithm leaves them, given the keys in key order.
type byField struct {
	kvs  []kv.KeyValue
	less func(a, b *kv.KeyValue) bool
}

func (s byField) Len() int           { return len(s.kvs) }
func (s byField) Swap(i, j int)      { s.kvs[i], s.kvs[j] = s.kvs[j], s.kvs[i] }
func (s byField) Less(i, j int) bool { return s.less(&s.kvs[i], &s.kvs[j]) }

func modelSort(kvs []kv.KeyValue, target kv.SortTarget, order kv.SortOrder) {
	if order == kv.SortNone && target != kv.SortByKey {
		order = kv.SortAscend
	}
	if order == kv.SortNone || order == kv.SortAscend && target == kv.SortByKey {
		return
	}
	less := map[kv.SortTarget]func(a, b *kv.KeyValue) bool{
		kv.SortByKey:     func(a, b *kv.KeyValue) bool { return bytes.Compare(a.Key, b.Key) < 0 },
		kv.SortByVersion: func(a, b *kv.KeyValue) bool { return a.Version < b.Version },
		kv.SortByCreate:  func(a, b *kv.KeyValue) bool { return a.CreateRevision < b.CreateRevision },
		kv.SortByMod:     func(a, b *kv.KeyValue) bool { return a.ModRevision < b.ModRevision },
		kv.SortByValue:   func(a, b *kv.KeyValue) bool { return bytes.Compare(a.Value, b.Value) < 0 },
	}[target]
	var s sort.Interface = byField{kvs, less}
	if order == kv.SortDescend {
		s = sort.Reverse(s)
	}
	sort.Sort(s)
}

// PutWithOptions is Put with kv.PutOptions.
func (m *Model) PutWithOptions(key, value []byte, opts kv.PutOptions) (kv.PutResult, error) {
	space := maps.Clone(m.states[m.Rev()])
	res, ev, err := m.putOpts(space, key, value, opts, m.Rev()+1, 0)
	if err != nil {
		return kv.PutResult{}, err
	}
	m.commit(space, []kv.Event{ev})
	return res, nil
}

// putOpts puts into space at (rev, sub) with options. A lease must be
// live, as for Put.
func (m *Model) putOpts(space map[string]kv.KeyValue, key, value []byte, o kv.PutOptions, rev, sub int64) (kv.PutResult, kv.Event, error) {
	switch {
	case len(key) == 0:
		return kv.PutResult{}, kv.Event{}, kv.ErrEmptyKey
	case o.IgnoreValue && len(value) != 0:
		return kv.PutResult{}, kv.Event{}, kv.ErrValueProvided
	case o.IgnoreLease && o.Lease != 0:
		return kv.PutResult{}, kv.Event{}, kv.ErrLeaseProvided
	}
	if !o.IgnoreLease {
		// A lease the put names is checked before the key whose value
		// it may keep, as etcd does.
		if err := m.checkLease(o.Lease); err != nil {
			return kv.PutResult{}, kv.Event{}, err
		}
	}
	prev, ok := space[string(key)]
	if !ok && (o.IgnoreValue || o.IgnoreLease) {
		return kv.PutResult{}, kv.Event{}, kv.ErrKeyNotFound
	}
	if o.IgnoreValue {
		value = prev.Value
	}
	if o.IgnoreLease {
		o.Lease = prev.Lease
		if err := m.checkLease(o.Lease); err != nil {
			return kv.PutResult{}, kv.Event{}, err
		}
	}
	res := kv.PutResult{Rev: rev}
	if ok && o.PrevKV {
		res.PrevKV = &prev
	}
	return res, put(space, key, value, o.Lease, rev, sub), nil
}

// DeleteRangeWithOptions is DeleteRange with kv.DeleteOptions.
func (m *Model) DeleteRangeWithOptions(key, end []byte, opts kv.DeleteOptions) (kv.DeleteResult, error) {
	if end == nil && len(key) == 0 {
		return kv.DeleteResult{}, kv.ErrEmptyKey
	}
	space := maps.Clone(m.states[m.Rev()])
	prev := deletedKVs(space, key, end, opts)
	evs := del(space, key, end, m.Rev()+1, 0)
	if len(evs) > 0 {
		m.commit(space, evs)
	}
	return kv.DeleteResult{Deleted: int64(len(evs)), Rev: m.Rev(), PrevKVs: prev}, nil
}

func deletedKVs(space map[string]kv.KeyValue, key, end []byte, opts kv.DeleteOptions) []kv.KeyValue {
	if !opts.PrevKV {
		return nil
	}
	return rangeOf(space, key, end, 0)
}

// TxnRangeWithOptions reads with options inside the open txn. After a
// failed write it fails with kv.ErrTxnFailed.
func (m *Model) TxnRangeWithOptions(key, end []byte, opts kv.RangeOptions) (kv.RangeResult, error) {
	t := m.txn
	if t.failed != nil {
		return kv.RangeResult{Rev: t.rev()}, kv.ErrTxnFailed
	}
	working := t.working
	if opts.Rev > 0 && opts.Rev != t.rev() {
		working = nil
	}
	return m.rangeOptsAt(key, end, opts, t.rev(), working)
}

// TxnPutWithOptions puts with options inside the open txn; a failure
// poisons it.
func (m *Model) TxnPutWithOptions(key, value []byte, opts kv.PutOptions) (kv.PutResult, error) {
	t := m.txn
	if t.failed != nil {
		return kv.PutResult{}, kv.ErrTxnFailed
	}
	res, ev, err := m.putOpts(t.working, key, value, opts, t.begin+1, int64(len(t.changes)))
	if err != nil {
		t.failed = err
		return kv.PutResult{}, err
	}
	t.changes = append(t.changes, ev)
	return res, nil
}

// TxnDeleteWithOptions deletes with options inside the open txn; a
// failure poisons it.
func (m *Model) TxnDeleteWithOptions(key, end []byte, opts kv.DeleteOptions) (kv.DeleteResult, error) {
	t := m.txn
	if t.failed != nil {
		return kv.DeleteResult{}, kv.ErrTxnFailed
	}
	if end == nil && len(key) == 0 {
		t.failed = kv.ErrEmptyKey
		return kv.DeleteResult{}, kv.ErrEmptyKey
	}
	prev := deletedKVs(t.working, key, end, opts)
	evs := del(t.working, key, end, t.begin+1, int64(len(t.changes)))
	t.changes = append(t.changes, evs...)
	return kv.DeleteResult{Deleted: int64(len(evs)), Rev: t.rev(), PrevKVs: prev}, nil
}

// Txn runs a conditional txn with etcd's rules (see kv.TxnRequest), with
// a limit of maxOps compares or ops per list. On error nothing changes
// and the response holds the current revision.
func (m *Model) Txn(req *kv.TxnRequest, maxOps int) (*kv.TxnResponse, error) {
	fail := func(err error) (*kv.TxnResponse, error) { return &kv.TxnResponse{Rev: m.Rev()}, err }
	if err := modelCheckTxn(req, maxOps); err != nil {
		return fail(err)
	}
	for _, ops := range [][]kv.Op{req.Then, req.Else} {
		if _, _, err := modelWrites(ops); err != nil {
			return fail(err)
		}
	}
	before := m.states[m.Rev()]
	m.TxnBegin()
	resp := &kv.TxnResponse{}
	if err := m.runTxn(req, before, resp); err != nil {
		m.TxnAbort()
		return fail(err)
	}
	m.TxnEnd()
	resp.Rev = m.Rev()
	return resp, nil
}

// runTxn runs req in the open txn: its compares read before, the store
// before the txn.
func (m *Model) runTxn(req *kv.TxnRequest, before map[string]kv.KeyValue, resp *kv.TxnResponse) error {
	resp.Succeeded = true
	for _, c := range req.Compare {
		if !modelCompare(c, before) {
			resp.Succeeded = false
			break
		}
	}
	ops := req.Then
	if !resp.Succeeded {
		ops = req.Else
	}
	resp.Responses = make([]kv.OpResponse, len(ops))
	t := m.txn
	for i, op := range ops {
		r := &resp.Responses[i]
		r.Type = op.Type
		end := op.End
		if len(end) == 1 && end[0] == 0 {
			end = []byte{}
		}
		var err error
		switch op.Type {
		case kv.OpRange:
			if op.Range.Rev > t.begin {
				return kv.ErrFutureRev
			}
			r.Range, err = m.TxnRangeWithOptions(op.Key, end, op.Range)
		case kv.OpPut:
			r.Put, err = m.TxnPutWithOptions(op.Key, op.Value, op.Put)
		case kv.OpDeleteRange:
			r.Delete, err = m.TxnDeleteWithOptions(op.Key, end, op.Delete)
		case kv.OpTxn:
			nested := op.Txn
			if nested == nil {
				nested = &kv.TxnRequest{}
			}
			r.Txn = &kv.TxnResponse{}
			err = m.runTxn(nested, before, r.Txn)
			r.Txn.Rev = t.rev()
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// modelCompare evaluates c on the key space sp: every key in c's range
// must satisfy it; none compares as zeros, and fails a value compare.
func modelCompare(c kv.Compare, sp map[string]kv.KeyValue) bool {
	end := c.End
	if len(end) == 1 && end[0] == 0 {
		end = []byte{}
	}
	kvs := rangeOf(sp, c.Key, end, 0)
	if len(kvs) == 0 {
		if c.Target == kv.CompareValue {
			return false
		}
		kvs = []kv.KeyValue{{}}
	}
	for _, v := range kvs {
		var r int
		switch c.Target {
		case kv.CompareValue:
			r = bytes.Compare(v.Value, c.Value)
		case kv.CompareVersion:
			r = sign(v.Version - c.Version)
		case kv.CompareCreate:
			r = sign(v.CreateRevision - c.CreateRevision)
		case kv.CompareMod:
			r = sign(v.ModRevision - c.ModRevision)
		case kv.CompareLease:
			r = sign(v.Lease - c.Lease)
		}
		ok := map[kv.CompareResult]bool{
			kv.CompareEqual: r == 0, kv.CompareNotEqual: r != 0,
			kv.CompareLess: r < 0, kv.CompareGreater: r > 0,
		}[c.Result]
		if !ok {
			return false
		}
	}
	return true
}

func sign(x int64) int {
	switch {
	case x < 0:
		return -1
	case x > 0:
		return 1
	}
	return 0
}

// modelCheckTxn is etcd's request validation: list sizes (a nested txn
// gets what the outer one leaves), empty keys, sort and put options.
func modelCheckTxn(req *kv.TxnRequest, limit int) error {
	n := max(len(req.Compare), len(req.Then), len(req.Else))
	if n > limit {
		return kv.ErrTooManyOps
	}
	for _, c := range req.Compare {
		if len(c.Key) == 0 {
			return kv.ErrEmptyKey
		}
	}
	for _, op := range slices.Concat(req.Then, req.Else) {
		var err error
		switch {
		case op.Type == kv.OpTxn:
			if op.Txn != nil {
				err = modelCheckTxn(op.Txn, limit-n)
			}
		case op.Type > kv.OpTxn:
			err = kv.ErrKeyNotFound
		case len(op.Key) == 0:
			err = kv.ErrEmptyKey
		case op.Type == kv.OpRange && (op.Range.SortOrder > kv.SortDescend || op.Range.SortTarget > kv.SortByValue):
			err = kv.ErrInvalidSortOption
		case op.Type == kv.OpPut && op.Put.IgnoreValue && len(op.Value) != 0:
			err = kv.ErrValueProvided
		case op.Type == kv.OpPut && op.Put.IgnoreLease && op.Put.Lease != 0:
			err = kv.ErrLeaseProvided
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// modelWrites is etcd's duplicate-key rule for one branch: it returns the
// keys put and the ranges deleted, nested txns' included, or
// kv.ErrDuplicateKey.
func modelWrites(ops []kv.Op) (puts map[string]bool, dels [][2][]byte, err error) {
	puts = map[string]bool{}
	deleted := func(k string) bool {
		for _, d := range dels {
			if d[1] == nil && k == string(d[0]) ||
				d[1] != nil && k >= string(d[0]) && (len(d[1]) == 0 || k < string(d[1])) {
				return true
			}
		}
		return false
	}
	for _, op := range ops {
		if op.Type == kv.OpDeleteRange {
			dels = append(dels, [2][]byte{op.Key, op.End})
		}
	}
	for _, op := range ops {
		if op.Type != kv.OpTxn || op.Txn == nil {
			continue
		}
		thenPuts, thenDels, err := modelWrites(op.Txn.Then)
		if err != nil {
			return nil, nil, err
		}
		elsePuts, elseDels, err := modelWrites(op.Txn.Else)
		if err != nil {
			return nil, nil, err
		}
		for k := range thenPuts {
			if puts[k] || deleted(k) {
				return nil, nil, kv.ErrDuplicateKey
			}
			puts[k] = true
		}
		for k := range elsePuts {
			if puts[k] && !thenPuts[k] || deleted(k) {
				return nil, nil, kv.ErrDuplicateKey
			}
			puts[k] = true
		}
		dels = append(dels, thenDels...)
		dels = append(dels, elseDels...)
	}
	for _, op := range ops {
		if op.Type != kv.OpPut {
			continue
		}
		if k := string(op.Key); puts[k] || deleted(k) {
			return nil, nil, kv.ErrDuplicateKey
		}
		puts[string(op.Key)] = true
	}
	return puts, dels, nil
}
