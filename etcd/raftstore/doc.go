// Package raftstore is the durable raft log, hard state and snapshots of
// one cluster member, on a persist.FS (so persist/memfs's crash models
// and fault injection reach it). A *Store implements go.etcd.io/raft/v3's
// raft.Storage with raft.MemoryStorage's answers and errors, from memory;
// Save, ApplySnapshot, CreateSnapshot and Compact change it and are
// durable when they return. The directory is read only by Open.
//
// # Files
//
// A store's directory holds log segments "<seq>.seg" (seq from 1, in 16
// hex digits), the newest snapshot "snap-<index>.snap", and "LOCK". The
// log is the concatenation of the segments' records; a new segment starts
// when the last reaches Options.SegmentBytes, and starts with a base
// record: the log's state then (so older segments can go once compaction
// covers them).
//
// # Segment format (integers little-endian)
//
//	header:  "rvkraftl" | u32 version (1) | u32 flags (0) | u64 seq
//	         | u64 size the previous segment was sealed at
//	         | u64 xxhash64 of the 32 bytes before
//	record:  u32 payload length | u8 kind | 3 zero bytes
//	         | u64 xxhash64 of the payload
//	         | u32 low half of xxhash64 of the 16 header bytes before
//	         | payload | u8 0xa5
//
// The trailer byte means a record written whole never ends in a zero, so
// a record whose bytes turn to zeros before its end was never written
// whole (see Torn tails). Payloads (uvarints unless said; "pb" is
// raftpb's protobuf encoding):
//
//	'B' base:     dummy index, dummy term, last index, last term,
//	              newest snapshot index, u64 its file's checksum (0: none),
//	              u8 has hard state (0 or 1), [pb HardState to the end]
//	'E' entries:  first index, count, count × (length, pb Entry):
//	              they replace every entry from the first index on
//	'H' hard:     pb HardState
//	'C' compact:  index, term: the entries up to index are dropped
//	'R' reset:    index, term, u64 file checksum: a snapshot from the
//	              leader replaced the log (written before its file)
//	'S' snapshot: index, term, u64 file checksum: a snapshot was created
//	              (written after its file)
//	'D' drop:     seq: the segments before seq are being removed (written
//	              before they are)
//
// A Save writes its entries record, then its hard state record, in one
// write and one fsync: a crash keeps a prefix of them, and never a commit
// index without the entries it covers.
//
// # Snapshot format
//
//	"rvkrsnap" | u32 version (1) | u32 flags (0) | u64 index | u64 term
//	| u64 length | pb Snapshot (metadata and data) | u64 xxhash64 of all before
//
// A snapshot is written to "<name>.tmp", synced, renamed, and the
// directory synced; older snapshots are removed after.
//
// # Torn tails
//
// Open reads every segment. The first record of the last segment that
// does not check, when the file ends inside it or the zeros that run to
// the end of the file start inside it, is a torn tail (an append a crash
// cut short, on a filesystem that cuts files or one that grows them
// before writing them): it and everything after are cut, with a warning.
// A last segment torn before its base record is removed. So is a reset
// record left last by a crash before its snapshot file was durable.
// Anything else is a *DamageError naming the file and offset, wrapping
// ErrCorrupt: a record that does not check anywhere else (a sealed
// segment, or followed by bytes not zeros: a byte flipped in place,
// even in the last record, is damage), a segment missing (the first ones
// included, unless a drop record says the store removed them), a sealed
// segment of another size than its successor records, a base that
// disagrees with the records before it, a snapshot file missing or
// failing its checksum. Not detected, as there is no manifest: the last
// segment removed whole or cut at a record boundary.
//
// # Failures
//
// A write or sync that fails makes the store refuse every later change
// (ErrFailed): after a failed fsync, Linux may report the lost pages
// clean, so nothing may be acknowledged on top. The store also cuts the
// last segment back to what was durable, so a reopen in the same process
// does not read records the disk may not hold; and Open syncs the last
// segment and the directory before it takes writes.
package raftstore
