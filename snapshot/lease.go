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

// LastLeaseID records the highest lease ID the store has granted, live or
// not (0: none), so that a loaded store does not hand out an ID again. It
// is written once, after every base entry and event, and must be at
// least every lease's ID.
func (sw *Writer) LastLeaseID(id int64) error {
	if sw.done || sw.lastLeaseID != 0 || id <= 0 {
		return errors.New("revkv/snapshot: LastLeaseID after Finish, twice, or not positive")
	}
	sw.lastLeaseID = id
	sw.leases = true
	sw.scratch = binary.AppendVarint(append(sw.scratch[:0], tagLastLease), id)
	sw.appendBody(sw.scratch)
	return sw.err
}

// Leases returns the snapshot's lease section. It is whole (and checked)
// only once Next has returned io.EOF; a version 1 snapshot has none.
func (sr *Reader) Leases() []Lease { return sr.leases }

// LastLeaseID returns the highest lease ID the store had granted (see
// Writer.LastLeaseID), or 0; known once Next has returned io.EOF.
func (sr *Reader) LastLeaseID() int64 { return sr.lastLeaseID }

// lastLease reads a last-lease-ID entry's body.
func (sr *Reader) lastLease() error {
	if sr.version < 2 {
		return sr.bodyCorrupt("lease entry in a version %d snapshot", sr.version)
	}
	id, err := sr.varint()
	if err != nil {
		return err
	}
	if id <= 0 || sr.lastLeaseID != 0 {
		return sr.bodyCorrupt("last lease ID %d (one before: %d)", id, sr.lastLeaseID)
	}
	sr.lastLeaseID = id
	return nil
}

// checkLeases checks, at the end of the body, that no lease has an ID
// above the last lease ID.
func (sr *Reader) checkLeases() error {
	if n := len(sr.leases); n > 0 && sr.leases[n-1].ID > sr.lastLeaseID {
		return sr.bodyCorrupt("lease %d above the last lease ID %d", sr.leases[n-1].ID, sr.lastLeaseID)
	}
	return nil
}

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
