package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/revkv/revkv/kv"
)

func TestTxnCommitAndAbort(t *testing.T) {
	s := txnFixture(t)
	ctx := context.Background()
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if tx.Rev() != 5 {
		t.Fatalf("Rev before writes %d", tx.Rev())
	}
	res, err := tx.Put(b("a"), b("x"), kv.PutOptions{PrevKV: true})
	if err != nil || res.Rev != 6 || res.PrevKV == nil || string(res.PrevKV.Value) != "11" {
		t.Fatalf("Put = %+v, %v", res, err)
	}
	if res, _ := tx.Put(b("a"), nil, kv.PutOptions{PrevKV: true}); string(res.PrevKV.Value) != "x" {
		t.Fatalf("second put's PrevKV is the txn's own write: %+v", res.PrevKV)
	}
	d, err := tx.DeleteRange(b("b"), b("d"), kv.DeleteOptions{PrevKV: true})
	if err != nil || d.Deleted != 2 || d.Rev != 6 || len(d.PrevKVs) != 2 {
		t.Fatalf("DeleteRange = %+v, %v", d, err)
	}
	r, err := tx.Range(b("a"), []byte{}, RangeOptions{TotalCount: true})
	if err != nil || r.Count != 1 || r.Rev != 6 {
		t.Fatalf("Range inside = %+v, %v", r, err)
	}
	rev, err := tx.Commit()
	if err != nil || rev != 6 || s.Rev() != 6 {
		t.Fatalf("Commit = %d, %v", rev, err)
	}
	if _, err := tx.Commit(); !errors.Is(err, kv.ErrTxnEnded) {
		t.Fatalf("second Commit: %v", err)
	}
	if err := tx.Abort(); !errors.Is(err, kv.ErrTxnEnded) {
		t.Fatalf("Abort after Commit: %v", err)
	}
	if _, err := tx.Range(b("a"), nil, RangeOptions{}); !errors.Is(err, kv.ErrTxnEnded) {
		t.Fatalf("Range after Commit: %v", err)
	}

	// A failed write poisons the txn: Commit aborts it.
	before := snapshotOf(t, s)
	tx, _ = s.Begin(ctx)
	tx.Put(b("p"), b("1"), kv.PutOptions{})
	if _, err := tx.Put(nil, b("2"), kv.PutOptions{}); !errors.Is(err, kv.ErrEmptyKey) {
		t.Fatalf("Put of an empty key: %v", err)
	}
	if _, err := tx.Put(b("q"), nil, kv.PutOptions{}); !errors.Is(err, kv.ErrTxnFailed) || !errors.Is(err, kv.ErrEmptyKey) {
		t.Fatalf("Put after a failed one: %v", err)
	}
	if _, err := tx.Commit(); !errors.Is(err, kv.ErrTxnFailed) || !errors.Is(err, kv.ErrEmptyKey) {
		t.Fatalf("Commit of a poisoned txn: %v", err)
	}
	before.check(t, "a poisoned txn", s)

	// A failed read does not poison it.
	tx, _ = s.Begin(ctx)
	tx.Put(b("p"), b("1"), kv.PutOptions{})
	if r, err := tx.Range(b("p"), nil, RangeOptions{Rev: 99}); !errors.Is(err, ErrFutureRev) || r.Rev != 7 {
		t.Fatalf("Range at a future revision: %+v, %v", r, err)
	}
	if rev, err := tx.Commit(); err != nil || rev != 7 {
		t.Fatalf("Commit after a failed read: %d, %v", rev, err)
	}
}

