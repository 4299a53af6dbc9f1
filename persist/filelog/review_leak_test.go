package filelog_test

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/revkv/revkv/persist"
	"github.com/revkv/revkv/persist/filelog"
	"github.com/revkv/revkv/persist/memfs"
)

// errReadBudget is the read error budgetFS injects.
var errReadBudget = errors.New("injected read error")

// budgetFS is an FS whose files' reads fail once budget bytes were read (a
// negative budget: no limit).
type budgetFS struct {
	persist.FS
	budget *atomic.Int64
}

func (f budgetFS) Open(name string) (persist.File, error) {
	file, err := f.FS.Open(name)
	if err != nil {
		return nil, err
	}
	return budgetFile{file, f.budget}, nil
}

func (f budgetFS) OpenReadWrite(name string) (persist.File, error) {
	file, err := f.FS.OpenReadWrite(name)
	if err != nil {
		return nil, err
	}
	return budgetFile{file, f.budget}, nil
}

type budgetFile struct {
	persist.File
	budget *atomic.Int64
}

func (f budgetFile) take(n int) (int, error) {
	b := f.budget.Load()
	if b < 0 {
		return n, nil
	}
	if b == 0 {
		return 0, errReadBudget
	}
	n = int(min(int64(n), b))
	f.budget.Add(-int64(n))
	return n, nil
}

func (f budgetFile) Read(p []byte) (int, error) {
	n, err := f.take(len(p))
	if err != nil {
		return 0, err
	}
	return f.File.Read(p[:n])
}

func (f budgetFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := f.take(len(p))
	if err != nil {
		return 0, err
	}
	m, err := f.File.ReadAt(p[:n], off)
	if err == nil && m < len(p) {
		err = errReadBudget
	}
	return m, err
}

// waitGoroutines fails t if more goroutines than before run after a while.
func waitGoroutines(t *testing.T, before int, what string) {
	t.Helper()
	for range 200 {
		if runtime.NumGoroutine() <= before {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	buf := make([]byte, 1<<16)
	t.Fatalf("%s: %d goroutines, %d before:\n%s", what, runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
}

// TestOpenErrorsLeaveNoGoroutine opens a store (snapshot and compressed
// segments) whose reads fail after every budget of a sweep, and restores
// one whose reads start failing: no read-ahead goroutine (snapshot entries,
// segment runs) outlives Open's or Restore's return, on any error path.
func TestOpenErrorsLeaveNoGoroutine(t *testing.T) {
	fs := memfs.New(memfs.Options{})
	opts := filelog.Options{SnapshotRevs: 300, SegmentSize: 64 << 10}
	s, err := openStore(fs, opts)
	if err != nil {
		t.Fatal(err)
	}
	val := bytes.Repeat([]byte("value "), 30)
	for i := range 1500 {
		if _, err := s.Put(fmt.Appendf(nil, "k%05d", i%700), val); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var budget atomic.Int64
	rfs := budgetFS{FS: fs, budget: &budget}
	before := runtime.NumGoroutine()
	failed := 0
	for b := int64(0); ; b = b*3/2 + 97 {
		budget.Store(b)
		st, err := openStore(rfs, opts)
		if err == nil {
			budget.Store(-1)
			st.Close()
			waitGoroutines(t, before, "open and close")
			break
		}
		failed++
		waitGoroutines(t, before, fmt.Sprintf("open failing after %d bytes read: %v", b, err))
	}
	if failed < 5 {
		t.Fatalf("only %d failed opens: the sweep missed the read paths", failed)
	}
	for _, b := range []int64{0, 100, 5000, 50000} {
		budget.Store(-1)
		st, err := openStore(rfs, opts)
		if err != nil {
			t.Fatal(err)
		}
		budget.Store(b)
		err = st.Restore()
		budget.Store(-1)
		st.Close()
		waitGoroutines(t, before, fmt.Sprintf("restore failing after %d bytes read (%v)", b, err))
	}
}
