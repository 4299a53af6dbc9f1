package revkv_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/revkv/revkv"
	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/kv"
)

func Example() {
	db, err := revkv.Open("", revkv.Options{}) // in memory
	if err != nil {
		panic(err)
	}
	defer db.Close()

	put, _ := db.Put([]byte("greeting"), []byte("hello"))
	rev := put.Rev
	db.Put([]byte("greeting"), []byte("hello, world"))

	// The current value, and the value as of an older revision.
	now, _, _ := db.Get([]byte("greeting"))
	then, _ := db.Range([]byte("greeting"), nil, revkv.RangeOptions{Rev: rev})
	fmt.Printf("now: %s (version %d)\n", now.Value, now.Version)
	fmt.Printf("at revision %d: %s\n", rev, then.KVs[0].Value)

	// Compacting drops the older history.
	db.Compact(db.Rev())
	_, err = db.Range([]byte("greeting"), nil, revkv.RangeOptions{Rev: rev})
	fmt.Println("after compaction:", errors.Is(err, kv.ErrCompacted))
	// Output:
	// now: hello, world (version 2)
	// at revision 2: hello
	// after compaction: true
}

// A DB opened on a directory is persisted there: every write is durable
// when it returns, and opening the directory again recovers it.
func ExampleOpen() {
	dir, _ := os.MkdirTemp("", "revkv-example")
	defer os.RemoveAll(dir)

	db, err := revkv.Open(dir, revkv.Options{})
	if err != nil {
		panic(err)
	}
	db.Put([]byte("greeting"), []byte("hello"))
	db.Close()

	db, err = revkv.Open(dir, revkv.Options{})
	if err != nil {
		panic(err)
	}
	defer db.Close()
	kv, _, _ := db.Get([]byte("greeting"))
	fmt.Printf("%s at revision %d\n", kv.Value, db.Rev())
	// Output: hello at revision 2
}

func ExampleDB_Range() {
	db, _ := revkv.Open("", revkv.Options{})
	defer db.Close()
	for _, k := range []string{"a", "b", "c", "d"} {
		db.Put([]byte("config/"+k), []byte(k))
	}
	// The last two keys under config/, newest first, and how many there are.
	res, _ := db.Range([]byte("config/"), []byte("config0"), revkv.RangeOptions{
		Limit: 2, SortOrder: kv.SortDescend, SortTarget: kv.SortByMod, TotalCount: true,
	})
	for _, kv := range res.KVs {
		fmt.Printf("%s ", kv.Key)
	}
	fmt.Println("of", res.Count, "more:", res.More)
	// Output: config/d config/c of 4 more: true
}

func ExampleDB_NewWatcher() {
	db, _ := revkv.Open("", revkv.Options{})
	defer db.Close()
	db.Put([]byte("config/a"), []byte("1"))

	w := db.NewWatcher()
	defer w.Close()
	// Every key under config/, from revision 2 (history first, then new
	// writes as they come).
	w.Watch([]byte("config/"), true, 2)
	db.Put([]byte("config/b"), []byte("2"))
	db.Delete([]byte("config/a"), nil)

	for n := 0; n < 3; {
		resp := <-w.Chan()
		for _, ev := range resp.Events {
			fmt.Println(ev.Type, string(ev.KV.Key), ev.KV.ModRevision)
			n++
		}
	}
	// Output:
	// PUT config/a 2
	// PUT config/b 3
	// DELETE config/a 4
}

// Keys put with a lease are deleted when it expires, all at one revision.
// The clock here is a ManualClock, as a test would use; by default it is
// the system's.
func ExampleDB_Grant() {
	clock := engine.NewManualClock(time.Unix(0, 0))
	db, _ := revkv.Open("", revkv.Options{Engine: engine.Options{Clock: clock}})
	defer db.Close()

	lease, _ := db.Grant(0, 10) // 10 s; the DB picks the ID
	db.Put([]byte("session/a"), []byte("1"), revkv.WithLease(lease.ID))
	db.Put([]byte("session/b"), []byte("2"), revkv.WithLease(lease.ID))

	clock.Advance(4 * time.Second)
	st, _ := db.TimeToLive(lease.ID, true)
	fmt.Printf("%d s left, %d keys\n", st.TTL, len(st.Keys))

	db.Revoke(lease.ID) // or let it expire
	res, _ := db.Range([]byte("session/"), []byte("session0"), revkv.RangeOptions{CountOnly: true})
	fmt.Println(res.Count, "keys left at revision", db.Rev())
	// Output:
	// 6 s left, 2 keys
	// 0 keys left at revision 4
}

// Compare-and-swap: set config/mode to "b" only if it is still at the
// revision we read it at.
func ExampleDB_Txn() {
	db, _ := revkv.Open("", revkv.Options{})
	defer db.Close()
	put, _ := db.Put([]byte("config/mode"), []byte("a"))

	swap := func(seen int64) bool {
		resp, err := db.Txn(context.Background(), &revkv.TxnRequest{
			Compare: []revkv.Compare{{Key: []byte("config/mode"), Target: kv.CompareMod, Result: kv.CompareEqual, ModRevision: seen}},
			Then:    []revkv.Op{kv.PutOp([]byte("config/mode"), []byte("b"))},
		})
		return err == nil && resp.Succeeded
	}
	fmt.Println(swap(put.Rev)) // still as read: swapped
	fmt.Println(swap(put.Rev)) // changed since: not swapped
	// Output:
	// true
	// false
}

// An interactive txn: all its writes at one revision on Commit, or none
// on Abort (and on a failed write, its context's end, or Close).
func ExampleDB_Begin() {
	db, _ := revkv.Open("", revkv.Options{})
	defer db.Close()
	db.Put([]byte("a"), []byte("100"))

	tx, err := db.Begin(context.Background())
	if err != nil {
		panic(err)
	}
	defer tx.Abort() // harmless after Commit
	tx.Put([]byte("a"), []byte("90"), kv.PutOptions{})
	tx.Put([]byte("b"), []byte("10"), kv.PutOptions{})
	res, _ := tx.Range([]byte("a"), []byte("c"), revkv.RangeOptions{}) // sees its own writes
	fmt.Println(len(res.KVs), "keys inside the txn")
	tx.Abort()

	res, _ = db.Range([]byte("a"), []byte("c"), revkv.RangeOptions{})
	fmt.Println(len(res.KVs), "key after Abort, at revision", db.Rev())
	// Output:
	// 2 keys inside the txn
	// 1 key after Abort, at revision 2
}

func ExampleWithPrevKV() {
	db, _ := revkv.Open("", revkv.Options{})
	defer db.Close()
	db.Put([]byte("k"), []byte("old"))
	res, _ := db.Put([]byte("k"), []byte("new"), revkv.WithPrevKV())
	fmt.Printf("replaced %s\n", res.PrevKV.Value)
	del, _ := db.Delete([]byte("k"), nil, revkv.WithPrevKV())
	fmt.Printf("deleted %s\n", del.PrevKVs[0].Value)
	// Output:
	// replaced old
	// deleted new
}
