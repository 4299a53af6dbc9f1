package conformance

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/kv"
	"github.com/revkv/revkv/watch"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/pkg/v3/traceutil"
	"go.etcd.io/etcd/server/v3/lease"
	"go.etcd.io/etcd/server/v3/storage/backend"
	"go.etcd.io/etcd/server/v3/storage/mvcc"
	"go.uber.org/zap"
	"pgregory.net/rapid"
)

// minOps is how many operations one default run of the differential test
// must apply to both stores.
const minOps = 2000

func TestMain(m *testing.M) {
	flag.Parse()
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["rapid.checks"] {
		flag.Set("rapid.checks", "50")
	}
	if !set["rapid.steps"] {
		flag.Set("rapid.steps", "60")
	}
	os.Exit(m.Run())
}

var ctx = context.Background()

// watchLog collects the events and the end of one watch, on one side.
type watchLog struct {
	mu       sync.Mutex
	events   []kv.Event
	canceled bool
	compact  int64
	progress int64 // the last progress notification's revision (etcd)
}

func (l *watchLog) progressed(rev int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.progress = max(l.progress, rev)
}

// caughtUp reports whether the watch ended or said it has sent
// everything up to rev.
func (l *watchLog) caughtUp(rev int64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.canceled || l.progress >= rev
}

func (l *watchLog) add(evs []kv.Event, canceled bool, compact int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, evs...)
	if canceled {
		l.canceled, l.compact = true, compact
	}
}

func (l *watchLog) snapshot() (evs []kv.Event, canceled bool, compact int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events), l.canceled, l.compact
}

type watchPair struct {
	id         int64
	key, end   []byte
	start      int64
	compactAt  int64 // the compacted revision when the watch was made
	etcd, mine watchLog
}

// pair is the two stores under test.
type pair struct {
	b       backend.Backend
	etcd    mvcc.WatchableKV
	ews     mvcc.WatchStream
	mine    *watch.Store
	w       *watch.Watcher
	watches map[int64]*watchPair
	ops     int
	done    sync.WaitGroup
	// mineProgress is revkv's last progress notification's revision.
	mineProgress atomic.Int64
	// unsynced: watches were created since syncWatches last ran.
	unsynced bool
	// recreated are the revisions of txns that put a key after a delete:
	// compacting at exactly such a revision makes etcd lose the key's
	// value and exit on the next range (etcd issue 22376), so the test
	// does not compact there.
	recreated map[int64]bool
}

func newPair(t *rapid.T, dir string) *pair {
	// etcd logs its fatal errors and exits: show them.
	lg := zap.NewExample(zap.IncreaseLevel(zap.ErrorLevel))
	b := backend.NewDefaultBackend(lg, filepath.Join(dir, "etcd.db"))
	// etcd's mvcc layer takes any lease ID (its server checks them); revkv
	// refuses a put with a lease that is not live. Grants do not move the
	// revision, so granting the IDs the test draws keeps the two aligned.
	mine, _ := engine.Open(nil, engine.Options{ManualLeaseExpiry: true})
	for id := int64(1); id <= 3; id++ {
		if _, err := mine.Grant(id, engine.MaxLeaseTTL); err != nil {
			t.Fatal(err)
		}
	}
	p := &pair{b: b, etcd: mvcc.New(lg, b, &lease.FakeLessor{}, mvcc.StoreConfig{}),
		mine: watch.New(mine, watch.Options{}), watches: map[int64]*watchPair{},
		recreated: map[int64]bool{}}
	p.ews = p.etcd.NewWatchStream()
	p.w = p.mine.NewWatcher()
	p.done.Add(2)
	go func() {
		defer p.done.Done()
		for resp := range p.ews.Chan() {
			var evs []kv.Event
			for _, ev := range resp.Events {
				evs = append(evs, fromEtcdEvent(ev))
			}
			if wp := p.watch(int64(resp.WatchID)); wp != nil {
				wp.etcd.add(evs, resp.CompactRevision != 0, resp.CompactRevision)
				if len(evs) == 0 && resp.CompactRevision == 0 {
					wp.etcd.progressed(resp.Revision)
				}
			}
		}
	}()
	go func() {
		defer p.done.Done()
		for resp := range p.w.Chan() {
			if resp.Progress && resp.WatchID == -1 {
				p.mineProgress.Store(max(p.mineProgress.Load(), resp.Revision))
			}
			if wp := p.watch(resp.WatchID); wp != nil {
				wp.mine.add(resp.Events, resp.Canceled && errors.Is(resp.Err, kv.ErrCompacted), resp.CompactRevision)
			}
		}
	}()
	return p
}

