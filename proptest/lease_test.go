package proptest_test

import (
	"time"

	"testing"

	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/persist/filelog"
	"github.com/revkv/revkv/persist/memfs"
	"github.com/revkv/revkv/proptest"
)

// funcClock is an engine.Clock that reads the state machine's time; its
// timers never fire (the stores expire leases only when told).
type funcClock func() time.Time

func (c funcClock) Now() time.Time                       { return c() }
func (c funcClock) After(time.Duration) <-chan time.Time { return nil }

// leaseStore adapts *engine.Store to proptest.LeaseKV.
type leaseStore struct{ store }

func (s leaseStore) Grant(id, ttl int64) (int64, error) {
	l, err := s.Store.Grant(id, ttl)
	return l.ID, err
}

func (s leaseStore) TimeToLive(id int64) (proptest.LeaseStatus, error) {
	st, err := s.Store.TimeToLive(id, true)
	return proptest.LeaseStatus{ID: st.ID, TTL: st.TTL, GrantedTTL: st.GrantedTTL, Keys: st.Keys}, err
}

func (s leaseStore) Leases() ([]int64, error) {
	ls, err := s.Store.Leases()
	var ids []int64
	for _, l := range ls {
		ids = append(ids, l.ID)
	}
	return ids, err
}

func leaseOptions(clock func() time.Time) engine.Options {
	return engine.Options{Clock: funcClock(clock), ManualLeaseExpiry: true}
}

func TestEngineLeases(t *testing.T) {
	st := proptest.CheckLeases(t, func(clock func() time.Time) (proptest.LeaseKV, error) {
		return leaseStore{store{memory(leaseOptions(clock))}}, nil
	})
	t.Logf("%d runs, %d actions", st.Runs, st.Actions)
	if rapidChecks() == "150" && st.Actions < minActions {
		t.Errorf("ran %d actions, want at least %d", st.Actions, minActions)
	}
}

// TestEngineLeasesOnFilelog is TestEngineLeases on filelog (memfs, tiny
// segments, a snapshot every 3 revisions).
func TestEngineLeasesOnFilelog(t *testing.T) {
	st := proptest.CheckLeases(t, func(clock func() time.Time) (proptest.LeaseKV, error) {
		l, err := filelog.Open("db", filelog.Options{FS: memfs.New(memfs.Options{}), SegmentSize: 300, SnapshotRevs: 3})
		if err != nil {
			return nil, err
		}
		s, err := engine.Open(l, leaseOptions(clock))
		return leaseStore{store{s}}, err
	})
	t.Logf("%d runs, %d actions", st.Runs, st.Actions)
}
