package engine

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/revkv/revkv/kv"
)

// TestTxnChangeSlab runs txns of many sizes (one change to over a slab's
// worth), some aborted, some with deletes, across several chunks of the
// history, and checks every revision's events against what each txn did:
// the txns' changes share slabs (see changeRoomLocked), which no txn may
// write where an earlier one's changes are.
func TestTxnChangeSlab(t *testing.T) {
	s := newStore(Options{TxnTimeout: -1})
	defer s.Close()
	r := rand.New(rand.NewPCG(3, 3))
	type ev struct {
		key, value string
		del        bool
	}
	want := map[int64][]ev{}
	live := map[string]bool{}
	sizes := []int{1, 2, 3, 10, 10, 10, 17, 40, maxChangeSlab - 1, maxChangeSlab + 3, 700}
	for i := range 3 * chunkSize {
		id, err := s.TxnBegin()
		if err != nil {
			t.Fatal(err)
		}
		n := sizes[r.IntN(len(sizes))]
		if r.IntN(4) != 0 {
			n = min(n, 12)
		}
		var evs []ev
		for j := range n {
			k := fmt.Sprintf("k%05d", r.IntN(5000))
			if live[k] && r.IntN(5) == 0 {
				if _, _, err := s.TxnDeleteRange(id, []byte(k), nil); err != nil {
					t.Fatal(err)
				}
				evs = append(evs, ev{key: k, del: true})
				live[k] = false
				continue
			}
			v := fmt.Sprintf("v%d.%d", i, j)
			if _, err := s.TxnPut(id, []byte(k), []byte(v)); err != nil {
				t.Fatal(err)
			}
			evs = append(evs, ev{key: k, value: v})
			live[k] = true
		}
		if r.IntN(6) == 0 {
			// Abort: end the txn by a failure, and take its keys' state back.
			s.txnMu.Lock()
			s.txn.failed = fmt.Errorf("abort")
			s.txnMu.Unlock()
			if err := s.TxnEnd(id); err == nil {
				t.Fatal("a failed txn committed")
			}
			for k := range live {
				kvs, _, err := s.Range([]byte(k), nil, 0, 0)
				if err != nil {
					t.Fatal(err)
				}
				live[k] = len(kvs) == 1
			}
			continue
		}
		if err := s.TxnEnd(id); err != nil {
			t.Fatal(err)
		}
		want[s.Rev()] = evs
	}
	v, err := s.View()
	if err != nil {
		t.Fatal(err)
	}
	got := map[int64][]ev{}
	for e, err := range v.Events(1) {
		if err != nil {
			t.Fatal(err)
		}
		got[e.KV.ModRevision] = append(got[e.KV.ModRevision], ev{key: string(e.KV.Key), value: string(e.KV.Value), del: e.Type == kv.Delete})
	}
	if len(got) != len(want) {
		t.Fatalf("%d revisions with events, want %d", len(got), len(want))
	}
	for rev, w := range want {
		g := got[rev]
		if len(g) != len(w) {
			t.Fatalf("rev %d: %d events, want %d", rev, len(g), len(w))
		}
		for i := range w {
			if g[i] != w[i] {
				t.Fatalf("rev %d event %d: %+v, want %+v", rev, i, g[i], w[i])
			}
		}
	}
	// The slab holds no change past the committed ones.
	b := s.w.changeBuf
	for _, c := range b[len(b):cap(b)] {
		if c.key != nil || !bytes.Equal(c.v.value, nil) || c.rec != nil {
			t.Fatal("the slab's free room holds a change")
		}
	}
}

// TestTxnChangeSlabAfterCompact: a txn after a compaction that dropped the
// chunk of the history the slab of changes holds starts a new slab, so
// that the dropped chunk's changes (and what they point to) do not stay
// alive with the chunks kept.
func TestTxnChangeSlabAfterCompact(t *testing.T) {
	s := newStore(Options{TxnTimeout: -1})
	defer s.Close()
	txn := func() {
		id, err := s.TxnBegin()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"t1", "t2"} {
			if _, err := s.TxnPut(id, []byte(k), []byte("v")); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.TxnEnd(id); err != nil {
			t.Fatal(err)
		}
	}
	mustPut(t, s, "a", "0")
	// Updates: a txn of new keys leaves no change in the slab (the
	// history keeps their records).
	mustPut(t, s, "t1", "0")
	mustPut(t, s, "t2", "0")
	txn() // the slab's first change is past the history's first revision
	slab := s.w.changeBuf
	for i := range chunkSize + 10 {
		mustPut(t, s, "a", fmt.Sprint(i))
	}
	if err := s.Compact(s.Rev() - 1); err != nil {
		t.Fatal(err)
	}
	if slab[0].v.main >= s.w.hist.first {
		t.Fatalf("the compaction kept revision %d (history from %d)", slab[0].v.main, s.w.hist.first)
	}
	txn()
	if b := s.w.changeBuf; len(b) != 2 || &b[0] == &slab[0] || b[0].v.main != s.Rev() {
		t.Fatalf("the txn's changes went into the slab of a dropped chunk")
	}
}
