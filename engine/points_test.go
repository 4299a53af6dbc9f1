package engine

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/revkv/revkv/kv"
	"github.com/revkv/revkv/proptest"
	"pgregory.net/rapid"
)

// TestPointTable holds point reads, which take a key's record from the
// point table when it has a version at the read's revision, to the
// reference model: at the current and older revisions, through views held
// across later puts, deletes, compactions (which replace and remove
// records) and txns that commit or abort (an abort takes back the keys
// the txn made, whose revision the next write reuses), in tables that
// grow, and move their records to a new table a few groups at a time,
// from a handful of keys on. After every step, the writer's table holds
// exactly the records of the writer's index.
func TestPointTable(t *testing.T) {
	defer func(n, m, f int) { pointMinKeys, pointMigrate, maxFresh = n, m, f }(pointMinKeys, pointMigrate, maxFresh)
	rapid.Check(t, func(t *rapid.T) {
		pointMinKeys = rapid.IntRange(0, 12).Draw(t, "pointMinKeys")
		pointMigrate = rapid.IntRange(1, 3).Draw(t, "pointMigrate")
		maxFresh = rapid.IntRange(1, 64).Draw(t, "maxFresh")
		s := newStore(Options{PointIndex: true})
		defer s.Close()
		m := proptest.NewModel()
		nkeys := rapid.IntRange(4, 60).Draw(t, "keys")
		key := func(label string) []byte {
			return fmt.Appendf(nil, "k%03d", rapid.IntRange(0, nkeys-1).Draw(t, label))
		}
		type held struct {
			v            *View
			rev, compact int64
		}
		var views []held
		check := func(what string, got, want []kv.KeyValue, gerr, werr error) {
			if (gerr == nil) != (werr == nil) || len(got) != len(want) {
				t.Fatalf("%s: %d keys (%v), model %d (%v)", what, len(got), gerr, len(want), werr)
			}
			for i := range got {
				if !sameKV(got[i], want[i]) {
					t.Fatalf("%s: %+v, model %+v", what, got[i], want[i])
				}
			}
		}
		for range rapid.IntRange(20, 300).Draw(t, "steps") {
			if err := checkPoints(s); err != nil {
				t.Fatal(err)
			}
			switch rapid.IntRange(0, 11).Draw(t, "op") {
			case 0, 1, 2, 3:
				k, v := key("key"), fmt.Appendf(nil, "v%d", m.Rev())
				_, err1 := s.Put(k, v)
				_, err2 := m.Put(k, v, 0)
				if err1 != nil || err2 != nil {
					t.Fatalf("put %q: %v / %v", k, err1, err2)
				}
			case 4:
				k := key("key")
				var e []byte
				if rapid.Bool().Draw(t, "rangeDelete") {
					e = key("end")
				}
				n1, _, err1 := s.DeleteRange(k, e)
				n2, _, err2 := m.DeleteRange(k, e)
				if n1 != n2 || (err1 == nil) != (err2 == nil) {
					t.Fatalf("delete [%q, %q): %d %v, model %d %v", k, e, n1, err1, n2, err2)
				}
			case 5:
				if m.CompactRev() < m.Rev() {
					rev := rapid.Int64Range(max(m.CompactRev()+1, 0), m.Rev()).Draw(t, "compact")
					if err1, err2 := s.Compact(rev), m.Compact(rev); (err1 == nil) != (err2 == nil) {
						t.Fatalf("compact %d: %v, model %v", rev, err1, err2)
					}
				}
			case 6:
				txnOps(t, s, m, key)
			case 7:
				v, err := s.View()
				if err != nil {
					t.Fatal(err)
				}
				views = append(views, held{v, m.Rev(), m.CompactRev()})
			case 8:
				if len(views) == 0 {
					continue
				}
				h := views[rapid.IntRange(0, len(views)-1).Draw(t, "view")]
				k := key("key")
				rev := rapid.Int64Range(0, h.rev).Draw(t, "rev")
				res, err1 := h.v.Range(k, nil, RangeOptions{Rev: rev})
				want, err2 := m.RangeView(k, nil, 0, rev, h.rev, h.compact)
				check(fmt.Sprintf("view at %d: get %q at %d", h.rev, k, rev), res.KVs, want, err1, err2)
			default:
				k := key("key")
				rev := rapid.Int64Range(0, m.Rev()).Draw(t, "rev")
				got, _, err1 := s.Range(k, nil, 0, rev)
				want, _, err2 := m.Range(k, nil, 0, rev)
				check(fmt.Sprintf("get %q at %d", k, rev), got, want, err1, err2)
			}
		}
	})
}

