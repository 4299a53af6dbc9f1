package engine

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/revkv/revkv/kv"
	"github.com/revkv/revkv/persist/filelog"
	"github.com/revkv/revkv/persist/memfs"
	"github.com/revkv/revkv/snapshot"
	"pgregory.net/rapid"
)

// randomStore applies a random sequence of writes, txns and compactions.
func randomStore(t *rapid.T) *Store {
	s := newStore(Options{ManualLeaseExpiry: true})
	for id := range int64(3) {
		if id > 0 && rapid.Bool().Draw(t, "grant") {
			s.Grant(id, 60) // no revision
		}
	}
	keys := []string{"a", "ab", "b", "c", "d\x00", "e"}
	n := rapid.IntRange(0, 60).Draw(t, "ops")
	for range n {
		key := []byte(rapid.SampledFrom(keys).Draw(t, "key"))
		switch rapid.IntRange(0, 5).Draw(t, "op") {
		case 0, 1:
			s.PutLease(key, rapid.SliceOfN(rapid.Byte(), 0, 3).Draw(t, "v"), rapid.Int64Range(0, 2).Draw(t, "lease"))
		case 2:
			end := []byte(rapid.SampledFrom(append(keys, "", "zz")).Draw(t, "end"))
			if rapid.Bool().Draw(t, "single") {
				end = nil
			}
			s.DeleteRange(key, end)
		case 3:
			id, _ := s.TxnBegin()
			for range rapid.IntRange(0, 4).Draw(t, "txnOps") {
				k := []byte(rapid.SampledFrom(keys).Draw(t, "txnKey"))
				if rapid.Bool().Draw(t, "txnPut") {
					s.TxnPut(id, k, []byte("t"))
				} else {
					s.TxnDeleteRange(id, k, nil)
				}
			}
			s.TxnEnd(id)
		case 4:
			if s.CompactRev() < s.Rev() {
				s.Compact(rapid.Int64Range(s.CompactRev()+1, s.Rev()).Draw(t, "compact"))
			}
		case 5:
			s.checkIndexed(t)
		}
	}
	return s
}

// checkIndexed is a no-op op slot kept so the op distribution favours
// writes; it checks the writer state and published state agree.
func (s *Store) checkIndexed(t *rapid.T) {
	if s.cur.Load().rev != s.w.rev {
		t.Fatalf("published rev %d, writer rev %d", s.cur.Load().rev, s.w.rev)
	}
}

func snapshotBytes(t tb, s *Store) []byte {
	t.Helper()
	sn, err := s.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	defer sn.Close()
	var buf bytes.Buffer
	n, err := sn.WriteTo(&buf)
	if err != nil || n != int64(buf.Len()) {
		t.Fatalf("WriteTo = %d, %v; wrote %d", n, err, buf.Len())
	}
	if sn.Rev() != s.Rev() {
		t.Fatalf("snapshot Rev() = %d, store %d", sn.Rev(), s.Rev())
	}
	if size := sn.Size(); size != n {
		t.Fatalf("Size() = %d, WriteTo wrote %d", size, n)
	}
	return buf.Bytes()
}

