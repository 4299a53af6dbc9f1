package filelog_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/kv"
	"github.com/revkv/revkv/persist"
	"github.com/revkv/revkv/persist/filelog"
)

// op is one step of a generated workload.
type op struct {
	kind     string // put, del, delrange, txn, compact, commit
	key, end []byte
	value    []byte
	rev      int64
	txn      []op
}

func (o op) String() string {
	return fmt.Sprintf("%s %q %q %d", o.kind, o.key, o.end, o.rev)
}

// workload is a sequence of ops and, for each prefix, the state a
// reference store reaches: hashes[i] is after ops[:i].
type workload struct {
	ops    []op
	hashes []kv.KeyValueHash
	views  []*engine.View
}

// genWorkload draws n ops, valid against the state reached so far, on a
// small key space so keys are updated, deleted and revived.
func genWorkload(t testing.TB, seed uint64, n int) *workload {
	rng := rand.New(rand.NewPCG(seed, seed*7+1))
	ref, _ := engine.Open(nil, engine.Options{})
	w := &workload{}
	key := func() []byte { return []byte(fmt.Sprintf("k%02d", rng.IntN(24))) }
	value := func() []byte {
		v := make([]byte, rng.IntN(48))
		for i := range v {
			v[i] = byte('a' + rng.IntN(4)) // compressible, like real values
		}
		return v
	}
	record := func() {
		h, err := ref.HashByRev(0)
		if err != nil {
			t.Fatal(err)
		}
		v, err := ref.View()
		if err != nil {
			t.Fatal(err)
		}
		w.hashes = append(w.hashes, h)
		w.views = append(w.views, v)
	}
	record()
	for range n {
		var o op
		switch r := rng.IntN(20); {
		case r < 10:
			o = op{kind: "put", key: key(), value: value()}
		case r < 12:
			o = op{kind: "del", key: key()}
		case r < 13:
			a, b := key(), key()
			if bytes.Compare(a, b) > 0 {
				a, b = b, a
			}
			o = op{kind: "delrange", key: a, end: b}
		case r < 16:
			o = op{kind: "txn"}
			for range 1 + rng.IntN(4) {
				if rng.IntN(4) == 0 {
					o.txn = append(o.txn, op{kind: "del", key: key()})
				} else {
					o.txn = append(o.txn, op{kind: "put", key: key(), value: value()})
				}
			}
		case r < 18:
			lo, hi := ref.CompactRev()+1, ref.Rev()
			if lo > hi || lo < 1 {
				lo = max(lo, 1)
				if lo > hi {
					o = op{kind: "commit"}
					break
				}
			}
			o = op{kind: "compact", rev: lo + rng.Int64N(hi-lo+1)}
		default:
			o = op{kind: "commit"}
		}
		if err := apply(ref, o); err != nil {
			t.Fatalf("reference: %v: %v", o, err)
		}
		w.ops = append(w.ops, o)
		record()
	}
	return w
}

// apply runs o on s.
func apply(s *engine.Store, o op) error {
	var err error
	switch o.kind {
	case "put":
		_, err = s.Put(o.key, o.value)
	case "del":
		_, _, err = s.DeleteRange(o.key, nil)
	case "delrange":
		_, _, err = s.DeleteRange(o.key, o.end)
	case "compact":
		err = s.Compact(o.rev)
	case "commit":
		err = s.Commit()
	case "txn":
		var id int64
		if id, err = s.TxnBegin(); err != nil {
			return err
		}
		for _, t := range o.txn {
			if t.kind == "put" {
				_, err = s.TxnPut(id, t.key, t.value)
			} else {
				_, _, err = s.TxnDeleteRange(id, t.key, nil)
			}
			if err != nil {
				s.TxnEnd(id)
				return err
			}
		}
		err = s.TxnEnd(id)
	default:
		panic(o.kind)
	}
	return err
}

// matchState returns the i in [lo, hi] whose reference state s holds
// (same HashByRev, revision, compacted revision and live keys), or an
// error describing the mismatch.
func (w *workload) matchState(s *engine.Store, lo, hi int) (int, error) {
	h, err := s.HashByRev(0)
	if err != nil {
		return 0, err
	}
	for i := hi; i >= lo; i-- {
		if w.hashes[i] != h {
			continue
		}
		got, _, err := s.Range(nil, []byte{}, 0, 0)
		if err != nil {
			return 0, err
		}
		want, err := w.views[i].Range(nil, []byte{}, engine.RangeOptions{})
		if err != nil {
			return 0, err
		}
		if fmt.Sprint(got) != fmt.Sprint(want.KVs) {
			return 0, fmt.Errorf("state %d: hash matches but keys differ:\n got %v\nwant %v", i, got, want.KVs)
		}
		return i, nil
	}
	return 0, fmt.Errorf("hash %+v matches no reference state in [%d, %d] (%+v .. %+v)", h, lo, hi, w.hashes[lo], w.hashes[hi])
}

// openStore opens an engine on a filelog in dir "db" of fsys.
// mustOpen opens a store on a Log of dir (on opts.FS), and also returns
// the Log, for tests that call it directly. It fails tb on an error.
func mustOpen(tb testing.TB, dir string, opts filelog.Options) (*engine.Store, *filelog.Log) {
	tb.Helper()
	l, err := filelog.Open(dir, opts)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := engine.Open(l, engine.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	return s, l
}

func openStore(fsys persist.FS, opts filelog.Options) (*engine.Store, error) {
	opts.FS = fsys
	l, err := filelog.Open("db", opts)
	if err != nil {
		return nil, err
	}
	return engine.Open(l, engine.Options{})
}

// tiny are options that make every mechanism run within a few dozen ops:
// segments rotate every few records, snapshots every few revisions.
var tiny = filelog.Options{SegmentSize: 512, SnapshotRevs: 8}
