package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/revkv/revkv/kv"
)

// txnFixture is a store with a at version 2 (create 2, mod 5, value 11),
// b (create 3, mod 3, value 2) and c with lease 5 (create 4, mod 4, value
// 3), at revision 5.
func txnFixture(t *testing.T) *Store {
	t.Helper()
	s := newStore(Options{ManualLeaseExpiry: true})
	mustPut(t, s, "a", "1")
	mustPut(t, s, "b", "2")
	if _, err := s.Grant(5, 3600); err != nil { // does not move the revision
		t.Fatal(err)
	}
	if _, err := s.PutLease(b("c"), b("3"), 5); err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, "a", "11")
	return s
}

func TestTxnCompares(t *testing.T) {
	s := txnFixture(t)
	key := func(k string) kv.Compare { return kv.Compare{Key: b(k)} }
	val := func(k string, r kv.CompareResult, v string) kv.Compare {
		c := key(k)
		c.Target, c.Result, c.Value = kv.CompareValue, r, b(v)
		return c
	}
	num := func(k string, tg kv.CompareTarget, r kv.CompareResult, n int64) kv.Compare {
		c := key(k)
		c.Target, c.Result = tg, r
		switch tg {
		case kv.CompareVersion:
			c.Version = n
		case kv.CompareCreate:
			c.CreateRevision = n
		case kv.CompareMod:
			c.ModRevision = n
		case kv.CompareLease:
			c.Lease = n
		}
		return c
	}
	span := func(c kv.Compare, end string) kv.Compare {
		c.End = b(end)
		return c
	}
	const (
		eq, ne, lt, gt = kv.CompareEqual, kv.CompareNotEqual, kv.CompareLess, kv.CompareGreater
		ver, cre, mod  = kv.CompareVersion, kv.CompareCreate, kv.CompareMod
		lea            = kv.CompareLease
	)
	cases := []struct {
		name string
		c    kv.Compare
		want bool
	}{
		{"value =", val("a", eq, "11"), true},
		{"value = other", val("a", eq, "1"), false},
		{"value !=", val("a", ne, "1"), true},
		{"value != same", val("a", ne, "11"), false},
		{"value <", val("a", lt, "2"), true}, // bytes: "11" < "2"
		{"value < not", val("a", lt, "10"), false},
		{"value >", val("a", gt, "10"), true},
		{"value > not", val("a", gt, "2"), false},
		{"value of a missing key =", val("x", eq, ""), false},
		{"value of a missing key !=", val("x", ne, "v"), false},
		{"value of a missing key <", val("x", lt, "v"), false},
		{"value of a missing key >", val("x", gt, ""), false},

		{"version =", num("a", ver, eq, 2), true},
		{"version = other", num("a", ver, eq, 1), false},
		{"version !=", num("a", ver, ne, 1), true},
		{"version <", num("a", ver, lt, 3), true},
		{"version < not", num("a", ver, lt, 2), false},
		{"version >", num("a", ver, gt, 1), true},
		{"version > not", num("a", ver, gt, 2), false},
		{"version of a missing key = 0", num("x", ver, eq, 0), true},
		{"version of a missing key < 1", num("x", ver, lt, 1), true},
		{"version of a missing key > 0", num("x", ver, gt, 0), false},
		{"version of a missing key != 0", num("x", ver, ne, 0), false},

		{"create =", num("a", cre, eq, 2), true},
		{"create !=", num("a", cre, ne, 2), false},
		{"create <", num("b", cre, lt, 4), true},
		{"create >", num("b", cre, gt, 3), false},
		{"create of a missing key = 0", num("x", cre, eq, 0), true},
		{"create of a missing key > 0", num("x", cre, gt, 0), false},

		{"mod =", num("a", mod, eq, 5), true},
		{"mod = create", num("a", mod, eq, 2), false},
		{"mod !=", num("b", mod, ne, 5), true},
		{"mod <", num("a", mod, lt, 6), true},
		{"mod >", num("a", mod, gt, 5), false},
		{"mod of a missing key = 0", num("x", mod, eq, 0), true},
		{"mod of a missing key < 2", num("x", mod, lt, 2), true},

		{"lease =", num("c", lea, eq, 5), true},
		{"lease !=", num("c", lea, ne, 5), false},
		{"lease of a key without one = 0", num("a", lea, eq, 0), true},
		{"lease >", num("c", lea, gt, 4), true},
		{"lease <", num("c", lea, lt, 5), false},
		{"lease of a missing key = 0", num("x", lea, eq, 0), true},

		{"range: every version > 0", span(num("a", ver, gt, 0), "d"), true},
		{"range: every mod < 5 (a's is 5)", span(num("a", mod, lt, 5), "d"), false},
		{"range: every lease = 0 (c's is 5)", span(num("a", lea, eq, 0), "d"), false},
		{"range: every lease = 0 in [a, c)", span(num("a", lea, eq, 0), "c"), true},
		{"range: every value != x", span(val("a", ne, "x"), "d"), true},
		{"range from key (\\x00): every create >= 3", span(num("b", cre, gt, 2), "\x00"), true},
		{"range from key (empty end)", kv.Compare{Key: b("b"), End: []byte{}, Target: cre, Result: gt, CreateRevision: 3}, false},
		{"empty range: version = 0", span(num("x", ver, eq, 0), "z"), true},
		{"empty range: value fails", span(val("x", ne, "v"), "z"), false},
		{"end before key: version = 0", span(num("c", ver, eq, 0), "a"), true},
	}
	for _, c := range cases {
		resp, err := s.Txn(context.Background(), &kv.TxnRequest{Compare: []kv.Compare{c.c}})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if resp.Succeeded != c.want {
			t.Errorf("%s: Succeeded = %v, want %v", c.name, resp.Succeeded, c.want)
		}
		if resp.Rev != 5 {
			t.Errorf("%s: Rev = %d, want 5", c.name, resp.Rev)
		}
	}
	// Several compares: all must hold.
	both := []kv.Compare{num("a", ver, eq, 2), val("b", eq, "2")}
	if resp, _ := s.Txn(context.Background(), &kv.TxnRequest{Compare: both}); !resp.Succeeded {
		t.Error("two compares that hold: not Succeeded")
	}
	both[1].Value = b("3")
	if resp, _ := s.Txn(context.Background(), &kv.TxnRequest{Compare: both}); resp.Succeeded {
		t.Error("one compare of two fails: Succeeded")
	}
	if s.Rev() != 5 {
		t.Fatalf("compares moved the revision to %d", s.Rev())
	}
}

