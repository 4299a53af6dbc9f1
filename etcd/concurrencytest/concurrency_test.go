// Package concurrencytest checks that clientv3/concurrency (Session,
// Mutex, Election, STM), which builds locks and elections out of leases,
// txns on create revisions and watches, works unchanged against revkv's
// server through the etcdtest fake.
package concurrencytest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/revkv/revkv/etcd/etcdtest"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// clients returns n clients of one fake, as n processes would have.
func clients(t *testing.T, n int) []*clientv3.Client {
	f := etcdtest.Start(t, etcdtest.Config{})
	out := make([]*clientv3.Client, n)
	for i := range out {
		out[i] = f.Client(clientv3.Config{})
	}
	return out
}

func session(t *testing.T, c *clientv3.Client, opts ...concurrency.SessionOption) *concurrency.Session {
	t.Helper()
	s, err := concurrency.NewSession(c, opts...)
	if err != nil {
		t.Fatalf("NewSession: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSession(t *testing.T) {
	ctx := ctxT(t)
	c := clients(t, 1)[0]
	s := session(t, c, concurrency.WithTTL(30))
	ttl, err := c.TimeToLive(ctx, s.Lease())
	if err != nil {
		t.Fatal(err)
	}
	if ttl.GrantedTTL != 30 || ttl.TTL <= 0 {
		t.Fatalf("session lease: granted %d, remaining %d", ttl.GrantedTTL, ttl.TTL)
	}
	// Close revokes the lease.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ttl, err = c.TimeToLive(ctx, s.Lease())
	if err != nil {
		t.Fatal(err)
	}
	if ttl.TTL != -1 {
		t.Fatalf("after Close: TTL %d, want -1 (lease gone)", ttl.TTL)
	}

	// A session whose lease is revoked elsewhere ends: Done closes.
	s2 := session(t, c, concurrency.WithTTL(30))
	if _, err := c.Revoke(ctx, s2.Lease()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s2.Done():
	case <-ctx.Done():
		t.Fatal("session did not end after its lease was revoked")
	}
}

// TestMutex has workers, each with its own client and session, increment
// a counter under the mutex with a read-modify-write that would lose
// updates without mutual exclusion, and checks that no two were ever
// inside at once.
func TestMutex(t *testing.T) {
	ctx := ctxT(t)
	const workers, rounds = 4, 10
	cs := clients(t, workers)
	var inside, maxInside atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		s := session(t, cs[w])
		m := concurrency.NewMutex(s, "/lock/")
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				if err := m.Lock(ctx); err != nil {
					errs <- fmt.Errorf("lock: %w", err)
					return
				}
				if n := inside.Add(1); n > maxInside.Load() {
					maxInside.Store(n)
				}
				r, err := cs[w].Get(ctx, "counter")
				if err == nil {
					n := 0
					if len(r.Kvs) == 1 {
						n, _ = strconv.Atoi(string(r.Kvs[0].Value))
					}
					_, err = cs[w].Put(ctx, "counter", strconv.Itoa(n+1))
				}
				inside.Add(-1)
				if err != nil {
					errs <- err
					return
				}
				if err := m.Unlock(ctx); err != nil {
					errs <- fmt.Errorf("unlock: %w", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if maxInside.Load() != 1 {
		t.Fatalf("%d workers inside the lock at once", maxInside.Load())
	}
	r, err := cs[0].Get(ctx, "counter")
	if err != nil {
		t.Fatal(err)
	}
	if got := string(r.Kvs[0].Value); got != strconv.Itoa(workers*rounds) {
		t.Fatalf("counter %s, want %d", got, workers*rounds)
	}
}

func TestMutexTryLockAndExpiry(t *testing.T) {
	ctx := ctxT(t)
	cs := clients(t, 2)
	s1 := session(t, cs[0])
	s2 := session(t, cs[1])
	m1 := concurrency.NewMutex(s1, "/lock/")
	m2 := concurrency.NewMutex(s2, "/lock/")
	if err := m1.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m2.TryLock(ctx); !errors.Is(err, concurrency.ErrLocked) {
		t.Fatalf("TryLock while held: %v, want ErrLocked", err)
	}
	// The holder's session dies (its lease revoked, as when a process
	// stops renewing): the waiter gets the lock.
	got := make(chan error, 1)
	go func() { got <- m2.Lock(ctx) }()
	select {
	case err := <-got:
		t.Fatalf("Lock returned while held: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	if _, err := cs[0].Revoke(ctx, s1.Lease()); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatalf("Lock after the holder's lease ended: %v", err)
	}
	if err := m2.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestElection(t *testing.T) {
	ctx := ctxT(t)
	cs := clients(t, 4)
	observer := concurrency.NewElection(session(t, cs[3]), "/election/")
	octx, ocancel := context.WithCancel(ctx)
	defer ocancel()
	observed := observer.Observe(octx)

	var elections []*concurrency.Election
	for i := range 3 {
		elections = append(elections, concurrency.NewElection(session(t, cs[i]), "/election/"))
	}
	if err := elections[0].Campaign(ctx, "v0"); err != nil {
		t.Fatal(err)
	}
	expectLeader(t, ctx, observed, "v0")
	// The others wait behind the leader, in campaign order.
	won := make(chan int, 2)
	for i := 1; i < 3; i++ {
		go func() {
			if err := elections[i].Campaign(ctx, fmt.Sprintf("v%d", i)); err == nil {
				won <- i
			}
		}()
		// Campaign order is create-revision order: let i's key
		// exist before the next campaigns.
		waitKeys(t, ctx, cs[0], "/election/", int64(i+1))
	}
	if err := elections[0].Proclaim(ctx, "v0b"); err != nil {
		t.Fatal(err)
	}
	expectLeader(t, ctx, observed, "v0b")
	l, err := elections[2].Leader(ctx)
	if err != nil || string(l.Kvs[0].Value) != "v0b" {
		t.Fatalf("Leader: %v %v", l, err)
	}
	if err := elections[0].Resign(ctx); err != nil {
		t.Fatal(err)
	}
	if i := <-won; i != 1 {
		t.Fatalf("candidate %d won after the leader resigned, want 1", i)
	}
	expectLeader(t, ctx, observed, "v1")
	if err := elections[1].Resign(ctx); err != nil {
		t.Fatal(err)
	}
	if i := <-won; i != 2 {
		t.Fatalf("candidate %d won, want 2", i)
	}
	expectLeader(t, ctx, observed, "v2")
}

func expectLeader(t *testing.T, ctx context.Context, observed <-chan *clientv3.GetResponse, want string) {
	t.Helper()
	for {
		select {
		case r, ok := <-observed:
			if !ok {
				t.Fatalf("Observe ended waiting for leader %q", want)
			}
			if len(r.Kvs) == 1 && string(r.Kvs[0].Value) == want {
				return
			}
		case <-ctx.Done():
			t.Fatalf("no leader %q observed", want)
		}
	}
}

func waitKeys(t *testing.T, ctx context.Context, c *clientv3.Client, prefix string, n int64) {
	t.Helper()
	for {
		r, err := c.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		if r.Count >= n {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// TestSTM moves money between accounts concurrently under each isolation
// level; conflicting txns must retry, so the total is conserved and no
// transfer is lost.
func TestSTM(t *testing.T) {
	for _, iso := range []struct {
		name string
		iso  concurrency.Isolation
	}{
		{"SerializableSnapshot", concurrency.SerializableSnapshot},
		{"Serializable", concurrency.Serializable},
		{"RepeatableReads", concurrency.RepeatableReads},
	} {
		t.Run(iso.name, func(t *testing.T) {
			ctx := ctxT(t)
			const accounts, workers, transfers = 5, 4, 15
			cs := clients(t, workers)
			for i := range accounts {
				if _, err := cs[0].Put(ctx, fmt.Sprintf("acct/%d", i), "100"); err != nil {
					t.Fatal(err)
				}
			}
			var wg sync.WaitGroup
			errs := make(chan error, workers)
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for n := range transfers {
						from := fmt.Sprintf("acct/%d", (w+n)%accounts)
						to := fmt.Sprintf("acct/%d", (w+2*n+1)%accounts)
						_, err := concurrency.NewSTM(cs[w], func(s concurrency.STM) error {
							a, _ := strconv.Atoi(s.Get(from))
							b, _ := strconv.Atoi(s.Get(to))
							if from == to || a < 7 {
								return nil
							}
							s.Put(from, strconv.Itoa(a-7))
							s.Put(to, strconv.Itoa(b+7))
							return nil
						}, concurrency.WithIsolation(iso.iso), concurrency.WithAbortContext(ctx))
						if err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			r, err := cs[0].Get(ctx, "acct/", clientv3.WithPrefix())
			if err != nil {
				t.Fatal(err)
			}
			total := 0
			for _, kv := range r.Kvs {
				n, _ := strconv.Atoi(string(kv.Value))
				total += n
			}
			if total != accounts*100 {
				t.Fatalf("total %d after transfers, want %d", total, accounts*100)
			}
		})
	}
}
