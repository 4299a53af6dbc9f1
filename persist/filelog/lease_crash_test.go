package filelog_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/persist/filelog"
	"github.com/revkv/revkv/persist/memfs"
)

// leaseOp is one step of a lease workload, run at clock time at.
type leaseOp struct {
	kind string // grant, keepalive, revoke, expire, put, del, commit
	id   int64  // lease
	ttl  int64
	key  string
	at   time.Time
	// states are the reference states (see leaseState) it goes through,
	// the last the one it ends in: an expiry revokes each due lease in a
	// durable step of its own.
	states []string
}

// leaseState renders what a store holds that a lease workload changes:
// its hash and revision, its leases with their TTLs, deadlines and keys,
// and its live keys with their leases.
func leaseState(s *engine.Store) (string, error) {
	h, err := s.HashByRev(0)
	if err != nil {
		return "", err
	}
	ls, err := s.Leases()
	if err != nil {
		return "", err
	}
	out := fmt.Sprintf("%+v", h)
	for _, l := range ls {
		st, err := s.TimeToLive(l.ID, true)
		if err != nil {
			return "", err
		}
		out += fmt.Sprintf(" lease %d ttl %d due %d keys %q;", l.ID, l.TTL, l.Deadline.UnixNano(), st.Keys)
	}
	kvs, _, err := s.Range([]byte{0}, []byte{}, 0, 0)
	if err != nil {
		return "", err
	}
	for _, kv := range kvs {
		out += fmt.Sprintf(" %s@%d/%d", kv.Key, kv.ModRevision, kv.Lease)
	}
	return out, nil
}

var leaseEpoch = time.Unix(1_800_000_000, 0)

func openLeaseStore(fsys *memfs.FS, opts filelog.Options, c engine.Clock) (*engine.Store, error) {
	opts.FS = fsys
	l, err := filelog.Open("db", opts)
	if err != nil {
		return nil, err
	}
	return engine.Open(l, engine.Options{Clock: c, ManualLeaseExpiry: true})
}

// genLeaseWorkload draws n ops valid against a reference store: grants
// of free caller-chosen IDs, renewals, revokes, expiries (the clock moves
// 1-3 s before each), puts with and without leases, deletes, commits.
func genLeaseWorkload(t testing.TB, seed uint64, n int) (ops []leaseOp, initial string) {
	rng := rand.New(rand.NewPCG(seed, seed^0x1ea5e))
	c := engine.NewManualClock(leaseEpoch)
	ref, _ := engine.Open(nil, engine.Options{Clock: c, ManualLeaseExpiry: true})
	defer ref.Close()
	initial, _ = leaseState(ref)
	live := func() []int64 {
		ls, _ := ref.Leases()
		var ids []int64
		for _, l := range ls {
			if l.Deadline.After(c.Now()) {
				ids = append(ids, l.ID)
			}
		}
		return ids
	}
	for len(ops) < n {
		o := leaseOp{key: fmt.Sprintf("k%d", rng.IntN(8))}
		ids := live()
		switch r := rng.IntN(20); {
		case r < 4:
			o.kind, o.id, o.ttl = "grant", 1+rng.Int64N(6), 1+rng.Int64N(8)
			if _, err := ref.TimeToLive(o.id, false); err == nil {
				continue // taken
			}
		case r < 6 && len(ids) > 0:
			o.kind, o.id = "keepalive", ids[rng.IntN(len(ids))]
		case r < 8 && len(ids) > 0:
			o.kind, o.id = "revoke", ids[rng.IntN(len(ids))]
		case r < 10:
			o.kind = "expire"
			c.Advance(time.Duration(1+rng.IntN(3)) * time.Second)
		case r < 16:
			o.kind = "put"
			if len(ids) > 0 && rng.IntN(3) > 0 {
				o.id = ids[rng.IntN(len(ids))]
			}
		case r < 18:
			o.kind = "del"
		default:
			o.kind = "commit"
		}
		o.at = c.Now()
		steps := []leaseOp{o}
		if o.kind == "expire" {
			// The reference expires as a replicated store would: revokes
			// of what ExpiredLeases lists, in its order.
			steps = nil
			for _, id := range ref.ExpiredLeases(o.at) {
				steps = append(steps, leaseOp{kind: "revoke", id: id})
			}
		}
		for _, step := range steps {
			if err := applyLease(ref, step); err != nil {
				t.Fatalf("reference: %+v: %v", step, err)
			}
			st, err := leaseState(ref)
			if err != nil {
				t.Fatal(err)
			}
			o.states = append(o.states, st)
		}
		if len(o.states) == 0 { // nothing was due: the state stays
			prev := initial
			if n := len(ops); n > 0 {
				prev = ops[n-1].states[len(ops[n-1].states)-1]
			}
			o.states = []string{prev}
		}
		ops = append(ops, o)
	}
	return ops, initial
}

