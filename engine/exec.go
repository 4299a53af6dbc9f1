package engine

import (
	"bytes"
	"cmp"
	"context"
	"fmt"

	"github.com/revkv/revkv/internal/keytree"
	"github.com/revkv/revkv/kv"
)

// Txn runs a conditional txn with etcd's semantics (see kv.TxnRequest):
// it validates req (any failure: nothing runs), evaluates every compare
// against the store as it is before the txn, runs the chosen branches, and
// applies their writes as one revision. If an op fails, everything the txn
// wrote is taken back and the error returned: a txn applies whole or not
// at all. The response's Rev is the store's revision after the txn.
//
// A txn with no write in any branch (req.ReadOnly) runs on the published
// state, like Range, without waiting for writers; under
// Options.ConsistentIndex it records no index, since it changes nothing
// that a replay could repeat. ctx is checked before the txn starts;
// a txn is not interrupted once it runs. On error, the response holds only
// the store's revision. After Close, Txn returns kv.ErrClosed.
func (s *Store) Txn(ctx context.Context, req *kv.TxnRequest) (*kv.TxnResponse, error) {
	if err := checkTxnRequest(req, s.maxTxnOps()); err != nil {
		return &kv.TxnResponse{Rev: s.Rev()}, err
	}
	if err := checkTxnWrites(req); err != nil {
		return &kv.TxnResponse{Rev: s.Rev()}, err
	}
	if err := context.Cause(ctx); err != nil {
		return &kv.TxnResponse{Rev: s.Rev()}, err
	}
	if req.ReadOnly() {
		return s.readTxn(req)
	}
	if err := s.lockWriter(); err != nil {
		return &kv.TxnResponse{Rev: s.Rev()}, err
	}
	t := s.startExecLocked()
	var resp *kv.TxnResponse
	var err error
	if t.skipped {
		resp = &kv.TxnResponse{}
	} else {
		var buf [8]bool
		view := s.txnView(t)
		path := choose(buf[:0], req, &view, &s.w.memo)
		resp = newTxnResponse(req, path[0])
		x := executor{s: s, t: t}
		_, err = x.run(req, path, resp)
	}
	rev, err := s.finishExecLocked(t, err)
	if err != nil {
		return &kv.TxnResponse{Rev: rev}, err
	}
	resp.Rev = rev
	return resp, nil
}

// newTxnResponse returns a response for the branch of req that succeeded
// chose, with room for its op responses: a branch of one op (a
// compare-and-swap) gets them in one allocation.
func newTxnResponse(req *kv.TxnRequest, succeeded bool) *kv.TxnResponse {
	ops := req.Then
	if !succeeded {
		ops = req.Else
	}
	if len(ops) != 1 {
		return &kv.TxnResponse{}
	}
	r := &struct {
		resp kv.TxnResponse
		ops  [1]kv.OpResponse
	}{}
	r.resp.Responses = r.ops[:]
	return &r.resp
}

// readTxn runs a txn without writes on the published state.
func (s *Store) readTxn(req *kv.TxnRequest) (*kv.TxnResponse, error) {
	if s.closed.Load() {
		return &kv.TxnResponse{Rev: s.Rev()}, kv.ErrClosed
	}
	st := s.cur.Load()
	var buf [8]bool
	path := choose(buf[:0], req, st, nil)
	resp := newTxnResponse(req, path[0])
	x := executor{s: s, st: st}
	if _, err := x.run(req, path, resp); err != nil {
		return &kv.TxnResponse{Rev: st.rev}, err
	}
	resp.Rev = st.rev
	return resp, nil
}

func (s *Store) maxTxnOps() int {
	if s.opts.MaxTxnOps > 0 {
		return s.opts.MaxTxnOps
	}
	return DefaultMaxTxnOps
}

// startExecLocked starts a txn on the writer's reused exec state, for a
// write that runs start to end under mu. mu is held.
func (s *Store) startExecLocked() *txnState {
	t := &s.w.exec
	*t = txnState{beginRev: s.w.rev, oldIndex: s.w.cindex, changes: t.changes[:0], apart: true, undo: &s.w.undoBuf}
	s.w.memo = lookupMemo{}
	t.skipped = s.checkIndexLocked()
	s.w.undo = t.undo
	return t
}

