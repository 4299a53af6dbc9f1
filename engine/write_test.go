package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/revkv/revkv/kv"
)

// TestPutAboveAll checks the writer's greatest key (writerState.last),
// which lets a key above every key skip the lookup: puts at, just below and
// above it, after deletes and compactions that remove the greatest keys,
// and after aborted txns that made them, against a model of each key's
// create revision and version.
func TestPutAboveAll(t *testing.T) {
	defer func(m, tl int) { maxFresh, freshTail = m, tl }(maxFresh, freshTail)
	maxFresh, freshTail = 50, 3 // the overlay fills, and the trees are copied, often
	type live struct{ create, ver int64 }
	r := rand.New(rand.NewPCG(7, 7))
	s := newStore(Options{})
	model := map[string]live{}
	top := 0 // keys are k%06d, numbered up to top
	key := func(i int) string { return fmt.Sprintf("k%06d", i) }
	check := func(op int, k string) {
		t.Helper()
		kvs, _, err := s.Range([]byte(k), nil, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		m, ok := model[k]
		switch {
		case !ok && len(kvs) != 0:
			t.Fatalf("op %d: %s = %v, want none", op, k, keysOf(kvs))
		case ok && (len(kvs) != 1 || kvs[0].CreateRevision != m.create || kvs[0].Version != m.ver):
			t.Fatalf("op %d: %s = %v, want create %d version %d", op, k, keysOf(kvs), m.create, m.ver)
		}
	}
	put := func(op int, k string) {
		t.Helper()
		rev := mustPut(t, s, k, "v")
		m, ok := model[k]
		if !ok {
			m.create = rev
		}
		m.ver++
		model[k] = m
		check(op, k)
	}
	for op := range 3000 {
		switch n := r.IntN(100); {
		case n < 40: // a new key above all
			top += 1 + r.IntN(3)
			put(op, key(top))
		case n < 55: // the greatest key number again, deleted or not
			put(op, key(top))
		case n < 70: // a key below it
			put(op, key(r.IntN(top+1)))
		case n < 80: // delete the greatest keys
			lo := max(0, top-r.IntN(4))
			if _, _, err := s.DeleteRange([]byte(key(lo)), []byte(key(top+1))); err != nil {
				t.Fatal(err)
			}
			for i := lo; i <= top; i++ {
				delete(model, key(i))
			}
			check(op, key(top))
		case n < 88: // compaction drops the deleted records
			if s.Rev() == s.CompactRev() {
				continue
			}
			if err := s.Compact(s.Rev()); err != nil {
				t.Fatal(err)
			}
		default: // a txn makes keys above all, and is aborted
			x, err := s.Begin(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for i := range 1 + r.IntN(3) {
				if _, err := x.Put([]byte(key(top+1+i)), []byte("t"), kv.PutOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			if err := x.Abort(); err != nil {
				t.Fatal(err)
			}
			check(op, key(top+1))
		}
		if op%500 == 0 || op == 2999 {
			kvs, _, err := s.Range([]byte("k"), []byte("l"), 0, 0)
			if err != nil || len(kvs) != len(model) {
				t.Fatalf("op %d: %d keys (%v), model %d", op, len(kvs), err, len(model))
			}
			for _, kv := range kvs {
				check(op, string(kv.Key))
			}
		}
	}
}
