package engine

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/revkv/revkv/kv"
)

// rangeFixture: keys k1..k5 with different versions, create and mod
// revisions and values, so that every sort target orders them differently.
//
//	k1 = "c"  create 2  mod 8  version 3
//	k2 = "a"  create 3  mod 3  version 1
//	k3 = "e"  create 4  mod 7  version 2
//	k4 = "b"  create 5  mod 5  version 1
//	k5 = "a"  create 6  mod 6  version 1
func rangeFixture(t *testing.T) *Store {
	s := newStore(Options{})
	for _, kvs := range [][2]string{{"k1", "x"}, {"k2", "a"}, {"k3", "x"}, {"k4", "b"}, {"k5", "a"}, {"k1", "y"}, {"k3", "e"}, {"k1", "c"}} {
		mustPut(t, s, kvs[0], kvs[1])
	}
	mustPut(t, s, "other", "z") // outside the ranges read
	return s
}

func names(kvs []KeyValue) string {
	var out []string
	for _, kv := range kvs {
		out = append(out, string(kv.Key))
	}
	return fmt.Sprint(out)
}

func TestRangeSortFilterLimit(t *testing.T) {
	s := rangeFixture(t)
	asc, desc, none := kv.SortAscend, kv.SortDescend, kv.SortNone
	cases := []struct {
		name  string
		opts  RangeOptions
		want  string
		count int64
		more  bool
	}{
		{"key order", RangeOptions{}, "[k1 k2 k3 k4 k5]", 5, false},
		{"key ascending", RangeOptions{SortOrder: asc}, "[k1 k2 k3 k4 k5]", 5, false},
		{"key descending", RangeOptions{SortOrder: desc}, "[k5 k4 k3 k2 k1]", 5, false},
		{"version ascending", RangeOptions{SortOrder: asc, SortTarget: kv.SortByVersion}, "", 5, false},
		{"version descending", RangeOptions{SortOrder: desc, SortTarget: kv.SortByVersion}, "", 5, false},
		{"create ascending", RangeOptions{SortOrder: asc, SortTarget: kv.SortByCreate}, "[k1 k2 k3 k4 k5]", 5, false},
		{"create descending", RangeOptions{SortOrder: desc, SortTarget: kv.SortByCreate}, "[k5 k4 k3 k2 k1]", 5, false},
		{"mod ascending", RangeOptions{SortOrder: asc, SortTarget: kv.SortByMod}, "[k2 k4 k5 k3 k1]", 5, false},
		{"mod descending", RangeOptions{SortOrder: desc, SortTarget: kv.SortByMod}, "[k1 k3 k5 k4 k2]", 5, false},
		{"mod, no order: ascending", RangeOptions{SortOrder: none, SortTarget: kv.SortByMod}, "[k2 k4 k5 k3 k1]", 5, false},
		{"value ascending", RangeOptions{SortOrder: asc, SortTarget: kv.SortByValue}, "", 5, false},
		{"value descending, limit 2", RangeOptions{SortOrder: desc, SortTarget: kv.SortByValue, Limit: 2}, "[k3 k1]", 2, true},
		{"mod descending, limit 2, total", RangeOptions{SortOrder: desc, SortTarget: kv.SortByMod, Limit: 2, TotalCount: true}, "[k1 k3]", 5, true},
		// etcd's rule: with no order, the limit (plus one) applies first, in
		// key order: k1 k2 k3, then sorted by mod and cut.
		{"mod, no order, limit 2", RangeOptions{SortTarget: kv.SortByMod, Limit: 2}, "[k2 k3]", 2, true},
		{"limit 2", RangeOptions{Limit: 2}, "[k1 k2]", 2, true},
		{"limit 5: no more", RangeOptions{Limit: 5}, "[k1 k2 k3 k4 k5]", 5, false},
		{"limit 2, total", RangeOptions{Limit: 2, TotalCount: true}, "[k1 k2]", 5, true},
		{"min mod 6", RangeOptions{MinModRevision: 6}, "[k1 k3 k5]", 3, false},
		{"max mod 5", RangeOptions{MaxModRevision: 5}, "[k2 k4]", 2, false},
		{"min create 4", RangeOptions{MinCreateRevision: 4}, "[k3 k4 k5]", 3, false},
		{"max create 3", RangeOptions{MaxCreateRevision: 3}, "[k1 k2]", 2, false},
		{"create 3..5, mod 4..8", RangeOptions{MinCreateRevision: 3, MaxCreateRevision: 5, MinModRevision: 4, MaxModRevision: 8}, "[k3 k4]", 2, false},
		{"filtered, total counts the range", RangeOptions{MinModRevision: 6, TotalCount: true}, "[k1 k3 k5]", 5, false},
		{"filtered, limit 2: more", RangeOptions{MinModRevision: 6, Limit: 2}, "[k1 k3]", 2, true},
		{"filtered, limit 3: no more", RangeOptions{MinModRevision: 6, Limit: 3}, "[k1 k3 k5]", 3, false},
		{"count only", RangeOptions{CountOnly: true, Limit: 1, MinModRevision: 6}, "[]", 5, false},
		{"keys only, by value", RangeOptions{KeysOnly: true, SortOrder: asc, SortTarget: kv.SortByValue}, "", 5, false},
		{"at revision 6", RangeOptions{Rev: 6, SortOrder: desc, SortTarget: kv.SortByMod}, "[k5 k4 k3 k2 k1]", 5, false},
	}
	for _, c := range cases {
		res, err := s.RangeWithOptions(b("k"), b("l"), c.opts)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if res.Count != c.count || res.More != c.more || res.Rev != 10 {
			t.Errorf("%s: count %d, more %v, rev %d; want %d, %v, 10", c.name, res.Count, res.More, res.Rev, c.count, c.more)
		}
		got := names(res.KVs)
		if c.want != "" && got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
		if !c.opts.CountOnly && c.opts.Limit == 0 && !c.opts.Filtered() && len(res.KVs) != 5 {
			t.Errorf("%s: %d keys", c.name, len(res.KVs))
		}
		for i := 1; i < len(res.KVs); i++ {
			if !ordered(res.KVs[i-1], res.KVs[i], c.opts) {
				t.Errorf("%s: %s out of order", c.name, got)
			}
		}
		for _, kv := range res.KVs {
			if c.opts.KeysOnly && kv.Value != nil || !c.opts.KeysOnly && kv.Value == nil {
				t.Errorf("%s: value %q", c.name, kv.Value)
			}
		}
		// The same read inside a txn and on a view gives the same.
		v, _ := s.View()
		vres, _ := v.Range(b("k"), b("l"), c.opts)
		tx, _ := s.Begin(t.Context())
		tres, _ := tx.Range(b("k"), b("l"), c.opts)
		tx.Abort()
		if names(vres.KVs) != got || names(tres.KVs) != got || vres.Count != res.Count || tres.More != res.More {
			t.Errorf("%s: view %s, txn %s, store %s", c.name, names(vres.KVs), names(tres.KVs), got)
		}
	}
	// A single key with a filter.
	if res, _ := s.RangeWithOptions(b("k1"), nil, RangeOptions{MaxModRevision: 5, TotalCount: true}); len(res.KVs) != 0 || res.Count != 1 {
		t.Errorf("filtered single key: %+v", res)
	}
	if res, _ := s.RangeWithOptions(b("k1"), nil, RangeOptions{MaxModRevision: 5}); len(res.KVs) != 0 || res.Count != 0 {
		t.Errorf("filtered single key without total: %+v", res)
	}
	// A failed read reports the revision.
	for _, opts := range []RangeOptions{{Rev: 99}, {SortOrder: 7}} {
		res, err := s.RangeWithOptions(b("k"), b("l"), opts)
		if err == nil || res.Rev != 10 {
			t.Errorf("failed range %+v: %+v, %v", opts, res, err)
		}
	}
	if _, err := s.RangeWithOptions(b("k"), nil, RangeOptions{SortTarget: 9}); !errors.Is(err, kv.ErrInvalidSortOption) {
		t.Errorf("bad sort target: %v", err)
	}
}

