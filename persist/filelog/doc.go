// Package filelog is revkv's file persister: an append-only log of write
// batches in numbered segment files, plus periodic snapshots, in one
// directory. Hand it to engine.Open (revkv.Open(dir, opts) does that for
// a directory).
//
// # Directory
//
//	LOCK                 flock: exclusive for a writer, shared for readers
//	MANIFEST             which files make up the store (see Manifest)
//	<n>.log              segments, n = 20 decimal digits, from 1 up
//	snap-<n>.snap        snapshots (package snapshot's format), n likewise
//	<one of those>.tmp   files being written; removed on open (no other
//	                     .tmp file is touched)
//	snap-<n>.snap.damaged a snapshot that a directory from before
//	                     manifests could not load, set aside (with a
//	                     warning) by its first read-write open, which
//	                     fell back to an older one or the log; never read
//
// # Segment
//
//	header  magic "revkvlog" | u32 version (2; 1 is read: it has no 'L'
//	        batches) | u32 flags
//	        | u64 segment number | u64 store identity (flag 1 only)
//	        | u64 xxhash64 of the 24 (32 with flag 1) bytes before it
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
// from a torn write. Segments written before store identities have flags
// 0 and no identity; they are read as they are.
//
// # Manifest
//
//	magic "revkvman" | u32 version (1) | u32 flags (1: closed cleanly)
//	| u64 store identity | u32 segment count | u32 snapshot count
//	| per segment: u64 number | u64 size | per snapshot: u64 number
//	| u64 xxhash64 of everything before it
//
// It is replaced whole (written to MANIFEST.tmp, synced, renamed, the
// directory synced) when the files change: a store is created, a segment
// starts, a snapshot is kept or dropped, an open finds the last run did
// not close cleanly, and at Close; and after a sync once a quarter
// segment of log has been synced since it was last written. A put's own
// sync never waits for it but that once per quarter segment. Every segment
// but the last has the exact size it was sealed at; the last has how far
// it was known synced when the manifest was written (at Close: all of it,
// with the clean flag). A file is listed only once it is durable, and
// removed only once a manifest without it is: a segment or snapshot it
// does not list is a leftover of a crash between the two, and is removed
// on open if its header carries the store's identity, or none and it is
// numbered below the newest listed file of its kind (a file from before
// identities that a removal left); any other is refused with ErrForeign.
//
// # Torn tails
//
// Damage confined to the part of the last segment past what the manifest
// records as synced, followed only by zeros or the end of the file, is a
// torn tail and is cut (with a warning naming the file and offset), and
// so is, past that mark, a frame whose header is all zeros (a hole that
// out-of-order writeback left), whatever follows it; damage anywhere else
// (past the mark too: bytes not zeros followed by frames that check) is a
// *DamageError naming the file and offset.
// "Damage" there is a frame whose header or stored bytes fail their
// checksum, or that the end of the file cuts; zeros are what a filesystem
// that grows a file before writing its data leaves after a power loss. A
// frame whose checksums hold but that does not decode is never torn.
//
// # What is detected
//
// An open (and verify, which is an open that changes nothing plus the
// checks an open skips) finds, as a *DamageError naming the file:
//   - any byte flipped in a frame or snapshot block (checksums), and in
//     the part of the last segment known synced, even at its very end;
//   - a segment missing or renamed away, the newest or any other, or all
//     of them; the manifest missing while files carry an identity;
//   - snapshots missing or damaged when nothing can stand in for them (an
//     older snapshot, or the log from the first write, is used with a
//     warning; verify reports every missing one);
//   - a sealed segment of any other size than it was sealed at (cut at a
//     frame boundary, or grown), the last segment shorter than what the
//     manifest records as synced;
//   - a segment or snapshot of another store (ErrForeign);
//   - a snapshot that fails to load when the log does not reach back to
//     the first write (rather than opening an empty store).
//
// A manifest, segment or snapshot of a newer format than this build reads
// (its checksum good) is not damage: it is refused with an error naming
// the file and both versions that wraps snapshot.ErrVersion (revkv's one
// version error) and not kv.ErrCorrupt, and a refused open changes no
// file. (A newer snapshot is fallen back from like a damaged one; if the
// log then does not load without it, the error is still ErrVersion.)
//
// A damaged or missing manifest stops every open; the segments and
// snapshots are then read without it (DumpWithoutManifest, which revkv
// salvage uses), where a crash's leftover segment, or a missing one, cannot
// be told from the log but by the revisions of the batches.
//
// It cannot find, because nothing records them at a cost a put can bear:
// the last segment cut, or its tail damaged and then zeroed, between the
// manifest's mark and the last sync, at most a quarter segment (16 MiB by
// default) after a crash and nothing after a clean close (recording every
// sync would need a second fsync, of the manifest, per commit); a
// directory whose every file, manifest included, was deleted (it is a
// new, empty store); and in a directory from before manifests (until its
// first read-write open writes one), the missing files above.
//
// # Durability
//
// Commits from many goroutines are grouped: while one group is written and
// synced, the next gathers, so one fsync serves many commits. The sync
// policy (Options.Sync) says when a write is durable; Commit (the engine's,
// which calls Sync) always makes everything before it durable. New segments
// and snapshots are synced, and their directory too, and recorded in the
// manifest, before anything is written to them.
//
// Recovery never builds on bytes whose durability it has not proven. A
// sync that failed may have left pages that read back from the page cache
// but never reach the disk, and on Linux a later sync of the same file
// succeeds without writing them; the log stops at the first failure, and
// the next open cannot tell such bytes from good ones. So unless the
// manifest records a clean close at exactly the last segment's size, the
// open writes that segment's valid bytes again into a fresh file, syncs
// it, renames it over the old one and syncs the directory, before it
// appends after them. That costs a rewrite of at most SegmentSize bytes
// after a crash; a clean reopen writes nothing.
//
// # Recovery
//
// Recover (which engine.Open calls) checks the directory against its
// manifest, loads the newest snapshot that reads back whole (an older one
// if the newest is damaged or missing), then replays every batch after
// it; writes then go on at the end of the last segment. A goroutine reads,
// checks and decodes each segment's groups ahead of the replay, which
// applies a group only once every frame of it checked; it ends before
// Recover returns, whatever happens. (The engine's snapshot load reads
// the snapshot's entries ahead likewise.) Two snapshots are
// kept, and the segments needed after the older one, so that falling back
// loses nothing.
//
// A snapshot is taken just after the log starts a new segment, so the
// segments before it hold nothing it does not: an open that loads it
// skips them unread, once it has checked every frame of such a segment
// (checksums only) and decoded its last groups to see that the snapshot
// holds them (a compaction, index or lease batch may follow a snapshot at
// its revision). A segment that does not pass is read as any other.
//
// # Disk space
//
// Old segments and snapshots are removed when a snapshot makes them
// unneeded. A compaction starts a snapshot by itself; that snapshot first
// has the log start a new segment, and is written twice (each copy the
// other's fallback), so every file from before it is removed: a store's
// disk then holds about two snapshots of what the compaction kept, plus
// the log written since.
package filelog