func TestTxnBranches(t *testing.T) {
	s := txnFixture(t)
	ctx := context.Background()
	cas := func(modRev int64, value string) *kv.TxnRequest {
		return &kv.TxnRequest{
			Compare: []kv.Compare{{Key: b("a"), Target: kv.CompareMod, ModRevision: modRev}},
			Then: []kv.Op{
				{Type: kv.OpPut, Key: b("a"), Value: b(value), Put: kv.PutOptions{PrevKV: true}},
				kv.RangeOp(b("a"), b("z"), kv.RangeOptions{}),
			},
			Else: []kv.Op{kv.RangeOp(b("a"), nil, kv.RangeOptions{})},
		}
	}
	resp, err := s.Txn(ctx, cas(5, "cas"))
	if err != nil || !resp.Succeeded || resp.Rev != 6 || len(resp.Responses) != 2 {
		t.Fatalf("CAS that holds: %+v, %v", resp, err)
	}
	put := resp.Responses[0]
	if put.Type != kv.OpPut || put.Put.Rev != 6 || put.Put.PrevKV == nil || string(put.Put.PrevKV.Value) != "11" {
		t.Fatalf("put response %+v", put)
	}
	rng := resp.Responses[1].Range
	if got := keysOf(rng.KVs); !slices.Equal(got, []string{"a=cas", "b=2", "c=3"}) || rng.Rev != 6 {
		t.Fatalf("range after the put inside the txn: %v at %d", got, rng.Rev)
	}
	// The same CAS again: a's mod revision moved, so Else runs.
	resp, err = s.Txn(ctx, cas(5, "again"))
	if err != nil || resp.Succeeded || resp.Rev != 6 || len(resp.Responses) != 1 {
		t.Fatalf("CAS that fails: %+v, %v", resp, err)
	}
	if kvs := resp.Responses[0].Range.KVs; len(kvs) != 1 || string(kvs[0].Value) != "cas" {
		t.Fatalf("Else range: %v", kvs)
	}
	// A txn of several writes is one revision, sub-revisions in order.
	resp, err = s.Txn(ctx, &kv.TxnRequest{Then: []kv.Op{
		kv.PutOp(b("n1"), b("1")),
		{Type: kv.OpDeleteRange, Key: b("b"), End: b("d"), Delete: kv.DeleteOptions{PrevKV: true}},
		kv.PutOp(b("n2"), b("2")),
	}})
	if err != nil || resp.Rev != 7 {
		t.Fatalf("txn of writes: %+v, %v", resp, err)
	}
	if d := resp.Responses[1].Delete; d.Deleted != 2 || d.Rev != 7 || len(d.PrevKVs) != 2 || string(d.PrevKVs[1].Value) != "3" {
		t.Fatalf("delete response %+v", d)
	}
	v, _ := s.View()
	var evs []string
	for ev := range v.Events(7) {
		evs = append(evs, fmt.Sprintf("%v %s %v", ev.Type, ev.KV.Key, ev.Revision()))
	}
	if want := []string{"PUT n1 7.0", "DELETE b 7.1", "DELETE c 7.2", "PUT n2 7.3"}; !slices.Equal(evs, want) {
		t.Fatalf("events %v, want %v", evs, want)
	}
	// A txn that only reads, and one that writes nothing, keep the revision.
	resp, err = s.Txn(ctx, &kv.TxnRequest{Then: []kv.Op{kv.DeleteOp(b("nothing"), nil)}})
	if err != nil || resp.Rev != 7 || resp.Responses[0].Delete.Rev != 7 || s.Rev() != 7 {
		t.Fatalf("txn that deletes nothing: %+v, %v, rev %d", resp, err, s.Rev())
	}
}

