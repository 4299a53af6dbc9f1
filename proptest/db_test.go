package proptest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/revkv/revkv"
	"github.com/revkv/revkv/kv"
	"github.com/revkv/revkv/proptest"
)

// db adapts the revkv.DB handle to proptest.KV: the seed's ID-named txns
// become the handle's interactive txns (Begin, Txn.Range/Put/DeleteRange,
// Commit), and its puts and deletes the handle's Put and Delete.
type db struct {
	*revkv.DB
	tx *revkv.Txn // the open txn, if any
	id int64      // its ID; the last one handed out
}

func (d *db) Range(key, end []byte, limit, rangeRev int64) ([]kv.KeyValue, int64, error) {
	res, err := d.DB.Range(key, end, revkv.RangeOptions{Limit: limit, Rev: rangeRev})
	return res.KVs, res.Rev, err
}

func (d *db) PutLease(key, value []byte, lease int64) (int64, error) {
	res, err := d.DB.Put(key, value, revkv.WithLease(lease))
	return res.Rev, err
}

func (d *db) DeleteRange(key, end []byte) (n, rev int64, err error) {
	res, err := d.DB.Delete(key, end)
	return res.Deleted, res.Rev, err
}

func (d *db) TxnBegin() (int64, error) {
	tx, err := d.DB.Begin(context.Background())
	if err != nil {
		return 0, err
	}
	d.id++
	d.tx = tx
	return d.id, nil
}

// txn returns the open txn if id names it.
func (d *db) txn(id int64) (*revkv.Txn, error) {
	if d.tx == nil || id != d.id {
		return nil, fmt.Errorf("txn %d: %w", id, kv.ErrTxnIDMismatch)
	}
	return d.tx, nil
}

func (d *db) TxnRange(id int64, key, end []byte, limit, rangeRev int64) ([]kv.KeyValue, int64, error) {
	tx, err := d.txn(id)
	if err != nil {
		return nil, 0, err
	}
	res, err := tx.Range(key, end, revkv.RangeOptions{Limit: limit, Rev: rangeRev})
	return res.KVs, res.Rev, err
}

func (d *db) TxnPutLease(id int64, key, value []byte, lease int64) (int64, error) {
	tx, err := d.txn(id)
	if err != nil {
		return 0, err
	}
	res, err := tx.Put(key, value, kv.PutOptions{Lease: lease})
	return res.Rev, err
}

func (d *db) TxnDeleteRange(id int64, key, end []byte) (n, rev int64, err error) {
	tx, err := d.txn(id)
	if err != nil {
		return 0, 0, err
	}
	res, err := tx.DeleteRange(key, end, kv.DeleteOptions{})
	return res.Deleted, res.Rev, err
}

func (d *db) TxnEnd(id int64) error {
	tx, err := d.txn(id)
	if err != nil {
		return err
	}
	d.tx = nil
	_, err = tx.Commit()
	return err
}

// The proptest.TxnKV methods, through the handle's Range, Put and Delete
// options and its txns.

func (d *db) RangeWithOptions(key, end []byte, opts kv.RangeOptions) (kv.RangeResult, error) {
	return d.DB.Range(key, end, opts)
}

func (d *db) PutWithOptions(key, value []byte, o kv.PutOptions) (kv.PutResult, error) {
	var opts []revkv.OpOption
	if o.Lease != 0 {
		opts = append(opts, revkv.WithLease(o.Lease))
	}
	if o.PrevKV {
		opts = append(opts, revkv.WithPrevKV())
	}
	if o.IgnoreValue {
		opts = append(opts, revkv.WithIgnoreValue())
	}
	if o.IgnoreLease {
		opts = append(opts, revkv.WithIgnoreLease())
	}
	return d.DB.Put(key, value, opts...)
}

func (d *db) DeleteRangeWithOptions(key, end []byte, o kv.DeleteOptions) (kv.DeleteResult, error) {
	if o.PrevKV {
		return d.DB.Delete(key, end, revkv.WithPrevKV())
	}
	return d.DB.Delete(key, end)
}

func (d *db) BeginTxn(ctx context.Context) (proptest.Txn, error) { return d.DB.Begin(ctx) }

func (d *db) View() (proptest.View, error) {
	v, err := d.DB.View()
	if err != nil {
		return nil, err
	}
	return view{v}, nil
}

var _ proptest.TxnKV = (*db)(nil)

// TestDB holds the revkv.DB handle to the model: the same state machine as
// TestEngine (seed txns, conditional txns, range and put/delete options,
// interactive txns), through the one handle users get.
func TestDB(t *testing.T) {
	st := proptest.Check(t, func() (proptest.KV, error) {
		h, err := revkv.Open("", revkv.Options{})
		return &db{DB: h}, err
	})
	t.Logf("%d runs, %d actions", st.Runs, st.Actions)
}

// dbLeases adapts the DB handle to proptest.LeaseKV.
type dbLeases struct{ *db }

func (d dbLeases) Grant(id, ttl int64) (int64, error) {
	l, err := d.DB.Grant(id, ttl)
	return l.ID, err
}

func (d dbLeases) TimeToLive(id int64) (proptest.LeaseStatus, error) {
	st, err := d.DB.TimeToLive(id, true)
	return proptest.LeaseStatus{ID: st.ID, TTL: st.TTL, GrantedTTL: st.GrantedTTL, Keys: st.Keys}, err
}

func (d dbLeases) Leases() ([]int64, error) {
	ls, err := d.DB.Leases()
	var ids []int64
	for _, l := range ls {
		ids = append(ids, l.ID)
	}
	return ids, err
}

// TestDBLeases holds the handle's leases to the model, as TestEngineLeases
// does the engine's.
func TestDBLeases(t *testing.T) {
	st := proptest.CheckLeases(t, func(clock func() time.Time) (proptest.LeaseKV, error) {
		h, err := revkv.Open("", revkv.Options{Engine: leaseOptions(clock)})
		return dbLeases{&db{DB: h}}, err
	})
	t.Logf("%d runs, %d actions", st.Runs, st.Actions)
}
