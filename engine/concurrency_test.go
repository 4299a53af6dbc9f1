package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/revkv/revkv/internal/leaktest"
	"github.com/revkv/revkv/kv"
	"io"
	"runtime"
	"sync"
	"testing"
)

// TestConcurrentReadersSeeWholeTxns runs writers, readers, views,
// compactions, snapshots and hashes at once (run it with -race). Each txn
// writes the same value to x and y; a reader must never see them differ, and
// the revisions a reader sees must never go back.
func TestConcurrentReadersSeeWholeTxns(t *testing.T) {
	before := runtime.NumGoroutine()
	s := newStore(Options{})
	const writes = 2000
	var wg, writers sync.WaitGroup
	errc := make(chan error, 16)
	report := func(err error) {
		select {
		case errc <- err:
		default:
		}
	}
	done := make(chan struct{})

	for w := range 2 {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for i := range writes {
				v := []byte(fmt.Sprintf("%d-%d", w, i))
				id, err := s.TxnBegin()
				if err != nil {
					report(err)
					return
				}
				s.TxnPut(id, b("x"), v)
				s.TxnPut(id, b("y"), v)
				if err := s.TxnEnd(id); err != nil {
					report(err)
					return
				}
				s.Put([]byte(keyN(i%50)), v)
				if i%7 == 0 {
					s.DeleteRange([]byte(keyN(i%50)), nil)
				}
			}
		}()
	}
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := int64(0)
			for {
				select {
				case <-done:
					return
				default:
				}
				v, err := s.View()
				if err != nil {
					report(err)
					return
				}
				if v.Rev() < last {
					report(fmt.Errorf("revision went back from %d to %d", last, v.Rev()))
					return
				}
				last = v.Rev()
				res, err := v.Range(b("x"), b("z"), RangeOptions{})
				if err != nil {
					report(err)
					return
				}
				if len(res.KVs) == 2 && !bytes.Equal(res.KVs[0].Value, res.KVs[1].Value) {
					report(fmt.Errorf("at %d x=%s y=%s: a txn was seen half-applied", v.Rev(), res.KVs[0].Value, res.KVs[1].Value))
					return
				}
				// The same historical read twice gives the same answer.
				old := max(v.CompactRev(), v.Rev()-5, 1)
				r1, err1 := v.Range(nil, []byte{}, RangeOptions{Rev: old})
				r2, err2 := v.Range(nil, []byte{}, RangeOptions{Rev: old})
				if err1 != nil || err2 != nil || len(r1.KVs) != len(r2.KVs) {
					report(fmt.Errorf("historical read at %d: %v, %v, %d vs %d keys", old, err1, err2, len(r1.KVs), len(r2.KVs)))
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			if rev := s.Rev() - 20; rev > s.CompactRev() {
				if err := s.Compact(rev); err != nil && !errors.Is(err, ErrCompacted) {
					report(err)
					return
				}
			}
			sn, err := s.Snapshot()
			if err != nil {
				report(err)
				return
			}
			if _, err := sn.WriteTo(io.Discard); err != nil {
				report(err)
			}
			sn.Close()
			if _, err := s.HashByRev(0); err != nil {
				report(err)
			}
		}
	}()

	writers.Wait()
	close(done)
	wg.Wait()
	select {
	case err := <-errc:
		t.Fatal(err)
	default:
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if after := leaktest.Settle(before); after > before {
		t.Fatalf("%d goroutines after Close, %d before", after, before)
	}
}