func TestTxnNested(t *testing.T) {
	s := txnFixture(t)
	// The outer txn puts a; the nested txn's compare still reads a's value
	// before the txn (etcd evaluates every compare first), so its Then runs.
	req := &kv.TxnRequest{
		Then: []kv.Op{
			kv.PutOp(b("a"), b("new")),
			kv.TxnOp(&kv.TxnRequest{
				Compare: []kv.Compare{{Key: b("a"), Target: kv.CompareValue, Value: b("11")}},
				Then: []kv.Op{
					kv.PutOp(b("t"), b("then")),
					kv.TxnOp(&kv.TxnRequest{
						Compare: []kv.Compare{{Key: b("t"), Target: kv.CompareVersion, Result: kv.CompareGreater}},
						Then:    []kv.Op{kv.PutOp(b("deep"), b("then"))},
						Else:    []kv.Op{kv.PutOp(b("deep"), b("else"))},
					}),
				},
				Else: []kv.Op{kv.PutOp(b("t"), b("else"))},
			}),
			kv.RangeOp(b("a"), b("z"), kv.RangeOptions{KeysOnly: true}),
		},
	}
	resp, err := s.Txn(context.Background(), req)
	if err != nil || !resp.Succeeded || resp.Rev != 6 {
		t.Fatalf("nested txn: %+v, %v", resp, err)
	}
	in := resp.Responses[1].Txn
	if in == nil || !in.Succeeded || in.Rev != 6 || len(in.Responses) != 2 {
		t.Fatalf("nested response %+v", in)
	}
	if deep := in.Responses[1].Txn; deep == nil || deep.Succeeded {
		t.Fatalf("deepest txn: %+v (t did not exist before the txn: its version compares as 0)", deep)
	}
	want := []string{"a=", "b=", "c=", "deep=", "t="}
	if got := keysOf(resp.Responses[2].Range.KVs); !slices.Equal(got, want) {
		t.Fatalf("keys after the nested txns: %v, want %v", got, want)
	}
	if kvs, _, _ := s.Range(b("deep"), nil, 0, 0); len(kvs) != 1 || string(kvs[0].Value) != "else" {
		t.Fatalf("deep = %v", kvs)
	}
	// A nil nested request is an empty one.
	if resp, err := s.Txn(context.Background(), &kv.TxnRequest{Then: []kv.Op{{Type: kv.OpTxn}}}); err != nil || !resp.Responses[0].Txn.Succeeded {
		t.Fatalf("nil nested txn: %+v, %v", resp, err)
	}
}

// unchanged records what a failed txn must leave as it was.
type unchanged struct {
	rev    int64
	hash   uint32
	keys   []string
	events int
}

