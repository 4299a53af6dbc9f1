package engine

// Review of issue 12's txn, undo and lease work (see /work/notes/review12.md).

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"reflect"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/revkv/revkv/kv"
	"github.com/revkv/revkv/persist/filelog"
	"github.com/revkv/revkv/persist/memfs"
)

// reviewPair drives two stores: a, which also runs txns that abort (by
// Abort, by ctx, by a failing op of Store.Txn), and b, which runs only what
// commits. Every observable thing must stay the same.
type reviewPair struct {
	t        *testing.T
	r        *rand.Rand
	a, b     *Store
	fa, fb   *fakePersister
	keys     []string
	views    []*View // views of a, taken before aborted txns
	viewsRef []*View // b's views at the same revisions
}

func (p *reviewPair) key() string {
	// The hot key gets about half the writes: long version lists,
	// crossing block boundaries.
	switch p.r.IntN(8) {
	case 0, 1, 2, 3:
		return "m/hot"
	case 4:
		// A key that may be new: outside the main tree's common prefix
		// "m/", so in the side trees (rebuildLimit is low).
		return fmt.Sprintf("%c-%d", 'a'+rune(p.r.IntN(26)), p.r.IntN(50))
	}
	return p.keys[p.r.IntN(len(p.keys))]
}

// ops draws a txn's ops: puts, deletes and range deletes, re-creates.
func (p *reviewPair) ops() []kv.Op {
	n := 1 + p.r.IntN(6)
	var ops []kv.Op
	for range n {
		k := p.key()
		switch p.r.IntN(5) {
		case 0:
			ops = append(ops, kv.DeleteOp(b(k), nil))
		case 1:
			ops = append(ops, kv.DeleteOp(b(k), b(k+"\xff")))
		default:
			ops = append(ops, kv.PutOp(b(k), b(fmt.Sprint(p.r.IntN(1000)))))
		}
	}
	return ops
}

