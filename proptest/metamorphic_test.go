package proptest_test

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/kv"
	"github.com/revkv/revkv/persist/filelog"
	"github.com/revkv/revkv/persist/memfs"
	"pgregory.net/rapid"
)

// variant is one way of running the same operations: its store, and what
// it does at a "restart" step.
type variant struct {
	name    string
	s       *engine.Store
	restart func(t *rapid.T, v *variant)
}

// tinyLog: every mechanism of the file persister runs within a few ops.
func tinyLog(fs *memfs.FS) filelog.Options {
	return filelog.Options{FS: fs, SegmentSize: 200, SnapshotRevs: 3}
}

func openLog(t *rapid.T, fs *memfs.FS, opts engine.Options) *engine.Store {
	l, err := filelog.Open("db", tinyLog(fs))
	if err != nil {
		t.Fatal(err)
	}
	s, err := engine.Open(l, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func variants(t *rapid.T, opts engine.Options) []*variant {
	fsA, fsB := memfs.New(memfs.Options{}), memfs.New(memfs.Options{})
	return []*variant{
		{name: "memory", s: memory(opts), restart: func(*rapid.T, *variant) {}},
		{name: "memory, snapshot and load", s: memory(opts), restart: func(t *rapid.T, v *variant) {
			sn, err := v.s.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if _, err := sn.WriteTo(&buf); err != nil {
				t.Fatal(err)
			}
			v.s.Close()
			v.s = memory(opts)
			if err := v.s.LoadSnapshot(&buf); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "filelog", s: openLog(t, fsA, opts), restart: func(t *rapid.T, v *variant) {
			if err := v.s.Restore(); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "filelog, close and reopen", s: openLog(t, fsB, opts), restart: func(t *rapid.T, v *variant) {
			if err := v.s.Close(); err != nil {
				t.Fatal(err)
			}
			if rapid.Bool().Draw(t, "crash") {
				fsB.Crash() // everything was synced: nothing is lost
			}
			v.s = openLog(t, fsB, opts)
		}},
	}
}

// TestMetamorphic runs one generated sequence of operations on the engine
// in memory, on filelog (tiny segments, a snapshot every 3 revisions), and
// on both with restarts (snapshot and load, Restore, close and reopen, a
// crash) at random points: every result and HashByRev must be the same in
// all of them, at every step. Leases are among the operations, on one
// manual clock (see leaseSteps): a restart keeps each lease's deadline.
func TestMetamorphic(t *testing.T) {
	steps := 0
	rapid.Check(t, func(t *rapid.T) {
		clock := engine.NewManualClock(time.Unix(1_800_000_000, 0))
		vs := variants(t, engine.Options{Clock: clock, ManualLeaseExpiry: true})
		defer func() {
			for _, v := range vs {
				v.s.Close()
			}
		}()
		keys := rapid.SampledFrom([]string{"a", "ab", "b", "c", "c\x00", "d"})
		key := func(label string) []byte { return []byte(keys.Draw(t, label)) }
		// each runs op on every variant and checks they agree.
		each := func(what string, op func(s *engine.Store) (string, error)) {
			var first string
			for i, v := range vs {
				out, err := op(v.s)
				got := fmt.Sprintf("%s %v", out, err)
				if i == 0 {
					first = got
				} else if got != first {
					t.Fatalf("%s: %s gives %q, %s gives %q", what, vs[0].name, first, v.name, got)
				}
			}
			steps++
		}
		acts := map[string]func(*rapid.T){
			"put": func(t *rapid.T) {
				k, val, lease := key("key"), []byte(rapid.StringN(0, 8, -1).Draw(t, "value")), rapid.Int64Range(0, 3).Draw(t, "lease")
				each("put", func(s *engine.Store) (string, error) {
					rev, err := s.PutLease(k, val, lease)
					return fmt.Sprint(rev), err
				})
			},
			"delete": func(t *rapid.T) {
				k, end := key("key"), []byte(nil)
				if rapid.Bool().Draw(t, "range") {
					end = key("end")
				}
				each("delete", func(s *engine.Store) (string, error) {
					n, rev, err := s.DeleteRange(k, end)
					return fmt.Sprint(n, rev), err
				})
			},
			"txn": func(t *rapid.T) {
				n := rapid.IntRange(1, 4).Draw(t, "ops")
				type op struct {
					del        bool
					key, value []byte
				}
				ops := make([]op, n)
				for i := range ops {
					ops[i] = op{del: rapid.Bool().Draw(t, "del"), key: key("key"), value: []byte(rapid.StringN(0, 4, -1).Draw(t, "value"))}
				}
				each("txn", func(s *engine.Store) (string, error) {
					id, err := s.TxnBegin()
					if err != nil {
						return "", err
					}
					var out []string
					for _, o := range ops {
						if o.del {
							n, rev, err := s.TxnDeleteRange(id, o.key, nil)
							out = append(out, fmt.Sprint(n, rev, err))
						} else {
							rev, err := s.TxnPut(id, o.key, o.value)
							out = append(out, fmt.Sprint(rev, err))
						}
					}
					return fmt.Sprint(out), s.TxnEnd(id)
				})
			},
			"compact": func(t *rapid.T) {
				rev := rapid.Int64Range(-1, vs[0].s.Rev()+1).Draw(t, "rev")
				each("compact", func(s *engine.Store) (string, error) { return "", s.Compact(rev) })
			},
			"range": func(t *rapid.T) {
				k, end := key("key"), []byte{}
				rev := rapid.Int64Range(0, vs[0].s.Rev()+1).Draw(t, "rev")
				limit := rapid.Int64Range(0, 3).Draw(t, "limit")
				each("range", func(s *engine.Store) (string, error) {
					kvs, rev, err := s.Range(k, end, limit, rev)
					return fmt.Sprint(kvs, rev), err
				})
			},
			"events": func(t *rapid.T) {
				from := rapid.Int64Range(0, vs[0].s.Rev()+1).Draw(t, "from")
				each("events", func(s *engine.Store) (string, error) {
					v, err := s.View()
					if err != nil {
						return "", err
					}
					var evs []kv.Event
					for ev, err := range v.Events(from) {
						if err != nil {
							return fmt.Sprint(evs), err
						}
						evs = append(evs, ev)
					}
					return fmt.Sprint(evs), nil
				})
			},
			"restart": func(t *rapid.T) {
				for _, v := range vs {
					v.restart(t, v)
				}
			},
			"": func(t *rapid.T) {
				each("hash", func(s *engine.Store) (string, error) {
					h, err := s.HashByRev(0)
					if errors.Is(err, kv.ErrClosed) {
						t.Fatal("closed")
					}
					return fmt.Sprint(h, s.Rev(), s.CompactRev()), err
				})
			},
		}
		maps.Copy(acts, leaseSteps(clock, each, key))
		t.Repeat(acts)
	})
	t.Logf("%d steps, each on %d variants", steps, 4)
}
