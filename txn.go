package revkv

import (
	"context"

	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/kv"
)

// The types of txns; see package kv for the request and its parts (and
// kv.PutOp, kv.DeleteOp, kv.RangeOp, kv.TxnOp to build ops).
type (
	TxnRequest  = kv.TxnRequest
	TxnResponse = kv.TxnResponse
	Compare     = kv.Compare
	Op          = kv.Op
	// Txn is an interactive txn: see Begin.
	Txn = engine.Txn
)

// Txn runs a conditional txn, as etcd's: if every compare holds, the Then
// ops run, otherwise the Else ops (puts, deletes, ranges, nested txns),
// all at one new revision, or, if any op fails or the request is invalid,
// not at all: nothing changes and the error says why (see kv.TxnRequest
// for the rules). A txn with no write runs on the current revision without
// waiting for writers. ctx is checked before the txn starts.
func (db *DB) Txn(ctx context.Context, req *TxnRequest) (*TxnResponse, error) {
	return db.e.Txn(ctx, req)
}

// Begin opens an interactive write txn: its Range, Put and DeleteRange see
// its own writes, Commit applies them all at one revision, and Abort takes
// them all back. Until it ends, other writers wait; so it ends also when
// ctx is done (aborted, its later calls returning kv.ErrTxnEnded wrapping
// the context's cause; a ctx without a deadline gets the engine's
// TxnTimeout, a minute by default) and when the DB is closed. A failed
// write poisons
// it: Commit then aborts it and returns kv.ErrTxnFailed. Always end a txn:
// defer tx.Abort() is harmless after Commit.
func (db *DB) Begin(ctx context.Context) (*Txn, error) { return db.e.Begin(ctx) }
