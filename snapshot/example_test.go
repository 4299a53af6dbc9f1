package snapshot_test

import (
	"bytes"
	"fmt"
	"io"
	"log"

	"github.com/revkv/revkv/snapshot"
)

// Writing a snapshot by hand and reading it back; the engine's
// Snapshot.WriteTo and Store.LoadSnapshot do the same for a whole store.
func Example() {
	var buf bytes.Buffer
	w, err := snapshot.NewWriter(&buf, snapshot.Header{Rev: 3, CompactRev: -1})
	if err != nil {
		log.Fatal(err)
	}
	w.Event(&snapshot.Entry{Key: []byte("a"), Value: []byte("1"), Main: 2, Create: 2, Version: 1})
	w.Event(&snapshot.Entry{Key: []byte("a"), Value: []byte("2"), Main: 3, Create: 2, Version: 2})
	if err := w.Finish(1); err != nil {
		log.Fatal(err)
	}

	r, err := snapshot.NewReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		log.Fatal(err)
	}
	for {
		e, _, err := r.Next()
		if err == io.EOF {
			break // the trailer and every checksum held
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s=%s at %d\n", e.Key, e.Value, e.Main)
	}
	// Output:
	// a=1 at 2
	// a=2 at 3
}

// ReadStatus checks a snapshot and describes it, like `revkv snapshot
// status`.
func ExampleReadStatus() {
	var buf bytes.Buffer
	w, _ := snapshot.NewWriter(&buf, snapshot.Header{Rev: 2, CompactRev: -1, ConsistentIndex: 7})
	w.Event(&snapshot.Entry{Key: []byte("k"), Value: []byte("v"), Main: 2, Create: 2, Version: 1})
	w.Finish(1)

	st, err := snapshot.ReadStatus(&buf)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("revision %d, index %d, %d keys, %d revisions\n", st.Rev, st.ConsistentIndex, st.Keys, st.Revisions)
	// Output: revision 2, index 7, 1 keys, 1 revisions
}