// TestSeedTxnFailedWrite: the seed API's txn with a failed write is not
// half applied (issue 12: TxnPut(a), TxnPut(nil), TxnEnd committed a).
func TestSeedTxnFailedWrite(t *testing.T) {
	s := newStore(Options{})
	id, _ := s.TxnBegin()
	s.TxnPut(id, b("a"), b("1"))
	if _, err := s.TxnPut(id, nil, b("2")); !errors.Is(err, kv.ErrEmptyKey) {
		t.Fatal(err)
	}
	if _, _, err := s.TxnRange(id, b("a"), nil, 0, 0); !errors.Is(err, kv.ErrTxnFailed) {
		t.Fatalf("TxnRange after a failed write: %v", err)
	}
	if err := s.TxnEnd(id); !errors.Is(err, kv.ErrTxnFailed) {
		t.Fatalf("TxnEnd: %v", err)
	}
	if s.Rev() != 1 {
		t.Fatalf("Rev %d: the txn was applied", s.Rev())
	}
	if err := s.TxnEnd(id); !errors.Is(err, ErrTxnIDMismatch) {
		t.Fatalf("second TxnEnd: %v", err)
	}
	mustPut(t, s, "b", "1") // writers are not blocked
}

// TestTxnContextEnds: a txn abandoned by its owner is aborted when its
// context ends, and the writers waiting behind it go on.
func TestTxnContextEnds(t *testing.T) {
	s := newStore(Options{})
	defer s.Close()
	mustPut(t, s, "a", "0")
	ctx, cancel := context.WithCancelCause(context.Background())
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tx.Put(b("a"), b("txn"), kv.PutOptions{})
	tx.Put(b("new"), b("txn"), kv.PutOptions{})

	var wg sync.WaitGroup
	revs := make(chan int64, 8)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rev, err := s.Put(b("w"), b("1"))
			if err != nil {
				t.Error(err)
			}
			revs <- rev
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		resp, err := s.Txn(context.Background(), &kv.TxnRequest{Then: []kv.Op{kv.PutOp(b("x"), nil)}})
		if err != nil {
			t.Error(err)
		}
		revs <- resp.Rev
	}()
	// Readers never see the txn's writes while the writers wait.
	for range 100 {
		if kvs, _, _ := s.Range(b("a"), nil, 0, 0); string(kvs[0].Value) != "0" {
			t.Fatal("a reader saw the open txn's write")
		}
	}
	select {
	case <-revs:
		t.Fatal("a writer went through while the txn was open")
	case <-time.After(10 * time.Millisecond):
	}
	why := errors.New("owner gone")
	cancel(why)
	wg.Wait()
	close(revs)
	var got []int64
	for r := range revs {
		got = append(got, r)
	}
	slices.Sort(got)
	if !slices.Equal(got, []int64{3, 4, 5, 6, 7}) {
		t.Fatalf("writers after the abort got revisions %v", got)
	}
	if _, err := tx.Put(b("a"), nil, kv.PutOptions{}); !errors.Is(err, kv.ErrTxnEnded) || !errors.Is(err, why) {
		t.Fatalf("Put after the context ended: %v", err)
	}
	if _, err := tx.Commit(); !errors.Is(err, kv.ErrTxnEnded) || !errors.Is(err, why) {
		t.Fatalf("Commit after the context ended: %v", err)
	}
	if kvs, _, _ := s.Range(b("a"), []byte{}, 0, 0); !slices.Equal(keysOf(kvs), []string{"a=0", "w=1", "x="}) {
		t.Fatalf("keys %v", keysOf(kvs))
	}
	// A context that is done already: no txn.
	if _, err := s.Begin(ctx); !errors.Is(err, why) {
		t.Fatalf("Begin with a done context: %v", err)
	}
	// A deadline ends a txn too.
	dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer dcancel()
	tx, _ = s.Begin(dctx)
	tx.Put(b("late"), nil, kv.PutOptions{})
	mustPut(t, s, "after", "deadline") // waits for the deadline
	if _, err := tx.Commit(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Commit after the deadline: %v", err)
	}
	if kvs, _, _ := s.Range(b("late"), nil, 0, 0); len(kvs) != 0 {
		t.Fatal("the expired txn's write is visible")
	}
}

