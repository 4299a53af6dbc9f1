package filelog_test

import (
	"runtime"
	"testing"

	"github.com/revkv/revkv/persist/filelog"
)

// heapNow returns the live heap after two collections (the second frees
// what finalizers and sync.Pools released in the first).
func heapNow() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestClosedLogHoldsNoEncoder: a Log that has written frames and a
// snapshot, closed but still referenced, holds no zstd encoder, and
// neither does the process: the live heap after Close is within 1 MB of
// the heap before Open. An encoder that outlived Close (zstd's defaults
// kept about 55 MB for the life of the process; the sized ones hold 2-3
// MB) fails it.
func TestClosedLogHoldsNoEncoder(t *testing.T) {
	if testing.Short() {
		t.Skip("measures the heap")
	}
	dir := t.TempDir()
	before := heapNow()
	s, l := openOS(t, dir, filelog.Options{Sync: filelog.SyncNone, SnapshotRevs: -1, SnapshotBytes: -1})
	for i := range 200 {
		if _, err := s.Put(benchKey(uint64(i)), benchValue(uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Commit(); err != nil { // the flusher has encoded frames
		t.Fatal(err)
	}
	if err := l.WriteSnapshot(); err != nil { // and a snapshot's blocks
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	after := heapNow()
	runtime.KeepAlive(l) // the closed Log (and the store it served) stay reachable
	runtime.KeepAlive(s)
	if grown := int64(after) - int64(before); grown > 1<<20 {
		t.Errorf("live heap after Close grew by %d bytes over the heap before Open: something (a zstd encoder?) outlives Close", grown)
	}
}
