package engine

import (
	"bytes"
	"fmt"
	"runtime"
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
	defer func(n, m, f, h int) { rebuildLimit, maxFresh, freshTail, hotAfter = n, m, f, h }(rebuildLimit, maxFresh, freshTail, hotAfter)
	defer func(g, s, r, p int) { maxFreshGrown, freshShare, maxRun, runMergePace = g, s, r, p }(maxFreshGrown, freshShare, maxRun, runMergePace)
	hotAfter = 0 // updates through the hot cache from the first
	rapid.Check(t, func(t *rapid.T) {
		rebuildLimit = rapid.IntRange(0, 6).Draw(t, "rebuildLimit")
		// Fresh keys through runs merged and copies of the trees.
		maxFresh = rapid.IntRange(1, 24).Draw(t, "maxFresh")
		freshTail = rapid.IntRange(1, 9).Draw(t, "freshTail")
		// Copies that wait for more keys as the trees grow, and runs
		// frozen and merged into the big run in steps.
		maxFreshGrown = rapid.IntRange(1, 60).Draw(t, "maxFreshGrown")
		freshShare = rapid.IntRange(1, 4).Draw(t, "freshShare")
		maxRun = rapid.IntRange(1, 20).Draw(t, "maxRun")
		runMergePace = rapid.IntRange(0, 2).Draw(t, "runMergePace")
		s := newStore(Options{})
		defer s.Close()
		m := proptest.NewModel()
		often := []string{"reg/pods/a", "reg/pods/ab", "reg/pods/b", "reg/pods/b\x00", "reg/pods/c", "reg/pods/d",
			"reg/pods/cccccccccccccccccccccccccccccccccccccccc1"}
		rare := []string{"reg/svc/d", "reg/", "reg", "r", "s", "a", "reg/pods/c\xff", "reg/q", "z"}
		// Keys put in key order (op 10): after every key ("zz...") or
		// after the often drawn ones only, so that fresh keys come in
		// key order (freshSeg.asc) and then do not.
		var ordered []string
		next := 0
		draw := func(label string) []byte {
			if len(ordered) > 0 && rapid.IntRange(0, 5).Draw(t, label+"Ordered") == 0 {
				return []byte(rapid.SampledFrom(ordered).Draw(t, label))
			}
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
			s.mu.Lock()
			if err := checkParts(&s.w.keys); err != nil {
				t.Fatalf("writer's index: %v", err)
			}
			s.mu.Unlock()
			if err := checkParts(&s.cur.Load().keys); err != nil {
				t.Fatalf("published index: %v", err)
			}
			if err := checkFresh(s.cur.Load()); err != nil {
				t.Fatalf("published fresh keys: %v", err)
			}
			switch rapid.IntRange(0, 11).Draw(t, "op") {
			case 10, 11:
				next++
				k := fmt.Appendf(nil, "%s%04d", rapid.SampledFrom([]string{"zz", "zz", "zz", "reg/pods/e"}).Draw(t, "orderedPrefix"), next)
				ordered = append(ordered, string(k))
				v := fmt.Appendf(nil, "v%d", m.Rev())
				_, err1 := s.Put(k, v)
				_, err2 := m.Put(k, v, 0)
				if err1 != nil || err2 != nil {
					t.Fatalf("put %q: %v / %v", k, err1, err2)
				}
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

// checkParts checks the invariants of an index's parts: every key of a
// part starts with its prefix and falls in its range, and so does its lower
// bound; items are in key order, and their inline bytes are the ones after
// the prefix.
func checkParts(x *keyIndex) error {
	if len(x.parts) == 0 {
		return fmt.Errorf("no parts")
	}
	var last []byte
	for i, p := range x.parts {
		if i > 0 && !bytes.HasPrefix(p.lo, p.common) {
			return fmt.Errorf("part %d: lower bound %q without its prefix %q", i, p.lo, p.common)
		}
		if i > 1 && bytes.Compare(x.parts[i-1].lo, p.lo) >= 0 {
			return fmt.Errorf("part %d: lower bound %q not above %q", i, p.lo, x.parts[i-1].lo)
		}
		var err error
		p.tree.Scan(func(prefix uint64, rec *keyRecord) bool {
			it := keyItem{prefix: prefix, rec: rec}
			k := it.rec.key()
			switch {
			case !bytes.HasPrefix(k, p.common):
				err = fmt.Errorf("part %d: key %q without its prefix %q", i, k, p.common)
			case i > 0 && bytes.Compare(k, p.lo) < 0:
				err = fmt.Errorf("part %d: key %q below its lower bound %q", i, k, p.lo)
			case i+1 < len(x.parts) && bytes.Compare(k, x.parts[i+1].lo) >= 0:
				err = fmt.Errorf("part %d: key %q at or above the next part's bound %q", i, k, x.parts[i+1].lo)
			case last != nil && bytes.Compare(last, k) >= 0:
				err = fmt.Errorf("part %d: key %q after %q", i, k, last)
			case it.prefix != keyPrefix(k, len(p.common)):
				err = fmt.Errorf("part %d: key %q with inline bytes %x", i, k, it.prefix)
			}
			last = k
			return err == nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// checkFresh checks the invariants of a state's fresh keys: each run
// sorted and shorter than the one before, the count right, the tail no
// longer than freshTail, no fresh key in the state's trees, and every one
// in the hash index.
func checkFresh(st *state) error {
	f := &st.fresh
	if f.seg == nil {
		if f.tail != 0 {
			return fmt.Errorf("no segment, %d tail keys", f.tail)
		}
		return nil
	}
	if f.seg.asc {
		// One sorted tail, up to the limit, and nothing else.
		if f.tail > len(f.seg.tail) || f.tail > f.seg.limit || f.seg.index != nil || f.seg.inRuns != 0 ||
			len(f.seg.big) != 0 || len(f.seg.frozen) != 0 || len(f.seg.runs) != 0 {
			return fmt.Errorf("asc segment: tail of %d keys in %d slots, limit %d, %d keys in runs", f.tail, len(f.seg.tail), f.seg.limit, f.seg.inRuns)
		}
		t := f.tailKeys()
		for j := 1; j < len(t); j++ {
			if compareFresh(t[j-1], t[j]) >= 0 {
				return fmt.Errorf("asc tail: %q after %q", t[j].rec.key(), t[j-1].rec.key())
			}
		}
	} else if f.tail >= freshTail || f.tail > len(f.seg.tail) || len(f.seg.tail) > freshTail {
		return fmt.Errorf("tail of %d keys in %d slots, limit %d", f.tail, len(f.seg.tail), freshTail)
	}
	n := len(f.seg.big) + len(f.seg.frozen)
	if (f.seg.frozen == nil) != (f.seg.merge == nil) || (f.seg.frozen != nil && len(f.seg.big) == 0) {
		return fmt.Errorf("frozen run of %d keys, big run of %d, merge %v", len(f.seg.frozen), len(f.seg.big), f.seg.merge != nil)
	}
	if len(f.seg.frozen) > 0 && len(f.seg.frozen) < maxRun {
		return fmt.Errorf("frozen run of %d keys, limit %d", len(f.seg.frozen), maxRun)
	}
	for i, run := range f.seg.runs {
		n += len(run)
		if i > 0 && len(run) >= len(f.seg.runs[i-1]) {
			return fmt.Errorf("run %d of %d keys after one of %d", i, len(run), len(f.seg.runs[i-1]))
		}
		if len(run) >= maxRun {
			return fmt.Errorf("run %d of %d keys, limit %d", i, len(run), maxRun)
		}
	}
	if n != f.seg.inRuns {
		return fmt.Errorf("%d keys in runs, counted %d", n, f.seg.inRuns)
	}
	var all [][]freshItem
	f.seg.sorted(func(run []freshItem) { all = append(all, run) })
	for i, run := range all {
		for j := 1; j < len(run); j++ {
			if compareFresh(run[j-1], run[j]) >= 0 {
				return fmt.Errorf("run %d: %q after %q", i, run[j].rec.key(), run[j-1].rec.key())
			}
		}
	}
	for _, run := range append(all, f.tailKeys()) {
		for _, it := range run {
			if it.k8 != f.seg.k8(it.rec.key()) {
				return fmt.Errorf("key %q with 8 bytes %x", it.rec.key(), it.k8)
			}
			if st.keys.lookup(it.rec.key()) != nil {
				return fmt.Errorf("key %q is fresh and in the trees", it.rec.key())
			}
			if f.find(it.rec.key()) != it.rec {
				return fmt.Errorf("key %q is not found among the fresh keys", it.rec.key())
			}
		}
	}
	return nil
}

// TestKeyIndexInOrder loads numbered keys in key order, as a restore or a
// bulk import does, past the size at which parts stop being rebuilt: the
// inline bytes must still tell almost every two neighbours apart (with one
// shared prefix for the whole index, keys past the first part's range all
// had the same ones, and every comparison loaded the records).
func TestKeyIndexInOrder(t *testing.T) {
	defer func(n int) { rebuildLimit = n }(rebuildLimit)
	rebuildLimit = 100
	for _, format := range []string{"k%015d", "/registry/pods/ns-%d/pod-%06d"} {
		s := newStore(Options{})
		for i := range 20_000 {
			k := fmt.Sprintf(format, i)
			if format != "k%015d" {
				k = fmt.Sprintf(format, i/1000, i)
			}
			mustPut(t, s, k, "v")
		}
		x := &s.w.keys // every key: the published trees lack the fresh ones
		if err := checkParts(x); err != nil {
			t.Fatal(err)
		}
		same, n := 0, 0
		for _, p := range x.parts {
			var last uint64
			first := true
			p.tree.Scan(func(prefix uint64, _ *keyRecord) bool {
				if !first && prefix == last {
					same++
				}
				first, last = false, prefix
				n++
				return true
			})
		}
		if n != 20_000 || same > n/100 {
			t.Errorf("%s: %d keys in %d parts, %d with the inline bytes of the key before", format, n, len(x.parts), same)
		}
		s.Close()
	}
}

// TestLayoutSizes pins the sizes that the memory per key depends on: a
// record is 32 bytes before its inline bytes, a record of a 16-byte key
// and a 128-byte value one 176-byte allocation (192 with a lease), and a
// packed history
// entry is 48 bytes (an updated one 8); and a state, made by every
// write, is 48 bytes.
func TestLayoutSizes(t *testing.T) {
	if n := unsafe.Sizeof(state{}); n > 48 {
		t.Errorf("state is %d bytes, want at most 48", n)
	}
	if unsafe.Sizeof(uintptr(0)) == 8 && recordSize != 32 {
		t.Errorf("keyRecord is %d bytes, want 32", recordSize)
	}
	for _, c := range recordClasses {
		r, data := c.alloc()
		if len(data) != c.n || uintptr(unsafe.Pointer(&data[0])) != uintptr(unsafe.Pointer(r))+recordSize {
			t.Errorf("class %d: %d bytes at offset %d", c.n, len(data), uintptr(unsafe.Pointer(&data[0]))-uintptr(unsafe.Pointer(r)))
		}
	}
	key := []byte("k000000000000001")
	for _, c := range []struct {
		lease int64
		want  uint64
	}{{0, 176}, {7, 192}} {
		v := version{main: 2, create: 2, ver: 1, lease: c.lease, value: make([]byte, 128)}
		if allocs := testing.AllocsPerRun(100, func() { newRecord(key, v) }); allocs != 1 {
			t.Errorf("newRecord of a 16-byte key and a 128-byte value, lease %d: %v allocations, want 1", c.lease, allocs)
		}
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		const n = 1000
		for range n {
			newRecord(key, v)
		}
		runtime.ReadMemStats(&m1)
		if per := (m1.TotalAlloc - m0.TotalAlloc) / n; per != c.want {
			t.Errorf("newRecord of a 16-byte key and a 128-byte value, lease %d: %d bytes, want %d", c.lease, per, c.want)
		}
	}
	if n := unsafe.Sizeof(packed{}); n != 48 {
		t.Errorf("packed is %d bytes, want 48", n)
	}
	if n := unsafe.Sizeof(updated{}); n != 8 {
		t.Errorf("updated is %d bytes, want 8", n)
	}
}

// TestRecordForms makes records in every form (bytes inline, bytes in an
// extRecord for a long key or value, the first version in a list when its
// revision numbers do not fit the record's fields) and reads each back:
// key, first version, the change that made it, and a second version.
func TestRecordForms(t *testing.T) {
	long := bytes.Repeat([]byte("x"), maxInline)
	for _, tc := range []struct {
		name   string
		key    []byte
		v      version
		inline bool // the record holds the version itself (madeChange sets rec)
	}{
		{"small", []byte("k"), version{main: 5, create: 3, ver: 2, lease: 7, value: []byte("v")}, true},
		{"empty value", []byte("k"), version{main: 5, create: 5, ver: 1}, true},
		{"at the inline limit", long[:maxInline-1], version{main: 5, create: 5, ver: 1, value: []byte("v")}, true},
		{"long value", []byte("k"), version{main: 5, create: 5, ver: 1, value: long}, true},
		{"long key", append(long, 'y'), version{main: 5, create: 5, ver: 1, value: []byte("v")}, true},
		{"big version", []byte("k"), version{main: 5, create: 4, ver: 1 << 33, value: []byte("v")}, false},
		{"big sub", []byte("k"), version{main: 5, sub: 1 << 33, create: 5, ver: 1, value: []byte("v")}, false},
		{"created long before", []byte("k"), version{main: 1 << 33, create: 5, ver: 2, value: []byte("v")}, false},
		{"created just far enough before", []byte("k"), version{main: 1<<32 + 4, create: 5, ver: 2, lease: 9, value: []byte("v")}, true},
		{"lease, no value", []byte("k"), version{main: 5, create: 5, ver: 1, lease: -1}, true},
		{"lease at the inline limit", long[:maxInline-9], version{main: 5, create: 5, ver: 1, lease: 1 << 62, value: []byte("v")}, true},
		{"lease past the inline limit", long[:maxInline-8], version{main: 5, create: 5, ver: 1, lease: 3, value: []byte("v")}, true},
		{"lease and a long key", append(long, 'y'), version{main: 5, create: 5, ver: 1, lease: 3, value: []byte("v")}, true},
		{"lease in a list", []byte("k"), version{main: 5, create: 4, ver: 1 << 33, lease: 3, value: []byte("v")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRecord(tc.key, tc.v)
			if !bytes.Equal(r.key(), tc.key) {
				t.Fatalf("key %q", r.key())
			}
			same := func(what string, got, want version) {
				t.Helper()
				if got.main != want.main || got.sub != want.sub || got.create != want.create || got.ver != want.ver ||
					got.lease != want.lease || !bytes.Equal(got.value, want.value) || (got.value == nil) != (len(want.value) == 0) {
					t.Fatalf("%s: %+v, want %+v", what, got, want)
				}
			}
			got, ok := r.at(tc.v.main)
			if !ok {
				t.Fatal("no version at its revision")
			}
			same("at", got, tc.v)
			if _, ok := r.at(tc.v.main - 1); ok {
				t.Fatal("a version before the first")
			}
			c := r.madeChange()
			if (c.rec != nil) != tc.inline || !bytes.Equal(c.key, tc.key) {
				t.Fatalf("madeChange: key %q, record %v, want inline %v", c.key, c.rec != nil, tc.inline)
			}
			same("madeChange", c.v, tc.v)
			v2 := version{main: tc.v.main + 1, create: tc.v.create, ver: tc.v.ver + 1, value: []byte("second")}
			r.append(&v2)
			got, _ = r.at(tc.v.main)
			same("first after an append", got, tc.v)
			got, _ = r.at(v2.main)
			same("second", got, v2)
			if tc.inline {
				same("the history's first change", r.firstChange().v, tc.v)
			}
		})
	}
	p := newProbe()
	for _, k := range [][]byte{[]byte("probe"), long, nil} {
		p.setKey(k)
		if !bytes.Equal(p.key(), k) {
			t.Fatalf("probe key %q, set %q", p.key(), k)
		}
	}
}

// TestKeyPrefix checks keyPrefix against its definition (the 8 bytes after
// the first l, zero-padded) for every length of what is left.
func TestKeyPrefix(t *testing.T) {
	for n := 0; n <= 12; n++ {
		k := make([]byte, n)
		for i := range k {
			k[i] = byte(0xa1 + 7*i)
		}
		for l := 0; l <= n; l++ {
			var b [8]byte
			copy(b[:], k[l:])
			want := uint64(0)
			for _, c := range b {
				want = want<<8 | uint64(c)
			}
			if got := keyPrefix(k, l); got != want {
				t.Fatalf("%d bytes after %d: %x, want %x", n-l, l, got, want)
			}
		}
	}
}