// TestTxnBeginTimeout: the seed API's txn is aborted after TxnTimeout, and
// its ID then says why.
func TestTxnBeginTimeout(t *testing.T) {
	s := newStore(Options{TxnTimeout: 5 * time.Millisecond})
	defer s.Close()
	id, _ := s.TxnBegin()
	s.TxnPut(id, b("a"), nil)
	mustPut(t, s, "b", "1") // a forgotten TxnEnd: waits for the timeout
	if err := s.TxnEnd(id); !errors.Is(err, kv.ErrTxnEnded) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("TxnEnd after the timeout: %v", err)
	}
	if _, err := s.TxnPut(id, b("a"), nil); !errors.Is(err, kv.ErrTxnEnded) {
		t.Fatalf("TxnPut after the timeout: %v", err)
	}
	if kvs, _, _ := s.Range(b("a"), []byte{}, 0, 0); !slices.Equal(keysOf(kvs), []string{"b=1"}) {
		t.Fatalf("keys %v", keysOf(kvs))
	}
	// Begin with a context without a deadline gets the same bound.
	tx, _ := s.Begin(context.Background())
	tx.Put(b("c"), nil, kv.PutOptions{})
	mustPut(t, s, "d", "1")
	if _, err := tx.Commit(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Commit after the timeout: %v", err)
	}
}

// TestCloseEndsTxn: Close with a txn open aborts it rather than waiting
// forever, and the txn's owner learns it.
func TestCloseEndsTxn(t *testing.T) {
	for _, seed := range []bool{false, true} {
		s := newStore(Options{TxnTimeout: -1})
		mustPut(t, s, "a", "0")
		var tx *Txn
		var id int64
		if seed {
			id, _ = s.TxnBegin()
			s.TxnPut(id, b("a"), b("1"))
		} else {
			tx, _ = s.Begin(context.Background())
			tx.Put(b("a"), b("1"), kv.PutOptions{})
		}
		v, _ := s.View()
		done := make(chan error)
		go func() { done <- s.Close() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Close waits for an open txn")
		}
		var err error
		if seed {
			err = s.TxnEnd(id)
		} else {
			_, err = tx.Commit()
		}
		if !errors.Is(err, kv.ErrTxnEnded) || !errors.Is(err, kv.ErrClosed) {
			t.Fatalf("ending the txn after Close: %v", err)
		}
		if res, _ := v.Range(b("a"), nil, RangeOptions{}); string(res.KVs[0].Value) != "0" {
			t.Fatal("a view sees the aborted write")
		}
		if _, err := s.Begin(context.Background()); !errors.Is(err, kv.ErrClosed) {
			t.Fatalf("Begin after Close: %v", err)
		}
	}
}

// TestTxnCloseRace runs Close against txns being begun, written and
// committed, under the race detector: every txn ends, and Close returns.
func TestTxnCloseRace(t *testing.T) {
	for range 20 {
		s := newStore(Options{})
		var wg sync.WaitGroup
		for g := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					tx, err := s.Begin(context.Background())
					if err != nil {
						if !errors.Is(err, kv.ErrClosed) {
							t.Error(err)
						}
						return
					}
					tx.Put([]byte{byte('a' + g)}, []byte{byte(i)}, kv.PutOptions{})
					if i%3 == 0 {
						tx.Abort()
					} else if _, err := tx.Commit(); err != nil && !errors.Is(err, kv.ErrClosed) {
						t.Error(err)
					}
				}
			}()
		}
		time.Sleep(time.Millisecond)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
	}
}

