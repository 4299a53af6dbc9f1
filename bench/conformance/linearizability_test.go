package conformance

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/kv"
	"github.com/revkv/revkv/persist/filelog"
	"github.com/revkv/revkv/watch"
)

// The sequential model of the linearizability check: a store of three
// keys. States are values (arrays), so porcupine compares them with ==.
const nkeys = 3

type entry struct {
	value            int // 0: absent
	create, mod, ver int64
}

type kvState struct {
	rev  int64
	keys [nkeys]entry
}

type opKind int

const (
	opPut opKind = iota
	opGet
	opDelete
	opTxn // put key and key+1 in one revision
)

type input struct {
	kind  opKind
	key   int
	value int
}

type output struct {
	rev   int64 // revision returned
	n     int64 // keys deleted
	found entry // what a get read
	err   bool
}

func (s kvState) put(k, v int, rev int64) kvState {
	e := s.keys[k]
	if e.value == 0 {
		e.create, e.ver = rev, 0
	}
	e.value, e.mod, e.ver = v, rev, e.ver+1
	s.keys[k] = e
	return s
}

var kvModel = porcupine.Model{
	Init: func() any { return kvState{rev: 1} },
	Step: func(st, in, out any) (bool, any) {
		s, i, o := st.(kvState), in.(input), out.(output)
		if o.err {
			return false, s
		}
		switch i.kind {
		case opPut:
			s = s.put(i.key, i.value, s.rev+1)
			s.rev++
			return o.rev == s.rev, s
		case opGet:
			return o.rev == s.rev && o.found == s.keys[i.key], s
		case opDelete:
			if s.keys[i.key].value == 0 {
				return o.n == 0 && o.rev == s.rev, s
			}
			s.rev++
			s.keys[i.key] = entry{}
			return o.n == 1 && o.rev == s.rev, s
		case opTxn:
			s = s.put(i.key, i.value, s.rev+1)
			s = s.put((i.key+1)%nkeys, i.value, s.rev+1)
			s.rev++
			return o.rev == s.rev, s
		}
		return false, s
	},
	DescribeOperation: func(in, out any) string {
		return fmt.Sprintf("%+v -> %+v", in, out)
	},
}

func keyName(k int) []byte { return []byte{'k', byte('0' + k)} }

// apply runs one operation on s.
func apply(s *engine.Store, in input) output {
	var o output
	var err error
	switch in.kind {
	case opPut:
		o.rev, err = s.Put(keyName(in.key), []byte(fmt.Sprint(in.value)))
	case opGet:
		var kvs []kv.KeyValue
		kvs, o.rev, err = s.Range(keyName(in.key), nil, 0, 0)
		if len(kvs) == 1 {
			var v int
			fmt.Sscan(string(kvs[0].Value), &v)
			o.found = entry{value: v, create: kvs[0].CreateRevision, mod: kvs[0].ModRevision, ver: kvs[0].Version}
		}
	case opDelete:
		o.n, o.rev, err = s.DeleteRange(keyName(in.key), nil)
	case opTxn:
		var id int64
		if id, err = s.TxnBegin(); err == nil {
			s.TxnPut(id, keyName(in.key), []byte(fmt.Sprint(in.value)))
			o.rev, err = s.TxnPut(id, keyName((in.key+1)%nkeys), []byte(fmt.Sprint(in.value)))
			err = errorsJoin(err, s.TxnEnd(id))
		}
	}
	o.err = err != nil
	return o
}

func errorsJoin(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// history runs clients goroutines doing ops operations each on s and
// records every call and return.
func history(s *engine.Store, clients, ops int, seed uint64) []porcupine.Operation {
	start := time.Now()
	var mu sync.Mutex
	var hist []porcupine.Operation
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(c)))
			for i := range ops {
				in := input{kind: opKind(r.IntN(4)), key: r.IntN(nkeys), value: c*1000 + i + 1}
				call := time.Since(start).Nanoseconds()
				out := apply(s, in)
				ret := time.Since(start).Nanoseconds()
				mu.Lock()
				hist = append(hist, porcupine.Operation{ClientId: c, Input: in, Call: call, Output: out, Return: ret})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return hist
}

// memory returns a new in-memory engine store.
func memory() *engine.Store {
	s, err := engine.Open(nil, engine.Options{})
	if err != nil {
		panic(err) // Open with no persister does not fail
	}
	return s
}

// TestLinearizable: concurrent clients' histories of puts, gets, deletes
// and txns on one store are linearizable, in memory and with filelog's
// group commit (where a write is published only once durable).
func TestLinearizable(t *testing.T) {
	for _, tc := range []struct {
		name string
		open func(t *testing.T) *engine.Store
	}{
		{"memory", func(*testing.T) *engine.Store { return memory() }},
		{"filelog", func(t *testing.T) *engine.Store {
			l, err := filelog.Open(t.TempDir(), filelog.Options{})
			if err != nil {
				t.Fatal(err)
			}
			s, err := engine.Open(l, engine.Options{})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			total := 0
			for seed := range uint64(10) {
				s := tc.open(t)
				hist := history(s, 4, 40, seed)
				s.Close()
				total += len(hist)
				res, info := porcupine.CheckOperationsVerbose(kvModel, hist, 30*time.Second)
				if res != porcupine.Ok {
					path := fmt.Sprintf("%s/linearizability-%s-%d.html", t.TempDir(), tc.name, seed)
					porcupine.VisualizePath(kvModel, info, path)
					t.Fatalf("seed %d: history of %d operations is %s; see %s", seed, len(hist), res, path)
				}
			}
			t.Logf("%d operations in 10 histories of 4 clients: linearizable", total)
		})
	}
}

