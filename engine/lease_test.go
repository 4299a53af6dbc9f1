package engine

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/revkv/revkv/internal/leaktest"
	"github.com/revkv/revkv/kv"
	"github.com/revkv/revkv/persist/filelog"
	"github.com/revkv/revkv/persist/memfs"
)

var epoch = time.Unix(1_800_000_000, 0)

// leaseStore returns a store on a manual clock that expires leases only
// when told.
func leaseStore(t *testing.T) (*Store, *ManualClock) {
	t.Helper()
	c := NewManualClock(epoch)
	s := newStore(Options{Clock: c, ManualLeaseExpiry: true})
	t.Cleanup(func() { s.Close() })
	return s, c
}

func mustGrant(t tb, s *Store, id, ttl int64) int64 {
	t.Helper()
	l, err := s.Grant(id, ttl)
	if err != nil {
		t.Fatalf("Grant(%d, %d): %v", id, ttl, err)
	}
	return l.ID
}

func mustPutLease(t tb, s *Store, key string, lease int64) int64 {
	t.Helper()
	rev, err := s.PutLease(b(key), b("v"), lease)
	if err != nil {
		t.Fatalf("PutLease(%q, %d): %v", key, lease, err)
	}
	return rev
}

// leaseKeys returns the keys TimeToLive reports for lease id, or
// "not found".
func leaseKeys(t tb, s *Store, id int64) string {
	t.Helper()
	st, err := s.TimeToLive(id, true)
	if errors.Is(err, kv.ErrLeaseNotFound) {
		return "not found"
	}
	if err != nil {
		t.Fatalf("TimeToLive(%d): %v", id, err)
	}
	return fmt.Sprintf("%q", st.Keys)
}

func TestLeaseGrant(t *testing.T) {
	s, _ := leaseStore(t)
	mustPut(t, s, "x", "1")
	rev := s.Rev()
	tests := []struct {
		name     string
		id, ttl  int64
		wantID   int64
		wantTTL  int64
		wantErr  error
		deadline time.Duration
	}{
		{"server-chosen", 0, 10, 1, 10, nil, 10 * time.Second},
		{"server-chosen again", 0, 5, 2, 5, nil, 5 * time.Second},
		{"caller-chosen", 100, 7, 100, 7, nil, 7 * time.Second},
		{"caller-chosen, taken", 100, 7, 0, 0, kv.ErrLeaseExists, 0},
		{"server-chosen after a caller's", 0, 3, 101, 3, nil, 3 * time.Second},
		{"TTL 0 is 1 s", 5, 0, 5, 1, nil, time.Second},
		{"negative TTL is 1 s", 6, -4, 6, 1, nil, time.Second},
		{"negative ID", -1, 10, 0, 0, kv.ErrLeaseNotFound, 0},
		{"TTL too large", 7, MaxLeaseTTL + 1, 0, 0, kv.ErrLeaseTTLTooLarge, 0},
		{"largest TTL", 8, MaxLeaseTTL, 8, MaxLeaseTTL, nil, -1},
	}
	for _, tt := range tests {
		l, err := s.Grant(tt.id, tt.ttl)
		wantErr(t, tt.name, err, tt.wantErr)
		if err != nil {
			continue
		}
		if l.ID != tt.wantID || l.TTL != tt.wantTTL {
			t.Errorf("%s: lease %d TTL %d, want %d TTL %d", tt.name, l.ID, l.TTL, tt.wantID, tt.wantTTL)
		}
		if tt.deadline >= 0 && !l.Deadline.Equal(epoch.Add(tt.deadline)) {
			t.Errorf("%s: deadline %v, want %v", tt.name, l.Deadline, epoch.Add(tt.deadline))
		}
	}
	if s.Rev() != rev {
		t.Fatalf("grants moved the revision from %d to %d", rev, s.Rev())
	}
	ls, err := s.Leases()
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, l := range ls {
		ids = append(ids, l.ID)
	}
	if want := []int64{1, 2, 5, 6, 8, 100, 101}; !slices.Equal(ids, want) {
		t.Fatalf("Leases() = %v, want %v", ids, want)
	}
}