var watchesMu sync.Mutex

func (p *pair) watch(id int64) *watchPair {
	watchesMu.Lock()
	defer watchesMu.Unlock()
	return p.watches[id]
}

func (p *pair) close() {
	p.ews.Close()
	p.w.Close()
	p.done.Wait()
	p.mine.Close()
	p.etcd.Close()
	p.b.Close()
}

func fromEtcdKV(k *mvccpb.KeyValue) kv.KeyValue {
	return kv.KeyValue{Key: k.Key, Value: k.Value, CreateRevision: k.CreateRevision,
		ModRevision: k.ModRevision, Version: k.Version, Lease: k.Lease}
}

func fromEtcdEvent(ev *mvccpb.Event) kv.Event {
	e := kv.Event{KV: fromEtcdKV(ev.Kv)}
	if ev.Type == mvccpb.DELETE {
		e.Type = kv.Delete
	}
	return e
}

// errClass maps both stores' errors onto one name.
func errClass(err error) string {
	switch {
	case err == nil:
		return "nil"
	case errors.Is(err, mvcc.ErrCompacted), errors.Is(err, kv.ErrCompacted):
		return "compacted"
	case errors.Is(err, mvcc.ErrFutureRev), errors.Is(err, kv.ErrFutureRev):
		return "future"
	}
	return "other: " + err.Error()
}

func fmtKVs(kvs []kv.KeyValue) string {
	s := "["
	for _, k := range kvs {
		s += fmt.Sprintf("{%q=%q c%d m%d v%d l%d}", k.Key, k.Value, k.CreateRevision, k.ModRevision, k.Version, k.Lease)
	}
	return s + "]"
}

func same(t *rapid.T, what string, etcd, mine any) {
	t.Helper()
	if a, b := fmt.Sprint(etcd), fmt.Sprint(mine); a != b {
		t.Fatalf("%s: etcd %s, revkv %s", what, a, b)
	}
}

var keys = []string{"a", "a/1", "a/2", "b", "b\x00", "c"}

func drawKey(t *rapid.T, label string) []byte { return []byte(rapid.SampledFrom(keys).Draw(t, label)) }

// drawEnd draws a range end: nil (one key), empty (every key from key
// on), a prefix's end, or another key.
func drawEnd(t *rapid.T, key []byte) []byte {
	switch rapid.IntRange(0, 3).Draw(t, "endKind") {
	case 0:
		return nil
	case 1:
		return []byte{}
	case 2:
		return append(key[:len(key):len(key)], 0xff)
	}
	return drawKey(t, "end")
}

func (p *pair) rangeBoth(t *rapid.T, what string, key, end []byte, limit, rev int64,
	etcdRange func(key, end []byte, ro mvcc.RangeOptions) (*mvcc.RangeResult, error),
	mineRange func(key, end []byte, limit, rev int64) ([]kv.KeyValue, int64, int64, error)) {
	er, eerr := etcdRange(key, end, mvcc.RangeOptions{Limit: limit, Rev: rev, WithTotalCount: true})
	mkvs, mrev, mcount, merr := mineRange(key, end, limit, rev)
	w := fmt.Sprintf("%s %q..%q limit %d rev %d", what, key, end, limit, rev)
	same(t, w+" error", errClass(eerr), errClass(merr))
	if eerr != nil {
		return
	}
	var ekvs []kv.KeyValue
	for _, k := range er.KVs {
		ekvs = append(ekvs, fromEtcdKV(k))
	}
	same(t, w+" kvs", fmtKVs(ekvs), fmtKVs(mkvs))
	same(t, w+" revision", er.Rev, mrev)
	if mcount >= 0 { // -1: the seed's TxnRange reports no total count
		same(t, w+" count", int64(er.Count), mcount)
	}
}

