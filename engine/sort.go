package engine

import (
	"bytes"
	"sort"

	"github.com/revkv/revkv/kv"
)

// sortKeyValues orders kvs, given in key order, as a range's sort options
// ask (see kv.RangeOptions). It uses sort.Sort, not a stable sort, on
// purpose: given the same input order it leaves ties where etcd's server
// leaves them, so a client sees the same list from both.
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
	var s sort.Interface
	switch target {
	case kv.SortByKey:
		s = byKey{kvs}
	case kv.SortByVersion:
		s = byVersion{kvs}
	case kv.SortByCreate:
		s = byCreate{kvs}
	case kv.SortByMod:
		s = byMod{kvs}
	default:
		s = byValue{kvs}
	}
	if order == kv.SortDescend {
		s = sort.Reverse(s)
	}
	sort.Sort(s)
}

type kvList []kv.KeyValue

func (l kvList) Len() int      { return len(l) }
func (l kvList) Swap(i, j int) { l[i], l[j] = l[j], l[i] }

type (
	byKey     struct{ kvList }
	byVersion struct{ kvList }
	byCreate  struct{ kvList }
	byMod     struct{ kvList }
	byValue   struct{ kvList }
)

func (l byKey) Less(i, j int) bool     { return bytes.Compare(l.kvList[i].Key, l.kvList[j].Key) < 0 }
func (l byVersion) Less(i, j int) bool { return l.kvList[i].Version < l.kvList[j].Version }
func (l byCreate) Less(i, j int) bool  { return l.kvList[i].CreateRevision < l.kvList[j].CreateRevision }
func (l byMod) Less(i, j int) bool     { return l.kvList[i].ModRevision < l.kvList[j].ModRevision }
func (l byValue) Less(i, j int) bool   { return bytes.Compare(l.kvList[i].Value, l.kvList[j].Value) < 0 }