// TestLeaseUnknown: puts with a lease that is not live are refused and
// write nothing; so are keep-alives, revokes and TimeToLive.
func TestLeaseUnknown(t *testing.T) {
	s, _ := leaseStore(t)
	mustPut(t, s, "a", "1")
	_, err := s.PutLease(b("a"), b("2"), 5)
	wantErr(t, "PutLease with lease 5", err, kv.ErrLeaseNotFound)
	if kvs, rev, _ := s.Range(b("a"), nil, 0, 0); rev != 2 || string(kvs[0].Value) != "1" {
		t.Fatalf("refused put wrote: %v at %d", keysOf(kvs), rev)
	}
	// In a txn the refused put poisons it (a failed write aborts the
	// whole txn): nothing it wrote is applied.
	id, _ := s.TxnBegin()
	if _, err := s.TxnPut(id, b("c"), b("1")); err != nil {
		t.Fatal(err)
	}
	_, err = s.TxnPutLease(id, b("b"), b("1"), 5)
	wantErr(t, "TxnPutLease with lease 5", err, kv.ErrLeaseNotFound)
	wantErr(t, "TxnEnd after a refused put", s.TxnEnd(id), kv.ErrTxnFailed)
	if kvs, rev, _ := s.Range(b("a"), []byte{}, 0, 0); rev != 2 || len(kvs) != 1 {
		t.Fatalf("after the aborted txn: %v at %d, want a at 2", keysOf(kvs), rev)
	}
	_, err = s.KeepAlive(5)
	wantErr(t, "KeepAlive(5)", err, kv.ErrLeaseNotFound)
	_, err = s.Revoke(5)
	wantErr(t, "Revoke(5)", err, kv.ErrLeaseNotFound)
	_, err = s.TimeToLive(5, false)
	wantErr(t, "TimeToLive(5)", err, kv.ErrLeaseNotFound)
	_, err = s.PutLease(b("a"), b("2"), -3)
	wantErr(t, "PutLease with lease -3", err, kv.ErrLeaseNotFound)
}

// TestLeaseAttach: a put attaches its key to its lease, a put to another
// lease (or none) moves it, a delete detaches it.
func TestLeaseAttach(t *testing.T) {
	s, _ := leaseStore(t)
	l1, l2 := mustGrant(t, s, 0, 60), mustGrant(t, s, 0, 60)
	steps := []struct {
		do     func()
		l1, l2 string
	}{
		{func() { mustPutLease(t, s, "a", l1); mustPutLease(t, s, "b", l1) }, `["a" "b"]`, `[]`},
		{func() { mustPutLease(t, s, "a", l2) }, `["b"]`, `["a"]`},
		{func() { mustPutLease(t, s, "a", l2) }, `["b"]`, `["a"]`},
		{func() { mustPutLease(t, s, "b", 0) }, `[]`, `["a"]`},
		{func() { s.DeleteRange(b("a"), nil) }, `[]`, `[]`},
		{func() {
			id, _ := s.TxnBegin()
			s.TxnPutLease(id, b("c"), nil, l1)
			s.TxnPutLease(id, b("c"), nil, l2)
			s.TxnPutLease(id, b("d"), nil, l1)
			s.TxnDeleteRange(id, b("d"), nil)
			s.TxnEnd(id)
		}, `[]`, `["c"]`},
	}
	for i, st := range steps {
		st.do()
		if g1, g2 := leaseKeys(t, s, l1), leaseKeys(t, s, l2); g1 != st.l1 || g2 != st.l2 {
			t.Fatalf("step %d: lease 1 has %s, lease 2 %s; want %s and %s", i, g1, g2, st.l1, st.l2)
		}
	}
	// Revoking lease 1 leaves b (moved off it) alone.
	rev := s.Rev()
	if got, err := s.Revoke(l1); err != nil || got != rev {
		t.Fatalf("Revoke of a lease with no keys = %d, %v; want %d (no new revision)", got, err, rev)
	}
	if kvs, _, _ := s.Range(b("b"), nil, 0, 0); len(kvs) != 1 {
		t.Fatal("revoke deleted a key that had moved off the lease")
	}
}