func snapshotOf(t *testing.T, s *Store) unchanged {
	t.Helper()
	h, err := s.Hash()
	if err != nil {
		t.Fatal(err)
	}
	kvs, _, _ := s.Range(b("\x00"), []byte{}, 0, 0)
	v, _ := s.View()
	n := 0
	for range v.Events(0) {
		n++
	}
	var keys []string
	for _, kv := range kvs {
		keys = append(keys, fmt.Sprintf("%s=%s@%d/%d/%d", kv.Key, kv.Value, kv.ModRevision, kv.CreateRevision, kv.Version))
	}
	return unchanged{rev: s.Rev(), hash: h, keys: keys, events: n}
}

func (u unchanged) check(t *testing.T, what string, s *Store) {
	t.Helper()
	got := snapshotOf(t, s)
	if got.rev != u.rev || got.hash != u.hash || !slices.Equal(got.keys, u.keys) || got.events != u.events {
		t.Fatalf("%s changed the store: %+v, was %+v", what, got, u)
	}
}

func TestTxnRefused(t *testing.T) {
	s := newStore(Options{MaxTxnOps: 3})
	mustPut(t, s, "a", "1")
	mustPut(t, s, "b", "2")
	mustPut(t, s, "c", "3")
	if err := s.Compact(3); err != nil {
		t.Fatal(err)
	}
	before := snapshotOf(t, s)
	put := kv.PutOp
	del := kv.DeleteOp
	get := func(k string, o kv.RangeOptions) kv.Op { return kv.RangeOp(b(k), nil, o) }
	nest := func(then, els []kv.Op) kv.Op { return kv.TxnOp(&kv.TxnRequest{Then: then, Else: els}) }
	fail := []kv.Compare{{Key: b("a"), Target: kv.CompareVersion, Result: kv.CompareGreater, Version: 9}}
	cases := []struct {
		name string
		req  kv.TxnRequest
		err  error
	}{
		{"empty compare key", kv.TxnRequest{Compare: []kv.Compare{{}}}, kv.ErrEmptyKey},
		{"empty put key", kv.TxnRequest{Then: []kv.Op{put(nil, b("v"))}}, kv.ErrEmptyKey},
		{"empty range key", kv.TxnRequest{Else: []kv.Op{kv.RangeOp(nil, []byte{}, kv.RangeOptions{})}}, kv.ErrEmptyKey},
		{"empty delete key", kv.TxnRequest{Then: []kv.Op{del(nil, []byte{})}}, kv.ErrEmptyKey},
		{"empty key in a nested txn", kv.TxnRequest{Then: []kv.Op{nest([]kv.Op{put(nil, nil)}, nil)}}, kv.ErrEmptyKey},
		{"unknown op", kv.TxnRequest{Then: []kv.Op{{Type: 9, Key: b("a")}}}, kv.ErrKeyNotFound},
		{"too many compares", kv.TxnRequest{Compare: make([]kv.Compare, 4)}, kv.ErrTooManyOps},
		{"too many ops", kv.TxnRequest{Else: []kv.Op{get("a", kv.RangeOptions{}), get("a", kv.RangeOptions{}), get("a", kv.RangeOptions{}), get("a", kv.RangeOptions{})}}, kv.ErrTooManyOps},
		{"nested over what is left of the limit", kv.TxnRequest{Then: []kv.Op{put(b("x"), nil), nest([]kv.Op{put(b("y"), nil), put(b("z"), nil)}, nil)}}, kv.ErrTooManyOps},
		{"bad sort order", kv.TxnRequest{Then: []kv.Op{get("a", kv.RangeOptions{SortOrder: 3})}}, kv.ErrInvalidSortOption},
		{"bad sort target", kv.TxnRequest{Then: []kv.Op{get("a", kv.RangeOptions{SortTarget: 5})}}, kv.ErrInvalidSortOption},
		{"ignore value with a value", kv.TxnRequest{Then: []kv.Op{{Type: kv.OpPut, Key: b("a"), Value: b("v"), Put: kv.PutOptions{IgnoreValue: true}}}}, kv.ErrValueProvided},
		{"ignore lease with a lease", kv.TxnRequest{Then: []kv.Op{{Type: kv.OpPut, Key: b("a"), Put: kv.PutOptions{IgnoreLease: true, Lease: 3}}}}, kv.ErrLeaseProvided},
		{"one key put twice", kv.TxnRequest{Then: []kv.Op{put(b("a"), nil), put(b("a"), nil)}}, kv.ErrDuplicateKey},
		{"put of a deleted key", kv.TxnRequest{Else: []kv.Op{del(b("a"), nil), put(b("a"), nil)}}, kv.ErrDuplicateKey},
		{"put inside a deleted range", kv.TxnRequest{Then: []kv.Op{put(b("b"), nil), del(b("a"), b("c"))}}, kv.ErrDuplicateKey},
		{"put inside a from-key delete", kv.TxnRequest{Then: []kv.Op{put(b("x"), nil), del(b("a"), []byte{})}}, kv.ErrDuplicateKey},
		{"nested put of an outer put", kv.TxnRequest{Then: []kv.Op{put(b("a"), nil), nest([]kv.Op{put(b("a"), nil)}, nil)}}, kv.ErrDuplicateKey},
		{"nested else put of an outer put", kv.TxnRequest{Then: []kv.Op{put(b("a"), nil), nest(nil, []kv.Op{put(b("a"), nil)})}}, kv.ErrDuplicateKey},
		{"nested put of an outer delete", kv.TxnRequest{Then: []kv.Op{del(b("a"), b("c")), nest([]kv.Op{put(b("b"), nil)}, nil)}}, kv.ErrDuplicateKey},
		{"outer put of a nested delete", kv.TxnRequest{Then: []kv.Op{put(b("b"), nil), nest(nil, []kv.Op{del(b("b"), nil)})}}, kv.ErrDuplicateKey},
		{"two nested txns put one key", kv.TxnRequest{Then: []kv.Op{nest([]kv.Op{put(b("a"), nil)}, nil), nest(nil, []kv.Op{put(b("a"), nil)})}}, kv.ErrDuplicateKey},
		{"duplicate in the branch that does not run", kv.TxnRequest{Compare: fail, Then: []kv.Op{put(b("a"), nil), put(b("a"), nil)}}, kv.ErrDuplicateKey},

		// Errors found while running: what ran before is taken back.
		{"ignore value of a missing key", kv.TxnRequest{Then: []kv.Op{put(b("new"), b("v")), del(b("b"), nil), {Type: kv.OpPut, Key: b("x"), Put: kv.PutOptions{IgnoreValue: true}}}}, kv.ErrKeyNotFound},
		{"ignore lease of a missing key", kv.TxnRequest{Then: []kv.Op{put(b("a"), b("v")), {Type: kv.OpPut, Key: b("x"), Put: kv.PutOptions{IgnoreLease: true}}}}, kv.ErrKeyNotFound},
		{"range at a future revision", kv.TxnRequest{Then: []kv.Op{put(b("new"), b("v")), get("a", kv.RangeOptions{Rev: 5})}}, ErrFutureRev},
		{"range at the txn's own revision", kv.TxnRequest{Then: []kv.Op{put(b("new"), b("v")), get("a", kv.RangeOptions{Rev: 5})}}, ErrFutureRev},
		{"range below the compacted revision", kv.TxnRequest{Then: []kv.Op{del(b("a"), nil), get("a", kv.RangeOptions{Rev: 2})}}, ErrCompacted},
		{"a nested txn's failure", kv.TxnRequest{Then: []kv.Op{put(b("p"), nil), nest([]kv.Op{get("a", kv.RangeOptions{Rev: 9})}, nil)}}, ErrFutureRev},
		{"too large", kv.TxnRequest{Then: []kv.Op{put(b("p"), nil), put(b("q"), make([]byte, MaxValueSize+1))}}, kv.ErrTooLarge},
	}
	for _, c := range cases {
		resp, err := s.Txn(context.Background(), &c.req)
		if !errors.Is(err, c.err) {
			t.Errorf("%s: error %v, want %v", c.name, err, c.err)
		}
		if resp == nil || resp.Rev != 4 {
			t.Errorf("%s: response %+v, want the store's revision 4", c.name, resp)
		}
		before.check(t, c.name, s)
	}
	// What etcd lets through: the Then and Else of one nested txn put the
	// same key; a put beside a delete whose end is "\x00" (etcd's check
	// counts that delete as deleting nothing).
	for _, c := range []struct {
		name string
		req  *kv.TxnRequest
	}{
		{"then and else", &kv.TxnRequest{Then: []kv.Op{nest([]kv.Op{put(b("a"), nil)}, []kv.Op{put(b("a"), nil)})}}},
		{"\\x00 end", &kv.TxnRequest{Then: []kv.Op{del(b("a"), b("\x00")), put(b("b"), b("again"))}}},
	} {
		if _, err := s.Txn(context.Background(), c.req); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	if kvs, _, _ := s.Range(b("a"), []byte{}, 0, 0); len(kvs) != 1 || string(kvs[0].Value) != "again" {
		t.Fatalf("after the delete from a (\\x00) and put of b: %v", keysOf(kvs))
	}
	// A canceled context: nothing runs.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Txn(ctx, &kv.TxnRequest{Then: []kv.Op{put(b("x"), nil)}}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Txn with a canceled context: %v", err)
	}
	s.Close()
	if _, err := s.Txn(context.Background(), &kv.TxnRequest{Then: []kv.Op{put(b("x"), nil)}}); !errors.Is(err, kv.ErrClosed) {
		t.Fatalf("Txn after Close: %v", err)
	}
	if _, err := s.Txn(context.Background(), &kv.TxnRequest{}); !errors.Is(err, kv.ErrClosed) {
		t.Fatalf("read-only Txn after Close: %v", err)
	}
}

