//go:build unix

package filelog_test

import (
	"errors"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/persist"
	"github.com/revkv/revkv/persist/filelog"
)

// TestFIFONotOpened: a FIFO named like a segment is refused at once, not
// waited on.
func TestFIFONotOpened(t *testing.T) {
	dir := t.TempDir()
	s, _ := mustOpen(t, dir, filelog.Options{})
	s.Put([]byte("a"), []byte("1"))
	s.Close()
	if err := syscall.Mkfifo(filepath.Join(dir, "00000000000000000009.log"), 0o644); err != nil {
		t.Skip(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := filelog.Inspect(persist.OS, dir)
		if err == nil {
			var l *filelog.Log
			if l, err = filelog.Open(dir, filelog.Options{}); err == nil {
				_, err = engine.Open(l, engine.Options{})
			}
		}
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, persist.ErrNotRegular) {
			t.Fatalf("FIFO as a segment: %v, want ErrNotRegular", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("open hangs on a FIFO")
	}
}