// TestAgainstEtcd applies random operations to etcd's mvcc store (on
// bbolt, in a temp dir) and to revkv, and compares every result after
// every operation: key-values with their revisions, versions and leases;
// revisions; errors; and at the end of each run, every watch's events.
func TestAgainstEtcd(t *testing.T) {
	total := 0
	rapid.Check(t, func(rt *rapid.T) {
		p := newPair(rt, t.TempDir())
		defer p.close()
		rt.Repeat(map[string]func(*rapid.T){
			"put": func(t *rapid.T) {
				k, v := drawKey(t, "key"), []byte(rapid.StringN(0, 6, -1).Draw(t, "value"))
				l := rapid.Int64Range(0, 3).Draw(t, "lease")
				er := p.etcd.Put(k, v, lease.LeaseID(l))
				mr, err := p.mine.PutLease(k, v, l)
				same(t, "put error", nil, err)
				same(t, fmt.Sprintf("put %q revision", k), er, mr)
			},
			"delete": func(t *rapid.T) {
				k := drawKey(t, "key")
				end := drawEnd(t, k)
				en, er := p.etcd.DeleteRange(k, end)
				mn, mr, err := p.mine.DeleteRange(k, end)
				same(t, "delete error", nil, err)
				same(t, fmt.Sprintf("delete %q..%q", k, end), fmt.Sprint(en, er), fmt.Sprint(mn, mr))
			},
			"range": func(t *rapid.T) {
				k := drawKey(t, "key")
				end := drawEnd(t, k)
				limit := rapid.Int64Range(0, 3).Draw(t, "limit")
				rev := rapid.Int64Range(0, p.mine.Rev()+1).Draw(t, "rev")
				p.rangeBoth(t, "range", k, end, limit, rev,
					func(key, end []byte, ro mvcc.RangeOptions) (*mvcc.RangeResult, error) {
						return p.etcd.Range(ctx, key, end, ro)
					},
					func(key, end []byte, limit, rev int64) ([]kv.KeyValue, int64, int64, error) {
						res, err := p.mine.RangeWithOptions(key, end, engine.RangeOptions{Limit: limit, Rev: rev, TotalCount: true})
						return res.KVs, res.Rev, res.Count, err
					})
			},
			"txn": func(t *rapid.T) {
				tw := p.etcd.Write(traceutil.TODO())
				id, err := p.mine.TxnBegin()
				if err != nil {
					tw.End()
					t.Fatal(err)
				}
				ended, deleted, recreated := false, false, false
				defer func() {
					// A failed comparison leaves mid-txn: end both, or
					// etcd's store stays locked and its Close hangs.
					if !ended {
						tw.End()
						p.mine.TxnEnd(id)
					}
				}()
				for i := range rapid.IntRange(1, 4).Draw(t, "ops") {
					k := drawKey(t, "key")
					switch rapid.IntRange(0, 2).Draw(t, "op") {
					case 0:
						v := []byte(rapid.StringN(0, 4, -1).Draw(t, "value"))
						er := tw.Put(k, v, lease.NoLease)
						mr, err := p.mine.TxnPut(id, k, v)
						recreated = recreated || deleted
						same(t, "txn put error", nil, err)
						same(t, fmt.Sprintf("txn op %d put %q revision", i, k), er, mr)
					case 1:
						end := drawEnd(t, k)
						en, er := tw.DeleteRange(k, end)
						mn, mr, err := p.mine.TxnDeleteRange(id, k, end)
						deleted = deleted || mn > 0
						same(t, "txn delete error", nil, err)
						same(t, fmt.Sprintf("txn op %d delete %q..%q", i, k, end), fmt.Sprint(en, er), fmt.Sprint(mn, mr))
					case 2:
						end := drawEnd(t, k)
						limit := rapid.Int64Range(0, 3).Draw(t, "limit")
						rev := rapid.Int64Range(0, p.mine.Rev()+2).Draw(t, "rev")
						p.rangeBoth(t, fmt.Sprintf("txn op %d range", i), k, end, limit, rev,
							func(key, end []byte, ro mvcc.RangeOptions) (*mvcc.RangeResult, error) {
								return tw.Range(ctx, key, end, ro)
							},
							func(key, end []byte, limit, rev int64) ([]kv.KeyValue, int64, int64, error) {
								kvs, r, err := p.mine.TxnRange(id, key, end, limit, rev)
								return kvs, r, -1, err
							})
					}
				}
				ended = true
				tw.End()
				same(t, "txn end", nil, p.mine.TxnEnd(id))
				if recreated {
					p.recreated[p.mine.Rev()] = true
				}
			},
			"compact": func(t *rapid.T) {
				// A compaction that overtakes a watch still reading history
				// ends it, in both stores; when it does depends on each
				// store's timing (etcd syncs such watches every 100 ms), so
				// watches catch up first.
				p.syncWatches(t)
				rev := rapid.Int64Range(-1, p.mine.Rev()+2).Draw(t, "rev")
				if p.recreated[rev] {
					avoided++
					return
				}
				done, eerr := p.etcd.Compact(traceutil.TODO(), rev)
				if eerr == nil {
					<-done
				}
				merr := p.mine.Compact(rev)
				same(t, fmt.Sprintf("compact %d", rev), errClass(eerr), errClass(merr))
			},
			"watch": func(t *rapid.T) {
				k := drawKey(t, "key")
				end := drawEnd(t, k)
				if end != nil && len(end) > 0 && string(end) <= string(k) {
					end = nil // an empty range is an error in both; not what this step tests
				}
				start := rapid.Int64Range(0, p.mine.Rev()+1).Draw(t, "start")
				watchesMu.Lock()
				id := int64(len(p.watches) + 1)
				wp := &watchPair{id: id, key: k, end: end, start: start, compactAt: p.mine.CompactRev()}
				p.watches[id] = wp
				watchesMu.Unlock()
				if _, err := p.ews.Watch(ctx, mvcc.WatchID(id), k, end, start); err != nil {
					t.Fatalf("etcd watch: %v", err)
				}
				if _, err := p.w.WatchRange(watch.Request{ID: id, Key: k, End: end, StartRev: start}); err != nil {
					t.Fatalf("revkv watch: %v", err)
				}
				p.unsynced = true
			},
			"": func(t *rapid.T) {
				p.ops++
				same(t, "revision", p.etcd.Rev(), p.mine.Rev())
				p.rangeBoth(t, "all keys", []byte{0}, []byte{}, 0, 0,
					func(key, end []byte, ro mvcc.RangeOptions) (*mvcc.RangeResult, error) {
						return p.etcd.Range(ctx, key, end, ro)
					},
					func(key, end []byte, limit, rev int64) ([]kv.KeyValue, int64, int64, error) {
						res, err := p.mine.RangeWithOptions(key, end, engine.RangeOptions{TotalCount: true})
						return res.KVs, res.Rev, res.Count, err
					})
			},
		})
		p.checkWatches(rt)
		total += p.ops
	})
	t.Logf("%d operations applied to both stores and compared; %d watches from a compacted revision met the documented divergence; %d compactions avoided (etcd issue 22376)", total, supersededSeen, avoided)
	if flag.Lookup("rapid.checks").Value.String() == "50" && total < minOps {
		t.Errorf("compared %d operations, want at least %d", total, minOps)
	}
}

