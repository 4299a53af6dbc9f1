package filelog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/revkv/revkv/persist"
)

// leaseBatches are batches with lease changes: a grant and a keep-alive
// alone, a revoke with its deletes, a revoke alone.
func leaseBatches() []persist.Batch {
	return []persist.Batch{
		{Rev: 1, Leases: []persist.LeaseChange{{ID: 1, TTL: 10, Deadline: 1_700_000_000_000_000_000}}},
		{Rev: 1, Index: 4, Leases: []persist.LeaseChange{{ID: 1 << 50, TTL: 9_000_000_000, Deadline: 1<<63 - 1}, {ID: 1, TTL: 10, Deadline: -5}}},
		{Rev: 2, Changes: []persist.Change{{Key: []byte("a"), Delete: true}, {Key: []byte("b"), Delete: true}},
			Leases: []persist.LeaseChange{{ID: 1, Revoke: true}}},
		{Rev: 2, Leases: []persist.LeaseChange{{ID: 7, Revoke: true}}},
	}
}

// TestLeaseBatchRoundTrip: lease batches decode to what was encoded, and
// every prefix of them is short or damaged.
func TestLeaseBatchRoundTrip(t *testing.T) {
	bs := append(leaseBatches(), sampleBatches()[:2]...)
	raw := encodeAll(bs)
	d := batchDecoder{b: raw}
	for i := range bs {
		got, err := d.next()
		if err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		if g, w := fmt.Sprintf("%+v", *got), fmt.Sprintf("%+v", bs[i]); g != w {
			t.Fatalf("batch %d:\n got %s\nwant %s", i, g, w)
		}
	}
	for n := range len(raw) {
		d := batchDecoder{b: raw[:n]}
		for {
			if _, err := d.next(); err != nil {
				break
			}
		}
	}
}

// TestLeaseBatchRejects: lease batches that break the format are damage
// (not short, not decoded).
func TestLeaseBatchRejects(t *testing.T) {
	for name, raw := range map[string][]byte{
		"no lease changes": {kindLeases, 2, 0, 0, 0, 0xff},
		"lease ID 0":       {kindLeases, 2, 0, 0, 1, 1, 0, 0xff},
		"negative lease":   {kindLeases, 2, 0, 0, 1, 1, 1, 0xff},
		"bad flags":        {kindLeases, 2, 0, 0, 1, 2, 2, 0xff},
		"TTL 0":            {kindLeases, 2, 0, 0, 1, 0, 2, 0, 0, 0xff},
	} {
		d := batchDecoder{b: raw}
		if b, err := d.next(); err == nil || errors.Is(err, errShort) {
			t.Errorf("%s: %+v, %v; want damage", name, b, err)
		}
	}
}

// TestSegmentVersions: a version 1 segment header (written before leases)
// is read; a version above this build's is refused, by name.
func TestSegmentVersions(t *testing.T) {
	for v, ok := range map[uint32]bool{1: true, segVersion: true, segVersion + 1: false, 0: false} {
		h := appendSegHeader(nil, 7)
		binary.LittleEndian.PutUint32(h[8:], v)
		binary.LittleEndian.PutUint64(h[24:], xxhash.Sum64(h[:24]))
		num, err := checkSegHeader(h)
		if ok && (err != nil || num != 7) || !ok && (err == nil || !strings.Contains(err.Error(), "version")) {
			t.Errorf("version %d: segment %d, %v", v, num, err)
		}
	}
}

// TestLeaseCoverage: a segment whose last batch is a lease change alone at
// revision r is not held by a snapshot at r (which may have been taken
// before it), so retention keeps it; a snapshot past r holds it.
func TestLeaseCoverage(t *testing.T) {
	var c coverage
	c.add(&persist.Batch{Rev: 5, Changes: []persist.Change{{Key: []byte("a")}}})
	if !c.coveredBy(snapInfo{rev: 5}) {
		t.Fatal("changes of revision 5 not held by a snapshot at 5")
	}
	c.add(&persist.Batch{Rev: 5, Leases: []persist.LeaseChange{{ID: 1, TTL: 1}}})
	if c.coveredBy(snapInfo{rev: 5}) {
		t.Fatal("a lease change at revision 5 held by a snapshot at 5")
	}
	var m coverage
	m.merge(c)
	if m.coveredBy(snapInfo{rev: 5}) || !m.coveredBy(snapInfo{rev: 6}) {
		t.Fatal("merged coverage lost the lease change")
	}
	// A revoke with deletes makes its revision: a snapshot there holds it.
	var r coverage
	r.add(&persist.Batch{Rev: 6, Changes: []persist.Change{{Key: []byte("a"), Delete: true}}, Leases: []persist.LeaseChange{{ID: 1, Revoke: true}}})
	if !r.coveredBy(snapInfo{rev: 6}) {
		t.Fatal("a revoke with deletes at 6 not held by a snapshot at 6")
	}
}
