package filelog_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/persist/filelog"
)

// lateWait is a Log whose Wait returns late once armed: the engine
// publishes a write's state only when its Wait returns, so the log's
// snapshotter, kicked as soon as the write is flushed, sees the state
// before it.
type lateWait struct {
	*filelog.Log
	armed *atomic.Bool
}

func (l lateWait) Wait(pos uint64) error {
	err := l.Log.Wait(pos)
	if l.armed.Load() {
		time.Sleep(300 * time.Millisecond)
	}
	return err
}

// TestCompactionSnapshotAwaitsPublication: the snapshot a compaction
// starts is of the compacted state even when the engine publishes that
// state after the snapshotter wakes, so the disk is reclaimed (it was
// not: the snapshot held the whole history and the compaction's trigger
// was spent; seen as a TestCompactionReclaimsDisk failure under load).
func TestCompactionSnapshotAwaitsPublication(t *testing.T) {
	dir := t.TempDir()
	l, err := filelog.Open(dir, filelog.Options{Sync: filelog.SyncAlways, SnapshotRevs: -1})
	if err != nil {
		t.Fatal(err)
	}
	var armed atomic.Bool
	s, err := engine.Open(lateWait{l, &armed}, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 2000 {
		if _, err := s.Put([]byte(fmt.Sprintf("key%02d", i%10)), benchValue(uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	before := diskBytes(t, dir)
	armed.Store(true)
	if err := s.Compact(s.Rev()); err != nil {
		t.Fatal(err)
	}
	armed.Store(false)
	deadline := time.Now().Add(10 * time.Second)
	for diskBytes(t, dir) > before/5 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if after := diskBytes(t, dir); after > before/5 {
		t.Fatalf("disk %d bytes after compaction, %d before", after, before)
	}
}