func applyLease(s *engine.Store, o leaseOp) error {
	var err error
	switch o.kind {
	case "grant":
		_, err = s.Grant(o.id, o.ttl)
	case "keepalive":
		_, err = s.KeepAlive(o.id)
	case "revoke":
		_, err = s.Revoke(o.id)
	case "expire":
		_, err = s.ExpireLeases(o.at)
	case "put":
		_, err = s.PutLease([]byte(o.key), []byte(o.key), o.id)
	case "del":
		_, _, err = s.DeleteRange([]byte(o.key), nil)
	case "commit":
		err = s.Commit()
	}
	return err
}

// leaseCrashRun runs ops on a fresh memfs that crashes at its k-th file
// operation (k = 0: never), recovers, and checks that the store is in the
// reference state after some op at or past the last durable one (and not
// past the one that failed): every grant, renewal, revoke and expiry that
// was acknowledged durable is there, with its deadline. It returns
// whether the crash point was reached.
func leaseCrashRun(t *testing.T, ops []leaseOp, initial string, opts filelog.Options, k int64) bool {
	t.Helper()
	fs := memfs.New(memfs.Options{Crash: memfs.CrashTorn, Seed: uint64(k)})
	if k > 0 {
		fs.CrashAfter(k)
	}
	c := engine.NewManualClock(leaseEpoch)
	durable, attempted := 0, 0
	s, err := openLeaseStore(fs, opts, c)
	if err == nil {
		for i, o := range ops {
			attempted = i + 1
			c.Set(o.at)
			if err = applyLease(s, o); err != nil {
				break
			}
			if opts.Sync == filelog.SyncAlways || o.kind == "commit" {
				durable = i + 1
			}
		}
		s.Close()
	}
	if k > 0 && err == nil {
		return false
	}
	fs.Crash()
	s, err = openLeaseStore(fs, opts, c)
	if err != nil {
		t.Fatalf("crash at op %d: reopen: %v", k, err)
	}
	defer s.Close()
	got, err := leaseState(s)
	if err != nil {
		t.Fatal(err)
	}
	last := func(i int) string { // the state after ops[:i]
		if i == 0 {
			return initial
		}
		st := ops[i-1].states
		return st[len(st)-1]
	}
	allowed := []string{last(durable)}
	for _, o := range ops[durable:attempted] {
		allowed = append(allowed, o.states...)
	}
	if !slices.Contains(allowed, got) {
		t.Fatalf("crash at op %d (%d ops durable, %d attempted): recovered\n%s\nwhich is no reference state in that span; the last durable one is\n%s",
			k, durable, attempted, got, last(durable))
	}
	return true
}

// TestLeaseCrashSweep crashes lease workloads at every file operation,
// with torn writes, under both sync policies, and checks each recovery.
func TestLeaseCrashSweep(t *testing.T) {
	total := 0
	for _, tc := range []struct {
		name  string
		sync  filelog.SyncPolicy
		seeds int
	}{
		{"always", filelog.SyncAlways, 8},
		{"none", filelog.SyncNone, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := tiny
			opts.Sync = tc.sync
			points := 0
			for seed := range uint64(tc.seeds) {
				ops, initial := genLeaseWorkload(t, seed, 60)
				leaseCrashRun(t, ops, initial, opts, 0)
				for k := int64(1); leaseCrashRun(t, ops, initial, opts, k); k++ {
					points++
				}
			}
			t.Logf("%d crash points", points)
			total += points
		})
	}
	if total < 800 {
		t.Errorf("swept %d crash points, want at least 800", total)
	}
}
