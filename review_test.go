package revkv_test

// Review of issue 12 (see /work/notes/review12.md).

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/revkv/revkv"
	"github.com/revkv/revkv/internal/leaktest"
	"github.com/revkv/revkv/kv"
	"github.com/revkv/revkv/persist/filelog"
	"github.com/revkv/revkv/persist/memfs"
)

// TestReviewCloseRacesEverything: Close at a random moment while puts,
// conditional and interactive txns (some cancelled, some aborted), lease
// grants, renewals and revokes, compactions, hashes, snapshots and
// watches (keeping up and catching up) run on a DB persisted on a file
// log. Every call returns (no deadlock), nothing outlives Close, and a
// reopen finds a store whose every interactive txn is whole or absent.
func TestReviewCloseRacesEverything(t *testing.T) {
	runtime.GC()
	goroutines := runtime.NumGoroutine()
	for round := range 8 {
		fs := memfs.New(memfs.Options{})
		open := func() *revkv.DB {
			l, err := filelog.Open("db", filelog.Options{FS: fs, SegmentSize: 4096, SnapshotRevs: 64})
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
		var wg sync.WaitGroup
		run := func(name string, fn func(r *rand.Rand, i int) error) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(uint64(round), uint64(len(name))))
				for i := 0; ; i++ {
					if err := fn(r, i); err != nil {
						return // closed
					}
				}
			}()
		}
		run("put", func(r *rand.Rand, i int) error {
			_, err := db.Put(fmt.Appendf(nil, "k%d", r.IntN(20)), fmt.Appendf(nil, "%d", i))
			return err
		})
		run("interactive txn", func(r *rand.Rand, i int) error {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			tx, err := db.Begin(ctx)
			if err != nil {
				return err
			}
			v := fmt.Appendf(nil, "t%d", i)
			tx.Put([]byte("pair/a"), v, kv.PutOptions{})
			tx.Put([]byte("pair/b"), v, kv.PutOptions{})
			switch r.IntN(3) {
			case 0:
				cancel()
			case 1:
				tx.Abort()
			}
			tx.Commit()
			return nil
		})
		run("conditional txn", func(r *rand.Rand, i int) error {
			_, err := db.Txn(context.Background(), &kv.TxnRequest{
				Compare: []kv.Compare{{Key: []byte("k1"), Target: kv.CompareVersion, Result: kv.CompareGreater}},
				Then:    []kv.Op{kv.PutOp([]byte("cas"), []byte("then")), kv.RangeOp([]byte("k"), []byte("l"), kv.RangeOptions{Limit: 3})},
				Else:    []kv.Op{kv.DeleteOp([]byte("cas"), nil)},
			})
			return err
		})
		run("leases", func(r *rand.Rand, i int) error {
			l, err := db.Grant(0, 1)
			if err != nil {
				return err
			}
			db.Put(fmt.Appendf(nil, "leased%d", i%5), nil, revkv.WithLease(l.ID))
			db.KeepAlive(l.ID)
			if i%2 == 0 {
				db.Revoke(l.ID)
			}
			return nil
		})
		run("compact", func(r *rand.Rand, i int) error {
			// Closed? (Once a compaction reached the last revision and
			// nothing else is written, no revision below is above the
			// compacted one, and Compact is never called again.)
			if _, err := db.View(); err != nil {
				return err
			}
			rev := db.Rev() - int64(r.IntN(30))
			if rev > db.CompactRev() {
				if err := db.Compact(rev); err != nil && db.Err() == nil {
					if _, err := db.View(); err != nil {
						return err
					}
				}
			}
			time.Sleep(100 * time.Microsecond)
			return nil
		})
		run("reads", func(r *rand.Rand, i int) error {
			if _, err := db.HashByRev(0); err != nil {
				return err
			}
			sn, err := db.Snapshot()
			if err != nil {
				return err
			}
			sn.WriteTo(io.Discard)
			sn.Close()
			return nil
		})
		var ws []*revkv.Watcher
		for i := range 4 {
			w := db.NewWatcher()
			w.Watch([]byte("k"), true, int64(i*5)) // keeping up, and from history
			ws = append(ws, w)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range w.Chan() {
					if i%2 == 0 {
						time.Sleep(50 * time.Microsecond) // a slow receiver
					}
				}
			}()
		}
		time.Sleep(time.Duration(5+rand.IntN(20)) * time.Millisecond)
		closed := make(chan error, 1)
		go func() { closed <- db.Close() }()
		select {
		case err := <-closed:
			if err != nil {
				t.Fatalf("round %d: Close: %v", round, err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("round %d: Close did not return", round)
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatalf("round %d: calls still blocked 20 s after Close", round)
		}
		for _, w := range ws {
			w.Close()
		}
		db = open()
		a, _, _ := db.Get([]byte("pair/a"))
		bb, _, _ := db.Get([]byte("pair/b"))
		if string(a.Value) != string(bb.Value) || a.ModRevision != bb.ModRevision {
			t.Fatalf("round %d: a txn's pair after reopen: %q@%d %q@%d", round, a.Value, a.ModRevision, bb.Value, bb.ModRevision)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if n := leaktest.Settle(goroutines); n > goroutines {
		t.Errorf("%d goroutines after the rounds, %d before", n, goroutines)
	}
}
