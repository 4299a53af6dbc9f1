package filelog_test

import (
	"fmt"
	"log"
	"os"

	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/persist/filelog"
	"github.com/revkv/revkv/persist/memfs"
)

// A store on disk with the defaults: every write durable when it returns.
func Example() {
	dir, err := os.MkdirTemp("", "revkv-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	open := func() *engine.Store {
		l, err := filelog.Open(dir, filelog.Options{})
		if err != nil {
			log.Fatal(err)
		}
		s, err := engine.Open(l, engine.Options{}) // the store owns l
		if err != nil {
			log.Fatal(err)
		}
		return s
	}
	s := open()
	s.Put([]byte("greeting"), []byte("hello"))
	s.Close()

	// Reopening recovers what was written.
	s = open()
	defer s.Close()
	kvs, rev, _ := s.Range([]byte("greeting"), nil, 0, 0)
	fmt.Printf("%s=%s at revision %d\n", kvs[0].Key, kvs[0].Value, rev)
	// Output: greeting=hello at revision 2
}

// Options: sync every 100 ms instead of every write, smaller segments, and
// an in-memory filesystem that can simulate a crash.
func ExampleOpen() {
	fs := memfs.New(memfs.Options{})
	open := func() *engine.Store {
		l, err := filelog.Open("db", filelog.Options{FS: fs, Sync: filelog.SyncInterval, SegmentSize: 1 << 20})
		if err != nil {
			log.Fatal(err)
		}
		s, err := engine.Open(l, engine.Options{})
		if err != nil {
			log.Fatal(err)
		}
		return s
	}
	s := open()
	s.Put([]byte("a"), []byte("1"))
	if err := s.Commit(); err != nil { // durable from here on, whatever the policy
		log.Fatal(err)
	}
	s.Close()

	fs.Crash() // power loss: only what was synced survives
	s = open()
	defer s.Close()
	fmt.Println("revision after the crash:", s.Rev())
	// Output: revision after the crash: 2
}
