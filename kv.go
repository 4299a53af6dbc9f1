package revkv

import "github.com/revkv/revkv/kv"

// Get returns the current value of key, and whether it exists. An empty
// key is kv.ErrEmptyKey.
func (db *DB) Get(key []byte) (KeyValue, bool, error) {
	res, err := db.e.RangeWithOptions(key, nil, RangeOptions{})
	if err != nil || len(res.KVs) == 0 {
		return KeyValue{}, false, err
	}
	return res.KVs[0], true, nil
}

// Range reads the keys selected by key and end at opts.Rev (<= 0: the
// current revision). end nil selects the single key; a non-nil empty end
// every key >= key; otherwise [key, end). opts sorts, filters, limits and
// counts as kv.RangeOptions says. A revision above the current one is
// kv.ErrFutureRev, one below the compacted one kv.ErrCompacted; a failed
// read still reports the current revision in the result.
func (db *DB) Range(key, end []byte, opts RangeOptions) (RangeResult, error) {
	return db.e.RangeWithOptions(key, end, opts)
}

// Put sets key to value at a new revision, and returns it.
func (db *DB) Put(key, value []byte) (rev int64, err error) { return db.e.Put(key, value) }

// Delete deletes the keys selected by key and end (as in Range), all at
// one new revision, and returns how many it deleted and the revision
// (unchanged if it deleted nothing).
func (db *DB) Delete(key, end []byte) (n, rev int64, err error) { return db.e.DeleteRange(key, end) }

var _ = kv.ErrClosed