// TestLeaseRevoke: a revoke deletes every attached key at one new
// revision, and the deletes are events in the history.
func TestLeaseRevoke(t *testing.T) {
	s, _ := leaseStore(t)
	l := mustGrant(t, s, 0, 60)
	other := mustGrant(t, s, 0, 60)
	mustPutLease(t, s, "b", l)
	mustPutLease(t, s, "a", l)
	mustPutLease(t, s, "c", other)
	mustPut(t, s, "d", "1")
	before := s.Rev()
	rev, err := s.Revoke(l)
	if err != nil || rev != before+1 {
		t.Fatalf("Revoke = %d, %v; want %d", rev, err, before+1)
	}
	kvs, _, _ := s.Range(b("a"), []byte{}, 0, 0)
	if got := fmt.Sprint(keysOf(kvs)); got != "[c=v d=1]" {
		t.Fatalf("after revoke: %s", got)
	}
	v, _ := s.View()
	var evs []string
	for ev, err := range v.Events(rev) {
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, fmt.Sprintf("%s %s %d.%d", ev.Type, ev.KV.Key, ev.KV.ModRevision, ev.Sub))
	}
	want := fmt.Sprint([]string{fmt.Sprintf("DELETE a %d.0", rev), fmt.Sprintf("DELETE b %d.1", rev)})
	if fmt.Sprint(evs) != want {
		t.Fatalf("events %v, want %s", evs, want)
	}
	if got := leaseKeys(t, s, l); got != "not found" {
		t.Fatalf("revoked lease: %s", got)
	}
	_, err = s.Revoke(l)
	wantErr(t, "second revoke", err, kv.ErrLeaseNotFound)
	_, err = s.PutLease(b("a"), nil, l)
	wantErr(t, "put with a revoked lease", err, kv.ErrLeaseNotFound)
}

// TestLeaseKeepAlive: TimeToLive counts down on the clock; KeepAlive
// renews to the full TTL without a revision; a lease past its deadline
// cannot be renewed.
func TestLeaseKeepAlive(t *testing.T) {
	s, c := leaseStore(t)
	l := mustGrant(t, s, 0, 10)
	mustPutLease(t, s, "k", l)
	rev := s.Rev()
	ttl := func() int64 {
		st, err := s.TimeToLive(l, false)
		if err != nil {
			t.Fatal(err)
		}
		if st.GrantedTTL != 10 || st.Keys != nil {
			t.Fatalf("TimeToLive = %+v", st)
		}
		return st.TTL
	}
	steps := []struct {
		advance time.Duration
		renew   bool
		want    int64
	}{
		{0, false, 10},
		{4 * time.Second, false, 6},
		{500 * time.Millisecond, false, 5}, // 5.5 s left: whole seconds
		{0, true, 10},
		{9 * time.Second, false, 1},
		{999 * time.Millisecond, false, 0},
	}
	for i, st := range steps {
		c.Advance(st.advance)
		if st.renew {
			if got, err := s.KeepAlive(l); err != nil || got != 10 {
				t.Fatalf("step %d: KeepAlive = %d, %v", i, got, err)
			}
		}
		if got := ttl(); got != st.want {
			t.Fatalf("step %d: TTL %d, want %d", i, got, st.want)
		}
	}
	c.Advance(time.Millisecond) // due
	if got := ttl(); got != 0 {
		t.Fatalf("due lease: TTL %d", got)
	}
	_, err := s.KeepAlive(l)
	wantErr(t, "KeepAlive of a due lease", err, kv.ErrLeaseNotFound)
	if s.Rev() != rev {
		t.Fatalf("keep-alives moved the revision from %d to %d", rev, s.Rev())
	}
}

