// Command quickstart shows revkv's DB in a few lines: puts, a read of an
// older revision, a compare-and-swap, an interactive txn, a lease, a
// watch, a compaction, and a restart from a directory.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/revkv/revkv"
	"github.com/revkv/revkv/kv"
)

func main() {
	dir, err := os.MkdirTemp("", "revkv-quickstart")
	check(err)
	defer os.RemoveAll(dir)

	db, err := revkv.Open(dir, revkv.Options{}) // "" would be in memory
	check(err)

	// Every write makes a new revision; old revisions stay readable.
	first, err := db.Put([]byte("config/mode"), []byte("safe"))
	check(err)
	_, err = db.Put([]byte("config/mode"), []byte("fast"))
	check(err)
	show(db, "config/mode now", 0)
	show(db, fmt.Sprintf("config/mode at revision %d", first.Rev), first.Rev)

	// Watch config/ from the first revision: history, then new writes.
	w := db.NewWatcher()
	defer w.Close()
	w.Watch([]byte("config/"), true, first.Rev)

	// Compare-and-swap: only if config/mode is still at the revision seen.
	cur, _, err := db.Get([]byte("config/mode"))
	check(err)
	resp, err := db.Txn(context.Background(), &revkv.TxnRequest{
		Compare: []revkv.Compare{{Key: []byte("config/mode"), Target: kv.CompareMod, Result: kv.CompareEqual, ModRevision: cur.ModRevision}},
		Then:    []revkv.Op{kv.PutOp([]byte("config/mode"), []byte("balanced"))},
	})
	check(err)
	fmt.Printf("compare-and-swap succeeded: %v, at revision %d\n", resp.Succeeded, resp.Rev)

	// An interactive txn: all its writes at one revision, or none.
	tx, err := db.Begin(context.Background())
	check(err)
	tx.Put([]byte("config/replicas"), []byte("3"), kv.PutOptions{})
	tx.Put([]byte("config/zone"), []byte("eu-1"), kv.PutOptions{})
	rev, err := tx.Commit()
	check(err)

	// A lease: its keys go when it is revoked or expires.
	lease, err := db.Grant(0, 60)
	check(err)
	_, err = db.Put([]byte("config/leader"), []byte("node-1"), revkv.WithLease(lease.ID))
	check(err)
	_, err = db.Revoke(lease.ID)
	check(err)

	res, err := db.Range([]byte("config/"), []byte("config0"), revkv.RangeOptions{})
	check(err)
	fmt.Printf("%d keys under config/ at revision %d:\n", len(res.KVs), res.Rev)
	for _, kv := range res.KVs {
		fmt.Printf("  %s = %s (created %d, modified %d, version %d)\n",
			kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version)
	}
	for n := 0; n < 7; {
		r := <-w.Chan()
		for _, ev := range r.Events {
			fmt.Printf("  watched: %s %s at %d\n", ev.Type, ev.KV.Key, ev.KV.ModRevision)
			n++
		}
	}

	// Compaction drops history below a revision.
	check(db.Compact(rev))
	_, err = db.Range([]byte("config/mode"), nil, revkv.RangeOptions{Rev: first.Rev})
	fmt.Printf("read at revision %d after compacting to %d: ErrCompacted: %v\n",
		first.Rev, rev, errors.Is(err, kv.ErrCompacted))

	// Close and open again: the directory holds everything.
	h1, _ := db.Hash()
	check(db.Close())
	db, err = revkv.Open(dir, revkv.Options{})
	check(err)
	defer db.Close()
	h2, _ := db.Hash()
	fmt.Printf("reopened at revision %d; hashes equal: %v\n", db.Rev(), h1 == h2)
}

func show(db *revkv.DB, what string, rev int64) {
	res, err := db.Range([]byte("config/mode"), nil, revkv.RangeOptions{Rev: rev})
	check(err)
	fmt.Printf("%s: %s\n", what, res.KVs[0].Value)
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
