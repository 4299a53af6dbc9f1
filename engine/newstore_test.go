package engine

import (
	"bytes"
	"testing"
)

// TestNewStoresShareEmptyState: new stores show readers one shared empty
// state (newStore); a write to one store, and views, snapshots and
// compaction of another, never show through to a third, and a snapshot of
// a never-written store loads back empty.
func TestNewStoresShareEmptyState(t *testing.T) {
	a, b, c := mustOpen(t), mustOpen(t), mustOpen(t)
	if a.cur.Load() != c.cur.Load() {
		t.Fatal("new stores do not share the empty state")
	}
	defer a.Close()
	defer b.Close()
	defer c.Close()
	va, err := a.View()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Put([]byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Put([]byte("j"), []byte("w")); err != nil {
		t.Fatal(err)
	}
	if err := b.Compact(b.Rev()); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*Store{"a": a, "b": b} {
		if s.Rev() != 2 {
			t.Fatalf("%s at revision %d, want 2", name, s.Rev())
		}
	}
	if res, err := va.Range([]byte{0}, []byte{}, RangeOptions{}); err != nil || len(res.KVs) != 0 || va.Rev() != 1 {
		t.Fatalf("a's first view: %v keys at %d, %v; want none at 1", len(res.KVs), va.Rev(), err)
	}
	kvs, rev, err := c.Range([]byte{0}, []byte{}, 0, 0)
	if err != nil || len(kvs) != 0 || rev != 1 || c.CompactRev() != -1 {
		t.Fatalf("c: %d keys at %d (compacted %d), %v; want none at 1, never compacted", len(kvs), rev, c.CompactRev(), err)
	}
	sn, err := c.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := sn.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	sn.Close()
	l, err := loadStore(bytes.NewReader(buf.Bytes()), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if kvs, rev, err := l.Range([]byte{0}, []byte{}, 0, 0); err != nil || len(kvs) != 0 || rev != 1 {
		t.Fatalf("loaded empty snapshot: %d keys at %d, %v", len(kvs), rev, err)
	}
}

func mustOpen(t *testing.T) *Store {
	t.Helper()
	s, err := Open(nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}
