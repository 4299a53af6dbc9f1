package cluster

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// chaosDuration is how long TestClusterChaos runs its workload; the
// environment variable REVKV_CLUSTER_CHAOS (a Go duration) sets a longer
// run, with more fault rounds (see etcd/README.md), and
// REVKV_CLUSTER_CHAOS_MEMBERS the cluster's size (3).
func chaosDuration(t *testing.T) time.Duration {
	if v := os.Getenv("REVKV_CLUSTER_CHAOS"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("REVKV_CLUSTER_CHAOS=%q: %v", v, err)
		}
		return d
	}
	return 8 * time.Second
}

// kvInput and kvOutput are one client operation for porcupine.
type kvInput struct {
	put        bool
	key, value string
}

type kvOutput struct {
	value   string // a get's value ("" for a missing key)
	unknown bool   // a put that failed: it may or may not have happened
}

// kvModel is a register per key: puts set it, gets read it.
var kvModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(kvInput).key
			if byKey[k] == nil {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		slices.Sort(keys)
		var out [][]porcupine.Operation
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		in, out := input.(kvInput), output.(kvOutput)
		if in.put {
			return true, in.value
		}
		return out.value == state.(string), state
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(kvInput), output.(kvOutput)
		if in.put {
			return fmt.Sprintf("put(%s, %s) unknown=%v", in.key, in.value, out.unknown)
		}
		return fmt.Sprintf("get(%s) -> %q", in.key, out.value)
	},
}

// history records the clients' operations, with times from one clock.
type history struct {
	start time.Time
	mu    sync.Mutex
	ops   []porcupine.Operation
	acked map[string]int64 // acknowledged put value -> its revision
}

func (h *history) now() int64 { return int64(time.Since(h.start)) }

func (h *history) add(client int, in kvInput, call int64, out kvOutput, ret int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
}

// runClient puts and gets random keys until ctx ends.
func runClient(ctx context.Context, id int, cli *clientv3.Client, h *history, keys []string, count *atomic.Int64) {
	rng := rand.New(rand.NewPCG(uint64(id), 7))
	for seq := 0; ctx.Err() == nil; seq++ {
		key := keys[rng.IntN(len(keys))]
		opCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		call := h.now()
		if rng.IntN(2) == 0 {
			value := fmt.Sprintf("c%d-%d", id, seq)
			resp, err := cli.Put(opCtx, key, value)
			if err != nil {
				// Its fate is unknown: it may take effect at any time.
				h.add(id, kvInput{put: true, key: key, value: value}, call, kvOutput{unknown: true}, math.MaxInt64)
			} else {
				h.add(id, kvInput{put: true, key: key, value: value}, call, kvOutput{}, h.now())
				h.mu.Lock()
				h.acked[value] = resp.Header.Revision
				h.mu.Unlock()
				count.Add(1)
			}
		} else {
			resp, err := cli.Get(opCtx, key)
			if err == nil {
				var v string
				if len(resp.Kvs) == 1 {
					v = string(resp.Kvs[0].Value)
				}
				h.add(id, kvInput{key: key}, call, kvOutput{value: v}, h.now())
				count.Add(1)
			}
			// A failed get read nothing: it is left out.
		}
		cancel()
		time.Sleep(2 * time.Millisecond)
	}
}

// watched is what one watcher saw: every event in order.
type watched struct {
	mu     sync.Mutex
	events []*mvccpb.Event
	errs   int
}

