package engine

import (
	"bytes"
	"fmt"

	"github.com/revkv/revkv/kv"
)

// Validation of a txn request before it runs, by etcd's rules (its API
// layer's checks; see kv.TxnRequest). Any failure: nothing runs.

// checkTxnRequest checks req's sizes, keys and options. A nested txn's
// limit is max less the largest list of the txn around it.
func checkTxnRequest(req *kv.TxnRequest, limit int) error {
	n := max(len(req.Compare), len(req.Then), len(req.Else))
	if n > limit {
		return fmt.Errorf("%d compares or ops in a list, limit %d: %w", n, limit, kv.ErrTooManyOps)
	}
	for i := range req.Compare {
		if len(req.Compare[i].Key) == 0 {
			return fmt.Errorf("compare %d: %w", i, kv.ErrEmptyKey)
		}
	}
	for _, ops := range [2][]kv.Op{req.Then, req.Else} {
		for i := range ops {
			if err := checkOp(&ops[i], limit-n); err != nil {
				return fmt.Errorf("op %d: %w", i, err)
			}
		}
	}
	return nil
}

// checkOp checks one op; limit is the limit for a nested txn.
func checkOp(op *kv.Op, limit int) error {
	switch op.Type {
	case kv.OpRange:
		if len(op.Key) == 0 {
			return kv.ErrEmptyKey
		}
		return op.Range.Check()
	case kv.OpPut:
		if len(op.Key) == 0 {
			return kv.ErrEmptyKey
		}
		return op.Put.Check(op.Value)
	case kv.OpDeleteRange:
		if len(op.Key) == 0 {
			return kv.ErrEmptyKey
		}
		return nil
	case kv.OpTxn:
		if op.Txn == nil {
			return nil
		}
		return checkTxnRequest(op.Txn, limit)
	}
	// etcd answers an op with no request in it so.
	return fmt.Errorf("op type %d: %w", op.Type, kv.ErrKeyNotFound)
}

// checkTxnWrites refuses a request that writes a key twice in one branch
// (kv.ErrDuplicateKey), by etcd's rule: the Then and the Else of the
// top-level txn are checked apart.
func checkTxnWrites(req *kv.TxnRequest) error {
	for _, ops := range [2][]kv.Op{req.Then, req.Else} {
		if !mayWriteTwice(ops) {
			continue
		}
		if _, err := branchWrites(ops); err != nil {
			return err
		}
	}
	return nil
}

// mayWriteTwice reports whether ops could write a key twice: they have
// two writes, or a nested txn. (It spares the common one-put txn the
// bookkeeping.)
func mayWriteTwice(ops []kv.Op) bool {
	writes := 0
	for i := range ops {
		switch ops[i].Type {
		case kv.OpPut, kv.OpDeleteRange:
			writes++
		case kv.OpTxn:
			return true
		}
	}
	return writes > 1
}

// writeSet is what a branch writes: the keys it puts and the ranges it
// deletes, nested txns' included.
type writeSet struct {
	puts [][]byte
	dels []keySpan
}

// keySpan is a deleted range: [key, end), end nil meaning no end; a
// single key is [key, key+"\x00").
type keySpan struct{ key, end []byte }

func (k keySpan) has(key []byte) bool {
	return bytes.Compare(key, k.key) >= 0 && (k.end == nil || bytes.Compare(key, k.end) < 0)
}

// deleteSpan is the span a delete op counts as. An end of "\x00" counts
// as etcd's check counts it: as [key, "\x00"), which holds no key.
func deleteSpan(op *kv.Op) keySpan {
	switch {
	case op.End == nil:
		return keySpan{op.Key, append(op.Key[:len(op.Key):len(op.Key)], 0)}
	case len(op.End) == 0:
		return keySpan{op.Key, nil}
	}
	return keySpan{op.Key, op.End}
}

func (w *writeSet) put(key []byte) bool {
	for _, k := range w.puts {
		if bytes.Equal(k, key) {
			return true
		}
	}
	return false
}

func (w *writeSet) deleted(key []byte) bool {
	for _, d := range w.dels {
		if d.has(key) {
			return true
		}
	}
	return false
}

// branchWrites returns what ops write, or ErrDuplicateKey if they write a
// key twice: this level's deletes are gathered first; then each nested
// txn's puts must be new and not deleted so far (its two branches may put
// the same key, only one of them runs), and its deletes join this level's;
// then this level's puts must be new and not deleted.
func branchWrites(ops []kv.Op) (writeSet, error) {
	var w writeSet
	for i := range ops {
		if ops[i].Type == kv.OpDeleteRange {
			w.dels = append(w.dels, deleteSpan(&ops[i]))
		}
	}
	for i := range ops {
		if ops[i].Type != kv.OpTxn || ops[i].Txn == nil {
			continue
		}
		then, err := branchWrites(ops[i].Txn.Then)
		if err != nil {
			return w, err
		}
		els, err := branchWrites(ops[i].Txn.Else)
		if err != nil {
			return w, err
		}
		for _, k := range then.puts {
			if w.put(k) || w.deleted(k) {
				return w, duplicate(k)
			}
		}
		w.puts = append(w.puts, then.puts...)
		for _, k := range els.puts {
			if w.put(k) && !then.put(k) || w.deleted(k) {
				return w, duplicate(k)
			}
		}
		w.puts = append(w.puts, els.puts...)
		w.dels = append(w.dels, then.dels...)
		w.dels = append(w.dels, els.dels...)
	}
	for i := range ops {
		if ops[i].Type != kv.OpPut {
			continue
		}
		k := ops[i].Key
		if w.put(k) || w.deleted(k) {
			return w, duplicate(k)
		}
		w.puts = append(w.puts, k)
	}
	return w, nil
}

func duplicate(k []byte) error { return fmt.Errorf("key %q: %w", k, kv.ErrDuplicateKey) }
