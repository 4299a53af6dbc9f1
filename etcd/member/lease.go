package member

import (
	"cmp"
	"math"
	"slices"
	"time"

	revkv "github.com/revkv/revkv"
)

// Lease deadlines are leader-local, as in etcd's lessor: the DB holds the
// leases (granted and revoked through the log, the same everywhere), while
// the leader alone keeps the deadlines that decide expiry, renews them on
// KeepAlive (never logged) and proposes a LeaseRevoke for each lease
// whose deadline passed. A new leader starts every lease afresh (a full
// TTL from the moment it won), so that a lease never expires early
// because the previous leader's renewals were not replicated. The DB's
// own deadlines (set when each member applied the grant) are not used for
// expiry: with a consistent index the DB never expires leases by itself,
// and its KeepAlive is a log write (skipped by the index check).
type leaderLeases struct {
	// deadline of each live lease, in ns since 1970; nil unless leader.
	deadline map[int64]int64
	// next is at most the soonest deadline: no lease expires before it.
	next int64
	// revoking holds the tick at which a revoke was proposed, so that one
	// is not proposed on every tick while it commits.
	revoking map[int64]uint64
}

// maxRevokesPerTick bounds the revokes one tick proposes, so that a mass
// expiry does not flood the log at once.
const maxRevokesPerTick = 1000

func deadlineAfter(now time.Time, ttl int64) int64 {
	n := now.UnixNano()
	if ttl > (math.MaxInt64-n)/int64(time.Second) {
		return math.MaxInt64
	}
	return n + ttl*int64(time.Second)
}

// promote starts the leader's table: every live lease due a full TTL from
// now.
func (l *leaderLeases) promote(leases []revkv.Lease, now time.Time) {
	l.deadline = make(map[int64]int64, len(leases))
	l.revoking = map[int64]uint64{}
	l.next = math.MaxInt64
	for _, ls := range leases {
		l.set(ls.ID, deadlineAfter(now, ls.TTL))
	}
}

// demote drops the table: a follower decides no expiry.
func (l *leaderLeases) demote() { *l = leaderLeases{} }

func (l *leaderLeases) leading() bool { return l.deadline != nil }

func (l *leaderLeases) set(id, d int64) {
	l.deadline[id] = d
	l.next = min(l.next, d)
}

// granted records a lease applied while leading.
func (l *leaderLeases) granted(id, ttl int64, now time.Time) {
	if l.leading() {
		l.set(id, deadlineAfter(now, ttl))
	}
}

// revoked forgets a lease revoked by an applied entry.
func (l *leaderLeases) revoked(id int64) {
	if l.leading() {
		delete(l.deadline, id)
		delete(l.revoking, id)
	}
}

// renew renews a live lease, due ttl from now. It reports false for a
// lease that is not live or already due (its revoke is on its way).
func (l *leaderLeases) renew(id, ttl int64, now time.Time) bool {
	d, ok := l.deadline[id]
	if !ok || d <= now.UnixNano() {
		return false
	}
	l.deadline[id] = deadlineAfter(now, ttl)
	return true
}

// expired returns the leases due at now whose revoke is not in flight
// (or was proposed retryTicks or more ago), soonest first, at most
// maxRevokesPerTick, and marks them as being revoked at tick.
func (l *leaderLeases) expired(now time.Time, tick, retryTicks uint64) []int64 {
	n := now.UnixNano()
	if !l.leading() || n < l.next {
		return nil
	}
	type due struct{ id, d int64 }
	var ds []due
	next := int64(math.MaxInt64)
	for id, d := range l.deadline {
		if d > n {
			next = min(next, d)
			continue
		}
		if t, ok := l.revoking[id]; ok && tick-t < retryTicks {
			next = min(next, d) // look again at the retry
			continue
		}
		ds = append(ds, due{id, d})
	}
	l.next = next
	// Map order is random: sort, so that the proposals are deterministic.
	slices.SortFunc(ds, func(a, b due) int {
		if c := cmp.Compare(a.d, b.d); c != 0 {
			return c
		}
		return cmp.Compare(a.id, b.id)
	})
	if len(ds) > maxRevokesPerTick {
		ds = ds[:maxRevokesPerTick]
		l.next = math.MinInt64 // more are due
	}
	ids := make([]int64, len(ds))
	for i, x := range ds {
		ids[i] = x.id
		l.revoking[x.id] = tick
	}
	return ids
}

// remaining returns the seconds lease id has left on the leader's table.
func (l *leaderLeases) remaining(id int64, now time.Time) (int64, bool) {
	d, ok := l.deadline[id]
	if !ok {
		return 0, false
	}
	return max(d-now.UnixNano(), 0) / int64(time.Second), true
}

// systemClock is the wall clock, for a Config without a Clock.
type systemClock struct{}

func (systemClock) Now() time.Time                         { return time.Now() }
func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
