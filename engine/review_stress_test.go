package engine

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/revkv/revkv/kv"
)

// TestHeldViewsUnderWrites holds views in reader goroutines while a writer
// puts (new keys above every key, updates of hot keys, keys below), deletes,
// commits and aborts txns and compacts, with the point table on and made
// from a handful of keys, the hot-record cache and the state slabs in use:
// a view reads, at its revision and at an older one it may read, exactly
// what it read when it was opened, by point reads (the point table) and
// range reads (the tree), and the value bytes it was handed never change.
// Run it with -race.
func TestHeldViewsUnderWrites(t *testing.T) {
	defer func(n, m, h, f int) { pointMinKeys, pointMigrate, hotAfter, maxFresh = n, m, h, f }(pointMinKeys, pointMigrate, hotAfter, maxFresh)
	pointMinKeys, pointMigrate, hotAfter, maxFresh = 8, 1, 1, 16
	s := newStore(Options{PointIndex: true})
	defer s.Close()
	const hot = 40
	key := func(i int) []byte { return fmt.Appendf(nil, "k%05d", i) }
	done := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for r := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- holdViews(s, done, uint64(r))
		}()
	}
	rng := rand.New(rand.NewPCG(1, 2))
	top := hot // keys at or above top are not yet made: new keys above all
	val := func(i int) []byte { return bytes.Repeat([]byte{byte('a' + i%26)}, 1+i%40) }
	for i := range 2500 {
		switch op := rng.IntN(20); {
		case op < 8: // update of a hot key
			if _, err := s.Put(key(rng.IntN(hot)), val(i)); err != nil {
				t.Fatal(err)
			}
		case op < 11: // a new key above every key
			if _, err := s.Put(key(top), val(i)); err != nil {
				t.Fatal(err)
			}
			top++
		case op < 13: // delete the greatest keys, or some below
			k := top - 1 - rng.IntN(3)
			if rng.IntN(2) == 0 {
				k = rng.IntN(top)
			}
			if _, _, err := s.DeleteRange(key(k), key(k+2)); err != nil {
				t.Fatal(err)
			}
		case op < 16: // a txn above every key, committed or aborted
			x, err := s.Begin(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			x.Put(key(top+1), val(i), kv.PutOptions{})
			x.Put(key(rng.IntN(hot)), val(i+1), kv.PutOptions{})
			x.Put(key(top), val(i+2), kv.PutOptions{})
			if _, err := x.Range(key(0), nil, RangeOptions{}); err != nil {
				t.Fatal(err)
			}
			if rng.IntN(2) == 0 {
				x.Abort()
			} else {
				if _, err := x.Commit(); err != nil {
					t.Fatal(err)
				}
				top += 2
			}
		default: // compact, often to the current revision
			rev := s.Rev() - int64(rng.IntN(4))
			if rev > s.CompactRev() {
				if err := s.Compact(rev); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	close(done)
	wg.Wait()
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if err := checkPoints(s); err != nil {
		t.Fatal(err)
	}
}

// heldRead is what a view read of one key at one revision when it was
// opened: a copy, and the value as handed out.
type heldRead struct {
	key  []byte
	rev  int64
	want []KeyValue // copies
	got  []KeyValue // as returned
}

// holdViews opens views until done, and checks each one against itself
// while the writer goes on.
func holdViews(s *Store, done <-chan struct{}, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, 7))
	for {
		select {
		case <-done:
			return nil
		default:
		}
		v, err := s.View()
		if err != nil {
			return err
		}
		revs := []int64{v.Rev()}
		if lo := max(v.CompactRev(), 1); lo < v.Rev() {
			revs = append(revs, lo+rng.Int64N(v.Rev()-lo))
		}
		var reads []heldRead
		for _, rev := range revs {
			all, err := v.Range([]byte("k"), []byte("l"), RangeOptions{Rev: rev})
			if err != nil {
				return fmt.Errorf("view at %d (compacted %d): range at %d: %w", v.Rev(), v.CompactRev(), rev, err)
			}
			for _, kv := range all.KVs {
				reads = append(reads, heldRead{key: kv.Key, rev: rev, want: []KeyValue{cloneKV(kv)}, got: []KeyValue{kv}})
			}
			// A key just above the greatest one live: absent.
			if n := len(all.KVs); n > 0 {
				k := append(bytes.Clone(all.KVs[n-1].Key), 0)
				reads = append(reads, heldRead{key: k, rev: rev})
			}
		}
		for range 20 {
			for _, h := range reads {
				res, err := v.Range(h.key, nil, RangeOptions{Rev: h.rev})
				if err != nil {
					return fmt.Errorf("view at %d: get %q at %d: %w", v.Rev(), h.key, h.rev, err)
				}
				if !sameKVs(res.KVs, h.want) {
					return fmt.Errorf("view at %d (compacted %d): get %q at %d: %v, read %v when opened", v.Rev(), v.CompactRev(), h.key, h.rev, res.KVs, h.want)
				}
			}
		}
		for _, h := range reads {
			if !sameKVs(h.got, h.want) {
				return fmt.Errorf("view at %d: the value of %q at %d changed: %q, was %q", v.Rev(), h.key, h.rev, h.got[0].Value, h.want[0].Value)
			}
		}
	}
}

func cloneKV(kv KeyValue) KeyValue {
	kv.Key, kv.Value = bytes.Clone(kv.Key), bytes.Clone(kv.Value)
	return kv
}

func sameKVs(a, b []KeyValue) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !sameKV(a[i], b[i]) {
			return false
		}
	}
	return true
}