// ordered reports whether a may come before b in a result sorted by opts.
func ordered(a, b KeyValue, opts RangeOptions) bool {
	var c int
	switch opts.SortTarget {
	case kv.SortByKey:
		c = slices.Compare(a.Key, b.Key)
	case kv.SortByVersion:
		c = cmpInt(a.Version, b.Version)
	case kv.SortByCreate:
		c = cmpInt(a.CreateRevision, b.CreateRevision)
	case kv.SortByMod:
		c = cmpInt(a.ModRevision, b.ModRevision)
	case kv.SortByValue:
		c = slices.Compare(a.Value, b.Value)
	}
	if opts.SortOrder == kv.SortDescend {
		return c >= 0
	}
	if opts.SortOrder == kv.SortNone && opts.SortTarget == kv.SortByKey || opts.Limit > 0 && opts.LimitFirst() {
		return true // key order, or etcd's limit-then-sort: checked by name
	}
	return c <= 0
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func TestPutDeleteOptions(t *testing.T) {
	s := newStore(Options{ManualLeaseExpiry: true})
	for _, id := range []int64{7, 9} {
		if _, err := s.Grant(id, 3600); err != nil {
			t.Fatal(err)
		}
	}
	res, err := s.PutWithOptions(b("a"), b("1"), kv.PutOptions{Lease: 7, PrevKV: true})
	if err != nil || res.Rev != 2 || res.PrevKV != nil {
		t.Fatalf("first put: %+v, %v", res, err)
	}
	res, err = s.PutWithOptions(b("a"), nil, kv.PutOptions{IgnoreValue: true, PrevKV: true})
	if err != nil || res.Rev != 3 || res.PrevKV == nil || string(res.PrevKV.Value) != "1" || res.PrevKV.Lease != 7 {
		t.Fatalf("put keeping the value: %+v, %v", res, err)
	}
	kvs, _, _ := s.Range(b("a"), nil, 0, 0)
	if string(kvs[0].Value) != "1" || kvs[0].Lease != 0 || kvs[0].Version != 2 {
		t.Fatalf("after IgnoreValue: %+v", kvs[0])
	}
	s.PutWithOptions(b("a"), nil, kv.PutOptions{Lease: 9, IgnoreValue: true})
	s.PutWithOptions(b("a"), b("2"), kv.PutOptions{IgnoreLease: true})
	kvs, _, _ = s.Range(b("a"), nil, 0, 0)
	if string(kvs[0].Value) != "2" || kvs[0].Lease != 9 {
		t.Fatalf("after IgnoreLease: %+v", kvs[0])
	}
	for _, c := range []struct {
		opts  kv.PutOptions
		key   string
		value string
		err   error
	}{
		{kv.PutOptions{IgnoreValue: true}, "missing", "", kv.ErrKeyNotFound},
		{kv.PutOptions{IgnoreLease: true}, "missing", "v", kv.ErrKeyNotFound},
		{kv.PutOptions{IgnoreValue: true}, "a", "v", kv.ErrValueProvided},
		{kv.PutOptions{IgnoreLease: true, Lease: 1}, "a", "", kv.ErrLeaseProvided},
		{kv.PutOptions{}, "", "", kv.ErrEmptyKey},
	} {
		if _, err := s.PutWithOptions(b(c.key), b(c.value), c.opts); !errors.Is(err, c.err) {
			t.Errorf("PutWithOptions(%q, %+v): %v, want %v", c.key, c.opts, err, c.err)
		}
	}
	if s.Rev() != 5 {
		t.Fatalf("refused puts moved the revision to %d", s.Rev())
	}
	mustPut(t, s, "b", "3")
	d, err := s.DeleteRangeWithOptions(b("a"), []byte{}, kv.DeleteOptions{PrevKV: true})
	if err != nil || d.Deleted != 2 || d.Rev != 7 || !slices.Equal(keysOf(d.PrevKVs), []string{"a=2", "b=3"}) {
		t.Fatalf("delete with PrevKV: %+v, %v", d, err)
	}
	if d, err := s.DeleteRangeWithOptions(b("a"), []byte{}, kv.DeleteOptions{PrevKV: true}); err != nil || d.Deleted != 0 || d.Rev != 7 || d.PrevKVs != nil {
		t.Fatalf("delete of nothing: %+v, %v", d, err)
	}
	if _, err := s.DeleteRangeWithOptions(nil, nil, kv.DeleteOptions{}); !errors.Is(err, kv.ErrEmptyKey) {
		t.Fatalf("delete of an empty key: %v", err)
	}
}