// sameStore checks that b answers every read, history read and hash as a.
func sameStore(t tb, a, b *Store) {
	t.Helper()
	if a.Rev() != b.Rev() || a.CompactRev() != b.CompactRev() || a.ConsistentIndex() != b.ConsistentIndex() {
		t.Fatalf("rev/compact/index %d/%d/%d vs %d/%d/%d", a.Rev(), a.CompactRev(), a.ConsistentIndex(),
			b.Rev(), b.CompactRev(), b.ConsistentIndex())
	}
	va, _ := a.View()
	vb, _ := b.View()
	for rev := max(a.CompactRev(), 1); rev <= a.Rev(); rev++ {
		ra, errA := va.Range(nil, []byte{}, RangeOptions{Rev: rev})
		rb, errB := vb.Range(nil, []byte{}, RangeOptions{Rev: rev})
		if (errA == nil) != (errB == nil) || len(ra.KVs) != len(rb.KVs) {
			t.Fatalf("range at %d: %v, %v vs %v, %v", rev, ra.KVs, errA, rb.KVs, errB)
		}
		for i := range ra.KVs {
			if !sameKV(ra.KVs[i], rb.KVs[i]) {
				t.Fatalf("range at %d [%d]: %+v vs %+v", rev, i, ra.KVs[i], rb.KVs[i])
			}
		}
		ha, _ := a.HashByRev(rev)
		hb, _ := b.HashByRev(rev)
		if ha != hb {
			t.Fatalf("HashByRev(%d): %+v vs %+v", rev, ha, hb)
		}
	}
	from := a.CompactRev()
	var ea, eb []Event
	for ev := range va.Events(from) {
		ea = append(ea, ev)
	}
	for ev := range vb.Events(from) {
		eb = append(eb, ev)
	}
	if len(ea) != len(eb) {
		t.Fatalf("Events(%d): %d vs %d events", from, len(ea), len(eb))
	}
	for i := range ea {
		if ea[i].Type != eb[i].Type || ea[i].Sub != eb[i].Sub || !sameKV(ea[i].KV, eb[i].KV) {
			t.Fatalf("Events(%d)[%d]: %+v vs %+v", from, i, ea[i], eb[i])
		}
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := randomStore(t)
		data := snapshotBytes(t, s)
		got, err := loadStore(bytes.NewReader(data), Options{})
		if err != nil {
			t.Fatalf("LoadSnapshot: %v", err)
		}
		sameStore(t, s, got)
		// The restored store goes on like the original.
		r1, _ := s.Put([]byte("after"), []byte("x"))
		r2, _ := got.Put([]byte("after"), []byte("x"))
		if r1 != r2 {
			t.Fatalf("Put after LoadSnapshot at %d, original at %d", r2, r1)
		}
		sameStore(t, s, got)
		if again := snapshotBytes(t, got); !bytes.Equal(again, snapshotBytes(t, s)) {
			t.Fatalf("a restored store's snapshot differs from the original's")
		}
	})
}

func TestSnapshotConsistentIndex(t *testing.T) {
	ci := &index{i: 41}
	s := newStore(Options{ConsistentIndex: ci})
	mustPut(t, s, "a", "1")
	got, err := loadStore(bytes.NewReader(snapshotBytes(t, s)), Options{ConsistentIndex: ci})
	if err != nil {
		t.Fatal(err)
	}
	if got.ConsistentIndex() != 41 {
		t.Fatalf("restored index %d, want 41", got.ConsistentIndex())
	}
	// The entry that was applied before the snapshot is not applied again.
	if rev, _ := got.Put(b("a"), b("again")); rev != 2 {
		t.Fatalf("replayed entry after restore made revision %d", rev)
	}
}

func damageStore(t tb) []byte {
	s := newStore(Options{})
	mustPut(t, s, "a", "1")
	mustPut(t, s, "b", "2")
	id, _ := s.TxnBegin()
	s.TxnPut(id, b("a"), b("3"))
	s.TxnDeleteRange(id, b("b"), nil)
	s.TxnEnd(id)
	s.Compact(3)
	mustPut(t, s, "c", "4")
	return snapshotBytes(t, s)
}

// TestLoadDamage: every truncation and every flipped bit of a snapshot is
// reported as kv.ErrCorrupt, never loaded and never a panic.
func TestLoadDamage(t *testing.T) {
	data := damageStore(t)
	for n := 0; n < len(data); n++ {
		if _, err := loadStore(bytes.NewReader(data[:n]), Options{}); !errors.Is(err, kv.ErrCorrupt) {
			t.Fatalf("truncated to %d of %d bytes: %v, want kv.ErrCorrupt", n, len(data), err)
		}
	}
	for i := range data {
		for bit := range 8 {
			bad := bytes.Clone(data)
			bad[i] ^= 1 << bit
			if _, err := loadStore(bytes.NewReader(bad), Options{}); !errors.Is(err, kv.ErrCorrupt) {
				t.Fatalf("bit %d of byte %d flipped: %v, want kv.ErrCorrupt", bit, i, err)
			}
		}
	}
	if _, err := loadStore(bytes.NewReader(data), Options{}); err != nil {
		t.Fatalf("undamaged: %v", err)
	}
}

