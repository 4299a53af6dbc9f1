package engine

import (
	"bytes"
	"fmt"
	"testing"
	"unsafe"

	"github.com/revkv/revkv/kv"
	"github.com/revkv/revkv/proptest"
	"pgregory.net/rapid"
)

// TestKeyIndexSides drives the key index through every way it places keys
// (the first key setting the common prefix, keys shortening it while the
// main tree is small, keys before and after it once the tree is too big to
// rebuild) and holds reads of every kind to the reference model: point and
// range reads at the current and older revisions, through views held
// across later writes and compactions, deletes of ranges that span the
// trees, and compactions.
func TestKeyIndexSides(t *testing.T) {
	defer func(n int) { rebuildLimit = n }(rebuildLimit)
	rapid.Check(t, func(t *rapid.T) {
		rebuildLimit = rapid.IntRange(0, 6).Draw(t, "rebuildLimit")
		s := newStore(Options{})
		defer s.Close()
		m := proptest.NewModel()
		often := []string{"reg/pods/a", "reg/pods/ab", "reg/pods/b", "reg/pods/b\x00", "reg/pods/c", "reg/pods/d",
			"reg/pods/cccccccccccccccccccccccccccccccccccccccc1"}
		rare := []string{"reg/svc/d", "reg/", "reg", "r", "s", "a", "reg/pods/c\xff", "reg/q", "z"}
		draw := func(label string) []byte {
			if rapid.IntRange(0, 4).Draw(t, label+"Rare") == 0 {
				return []byte(rapid.SampledFrom(rare).Draw(t, label))
			}
			return []byte(rapid.SampledFrom(often).Draw(t, label))
		}
		drawEnd := func() []byte {
			switch rapid.IntRange(0, 3).Draw(t, "endKind") {
			case 0:
				return nil
			case 1:
				return []byte{}
			}
			return draw("end")
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
					t.Fatalf("%s: key %d is %q@%d, model %q@%d", what, i, got[i].Key, got[i].ModRevision, want[i].Key, want[i].ModRevision)
				}
			}
		}
		for range rapid.IntRange(1, 80).Draw(t, "steps") {
			switch rapid.IntRange(0, 9).Draw(t, "op") {
			case 0, 1, 2, 3:
				k, v := draw("key"), fmt.Appendf(nil, "v%d", m.Rev())
				_, err1 := s.Put(k, v)
				_, err2 := m.Put(k, v, 0)
				if err1 != nil || err2 != nil {
					t.Fatalf("put %q: %v / %v", k, err1, err2)
				}
			case 4:
				k, e := draw("key"), drawEnd()
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
				v, err := s.View()
				if err != nil {
					t.Fatal(err)
				}
				views = append(views, held{v, m.Rev(), m.CompactRev()})
			case 7:
				if len(views) == 0 {
					continue
				}
				h := views[rapid.IntRange(0, len(views)-1).Draw(t, "view")]
				k, e := draw("key"), drawEnd()
				res, err1 := h.v.Range(k, e, RangeOptions{})
				want, err2 := m.RangeView(k, e, 0, 0, h.rev, h.compact)
				check(fmt.Sprintf("view at %d: range [%q, %q)", h.rev, k, e), res.KVs, want, err1, err2)
			default:
				k, e := draw("key"), drawEnd()
				rev := rapid.Int64Range(0, m.Rev()).Draw(t, "rev")
				got, _, err1 := s.Range(k, e, 0, rev)
				want, _, err2 := m.Range(k, e, 0, rev)
				check(fmt.Sprintf("range [%q, %q) at %d", k, e, rev), got, want, err1, err2)
			}
		}
		// Every key, in order, from the index itself.
		var all [][]byte
		s.cur.Load().ascend(nil, nil, func(r *keyRecord) bool {
			if n := len(all); n > 0 && bytes.Compare(all[n-1], r.key()) >= 0 {
				t.Fatalf("index walk: %q after %q", r.key(), all[n-1])
			}
			all = append(all, r.key())
			return true
		})
	})
}

// TestLayoutSizes pins the sizes that the memory per key depends on: a
// record fits the allocator's 112-byte class and a packed history entry
// is 48 bytes.
func TestLayoutSizes(t *testing.T) {
	if n := unsafe.Sizeof(keyRecord{}); n != 112 {
		t.Errorf("keyRecord is %d bytes, want 112", n)
	}
	if n := unsafe.Sizeof(packed{}); n != 48 {
		t.Errorf("packed is %d bytes, want 48", n)
	}
}
