package watch

import (
	"context"
	"slices"
	"testing"

	"github.com/revkv/revkv/kv"
)

// TestAbortedTxnNotWatched: the writes of an aborted txn, and of a
// conditional txn that failed midway, never reach a watcher, from the
// current revision or from history; the txn that commits next has the
// revision the aborted ones would have had.
func TestAbortedTxnNotWatched(t *testing.T) {
	s := newStore(t, Options{})
	w := s.NewWatcher()
	defer w.Close()
	w.Watch(b("k"), true, 0)

	tx, err := s.kv.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tx.Put(b("k1"), b("aborted"), kv.PutOptions{})
	tx.DeleteRange(b("k"), b("l"), kv.DeleteOptions{})
	tx.Abort()
	_, err = s.kv.Txn(context.Background(), &kv.TxnRequest{Then: []kv.Op{
		kv.PutOp(b("k2"), b("failed")),
		kv.RangeOp(b("k"), nil, kv.RangeOptions{Rev: 99}),
	}})
	if err == nil {
		t.Fatal("txn with a range at a future revision went through")
	}
	if _, err := s.kv.Txn(context.Background(), &kv.TxnRequest{Then: []kv.Op{kv.PutOp(b("k3"), b("ok"))}}); err != nil {
		t.Fatal(err)
	}
	if got, want := events(t, w, 1), []string{"PUT k3@2"}; !slices.Equal(got, want) {
		t.Fatalf("live events %v, want %v", got, want)
	}
	h := s.NewWatcher()
	defer h.Close()
	h.Watch(b("k"), true, 1)
	if got, want := events(t, h, 1), []string{"PUT k3@2"}; !slices.Equal(got, want) {
		t.Fatalf("events from history %v, want %v", got, want)
	}
}