// TestTxnConsistentIndex: Store.Txn and Begin are one entry each: a
// replayed entry is skipped, and an aborted txn records no index.
func TestTxnConsistentIndex(t *testing.T) {
	ci := &index{i: 5}
	s := newStore(Options{ConsistentIndex: ci})
	req := &kv.TxnRequest{Then: []kv.Op{kv.PutOp(b("a"), b("1"))}}
	if resp, err := s.Txn(context.Background(), req); err != nil || resp.Rev != 2 || !resp.Succeeded {
		t.Fatalf("entry 5: %+v, %v", resp, err)
	}
	resp, err := s.Txn(context.Background(), req)
	if err != nil || resp.Rev != 2 || resp.Succeeded || len(resp.Responses) != 0 {
		t.Fatalf("replayed entry 5: %+v, %v; want a skipped response at 2", resp, err)
	}
	ci.i = 6
	tx, _ := s.Begin(context.Background())
	tx.Put(b("b"), nil, kv.PutOptions{})
	tx.Abort()
	if s.ConsistentIndex() != 5 {
		t.Fatalf("index %d after an aborted txn, want 5", s.ConsistentIndex())
	}
	// A failed Txn records none either; entry 6 then applies.
	if _, err := s.Txn(context.Background(), &kv.TxnRequest{Then: []kv.Op{kv.PutOp(b("c"), nil), kv.RangeOp(b("a"), nil, kv.RangeOptions{Rev: 9})}}); err == nil {
		t.Fatal("txn with a future range went through")
	}
	if s.ConsistentIndex() != 5 {
		t.Fatalf("index %d after a failed txn, want 5", s.ConsistentIndex())
	}
	if resp, err := s.Txn(context.Background(), req); err != nil || resp.Rev != 3 || s.ConsistentIndex() != 6 {
		t.Fatalf("entry 6: %+v, %v, index %d", resp, err, s.ConsistentIndex())
	}
}

