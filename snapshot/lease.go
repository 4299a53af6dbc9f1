package snapshot

import (
	"encoding/binary"
	"errors"
)

// Lease is a lease in a snapshot's lease section (format version 2): the
// leases live at the snapshot's revision. Which keys are attached to a
// lease is not stored: the keys' KeyValue.Lease says it.
type Lease struct {
	ID       int64 // > 0; strictly increasing through the section
	TTL      int64 // granted time to live in seconds, >= 1
	Deadline int64 // expiry in nanoseconds since 1970 UTC
}

// AppendLease appends the encoding of a lease entry's body to b:
//
//	varint id | varint ttl | varint deadline
func AppendLease(b []byte, l *Lease) []byte {
	b = binary.AppendVarint(b, l.ID)
	b = binary.AppendVarint(b, l.TTL)
	return binary.AppendVarint(b, l.Deadline)
}

// Lease adds a lease to the lease section, which comes after every base
// entry and event, in increasing ID order.
func (sw *Writer) Lease(l *Lease) error {
	if sw.done {
		return errors.New("revkv/snapshot: write after Finish")
	}
	if l.ID <= sw.lastLease || l.TTL < 1 {
		return errors.New("revkv/snapshot: lease out of order or with no TTL")
	}
	sw.lastLease = l.ID
	sw.leases = true
	sw.scratch = AppendLease(append(sw.scratch[:0], tagLease), l)
	sw.appendBody(sw.scratch)
	return sw.err
}

// Leases returns the snapshot's lease section. It is whole (and checked)
// only once Next has returned io.EOF; a version 1 snapshot has none.
func (sr *Reader) Leases() []Lease { return sr.leases }

// lease reads a lease entry's body (its tag read) and adds it to the
// section.
func (sr *Reader) lease() error {
	if sr.version < 2 {
		return sr.bodyCorrupt("lease entry in a version %d snapshot", sr.version)
	}
	var l Lease
	for _, p := range []*int64{&l.ID, &l.TTL, &l.Deadline} {
		v, err := sr.varint()
		if err != nil {
			return err
		}
		*p = v
	}
	last := int64(0)
	if n := len(sr.leases); n > 0 {
		last = sr.leases[n-1].ID
	}
	if l.ID <= last || l.TTL < 1 {
		return sr.bodyCorrupt("lease %d with TTL %d after lease %d", l.ID, l.TTL, last)
	}
	sr.leases = append(sr.leases, l)
	return nil
}