// txnOps runs a txn of a few puts and deletes, then commits or aborts it.
func txnOps(t *rapid.T, s *Store, m *proptest.Model, key func(string) []byte) {
	x, err := s.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m.TxnBegin()
	for range rapid.IntRange(1, 5).Draw(t, "txnOps") {
		k := key("txnKey")
		if rapid.IntRange(0, 3).Draw(t, "txnDelete") == 0 {
			r1, err1 := x.DeleteRange(k, nil, kv.DeleteOptions{})
			n2, _, err2 := m.TxnDeleteRange(k, nil)
			if err1 != nil || err2 != nil || r1.Deleted != n2 {
				t.Fatalf("txn delete %q: %d %v, model %d %v", k, r1.Deleted, err1, n2, err2)
			}
			continue
		}
		v := fmt.Appendf(nil, "t%d", m.Rev())
		_, err1 := x.Put(k, v, kv.PutOptions{})
		_, err2 := m.TxnPut(k, v, 0)
		if err1 != nil || err2 != nil {
			t.Fatalf("txn put %q: %v / %v", k, err1, err2)
		}
	}
	if rapid.Bool().Draw(t, "abort") {
		if err := x.Abort(); err != nil {
			t.Fatal(err)
		}
		m.TxnAbort()
		return
	}
	if _, err := x.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := m.TxnEnd(); err != nil {
		t.Fatal(err)
	}
}

// checkPoints checks that the writer's point table (if it has one) holds
// exactly the records of the writer's index, each found by its key, and
// counts them right.
func checkPoints(s *Store) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	x := s.w.points
	if x == nil {
		if n := s.w.keys.len(); n >= pointMinKeys && s.cur.Load().points != nil {
			return fmt.Errorf("no point table at %d keys, but the published state has one", n)
		}
		return nil
	}
	n := 0
	var err error
	s.w.keys.ascend(nil, nil, func(r *keyRecord) bool {
		n++
		if got := x.find(r.key()); got != r {
			err = fmt.Errorf("point table: key %q finds %p, the index has %p", r.key(), got, r)
		}
		return err == nil
	})
	if err != nil {
		return err
	}
	live := x.cur.live
	tables := []*pointTable{x.cur}
	if x.old != nil {
		live += x.old.live
		tables = append(tables, x.old)
	}
	if live != n {
		return fmt.Errorf("point table counts %d keys, the index has %d", live, n)
	}
	full := 0
	for _, tb := range tables {
		used := 0
		for g := range tb.groups {
			c := tb.groups[g].ctrl.Load()
			if byte(c>>56) != pointDeleted {
				return fmt.Errorf("group %d: control word %x", g, c)
			}
			for i := range pointSlots {
				b := byte(c >> (8 * i))
				r := tb.groups[g].slots[i].Load()
				switch {
				case b == pointEmpty || b == pointDeleted:
					if r != nil {
						return fmt.Errorf("group %d slot %d: %x holds a record", g, i, b)
					}
					if b == pointDeleted {
						used++
					}
				case uint64(b) != pointTag(pointHash(r.key())):
					return fmt.Errorf("group %d slot %d: tag %x for key %q", g, i, b, r.key())
				default:
					used++
					full++
				}
			}
		}
		if used != tb.used {
			return fmt.Errorf("table counts %d used slots, holds %d", tb.used, used)
		}
	}
	if full != n {
		return fmt.Errorf("point tables hold %d records, the index %d keys", full, n)
	}
	return nil
}

// TestPointMatch checks match against a byte-by-byte comparison.
func TestPointMatch(t *testing.T) {
	for _, c := range []uint64{0, pointFresh, 0x0180818283848586, 0x01ff00ff00ff0001} {
		for b := range uint64(256) {
			got := match(c, b)
			var want uint64
			for i := range 8 {
				if (c>>(8*i))&0xff == b {
					want |= 0x80 << (8 * i)
				}
			}
			if got != want {
				t.Fatalf("match(%x, %x) = %x, want %x", c, b, got, want)
			}
		}
	}
}