// runTxn runs ops as an interactive txn on s and returns it open.
func runTxn(t *testing.T, s *Store, ctx context.Context, ops []kv.Op) *Txn {
	t.Helper()
	x, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range ops {
		switch op.Type {
		case kv.OpPut:
			_, err = x.Put(op.Key, op.Value, kv.PutOptions{})
		case kv.OpDeleteRange:
			_, err = x.DeleteRange(op.Key, op.End, kv.DeleteOptions{})
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := x.Range(op.Key, nil, RangeOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return x
}

func (p *reviewPair) step() {
	t := p.t
	switch p.r.IntN(10) {
	case 0, 1: // a plain put to both
		k, v := p.key(), fmt.Sprint(p.r.IntN(1000))
		mustPut(t, p.a, k, v)
		mustPut(t, p.b, k, v)
	case 2: // an interactive txn that commits on both
		ops := p.ops()
		for _, s := range []*Store{p.a, p.b} {
			if _, err := runTxn(t, s, context.Background(), ops).Commit(); err != nil {
				t.Fatal(err)
			}
		}
	case 3, 4: // an interactive txn that a aborts
		p.keepView()
		x := runTxn(t, p.a, context.Background(), p.ops())
		if err := x.Abort(); err != nil {
			t.Fatal(err)
		}
	case 5: // aborted by its context
		p.keepView()
		ctx, cancel := context.WithCancel(context.Background())
		x := runTxn(t, p.a, ctx, p.ops())
		cancel()
		for {
			p.a.txnMu.Lock()
			ended := x.t.ended
			p.a.txnMu.Unlock()
			if ended != nil {
				break
			}
			time.Sleep(10 * time.Microsecond)
		}
		if _, err := x.Commit(); !errors.Is(err, kv.ErrTxnEnded) || !errors.Is(err, context.Canceled) {
			t.Fatalf("commit after cancel: %v", err)
		}
	case 6: // a conditional txn whose last op fails: rolled back
		p.keepView()
		ops := append(p.ops(), kv.Op{Type: kv.OpPut, Key: b("missing"), Put: kv.PutOptions{IgnoreValue: true}})
		req := &kv.TxnRequest{Then: dedupe(ops)}
		if _, err := p.a.Txn(context.Background(), req); !errors.Is(err, kv.ErrKeyNotFound) {
			t.Fatalf("failing txn: %v", err)
		}
	case 7: // a conditional txn that applies
		req := &kv.TxnRequest{Then: dedupe(p.ops())}
		ra, errA := p.a.Txn(context.Background(), req)
		rb, errB := p.b.Txn(context.Background(), req)
		if errA != nil || errB != nil || ra.Rev != rb.Rev {
			t.Fatalf("txn: %v %v", errA, errB)
		}
	case 8: // compaction, now and then
		if p.r.IntN(30) == 0 {
			rev := p.a.Rev() - int64(p.r.IntN(5))
			if rev > p.a.CompactRev() {
				errA, errB := p.a.Compact(rev), p.b.Compact(rev)
				if errA != nil || errB != nil {
					t.Fatalf("compact: %v %v", errA, errB)
				}
			}
		}
	case 9: // a new key, to grow fresh and the side trees
		k := fmt.Sprintf("%c-%d", 'a'+rune(p.r.IntN(26)), p.r.IntN(50))
		p.keys = append(p.keys, k)
		mustPut(t, p.a, k, "new")
		mustPut(t, p.b, k, "new")
	}
}

// dedupe drops the writes of ops that etcd's rule would refuse (a key
// written twice in one branch), keeping the first of each key.
func dedupe(ops []kv.Op) []kv.Op {
	var out []kv.Op
	for _, op := range ops {
		if checkTxnWrites(&kv.TxnRequest{Then: append(slices.Clone(out), op)}) == nil {
			out = append(out, op)
		}
	}
	return out
}

func (p *reviewPair) keepView() {
	va, _ := p.a.View()
	vb, _ := p.b.View()
	p.views = append(p.views, va)
	p.viewsRef = append(p.viewsRef, vb)
}

var everything = RangeOptions{}

func (p *reviewPair) check(when string) {
	t := p.t
	t.Helper()
	if p.a.Rev() != p.b.Rev() || p.a.CompactRev() != p.b.CompactRev() {
		t.Fatalf("%s: rev %d/%d compacted %d/%d", when, p.a.Rev(), p.b.Rev(), p.a.CompactRev(), p.b.CompactRev())
	}
	lo := max(p.a.CompactRev(), 1)
	revs := []int64{0, p.a.Rev() - 1, lo}
	for range 3 {
		revs = append(revs, lo+p.r.Int64N(p.a.Rev()-lo+1))
	}
	for _, rev := range revs {
		if rev < lo {
			continue
		}
		opts := everything
		opts.Rev = rev
		ra, errA := p.a.RangeWithOptions(b("\x00"), []byte{}, opts)
		rb, errB := p.b.RangeWithOptions(b("\x00"), []byte{}, opts)
		if !reflect.DeepEqual(ra, rb) || (errA == nil) != (errB == nil) {
			t.Fatalf("%s: range at %d:\n a %v %v\n b %v %v", when, rev, ra, errA, rb, errB)
		}
		// Keys one by one: the lookup path, not the scan.
		for _, k := range p.keys {
			ka, _ := p.a.RangeWithOptions(b(k), nil, opts)
			kb, _ := p.b.RangeWithOptions(b(k), nil, opts)
			if !reflect.DeepEqual(ka, kb) {
				t.Fatalf("%s: get %q at %d:\n a %v\n b %v", when, k, rev, ka, kb)
			}
		}
	}
	for i, va := range p.views {
		vb := p.viewsRef[i]
		ra, errA := va.Range(b("\x00"), []byte{}, everything)
		rb, errB := vb.Range(b("\x00"), []byte{}, everything)
		if !reflect.DeepEqual(ra, rb) || (errA == nil) != (errB == nil) {
			t.Fatalf("%s: view %d at %d:\n a %v %v\n b %v %v", when, i, va.Rev(), ra, errA, rb, errB)
		}
	}
	if len(p.views) > 8 {
		p.views, p.viewsRef = p.views[1:], p.viewsRef[1:]
	}
	for _, rev := range []int64{0, revs[len(revs)-1]} {
		ha, errA := p.a.HashByRev(rev)
		hb, errB := p.b.HashByRev(rev)
		if ha != hb || errA != nil || errB != nil {
			t.Fatalf("%s: hash at %d %v %v, want %v %v", when, rev, ha, errA, hb, errB)
		}
	}
}

// TestReviewAbortDifferential: a store that runs and aborts txns (new keys,
// keys with hundreds of versions, deletes, re-creates in the same txn,
// failing conditional txns, context cancels) between committed writes and
// compactions reads, hashes and logs exactly as one that never ran them;
// views taken before each abort keep reading what they read. The long run:
// REVKV_REVIEW_LONG=1 go test -run TestReviewAbortDifferential ./engine
func TestReviewAbortDifferential(t *testing.T) {
	defer func(n int) { rebuildLimit = n }(rebuildLimit)
	rebuildLimit = 6 // side trees after a few keys
	seeds, steps := uint64(2), 150
	if os.Getenv("REVKV_REVIEW_LONG") != "" {
		seeds, steps = 8, 2000
	}
	for seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			p := &reviewPair{t: t, r: rand.New(rand.NewPCG(seed, 12)), fa: &fakePersister{}, fb: &fakePersister{}}
			var err error
			if p.a, err = Open(p.fa, Options{}); err != nil {
				t.Fatal(err)
			}
			if p.b, err = Open(p.fb, Options{}); err != nil {
				t.Fatal(err)
			}
			// Eight keys with a common prefix, so that later keys without
			// it go to the side trees.
			p.keys = []string{"m/hot", "m/1", "m/2", "m/3", "m/4", "m/5", "m/6", "m/7"}
			for _, k := range p.keys[1:] {
				mustPut(t, p.a, k, "0")
				mustPut(t, p.b, k, "0")
			}
			for i := range blockSize - 6 { // near a block boundary from the start
				mustPut(t, p.a, "m/hot", fmt.Sprint(i))
				mustPut(t, p.b, "m/hot", fmt.Sprint(i))
			}
			maxVers := 0
			for i := range steps {
				p.step()
				if r := p.a.w.keys.lookup(b("m/hot")); r != nil && r.vers.Load() != nil {
					maxVers = max(maxVers, r.vers.Load().len())
				}
				p.check(fmt.Sprintf("step %d", i))
			}
			if x := p.a.w.keys; len(x.parts) < 2 {
				t.Errorf("the index has %d part: keys without the common prefix never started one", len(x.parts))
			}
			if maxVers <= blockSize {
				t.Errorf("the hot key had at most %d versions: no block boundary crossed", maxVers)
			}
			p.fa.mu.Lock()
			p.fb.mu.Lock()
			if !reflect.DeepEqual(p.fa.batches, p.fb.batches) {
				t.Errorf("the log of aborts differs: %d batches, want %d", len(p.fa.batches), len(p.fb.batches))
			}
			p.fa.mu.Unlock()
			p.fb.mu.Unlock()
			p.a.Close()
			p.b.Close()
		})
	}
}

