package engine

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/revkv/revkv/kv"
)

// refSort is etcd's server's sort: sort.Sort, with sort.Reverse for
// descending.
type refSort struct {
	kvs  []kv.KeyValue
	less func(a, b *kv.KeyValue) bool
}

func (s refSort) Len() int           { return len(s.kvs) }
func (s refSort) Swap(i, j int)      { s.kvs[i], s.kvs[j] = s.kvs[j], s.kvs[i] }
func (s refSort) Less(i, j int) bool { return s.less(&s.kvs[i], &s.kvs[j]) }

// TestSortMatchesSortSort: for lists of every size up to 300 with many
// ties, sortKeyValues leaves every list exactly as sort.Sort does, so ties
// come out in etcd's order.
func TestSortMatchesSortSort(t *testing.T) {
	less := map[kv.SortTarget]func(a, b *kv.KeyValue) bool{
		kv.SortByKey:     func(a, b *kv.KeyValue) bool { return bytes.Compare(a.Key, b.Key) < 0 },
		kv.SortByVersion: func(a, b *kv.KeyValue) bool { return a.Version < b.Version },
		kv.SortByCreate:  func(a, b *kv.KeyValue) bool { return a.CreateRevision < b.CreateRevision },
		kv.SortByMod:     func(a, b *kv.KeyValue) bool { return a.ModRevision < b.ModRevision },
		kv.SortByValue:   func(a, b *kv.KeyValue) bool { return bytes.Compare(a.Value, b.Value) < 0 },
	}
	r := rand.New(rand.NewPCG(1, 2))
	for n := 0; n <= 300; n += 1 + n/10 {
		kvs := make([]kv.KeyValue, n)
		for i := range kvs {
			kvs[i] = kv.KeyValue{
				Key:            fmt.Appendf(nil, "k%05d", i),
				Value:          []byte{byte(r.IntN(4))},
				Version:        r.Int64N(3),
				CreateRevision: r.Int64N(int64(n/4 + 1)),
				ModRevision:    r.Int64N(int64(n + 1)),
			}
		}
		for target := kv.SortByKey; target <= kv.SortByValue; target++ {
			for _, order := range []kv.SortOrder{kv.SortAscend, kv.SortDescend} {
				got := append([]kv.KeyValue(nil), kvs...)
				sortKeyValues(got, target, order)
				want := append([]kv.KeyValue(nil), kvs...)
				var s sort.Interface = refSort{want, less[target]}
				if order == kv.SortDescend {
					s = sort.Reverse(s)
				}
				sort.Sort(s)
				for i := range got {
					if !bytes.Equal(got[i].Key, want[i].Key) {
						t.Fatalf("n=%d target %d order %d: position %d holds %s, sort.Sort put %s there", n, target, order, i, got[i].Key, want[i].Key)
					}
				}
			}
		}
	}
}