// TestModelCatchesStaleReads: the check is not vacuous. A history where a
// get returns a value older than a put that returned before it began is
// refused.
func TestModelCatchesStaleReads(t *testing.T) {
	hist := []porcupine.Operation{
		{ClientId: 0, Input: input{kind: opPut, key: 0, value: 1}, Call: 0, Output: output{rev: 2}, Return: 10},
		{ClientId: 1, Input: input{kind: opGet, key: 0}, Call: 20, Output: output{rev: 1}, Return: 30},
	}
	if porcupine.CheckOperations(kvModel, hist) {
		t.Fatal("a stale read was judged linearizable")
	}
}

// TestWatchHistories: with writers running concurrently, watchers started
// at different revisions (some while writes go on, some after, from old
// revisions) receive events that are ordered, unique, grouped one
// revision per response, and without gaps: exactly the store's history
// for their range, from their start.
func TestWatchHistories(t *testing.T) {
	e := memory()
	ws := watch.New(e, watch.Options{ChanSize: 4})
	defer ws.Close()
	type rec struct {
		mu    sync.Mutex // guards resps until done
		start int64
		key   []byte
		end   []byte
		resps []watch.Response
		done  chan struct{}
		w     *watch.Watcher
	}
	var recs []*rec
	startWatch := func(key, end []byte, start int64) {
		r := &rec{start: start, key: key, end: end, done: make(chan struct{}), w: ws.NewWatcher()}
		if _, err := r.w.WatchRange(watch.Request{Key: key, End: end, StartRev: start}); err != nil {
			t.Fatal(err)
		}
		go func() {
			defer close(r.done)
			for resp := range r.w.Chan() {
				r.mu.Lock()
				r.resps = append(r.resps, resp)
				r.mu.Unlock()
			}
		}()
		recs = append(recs, r)
	}
	startWatch([]byte("k"), []byte{}, 1)
	startWatch([]byte("k1"), nil, 0)
	var wg sync.WaitGroup
	for c := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := e
			r := rand.New(rand.NewPCG(uint64(c), 9))
			for range 300 {
				in := input{kind: opKind(r.IntN(4)), key: r.IntN(nkeys), value: r.IntN(100) + 1}
				if in.kind == opGet {
					in.kind = opPut
				}
				apply(s, in)
			}
		}()
	}
	time.Sleep(time.Millisecond)
	startWatch([]byte("k0"), []byte("k2"), ws.Rev()/2) // resumes from the middle
	wg.Wait()
	final := ws.Rev()
	startWatch([]byte("k"), []byte{}, final/3) // after the fact, from an old revision
	v, _ := ws.View()
	for _, r := range recs {
		r.w.RequestProgress()
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, r := range recs {
		for {
			r.mu.Lock()
			caughtUp := len(r.resps) > 0 && r.resps[len(r.resps)-1].Progress && r.resps[len(r.resps)-1].Revision >= final
			r.mu.Unlock()
			if caughtUp {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("watchers did not catch up")
			}
			time.Sleep(time.Millisecond)
			r.w.RequestProgress()
		}
		r.w.Close()
		<-r.done
	}
	for i, r := range recs {
		var got []kv.Event
		seenRev := map[int64]bool{}
		var last kv.Revision
		for _, resp := range r.resps {
			if resp.Progress || len(resp.Events) == 0 {
				continue
			}
			revs := map[int64]bool{}
			for _, ev := range resp.Events {
				cur := kv.Revision{Main: ev.KV.ModRevision, Sub: ev.Sub}
				if cur.Main < last.Main || (cur.Main == last.Main && cur.Sub <= last.Sub) {
					t.Fatalf("watch %d: event %v after %v: not ordered or not unique", i, cur, last)
				}
				last = cur
				revs[cur.Main] = true
				got = append(got, ev)
			}
			for rev := range revs {
				if seenRev[rev] {
					t.Fatalf("watch %d: revision %d split across responses", i, rev)
				}
				seenRev[rev] = true
			}
		}
		from := r.start
		if from <= 0 {
			from = 2 // started at rev 1 before any write: everything
		}
		var want []kv.Event
		for ev, err := range v.Events(from) {
			if err != nil {
				t.Fatal(err)
			}
			if ev.KV.ModRevision <= final && inRange(ev.KV.Key, r.key, r.end) {
				want = append(want, ev)
			}
		}
		if fmtEvents(got) != fmtEvents(want) {
			t.Fatalf("watch %d from %d: %d events, history has %d:\n got %s\nwant %s", i, r.start, len(got), len(want), fmtEvents(got), fmtEvents(want))
		}
		t.Logf("watch %d on %q..%q from %d: %d events, as the history says", i, r.key, r.end, r.start, len(got))
	}
}