// syncWatches waits until every watch, in both stores, has sent
// everything up to the current revision (or ended).
func (p *pair) syncWatches(t *rapid.T) {
	if !p.unsynced {
		return
	}
	p.unsynced = false
	rev := p.mine.Rev()
	deadline := time.Now().Add(10 * time.Second)
	for {
		waiting := 0
		for id := int64(1); id <= int64(len(p.watches)); id++ {
			// A watch from a future revision has nothing to send, and
			// etcd sends no progress for it.
			if wp := p.watch(id); wp.start <= rev && !wp.etcd.caughtUp(rev) {
				waiting++
				p.ews.RequestProgress(mvcc.WatchID(id))
			}
		}
		if waiting == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d etcd watches did not catch up to %d", waiting, rev)
		}
		time.Sleep(2 * time.Millisecond)
	}
	p.w.RequestProgress()
	for p.mineProgress.Load() < rev {
		if time.Now().After(deadline) {
			t.Fatalf("revkv watches did not catch up to %d", rev)
		}
		time.Sleep(time.Millisecond)
	}
}

// checkWatches waits until every watch, in both stores, has sent
// everything up to the current revision (or ended), then compares what
// each delivered: the same events, and the same end (canceled with the
// same compacted revision, for a watch that started below it).
func (p *pair) checkWatches(t *rapid.T) {
	p.unsynced = true
	p.syncWatches(t)
	for id := int64(1); id <= int64(len(p.watches)); id++ {
		wp := p.watch(id)
		ee, ec, ecomp := wp.etcd.snapshot()
		me, mc, mcomp := wp.mine.snapshot()
		what := fmt.Sprintf("watch %d on %q..%q from %d", id, wp.key, wp.end, wp.start)
		same(t, what+" canceled", fmt.Sprint(ec, ecomp), fmt.Sprint(mc, mcomp))
		if wp.start == wp.compactAt {
			// The one deliberate divergence (README, "Differences from
			// etcd"): etcd's compaction keeps only the last change to
			// each key at the compacted revision, so a watch starting
			// there misses a change superseded within that revision
			// (a txn that puts a key, then deletes it). revkv keeps them.
			if kept := lastPerKeyAt(me, wp.compactAt); len(kept) != len(me) {
				supersededSeen++
				me = kept
			}
		}
		same(t, what+" events", fmtEvents(ee), fmtEvents(me))
		if wantCanceled := wp.start > 0 && wp.start < wp.compactAt; mc != wantCanceled {
			t.Fatalf("%s: canceled %v, but compacted at %d when it started", what, mc, wp.compactAt)
		}
	}
}

// avoided counts the compactions not made because etcd would crash.
var avoided int

// supersededSeen counts the runs where the divergence lastPerKeyAt hides
// occurred.
var supersededSeen int

// lastPerKeyAt drops, among the events of revision rev, every one but the
// last of each key.
func lastPerKeyAt(evs []kv.Event, rev int64) []kv.Event {
	last := map[string]int{}
	for i, ev := range evs {
		if ev.KV.ModRevision == rev {
			last[string(ev.KV.Key)] = i
		}
	}
	var out []kv.Event
	for i, ev := range evs {
		if ev.KV.ModRevision != rev || last[string(ev.KV.Key)] == i {
			out = append(out, ev)
		}
	}
	return out
}

func inRange(k, key, end []byte) bool {
	if end == nil {
		return string(k) == string(key)
	}
	return string(k) >= string(key) && (len(end) == 0 || string(k) < string(end))
}

func fmtEvents(evs []kv.Event) string {
	s := ""
	for _, ev := range evs {
		s += fmt.Sprintf("%v %s ", ev.Type, fmtKVs([]kv.KeyValue{ev.KV}))
	}
	return s
}