// TestLeaseExpiry: on a manual clock, ExpiredLeases lists the due leases
// and ExpireLeases deletes each one's keys at one revision of its own.
func TestLeaseExpiry(t *testing.T) {
	s, c := leaseStore(t)
	l1, l2, l3 := mustGrant(t, s, 0, 5), mustGrant(t, s, 0, 3), mustGrant(t, s, 0, 10)
	mustPutLease(t, s, "a", l1)
	mustPutLease(t, s, "b", l1)
	mustPutLease(t, s, "c", l3)
	start := s.Rev()
	c.Advance(4 * time.Second)
	if got := s.ExpiredLeases(c.Now()); !slices.Equal(got, []int64{l2}) {
		t.Fatalf("ExpiredLeases at 4 s = %v, want [%d]", got, l2)
	}
	c.Advance(time.Second) // 5 s: l1 is due, at its deadline
	if got := s.ExpiredLeases(c.Now()); !slices.Equal(got, []int64{l2, l1}) {
		t.Fatalf("ExpiredLeases at 5 s = %v, want [%d %d], soonest first", got, l2, l1)
	}
	n, err := s.ExpireLeases(c.Now())
	if err != nil || n != 2 {
		t.Fatalf("ExpireLeases = %d, %v", n, err)
	}
	if s.Rev() != start+1 {
		t.Fatalf("revision %d after expiry, want %d: l2 had no keys, l1's two go at one revision", s.Rev(), start+1)
	}
	v, _ := s.View()
	var evs []string
	for ev, err := range v.Events(start + 1) {
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, fmt.Sprintf("%s %s@%d", ev.Type, ev.KV.Key, ev.KV.ModRevision))
	}
	if got, want := fmt.Sprint(evs), fmt.Sprintf("[DELETE a@%d DELETE b@%d]", start+1, start+1); got != want {
		t.Fatalf("events %s, want %s", got, want)
	}
	ls, _ := s.Leases()
	if len(ls) != 1 || ls[0].ID != l3 {
		t.Fatalf("leases after expiry %v", ls)
	}
	if n, _ := s.ExpireLeases(c.Now()); n != 0 {
		t.Fatalf("second ExpireLeases expired %d", n)
	}
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestLeaseExpiryTimer: without ManualLeaseExpiry, the store's timer
// expires leases as its clock passes their deadlines; Close stops it.
func TestLeaseExpiryTimer(t *testing.T) {
	c := NewManualClock(epoch)
	s := newStore(Options{Clock: c})
	if s.exp != nil {
		t.Fatal("a store without leases runs a timer")
	}
	l := mustGrant(t, s, 0, 5)
	mustPutLease(t, s, "a", l)
	l2 := mustGrant(t, s, 0, 2) // sooner: the timer must re-arm for it
	mustPutLease(t, s, "b", l2)
	c.Advance(3 * time.Second)
	waitFor(t, "lease 2 to expire", func() bool { kvs, _, _ := s.Range(b("b"), nil, 0, 0); return len(kvs) == 0 })
	if kvs, _, _ := s.Range(b("a"), nil, 0, 0); len(kvs) != 1 {
		t.Fatal("lease 1 expired early")
	}
	s.KeepAlive(l) // due at 8 s now
	c.Advance(3 * time.Second)
	time.Sleep(10 * time.Millisecond)
	if kvs, _, _ := s.Range(b("a"), nil, 0, 0); len(kvs) != 1 {
		t.Fatal("renewed lease expired at its old deadline")
	}
	c.Advance(3 * time.Second)
	waitFor(t, "lease 1 to expire", func() bool { kvs, _, _ := s.Range(b("a"), nil, 0, 0); return len(kvs) == 0 })
	exp := s.exp
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exp.done:
	default:
		t.Fatal("the expiry goroutine outlived Close")
	}
}

