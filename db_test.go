package revkv_test

import (
	"context"
	"errors"
	"os"
	"runtime"
	"testing"

	"github.com/revkv/revkv"
	"github.com/revkv/revkv/internal/leaktest"
	"github.com/revkv/revkv/kv"
	"github.com/revkv/revkv/persist"
	"github.com/revkv/revkv/persist/filelog"
	"github.com/revkv/revkv/persist/memfs"
)

// openFiles counts the process's open file descriptors, or -1 where that
// cannot be read.
func openFiles(t *testing.T) int {
	t.Helper()
	des, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(des)
}

// Close of a DB that has watchers (keeping up and catching up), a lease
// waiting to expire, an open txn and a file log leaves no goroutine and no
// open file, and ends the txn.
func TestCloseLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	runtime.GC()
	goroutines, files := runtime.NumGoroutine(), openFiles(t)
	db, err := revkv.Open(dir, revkv.Options{Log: filelog.Options{Sync: filelog.SyncInterval}})
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		if _, err := db.Put([]byte("k"), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	lease, err := db.Grant(0, 60)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Put([]byte("leased"), nil, revkv.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	var ws []*revkv.Watcher
	for i := range 3 {
		w := db.NewWatcher()
		w.Watch([]byte("k"), false, int64(i)) // from now, and from history
		ws = append(ws, w)
	}
	db.Put([]byte("k"), []byte("v"))
	tx, err := db.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Put([]byte("k"), []byte("never"), kv.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Commit(); !errors.Is(err, kv.ErrTxnEnded) || !errors.Is(err, kv.ErrClosed) {
		t.Errorf("Commit after Close: %v", err)
	}
	for _, w := range ws {
		for range w.Chan() {
		}
	}
	if n := leaktest.Settle(goroutines); n > goroutines {
		t.Errorf("%d goroutines after Close, %d before Open", n, goroutines)
	}
	if n := openFiles(t); n > files {
		t.Errorf("%d open files after Close, %d before Open", n, files)
	}
	if err := db.Close(); !errors.Is(err, kv.ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
	if _, err := db.Put([]byte("k"), nil); !errors.Is(err, kv.ErrClosed) {
		t.Errorf("Put after Close: %v", err)
	}
	db, err = revkv.Open(dir, revkv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got, _, _ := db.Get([]byte("k")); string(got.Value) != "v" || db.Rev() != 103 {
		t.Errorf("reopened: k=%q at revision %d, want v at 103 (the txn aborted)", got.Value, db.Rev())
	}
}

func TestOpenPersisted(t *testing.T) {
	fs := memfs.New(memfs.Options{})
	open := func() *revkv.DB {
		t.Helper()
		l, err := filelog.Open("db", filelog.Options{FS: fs})
		if err != nil {
			t.Fatal(err)
		}
		db, err := revkv.Open("", revkv.Options{Persister: l})
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
	db := open()
	db.Put([]byte("a"), []byte("1"))
	db.Delete([]byte("a"), nil)
	db.Put([]byte("a"), []byte("2"))
	h, _ := db.Hash()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = open()
	defer db.Close()
	got, ok, err := db.Get([]byte("a"))
	if err != nil || !ok || string(got.Value) != "2" || got.CreateRevision != 4 || db.Rev() != 4 {
		t.Fatalf("after reopen: %+v %v %v at %d", got, ok, err, db.Rev())
	}
	if h2, _ := db.Hash(); h2 != h {
		t.Fatalf("hash %x after reopen, %x before", h2, h)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	l, err := filelog.Open(t.TempDir(), filelog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := revkv.Open(dir, revkv.Options{Persister: l}); !errors.Is(err, kv.ErrInvalidOptions) {
		t.Fatalf("dir and persister: %v", err)
	}
	db, err := revkv.Open(dir, revkv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := revkv.Open(dir, revkv.Options{}); !errors.Is(err, persist.ErrLocked) {
		t.Fatalf("second open of a directory: %v", err)
	}
	if _, _, err := db.Get(nil); !errors.Is(err, kv.ErrEmptyKey) {
		t.Fatalf("Get(nil): %v", err)
	}
}

func TestNewIsTheSeedConstructor(t *testing.T) {
	ci := index(5)
	db, err := revkv.New("", &ci)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.Put([]byte("k"), nil)
	ci = 5 // the same log entry again: skipped
	db.Put([]byte("k"), nil)
	if db.Rev() != 2 {
		t.Fatalf("rev %d after replaying an entry, want 2", db.Rev())
	}
}

type index uint64

func (i *index) ConsistentIndex() uint64 { return uint64(*i) }