// runWatcher watches the keys from revision 1 until ctx ends, through
// whatever endpoint clientv3 picks and re-picks. The watch requires a
// leader: a member cut off ends it, and it is watched again from the
// revision after the last event seen, as applications do.
func runWatcher(ctx context.Context, cli *clientv3.Client, w *watched) {
	next := int64(1)
	for ctx.Err() == nil {
		for wr := range cli.Watch(clientv3.WithRequireLeader(ctx), "k", clientv3.WithPrefix(), clientv3.WithRev(next)) {
			w.mu.Lock()
			if wr.Err() != nil {
				w.errs++
			}
			w.events = append(w.events, wr.Events...)
			if n := len(wr.Events); n > 0 {
				next = wr.Events[n-1].Kv.ModRevision + 1
			}
			w.mu.Unlock()
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestClusterChaos runs concurrent clientv3 clients (puts and
// linearizable gets) and two watchers against a 3-member cluster while a
// member is stopped abruptly and restarted, and a member (the leader,
// every other round) is cut off by the transport and healed. Then: every
// acknowledged put is in the history at its revision, each watcher saw
// the whole history in order without a gap or a duplicate, every member
// converged to the same state, and the clients' history is linearizable
// (porcupine).
func TestClusterChaos(t *testing.T) {
	d := chaosDuration(t)
	members := 3
	if v := os.Getenv("REVKV_CLUSTER_CHAOS_MEMBERS"); v != "" {
		if _, err := fmt.Sscan(v, &members); err != nil || members < 3 {
			t.Fatalf("REVKV_CLUSTER_CHAOS_MEMBERS=%q: want a number from 3", v)
		}
	}
	c := newTestCluster(t, members)
	c.leader()
	keys := []string{"k0", "k1", "k2", "k3"}
	h := &history{start: time.Now(), acked: map[string]int64{}}

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var wg sync.WaitGroup
	var ops atomic.Int64
	const clients = 6
	n := len(c.members)
	for i := range clients {
		cli := c.client(i%n, (i+1)%n, (i+2)%n)
		wg.Go(func() { runClient(ctx, i, cli, h, keys, &ops) })
	}
	watchers := []*watched{{}, {}}
	var wwg sync.WaitGroup
	wctx, wstop := context.WithCancel(context.Background())
	defer wstop()
	for i, w := range watchers {
		cli := c.client(i%n, (i+1)%n, (i+2)%n)
		wwg.Go(func() { runWatcher(wctx, cli, w) })
	}

	// Fault rounds, each about 3 s: stop a member (one that serves a
	// watch stream, when one does) and restart it; then cut one off
	// (the leader every other round) and heal it.
	deadline := time.Now().Add(d)
	var faults []string
	movedWatches := 0 // watch streams on crashed members: moved elsewhere
	for round := 0; time.Now().Before(deadline); round++ {
		time.Sleep(700 * time.Millisecond)
		victim := c.watchedMember(round)
		watches := c.members[victim].current().db().WatchStats().Watchers
		faults = append(faults, fmt.Sprintf("crash m%d (%d watch streams)", victim, watches))
		movedWatches += watches
		c.members[victim].stop(true)
		time.Sleep(900 * time.Millisecond)
		c.members[victim].start()
		time.Sleep(700 * time.Millisecond)
		cut := (round + 1) % n
		if round%2 == 0 {
			cut = c.leader()
		}
		faults = append(faults, fmt.Sprintf("cut m%d", cut))
		c.partition(cut, true)
		time.Sleep(900 * time.Millisecond)
		c.partition(cut, false)
	}
	time.Sleep(500 * time.Millisecond)
	stop()
	wg.Wait()
	t.Logf("faults: %v; %d operations acknowledged, %d puts", faults, ops.Load(), len(h.acked))
	if movedWatches == 0 {
		t.Log("no crash hit a member serving a watch stream: watch failover untested in this run")
	}
	if len(h.acked) < 20 {
		t.Fatalf("only %d puts acknowledged: the cluster was not available enough to test", len(h.acked))
	}

	// Every member converges: the same revision and hash.
	lead := c.leader()
	cli := c.client(lead)
	final, err := cli.Put(ctxT(t, 10*time.Second), "k-end", "end")
	if err != nil {
		t.Fatal(err)
	}
	end := final.Header.Revision
	c.converged(end)
	for i, m := range c.members {
		st := m.current().Member().Status()
		t.Logf("member %d: term %d, applied %d, snapshot at %d", i, st.Term, st.Applied, st.SnapshotIndex)
	}

	// The history: every event from revision 1, read afresh.
	var all []*mvccpb.Event
	hctx, hcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer hcancel()
	for wr := range cli.Watch(hctx, "k", clientv3.WithPrefix(), clientv3.WithRev(1)) {
		if err := wr.Err(); err != nil {
			t.Fatal(err)
		}
		all = append(all, wr.Events...)
		if all[len(all)-1].Kv.ModRevision >= end {
			break
		}
	}
	byValue := map[string]int64{}
	for _, e := range all {
		byValue[string(e.Kv.Value)] = e.Kv.ModRevision
	}
	for v, rev := range h.acked {
		if got, ok := byValue[v]; !ok || got != rev {
			t.Errorf("acknowledged put %s at revision %d: in the history at %d (%v)", v, rev, got, ok)
		}
	}

	// Each watcher saw that history, in order, with nothing missing or
	// repeated (clientv3 re-watches from where it stopped).
	waitFor(t, "watchers to reach the end", func() bool {
		for _, w := range watchers {
			w.mu.Lock()
			n := len(w.events)
			w.mu.Unlock()
			if n < len(all) {
				return false
			}
		}
		return true
	})
	wstop()
	wwg.Wait()
	for i, w := range watchers {
		if len(w.events) != len(all) {
			t.Fatalf("watcher %d saw %d events, the history has %d", i, len(w.events), len(all))
		}
		for j, e := range w.events {
			if e.Kv.ModRevision != all[j].Kv.ModRevision || string(e.Kv.Key) != string(all[j].Kv.Key) || string(e.Kv.Value) != string(all[j].Kv.Value) {
				t.Fatalf("watcher %d event %d: %v, history: %v", i, j, e, all[j])
			}
		}
		t.Logf("watcher %d: %d events, %d errors", i, len(w.events), w.errs)
	}

	res, info := porcupine.CheckOperationsVerbose(kvModel, h.ops, time.Minute)
	if res != porcupine.Ok {
		path := fmt.Sprintf("%s/chaos-%d.html", os.TempDir(), time.Now().UnixNano())
		if f, err := os.Create(path); err == nil {
			porcupine.Visualize(kvModel, info, f)
			f.Close()
		}
		t.Fatalf("history of %d operations is %s (visualization: %s)", len(h.ops), res, path)
	}
}

// watchedMember returns a member whose DB has a watcher open (a watch
// stream to move), or one chosen by the round.
func (c *testCluster) watchedMember(round int) int {
	for i := range c.members {
		j := (i + round) % len(c.members)
		if n := c.members[j].current(); n != nil && n.db().WatchStats().Watchers > 0 {
			return j
		}
	}
	return round % len(c.members)
}

// converged waits until every member has applied revision rev and they
// hash alike.
func (c *testCluster) converged(rev int64) {
	c.t.Helper()
	waitFor(c.t.(*testing.T), "members to converge", func() bool {
		for _, m := range c.members {
			if m.current().Rev() < rev {
				return false
			}
		}
		return true
	})
	var want uint32
	for i, m := range c.members {
		h, err := m.current().HashByRev(rev)
		if err != nil {
			c.t.Fatal(err)
		}
		if i == 0 {
			want = h.Hash
		} else if h.Hash != want {
			c.t.Fatalf("member %d hashes %x at revision %d, member 0 %x", i, h.Hash, rev, want)
		}
	}
}
