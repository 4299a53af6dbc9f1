package raftstore

import (
	"errors"
	"fmt"

	"github.com/revkv/revkv/kv"
)

// Errors of package raftstore. The raft.Storage methods return raft's own
// errors (raft.ErrCompacted, raft.ErrUnavailable, raft.ErrSnapOutOfDate)
// exactly where raft.MemoryStorage does.
var (
	// ErrCorrupt: bytes read back from the directory are not what the
	// store wrote (a *DamageError names the file and offset). It wraps
	// kv.ErrCorrupt.
	ErrCorrupt = fmt.Errorf("revkv/raftstore: %w", kv.ErrCorrupt)
	// ErrInvalid: a call whose arguments raft.MemoryStorage would panic
	// on or silently misapply (entries that are not consecutive or leave
	// a gap, a snapshot or compaction past the last entry). Nothing was
	// written; the store stays usable.
	ErrInvalid = errors.New("revkv/raftstore: invalid argument")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("revkv/raftstore: closed")
	// ErrFailed: an earlier write or sync failed, so what is on disk is
	// unknown; the store refuses every later write (reads still answer
	// from memory, with only what was made durable). Reopen the directory
	// to go on from what survived. It wraps the first failure.
	ErrFailed = errors.New("revkv/raftstore: an earlier write failed")
)

// DamageError is the error for a damaged segment or snapshot file: it
// names the file and the offset of the damaged record (or header), and
// wraps ErrCorrupt (so kv.ErrCorrupt too).
type DamageError struct {
	File   string
	Offset int64
	Err    error // what is wrong
}

// Error names the file, the offset and the damage.
func (e *DamageError) Error() string {
	return fmt.Sprintf("revkv/raftstore: %s at offset %d: %v", e.File, e.Offset, e.Err)
}

// Unwrap returns ErrCorrupt and the cause.
func (e *DamageError) Unwrap() []error { return []error{ErrCorrupt, e.Err} }

// record is one record whose header, payload and trailer checked.
type record struct {
	off     int64 // of its header in the segment
	kind    byte
	payload []byte
}

// stop is where scanning a segment's records stopped before its end: the
// first record that does not check.
type stop struct {
	off int64
	err error
	// torn: the bad bytes have the shape a crash gives an unsynced append
	// (see tornShape); whether they may be cut depends on the segment.
	torn bool
}

// scanRecords reads the records of a segment's bytes b from off on, up to
// the first that does not check (nil stop: b ends after a whole record).
func scanRecords(b []byte, off int64) ([]record, *stop) {
	var recs []record
	for off < int64(len(b)) {
		r, s := readRecord(b, off)
		if s != nil {
			return recs, s
		}
		recs = append(recs, r)
		off += recOverhead + int64(len(r.payload))
	}
	return recs, nil
}

// readRecord reads the record at off, or says why it does not check.
func readRecord(b []byte, off int64) (record, *stop) {
	left := int64(len(b)) - off
	if left < recHdrSize {
		return record{}, &stop{off: off, err: errors.New("segment ends inside a record header"), torn: true}
	}
	h, err := parseRecHeader(b[off : off+recHdrSize])
	if err != nil {
		return record{}, &stop{off: off, err: err, torn: tornShape(b, off, off+recHdrSize)}
	}
	end := off + recOverhead + h.size
	if end > int64(len(b)) {
		return record{}, &stop{off: off, err: fmt.Errorf("segment ends inside a record of %d bytes", h.size), torn: true}
	}
	payload := b[off+recHdrSize : end-1]
	if err := checkRecord(h, payload, b[end-1]); err != nil {
		return record{}, &stop{off: off, err: err, torn: tornShape(b, off, end)}
	}
	return record{off: off, kind: h.kind, payload: payload}, nil
}

// tornShape reports whether the bytes from off on, which fail a check
// that ends at checkEnd, look like an append a crash cut short: a
// filesystem that grew the file before writing it leaves the unwritten
// part zeros, so the zeros that run to the end of the file start before
// checkEnd. A whole record never ends in a zero (its trailer), so a
// record damaged in place, with its own bytes up to its trailer, is never
// taken for a torn one. (A crash that cuts the file, the other shape,
// is the end of the file inside a record: readRecord's own case.)
func tornShape(b []byte, off, checkEnd int64) bool {
	z := int64(len(b))
	for z > off && b[z-1] == 0 {
		z--
	}
	return z < checkEnd
}