// TestLeaseSnapshotLoad: a snapshot carries leases with their deadlines;
// the loaded store has what was left of each lease's time, and its keys
// attached again.
func TestLeaseSnapshotLoad(t *testing.T) {
	s, c := leaseStore(t)
	l1, l2 := mustGrant(t, s, 0, 10), mustGrant(t, s, 40, 100)
	mustPutLease(t, s, "a", l1)
	mustPutLease(t, s, "b", l2)
	mustPutLease(t, s, "c", l2)
	c.Advance(4 * time.Second)
	var buf bytes.Buffer
	sn, _ := s.Snapshot()
	if _, err := sn.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	c.Advance(2 * time.Second) // time passes while the store is down
	got, err := loadStore(&buf, Options{Clock: c, ManualLeaseExpiry: true})
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	for _, tt := range []struct {
		id, ttl int64
		keys    string
	}{{l1, 4, `["a"]`}, {l2, 94, `["b" "c"]`}} {
		st, err := got.TimeToLive(tt.id, true)
		if err != nil || st.TTL != tt.ttl || fmt.Sprintf("%q", st.Keys) != tt.keys {
			t.Fatalf("lease %d after load: %+v, %v; want TTL %d keys %s", tt.id, st, err, tt.ttl, tt.keys)
		}
	}
	if id := mustGrant(t, got, 0, 1); id != 41 {
		t.Fatalf("new lease after load got ID %d, want 41", id)
	}
	if _, err := got.Revoke(l2); err != nil {
		t.Fatal(err)
	}
	if kvs, _, _ := got.Range(b("a"), []byte{}, 0, 0); fmt.Sprint(keysOf(kvs)) != "[a=v]" {
		t.Fatalf("after revoke on the loaded store: %v", keysOf(kvs))
	}
}

