// Package filelog is revkv's file persister: an append-only log of write
// batches in numbered segment files, plus periodic snapshots, in one
// directory. Hand it to engine.Open (revkv.Open(dir, opts) does that for
// a directory).
//
// # Directory
//
//	LOCK                 held (flock) while a Log has the directory open
//	<n>.log              segments, n = 20 decimal digits, from 1 up
//	snap-<n>.snap        snapshots (package snapshot's format), n likewise
//	*.tmp                snapshots being written; removed on open
//
// # Segment
//
//	header  magic "revkvlog" | u32 version (2; 1 is read: it has no 'L'
//	        batches) | u32 flags (0)
//	        | u64 segment number | u64 xxhash64 of the 24 bytes before it
//	frame*  u32 stored length n | u32 raw length m | u8 flags | 3 zero bytes
//	        | u32 low half of xxhash64 of the 12 bytes before it
//	        | u64 xxhash64 of the n stored bytes
//	        | n stored bytes: zstd frame of m raw bytes (flag 1), or the
//	        m raw bytes themselves (n == m)
//
// Integers are little-endian. The raw bytes of consecutive frames form one
// stream of batches; flag 2 ("continued") says the stream goes on in the
// next frame, so a batch may span frames but a group of batches written
// together ends with a frame without it. A frame's raw part is at most
// FrameSize bytes.
//
//	batch   kind | varint rev | uvarint consistent index | ...
//	        'C' (changes)  uvarint count (>= 1), then count of:
//	                       u8 flags (1: delete) | uvarint len | key
//	                       puts: varint lease | uvarint len | value
//	        'K' (compact)  varint compacted revision
//	        'I' (index)    nothing more
//	        'L' (leases)   uvarint count (>= 0) and changes, as 'C'; then
//	                       uvarint count (>= 1), then count of:
//	                       u8 flags (1: revoke) | varint lease ID
//	                       grants and renewals: varint TTL (seconds)
//	                       | varint deadline (ns since 1970 UTC)
//
// A batch of kind 'L' with changes makes revision rev (a revoke or an
// expiry: the deletes of the lease's keys and the lease's removal are one
// durable step); without, it leaves the revision at rev (a grant, a
// keep-alive, a revoke of a lease with no keys).
//
// The frame header has its own checksum so that a damaged length is told
// from a torn write: a torn tail is a frame cut short by the end of the
// last segment (or zeros to the end); it is cut off on open. Anything else
// that fails a check, anywhere, is an error naming the file and offset.
//
// # Durability
//
// Commits from many goroutines are grouped: while one group is written and
// synced, the next gathers, so one fsync serves many commits. The sync
// policy (Options.Sync) says when a write is durable; Commit (the engine's,
// which calls Sync) always makes everything before it durable. New segments
// and snapshots are synced, and their directory too, before they are used.
//
// # Recovery
//
// Recover (which engine.Open calls) loads the newest snapshot that reads
// back whole (an older one if the newest is damaged), then replays every
// batch after it; writes then go on at the end of the last segment. Two
// snapshots are kept, and the segments needed after the older one, so that
// falling back loses nothing.
package filelog
