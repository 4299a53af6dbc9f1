package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/revkv/revkv/kv"
)

// Each test here checks sentences of docs/SEMANTICS.md's Revisions, Range,
// Put and DeleteRange, Transactions, Compact, Hash and Bad input sections.

func TestRevisions(t *testing.T) {
	s := newStore(Options{})
	if got := s.Rev(); got != 1 {
		t.Fatalf("new store Rev() = %d, want 1", got)
	}
	if got := mustPut(t, s, "a", "1"); got != 2 {
		t.Fatalf("first write at revision %d, want 2", got)
	}
	mustPut(t, s, "a", "2")
	mustPut(t, s, "b", "x")
	if _, _, err := s.DeleteRange(b("a"), nil); err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, "a", "3")
	if _, err := s.Grant(42, 3600); err != nil { // no revision
		t.Fatal(err)
	}
	if _, err := s.PutLease(b("a"), b("4"), 42); err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	tests := []struct {
		rev  int64
		want KeyValue
		ok   bool
	}{
		{2, KeyValue{Key: b("a"), Value: b("1"), CreateRevision: 2, ModRevision: 2, Version: 1}, true},
		{3, KeyValue{Key: b("a"), Value: b("2"), CreateRevision: 2, ModRevision: 3, Version: 2}, true},
		{4, KeyValue{Key: b("a"), Value: b("2"), CreateRevision: 2, ModRevision: 3, Version: 2}, true},
		{5, KeyValue{}, false}, // deleted
		// After a delete the history starts over: new CreateRevision, Version 1.
		{6, KeyValue{Key: b("a"), Value: b("3"), CreateRevision: 6, ModRevision: 6, Version: 1}, true},
		{7, KeyValue{Key: b("a"), Value: b("4"), CreateRevision: 6, ModRevision: 7, Version: 2, Lease: 42}, true},
	}
	for _, tt := range tests {
		kvs, rev, err := s.Range(b("a"), nil, 0, tt.rev)
		if err != nil {
			t.Fatalf("Range at %d: %v", tt.rev, err)
		}
		if rev != 7 {
			t.Errorf("Range at %d returned rev %d, want the current 7", tt.rev, rev)
		}
		if !tt.ok {
			if len(kvs) != 0 {
				t.Errorf("Range at %d = %v, want nothing", tt.rev, kvs)
			}
			continue
		}
		if len(kvs) != 1 || !sameKV(kvs[0], tt.want) {
			t.Errorf("Range at %d = %+v, want %+v", tt.rev, kvs, tt.want)
		}
	}
}

func rangeStore(t *testing.T) *Store {
	s := newStore(Options{})
	for _, k := range []string{"a", "a\x00", "ab", "b", "c", "d"} {
		mustPut(t, s, k, k)
	}
	return s
}

