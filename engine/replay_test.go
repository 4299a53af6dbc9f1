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

// TestRepackShrinksTree loads 100k keys in key order (half-full leaves)
// and repacks the index: the same keys in the same order, and the live
// heap at least 10 bytes per key smaller (a leaf's 16-byte items in an
// array of their own size rather than of twice it).
func TestRepackShrinksTree(t *testing.T) {
	const n = 100_000
	s := newStore(Options{})
	defer s.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range n {
		s.loadLocked(newRecord(fmt.Appendf(nil, "k%07d", i), version{main: 2, create: 2, ver: 1}))
	}
	keys := func() [][]byte {
		var ks [][]byte
		s.w.keys.ascend(nil, nil, func(r *keyRecord) bool { ks = append(ks, r.key()); return true })
		return ks
	}
	before := keys()
	h1 := liveHeap()
	s.repackLocked()
	h2 := liveHeap()
	after := keys()
	if len(before) != n || len(after) != n {
		t.Fatalf("%d keys before the repack, %d after, want %d", len(before), len(after), n)
	}
	for i := range before {
		if !bytes.Equal(before[i], after[i]) {
			t.Fatalf("key %d: %q before the repack, %q after", i, before[i], after[i])
		}
	}
	t.Logf("repack saved %.1f bytes per key", float64(int64(h1)-int64(h2))/n)
	if saved := int64(h1) - int64(h2); saved < 10*n {
		t.Errorf("repack saved %d bytes for %d keys, want at least %d", saved, n, 10*n)
	}
}
