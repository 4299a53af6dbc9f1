package engine_test

import (
	"context"
	"fmt"
	"time"

	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/kv"
)

// A compare-and-swap: set the config only if nobody changed it since it
// was read (its mod revision is the one seen), else read what is there.
func ExampleStore_Txn() {
	s, _ := engine.Open(nil, engine.Options{})
	defer s.Close()
	ctx := context.Background()
	seen, _ := s.Put([]byte("config"), []byte("v1"))

	cas := func(value string) *kv.TxnRequest {
		return &kv.TxnRequest{
			Compare: []kv.Compare{{Key: []byte("config"), Target: kv.CompareMod, Result: kv.CompareEqual, ModRevision: seen}},
			Then:    []kv.Op{kv.PutOp([]byte("config"), []byte(value))},
			Else:    []kv.Op{kv.RangeOp([]byte("config"), nil, kv.RangeOptions{})},
		}
	}
	resp, _ := s.Txn(ctx, cas("v2"))
	fmt.Println("first swap:", resp.Succeeded, "at revision", resp.Rev)
	resp, _ = s.Txn(ctx, cas("v3")) // seen is stale now
	fmt.Printf("second swap: %v, config is %s\n", resp.Succeeded, resp.Responses[0].Range.KVs[0].Value)
	// Output:
	// first swap: true at revision 3
	// second swap: false, config is v2
}

// An interactive txn that gives up: nothing it wrote is applied, and its
// context bounds how long it can keep other writers waiting.
func ExampleStore_Begin() {
	s, _ := engine.Open(nil, engine.Options{})
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()

	tx, _ := s.Begin(ctx)
	defer tx.Abort() // harmless after Commit
	tx.Put([]byte("a"), []byte("1"), kv.PutOptions{})
	res, _ := tx.Range([]byte("a"), nil, engine.RangeOptions{})
	fmt.Println("inside the txn:", len(res.KVs), "key")
	tx.Abort()

	kvs, rev, _ := s.Range([]byte("a"), nil, 0, 0)
	fmt.Println("after Abort:", len(kvs), "keys at revision", rev)
	// Output:
	// inside the txn: 1 key
	// after Abort: 0 keys at revision 1
}

// A range sorted by mod revision, newest first, cut to two keys.
func ExampleStore_RangeWithOptions() {
	s, _ := engine.Open(nil, engine.Options{})
	defer s.Close()
	for _, k := range []string{"b", "a", "c"} {
		s.Put([]byte(k), nil)
	}
	res, _ := s.RangeWithOptions([]byte("a"), []byte{}, engine.RangeOptions{
		SortOrder: kv.SortDescend, SortTarget: kv.SortByMod, Limit: 2, TotalCount: true,
	})
	for _, kv := range res.KVs {
		fmt.Println(string(kv.Key), kv.ModRevision)
	}
	fmt.Println("more:", res.More, "of", res.Count)
	// Output:
	// c 4
	// a 3
	// more: true of 3
}
