package member

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"testing"

	revkv "github.com/revkv/revkv"
	"github.com/revkv/revkv/kv"
)

// sampleContainer returns a container of a small DB and a member table.
func sampleContainer(t testing.TB) ([]byte, membership, dedup) {
	t.Helper()
	db, err := revkv.Open("", revkv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i := range 5 {
		if _, err := db.Put(fmt.Appendf(nil, "k%d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Grant(3, 10); err != nil {
		t.Fatal(err)
	}
	table := newMembership()
	for _, p := range []Peer{peerOf(1), peerOf(2), {ID: 5, IsLearner: true}} {
		table.members[p.ID] = p
	}
	table.removed[3], table.removed[4] = true, true
	sn, err := db.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Close()
	dd := dedup{}
	for i, id := range []requestID{{1, 7, 1}, {1, 7, 2}, {1, 7, 5}, {2, 9, 3}, {1, 8, 1}} {
		dd.seen(id, uint64(i)+10)
	}
	data, err := encodeSnapshot(&table, dd, []kv.KeyValueHash{{Hash: 7, CompactRev: -1, Rev: 3}, {Hash: 1 << 31, CompactRev: 3, Rev: 5}}, sn.WriteTo)
	if err != nil {
		t.Fatal(err)
	}
	return data, table, dd
}

func TestSnapshotContainer(t *testing.T) {
	data, table, dd := sampleContainer(t)
	c, err := decodeSnapshot(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.table, table) {
		t.Fatalf("table %+v, want %+v", c.table, table)
	}
	if len(c.compactHashes) != 2 || c.compactHashes[1].Hash != 1<<31 {
		t.Fatalf("compaction hashes %+v", c.compactHashes)
	}
	if !reflect.DeepEqual(c.dedup, dd) || len(dd) != 3 || dd[incarnation{1, 7}].floor != 2 {
		t.Fatalf("dedup %+v, want %+v", c.dedup, dd)
	}
	db, err := revkv.Open("", revkv.Options{Persister: &snapshotLoader{data: c.engine}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if db.Rev() != 6 {
		t.Fatalf("loaded DB at revision %d", db.Rev())
	}
	if _, err := db.TimeToLive(3, false); err != nil {
		t.Fatalf("loaded lease: %v", err)
	}
	// Any flipped bit or cut is refused.
	for i := range data {
		bad := bytes.Clone(data)
		bad[i] ^= 0x10
		if _, err := decodeSnapshot(bad); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("byte %d flipped: %v", i, err)
		}
	}
	for n := range len(data) {
		if _, err := decodeSnapshot(data[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("cut at %d: %v", n, err)
		}
	}
}

func FuzzDecodeSnapshot(f *testing.F) {
	data, _, _ := sampleContainer(f)
	f.Add(data)
	empty, _ := encodeSnapshot(&membership{}, dedup{}, nil, func(w io.Writer) (int64, error) { return 0, nil })
	f.Add(empty)
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := decodeSnapshot(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		again, err := encodeSnapshot(&c.table, c.dedup, c.compactHashes, func(w io.Writer) (int64, error) {
			n, err := w.Write(c.engine)
			return int64(n), err
		})
		if err != nil {
			t.Fatal(err)
		}
		c2, err := decodeSnapshot(again)
		if err != nil || !reflect.DeepEqual(c2, c) {
			t.Fatalf("re-encoded: %+v %v, want %+v", c2, err, c)
		}
		// The engine bytes load or are refused, never a panic.
		db, err := revkv.Open("", revkv.Options{Persister: &snapshotLoader{data: c.engine}})
		if err != nil {
			if !errors.Is(err, kv.ErrCorrupt) {
				t.Logf("engine bytes refused: %v", err)
			}
			return
		}
		db.Close()
	})
}