// TestCloseWhileWriting closes the store under running writers and readers:
// every call after Close fails with kv.ErrClosed, none panics or hangs.
func TestCloseWhileWriting(t *testing.T) {
	s := newStore(Options{})
	var wg sync.WaitGroup
	start := make(chan struct{})
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := 0; ; i++ {
				var err error
				switch (w + i) % 4 {
				case 0:
					_, err = s.Put([]byte(keyN(i%10)), nil)
				case 1:
					var id int64
					if id, err = s.TxnBegin(); err == nil {
						s.TxnPut(id, b("t"), nil)
						err = s.TxnEnd(id)
					}
				case 2:
					_, _, err = s.Range(nil, []byte{}, 0, 0)
				case 3:
					err = s.Compact(s.Rev())
					if errors.Is(err, ErrCompacted) {
						err = nil
					}
				}
				if errors.Is(err, kv.ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("before Close: %v", err)
					return
				}
			}
		}()
	}
	close(start)
	for s.Rev() < 500 {
		runtime.Gosched()
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
}

// TestConcurrentFreshKeys reads new keys while a writer makes them (run it
// with -race): the writer appends to the fresh keys' tail, merges runs,
// grows the hash index and copies the trees while readers search them. A
// reader at revision r must see exactly the keys put by r (key i is put at
// revision i+2), by point reads, misses and ranges; aborted txns and
// compactions in between start the fresh keys again. Keys come in a
// scrambled order, or in key order but for one in 251 (fresh keys in key
// order are one sorted tail until such a key comes: freshSeg.asc).
func TestConcurrentFreshKeys(t *testing.T) {
	defer func(m, f int) { maxFresh, freshTail = m, f }(maxFresh, freshTail)
	defer func(g, s, r int) { maxFreshGrown, freshShare, maxRun = g, s, r }(maxFreshGrown, freshShare, maxRun)
	maxFresh, freshTail = 300, 8
	// Copies further apart as the trees grow, and a big run merged in steps.
	maxFreshGrown, freshShare, maxRun = 1000, 2, 64
	t.Run("order=scrambled", func(t *testing.T) {
		testConcurrentFreshKeys(t, func(i int) []byte { return fmt.Appendf(nil, "k%05d", (i*7919)%10007) })
	})
	t.Run("order=key", func(t *testing.T) {
		testConcurrentFreshKeys(t, func(i int) []byte {
			if i%251 == 250 {
				return fmt.Appendf(nil, "k%05d", 2*i-201) // odd: between earlier keys
			}
			return fmt.Appendf(nil, "k%05d", 2*i)
		})
	})
}

// testConcurrentFreshKeys is TestConcurrentFreshKeys with key(i) the i-th
// key put (all distinct).
func testConcurrentFreshKeys(t *testing.T, key func(i int) []byte) {
	s := newStore(Options{})
	defer s.Close()
	const n = 3000
	var wg sync.WaitGroup
	done := make(chan struct{})
	errc := make(chan error, 4)
	for r := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; ; j++ {
				select {
				case <-done:
					return
				default:
				}
				v, _ := s.View()
				made := int(v.Rev() - 1) // keys 0 .. made-1
				if made == 0 {
					continue
				}
				i := (j*31 + r) % (made + 5)
				res, err := v.Range(key(i), nil, RangeOptions{})
				if err != nil || (len(res.KVs) == 1) != (i < made) {
					errc <- fmt.Errorf("view at %d: key %d: %d keys, %v", v.Rev(), i, len(res.KVs), err)
					return
				}
				if j%16 == 0 {
					res, err := v.Range(nil, []byte{}, RangeOptions{CountOnly: true})
					if err != nil || res.Count != int64(made) {
						errc <- fmt.Errorf("view at %d: %d keys, want %d, %v", v.Rev(), res.Count, made, err)
						return
					}
				}
			}
		}()
	}
	for i := range n {
		if _, err := s.Put(key(i), []byte("v")); err != nil {
			t.Fatal(err)
		}
		switch {
		case i%97 == 0:
			tx, _ := s.Begin(context.Background())
			tx.Put([]byte("aborted"), []byte("x"), kv.PutOptions{})
			tx.Abort()
		case i%500 == 0:
			// Nothing to free (every key has one version), but a new copy
			// of the trees.
			if err := s.Compact(s.Rev()); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(done)
	wg.Wait()
	select {
	case err := <-errc:
		t.Fatal(err)
	default:
	}
}
