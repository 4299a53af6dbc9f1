package engine

import (
	"bytes"
	"cmp"
	"slices"

	"github.com/revkv/revkv/kv"
)

// sortKeyValues orders kvs, given in key order, as a range's sort options
// ask (see kv.RangeOptions). Ties end where etcd's server leaves them: it
// uses sort.Sort, which is not stable, and slices.SortFunc runs the same
// pattern-defeating quicksort, generated from the same template, with the
// same comparisons and swaps (TestSortMatchesSortSort holds it to that),
// without an interface call per comparison.
func sortKeyValues(kvs []kv.KeyValue, target kv.SortTarget, order kv.SortOrder) {
	if order == kv.SortNone {
		if target == kv.SortByKey {
			return
		}
		order = kv.SortAscend
	}
	if target == kv.SortByKey && order == kv.SortAscend {
		return
	}
	var c func(a, b kv.KeyValue) int
	switch target {
	case kv.SortByKey:
		c = func(a, b kv.KeyValue) int { return bytes.Compare(a.Key, b.Key) }
	case kv.SortByVersion:
		c = func(a, b kv.KeyValue) int { return cmp.Compare(a.Version, b.Version) }
	case kv.SortByCreate:
		c = func(a, b kv.KeyValue) int { return cmp.Compare(a.CreateRevision, b.CreateRevision) }
	case kv.SortByMod:
		c = func(a, b kv.KeyValue) int { return cmp.Compare(a.ModRevision, b.ModRevision) }
	default:
		c = func(a, b kv.KeyValue) int { return bytes.Compare(a.Value, b.Value) }
	}
	if order == kv.SortDescend {
		// sort.Reverse's order: a before b if b is less than a.
		asc := c
		c = func(a, b kv.KeyValue) int { return asc(b, a) }
	}
	slices.SortFunc(kvs, c)
}
