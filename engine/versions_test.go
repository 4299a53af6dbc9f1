package engine

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// TestVersionListModel drives one key's record through appends (runs long
// enough to fill blocks and pass maxCopyOnCompact), compactions (a new
// record of the list compaction keeps, as compactStepLocked makes) and
// aborted txns (restoredList), and holds reads at every revision at or
// above the compacted one, and the newest version the writer keeps apart
// (keyRecord.newest), to a slice of every version, through the current
// record and through records held from before later writes, as views hold
// them. Versions come from a slab, as Store.versionLocked hands them out.
func TestVersionListModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		key := []byte("key")
		var slab []version
		place := func(v version) *version {
			if len(slab) == 0 {
				slab = make([]version, minVersionSlab)
			}
			p := &slab[0]
			slab = slab[1:]
			*p = v
			return p
		}
		rev := int64(1)
		put := func(m []version) version {
			rev++
			v := version{main: rev, create: rev, ver: 1, value: fmt.Appendf(nil, "v%d", rev)}
			if len(m) > 0 && !m[len(m)-1].deleted() {
				v.create, v.ver = m[len(m)-1].create, m[len(m)-1].ver+1
			}
			return v
		}
		first := put(nil)
		r := newRecord(key, first)
		model := []version{first}
		compactRev := int64(0)
		type held struct {
			r         *keyRecord
			from, rev int64
			model     []version
		}
		var helds []held

		want := func(m []version, at int64) (version, bool) {
			i := len(m) - 1
			for i >= 0 && m[i].main > at {
				i--
			}
			if i < 0 {
				return version{}, false
			}
			return m[i], true
		}
		check := func(t *rapid.T, what string, r *keyRecord, m []version, from, to int64) {
			for at := from; at <= to; at++ {
				w, wok := want(m, at)
				g, gok := r.at(at)
				if (!wok || w.deleted()) && (!gok || g.deleted()) {
					continue // compaction drops a tombstone it reaches
				}
				if wok != gok || g.main != w.main || g.ver != w.ver || g.create != w.create || !bytes.Equal(g.value, w.value) {
					t.Fatalf("%s at %d: got %+v %v, want %+v %v", what, at, g, gok, w, wok)
				}
			}
		}
		appendRun := func(t *rapid.T) {
			n := rapid.IntRange(1, 300).Draw(t, "n")
			for range n {
				var v version
				if !model[len(model)-1].deleted() && rapid.IntRange(0, 9).Draw(t, "kind") == 0 {
					rev++
					v = version{main: rev}
				} else {
					v = put(model)
				}
				r.append(place(v))
				model = append(model, v)
			}
		}
		t.Repeat(map[string]func(*rapid.T){
			"append": appendRun,
			"hold": func(t *rapid.T) {
				helds = append(helds, held{r: r, from: compactRev, rev: rev, model: slices.Clone(model)})
			},
			"compact": func(t *rapid.T) {
				c := rapid.Int64Range(compactRev, rev).Draw(t, "rev")
				l := r.vers.Load()
				if l == nil {
					compactRev = c
					return
				}
				kept, _ := l.compacted(c)
				switch {
				case kept == nil:
					if last := model[len(model)-1]; !last.deleted() || last.main > c {
						t.Fatalf("compaction at %d dropped the key, last version %+v", c, last)
					}
					// The key is gone: it comes back with a new put.
					v := put(model)
					r, model = newRecord(key, v), []version{v}
				case kept != l:
					r = recordOf(key, kept)
				}
				compactRev = c
			},
			"abort": func(t *rapid.T) {
				l := r.vers.Load()
				var n int64
				if l != nil {
					n = l.n.Load()
				}
				oldRev, oldLen := rev, len(model)
				appendRun(t)
				if l == nil {
					// What the undo log holds for a record with its
					// first version inline: no list.
					r.vers.Store(nil)
				} else {
					r.vers.Store(restoredList(l, n))
				}
				rev, model = oldRev, model[:oldLen]
			},
			"": func(t *rapid.T) {
				last := model[len(model)-1]
				if create, ver := r.newest(); ver != last.ver || (ver != 0 && create != last.create) {
					t.Fatalf("newest: create %d ver %d, want %+v", create, ver, last)
				}
				check(t, "current", r, model, compactRev, rev)
				for i, h := range helds {
					check(t, fmt.Sprint("held ", i), h.r, h.model, h.from, h.rev)
				}
			},
		})
	})
}
