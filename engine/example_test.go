package engine_test

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/revkv/revkv/engine"
)

func Example() {
	s, _ := engine.Open(nil, engine.Options{})
	defer s.Close()

	rev, _ := s.Put([]byte("greeting"), []byte("hello"))
	s.Put([]byte("greeting"), []byte("hello, world"))

	// The current value, and the value as of an older revision.
	now, _, _ := s.Range([]byte("greeting"), nil, 0, 0)
	then, _, _ := s.Range([]byte("greeting"), nil, 0, rev)
	fmt.Printf("now: %s (version %d)\n", now[0].Value, now[0].Version)
	fmt.Printf("at revision %d: %s\n", rev, then[0].Value)

	// Compacting drops the older history.
	s.Compact(s.Rev())
	_, _, err := s.Range([]byte("greeting"), nil, 0, rev)
	fmt.Println("after compaction:", errors.Is(err, engine.ErrCompacted))
	// Output:
	// now: hello, world (version 2)
	// at revision 2: hello
	// after compaction: true
}

func ExampleStore_TxnBegin() {
	s, _ := engine.Open(nil, engine.Options{})
	defer s.Close()

	// Move 10 from a to b in one revision: readers see both writes or none.
	id, _ := s.TxnBegin()
	s.TxnPut(id, []byte("a"), []byte("90"))
	s.TxnPut(id, []byte("b"), []byte("10"))
	kvs, _, _ := s.TxnRange(id, []byte("a"), []byte("c"), 0, 0) // sees its own writes
	s.TxnEnd(id)

	fmt.Println(len(kvs), "keys at revision", s.Rev())
	// Output: 2 keys at revision 2
}

func ExampleView_Scan() {
	s, _ := engine.Open(nil, engine.Options{})
	defer s.Close()
	for _, k := range []string{"app/a", "app/b", "sys/x"} {
		s.Put([]byte(k), []byte("1"))
	}

	v, _ := s.View()
	s.Put([]byte("app/c"), []byte("1")) // after the view: not seen by it

	// Every key >= "app/" and < "app0" ("app/" with its last byte + 1).
	for kv, err := range v.Scan([]byte("app/"), []byte("app0"), 0) {
		if err != nil {
			panic(err)
		}
		fmt.Printf("%s@%d\n", kv.Key, kv.ModRevision)
	}
	// Output:
	// app/a@2
	// app/b@3
}

func ExampleView_Events() {
	s, _ := engine.Open(nil, engine.Options{})
	defer s.Close()
	s.Put([]byte("k"), []byte("1"))
	s.Put([]byte("k"), []byte("2"))
	s.DeleteRange([]byte("k"), nil)

	v, _ := s.View()
	for ev, err := range v.Events(3) {
		if err != nil {
			panic(err)
		}
		fmt.Println(ev.Type, string(ev.KV.Key), ev.Revision())
	}
	// Output:
	// PUT k 3.0
	// DELETE k 4.0
}

// A snapshot streamed out of one store fills a new one: same revisions,
// same hash.
func ExampleStore_LoadSnapshot() {
	s, _ := engine.Open(nil, engine.Options{})
	defer s.Close()
	s.Put([]byte("k"), []byte("v"))

	snap, _ := s.Snapshot()
	var buf bytes.Buffer
	snap.WriteTo(&buf)
	snap.Close()

	restored, _ := engine.Open(nil, engine.Options{})
	defer restored.Close()
	if err := restored.LoadSnapshot(&buf); err != nil {
		panic(err)
	}
	h1, _ := s.Hash()
	h2, _ := restored.Hash()
	fmt.Println(restored.Rev(), h1 == h2)
	// Output: 2 true
}

// ig is the index of the consensus-log entry being applied.
type ig struct{ index uint64 }

func (g *ig) ConsistentIndex() uint64 { return g.index }

// Under a consensus log, each write records the log index it applies, and
// an entry applied before (replayed after a restart) is skipped.
func ExampleOptions_consistentIndex() {
	entry := &ig{}
	s, _ := engine.Open(nil, engine.Options{ConsistentIndex: entry})
	defer s.Close()

	entry.index = 1
	s.Put([]byte("k"), []byte("from entry 1"))
	entry.index = 1 // the same entry again
	rev, _ := s.Put([]byte("k"), []byte("replayed"))
	kvs, _, _ := s.Range([]byte("k"), nil, 0, 0)
	fmt.Printf("%s at revision %d, index %d\n", kvs[0].Value, rev, s.ConsistentIndex())
	// Output: from entry 1 at revision 2, index 1
}
