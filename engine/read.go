package engine

import (
	"bytes"
	"fmt"
	"iter"
	"slices"
	"sync"

	"github.com/revkv/revkv/kv"
)

// KeyValue and Event are the shared value types; see package kv.
type (
	KeyValue = kv.KeyValue
	Event    = kv.Event
)

// RangeOptions and RangeResult are the shared range types; see package kv.
type (
	RangeOptions = kv.RangeOptions
	RangeResult  = kv.RangeResult
)

// Range returns the keys in a range at revision rangeRev, and the current
// revision.
//
// end == nil selects the single key; a non-nil empty end selects every key
// >= key; otherwise the range is [key, end), and end <= key selects nothing.
// rangeRev <= 0 reads at the current revision; a rangeRev above it is
// ErrFutureRev, one below the compacted revision ErrCompacted. limit <= 0
// means no limit. An empty key with a nil end is kv.ErrEmptyKey.
//
// Range never blocks and is never blocked by writers.
func (s *Store) Range(key, end []byte, limit, rangeRev int64) (kvs []KeyValue, rev int64, err error) {
	res, err := s.RangeWithOptions(key, end, RangeOptions{Limit: limit, Rev: rangeRev})
	return res.KVs, res.Rev, err
}

// RangeWithOptions is Range with the options etcd's range requests have
// (see kv.RangeOptions): count only, keys only, the total count, sorting,
// revision filters, and a limit that says whether it cut keys (More). A
// failed read still reports the store's revision in the result (except
// after Close: kv.ErrClosed and an empty result).
func (s *Store) RangeWithOptions(key, end []byte, opts RangeOptions) (RangeResult, error) {
	if s.closed.Load() {
		return RangeResult{}, kv.ErrClosed
	}
	return s.cur.Load().rangeKeys(key, end, opts)
}

// View returns a read-only view of the store at its current revision. It is
// taken in O(1), never blocks, and keeps seeing that revision (and the
// history at and above its compacted revision) however long it is held, even
// across later writes, compactions and Close. Its memory is freed when it is
// dropped. A View is safe for concurrent use.
func (s *Store) View() (*View, error) {
	if s.closed.Load() {
		return nil, kv.ErrClosed
	}
	return &View{st: s.cur.Load()}, nil
}

// View is a read-only view of a store at one revision. See Store.View.
type View struct {
	st *state
}

// Rev returns the view's revision.
func (v *View) Rev() int64 { return v.st.rev }

// CompactRev returns the store's compacted revision when the view was taken.
func (v *View) CompactRev() int64 { return v.st.compactRev }

// Range reads a range as Store.RangeWithOptions does, at opts.Rev or, if it
// is <= 0, at the view's revision. A revision above the view's is
// ErrFutureRev.
func (v *View) Range(key, end []byte, opts RangeOptions) (RangeResult, error) {
	return v.st.rangeKeys(key, end, opts)
}

// Scan returns an iterator over the keys of a range (selected as in Range)
// at revision rev, or the view's revision if rev <= 0. It walks the index as
// the caller pulls, so a range of any size costs no more memory than one
// KeyValue. An invalid range or revision yields one error and stops.
func (v *View) Scan(key, end []byte, rev int64) iter.Seq2[KeyValue, error] {
	return func(yield func(KeyValue, error) bool) {
		rev, err := v.st.checkRead(key, end, rev)
		if err != nil {
			yield(KeyValue{}, err)
			return
		}
		v.st.each(key, end, rev, 0, func(kv KeyValue) bool { return yield(kv, nil) })
	}
}

// Events returns an iterator over the history from main revision from up to
// the view's revision, in revision order: every change, deletes included.
// from below the compacted revision yields ErrCompacted (the events at the
// compacted revision itself are kept); from above the view's revision yields
// nothing.
func (v *View) Events(from int64) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		st := v.st
		if from < st.compactRev {
			yield(Event{}, fmt.Errorf("events from %d, compacted %d: %w", from, st.compactRev, ErrCompacted))
			return
		}
		st.changes(from, st.rev, func(c change) bool { return yield(c.v.event(c.key), nil) })
	}
}

// checkRange validates a key range. Only a single-key selection needs a key.
func checkRange(key, end []byte) error {
	if end == nil && len(key) == 0 {
		return kv.ErrEmptyKey
	}
	return nil
}

// emptyRange reports whether [key, end) selects nothing.
func emptyRange(key, end []byte) bool {
	return len(end) > 0 && bytes.Compare(end, key) <= 0
}

// rangeEnd maps the "every key >= key" spelling (a non-nil empty end) to the
// open end that ascend takes.
func rangeEnd(end []byte) []byte {
	if len(end) == 0 {
		return nil
	}
	return end
}

func (st *state) checkRead(key, end []byte, rev int64) (int64, error) {
	if err := checkRange(key, end); err != nil {
		return 0, err
	}
	return st.checkRev(rev)
}

// scanBatch is how many records a range read gathers before loading them.
const scanBatch = 32