// craft writes a snapshot stream with header h and the given base entries
// and events, valid as a stream (checksums hold) whatever its content.
func craft(t tb, h snapshot.Header, base, events []snapshot.Entry) []byte {
	var buf bytes.Buffer
	w, err := snapshot.NewWriter(&buf, h)
	if err != nil {
		t.Fatalf("craft: %v", err)
	}
	for i := range base {
		w.Base(&base[i])
	}
	for i := range events {
		w.Event(&events[i])
	}
	if err := w.Finish(0); err != nil {
		t.Fatalf("craft: %v", err)
	}
	return buf.Bytes()
}

// TestLoadRejects: streams whose checksums hold but whose content is not a
// history any store could have are kv.ErrCorrupt too.
func TestLoadRejects(t *testing.T) {
	put := func(key string, main, sub, create, ver int64) snapshot.Entry {
		return snapshot.Entry{Key: b(key), Value: b("v"), Main: main, Sub: sub, Create: create, Version: ver}
	}
	del := func(key string, main, sub int64) snapshot.Entry {
		return snapshot.Entry{Key: b(key), Main: main, Sub: sub, Delete: true}
	}
	h := func(rev, compact int64) snapshot.Header { return snapshot.Header{Rev: rev, CompactRev: compact} }
	future := craft(t, h(1, -1), nil, nil)
	binary.LittleEndian.PutUint32(future[8:], 9)
	binary.LittleEndian.PutUint64(future[40:], xxhash.Sum64(future[:40]))
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, kv.ErrCorrupt},
		{"wrong magic", []byte("notasnap\x01\x00\x00\x00"), kv.ErrCorrupt},
		{"future version", future, snapshot.ErrVersion},
		{"gap in events", craft(t, h(3, -1), nil, []snapshot.Entry{put("a", 2, 0, 2, 1), put("a", 4, 0, 2, 2)}), ErrRevisionNotFound},
		{"history short of rev", craft(t, h(3, -1), nil, []snapshot.Entry{put("a", 2, 0, 2, 1)}), ErrRevisionNotFound},
		{"sub out of order", craft(t, h(2, -1), nil, []snapshot.Entry{put("a", 2, 1, 2, 1)}), kv.ErrCorrupt},
		{"wrong version", craft(t, h(3, -1), nil, []snapshot.Entry{put("a", 2, 0, 2, 1), put("a", 3, 0, 2, 5)}), kv.ErrCorrupt},
		{"delete of nothing", craft(t, h(2, -1), nil, []snapshot.Entry{del("a", 2, 0)}), kv.ErrCorrupt},
		{"base out of order", craft(t, h(3, 3), []snapshot.Entry{put("b", 2, 0, 2, 1), put("a", 3, 0, 3, 1)}, nil), kv.ErrCorrupt},
		{"base above compacted", craft(t, h(4, 2), []snapshot.Entry{put("a", 3, 0, 3, 1)}, nil), kv.ErrCorrupt},
	}
	for _, tt := range tests {
		if _, err := loadStore(bytes.NewReader(tt.data), Options{}); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestSnapshotClose(t *testing.T) {
	s := newStore(Options{})
	sn, _ := s.Snapshot()
	if err := sn.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := sn.WriteTo(io.Discard); !errors.Is(err, kv.ErrClosed) {
		t.Fatalf("WriteTo after Close = %v", err)
	}
	if err := sn.Close(); !errors.Is(err, kv.ErrClosed) {
		t.Fatalf("second Close = %v", err)
	}
	if sn.Size() != 0 {
		t.Fatalf("Size after Close = %d", sn.Size())
	}
}

type failWriter struct{ n int }

var errDisk = errors.New("disk full")

func (w *failWriter) Write(p []byte) (int, error) {
	if w.n < len(p) {
		k := w.n
		w.n = 0
		return k, errDisk
	}
	w.n -= len(p)
	return len(p), nil
}

func TestSnapshotWriteError(t *testing.T) {
	s := newStore(Options{})
	for i := range 5000 {
		mustPut(t, s, keyN(i), "0123456789abcdef")
	}
	sn, _ := s.Snapshot()
	if _, err := sn.WriteTo(&failWriter{n: 1000}); !errors.Is(err, errDisk) {
		t.Fatalf("WriteTo a failing writer = %v, want its error", err)
	}
}

// FuzzLoad feeds arbitrary bytes to Load: it must return a store or an error
// wrapping kv.ErrCorrupt, never panic or allocate without bound.
func FuzzLoad(f *testing.F) {
	f.Add(damageStore(f))
	f.Add([]byte("revkvsnp"))
	s := newStore(Options{})
	f.Add(snapshotBytes(f, s))
	f.Add(leaseSnapshot(f))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := loadStore(bytes.NewReader(data), Options{ManualLeaseExpiry: true})
		if err != nil {
			if !errors.Is(err, kv.ErrCorrupt) && !errors.Is(err, snapshot.ErrVersion) {
				t.Fatalf("LoadSnapshot error %v wraps neither kv.ErrCorrupt nor ErrVersion", err)
			}
			return
		}
		// Whatever loads must be a usable store.
		if _, err := got.HashByRev(0); err != nil {
			t.Fatal(err)
		}
		if _, err := got.Put([]byte("k"), nil); err != nil {
			t.Fatal(err)
		}
		checkLoadedLeases(t, got)
		got.Close()
	})
}

