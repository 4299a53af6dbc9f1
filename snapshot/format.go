// Package snapshot reads and writes revkv's snapshot format: a stream that
// holds a store's retained history at one revision, written from a view in
// bounded memory and read back in bounded memory, with every byte checked.
//
// # Format, version 2
//
// Integers in the header, blocks and trailer are little-endian; inside the
// body they are varints (encoding/binary: Varint for signed, Uvarint for
// unsigned).
//
//	header   magic "revkvsnp" | u32 version | u32 flags
//	         | i64 rev | i64 compacted rev | u64 consistent index
//	         | u64 store identity (only with flag 1)
//	         | u64 xxhash64 of the 40 (48 with flag 1) bytes before it
//	block*   u32 stored length n (> 0) | u32 body length m (1..BlockSize)
//	         | u64 xxhash64 of the 8 length bytes and the n stored bytes
//	         | n stored bytes: a zstd frame of m body bytes, or the m bytes
//	         themselves when n == m (compression did not pay)
//	end      u32 0 | u32 0
//	trailer  u64 base entries | u64 events | u64 event revisions
//	         | u64 live keys | u64 body length | u64 xxhash64 of the body
//	         | u64 xxhash64 of the 48 bytes before it
//
// The body is the concatenation of the blocks' body bytes, a sequence of
// entries, each a tag byte and the entry's canonical encoding (AppendEntry):
//
//	'B' base entries: each key live at the compacted revision, with the
//	    version that made it live, in strictly increasing key order
//	'E' events: every change from max(compacted rev, 2) to rev, in
//	    revision then sub-revision order
//	'L' leases (version 2): each lease live at rev, in increasing ID
//	    order (AppendLease), after every base entry and event
//	'M' the highest lease ID ever granted (version 2): varint, at most
//	    once, after every base entry and event, and at least every 'L' ID
//
// Version 1 is version 2 without leases: a reader of this version reads
// it (its store has no leases); a version 1 reader refuses a version 2
// stream with ErrVersion.
//
// Flag 1 says the header carries the identity of the store the snapshot
// belongs to (Header.StoreID); a header without it (flags 0, as every
// snapshot had before identities) reads as StoreID 0, no identity. A file
// persister writes its store's identity (WithStoreID) so that a snapshot
// copied in from another store is refused, not adopted.
//
// Blocks let a reader check each stored block before decompressing it, and
// keep both sides' memory to one block (BlockSize) plus one entry: an entry
// may span blocks. Lengths are bounded (keys by kv.MaxKeySize, values by
// kv.MaxValueSize, blocks by BlockSize), so a crafted stream cannot make a
// reader allocate more than that.
package snapshot

import (
	"encoding/binary"
	"errors"

	"github.com/revkv/revkv/kv"
)

// Errors. Damage of any kind (truncation, bad magic, checksum mismatch,
// impossible lengths or orderings) wraps kv.ErrCorrupt; a format version
// this package does not know wraps ErrVersion.
var (
	// ErrVersion is revkv's one error for a file of a format version this
	// build does not read (written by a newer release): a snapshot here,
	// and in package filelog also a manifest or log segment, so that one
	// errors.Is tells a downgrade from damage.
	ErrVersion = errors.New("revkv: format version unsupported by this build")
)

const (
	magic   = "revkvsnp"
	version = 2
	// minVersion is the oldest version this package reads.
	minVersion = 1

	headerSize  = 48 // without a store identity
	idSize      = 8  // the identity, with flagStoreID
	flagStoreID = 1
	blockHdr    = 16
	trailerSize = 56

	// BlockSize is the most body bytes one block holds.
	BlockSize = 1 << 20

	tagBase  = 'B'
	tagEvent = 'E'
	tagLease = 'L'
	// tagLastLease is the highest lease ID granted (version 2).
	tagLastLease = 'M'
)

// Header describes the store a snapshot was taken of.
type Header struct {
	Rev             int64  // the revision the snapshot was taken at
	CompactRev      int64  // the compacted revision, -1 if never compacted
	ConsistentIndex uint64 // the consistent index recorded with Rev
	// StoreID identifies the store the snapshot belongs to; 0 if none
	// (see WithStoreID).
	StoreID uint64
}

// Counts are what a snapshot's trailer records about its body.
type Counts struct {
	Base      uint64 // base entries: keys live at the compacted revision
	Events    uint64 // event entries
	Revisions uint64 // distinct revisions among the events
	Keys      uint64 // keys live at Rev, as the writer reported it
	BodySize  uint64 // uncompressed body bytes
}

// Entry is one version of a key: a base entry or an event.
type Entry struct {
	Key       []byte
	Value     []byte // nil for a delete
	Main, Sub int64  // the revision of the change
	Create    int64  // create revision; 0 for a delete
	Version   int64  // 1 for the first put since the key was created; 0 for a delete
	Lease     int64
	Delete    bool
}

// KeyValue returns the entry as a KeyValue (zero for a delete but its key
// and ModRevision).
func (e *Entry) KeyValue() kv.KeyValue {
	return kv.KeyValue{Key: e.Key, Value: e.Value, CreateRevision: e.Create,
		ModRevision: e.Main, Version: e.Version, Lease: e.Lease}
}

// AppendEntry appends the canonical encoding of e to b:
//
//	flags (bit 0: delete) | uvarint len(key) | key | main | sub
//	puts only: create | version | lease | uvarint len(value) | value
//
// The engine's hash is xxhash64 over these encodings, so a snapshot's
// entries hash as the store they came from (see Status).
func AppendEntry(b []byte, e *Entry) []byte {
	var flags byte
	if e.Delete {
		flags = 1
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, uint64(len(e.Key)))
	b = append(b, e.Key...)
	b = binary.AppendVarint(b, e.Main)
	b = binary.AppendVarint(b, e.Sub)
	if e.Delete {
		return b
	}
	b = binary.AppendVarint(b, e.Create)
	b = binary.AppendVarint(b, e.Version)
	b = binary.AppendVarint(b, e.Lease)
	b = binary.AppendUvarint(b, uint64(len(e.Value)))
	return append(b, e.Value...)
}