// TestReviewTxnRaces: txns whose contexts are cancelled while they run and
// commit, Aborts racing the cancel, plain writers, and a Close at a random
// moment. Every txn is all or nothing in the log: a Commit that returned a
// revision has exactly its batch there, one that failed has none.
func TestReviewTxnRaces(t *testing.T) {
	for round := range 20 {
		f := &fakePersister{}
		s, err := Open(f, Options{})
		if err != nil {
			t.Fatal(err)
		}
		type outcome struct {
			rev   int64
			value string
		}
		// Not a channel of fixed size: a quiet machine commits thousands
		// of txns before the Close below, and a full channel hung the test.
		var resultsMu sync.Mutex
		var results []outcome
		done := make(chan struct{})
		const workers = 4
		for g := range workers {
			go func() {
				defer func() { done <- struct{}{} }()
				r := rand.New(rand.NewPCG(uint64(round), uint64(g)))
				for i := 0; ; i++ {
					ctx, cancel := context.WithCancel(context.Background())
					x, err := s.Begin(ctx)
					if err != nil {
						cancel()
						if !errors.Is(err, kv.ErrClosed) {
							t.Errorf("Begin: %v", err)
						}
						return
					}
					v := fmt.Sprintf("%d-%d", g, i)
					var putErr error
					for _, k := range []string{"shared", "w" + fmt.Sprint(g), "z"} {
						if _, err := x.Put(b(k), b(v), kv.PutOptions{}); err != nil {
							putErr = err
							break
						}
					}
					mode := r.IntN(4)
					if mode == 0 {
						go cancel()
					}
					var rev int64
					if mode == 1 {
						err = x.Abort()
						if err == nil {
							err = errors.New("aborted")
						}
					} else {
						rev, err = x.Commit()
					}
					cancel()
					switch {
					case err == nil:
						if putErr != nil {
							t.Errorf("commit after a failed put: %v", putErr)
						}
						resultsMu.Lock()
						results = append(results, outcome{rev, v})
						resultsMu.Unlock()
					case errors.Is(err, kv.ErrTxnEnded), errors.Is(err, kv.ErrTxnFailed), err.Error() == "aborted":
					default:
						t.Errorf("commit: %v", err)
					}
				}
			}()
		}
		time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
		s.Close()
		for range workers {
			<-done
		}
		committed := map[int64]string{}
		for _, o := range results {
			committed[o.rev] = o.value
		}
		f.mu.Lock()
		logged := map[int64]string{}
		for _, bt := range f.batches {
			if len(bt.Changes) != 3 {
				t.Fatalf("batch at %d has %d changes", bt.Rev, len(bt.Changes))
			}
			v := string(bt.Changes[0].Value)
			for _, c := range bt.Changes {
				if string(c.Value) != v {
					t.Fatalf("batch at %d mixes txns: %v", bt.Rev, bt.Changes)
				}
			}
			logged[bt.Rev] = v
		}
		f.mu.Unlock()
		if !reflect.DeepEqual(committed, logged) {
			t.Fatalf("round %d: committed %v, logged %v", round, committed, logged)
		}
	}
}