// LoadSnapshot fills only a new in-memory store; any other is
// kv.ErrNotEmpty and keeps its state. A damaged stream leaves a new store
// empty and usable.
func TestLoadSnapshotIntoUsedStore(t *testing.T) {
	src := newStore(Options{})
	mustPut(t, src, "k", "v")
	data := snapshotBytes(t, src)

	used := newStore(Options{})
	mustPut(t, used, "other", "1")
	wantErr(t, "LoadSnapshot into a written store", used.LoadSnapshot(bytes.NewReader(data)), kv.ErrNotEmpty)
	if kvs, rev, _ := used.Range([]byte("other"), nil, 0, 0); rev != 2 || len(kvs) != 1 {
		t.Fatalf("refused load changed the store: %v at %d", kvs, rev)
	}

	l, err := filelog.Open("db", filelog.Options{FS: memfs.New(memfs.Options{})})
	if err != nil {
		t.Fatal(err)
	}
	persisted, err := Open(l, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer persisted.Close()
	wantErr(t, "LoadSnapshot into a persisted store", persisted.LoadSnapshot(bytes.NewReader(data)), kv.ErrNotEmpty)

	fresh := newStore(Options{})
	wantErr(t, "LoadSnapshot of a cut stream", fresh.LoadSnapshot(bytes.NewReader(data[:len(data)/2])), kv.ErrCorrupt)
	if fresh.Rev() != 1 {
		t.Fatalf("a failed load left the store at %d", fresh.Rev())
	}
	if err := fresh.LoadSnapshot(bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if kvs, rev, _ := fresh.Range([]byte("k"), nil, 0, 0); rev != 2 || len(kvs) != 1 {
		t.Fatalf("loaded: %v at %d", kvs, rev)
	}
	wantErr(t, "a second LoadSnapshot", fresh.LoadSnapshot(bytes.NewReader(data)), kv.ErrNotEmpty)
}
