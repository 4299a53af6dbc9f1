package proptest

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/revkv/revkv/kv"
)

// The model's leases. Time is an argument (now), not a clock the model
// reads: the state machine owns the clock and hands the same time to the
// model and to the KVs. The keys attached to a lease are not kept: they
// are the keys whose live KeyValue has the lease's ID, read off the
// current key space.

// modelLeases is the model's lease table.
type modelLeases struct {
	byID   map[int64]modelLease
	lastID int64 // highest ID granted: server-chosen IDs go on above it
}

type modelLease struct {
	ttl      int64 // granted, seconds
	deadline int64 // ns since 1970
}

// LeaseStatus is what the model's TimeToLive reports, as
// engine.LeaseStatus does.
type LeaseStatus struct {
	ID         int64
	TTL        int64 // whole seconds left, 0 once due
	GrantedTTL int64
	Keys       [][]byte // in key order
}

// String formats the status as "lease ID: TTL s of GrantedTTL, keys [...]".
func (s LeaseStatus) String() string {
	return fmt.Sprintf("lease %d: %d s of %d, keys %q", s.ID, s.TTL, s.GrantedTTL, s.Keys)
}

func (m *Model) leaseTable() *modelLeases {
	if m.leases == nil {
		m.leases = &modelLeases{byID: map[int64]modelLease{}}
	}
	return m.leases
}

// checkLease is what a put with a lease checks: 0 or a live lease.
func (m *Model) checkLease(id int64) error {
	if id == 0 {
		return nil
	}
	if _, ok := m.leaseTable().byID[id]; !ok {
		return kv.ErrLeaseNotFound
	}
	return nil
}

// Grant grants a lease at time now: id 0 chooses the next ID above every
// one granted so far (the engine's rule), a taken id is ErrLeaseExists, a
// negative one ErrLeaseNotFound; ttl below 1 is 1, above kv.MaxLeaseTTL
// ErrLeaseTTLTooLarge. It returns the lease's ID and deadline.
func (m *Model) Grant(id, ttl int64, now time.Time) (int64, time.Time, error) {
	lt := m.leaseTable()
	switch {
	case id < 0:
		return 0, time.Time{}, kv.ErrLeaseNotFound
	case ttl > kv.MaxLeaseTTL:
		return 0, time.Time{}, kv.ErrLeaseTTLTooLarge
	}
	ttl = max(ttl, 1)
	if id == 0 {
		for id = lt.lastID + 1; ; id++ {
			if _, taken := lt.byID[id]; !taken {
				break
			}
		}
	} else if _, ok := lt.byID[id]; ok {
		return 0, time.Time{}, kv.ErrLeaseExists
	}
	l := modelLease{ttl: ttl, deadline: deadline(now, ttl)}
	lt.byID[id] = l
	lt.lastID = max(lt.lastID, id)
	return id, time.Unix(0, l.deadline), nil
}

func deadline(now time.Time, ttl int64) int64 {
	n := now.UnixNano()
	if ttl > (math.MaxInt64-n)/int64(time.Second) {
		return math.MaxInt64
	}
	return n + ttl*int64(time.Second)
}

// KeepAlive renews a live lease that is not yet due to its full TTL,
// and returns the TTL; otherwise ErrLeaseNotFound.
func (m *Model) KeepAlive(id int64, now time.Time) (int64, error) {
	lt := m.leaseTable()
	l, ok := lt.byID[id]
	if !ok || l.deadline <= now.UnixNano() {
		return 0, kv.ErrLeaseNotFound
	}
	l.deadline = deadline(now, l.ttl)
	lt.byID[id] = l
	return l.ttl, nil
}

// leaseKeys returns the live keys with lease id, in key order.
func (m *Model) leaseKeys(id int64) [][]byte {
	var keys [][]byte
	for _, k := range slices.Sorted(maps.Keys(m.states[m.Rev()])) {
		if m.states[m.Rev()][k].Lease == id {
			keys = append(keys, []byte(k))
		}
	}
	return keys
}

// Revoke removes a live lease and deletes its keys at one new revision
// (none if it has no keys), and returns the current revision after.
func (m *Model) Revoke(id int64) (int64, error) {
	lt := m.leaseTable()
	if _, ok := lt.byID[id]; !ok {
		return 0, kv.ErrLeaseNotFound
	}
	delete(lt.byID, id)
	keys := m.leaseKeys(id)
	if len(keys) == 0 {
		return m.Rev(), nil
	}
	space := maps.Clone(m.states[m.Rev()])
	var evs []kv.Event
	for _, k := range keys {
		evs = append(evs, del(space, k, nil, m.Rev()+1, int64(len(evs)))...)
	}
	m.commit(space, evs)
	return m.Rev(), nil
}

// TimeToLive reports a live lease at time now.
func (m *Model) TimeToLive(id int64, now time.Time) (LeaseStatus, error) {
	l, ok := m.leaseTable().byID[id]
	if !ok {
		return LeaseStatus{}, kv.ErrLeaseNotFound
	}
	left := max(l.deadline-now.UnixNano(), 0)
	return LeaseStatus{ID: id, TTL: left / int64(time.Second), GrantedTTL: l.ttl, Keys: m.leaseKeys(id)}, nil
}

// Leases returns the live leases' IDs in order.
func (m *Model) Leases() []int64 {
	return slices.Sorted(maps.Keys(m.leaseTable().byID))
}

// ExpiredLeases returns the leases due at now, soonest first (ties by ID).
func (m *Model) ExpiredLeases(now time.Time) []int64 {
	var ids []int64
	for id, l := range m.leaseTable().byID {
		if l.deadline <= now.UnixNano() {
			ids = append(ids, id)
		}
	}
	byID := m.leaseTable().byID
	slices.SortFunc(ids, func(a, b int64) int {
		return cmp.Or(cmp.Compare(byID[a].deadline, byID[b].deadline), cmp.Compare(a, b))
	})
	return ids
}

// ExpireLeases revokes every lease due at now, soonest first, and returns
// how many.
func (m *Model) ExpireLeases(now time.Time) int {
	ids := m.ExpiredLeases(now)
	for _, id := range ids {
		m.Revoke(id)
	}
	return len(ids)
}
