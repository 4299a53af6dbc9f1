package engine

import (
	"bytes"
	"fmt"
	"testing"
)

// TestReplayInKeyOrder replays a store filled mostly in key order, the
// case replay appends to the index for (replayPutLocked), with updates and
// deletes of earlier keys, a key deleted and made again, txns mixing new
// and old keys, and a compaction: from its snapshot, and from its batches
// through Apply. Both copies answer every read, history read and hash as
// the original.
func TestReplayInKeyOrder(t *testing.T) {
	f := &fakePersister{}
	src, err := Open(f, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	key := func(i int) []byte { return fmt.Appendf(nil, "k%04d", i) }
	for i := range 300 {
		val := bytes.Repeat([]byte{byte(i)}, i%7) // some empty
		if _, err := src.Put(key(i), val); err != nil {
			t.Fatal(err)
		}
		switch {
		case i%10 == 9:
			src.Put(key(i/2), []byte("update"))
		case i%17 == 16:
			src.DeleteRange(key(i-3), nil)
		case i%29 == 28:
			// The newest key deleted, then made again, and a txn of
			// new keys after it and an old one.
			src.DeleteRange(key(i), nil)
			src.Put(key(i), []byte("again"))
			id, _ := src.TxnBegin()
			src.TxnPut(id, append(key(i), 'a'), []byte("t1"))
			src.TxnPut(id, append(key(i), 'b'), []byte("t2"))
			src.TxnPut(id, key(i/3), []byte("t3"))
			src.TxnEnd(id)
		case i == 150:
			if err := src.Compact(src.Rev() - 20); err != nil {
				t.Fatal(err)
			}
		}
	}
	got, err := loadStore(bytes.NewReader(snapshotBytes(t, src)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	sameStore(t, src, got)

	// The whole history from its batches (none compacted yet: compaction
	// batches replay too).
	p := &replayPersister{replay: f.batches}
	replayed, err := Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer replayed.Close()
	sameStore(t, src, replayed)
}
