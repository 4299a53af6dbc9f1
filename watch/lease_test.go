package watch

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/revkv/revkv/engine"
)

// TestWatchLeaseExpiry: a lease's expiry, run by the store's own timer,
// reaches a watcher as one response with a DELETE for each of its keys,
// all at one revision, after the puts that attached them.
func TestWatchLeaseExpiry(t *testing.T) {
	c := engine.NewManualClock(time.Unix(1_800_000_000, 0))
	es, _ := engine.Open(nil, engine.Options{Clock: c})
	s := New(es, Options{})
	t.Cleanup(func() { s.Close() })
	w := s.NewWatcher()
	w.Watch(b("lock/"), true, 0)
	l, err := es.Grant(0, 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"lock/b", "lock/a"} {
		if _, err := es.PutLease(b(k), b("held"), l.ID); err != nil {
			t.Fatal(err)
		}
	}
	if got := events(t, w, 2); !slices.Equal(got, []string{"PUT lock/b@2", "PUT lock/a@3"}) {
		t.Fatalf("puts: %v", got)
	}
	c.Advance(10 * time.Second)
	r := recv(t, w)
	var got []string
	for _, ev := range r.Events {
		got = append(got, fmt.Sprintf("%s %s@%d.%d", ev.Type, ev.KV.Key, ev.KV.ModRevision, ev.Sub))
	}
	if want := []string{"DELETE lock/a@4.0", "DELETE lock/b@4.1"}; !slices.Equal(got, want) {
		t.Fatalf("expiry: %v in one response, want %v", got, want)
	}
}
