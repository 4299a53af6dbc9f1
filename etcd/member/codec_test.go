package member

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/revkv/revkv/kv"
)

// sampleRequests cover every kind and every field of the codec.
func sampleRequests() []Request {
	full := &kv.TxnRequest{
		Compare: []kv.Compare{
			{Key: []byte("a"), End: []byte{}, Target: kv.CompareValue, Result: kv.CompareGreater, Value: []byte("v")},
			{Key: []byte("b"), Target: kv.CompareMod, Result: kv.CompareNotEqual, Version: -1, CreateRevision: 2, ModRevision: 1 << 40, Lease: 9},
		},
		Then: []kv.Op{
			{Type: kv.OpRange, Key: []byte("r"), End: []byte("s"), Range: kv.RangeOptions{Limit: 10, Rev: 4, CountOnly: true, KeysOnly: true, TotalCount: true,
				SortOrder: kv.SortOrder(2), SortTarget: kv.SortTarget(3), MinModRevision: 1, MaxModRevision: 2, MinCreateRevision: 3, MaxCreateRevision: 4}},
			{Type: kv.OpPut, Key: []byte("p"), Value: []byte{}, Put: kv.PutOptions{Lease: 5, IgnoreValue: true, IgnoreLease: true, PrevKV: true}},
			{Type: kv.OpDeleteRange, Key: []byte("d"), End: []byte{0}, Delete: kv.DeleteOptions{PrevKV: true}},
			{Type: kv.OpTxn, Txn: &kv.TxnRequest{Else: []kv.Op{{Type: kv.OpPut, Key: []byte("nested")}}}},
		},
		Else: []kv.Op{{Type: kv.OpPut, Key: []byte("e"), Value: bytes.Repeat([]byte("x"), 300)}},
	}
	return []Request{
		putReq("k", "v"),
		{Txn: &kv.TxnRequest{}},
		{Txn: full},
		{Compact: i64(0)},
		{Compact: i64(-7)},
		{Compact: i64(1 << 62)},
		{LeaseGrant: &LeaseGrant{ID: 0, TTL: 5}},
		{LeaseGrant: &LeaseGrant{ID: 1<<63 - 1, TTL: kv.MaxLeaseTTL}},
		{LeaseRevoke: 3},
		{LeaseRevoke: -3},
		{attrs: &Peer{ID: 3, Name: "m3", ClientURLs: []string{"http://c3:2379", ""}}},
		{attrs: &Peer{ID: 1 << 60}},
	}
}

func TestEntryRoundTrip(t *testing.T) {
	for i, req := range sampleRequests() {
		id := requestID{Member: uint64(i) + 1, Epoch: 1 << 50, Seq: uint64(i) * 1000}
		k, err := req.kind()
		if err != nil {
			t.Fatal(err)
		}
		data := encodeEntry(id, &req, k)
		gotID, got, err := decodeEntry(data)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if gotID != id || !reflect.DeepEqual(got, req) {
			t.Fatalf("request %d: got %+v %+v, want %+v %+v", i, gotID, got, id, req)
		}
		// Every strict prefix is refused, never a panic.
		for n := range len(data) {
			if _, _, err := decodeEntry(data[:n]); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("request %d: prefix of %d bytes: %v", i, n, err)
			}
		}
		if _, _, err := decodeEntry(append(data, 0)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("request %d: trailing byte: %v", i, err)
		}
	}
}

func TestEntryRefused(t *testing.T) {
	good := encodeEntry(requestID{1, 2, 3}, &Request{LeaseRevoke: 1}, kindLeaseRevoke)
	bad := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	for name, data := range map[string][]byte{
		"empty":       nil,
		"version 2":   bad(func(b []byte) []byte { b[0] = 2; return b }),
		"kind 0":      bad(func(b []byte) []byte { b[4] = 0; return b }),
		"kind 9":      bad(func(b []byte) []byte { b[4] = 9; return b }),
		"revoke of 0": encodeEntry(requestID{}, &Request{LeaseRevoke: 0}, kindLeaseRevoke),
		"deep txn":    deepTxn(maxTxnDepth + 2),
	} {
		if _, _, err := decodeEntry(data); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, _, err := decodeEntry(deepTxn(maxTxnDepth)); err != nil {
		t.Errorf("txn nested %d deep: %v", maxTxnDepth, err)
	}
}

// deepTxn returns an entry whose txn nests depth txns.
func deepTxn(depth int) []byte {
	t := &kv.TxnRequest{}
	for range depth {
		t = &kv.TxnRequest{Then: []kv.Op{{Type: kv.OpTxn, Txn: t}}}
	}
	return encodeEntry(requestID{}, &Request{Txn: t}, kindTxn)
}

func TestConfContextRoundTrip(t *testing.T) {
	for _, c := range []confContext{
		{},
		{id: requestID{1, 2, 3}, promote: true, peer: Peer{ID: 4}},
		{id: requestID{9, 0, 1}, peer: Peer{ID: 1 << 63, Name: "n", PeerURLs: []string{"a", ""}, ClientURLs: []string{"c"}, IsLearner: true}},
	} {
		got, err := decodeConfContext(encodeConfContext(c))
		if err != nil || !reflect.DeepEqual(got, c) {
			t.Fatalf("got %+v %v, want %+v", got, err, c)
		}
	}
}

func FuzzDecodeEntry(f *testing.F) {
	for i, req := range sampleRequests() {
		k, _ := req.kind()
		f.Add(encodeEntry(requestID{uint64(i), 1, 2}, &req, k))
	}
	f.Add(deepTxn(maxTxnDepth + 1))
	f.Fuzz(func(t *testing.T, data []byte) {
		id, req, err := decodeEntry(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		k, err := req.kind()
		if err != nil {
			t.Fatalf("decoded request %+v: %v", req, err)
		}
		id2, req2, err := decodeEntry(encodeEntry(id, &req, k))
		if err != nil || id2 != id || !reflect.DeepEqual(req2, req) {
			t.Fatalf("re-encoded %+v %+v: got %+v %+v %v", id, req, id2, req2, err)
		}
	})
}

func FuzzDecodeConfContext(f *testing.F) {
	f.Add(encodeConfContext(confContext{id: requestID{1, 2, 3}, peer: peerOf(3)}))
	f.Add(encodeConfContext(confContext{promote: true, peer: Peer{ID: 2, IsLearner: true}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := decodeConfContext(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		c2, err := decodeConfContext(encodeConfContext(c))
		if err != nil || !reflect.DeepEqual(c2, c) {
			t.Fatalf("re-encoded %+v: got %+v %v", c, c2, err)
		}
	})
}