// TestReviewLeaseAttachAbort: a txn that puts keys with leases and aborts
// (Abort, its context, a failing op of Store.Txn) attaches nothing and
// detaches nothing: revoking the lease it named deletes nothing of it,
// and the lease the key had still owns it.
func TestReviewLeaseAttachAbort(t *testing.T) {
	s := newStore(Options{Clock: NewManualClock(time.Unix(1000, 0)), ManualLeaseExpiry: true})
	defer s.Close()
	for _, id := range []int64{1, 2} {
		if _, err := s.Grant(id, 60); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.PutLease(b("k"), b("old"), 1); err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, "plain", "p")

	// Abort.
	x, err := s.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"k", "plain", "new"} {
		if _, err := x.Put(b(k), b("txn"), kv.PutOptions{Lease: 2}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := x.DeleteRange(b("k"), nil, kv.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := x.Abort(); err != nil {
		t.Fatal(err)
	}
	// A failing conditional txn.
	req := &kv.TxnRequest{Then: []kv.Op{
		{Type: kv.OpPut, Key: b("plain"), Value: b("txn"), Put: kv.PutOptions{Lease: 2}},
		{Type: kv.OpDeleteRange, Key: b("k")},
		{Type: kv.OpPut, Key: b("missing"), Put: kv.PutOptions{IgnoreLease: true}},
	}}
	if _, err := s.Txn(context.Background(), req); !errors.Is(err, kv.ErrKeyNotFound) {
		t.Fatalf("failing txn: %v", err)
	}
	// A failing PutWithOptions with a lease.
	if _, err := s.PutWithOptions(b("plain"), nil, kv.PutOptions{Lease: 2, IgnoreValue: true, IgnoreLease: true}); !errors.Is(err, kv.ErrLeaseProvided) {
		t.Fatalf("put with lease and IgnoreLease: %v", err)
	}

	st, err := s.TimeToLive(2, true)
	if err != nil || len(st.Keys) != 0 {
		t.Fatalf("lease 2 after aborts: %v %q", err, st.Keys)
	}
	st, err = s.TimeToLive(1, true)
	if err != nil || len(st.Keys) != 1 || string(st.Keys[0]) != "k" {
		t.Fatalf("lease 1 after aborts: %v %q", err, st.Keys)
	}
	rev := s.Rev()
	if r, err := s.Revoke(2); err != nil || r != rev {
		t.Fatalf("revoke of lease 2: rev %d %v, want %d (nothing attached)", r, err, rev)
	}
	if r, err := s.Revoke(1); err != nil || r != rev+1 {
		t.Fatalf("revoke of lease 1: rev %d %v, want %d", r, err, rev+1)
	}
	kvs, _, _ := s.Range(b("\x00"), []byte{}, 0, 0)
	if got := keysOf(kvs); !reflect.DeepEqual(got, []string{"plain=p"}) {
		t.Fatalf("keys after revokes: %v", got)
	}
}

// TestReviewLeaseDuePut: a put naming a lease that is due but not yet
// expired is accepted (as etcd's lessor still has it), and the expiry
// then deletes the key with the lease; a keep-alive of the due lease is
// refused and does not save it.
func TestReviewLeaseDuePut(t *testing.T) {
	clk := NewManualClock(time.Unix(1000, 0))
	s := newStore(Options{Clock: clk, ManualLeaseExpiry: true})
	defer s.Close()
	if _, err := s.Grant(9, 5); err != nil {
		t.Fatal(err)
	}
	clk.Advance(5 * time.Second)
	if _, err := s.KeepAlive(9); !errors.Is(err, kv.ErrLeaseNotFound) {
		t.Fatalf("keep-alive of a due lease: %v", err)
	}
	if _, err := s.PutLease(b("a"), b("1"), 9); err != nil {
		t.Fatalf("put with a due lease: %v", err)
	}
	n, err := s.ExpireLeases(clk.Now())
	if n != 1 || err != nil {
		t.Fatalf("expire: %d %v", n, err)
	}
	if kvs, _, _ := s.Range(b("a"), nil, 0, 0); len(kvs) != 0 {
		t.Fatalf("a outlived its lease: %v", kvs)
	}
	if _, err := s.PutLease(b("a"), b("1"), 9); !errors.Is(err, kv.ErrLeaseNotFound) {
		t.Fatalf("put with an expired lease: %v", err)
	}
	l, err := s.Grant(0, 5)
	if err != nil || l.ID != 10 {
		t.Fatalf("next chosen ID %d %v, want 10", l.ID, err)
	}
}

// TestReviewAbortKeepsIndex: with a consistent index, an aborted txn (by
// Abort, by a failed write, by a failing Store.Txn) records no index: the
// entry, replayed, applies; nothing of it reaches the log.
func TestReviewAbortKeepsIndex(t *testing.T) {
	ci := &index{i: 5}
	f := &fakePersister{}
	s, err := Open(f, Options{ConsistentIndex: ci})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustPut(t, s, "a", "1")
	ends := map[string]func(){
		"Abort": func() {
			x, err := s.Begin(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			x.Put(b("a"), b("aborted"), kv.PutOptions{})
			if err := x.Abort(); err != nil {
				t.Fatal(err)
			}
		},
		"poisoned Commit": func() {
			x, err := s.Begin(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			x.Put(b("a"), b("aborted"), kv.PutOptions{})
			x.Put(b("b"), nil, kv.PutOptions{Lease: 99})
			if _, err := x.Commit(); !errors.Is(err, kv.ErrTxnFailed) {
				t.Fatalf("commit of a poisoned txn: %v", err)
			}
		},
		"failing Txn": func() {
			req := &kv.TxnRequest{Then: []kv.Op{kv.PutOp(b("a"), b("aborted")), {Type: kv.OpPut, Key: b("x"), Put: kv.PutOptions{IgnoreValue: true}}}}
			if _, err := s.Txn(context.Background(), req); !errors.Is(err, kv.ErrKeyNotFound) {
				t.Fatalf("failing txn: %v", err)
			}
		},
		"failing PutWithOptions": func() {
			if _, err := s.PutWithOptions(b("x"), nil, kv.PutOptions{IgnoreLease: true}); !errors.Is(err, kv.ErrKeyNotFound) {
				t.Fatalf("failing put: %v", err)
			}
		},
	}
	for _, name := range []string{"Abort", "poisoned Commit", "failing Txn", "failing PutWithOptions"} {
		before := s.ConsistentIndex()
		f.mu.Lock()
		nb := len(f.batches)
		f.mu.Unlock()
		ci.i++
		ends[name]()
		f.mu.Lock()
		logged := len(f.batches) - nb
		f.mu.Unlock()
		if got := s.ConsistentIndex(); got != before || logged != 0 {
			t.Fatalf("%s: index %d (want %d), %d batches logged", name, got, before, logged)
		}
		// The same entry, applied again, is not skipped.
		rev := s.Rev()
		if r := mustPut(t, s, "a", name); r != rev+1 || s.ConsistentIndex() != ci.i {
			t.Fatalf("%s: the entry's retry: rev %d (want %d), index %d (want %d)", name, r, rev+1, s.ConsistentIndex(), ci.i)
		}
	}
}

// TestReviewBeginWithoutDeadline: a txn from Begin whose context has no
// deadline, forgotten by its caller, must not block writers forever
// (issue 12: "No caller mistake can leave writers blocked forever"; the
// db-txn note: "Begin without a deadline ... get Options.TxnTimeout").
func TestReviewBeginWithoutDeadline(t *testing.T) {
	s := newStore(Options{TxnTimeout: 20 * time.Millisecond})
	defer s.Close()
	x, err := s.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	x.Put(b("a"), b("forgotten"), kv.PutOptions{})
	done := make(chan error, 1)
	go func() {
		_, err := s.Put(b("b"), b("1"))
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a Put waited 5 s behind a forgotten txn (TxnTimeout 20 ms)")
	}
	if _, err := x.Commit(); !errors.Is(err, kv.ErrTxnEnded) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("commit of the timed-out txn: %v", err)
	}
	if kvs, _, _ := s.Range(b("a"), nil, 0, 0); len(kvs) != 0 {
		t.Fatalf("the timed-out txn's put is visible: %v", keysOf(kvs))
	}
	// A context with its own deadline is left alone.
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	x, err = s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(60 * time.Millisecond)
	if _, err := x.Commit(); err != nil {
		t.Fatalf("a txn with a deadline of its own: %v", err)
	}
}

// TestReviewTxnLeasesReopen: one txn that puts a key with a lease, deletes
// it, puts it again with another lease, and puts and deletes a second key,
// then an aborted txn and a failing Store.Txn naming the leases; after a
// reopen (log and snapshots) the keys, their leases' attachments and the
// revision are what the committed txn left, and revoking each lease
// deletes exactly its keys.
func TestReviewTxnLeasesReopen(t *testing.T) {
	fs := memfs.New(memfs.Options{})
	c := NewManualClock(epoch)
	s := openLeaseLog(t, fs, c)
	l1, l2 := mustGrant(t, s, 0, 100), mustGrant(t, s, 0, 100)
	mustPut(t, s, "pad", "x")
	x, err := s.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	steps := []func() error{
		func() error { _, err := x.Put(b("k"), b("1"), kv.PutOptions{Lease: l1}); return err },
		func() error { _, err := x.DeleteRange(b("k"), nil, kv.DeleteOptions{}); return err },
		func() error { _, err := x.Put(b("k"), b("2"), kv.PutOptions{Lease: l2}); return err },
		func() error { _, err := x.Put(b("j"), b("1"), kv.PutOptions{Lease: l1}); return err },
		func() error { _, err := x.DeleteRange(b("j"), nil, kv.DeleteOptions{}); return err },
		func() error { _, err := x.Put(b("m"), b("1"), kv.PutOptions{Lease: l1}); return err },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	rev, err := x.Commit()
	if err != nil {
		t.Fatal(err)
	}
	y, _ := s.Begin(context.Background())
	y.Put(b("k"), b("aborted"), kv.PutOptions{Lease: l1})
	y.Put(b("n"), b("aborted"), kv.PutOptions{Lease: l2})
	y.Abort()
	s.Txn(context.Background(), &kv.TxnRequest{Then: []kv.Op{
		{Type: kv.OpPut, Key: b("m"), Value: b("failed"), Put: kv.PutOptions{Lease: l2}},
		{Type: kv.OpPut, Key: b("none"), Put: kv.PutOptions{IgnoreValue: true}},
	}})
	check := func(s *Store, when string) {
		t.Helper()
		if s.Rev() != rev {
			t.Fatalf("%s: rev %d, want %d", when, s.Rev(), rev)
		}
		kvs, _, _ := s.Range(b("a"), []byte{}, 0, 0)
		got := ""
		for _, kv := range kvs {
			got += fmt.Sprintf("%s=%s@%d/%d/%d/L%d ", kv.Key, kv.Value, kv.ModRevision, kv.CreateRevision, kv.Version, kv.Lease)
		}
		want := fmt.Sprintf("k=2@%d/%d/1/L%d m=1@%d/%d/1/L%d pad=x@%d/%d/1/L0 ", rev, rev, l2, rev, rev, l1, rev-1, rev-1)
		if got != want {
			t.Fatalf("%s: keys %s, want %s", when, got, want)
		}
		if k1, k2 := leaseKeys(t, s, l1), leaseKeys(t, s, l2); k1 != `["m"]` || k2 != `["k"]` {
			t.Fatalf("%s: lease keys %s %s", when, k1, k2)
		}
	}
	check(s, "before reopen")
	for i := range 6 { // enough writes for a snapshot and new segments
		mustPut(t, s, "pad", fmt.Sprint(i))
	}
	rev = s.Rev()
	check2 := func(s *Store, when string) {
		t.Helper()
		if k1, k2 := leaseKeys(t, s, l1), leaseKeys(t, s, l2); k1 != `["m"]` || k2 != `["k"]` {
			t.Fatalf("%s: lease keys %s %s", when, k1, k2)
		}
		if s.Rev() != rev {
			t.Fatalf("%s: rev %d, want %d", when, s.Rev(), rev)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openLeaseLog(t, fs, c)
	defer s.Close()
	check2(s, "after reopen")
	if r, err := s.Revoke(l2); err != nil || r != rev+1 {
		t.Fatalf("revoke l2: %d %v", r, err)
	}
	if r, err := s.Revoke(l1); err != nil || r != rev+2 {
		t.Fatalf("revoke l1: %d %v", r, err)
	}
	kvs, _, _ := s.Range(b("a"), []byte{}, 0, 0)
	if len(kvs) != 1 || string(kvs[0].Key) != "pad" {
		t.Fatalf("after revokes: %v", keysOf(kvs))
	}
}

// TestReviewExpireKeylessWithIndex: a store driven by a consistent index
// refuses ExpireLeases, changing nothing. (It used to expire a lease with
// no keys in a batch carrying the current index, which replay after a
// reopen skipped: the lease came back.) ExpiredLeases still lists what
// the leader should propose to revoke.
func TestReviewExpireKeylessWithIndex(t *testing.T) {
	fs := memfs.New(memfs.Options{})
	c := NewManualClock(epoch)
	ci := &index{}
	l, err := filelog.Open("db", filelog.Options{FS: fs, SegmentSize: 300, SnapshotRevs: 4})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(l, Options{Clock: c, ConsistentIndex: ci})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ci.i++
	l1 := mustGrant(t, s, 0, 10)
	c.Advance(11 * time.Second)
	rev, index := s.Rev(), s.ConsistentIndex()
	n, err := s.ExpireLeases(c.Now())
	if n != 0 || !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("ExpireLeases under a consistent index: %d, %v; want a refusal", n, err)
	}
	if got := s.ExpiredLeases(c.Now()); len(got) != 1 || got[0] != l1 {
		t.Fatalf("ExpiredLeases = %v, want [%d]: the leader's list to propose", got, l1)
	}
	if s.Rev() != rev || s.ConsistentIndex() != index {
		t.Fatalf("the refusal changed the store: rev %d -> %d, index %d -> %d", rev, s.Rev(), index, s.ConsistentIndex())
	}
}

// TestReviewAbortDuringCompaction: compaction releases the writer lock
// between steps, so txns run, and abort, between them. The result must be
// the store that compacted first and ran only the committed txns.
func TestReviewAbortDuringCompaction(t *testing.T) {
	a, bs := newStore(Options{}), newStore(Options{})
	defer a.Close()
	defer bs.Close()
	const keys = 6 * compactStep
	for v := range 3 {
		for i := range keys {
			k, val := fmt.Sprintf("k%04d", i), fmt.Sprint(v)
			mustPut(t, a, k, val)
			mustPut(t, bs, k, val)
		}
	}
	base := a.Rev()
	r := rand.New(rand.NewPCG(7, 7))
	var committed [][]kv.Op
	compacted := make(chan error, 1)
	go func() { compacted <- a.Compact(base) }()
	for a.CompactRev() != base { // it took effect: now it frees, step by step
		runtime.Gosched()
	}
	during := 0
	for i := 0; i < 150; i++ {
		var ops []kv.Op
		for range 1 + r.IntN(4) {
			k := fmt.Sprintf("k%04d", r.IntN(keys+50)) // some new keys
			if r.IntN(3) == 0 {
				ops = append(ops, kv.DeleteOp(b(k), nil))
			} else {
				ops = append(ops, kv.PutOp(b(k), fmt.Appendf(nil, "t%d", i)))
			}
		}
		x := runTxn(t, a, context.Background(), ops)
		if a.CompactRev() == base && len(compacted) == 0 {
			during++ // the compaction took effect and is still freeing
		}
		if r.IntN(2) == 0 {
			if err := x.Abort(); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if _, err := x.Commit(); err != nil {
			t.Fatal(err)
		}
		committed = append(committed, ops)
	}
	if err := <-compacted; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d of 150 txns ran while the compaction was freeing", during)
	if err := bs.Compact(base); err != nil {
		t.Fatal(err)
	}
	for _, ops := range committed {
		if _, err := runTxn(t, bs, context.Background(), ops).Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if a.Rev() != bs.Rev() {
		t.Fatalf("rev %d, want %d", a.Rev(), bs.Rev())
	}
	for rev := base; rev <= a.Rev(); rev += 1 + int64(r.IntN(8)) {
		ra, errA := a.RangeWithOptions(b("k"), []byte{}, RangeOptions{Rev: rev})
		rb, errB := bs.RangeWithOptions(b("k"), []byte{}, RangeOptions{Rev: rev})
		if errA != nil || errB != nil || !reflect.DeepEqual(ra, rb) {
			t.Fatalf("range at %d differs (%v %v): %d keys, want %d", rev, errA, errB, len(ra.KVs), len(rb.KVs))
		}
	}
	ha, _ := a.HashByRev(0)
	hb, _ := bs.HashByRev(0)
	if ha != hb {
		t.Fatalf("hash %v, want %v", ha, hb)
	}
}

// TestReviewLeaseIDOverflow: after a caller-chosen ID of math.MaxInt64 the
// store has no ID above every granted one left: Grant(0) must fail rather
// than hand out a negative ID (which wraps, and which a caller-chosen
// Grant would refuse).
func TestReviewLeaseIDOverflow(t *testing.T) {
	s := newStore(Options{ManualLeaseExpiry: true})
	defer s.Close()
	if _, err := s.Grant(math.MaxInt64, 10); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		l, err := s.Grant(0, 10)
		if err == nil && l.ID <= 0 {
			t.Fatalf("Grant(0) handed out lease ID %d", l.ID)
		}
		if err == nil {
			t.Fatalf("Grant(0) handed out %d, at or below the highest ID granted", l.ID)
		}
	}
	// Caller-chosen IDs still work.
	if _, err := s.Grant(7, 10); err != nil {
		t.Fatal(err)
	}
}
