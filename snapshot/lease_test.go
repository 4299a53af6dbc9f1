package snapshot

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/revkv/revkv/kv"
)

// withVersion returns stream with its header's version set to v (and the
// header checksum fixed).
func withVersion(stream []byte, v uint32) []byte {
	b := bytes.Clone(stream)
	binary.LittleEndian.PutUint32(b[8:], v)
	binary.LittleEndian.PutUint64(b[40:], xxhash.Sum64(b[:40]))
	return b
}

// leaseSample writes a snapshot of one base entry, one event and leases.
func leaseSample(t testing.TB, leases []Lease) []byte {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Header{Rev: 3, CompactRev: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Event(&Entry{Key: []byte("k"), Value: []byte("v"), Main: 2, Create: 2, Version: 1, Lease: 7}); err != nil {
		t.Fatal(err)
	}
	for i := range leases {
		if err := w.Lease(&leases[i]); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(leases); n > 0 {
		if err := w.LastLeaseID(leases[n-1].ID + 5); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Finish(1); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func readLeases(data []byte) ([]Entry, []Lease, error) {
	es, ls, _, err := readLeaseSection(data)
	return es, ls, err
}

func readLeaseSection(data []byte) ([]Entry, []Lease, int64, error) {
	r, err := NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, nil, 0, err
	}
	var got []Entry
	for {
		e, _, err := r.Next()
		if err != nil {
			if err == io.EOF {
				return got, r.Leases(), r.LastLeaseID(), nil
			}
			return got, nil, 0, err
		}
		got = append(got, *e)
	}
}

// TestLeaseSection: leases written after the events read back in order,
// and do not count as entries.
func TestLeaseSection(t *testing.T) {
	want := []Lease{{ID: 1, TTL: 5, Deadline: 1e18}, {ID: 7, TTL: 60, Deadline: -3}, {ID: 1 << 40, TTL: 9e9, Deadline: 1<<63 - 1}}
	es, ls, last, err := readLeaseSection(leaseSample(t, want))
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 1 || len(ls) != len(want) || last != 1<<40+5 {
		t.Fatalf("read %d entries, leases %v, last lease ID %d", len(es), ls, last)
	}
	for i := range want {
		if ls[i] != want[i] {
			t.Fatalf("lease %d: %+v, wrote %+v", i, ls[i], want[i])
		}
	}
	// No leases: none read.
	if _, ls, err := readLeases(leaseSample(t, nil)); err != nil || len(ls) != 0 {
		t.Fatalf("no leases: %v, %v", ls, err)
	}
}

// TestLeaseVersions: a version 1 stream (no lease section) reads as a
// store without leases; a lease entry in one is damage; a version above
// this build's is ErrVersion.
func TestLeaseVersions(t *testing.T) {
	plain := leaseSample(t, nil)
	if _, ls, err := readLeases(withVersion(plain, 1)); err != nil || ls != nil {
		t.Fatalf("version 1: leases %v, %v", ls, err)
	}
	withLease := leaseSample(t, []Lease{{ID: 7, TTL: 5, Deadline: 9}})
	if _, _, err := readLeases(withVersion(withLease, 1)); !errors.Is(err, kv.ErrCorrupt) {
		t.Fatalf("lease in a version 1 stream: %v, want kv.ErrCorrupt", err)
	}
	if _, _, err := readLeases(withVersion(withLease, version+1)); !errors.Is(err, ErrVersion) {
		t.Fatalf("future version: %v, want ErrVersion", err)
	}
}

// TestLeaseRejects: lease sections whose checksums hold but whose content
// breaks the format, and writer misuse.
func TestLeaseRejects(t *testing.T) {
	h := Header{Rev: 5, CompactRev: -1}
	ev := AppendEntry([]byte{tagEvent}, &Entry{Key: []byte("k"), Main: 2, Create: 2, Version: 1})
	lease := func(id, ttl int64) []byte {
		return AppendLease([]byte{tagLease}, &Lease{ID: id, TTL: ttl, Deadline: 1})
	}
	mark := func(id int64) []byte { return binary.AppendVarint([]byte{tagLastLease}, id) }
	for name, body := range map[string][]byte{
		"no last lease ID": lease(1, 5),
		"lease above mark": append(mark(3), lease(4, 5)...),
		"mark twice":       append(mark(3), mark(3)...),
		"mark 0":           mark(0),
		"event after mark": append(mark(1), ev...),
		"mark, cut":        mark(300)[:2],
		"zero ID":          lease(0, 5),
		"negative ID":      lease(-1, 5),
		"no TTL":           lease(1, 0),
		"IDs not in order": append(lease(2, 5), lease(2, 5)...),
		"event after":      append(lease(1, 5), ev...),
		"cut":              lease(1, 5)[:3],
	} {
		c := Counts{}
		if name == "event after" || name == "event after mark" {
			c.Events, c.Revisions = 1, 1
		}
		if _, _, err := readLeases(rawStream(h, [][]byte{body}, c)); !errors.Is(err, kv.ErrCorrupt) {
			t.Errorf("%s: %v, want kv.ErrCorrupt", name, err)
		}
	}
	var buf bytes.Buffer
	w, _ := NewWriter(&buf, h)
	if err := w.Lease(&Lease{ID: 3, TTL: 1}); err != nil {
		t.Fatal(err)
	}
	if w.Lease(&Lease{ID: 3, TTL: 1}) == nil || w.Event(&Entry{Key: []byte("k"), Main: 2}) == nil || w.Base(&Entry{Key: []byte("k")}) == nil {
		t.Fatal("writer took a lease out of order, or an entry after a lease")
	}
}

// leaseSeeds are FuzzReader seeds with lease sections.
func leaseSeeds(t testing.TB) [][]byte {
	return [][]byte{
		leaseSample(t, []Lease{{ID: 1, TTL: 5, Deadline: 1e18}, {ID: 9, TTL: 1, Deadline: 0}}),
		withVersion(leaseSample(t, []Lease{{ID: 2, TTL: 3, Deadline: 4}}), 1),
		withVersion(leaseSample(t, nil), 1),
	}
}