// each calls fn for each key live at rev in the range, in key order, until
// fn returns false. It expects about want keys (0: unknown), to size its
// batches.
//
// Records and their version lists live wherever the allocator put them, so
// reading one is two cache misses. Walking the tree first and then loading a
// batch of records, then their lists, lets those misses overlap rather than
// form one long chain: a range of 100 keys runs several times faster.
func (st *state) each(key, end []byte, rev int64, want int64, fn func(KeyValue) bool) {
	if end == nil {
		if kv, ok := st.live(key, rev); ok {
			fn(kv)
		}
		return
	}
	if emptyRange(key, end) {
		return
	}
	size := scanBatch
	if want > 0 && want < scanBatch {
		size = int(want)
	}
	var recs [scanBatch]*keyRecord
	var lists [scanBatch]*versionList
	n := 0
	stopped := false
	flush := func() bool {
		for i := range n {
			lists[i] = recs[i].vers.Load()
		}
		for i := range n {
			if kv, ok := recs[i].liveList(lists[i], rev); ok {
				if !fn(kv) {
					stopped = true
					return false
				}
			}
		}
		n = 0
		return true
	}
	st.ascend(key, rangeEnd(end), func(r *keyRecord) bool {
		recs[n] = r
		n++
		if n < size {
			return true
		}
		size = scanBatch
		return flush()
	})
	if !stopped && n > 0 {
		flush()
	}
}

// rangeKeys reads a range with every option. Its result carries st's
// revision even when it fails.
func (st *state) rangeKeys(key, end []byte, opts RangeOptions) (RangeResult, error) {
	res := RangeResult{Rev: st.rev}
	if err := opts.Check(); err != nil {
		return res, err
	}
	rev, err := st.checkRead(key, end, opts.Rev)
	if err != nil {
		return res, err
	}
	if end == nil {
		return st.get(key, rev, opts, res), nil
	}
	if opts.CountOnly || opts.Sorted() || !opts.LimitFirst() {
		return st.rangeAll(key, end, rev, opts, res), nil
	}
	// Key order, no filter: the walk stops one key past the limit (or
	// goes on counting).
	limit := opts.Limit
	want := limit
	if want > 0 {
		want++
	}
	if opts.TotalCount {
		want = 0
	}
	st.each(key, end, rev, want, func(kv KeyValue) bool {
		res.Count++
		if limit > 0 && int64(len(res.KVs)) >= limit {
			res.More = true
			return opts.TotalCount
		}
		if opts.KeysOnly {
			kv.Value = nil
		}
		if res.KVs == nil && limit > 0 {
			// One allocation for the usual limits; a huge limit grows.
			res.KVs = make([]KeyValue, 0, min(limit, 1024))
		}
		res.KVs = append(res.KVs, kv)
		return true
	})
	if !opts.TotalCount {
		res.Count = int64(len(res.KVs))
	}
	return res, nil
}

// rangeAll is rangeKeys for a count, or for options that sort or filter:
// it gathers the filtered keys in key order (for a limit that applies
// before the sort, one past the limit, as etcd does), then sorts and cuts
// them. It gathers into a pooled buffer and returns an exact copy of what
// it keeps: one allocation, however the result grew.
func (st *state) rangeAll(key, end []byte, rev int64, opts RangeOptions, res RangeResult) RangeResult {
	gather := int64(-1) // no cap
	if opts.CountOnly {
		gather = 0
	} else if opts.LimitFirst() && opts.Limit > 0 {
		gather = opts.Limit + 1
	}
	buf := gatherPool.Get().(*[]KeyValue)
	kvs := (*buf)[:0]
	st.each(key, end, rev, 0, func(kv KeyValue) bool {
		res.Count++
		if gather >= 0 && int64(len(kvs)) >= gather {
			return opts.TotalCount || opts.CountOnly
		}
		if opts.Keep(&kv) {
			kvs = append(kvs, kv)
		}
		return true
	})
	res.KVs = kvs
	res = finishRange(res, &opts)
	if len(res.KVs) == 0 {
		res.KVs = nil
	} else {
		res.KVs = slices.Clone(res.KVs)
	}
	clear(kvs) // keep no key or value alive
	if cap(kvs) <= maxPooledGather {
		*buf = kvs[:0]
		gatherPool.Put(buf)
	}
	return res
}

// gatherPool holds rangeAll's buffers; one above maxPooledGather entries
// is left to the collector.
var gatherPool = sync.Pool{New: func() any { return new([]KeyValue) }}

const maxPooledGather = 4096

// finishRange sorts, limits and strips a range's result, whose KVs are the
// filtered keys in key order and whose Count is the number of keys in the
// range.
func finishRange(res RangeResult, opts *RangeOptions) RangeResult {
	sortKeyValues(res.KVs, opts.SortTarget, opts.SortOrder)
	if opts.Limit > 0 && int64(len(res.KVs)) > opts.Limit {
		res.KVs, res.More = res.KVs[:opts.Limit:opts.Limit], true
	}
	if opts.KeysOnly {
		for i := range res.KVs {
			res.KVs[i].Value = nil
		}
	}
	if !opts.CountOnly && !opts.TotalCount {
		res.Count = int64(len(res.KVs))
	}
	return res
}

// get is rangeKeys for one key: the hot path of point reads.
func (st *state) get(key []byte, rev int64, opts RangeOptions, res RangeResult) RangeResult {
	kv, ok := st.live(key, rev)
	if !ok {
		return res
	}
	res.Count = 1
	if opts.CountOnly {
		return res
	}
	if !opts.Keep(&kv) {
		if !opts.TotalCount {
			res.Count = 0
		}
		return res
	}
	if opts.KeysOnly {
		kv.Value = nil
	}
	res.KVs = []KeyValue{kv}
	return res
}

// live returns key's value at rev, if the key exists then: from the point
// table if it has the key's record at rev, else from the index.
func (st *state) live(key []byte, rev int64) (KeyValue, bool) {
	if rec, v, ok := st.pointAt(key, rev); ok {
		if v.deleted() {
			return KeyValue{}, false
		}
		return v.keyValue(rec.key()), true
	}
	rec := st.lookup(key)
	if rec == nil {
		return KeyValue{}, false
	}
	return rec.live(rev)
}