// finishExecLocked ends an exec txn: it aborts it if failed is not nil,
// else commits it, and releases mu. It returns the store's revision.
// mu is held.
func (s *Store) finishExecLocked(t *txnState, failed error) (rev int64, err error) {
	s.w.undo = nil
	s.w.memo = lookupMemo{}
	if failed != nil {
		s.rollbackLocked(t)
		rev = s.w.rev
		s.mu.Unlock()
		return rev, failed
	}
	if err := s.commitChangesLocked(t); err != nil {
		return s.Rev(), err
	}
	rev = s.w.rev
	t.undo.reset()
	return rev, s.unlockAndWait()
}

// PutWithOptions is Put with etcd's put options (see kv.PutOptions): a
// lease, the previous value, and keeping the value or lease the key has.
// On error nothing changes.
func (s *Store) PutWithOptions(key, value []byte, opts kv.PutOptions) (kv.PutResult, error) {
	if err := s.lockWriter(); err != nil {
		return kv.PutResult{}, err
	}
	t := s.startExecLocked()
	res, err := s.txnPutLocked(t, key, value, opts)
	rev, err := s.finishExecLocked(t, err)
	if err != nil {
		return kv.PutResult{}, err
	}
	res.Rev = rev
	return res, nil
}

// DeleteRangeWithOptions is DeleteRange that can return the deleted keys'
// values (see kv.DeleteOptions). On error nothing changes.
func (s *Store) DeleteRangeWithOptions(key, end []byte, opts kv.DeleteOptions) (kv.DeleteResult, error) {
	if err := s.lockWriter(); err != nil {
		return kv.DeleteResult{}, err
	}
	t := s.startExecLocked()
	res, err := s.txnDeleteLocked(t, key, end, opts)
	rev, err := s.finishExecLocked(t, err)
	if err != nil {
		return kv.DeleteResult{}, err
	}
	res.Rev = rev
	return res, nil
}

// executor runs the chosen branches of a txn request: in txn t, or, for a
// request without writes, on the published state st (t nil).
type executor struct {
	s  *Store
	t  *txnState
	st *state
}

// run runs the branch of req that path[0] chose, and the nested txns in
// it with the rest of path, filling resp. It returns what is left of path.
func (x *executor) run(req *kv.TxnRequest, path []bool, resp *kv.TxnResponse) ([]bool, error) {
	resp.Succeeded, path = path[0], path[1:]
	ops := req.Then
	if !resp.Succeeded {
		ops = req.Else
	}
	if resp.Responses == nil {
		resp.Responses = make([]kv.OpResponse, len(ops))
	}
	for i := range ops {
		op, r := &ops[i], &resp.Responses[i]
		r.Type = op.Type
		var err error
		switch op.Type {
		case kv.OpRange:
			r.Range, err = x.rangeOp(op)
		case kv.OpPut:
			r.Put, err = x.s.txnPutLocked(x.t, op.Key, op.Value, op.Put)
		case kv.OpDeleteRange:
			r.Delete, err = x.s.txnDeleteLocked(x.t, op.Key, fromKey(op.End), op.Delete)
		case kv.OpTxn:
			r.Txn = &kv.TxnResponse{}
			path, err = x.run(nested(op), path, r.Txn)
			r.Txn.Rev = x.rev()
		}
		if err != nil {
			return nil, fmt.Errorf("txn op %d (%v %q): %w", i, op.Type, op.Key, err)
		}
	}
	return path, nil
}

// rev is the revision the txn's reads see.
func (x *executor) rev() int64 {
	if x.t == nil {
		return x.st.rev
	}
	return x.t.rev()
}

// rangeOp runs a range op. Its revision is checked against the store as
// it was before the txn, as etcd checks it, even after the txn wrote.
func (x *executor) rangeOp(op *kv.Op) (RangeResult, error) {
	end := fromKey(op.End)
	if x.t == nil {
		return x.st.rangeKeys(op.Key, end, op.Range)
	}
	if op.Range.Rev > x.t.beginRev {
		return RangeResult{Rev: x.t.rev()}, fmt.Errorf("revision %d, current %d: %w", op.Range.Rev, x.t.beginRev, ErrFutureRev)
	}
	return x.s.txnRangeLocked(x.t, op.Key, end, op.Range)
}