// TestTxnRollbackKeepsViews: a txn that fails after writing over many
// versions of a key (growing its list past a block) and creating keys
// leaves every held view, later writes and compaction as if it never ran.
func TestTxnRollbackKeepsViews(t *testing.T) {
	s := newStore(Options{})
	for i := range blockSize + 3 {
		mustPut(t, s, "hot", fmt.Sprint(i))
	}
	mustPut(t, s, "one", "1")
	v0, _ := s.View()
	before := snapshotOf(t, s)
	tx, err := s.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2*blockSize + 5 {
		if _, err := tx.Put(b("hot"), b(fmt.Sprint("t", i)), kv.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 * maxFresh {
		tx.Put(b(fmt.Sprintf("new%03d", i)), b("n"), kv.PutOptions{})
	}
	tx.Put(b("one"), b("2"), kv.PutOptions{})
	tx.DeleteRange(b("one"), nil, kv.DeleteOptions{})
	if res, _ := tx.Range(b("new"), b("nex"), RangeOptions{CountOnly: true}); res.Count != int64(3*maxFresh) {
		t.Fatalf("txn sees %d of its new keys", res.Count)
	}
	if err := tx.Abort(); err != nil {
		t.Fatal(err)
	}
	before.check(t, "an aborted txn", s)
	if err := tx.Abort(); !errors.Is(err, kv.ErrTxnEnded) {
		t.Fatalf("second Abort: %v", err)
	}
	if _, err := tx.Put(b("x"), nil, kv.PutOptions{}); !errors.Is(err, kv.ErrTxnEnded) {
		t.Fatalf("Put after Abort: %v", err)
	}
	// Later writes start from the state before the txn.
	for i := range blockSize {
		mustPut(t, s, "hot", fmt.Sprint("after", i))
	}
	mustPut(t, s, "new000", "x")
	kvs, _, _ := s.Range(b("hot"), nil, 0, 0)
	if kvs[0].Version != 2*blockSize+3 || string(kvs[0].Value) != fmt.Sprint("after", blockSize-1) {
		t.Fatalf("hot after the abort and more puts: %+v", kvs[0])
	}
	if kvs, _, _ := s.Range(b("new000"), nil, 0, 0); kvs[0].Version != 1 || kvs[0].CreateRevision != s.Rev() {
		t.Fatalf("a key the aborted txn created, put again: %+v", kvs[0])
	}
	if res, _ := v0.Range(b("hot"), nil, RangeOptions{}); string(res.KVs[0].Value) != fmt.Sprint(blockSize+2) {
		t.Fatalf("view before the txn: hot = %q", res.KVs[0].Value)
	}
	for r := int64(2); r < s.Rev(); r += 17 {
		kvs, _, err := s.Range(b("hot"), nil, 0, r)
		if err != nil || len(kvs) != 1 || kvs[0].ModRevision != r {
			t.Fatalf("hot at %d: %v, %v", r, kvs, err)
		}
	}
	if err := s.Compact(s.Rev() - 5); err != nil {
		t.Fatal(err)
	}
	if res, _ := v0.Range(b("hot"), nil, RangeOptions{}); string(res.KVs[0].Value) != fmt.Sprint(blockSize+2) {
		t.Fatalf("view before the txn, after compaction: hot = %q", res.KVs[0].Value)
	}
}
