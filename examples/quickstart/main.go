// Command quickstart shows revkv's engine in a few lines: puts, a read of an
// older revision, a txn, a compaction, and a snapshot restored into a new
// store.
package main

import (
	"bytes"
	"errors"
	"fmt"
	"log"

	"github.com/revkv/revkv/engine"
)

func main() {
	s := engine.NewMemory(engine.Options{})
	defer s.Close()

	// Every write makes a new revision; old revisions stay readable.
	first, err := s.Put([]byte("config/mode"), []byte("safe"))
	check(err)
	_, err = s.Put([]byte("config/mode"), []byte("fast"))
	check(err)
	show(s, "config/mode now", 0)
	show(s, fmt.Sprintf("config/mode at revision %d", first), first)

	// A txn: all its writes share one revision; readers see all or none.
	id, err := s.TxnBegin()
	check(err)
	s.TxnPut(id, []byte("config/replicas"), []byte("3"))
	s.TxnPut(id, []byte("config/zone"), []byte("eu-1"))
	check(s.TxnEnd(id))

	kvs, rev, err := s.Range([]byte("config/"), []byte("config0"), 0, 0)
	check(err)
	fmt.Printf("%d keys under config/ at revision %d:\n", len(kvs), rev)
	for _, kv := range kvs {
		fmt.Printf("  %s = %s (created %d, modified %d, version %d)\n",
			kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version)
	}

	// Compaction drops history below a revision.
	check(s.Compact(rev))
	_, _, err = s.Range([]byte("config/mode"), nil, 0, first)
	fmt.Printf("read at revision %d after compacting to %d: %v (ErrCompacted: %v)\n",
		first, rev, err, errors.Is(err, engine.ErrCompacted))

	// A snapshot of the whole store, loaded into a new one.
	snap, err := s.Snapshot()
	check(err)
	var buf bytes.Buffer
	n, err := snap.WriteTo(&buf)
	check(err)
	snap.Close()
	restored, err := engine.Load(&buf, engine.Options{})
	check(err)
	defer restored.Close()
	h1, _ := s.Hash()
	h2, _ := restored.Hash()
	fmt.Printf("snapshot of %d bytes restored at revision %d; hashes equal: %v\n", n, restored.Rev(), h1 == h2)
}

func show(s *engine.Store, what string, rev int64) {
	kvs, _, err := s.Range([]byte("config/mode"), nil, 0, rev)
	check(err)
	fmt.Printf("%s: %s\n", what, kvs[0].Value)
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