// TestPointTableConcurrent reads keys through the point table while the
// writer puts, deletes, compacts, aborts txns and grows the table: every
// point read of a view must equal the same view's range read of the key
// alone, which walks the tree. Run it with -race.
func TestPointTableConcurrent(t *testing.T) {
	defer func(n, m int) { pointMinKeys, pointMigrate = n, m }(pointMinKeys, pointMigrate)
	pointMinKeys, pointMigrate = 0, 1
	s := newStore(Options{PointIndex: true})
	defer s.Close()
	const keys = 300
	key := func(i int) []byte { return fmt.Appendf(nil, "k%04d", i) }
	done := make(chan struct{})
	errs := make(chan error, 2)
	for r := range 2 {
		go func() {
			for i := r; ; i++ {
				select {
				case <-done:
					errs <- nil
					return
				default:
				}
				v, err := s.View()
				if err != nil {
					errs <- err
					return
				}
				k := key(i * 7 % keys)
				got, err1 := v.Range(k, nil, RangeOptions{})
				want, err2 := v.Range(k, append(slices.Clone(k), 0), RangeOptions{})
				if (err1 == nil) != (err2 == nil) || len(got.KVs) != len(want.KVs) ||
					(len(got.KVs) == 1 && !sameKV(got.KVs[0], want.KVs[0])) {
					errs <- fmt.Errorf("view at %d: get %q: %v (%v), range %v (%v)", v.Rev(), k, got.KVs, err1, want.KVs, err2)
					return
				}
			}
		}()
	}
	for i := range 6000 {
		k := key(i * 13 % keys)
		switch i % 10 {
		case 7:
			if _, _, err := s.DeleteRange(k, key(i*13%keys+5)); err != nil {
				t.Fatal(err)
			}
		case 8:
			x, err := s.Begin(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			x.Put(fmt.Appendf(nil, "t%04d", i), nil, kv.PutOptions{})
			x.Put(k, []byte("aborted"), kv.PutOptions{})
			x.Abort()
		case 9:
			if err := s.Compact(s.Rev() - 3); err != nil {
				t.Fatal(err)
			}
		default:
			if _, err := s.Put(fmt.Appendf(nil, "%s", k), fmt.Appendf(nil, "v%d", i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(done)
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if err := checkPoints(s); err != nil {
		t.Fatal(err)
	}
}

// TestPointTableLoad fills a store from a snapshot, whose keys come by the
// append path (loadLocked), with and without a point table already made
// (pointMinKeys 0 or above the keys): the loaded store's table holds its
// index's records, and its point reads are the source's.
func TestPointTableLoad(t *testing.T) {
	defer func(n int) { pointMinKeys = n }(pointMinKeys)
	src := newStore(Options{})
	defer src.Close()
	for i := range 500 {
		src.Put(fmt.Appendf(nil, "k%04d", i%300), fmt.Appendf(nil, "v%d", i))
	}
	src.DeleteRange([]byte("k0100"), []byte("k0150"))
	if err := src.Compact(src.Rev() - 50); err != nil {
		t.Fatal(err)
	}
	sn, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := sn.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	sn.Close()
	for _, min := range []int{0, 100, 1000} {
		pointMinKeys = min
		s, err := loadStore(bytes.NewReader(buf.Bytes()), Options{PointIndex: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := checkPoints(s); err != nil {
			t.Fatalf("pointMinKeys %d: %v", min, err)
		}
		if (s.cur.Load().points != nil) != (min <= 250) {
			t.Fatalf("pointMinKeys %d: table %v", min, s.cur.Load().points != nil)
		}
		for i := range 300 {
			k := fmt.Appendf(nil, "k%04d", i)
			for _, rev := range []int64{0, src.Rev() - 20} {
				got, _, err1 := s.Range(k, nil, 0, rev)
				want, _, err2 := src.Range(k, nil, 0, rev)
				if err1 != nil || err2 != nil || len(got) != len(want) || (len(got) == 1 && !sameKV(got[0], want[0])) {
					t.Fatalf("pointMinKeys %d: get %q at %d: %v %v, source %v %v", min, k, rev, got, err1, want, err2)
				}
			}
		}
		s.Close()
	}
}

// TestPointTableGrowsAfterDeletes grows a point table (default knobs) whose
// slots are mostly deleted (it filled, then compaction removed most keys),
// then puts new keys: the new table, sized for the few live keys, takes those still to
// move from the old one and a new key per put until they have all moved,
// and must not fill meanwhile (a full table's insert would search for a
// free slot forever, holding the writer's lock).
func TestPointTableGrowsAfterDeletes(t *testing.T) {
	s := newStore(Options{PointIndex: true})
	key := func(i int) []byte { return fmt.Appendf(nil, "k%06d", i) }
	nearlyFull := func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		x := s.w.points
		return x != nil && x.old == nil && x.cur.full() // the next put grows it
	}
	n := 0
	for ; !nearlyFull(); n++ {
		if _, err := s.Put(key(n), nil); err != nil {
			t.Fatal(err)
		}
	}
	// Keep one key in 25.
	for i := 0; i < n; i += 25 {
		if _, _, err := s.DeleteRange(key(i+1), key(i+25)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Compact(s.Rev()); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		for i := range 1000 {
			if _, err := s.Put(key(n+i), nil); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		// (The writer spins holding mu: Close would wait for it.)
		t.Fatal("puts after a growth of a table of deleted slots did not finish: the new table filled")
	}
	defer s.Close()
	if err := checkPoints(s); err != nil {
		t.Fatal(err)
	}
}