func openLeaseLog(t *testing.T, fs *memfs.FS, c Clock) *Store {
	t.Helper()
	l, err := filelog.Open("db", filelog.Options{FS: fs, SegmentSize: 300, SnapshotRevs: 4})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(l, Options{Clock: c, ManualLeaseExpiry: true})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestLeasePersist: leases survive close and reopen (and a crash, all
// being synced) on filelog, with small segments and frequent snapshots so
// that both the log and snapshots carry them, and Restore: each keeps its
// remaining TTL, not the full one.
func TestLeasePersist(t *testing.T) {
	fs := memfs.New(memfs.Options{})
	c := NewManualClock(epoch)
	s := openLeaseLog(t, fs, c)
	l1, l2, l3 := mustGrant(t, s, 0, 10), mustGrant(t, s, 0, 30), mustGrant(t, s, 0, 60)
	for i := range 12 {
		mustPutLease(t, s, fmt.Sprintf("k%02d", i), []int64{0, l1, l2, l3}[i%4])
	}
	c.Advance(5 * time.Second)
	if _, err := s.KeepAlive(l2); err != nil { // l2: due at 35 s
		t.Fatal(err)
	}
	if _, err := s.Revoke(l3); err != nil {
		t.Fatal(err)
	}
	if err := s.Restore(); err != nil {
		t.Fatal(err)
	}
	check := func(s *Store, when string) {
		t.Helper()
		for _, tt := range []struct {
			id, ttl int64
			keys    string
		}{{l1, 3, `["k01" "k05" "k09"]`}, {l2, 28, `["k02" "k06" "k10"]`}} {
			st, err := s.TimeToLive(tt.id, true)
			if err != nil || st.TTL != tt.ttl || fmt.Sprintf("%q", st.Keys) != tt.keys {
				t.Fatalf("%s: lease %d: %+v, %v; want TTL %d keys %s", when, tt.id, st, err, tt.ttl, tt.keys)
			}
		}
		if _, err := s.TimeToLive(l3, false); !errors.Is(err, kv.ErrLeaseNotFound) {
			t.Fatalf("%s: revoked lease: %v", when, err)
		}
	}
	c.Advance(2 * time.Second)
	check(s, "after Restore")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fs.Crash()
	s = openLeaseLog(t, fs, c)
	check(s, "after reopen")
	n, err := s.ExpireLeases(c.Now().Add(3 * time.Second))
	if err != nil || n != 1 {
		t.Fatalf("ExpireLeases = %d, %v", n, err)
	}
	rev := s.Rev()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openLeaseLog(t, fs, c)
	defer s.Close()
	if s.Rev() != rev || leaseKeys(t, s, l1) != "not found" {
		t.Fatalf("expiry did not survive a reopen: rev %d (want %d), lease 1 %s", s.Rev(), rev, leaseKeys(t, s, l1))
	}
	// Lease 3, the highest ever granted, was revoked: its ID is not
	// handed out again after the restarts.
	if id := mustGrant(t, s, 0, 5); id != l3+1 {
		t.Fatalf("new lease after reopen got ID %d, want %d", id, l3+1)
	}
}

// TestLeaseRace runs the expiry timer, puts to leases, grants, renewals
// and revokes against each other and against Close (go test -race).
func TestLeaseRace(t *testing.T) {
	before := runtime.NumGoroutine()
	for round := range 20 {
		c := NewManualClock(epoch)
		s := newStore(Options{Clock: c})
		var wg sync.WaitGroup
		stop := make(chan struct{})
		wg.Add(4)
		go func() { // the clock
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
					c.Advance(300 * time.Millisecond)
					time.Sleep(50 * time.Microsecond)
				}
			}
		}()
		for w := range 2 {
			go func() { // writers: grant, attach, renew, sometimes revoke
				defer wg.Done()
				for i := 0; ; i++ {
					l, err := s.Grant(0, 1)
					if err != nil {
						return // closed
					}
					s.PutLease(b(fmt.Sprintf("w%d/%d", w, i%7)), b("v"), l.ID)
					s.KeepAlive(l.ID)
					if i%3 == 0 {
						s.Revoke(l.ID)
					}
				}
			}()
		}
		go func() { // a reader
			defer wg.Done()
			for {
				if _, err := s.Leases(); err != nil {
					return
				}
				for _, id := range s.ExpiredLeases(c.Now()) {
					s.TimeToLive(id, true)
				}
			}
		}()
		time.Sleep(time.Duration(2+round%3) * time.Millisecond)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		close(stop)
		wg.Wait()
		if s.exp != nil {
			select {
			case <-s.exp.done:
			default:
				t.Fatal("the expiry goroutine outlived Close")
			}
		}
	}
	if n := leaktest.Settle(before); n > before {
		t.Fatalf("%d goroutines after the stores closed, %d before", n, before)
	}
}

// leaseSnapshot is a FuzzLoad seed: a snapshot with leases, keys attached
// to them, a key whose lease was revoked, and a compaction.
func leaseSnapshot(t tb) []byte {
	c := NewManualClock(epoch)
	s := newStore(Options{Clock: c, ManualLeaseExpiry: true})
	defer s.Close()
	l1, _ := s.Grant(0, 10)
	l2, _ := s.Grant(9, 20)
	s.PutLease(b("a"), b("1"), l1.ID)
	s.PutLease(b("b"), b("2"), l2.ID)
	s.PutLease(b("c"), b("3"), l2.ID)
	s.Compact(s.Rev())
	s.Revoke(l1.ID)
	s.Grant(0, 5)
	return snapshotBytes(t, s)
}

// checkLoadedLeases checks a loaded store's leases are usable: each can be
// asked about, renewed and revoked, and the revoke takes its keys.
func checkLoadedLeases(t *testing.T, s *Store) {
	ls, err := s.Leases()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		st, err := s.TimeToLive(l.ID, true)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Revoke(l.ID); err != nil && !errors.Is(err, kv.ErrTooLarge) {
			t.Fatal(err)
		}
		for _, k := range st.Keys {
			if kvs, _, _ := s.Range(k, nil, 0, 0); len(kvs) != 0 {
				t.Fatalf("key %q of revoked lease %d is still there", k, l.ID)
			}
		}
	}
}