func TestRangeSelection(t *testing.T) {
	s := rangeStore(t)
	tests := []struct {
		name     string
		key, end []byte
		limit    int64
		want     []string
	}{
		{"nil end is one key", b("ab"), nil, 0, []string{"ab=ab"}},
		{"nil end, absent key", b("zz"), nil, 0, nil},
		{"empty end is every key >= key", b("b"), []byte{}, 0, []string{"b=b", "c=c", "d=d"}},
		{"empty key and empty end is everything", nil, []byte{}, 0, []string{"a=a", "a\x00=a\x00", "ab=ab", "b=b", "c=c", "d=d"}},
		{"half-open range", b("a"), b("b"), 0, []string{"a=a", "a\x00=a\x00", "ab=ab"}},
		{"end == key selects nothing", b("b"), b("b"), 0, nil},
		{"end < key selects nothing", b("c"), b("b"), 0, nil},
		{"[]byte{0} is not special", b("a"), []byte{0}, 0, nil},
		{"empty key with end", nil, b("ab"), 0, []string{"a=a", "a\x00=a\x00"}},
		{"limit", b("a"), []byte{}, 2, []string{"a=a", "a\x00=a\x00"}},
		{"limit <= 0 is no limit", b("c"), []byte{}, -3, []string{"c=c", "d=d"}},
		{"limit above count", b("c"), []byte{}, 10, []string{"c=c", "d=d"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kvs, rev, err := s.Range(tt.key, tt.end, tt.limit, 0)
			if err != nil {
				t.Fatal(err)
			}
			if rev != s.Rev() {
				t.Errorf("rev %d, want %d", rev, s.Rev())
			}
			if got := keysOf(kvs); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRangeOptions(t *testing.T) {
	s := rangeStore(t)
	res, err := s.RangeWithOptions(b("a"), []byte{}, RangeOptions{Limit: 2, TotalCount: true})
	if err != nil || len(res.KVs) != 2 || res.Count != 6 {
		t.Fatalf("limit 2 with total count: %d kvs, count %d, %v; want 2, 6", len(res.KVs), res.Count, err)
	}
	res, err = s.RangeWithOptions(b("a"), []byte{}, RangeOptions{Limit: 2})
	if err != nil || res.Count != 2 {
		t.Fatalf("count without TotalCount = %d, %v; want len(KVs) = 2", res.Count, err)
	}
	res, err = s.RangeWithOptions(b("a"), b("c"), RangeOptions{CountOnly: true})
	if err != nil || len(res.KVs) != 0 || res.Count != 4 {
		t.Fatalf("count only: %d kvs, count %d, %v; want 0, 4", len(res.KVs), res.Count, err)
	}
	res, err = s.RangeWithOptions(b("c"), []byte{}, RangeOptions{KeysOnly: true})
	if err != nil || len(res.KVs) != 2 || res.KVs[0].Value != nil || string(res.KVs[1].Key) != "d" || res.KVs[1].Version != 1 {
		t.Fatalf("keys only: %+v, %v", res.KVs, err)
	}
}

func TestRangeRevisions(t *testing.T) {
	s := newStore(Options{})
	mustPut(t, s, "a", "1") // 2
	mustPut(t, s, "a", "2") // 3
	mustPut(t, s, "a", "3") // 4
	if err := s.Compact(3); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		rev     int64
		want    string
		wantErr error
	}{
		{0, "3", nil},
		{-7, "3", nil},
		{4, "3", nil},
		{3, "2", nil},
		{5, "", ErrFutureRev},
		{2, "", ErrCompacted},
		{1, "", ErrCompacted},
	}
	for _, tt := range tests {
		kvs, _, err := s.Range(b("a"), nil, 0, tt.rev)
		wantErr(t, "Range", err, tt.wantErr)
		if tt.wantErr == nil && (len(kvs) != 1 || string(kvs[0].Value) != tt.want) {
			t.Errorf("Range at %d = %v, want %q", tt.rev, kvs, tt.want)
		}
	}
}

func TestPutAndDeleteRange(t *testing.T) {
	s := newStore(Options{})
	for i, k := range []string{"a", "b", "c", "d"} {
		if rev := mustPut(t, s, k, "v"); rev != int64(i+2) {
			t.Fatalf("Put %q at %d, want %d: each put is one new revision", k, rev, i+2)
		}
	}
	n, rev, err := s.DeleteRange(b("b"), b("d"))
	if err != nil || n != 2 || rev != 6 {
		t.Fatalf("DeleteRange(b, d) = %d, %d, %v; want 2, 6: all under one revision", n, rev, err)
	}
	n, rev, err = s.DeleteRange(b("b"), b("d"))
	if err != nil || n != 0 || rev != 6 || s.Rev() != 6 {
		t.Fatalf("DeleteRange of nothing = %d, %d, %v (Rev %d); want 0, 6: the revision does not move", n, rev, err, s.Rev())
	}
	n, rev, err = s.DeleteRange(nil, []byte{})
	if err != nil || n != 2 || rev != 7 {
		t.Fatalf("DeleteRange(all) = %d, %d, %v; want 2, 7", n, rev, err)
	}
	v, _ := s.View()
	var evs []Event
	for ev, err := range v.Events(6) {
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	want := []string{"DELETE b 6.0", "DELETE c 6.1", "DELETE a 7.0", "DELETE d 7.1"}
	if len(evs) != len(want) {
		t.Fatalf("events %v, want %v", evs, want)
	}
	for i, ev := range evs {
		if got := ev.Type.String() + " " + string(ev.KV.Key) + " " + ev.Revision().String(); got != want[i] {
			t.Errorf("event %d = %s, want %s", i, got, want[i])
		}
	}
}

func TestTxn(t *testing.T) {
	s := newStore(Options{})
	mustPut(t, s, "a", "0") // 2
	id, err := s.TxnBegin()
	if err != nil {
		t.Fatal(err)
	}
	// Reads before any write see the begin revision.
	if _, rev, _ := s.TxnRange(id, b("a"), nil, 0, 0); rev != 2 {
		t.Fatalf("TxnRange before writes: rev %d, want 2", rev)
	}
	if rev, _ := s.TxnPut(id, b("a"), b("1")); rev != 3 {
		t.Fatalf("TxnPut rev %d, want 3", rev)
	}
	s.TxnPut(id, b("a"), b("2"))
	s.TxnPut(id, b("b"), b("x"))
	if n, rev, _ := s.TxnDeleteRange(id, b("b"), nil); n != 1 || rev != 3 {
		t.Fatalf("TxnDeleteRange = %d, %d; want 1, 3", n, rev)
	}
	s.TxnPut(id, b("b"), b("y")) // delete then re-put in one txn

	// Reads inside see the txn's own writes; readers outside see revision 2.
	kvs, rev, err := s.TxnRange(id, b("a"), []byte{}, 0, 0)
	if err != nil || rev != 3 || len(kvs) != 2 {
		t.Fatalf("TxnRange = %v, %d, %v", kvs, rev, err)
	}
	if a := kvs[0]; string(a.Value) != "2" || a.Version != 3 || a.CreateRevision != 2 {
		t.Errorf("a inside the txn = %+v; want value 2, version 3 (both writes count), create 2", a)
	}
	if b := kvs[1]; string(b.Value) != "y" || b.Version != 1 || b.CreateRevision != 3 {
		t.Errorf("b inside the txn = %+v; want a new incarnation: version 1, create 3", b)
	}
	if _, _, err := s.TxnRange(id, b("a"), nil, 0, 4); !errors.Is(err, ErrFutureRev) {
		t.Errorf("TxnRange past the txn's revision: %v, want ErrFutureRev", err)
	}
	if out, rev, _ := s.Range(b("a"), nil, 0, 0); rev != 2 || string(out[0].Value) != "0" {
		t.Errorf("outside read during the txn = %v at %d; want a=0 at 2", out, rev)
	}
	if err := s.TxnEnd(id + 1); !errors.Is(err, ErrTxnIDMismatch) {
		t.Fatalf("TxnEnd(wrong id) = %v", err)
	}
	for _, call := range []func() error{
		func() error { _, err := s.TxnPut(id+1, b("a"), nil); return err },
		func() error { _, _, err := s.TxnDeleteRange(id+1, b("a"), nil); return err },
		func() error { _, _, err := s.TxnRange(id+1, b("a"), nil, 0, 0); return err },
	} {
		if err := call(); !errors.Is(err, ErrTxnIDMismatch) {
			t.Errorf("txn call with a wrong id: %v, want ErrTxnIDMismatch", err)
		}
	}
	if err := s.TxnEnd(id); err != nil {
		t.Fatal(err)
	}
	if s.Rev() != 3 {
		t.Fatalf("Rev after txn = %d, want 3 (one revision for the whole txn)", s.Rev())
	}
	v, _ := s.View()
	var subs []int64
	for ev := range v.Events(3) {
		subs = append(subs, ev.Sub)
	}
	if len(subs) != 5 || subs[4] != 4 {
		t.Errorf("sub-revisions %v, want 0..4 in operation order", subs)
	}
	// etcd's store fails fatally here (a read after compacting a revision
	// where a key was deleted and re-put); we must not.
	if err := s.Compact(3); err != nil {
		t.Fatal(err)
	}
	if kvs, _, err := s.Range(b("b"), nil, 0, 0); err != nil || len(kvs) != 1 || string(kvs[0].Value) != "y" {
		t.Fatalf("read after compacting the re-put revision: %v, %v", kvs, err)
	}
}

func TestTxnWithoutChangesKeepsRevision(t *testing.T) {
	s := newStore(Options{})
	mustPut(t, s, "a", "0")
	id, _ := s.TxnBegin()
	s.TxnRange(id, b("a"), nil, 0, 0)
	if n, rev, _ := s.TxnDeleteRange(id, b("zz"), nil); n != 0 || rev != 2 {
		t.Fatalf("delete of nothing in a txn = %d, %d; want 0, 2", n, rev)
	}
	if err := s.TxnEnd(id); err != nil {
		t.Fatal(err)
	}
	if s.Rev() != 2 {
		t.Fatalf("Rev = %d after a txn that wrote nothing, want 2", s.Rev())
	}
}

func TestTxnExcludesWriters(t *testing.T) {
	s := newStore(Options{})
	id, _ := s.TxnBegin()
	done := make(chan int64)
	go func() {
		rev, _ := s.Put(b("outside"), nil)
		done <- rev
	}()
	id2 := make(chan int64)
	go func() {
		id, _ := s.TxnBegin()
		id2 <- id
	}()
	s.TxnPut(id, b("inside"), nil)
	select {
	case <-done:
		t.Fatal("a Put went through while a txn was open")
	case <-id2:
		t.Fatal("a second txn began while one was open")
	case <-time.After(20 * time.Millisecond):
	}
	s.TxnEnd(id)
	// The blocked writer and txn get revisions after the txn's, in some order.
	second := <-id2
	if err := s.TxnEnd(second); err != nil {
		t.Fatal(err)
	}
	if rev := <-done; rev != 3 {
		t.Fatalf("Put after the txn got revision %d, want 3", rev)
	}
}

func TestCompact(t *testing.T) {
	s := newStore(Options{})
	if err := s.Compact(-1); !errors.Is(err, ErrCompacted) {
		t.Fatalf("Compact(-1) on a new store = %v, want ErrCompacted (compacted is -1)", err)
	}
	if err := s.Compact(0); err != nil {
		t.Fatalf("Compact(0) on a new store = %v", err)
	}
	mustPut(t, s, "a", "1")    // 2
	mustPut(t, s, "b", "1")    // 3
	mustPut(t, s, "a", "2")    // 4
	s.DeleteRange(b("b"), nil) // 5
	mustPut(t, s, "c", "1")    // 6
	s.DeleteRange(b("c"), nil) // 7
	mustPut(t, s, "d", "1")    // 8
	if err := s.Compact(9); !errors.Is(err, ErrFutureRev) {
		t.Fatalf("Compact past the current revision = %v", err)
	}

	// What every read at 5..8 returns before compacting.
	before := map[int64][]KeyValue{}
	for rev := int64(5); rev <= 8; rev++ {
		kvs, _, _ := s.Range(nil, []byte{}, 0, rev)
		before[rev] = kvs
	}
	if err := s.Compact(5); err != nil {
		t.Fatal(err)
	}
	if err := s.Compact(5); !errors.Is(err, ErrCompacted) {
		t.Fatalf("Compact(5) twice = %v, want ErrCompacted", err)
	}
	if err := s.Compact(4); !errors.Is(err, ErrCompacted) {
		t.Fatalf("Compact below the compacted revision = %v", err)
	}
	if _, _, err := s.Range(b("a"), nil, 0, 4); !errors.Is(err, ErrCompacted) {
		t.Fatalf("read below the compacted revision = %v", err)
	}
	for rev, want := range before {
		got, _, err := s.Range(nil, []byte{}, 0, rev)
		if err != nil || len(got) != len(want) {
			t.Fatalf("read at %d after compaction = %v, %v; before %v", rev, got, err, want)
		}
		for i := range got {
			if !sameKV(got[i], want[i]) {
				t.Errorf("read at %d: %+v, before %+v", rev, got[i], want[i])
			}
		}
	}
	// Every change at >= 5 is replayed, the delete at 5 included.
	v, _ := s.View()
	var evs []string
	for ev, err := range v.Events(5) {
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev.Type.String()+" "+string(ev.KV.Key))
	}
	if want := []string{"DELETE b", "PUT c", "DELETE c", "PUT d"}; !slices.Equal(evs, want) {
		t.Errorf("Events(5) = %q, want %q", evs, want)
	}
	if _, err := firstErr(v.Events(4)); !errors.Is(err, ErrCompacted) {
		t.Errorf("Events(4) = %v, want ErrCompacted", err)
	}
	// b was deleted at 5 (<= the compaction): putting it again starts over.
	if err := s.Compact(8); err != nil {
		t.Fatal(err)
	}
	rev := mustPut(t, s, "b", "2")
	kvs, _, _ := s.Range(b("b"), nil, 0, 0)
	if kvs[0].CreateRevision != rev || kvs[0].Version != 1 {
		t.Errorf("re-put after compaction = %+v, want a new history", kvs[0])
	}
	if err := s.Compact(s.Rev()); err != nil {
		t.Fatalf("Compact(Rev()) = %v", err)
	}
}

func firstErr(seq func(func(Event, error) bool)) (int, error) {
	n := 0
	for _, err := range seq {
		if err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// TestCompactFreesMemory checks that compaction really drops records (and
// does so in more than one step on a large store).
func TestCompactFreesMemory(t *testing.T) {
	s := newStore(Options{})
	const n = 3*compactStep + 17
	for i := range n {
		mustPut(t, s, keyN(i), "v1")
	}
	for i := range n {
		mustPut(t, s, keyN(i), "v2")
	}
	s.DeleteRange(b("k"), []byte{})
	if err := s.Compact(s.Rev()); err != nil {
		t.Fatal(err)
	}
	st := s.cur.Load()
	if got := st.keys.len(); got != 0 {
		t.Errorf("%d key records left after compacting away every key", got)
	}
	if first := st.hist.first; first < s.Rev()-chunkSize {
		t.Errorf("history still starts at %d, compacted to %d", first, s.Rev())
	}
}

func keyN(i int) string { return "k" + string(rune('a'+i%26)) + itoa(i) }

func itoa(i int) string {
	const digits = "0123456789"
	if i == 0 {
		return "0"
	}
	var out []byte
	for ; i > 0; i /= 10 {
		out = append([]byte{digits[i%10]}, out...)
	}
	return string(out)
}

func TestHash(t *testing.T) {
	build := func(lease int64, value string) *Store {
		s := newStore(Options{ManualLeaseExpiry: true})
		mustPut(t, s, "a", "1")
		if lease != 0 {
			s.Grant(lease, 60) // no revision
		}
		s.PutLease(b("b"), b(value), lease)
		s.DeleteRange(b("a"), nil)
		return s
	}
	h1, _ := build(0, "x").Hash()
	h2, _ := build(0, "x").Hash()
	if h1 != h2 {
		t.Fatalf("same operations, different hashes %08x %08x", h1, h2)
	}
	if h, _ := build(1, "x").Hash(); h == h1 {
		t.Errorf("a different lease hashes the same")
	}
	if h, _ := build(0, "y").Hash(); h == h1 {
		t.Errorf("a different value hashes the same")
	}

	s := build(0, "x")
	at3, err := s.HashByRev(3)
	if err != nil || at3.Rev != 3 || at3.CompactRev != -1 {
		t.Fatalf("HashByRev(3) = %+v, %v", at3, err)
	}
	mustPut(t, s, "c", "1")
	if again, _ := s.HashByRev(3); again != at3 {
		t.Errorf("HashByRev(3) changed after a later write: %+v vs %+v", again, at3)
	}
	if _, err := s.HashByRev(99); !errors.Is(err, ErrFutureRev) {
		t.Errorf("HashByRev(future) = %v", err)
	}
	s.Compact(4)
	if _, err := s.HashByRev(3); !errors.Is(err, ErrCompacted) {
		t.Errorf("HashByRev(compacted) = %v", err)
	}
	// Two stores that reach the same retained history by different paths
	// hash the same: one compacted, one never holding the older history is
	// not possible to build by writes, so compare two compacted differently
	// but to the same revision.
	other := build(0, "x")
	mustPut(t, other, "c", "1")
	other.Compact(2)
	other.Compact(4)
	ha, _ := s.HashByRev(0)
	hb, _ := other.HashByRev(0)
	if ha != hb {
		t.Errorf("compacted in one step vs two: %+v vs %+v", ha, hb)
	}
}

func TestBadInput(t *testing.T) {
	s := newStore(Options{})
	big := make([]byte, MaxValueSize+1)
	// A Txn* call runs in a txn of its own: a failed write poisons its
	// txn, which TxnEnd then aborts (kv.ErrTxnFailed); a failed read
	// does not.
	inTxn := func(write bool, f func(id int64) error) func() error {
		return func() error {
			id, _ := s.TxnBegin()
			err := f(id)
			if end := s.TxnEnd(id); write != errors.Is(end, kv.ErrTxnFailed) || write && !errors.Is(end, err) {
				t.Errorf("TxnEnd after %v: %v", err, end)
			}
			return err
		}
	}
	calls := []struct {
		name string
		err  error
		call func() error
	}{
		{"Put nil key", kv.ErrEmptyKey, func() error { _, err := s.Put(nil, b("v")); return err }},
		{"Put empty key", kv.ErrEmptyKey, func() error { _, err := s.Put([]byte{}, b("v")); return err }},
		{"Put huge key", kv.ErrTooLarge, func() error { _, err := s.Put(make([]byte, MaxKeySize+1), nil); return err }},
		{"Put huge value", kv.ErrTooLarge, func() error { _, err := s.Put(b("k"), big); return err }},
		{"Range nil key", kv.ErrEmptyKey, func() error { _, _, err := s.Range(nil, nil, 0, 0); return err }},
		{"DeleteRange nil key", kv.ErrEmptyKey, func() error { _, _, err := s.DeleteRange(nil, nil); return err }},
		{"TxnPut empty key", kv.ErrEmptyKey, inTxn(true, func(id int64) error { _, err := s.TxnPut(id, nil, nil); return err })},
		{"TxnPut huge value", kv.ErrTooLarge, inTxn(true, func(id int64) error { _, err := s.TxnPut(id, b("k"), big); return err })},
		{"TxnDeleteRange nil key", kv.ErrEmptyKey, inTxn(true, func(id int64) error { _, _, err := s.TxnDeleteRange(id, nil, nil); return err })},
		{"TxnRange future", ErrFutureRev, inTxn(false, func(id int64) error { _, _, err := s.TxnRange(id, b("k"), nil, 0, 5); return err })},
	}
	for _, c := range calls {
		wantErr(t, c.name, c.call(), c.err)
	}
	if s.Rev() != 1 {
		t.Fatalf("rejected calls moved the revision to %d", s.Rev())
	}
}

func TestClosed(t *testing.T) {
	s := newStore(Options{})
	mustPut(t, s, "a", "1")
	v, _ := s.View()
	sn, _ := s.Snapshot()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	calls := map[string]func() error{
		"Put":         func() error { _, err := s.Put(b("a"), nil); return err },
		"PutLease":    func() error { _, err := s.PutLease(b("a"), nil, 1); return err },
		"Range":       func() error { _, _, err := s.Range(b("a"), nil, 0, 0); return err },
		"DeleteRange": func() error { _, _, err := s.DeleteRange(b("a"), nil); return err },
		"TxnBegin":    func() error { _, err := s.TxnBegin(); return err },
		"TxnEnd":      func() error { return s.TxnEnd(1) },
		"Compact":     func() error { return s.Compact(1) },
		"Hash":        func() error { _, err := s.Hash(); return err },
		"View":        func() error { _, err := s.View(); return err },
		"Snapshot":    func() error { _, err := s.Snapshot(); return err },
		"Commit":      s.Commit,
		"Restore":     s.Restore,
		"Close":       s.Close,
	}
	for name, call := range calls {
		err := call()
		if name == "TxnEnd" {
			wantErr(t, name, err, ErrTxnIDMismatch)
			continue
		}
		wantErr(t, name+" after Close", err, kv.ErrClosed)
	}
	// Views and snapshots taken before Close keep working.
	if res, err := v.Range(b("a"), nil, RangeOptions{}); err != nil || len(res.KVs) != 1 {
		t.Fatalf("view after Close: %v, %v", res.KVs, err)
	}
	if _, err := sn.WriteTo(discardWriter{}); err != nil {
		t.Fatalf("snapshot after Close: %v", err)
	}
}

type discardWriter struct{}

func (discardWriter) Write(p []byte) (int, error) { return len(p), nil }

type index struct{ i uint64 }

func (x *index) ConsistentIndex() uint64 { return x.i }

func TestConsistentIndex(t *testing.T) {
	ci := &index{}
	s := newStore(Options{ConsistentIndex: ci})
	ci.i = 5
	if rev, _ := s.Put(b("a"), b("1")); rev != 2 {
		t.Fatalf("entry 5: rev %d", rev)
	}
	// Replaying entry 5 (or an older one) is skipped with an empty result.
	for _, i := range []uint64{5, 3} {
		ci.i = i
		if rev, err := s.Put(b("a"), b("again")); err != nil || rev != 2 {
			t.Fatalf("replayed entry %d: Put = %d, %v; want 2, nil (skipped)", i, rev, err)
		}
		if n, rev, err := s.DeleteRange(b("a"), nil); err != nil || n != 0 || rev != 2 {
			t.Fatalf("replayed entry %d: DeleteRange = %d, %d, %v", i, n, rev, err)
		}
		id, _ := s.TxnBegin()
		if rev, _ := s.TxnPut(id, b("b"), nil); rev != 2 {
			t.Fatalf("replayed txn put rev %d", rev)
		}
		if kvs, _, _ := s.TxnRange(id, b("a"), nil, 0, 0); len(kvs) != 0 {
			t.Fatalf("replayed txn range returned %v, want an empty response", kvs)
		}
		s.TxnEnd(id)
	}
	if kvs, _, _ := s.Range(b("a"), []byte{}, 0, 0); len(kvs) != 1 || string(kvs[0].Value) != "1" {
		t.Fatalf("after replays: %v", kvs)
	}
	if s.ConsistentIndex() != 5 {
		t.Fatalf("ConsistentIndex = %d, want 5", s.ConsistentIndex())
	}
	ci.i = 6
	if rev, _ := s.Put(b("a"), b("2")); rev != 3 || s.ConsistentIndex() != 6 {
		t.Fatalf("entry 6: rev %d, index %d", rev, s.ConsistentIndex())
	}
	// A write of no change still records its index.
	ci.i = 7
	s.DeleteRange(b("zz"), nil)
	if s.ConsistentIndex() != 7 {
		t.Fatalf("index after an empty delete = %d, want 7", s.ConsistentIndex())
	}
	// A read-only Txn is no entry: at any index it reads the store as it
	// is, and records nothing.
	for _, i := range []uint64{3, 7, 9} {
		ci.i = i
		resp, err := s.Txn(context.Background(), &kv.TxnRequest{
			Compare: []kv.Compare{{Key: b("a"), Target: kv.CompareValue, Result: kv.CompareEqual, Value: b("2")}},
			Then:    []kv.Op{{Type: kv.OpRange, Key: b("a")}},
		})
		if err != nil || !resp.Succeeded || len(resp.Responses) != 1 || len(resp.Responses[0].Range.KVs) != 1 || resp.Rev != 3 {
			t.Fatalf("read-only txn at index %d: %+v, %v", i, resp, err)
		}
		if s.ConsistentIndex() != 7 {
			t.Fatalf("read-only txn at index %d moved the index to %d", i, s.ConsistentIndex())
		}
	}
}

func TestViewScan(t *testing.T) {
	s := rangeStore(t)
	v, _ := s.View()
	mustPut(t, s, "b", "later")
	var got []string
	for kv, err := range v.Scan(b("ab"), []byte{}, 0) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(kv.Key)+"="+string(kv.Value))
		if len(got) == 3 {
			break
		}
	}
	if want := []string{"ab=ab", "b=b", "c=c"}; !slices.Equal(got, want) {
		t.Fatalf("Scan = %q, want %q (the view's revision, stopping on break)", got, want)
	}
	if _, err := firstErrKV(v.Scan(b("a"), nil, v.Rev()+1)); !errors.Is(err, ErrFutureRev) {
		t.Fatalf("Scan past the view = %v", err)
	}
	if _, err := firstErrKV(v.Scan(nil, nil, 0)); !errors.Is(err, kv.ErrEmptyKey) {
		t.Fatalf("Scan(nil, nil) = %v", err)
	}
}

func firstErrKV(seq func(func(KeyValue, error) bool)) (int, error) {
	n := 0
	for _, err := range seq {
		if err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

func TestNotify(t *testing.T) {
	s := newStore(Options{})
	ch := s.Notify(1)
	select {
	case <-ch:
		t.Fatal("Notify(1) closed at revision 1")
	default:
	}
	if s.Notify(0) == nil {
		t.Fatal("nil channel")
	}
	select {
	case <-s.Notify(0):
	default:
		t.Fatal("Notify(0) not closed at revision 1")
	}
	id, _ := s.TxnBegin()
	s.TxnPut(id, b("a"), nil)
	select {
	case <-ch:
		t.Fatal("closed before the txn ended")
	default:
	}
	s.TxnEnd(id)
	<-ch // closed by the commit
	ch = s.Notify(s.Rev())
	s.Close()
	<-ch // closed by Close
	<-s.Notify(99)
}

// TestManyNewKeys crosses the point where new keys stop being published
// beside the tree and a new copy of the tree is (maxFresh), many times, with
// reads of every key, ranges and held views checked after each put; with
// a small tail, fresh keys go through many merges of runs (see fresh.go)
// between copies. Fresh keys are told apart by their first 8 bytes: the
// second key shape shares its first 15, so every comparison of fresh keys
// falls back to the whole key.
func TestManyNewKeys(t *testing.T) {
	defer func(m, t int) { maxFresh, freshTail = m, t }(maxFresh, freshTail)
	defer func(g, s, r, p int) { maxFreshGrown, freshShare, maxRun, runMergePace = g, s, r, p }(maxFreshGrown, freshShare, maxRun, runMergePace)
	// maxFresh, freshTail, then the growth of the copies' interval with
	// the trees (maxFreshGrown, freshShare) and the big run (maxRun,
	// runMergePace: 1 finishes merges early).
	for _, sizes := range [][6]int{{96, 4, 96, 8, 8192, 0}, {50, 3, 50, 8, 8192, 0}, {64, 64, 64, 8, 8192, 0}, {20, 3, 300, 2, 12, 0}, {20, 2, 300, 2, 8, 1}} {
		maxFresh, freshTail = sizes[0], sizes[1]
		maxFreshGrown, freshShare, maxRun, runMergePace = sizes[2], sizes[3], sizes[4], sizes[5]
		// The third shape shares 45 bytes: more than a part's prefix
		// (maxCommon) and inline bytes together, so the tree's items
		// tie on them too.
		for _, format := range []string{"k%04d", "/registry/pods/k%04d", strings.Repeat("x", 45) + "%04d"} {
			name := fmt.Sprintf("max=%d,tail=%d,grown=%d,run=%d,%.20s", sizes[0], sizes[1], sizes[2], sizes[4], strings.TrimSuffix(format, "%04d"))
			t.Run(name, func(t *testing.T) { testManyNewKeys(t, format, true) })
		}
	}
}

// TestManyNewKeysInOrder is TestManyNewKeys with keys put in key order:
// the trees are copied every maxFresh keys, and a key out of order in
// between makes the copies wait for more keys.
func TestManyNewKeysInOrder(t *testing.T) {
	defer func(m, t int) { maxFresh, freshTail = m, t }(maxFresh, freshTail)
	defer func(g, s int) { maxFreshGrown, freshShare = g, s }(maxFreshGrown, freshShare)
	maxFresh, freshTail, maxFreshGrown, freshShare = 40, 4, 400, 2
	testManyNewKeys(t, "k%05d", false)
}

func testManyNewKeys(t *testing.T, format string, scramble bool) {
	s := newStore(Options{})
	var views []*View
	var viewKeys [][]string
	var want []string
	for i := range 5*maxFresh + 7 {
		// Keys in a scrambled order, so new keys land between old ones;
		// or in key order but for one in 97.
		k := fmt.Sprintf(format, (i*7919)%10007)
		if !scramble {
			k = fmt.Sprintf(format, 10*i)
			if i%97 == 0 {
				k = fmt.Sprintf(format, 5*i+1)
			}
		}
		mustPut(t, s, k, k)
		want = append(want, k)
		slices.Sort(want)
		kvs, _, err := s.Range(nil, []byte{}, 0, 0)
		if err != nil || len(kvs) != len(want) {
			t.Fatalf("after %d puts: %d keys, %v", i+1, len(kvs), err)
		}
		for j, kv := range kvs {
			if string(kv.Key) != want[j] {
				t.Fatalf("after %d puts: key %d = %q, want %q", i+1, j, kv.Key, want[j])
			}
		}
		if got, _, _ := s.Range([]byte(k), nil, 0, 0); len(got) != 1 {
			t.Fatalf("point read of the new key %q: %v", k, got)
		}
		if got, _, _ := s.Range([]byte(k+"\x00"), nil, 0, 0); len(got) != 0 {
			t.Fatalf("point read of a missing key after %q: %v", k, got)
		}
		// A bounded range starting between keys, and one with a limit.
		from, to := want[len(want)/3], want[2*len(want)/3]
		got, _, _ := s.Range([]byte(from), []byte(to), 0, 0)
		if len(got) != 2*len(want)/3-len(want)/3 {
			t.Fatalf("range [%s, %s) after %d puts: %d keys", from, to, i+1, len(got))
		}
		got, _, _ = s.Range([]byte(from), []byte{}, 3, 0)
		for j, kv := range got {
			if string(kv.Key) != want[len(want)/3+j] {
				t.Fatalf("range from %s, limit 3, after %d puts: key %d = %q", from, i+1, j, kv.Key)
			}
		}
		if i%50 == 0 {
			v, _ := s.View()
			views = append(views, v)
			viewKeys = append(viewKeys, slices.Clone(want))
		}
	}
	for i, v := range views {
		res, err := v.Range(nil, []byte{}, RangeOptions{})
		if err != nil || len(res.KVs) != len(viewKeys[i]) {
			t.Fatalf("view at %d sees %d keys, %v", v.Rev(), len(res.KVs), err)
		}
		for j, kv := range res.KVs {
			if string(kv.Key) != viewKeys[i][j] {
				t.Fatalf("view at %d: key %d = %q, want %q", v.Rev(), j, kv.Key, viewKeys[i][j])
			}
		}
	}
}
