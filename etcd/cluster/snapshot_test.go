package cluster

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestClusterSnapshotInstallWatch: a member cut off while the others
// write past their log compaction gets the leader's snapshot when it is
// back; its DB is replaced, which ends the watch streams it served, and a
// client watching through it alone resumes with no event missing or
// repeated.
func TestClusterSnapshotInstallWatch(t *testing.T) {
	c := newTestCluster(t, 3)
	lead := c.leader()
	x := (lead + 1) % 3
	ctx := ctxT(t, 60*time.Second)
	xcli := c.client(x)
	if _, err := xcli.Put(ctx, "k-first", "v"); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []*mvccpb.Event
	wctx, wstop := context.WithCancel(ctx)
	defer wstop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for wr := range xcli.Watch(wctx, "k", clientv3.WithPrefix(), clientv3.WithRev(1)) {
			mu.Lock()
			seen = append(seen, wr.Events...)
			mu.Unlock()
		}
	}()
	waitFor(t, "the first event", func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == 1 })

	before := c.members[x].current().Member().Status()
	c.partition(x, true)
	others := c.client(lead, (lead+2)%3)
	const writes = 2 * 300 // two snapshot intervals: the log behind is compacted
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < writes; i += 4 {
				if _, err := others.Put(ctx, fmt.Sprint("k", i%10), fmt.Sprint(i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	end, err := others.Get(ctx, "k0")
	if err != nil {
		t.Fatal(err)
	}
	c.partition(x, false)
	c.converged(end.Header.Revision)
	after := c.members[x].current().Member().Status()
	if after.SnapshotIndex <= before.Applied {
		t.Fatalf("member %d: snapshot at %d, applied %d when cut off: no snapshot installed", x, after.SnapshotIndex, before.Applied)
	}
	waitFor(t, "the watch to catch up", func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) >= writes+1 })
	wstop()
	<-done
	if len(seen) != writes+1 {
		t.Fatalf("watch saw %d events, want %d", len(seen), writes+1)
	}
	for i := 1; i < len(seen); i++ {
		if seen[i].Kv.ModRevision != seen[i-1].Kv.ModRevision+1 {
			t.Fatalf("event %d at revision %d after %d: a gap or a repeat", i, seen[i].Kv.ModRevision, seen[i-1].Kv.ModRevision)
		}
	}
}
