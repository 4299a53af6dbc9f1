package proptest_test

import (
	"context"
	"flag"
	"os"
	"testing"

	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/kv"
	"github.com/revkv/revkv/persist/filelog"
	"github.com/revkv/revkv/persist/memfs"
	"github.com/revkv/revkv/proptest"
)

// store adapts *engine.Store to proptest.KV: only View needs adapting, since
// the engine's View returns its own type.
type store struct{ *engine.Store }

func (s store) View() (proptest.View, error) {
	v, err := s.Store.View()
	if err != nil {
		return nil, err
	}
	return view{v}, nil
}

// BeginTxn makes the store a proptest.TxnKV.
func (s store) BeginTxn(ctx context.Context) (proptest.Txn, error) {
	tx, err := s.Store.Begin(ctx)
	if err != nil {
		return nil, err
	}
	return tx, nil
}

var _ proptest.TxnKV = store{}

type view struct{ *engine.View }

func (v view) Range(key, end []byte, limit, rangeRev int64) ([]kv.KeyValue, error) {
	res, err := v.View.Range(key, end, engine.RangeOptions{Limit: limit, Rev: rangeRev})
	return res.KVs, err
}

func (v view) Events(from int64) ([]kv.Event, error) {
	var evs []kv.Event
	for ev, err := range v.View.Events(from) {
		if err != nil {
			return nil, err
		}
		evs = append(evs, ev)
	}
	return evs, nil
}

// memory returns a new in-memory engine store.
func memory(opts engine.Options) *engine.Store {
	s, err := engine.Open(nil, opts)
	if err != nil {
		panic(err) // Open with no persister does not fail
	}
	return s
}

// minActions is how many state machine actions one default run of this
// package's tests must execute.
const minActions = 10_000

func TestMain(m *testing.M) {
	flag.Parse()
	// Unless the command line says otherwise, run ~150 cases of ~100 actions:
	// well over minActions, in a few seconds under -race.
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["rapid.checks"] {
		flag.Set("rapid.checks", "150")
	}
	if !set["rapid.steps"] {
		flag.Set("rapid.steps", "100")
	}
	os.Exit(m.Run())
}

func TestEngine(t *testing.T) {
	st := proptest.Check(t, func() (proptest.KV, error) {
		s, err := engine.Open(nil, engine.Options{})
		return store{s}, err
	})
	t.Logf("%d runs, %d actions", st.Runs, st.Actions)
	if rapidChecks() == "150" && st.Actions < minActions {
		t.Errorf("ran %d actions, want at least %d", st.Actions, minActions)
	}
}

// rapidChecks is the -rapid.checks value in force.
func rapidChecks() string { return flag.Lookup("rapid.checks").Value.String() }

// TestEngineOnFilelog holds the engine persisted by filelog (on memfs,
// with tiny segments and a snapshot every 3 revisions) to the model.
func TestEngineOnFilelog(t *testing.T) {
	st := proptest.Check(t, func() (proptest.KV, error) {
		l, err := filelog.Open("db", filelog.Options{FS: memfs.New(memfs.Options{}), SegmentSize: 300, SnapshotRevs: 3})
		if err != nil {
			return nil, err
		}
		s, err := engine.Open(l, engine.Options{})
		return store{s}, err
	})
	t.Logf("%d runs, %d actions", st.Runs, st.Actions)
}
