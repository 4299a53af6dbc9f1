package proptest

import (
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/revkv/revkv/kv"
	"pgregory.net/rapid"
)

// LeaseKV is a KV with leases, as revkv's engine has them. Its lease
// clock is the one CheckLeases hands to open: the KV must read the time
// from it (for deadlines and remaining TTLs) and expire leases only when
// ExpireLeases is called.
type LeaseKV interface {
	KV
	// Grant grants a lease (id 0: the KV chooses) and returns its ID.
	Grant(id, ttl int64) (int64, error)
	KeepAlive(id int64) (ttl int64, err error)
	Revoke(id int64) (rev int64, err error)
	TimeToLive(id int64) (LeaseStatus, error)
	// Leases returns the live leases' IDs in order.
	Leases() ([]int64, error)
	ExpireLeases(now time.Time) (int, error)
}

// LeaseEpoch is where CheckLeases's clock starts.
var LeaseEpoch = time.Unix(1_800_000_000, 0)

// CheckLeases is Check with leases: besides Check's actions, grants (with
// chosen and KV-chosen IDs, and bad TTLs), keep-alives, revokes, puts
// attached to live leases, TimeToLive and Leases reads, moves of the
// clock, and expiries. open gets the clock the run moves. A KV-chosen ID
// must be the same in both KVs (the same operations give the same IDs)
// and follow the model's rule: the next above every ID granted.
func CheckLeases(t *testing.T, open func(clock func() time.Time) (LeaseKV, error)) Stats {
	t.Helper()
	var runs, actions atomic.Int64
	rapid.Check(t, func(rt *rapid.T) {
		runs.Add(1)
		lm := &leaseMachine{now: LeaseEpoch}
		clock := func() time.Time { return lm.now }
		a, err := open(clock)
		if err != nil {
			rt.Fatalf("open: %v", err)
		}
		b, err := open(clock)
		if err != nil {
			rt.Fatalf("open: %v", err)
		}
		lm.a, lm.b = a, b
		lm.machine = &machine{a: a, b: b, m: NewModel(), keys: keys}
		acts := lm.actions()
		for name, f := range lm.leaseActions() {
			acts[name] = f
		}
		for name, f := range acts {
			if name == "" {
				continue
			}
			acts[name] = func(rt *rapid.T) { actions.Add(1); f(rt) }
		}
		rt.Repeat(acts)
		lm.checkClose(rt)
	})
	return Stats{Runs: int(runs.Load()), Actions: int(actions.Load())}
}

type leaseMachine struct {
	*machine
	a, b LeaseKV
	now  time.Time
}

func (lm *leaseMachine) leaseActions() map[string]func(*rapid.T) {
	return map[string]func(*rapid.T){
		"":           lm.leaseInvariants,
		"grant":      lm.grant,
		"keepAlive":  lm.keepAlive,
		"revoke":     lm.revoke,
		"putLease":   lm.putLease,
		"timeToLive": lm.timeToLive,
		"advance":    lm.advance,
		"expire":     lm.expire,
	}
}

func (lm *leaseMachine) kvs() []LeaseKV { return []LeaseKV{lm.a, lm.b} }

// leaseInvariants are Check's invariants plus: both KVs list the model's
// leases.
func (lm *leaseMachine) leaseInvariants(t *rapid.T) {
	lm.invariants(t)
	want := lm.m.Leases()
	for i, s := range lm.kvs() {
		got, err := s.Leases()
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("KV %d: Leases() = %v, %v; model %v", i, got, err, want)
		}
	}
}

// drawLeaseID draws a live lease (mostly) or an ID that may not be.
func (lm *leaseMachine) drawLeaseID(t *rapid.T) int64 {
	live := lm.m.Leases()
	if len(live) > 0 && rapid.IntRange(0, 3).Draw(t, "liveLease") > 0 {
		return rapid.SampledFrom(live).Draw(t, "lease")
	}
	return rapid.SampledFrom([]int64{-1, 0, 3, 7, 99}).Draw(t, "lease")
}

func (lm *leaseMachine) grant(t *rapid.T) {
	id := rapid.SampledFrom([]int64{0, 0, 3, 7, -2}).Draw(t, "id")
	ttl := rapid.SampledFrom([]int64{-1, 0, 1, 2, 5, 60, kv.MaxLeaseTTL, kv.MaxLeaseTTL + 1}).Draw(t, "ttl")
	want, _, wantErr := lm.m.Grant(id, ttl, lm.now)
	for i, s := range lm.kvs() {
		got, err := s.Grant(id, ttl)
		if !sameErr(err, wantErr) || (wantErr == nil && got != want) {
			t.Fatalf("KV %d: Grant(%d, %d) = %d, %v; model %d, %v", i, id, ttl, got, err, want, wantErr)
		}
	}
}

func (lm *leaseMachine) keepAlive(t *rapid.T) {
	id := lm.drawLeaseID(t)
	want, wantErr := lm.m.KeepAlive(id, lm.now)
	for i, s := range lm.kvs() {
		got, err := s.KeepAlive(id)
		if !sameErr(err, wantErr) || (wantErr == nil && got != want) {
			t.Fatalf("KV %d: KeepAlive(%d) = %d, %v; model %d, %v", i, id, got, err, want, wantErr)
		}
	}
}

func (lm *leaseMachine) revoke(t *rapid.T) {
	id := lm.drawLeaseID(t)
	want, wantErr := lm.m.Revoke(id)
	for i, s := range lm.kvs() {
		got, err := s.Revoke(id)
		if !sameErr(err, wantErr) || (wantErr == nil && got != want) {
			t.Fatalf("KV %d: Revoke(%d) = %d, %v; model %d, %v", i, id, got, err, want, wantErr)
		}
	}
}

// putLease puts a key attached to a (mostly live) lease.
func (lm *leaseMachine) putLease(t *rapid.T) {
	key, value, lease := lm.keys.drawKey(t, "key"), drawValue(t), lm.drawLeaseID(t)
	want, wantErr := lm.m.Put(key, value, lease)
	for i, s := range lm.kvs() {
		got, err := s.PutLease(key, value, lease)
		if !sameErr(err, wantErr) || (wantErr == nil && got != want) {
			t.Fatalf("KV %d: PutLease(%q, %q, %d) = %d, %v; model %d, %v", i, key, value, lease, got, err, want, wantErr)
		}
	}
}

func (lm *leaseMachine) timeToLive(t *rapid.T) {
	id := lm.drawLeaseID(t)
	want, wantErr := lm.m.TimeToLive(id, lm.now)
	for i, s := range lm.kvs() {
		got, err := s.TimeToLive(id)
		if !sameErr(err, wantErr) || (wantErr == nil && got.String() != want.String()) {
			t.Fatalf("KV %d: TimeToLive(%d) = %s, %v; model %s, %v", i, id, got, err, want, wantErr)
		}
	}
}

func (lm *leaseMachine) advance(t *rapid.T) {
	d := rapid.SampledFrom([]time.Duration{0, time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second, 5 * time.Second}).Draw(t, "advance")
	lm.now = lm.now.Add(d)
}

func (lm *leaseMachine) expire(t *rapid.T) {
	want := lm.m.ExpireLeases(lm.now)
	for i, s := range lm.kvs() {
		if got, err := s.ExpireLeases(lm.now); err != nil || got != want {
			t.Fatalf("KV %d: ExpireLeases(%v) = %d, %v; model %d", i, lm.now.Sub(LeaseEpoch), got, err, want)
		}
	}
}