// TestTxnChangeBufferReused runs txns of several changes back to back, of
// every kind (TxnBegin, Begin, Store.Txn), with aborted ones between: each
// collects its changes in a buffer the next one reuses, so the history
// must hold a copy of each revision's changes, not the buffer.
func TestTxnChangeBufferReused(t *testing.T) {
	s := newStore(Options{})
	defer s.Close()
	type want struct {
		rev  int64
		keys []string
	}
	var wants []want
	for i := range 12 {
		keys := []string{fmt.Sprintf("a%d", i), fmt.Sprintf("b%d", i), fmt.Sprintf("c%d", i)}[:1+i%3]
		var rev int64
		switch i % 3 {
		case 0:
			id, _ := s.TxnBegin()
			for _, k := range keys {
				if _, err := s.TxnPut(id, []byte(k), []byte(k)); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.TxnEnd(id); err != nil {
				t.Fatal(err)
			}
			rev = s.Rev()
		case 1:
			tx, err := s.Begin(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range keys {
				if _, err := tx.Put([]byte(k), []byte(k), kv.PutOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			if rev, err = tx.Commit(); err != nil {
				t.Fatal(err)
			}
		case 2:
			req := &kv.TxnRequest{}
			for _, k := range keys {
				req.Then = append(req.Then, kv.Op{Type: kv.OpPut, Key: []byte(k), Value: []byte(k)})
			}
			res, err := s.Txn(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			rev = res.Rev
		}
		wants = append(wants, want{rev, keys})
		// An aborted txn of as many changes, through the same buffer.
		tx, err := s.Begin(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for j := range 4 {
			tx.Put(fmt.Appendf(nil, "x%d", j), []byte("aborted"), kv.PutOptions{})
		}
		if err := tx.Abort(); err != nil {
			t.Fatal(err)
		}
	}
	v, _ := s.View()
	for _, w := range wants {
		var got []string
		for ev, err := range v.Events(w.rev) {
			if err != nil {
				t.Fatal(err)
			}
			if ev.KV.ModRevision != w.rev {
				break
			}
			if !bytes.Equal(ev.KV.Key, ev.KV.Value) {
				t.Fatalf("revision %d: key %q with value %q", w.rev, ev.KV.Key, ev.KV.Value)
			}
			got = append(got, string(ev.KV.Key))
		}
		if !slices.Equal(got, w.keys) {
			t.Fatalf("revision %d: changes %q, want %q", w.rev, got, w.keys)
		}
	}
}

// TestHotCacheForgets updates keys through the writer's cache of hot
// records across what replaces or removes records: a compaction (which
// gives keys with several versions new records), a delete compacted away,
// and an aborted txn that made and updated a key. Each later put must land
// in the key's record in the index, as reads show.
func TestHotCacheForgets(t *testing.T) {
	defer func(h int) { hotAfter = h }(hotAfter)
	hotAfter = 0
	s := newStore(Options{})
	defer s.Close()
	get := func(k string) (string, int64) {
		kvs, _, err := s.Range([]byte(k), nil, 0, 0)
		if err != nil || len(kvs) > 1 {
			t.Fatalf("get %q: %v %v", k, kvs, err)
		}
		if len(kvs) == 0 {
			return "", 0
		}
		return string(kvs[0].Value), kvs[0].Version
	}
	put := func(k, v string) {
		t.Helper()
		if _, err := s.Put([]byte(k), []byte(v)); err != nil {
			t.Fatal(err)
		}
		if got, _ := get(k); got != v {
			t.Fatalf("after put %q=%q: read %q", k, v, got)
		}
	}
	for i := range 3 {
		put("a", fmt.Sprint("a", i))
		put("b", fmt.Sprint("b", i))
	}
	if err := s.Compact(s.Rev()); err != nil { // a and b get new records
		t.Fatal(err)
	}
	put("a", "a3")
	if v, ver := get("a"); v != "a3" || ver != 4 {
		t.Fatalf("a after the compaction: %q version %d", v, ver)
	}
	s.DeleteRange([]byte("b"), nil)
	if err := s.Compact(s.Rev()); err != nil { // b leaves the index
		t.Fatal(err)
	}
	put("b", "b-again")
	if _, ver := get("b"); ver != 1 {
		t.Fatalf("b put again after its delete was compacted: version %d", ver)
	}
	tx, _ := s.Begin(context.Background())
	tx.Put([]byte("c"), []byte("c0"), kv.PutOptions{})
	tx.Put([]byte("c"), []byte("c1"), kv.PutOptions{}) // an update of the txn's own record
	tx.Abort()
	put("c", "c-after-abort")
	put("c", "c-again")
	if v, ver := get("c"); v != "c-again" || ver != 2 {
		t.Fatalf("c after the aborted txn: %q version %d", v, ver)
	}
}

// TestTxnTimerShared: one timer serves every txn (see txnTimer). Txns that
// end in time are not aborted, however often it fires among them; one open
// past the timeout is aborted, and so is the next one after it; a txn whose
// context has a deadline is left to that context.
func TestTxnTimerShared(t *testing.T) {
	const timeout = 20 * time.Millisecond
	s := newStore(Options{TxnTimeout: timeout})
	defer s.Close()
	for start := time.Now(); time.Since(start) < 3*timeout; {
		id, err := s.TxnBegin()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.TxnPut(id, b("quick"), nil); err != nil {
			t.Fatal(err)
		}
		time.Sleep(timeout / 8)
		if err := s.TxnEnd(id); err != nil {
			t.Fatalf("a txn open for an eighth of the timeout: %v", err)
		}
	}
	for range 2 {
		id, _ := s.TxnBegin()
		s.TxnPut(id, b("slow"), nil)
		begun := time.Now()
		mustPut(t, s, "after", "1") // waits for the timeout
		if d := time.Since(begun); d < timeout {
			t.Fatalf("a txn aborted after %v, timeout %v", d, timeout)
		}
		if err := s.TxnEnd(id); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("TxnEnd after the timeout: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*timeout)
	defer cancel()
	tx, _ := s.Begin(ctx)
	time.Sleep(2 * timeout)
	if _, err := tx.Put(b("ctx"), nil, kv.PutOptions{}); err != nil {
		t.Fatalf("a txn with a context deadline aborted by the txn timeout: %v", err)
	}
	if _, err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}
