package engine

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/revkv/revkv/kv"
	"github.com/revkv/revkv/persist"
)

// fakePersister records batches; its Wait blocks until released, and it
// fails on demand.
type fakePersister struct {
	mu        sync.Mutex
	batches   []persist.Batch
	appendErr error
	waitErr   error
	gate      chan struct{} // nil: Wait returns at once
	closed    bool
}

var errFake = errors.New("fake disk error")

func (f *fakePersister) Recover(persist.Target) error { return nil }

func (f *fakePersister) Append(b *persist.Batch) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.appendErr != nil {
		return 0, f.appendErr
	}
	c := *b
	c.Changes = slices.Clone(b.Changes) // the engine reuses b
	f.batches = append(f.batches, c)
	return uint64(len(f.batches)), nil
}

func (f *fakePersister) Wait(pos uint64) error {
	f.mu.Lock()
	gate, err := f.gate, f.waitErr
	f.mu.Unlock()
	if gate != nil {
		<-gate
	}
	return err
}

func (f *fakePersister) Sync() error { return f.Wait(0) }

func (f *fakePersister) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}

func openFake(t *testing.T) (*Store, *fakePersister) {
	f := &fakePersister{}
	s, err := Open(f, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s, f
}

// TestBatches: each kind of write hands the persister the batch that
// replays it.
func TestBatches(t *testing.T) {
	f := &fakePersister{}
	s, err := Open(f, Options{Clock: NewManualClock(time.Unix(100, 0))})
	if err != nil {
		t.Fatal(err)
	}
	s.Grant(7, 60) // no revision
	mustPut(t, s, "a", "1")
	id, _ := s.TxnBegin()
	s.TxnPutLease(id, b("b"), b("2"), 7)
	s.TxnDeleteRange(id, b("a"), nil)
	s.TxnEnd(id)
	s.DeleteRange(b("zzz"), nil) // nothing: no batch
	s.Compact(2)
	s.Revoke(7) // deletes b
	want := []persist.Batch{
		{Rev: 1, Leases: []persist.LeaseChange{{ID: 7, TTL: 60, Deadline: 160e9}}},
		{Rev: 2, Changes: []persist.Change{{Key: b("a"), Value: b("1")}}},
		{Rev: 3, Changes: []persist.Change{{Key: b("b"), Value: b("2"), Lease: 7}, {Key: b("a"), Delete: true}}},
		{Rev: 3, Compaction: true, Compact: 2},
		{Rev: 4, Changes: []persist.Change{{Key: b("b"), Delete: true}}, Leases: []persist.LeaseChange{{ID: 7, Revoke: true}}},
	}
	if got, w := fmt.Sprintf("%+v", f.batches), fmt.Sprintf("%+v", want); got != w {
		t.Fatalf("batches\n got %s\nwant %s", got, w)
	}
	if err := s.Close(); err != nil || !f.closed {
		t.Fatalf("Close = %v, persister closed %v", err, f.closed)
	}
}

// TestReadersSeeOnlyDurableWrites: until the persister says a write is
// durable, no reader sees it; then it appears atomically.
func TestReadersSeeOnlyDurableWrites(t *testing.T) {
	s, f := openFake(t)
	defer s.Close()
	gate := make(chan struct{})
	f.gate = gate
	done := make(chan error)
	go func() {
		_, err := s.Put(b("k"), b("v"))
		done <- err
	}()
	// Wait until the batch is appended (the write is in the log, not yet
	// durable).
	for {
		f.mu.Lock()
		n := len(f.batches)
		f.mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if rev := s.Rev(); rev != 1 {
		t.Fatalf("revision %d visible before the write is durable", rev)
	}
	if kvs, _, _ := s.Range(b("k"), nil, 0, 0); len(kvs) != 0 {
		t.Fatalf("read %v before the write is durable", kvs)
	}
	close(gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if kvs, _, _ := s.Range(b("k"), nil, 0, 0); len(kvs) != 1 {
		t.Fatal("durable write not visible")
	}
}

// TestFailStop: a persister failure stops writes with an error wrapping
// kv.ErrStopped and the cause, changes nothing readers see, and leaves reads
// working.
func TestFailStop(t *testing.T) {
	for _, where := range []string{"append", "wait"} {
		t.Run(where, func(t *testing.T) {
			s, f := openFake(t)
			mustPut(t, s, "a", "1")
			if where == "append" {
				f.appendErr = errFake
			} else {
				f.waitErr = errFake
			}
			_, err := s.Put(b("a"), b("2"))
			if !errors.Is(err, kv.ErrStopped) || !errors.Is(err, errFake) {
				t.Fatalf("failed write: %v, want kv.ErrStopped and the cause", err)
			}
			if !errors.Is(s.Err(), errFake) {
				t.Fatalf("Err() = %v", s.Err())
			}
			for name, fn := range map[string]func() error{
				"Put":         func() error { _, err := s.Put(b("b"), nil); return err },
				"DeleteRange": func() error { _, _, err := s.DeleteRange(b("a"), nil); return err },
				"TxnBegin":    func() error { _, err := s.TxnBegin(); return err },
				"Compact":     func() error { return s.Compact(1) },
				"Commit":      s.Commit,
				"Restore":     s.Restore,
			} {
				if err := fn(); !errors.Is(err, kv.ErrStopped) {
					t.Errorf("%s after the failure: %v, want kv.ErrStopped", name, err)
				}
			}
			kvs, rev, err := s.Range(b("a"), nil, 0, 0)
			if err != nil || rev != 2 || len(kvs) != 1 || string(kvs[0].Value) != "1" {
				t.Fatalf("read after failure: %v at %d, %v; want a=1 at 2", kvs, rev, err)
			}
			if err := s.Close(); !errors.Is(err, kv.ErrStopped) || !f.closed {
				t.Fatalf("Close after failure = %v (persister closed: %v)", err, f.closed)
			}
		})
	}
}

// replayPersister is a persister whose Recover replays what it is given.
type replayPersister struct {
	fakePersister
	snap   []byte
	replay []persist.Batch
}

func (r *replayPersister) Recover(t persist.Target) error {
	if r.snap != nil {
		if err := t.LoadSnapshot(bytesReader(r.snap)); err != nil {
			return err
		}
	}
	for i := range r.replay {
		if err := t.Apply(&r.replay[i]); err != nil {
			return err
		}
	}
	return nil
}

func bytesReader(b []byte) io.Reader { return &sliceReader{b: b} }

type sliceReader struct{ b []byte }

func (r *sliceReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// TestApplyChecks: replay skips what the snapshot holds and refuses
// batches that do not follow the state.
func TestApplyChecks(t *testing.T) {
	src := newStore(Options{})
	mustPut(t, src, "a", "1")
	mustPut(t, src, "b", "2")
	snap := snapshotBytes(t, src) // at revision 3
	put := func(rev int64, key string) persist.Batch {
		return persist.Batch{Rev: rev, Changes: []persist.Change{{Key: b(key), Value: b("x")}}}
	}
	tests := []struct {
		name    string
		replay  []persist.Batch
		wantErr error
		wantRev int64
	}{
		{"covered batches skipped", []persist.Batch{put(2, "a"), put(3, "b"), put(4, "c")}, nil, 4},
		{"gap", []persist.Batch{put(5, "c")}, kv.ErrCorrupt, 0},
		{"delete of a dead key", []persist.Batch{{Rev: 4, Changes: []persist.Change{{Key: b("zz"), Delete: true}}}}, kv.ErrCorrupt, 0},
		{"empty key", []persist.Batch{put(4, "")}, kv.ErrCorrupt, 0},
		{"compaction past the revision", []persist.Batch{{Rev: 3, Compaction: true, Compact: 9}}, kv.ErrCorrupt, 0},
		{"compaction", []persist.Batch{{Rev: 3, Compaction: true, Compact: 3}}, nil, 3},
		{"compaction to 0", []persist.Batch{{Rev: 3, Compaction: true, Compact: 0}}, nil, 3},
		{"index at another revision", []persist.Batch{{Rev: 2, Index: 9}}, kv.ErrCorrupt, 0},
	}
	for _, tt := range tests {
		p := &replayPersister{snap: snap, replay: tt.replay}
		s, err := Open(p, Options{})
		if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
			t.Errorf("%s: Open = %v, want %v", tt.name, err, tt.wantErr)
			continue
		}
		if err != nil {
			if !p.closed {
				t.Errorf("%s: failed Open left the persister open", tt.name)
			}
			continue
		}
		if s.Rev() != tt.wantRev {
			t.Errorf("%s: revision %d, want %d", tt.name, s.Rev(), tt.wantRev)
		}
		s.Close()
	}
}

func TestMaxBatchSize(t *testing.T) {
	s := newStore(Options{})
	for i := range 10 {
		mustPut(t, s, keyN(i), "v")
	}
	s.mu.Lock()
	_, err := s.deleteLocked(nil, []byte{}, 12, 0, 5*changeSize(b(keyN(0)), nil))
	s.mu.Unlock()
	if !errors.Is(err, kv.ErrTooLarge) {
		t.Fatalf("delete of 10 keys with room for 5: %v", err)
	}
	if kvs, _, _ := s.Range(nil, []byte{}, 0, 0); len(kvs) != 10 {
		t.Fatalf("refused delete changed the store: %d keys left", len(kvs))
	}
	id, _ := s.TxnBegin()
	mustTxnPut := func(key string) error { _, err := s.TxnPut(id, b(key), b("v")); return err }
	if err := mustTxnPut("x"); err != nil {
		t.Fatal(err)
	}
	s.txnMu.Lock()
	s.txn.size = MaxBatchSize - changeSize(b("y"), b("v")) + 1 // as if it held much more
	s.txnMu.Unlock()
	if err := mustTxnPut("y"); !errors.Is(err, kv.ErrTooLarge) {
		t.Fatalf("txn put over MaxBatchSize: %v", err)
	}
	// The failed put poisoned the txn: TxnEnd aborts it, x included.
	if err := s.TxnEnd(id); !errors.Is(err, kv.ErrTxnFailed) || !errors.Is(err, kv.ErrTooLarge) {
		t.Fatalf("TxnEnd after a failed put: %v, want ErrTxnFailed wrapping ErrTooLarge", err)
	}
	if kvs, _, _ := s.Range(nil, []byte{}, 0, 0); len(kvs) != 10 {
		t.Fatalf("after the aborted txn: %d keys, want the 10", len(kvs))
	}
	id, _ = s.TxnBegin()
	s.txnMu.Lock()
	s.txn.size = MaxBatchSize - 5*changeSize(b(keyN(0)), nil)
	s.txnMu.Unlock()
	if _, _, err := s.TxnDeleteRange(id, nil, []byte{}); !errors.Is(err, kv.ErrTooLarge) {
		t.Fatalf("txn delete over MaxBatchSize: %v", err)
	}
	if err := s.TxnEnd(id); !errors.Is(err, kv.ErrTxnFailed) {
		t.Fatalf("TxnEnd after a failed delete: %v", err)
	}
	if kvs, _, _ := s.Range(nil, []byte{}, 0, 0); len(kvs) != 10 {
		t.Fatalf("after the aborted txn: %d keys, want the 10", len(kvs))
	}
}

// TestRecreatedKeySurvivesCompaction: a key deleted and put again in one
// txn, then compacted at exactly that revision, keeps its value, in
// memory and through a snapshot (etcd v3.7.3 loses it: etcd issue 22376).
func TestRecreatedKeySurvivesCompaction(t *testing.T) {
	s := newStore(Options{})
	mustPut(t, s, "k", "old")
	id, _ := s.TxnBegin()
	s.TxnDeleteRange(id, b("k"), nil)
	s.TxnPut(id, b("k"), b("new"))
	s.TxnEnd(id)
	if err := s.Compact(s.Rev()); err != nil {
		t.Fatal(err)
	}
	loaded, err := loadStore(bytesReader(snapshotBytes(t, s)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for name, st := range map[string]*Store{"store": s, "loaded": loaded} {
		kvs, _, err := st.Range(b("k"), nil, 0, 0)
		if err != nil || len(kvs) != 1 || string(kvs[0].Value) != "new" || kvs[0].Version != 1 || kvs[0].CreateRevision != 3 {
			t.Fatalf("%s: %v, %v", name, kvs, err)
		}
		v, _ := st.View()
		var evs []Event
		for ev := range v.Events(3) {
			evs = append(evs, ev)
		}
		if len(evs) != 2 || evs[0].Type != kv.Delete || evs[1].Type != kv.Put {
			t.Fatalf("%s: events at the compacted revision: %v", name, evs)
		}
	}
}

// TestPreparedFor: Apply takes a record Prepare made only for the change
// it was made for (key, revision, sub-revision, lease, value length), from
// a batch of one change or of several.
func TestPreparedFor(t *testing.T) {
	c := persist.Change{Key: []byte("key"), Value: []byte("value"), Lease: 3}
	rec := prepareChange(&c, 5, 0)
	if got := preparedFor(rec, 0, &c, 5); got != rec {
		t.Fatalf("the record for the change: %p, want %p", got, rec)
	}
	if prepareChange(&persist.Change{Key: []byte("key"), Delete: true}, 5, 0) != nil {
		t.Fatalf("a record for a delete")
	}
	other := func(f func(c *persist.Change)) *persist.Change {
		o := c
		f(&o)
		return &o
	}
	for name, tc := range map[string]struct {
		c        *persist.Change
		sub      int
		rev      int64
		prepared any
	}{
		"other key":    {other(func(c *persist.Change) { c.Key = []byte("kez") }), 0, 5, rec},
		"other lease":  {other(func(c *persist.Change) { c.Lease = 4 }), 0, 5, rec},
		"other length": {other(func(c *persist.Change) { c.Value = []byte("valu") }), 0, 5, rec},
		"other rev":    {&c, 0, 6, rec},
		"other sub":    {&c, 1, 5, rec},
		"none":         {&c, 0, 5, nil},
		"past slice":   {&c, 1, 5, []*keyRecord{rec}},
	} {
		if got := preparedFor(tc.prepared, tc.sub, tc.c, tc.rev); got != nil {
			t.Errorf("%s: took the record", name)
		}
	}
	recs := []*keyRecord{nil, prepareChange(&c, 5, 1)}
	if got := preparedFor(recs, 1, &c, 5); got != recs[1] {
		t.Fatalf("the record of change 1 of a batch: %p, want %p", got, recs[1])
	}
	if got := preparedFor(recs, 0, &c, 5); got != nil {
		t.Fatalf("a record for a change it was not made for")
	}
}

// scribblePersister replays batches from copies of their bytes, which it
// overwrites after each Apply, as a log reader that reuses its buffers does.
type scribblePersister struct {
	fakePersister
	replay []persist.Batch
}

func (r *scribblePersister) Recover(t persist.Target) error {
	for i := range r.replay {
		b := r.replay[i]
		b.Changes = make([]persist.Change, len(b.Changes))
		for j, c := range r.replay[i].Changes {
			c.Key, c.Value = bytes.Clone(c.Key), bytes.Clone(c.Value)
			b.Changes[j] = c
		}
		if err := t.Apply(&b); err != nil {
			return err
		}
		for _, c := range b.Changes {
			for k := range c.Key {
				c.Key[k] = 'X'
			}
			for k := range c.Value {
				c.Value[k] = 'Y'
			}
		}
	}
	return nil
}

// TestApplyBatchShapes replays batches of every shape the history keeps in
// its own way (txns of new keys only, which it keeps as their records;
// mixed txns; single puts, updates and deletes; txns past the replay's
// reused buffer), from bytes overwritten after each Apply, and checks the
// replayed store against the one that wrote them; and that the replay's
// buffer keeps no change alive once it is done.
func TestApplyBatchShapes(t *testing.T) {
	f := &fakePersister{}
	src, err := Open(f, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	key := func(i int) []byte { return fmt.Appendf(nil, "k%05d", i) }
	txn := func(fn func(id int64)) {
		id, err := src.TxnBegin()
		if err != nil {
			t.Fatal(err)
		}
		fn(id)
		if err := src.TxnEnd(id); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for round := range 30 {
		txn(func(id int64) { // new keys only
			for range 3 + round%5 {
				src.TxnPut(id, key(n), fmt.Appendf(nil, "v%d", n))
				n++
			}
		})
		txn(func(id int64) { // a new key, an update, a delete
			src.TxnPut(id, key(n), []byte("new"))
			n++
			src.TxnPut(id, key(n-5), []byte("upd"))
			src.TxnDeleteRange(id, key(n-3), nil)
		})
		src.Put(key(n), []byte("one"))
		n++
		src.Put(key(n-2), []byte("one-upd"))
		src.DeleteRange(key(n-7), nil)
		if round%7 == 3 { // past maxApplyBuf: new keys, then updates
			txn(func(id int64) {
				for range maxApplyBuf + 44 {
					src.TxnPut(id, key(n), []byte("big"))
					n++
				}
			})
			txn(func(id int64) {
				for j := range maxApplyBuf + 44 {
					src.TxnPut(id, key(n-1-j), []byte("bigupd"))
				}
			})
		}
	}
	replayed, err := Open(&scribblePersister{replay: f.batches}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer replayed.Close()
	sameStore(t, src, replayed)
	for i, c := range replayed.w.applyBuf[:cap(replayed.w.applyBuf)] {
		if c.key != nil || c.v.value != nil || c.rec != nil {
			t.Fatalf("the replay's buffer keeps change %d alive: %q", i, c.key)
		}
	}
	loaded, err := loadStore(bytes.NewReader(snapshotBytes(t, src)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	sameStore(t, src, loaded)
}
