package engine

import (
	"context"
	"fmt"

	"github.com/revkv/revkv/kv"
)

// The seed API's txns: an ID in place of a *Txn. They are Txns: see Begin
// for the rules (one revision, own writes visible, a failed write poisons
// the txn so that TxnEnd aborts it, Close aborts it). A txn opened by
// TxnBegin is aborted after Options.TxnTimeout, since the seed API gives
// its caller no other way to bound it.

// TxnBegin opens a write txn and returns its ID. It waits until no other txn
// or write is in progress; until TxnEnd, other writers wait. All writes of
// the txn share one main revision, with sub-revisions in operation order;
// its reads see its own earlier writes. A txn that changes nothing does not
// move the revision.
//
// After Close, TxnBegin returns kv.ErrClosed.
func (s *Store) TxnBegin() (int64, error) {
	t, err := s.begin(context.Background(), s.txnTimeout())
	if err != nil {
		return 0, err
	}
	return t.id, nil
}

// seedTxn returns the open txn if id names it; the reason if id names the
// last txn that was aborted (by its timeout or Close), so that its owner
// learns its writes are gone; ErrTxnIDMismatch otherwise. txnMu is held.
func (s *Store) seedTxn(id int64) (*txnState, error) {
	switch {
	case s.txn != nil && s.txn.id == id:
		if t := s.txn; t.failed != nil {
			return t, fmt.Errorf("%w: %w", kv.ErrTxnFailed, t.failed)
		}
		return s.txn, nil
	case s.aborted != nil && s.aborted.id == id:
		return nil, fmt.Errorf("txn %d: %w", id, s.aborted.ended)
	}
	return nil, fmt.Errorf("txn %d: %w", id, ErrTxnIDMismatch)
}

// TxnEnd commits the txn's changes as one revision, publishes it, and lets
// other writers in. A wrong ID is ErrTxnIDMismatch and leaves the txn open.
// If a write in the txn failed, TxnEnd aborts it instead (nothing it wrote
// is applied) and returns kv.ErrTxnFailed wrapping the failure; if the txn
// was aborted by its timeout or Close, kv.ErrTxnEnded wrapping why.
func (s *Store) TxnEnd(txnID int64) error {
	s.txnMu.Lock()
	t, err := s.seedTxn(txnID)
	s.txnMu.Unlock()
	if t == nil {
		return err
	}
	_, err = s.commitTxn(t)
	return err
}

// TxnRange is Range inside the txn: it reads the txn's own writes, and the
// returned revision is the txn's (begin revision, plus one if it has
// written).
func (s *Store) TxnRange(txnID int64, key, end []byte, limit, rangeRev int64) ([]KeyValue, int64, error) {
	s.txnMu.Lock()
	defer s.txnMu.Unlock()
	t, err := s.seedTxn(txnID)
	if err != nil {
		return nil, 0, err
	}
	res, err := s.txnRangeLocked(t, key, end, RangeOptions{Limit: limit, Rev: rangeRev})
	return res.KVs, res.Rev, err
}

// TxnPut is Put inside the txn. It returns the txn's revision.
func (s *Store) TxnPut(txnID int64, key, value []byte) (rev int64, err error) {
	return s.TxnPutLease(txnID, key, value, 0)
}

// TxnPutLease is PutLease inside the txn.
func (s *Store) TxnPutLease(txnID int64, key, value []byte, lease int64) (rev int64, err error) {
	s.txnMu.Lock()
	defer s.txnMu.Unlock()
	t, err := s.seedTxn(txnID)
	if err != nil {
		return 0, err
	}
	res, err := s.txnPutLocked(t, key, value, kv.PutOptions{Lease: lease})
	return res.Rev, t.fail(err)
}

// TxnDeleteRange is DeleteRange inside the txn. It returns how many keys it
// deleted and the txn's revision.
func (s *Store) TxnDeleteRange(txnID int64, key, end []byte) (n, rev int64, err error) {
	s.txnMu.Lock()
	defer s.txnMu.Unlock()
	t, err := s.seedTxn(txnID)
	if err != nil {
		return 0, 0, err
	}
	res, err := s.txnDeleteLocked(t, key, end, kv.DeleteOptions{})
	return res.Deleted, res.Rev, t.fail(err)
}