// BenchmarkLease: one lease's life: a grant, a put of one key attached to
// it, and its expiry (the key's delete at a revision of its own), on a
// store of 10k other keys and 1k other live leases, in memory.
func BenchmarkLease(b *testing.B) {
	c := NewManualClock(epoch)
	s := newStore(Options{Clock: c, ManualLeaseExpiry: true})
	defer s.Close()
	for i, k := range randomKeys(10_000, 3) {
		if _, err := s.Put(k, value); err != nil {
			b.Fatal(err)
		}
		if i%10 == 0 {
			l, _ := s.Grant(0, MaxLeaseTTL)
			s.PutLease(k, value, l.ID)
		}
	}
	key := []byte("lease/key")
	b.ReportAllocs()
	for b.Loop() {
		l, err := s.Grant(0, 1)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.PutLease(key, value, l.ID); err != nil {
			b.Fatal(err)
		}
		c.Advance(time.Second)
		if n, err := s.ExpireLeases(c.Now()); err != nil || n != 1 {
			b.Fatalf("ExpireLeases = %d, %v", n, err)
		}
	}
}

// TestLeaseConsistentIndex: as a consensus log drives a store, lease
// grants, renewals and revokes record their entry's index, a replayed
// entry is a no-op, a failed one leaves the index as it was, and the
// store runs no expiry timer: expiry is what ExpiredLeases lists, applied
// as revokes. The index survives a reopen with the leases.
func TestLeaseConsistentIndex(t *testing.T) {
	fs := memfs.New(memfs.Options{})
	c := NewManualClock(epoch)
	ci := &index{}
	open := func() *Store {
		l, err := filelog.Open("db", filelog.Options{FS: fs})
		if err != nil {
			t.Fatal(err)
		}
		s, err := Open(l, Options{Clock: c, ConsistentIndex: ci})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open()
	ci.i = 1
	mustGrant(t, s, 7, 5)
	ci.i = 2
	mustPutLease(t, s, "k", 7)
	steps := []struct {
		name  string
		index uint64
		do    func() error
		want  error
		after uint64 // the index after
	}{
		{"replayed grant", 1, func() error { _, err := s.Grant(7, 5); return err }, nil, 2},
		{"grant of a taken ID", 3, func() error { _, err := s.Grant(7, 5); return err }, kv.ErrLeaseExists, 2},
		{"keep-alive", 3, func() error { _, err := s.KeepAlive(7); return err }, nil, 3},
		{"replayed keep-alive", 3, func() error { _, err := s.KeepAlive(7); return err }, nil, 3},
		{"keep-alive of no lease", 4, func() error { _, err := s.KeepAlive(8); return err }, kv.ErrLeaseNotFound, 3},
	}
	for _, st := range steps {
		ci.i = st.index
		wantErr(t, st.name, st.do(), st.want)
		if got := s.ConsistentIndex(); got != st.after {
			t.Fatalf("%s: index %d, want %d", st.name, got, st.after)
		}
	}
	c.Advance(10 * time.Second)
	if s.exp != nil {
		t.Fatal("a store with a consistent index runs an expiry timer")
	}
	due := s.ExpiredLeases(c.Now())
	if !slices.Equal(due, []int64{7}) {
		t.Fatalf("ExpiredLeases = %v", due)
	}
	ci.i = 4
	rev, err := s.Revoke(due[0])
	if err != nil || s.ConsistentIndex() != 4 {
		t.Fatalf("revoke as entry 4: %d, %v, index %d", rev, err, s.ConsistentIndex())
	}
	s.Close()
	s = open()
	defer s.Close()
	if s.ConsistentIndex() != 4 || s.Rev() != rev || leaseKeys(t, s, 7) != "not found" {
		t.Fatalf("after reopen: index %d, rev %d (want %d), lease 7 %s", s.ConsistentIndex(), s.Rev(), rev, leaseKeys(t, s, 7))
	}
	if _, err := s.Revoke(7); err != nil { // entry 4 replayed: a no-op
		t.Fatalf("replayed revoke: %v", err)
	}
}
