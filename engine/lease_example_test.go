package engine_test

import (
	"fmt"
	"time"

	"github.com/revkv/revkv/engine"
)

// A lease holds a key for as long as it is kept alive: when its TTL runs
// out, its keys are deleted, all at one revision.
func ExampleStore_Grant() {
	clock := engine.NewManualClock(time.Unix(1_800_000_000, 0))
	s, _ := engine.Open(nil, engine.Options{Clock: clock, ManualLeaseExpiry: true})
	defer s.Close()

	l, _ := s.Grant(0, 10) // 10 s
	s.PutLease([]byte("lock"), []byte("me"), l.ID)
	clock.Advance(8 * time.Second)
	s.KeepAlive(l.ID) // 10 s again
	st, _ := s.TimeToLive(l.ID, true)
	fmt.Printf("lease %d: %d s left, keys %q\n", st.ID, st.TTL, st.Keys)

	clock.Advance(11 * time.Second)
	n, _ := s.ExpireLeases(clock.Now()) // the store's timer does this without ManualLeaseExpiry
	kvs, rev, _ := s.Range([]byte("lock"), nil, 0, 0)
	fmt.Println(n, "expired; lock held:", len(kvs) == 1, "at revision", rev)
	// Output:
	// lease 1: 10 s left, keys ["lock"]
	// 1 expired; lock held: false at revision 3
}