// nested returns the request of an OpTxn; a nil one is an empty request.
func nested(op *kv.Op) *kv.TxnRequest {
	if op.Txn == nil {
		return &kv.TxnRequest{}
	}
	return op.Txn
}

// fromKey maps etcd's spelling of "every key >= key", an end of "\x00", to
// the engine's, an empty end.
func fromKey(end []byte) []byte {
	if len(end) == 1 && end[0] == 0 {
		return []byte{}
	}
	return end
}

// choose appends to path the outcome of req's compares and then, in
// order, those of the nested txns in the branch it chose: every compare
// reads st, the store before the txn. memo, if not nil, keeps the last
// single-key lookup (see lookupMemo).
func choose(path []bool, req *kv.TxnRequest, st *state, memo *lookupMemo) []bool {
	ok := comparesHold(req.Compare, st, memo)
	path = append(path, ok)
	ops := req.Then
	if !ok {
		ops = req.Else
	}
	for i := range ops {
		if ops[i].Type == kv.OpTxn {
			path = choose(path, nested(&ops[i]), st, memo)
		}
	}
	return path
}

func comparesHold(cs []kv.Compare, st *state, memo *lookupMemo) bool {
	for i := range cs {
		if !compareHolds(&cs[i], st, memo) {
			return false
		}
	}
	return true
}

// compareHolds reports whether every key live in c's range satisfies c. No
// key compares as a KeyValue of zeros, except on value, which fails.
func compareHolds(c *kv.Compare, st *state, memo *lookupMemo) bool {
	found, holds := false, true
	if c.End == nil && memo != nil {
		var v KeyValue
		if rec := memo.lookup(st, c.Key); rec != nil {
			v, found = rec.live(st.rev)
		}
		holds = !found || compareKV(c, &v)
	} else {
		st.each(c.Key, fromKey(c.End), st.rev, 0, func(kv KeyValue) bool {
			found = true
			holds = compareKV(c, &kv)
			return holds
		})
	}
	switch {
	case found:
		return holds
	case c.Target == kv.CompareValue:
		return false
	}
	return compareKV(c, &kv.KeyValue{})
}

// compareKV reports whether kv satisfies c. Unknown targets compare as
// equal, and unknown results hold, as in etcd.
func compareKV(c *kv.Compare, v *kv.KeyValue) bool {
	var r int
	switch c.Target {
	case kv.CompareValue:
		r = bytes.Compare(v.Value, c.Value)
	case kv.CompareVersion:
		r = cmp.Compare(v.Version, c.Version)
	case kv.CompareCreate:
		r = cmp.Compare(v.CreateRevision, c.CreateRevision)
	case kv.CompareMod:
		r = cmp.Compare(v.ModRevision, c.ModRevision)
	case kv.CompareLease:
		r = cmp.Compare(v.Lease, c.Lease)
	}
	switch c.Result {
	case kv.CompareEqual:
		return r == 0
	case kv.CompareNotEqual:
		return r != 0
	case kv.CompareGreater:
		return r > 0
	case kv.CompareLess:
		return r < 0
	}
	return true
}

// lookupMemo keeps the writer's last lookup of a key for a compare, so that
// a compare-and-swap's put of the same key does not look it up again: rec
// (nil: the key has no record) and the path to it. It is good only until
// the next write: a put or delete takes it (whatever its key), and a txn
// clears it at its start and end.
type lookupMemo struct {
	key  []byte
	rec  *keyRecord
	hint keytree.Hint
	set  bool
}

// lookup looks key up in the writer's index st.keys and remembers it.
func (m *lookupMemo) lookup(st *state, key []byte) *keyRecord {
	*m = lookupMemo{key: key, rec: st.keys.lookupHint(key, &m.hint), set: true}
	return m.rec
}

// take returns the remembered lookup if it is of key, and forgets it.
func (m *lookupMemo) take(key []byte) (rec *keyRecord, hint keytree.Hint, ok bool) {
	if !m.set {
		return nil, hint, false
	}
	rec, hint, ok = m.rec, m.hint, bytes.Equal(m.key, key)
	*m = lookupMemo{}
	return rec, hint, ok
}
