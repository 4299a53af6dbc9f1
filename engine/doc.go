// Package engine is revkv's in-memory MVCC key-value store: the storage API
// of etcd's early v3 storage package (Range, Put, DeleteRange, txns,
// Compact, Hash, Snapshot) with etcd's semantics, where every revision of
// every key stays readable until it is compacted.
//
// # Using it
//
//	s, _ := engine.Open(nil, engine.Options{}) // nil persister: in memory
//	defer s.Close()
//	rev, _ := s.Put([]byte("k"), []byte("v1"))
//	s.Put([]byte("k"), []byte("v2"))
//	kvs, _, _ := s.Range([]byte("k"), nil, 0, rev) // k=v1, as of rev
//
// Every method is safe for concurrent use. Reads never block and are never
// blocked; writes are serialized. See Store for the details, and the
// Example functions for txns, views, compaction and snapshots.
//
// # Txns
//
// Store.Txn runs etcd's conditional txns (kv.TxnRequest: compares, Then and
// Else branches of ranges, puts, deletes and nested txns, with etcd's
// validation) at one revision, or, if anything fails, not at all. Begin
// opens an interactive txn (reads see its own writes) that ends with
// Commit or Abort, or when its context ends or the store closes; the seed
// API's TxnBegin/TxnEnd are the same txns named by an ID. A failed write
// poisons a txn: it can then only abort. An abort takes back every write
// of the txn in the writer's index; readers never saw them.
//
// Reads take kv.RangeOptions (sort, revision filters, limit with More,
// counts) in RangeWithOptions, View.Range and Txn.Range alike.
//
// # Persistence
//
// Open is the one constructor. With a nil persist.Persister the store is
// purely in memory: nothing touches a disk, Close leaves nothing behind.
// With any other persister (package persist/filelog is the file one; the
// root package revkv wires it for a directory) the store recovers what the
// persister holds and makes every write durable through it. The engine
// imports no concrete persister.
//
// State comes back three ways, each with one verb: a persister's Recover
// (called by Open) replays its snapshot and log into the store; Restore
// (the seed API's) rebuilds a running store from its persister, as a
// restart would; LoadSnapshot fills a new in-memory store from a snapshot
// stream (the step Recover takes for a snapshot; filelog.LoadSnapshot
// makes a new log directory from one).
//
// With a persister, a write is handed to it (as a persist.Batch) before it
// is published, and is published only once the persister says it is
// durable (for filelog's default policy, once it is on stable storage;
// concurrent writers share one sync). Readers and watchers therefore never
// see a write that a crash could take back. Commit makes everything before
// it durable whatever the policy; Restore rebuilds the state from the
// persister, as a restart does; Close commits and closes the persister.
// If the persister fails, the store stops taking writes (fail-stop, see
// Err and kv.ErrStopped) and keeps serving reads of what was durable; opening
// it again recovers.
//
// # Layout
//
// The store keeps two structures, both shared between the single writer and
// any number of readers without locks:
//
//   - The key index: copy-on-write B+trees (internal/keytree) of key
//     records, ordered by key, each holding one range of keys (most
//     stores have one). Each tree item carries 8 bytes of its key inline,
//     in an array of the node's own apart from the record pointers:
//     those after the prefix every key of its tree shares (up to 32
//     bytes, such as "/registry/"), so that most comparisons of a descent
//     stay in the tree's nodes even when keys look alike. A key that
//     shares less of that prefix shortens it, rebuilding the tree, while
//     the tree has at most 32k keys; next to a bigger one, such a key
//     starts a tree of its own, so no Put pays for a rebuild of a big
//     tree, and keys loaded in key order (which share less and less with
//     the first ones) still get inline bytes that tell them apart. (Keys
//     that agree on the 8 bytes after their tree's prefix, such as keys
//     that share more than 40 bytes, are told apart by loading their
//     records.) A record
//     holds the key and its versions: a key written once keeps that
//     version in the record itself, its key and value in the record's own
//     allocation (one object per key, whose bytes the garbage collector
//     does not scan); later, an atomic
//     pointer to a list of pointers to its versions: full 128-version
//     blocks and a tail that the writer fills in place, raising the
//     list's count after each slot is written (readers never look past
//     the count they load). The versions themselves sit in slabs the
//     writer fills in revision order, so an update allocates nothing but
//     its value and its share of a slab, and writes its version next to
//     the one before. A point read at the
//     current revision is a tree descent plus one to three loads: O(log n). A read at an old revision
//     adds a binary search of the key's versions: O(log n + log v). A range
//     of k keys is a seek plus k records, loaded in batches so their cache
//     misses overlap: O(log n + k), plus any deleted-but-not-compacted keys
//     in the range.
//
//   - The history: every revision's changes, in revision order, in
//     fixed-size chunks. Main revisions are contiguous, so "all changes
//     since revision R" (what watchers, persisters, hashing and snapshots
//     read) finds R's chunk by arithmetic: O(1 + results). A revision
//     that made a new key is the key's record there (8 bytes: the record
//     keeps its first version for good); a Put that updated a key is
//     where its version is in the writer's slabs (8 bytes, no pointer);
//     other single changes are packed (48 bytes); a revision of several
//     changes that each made a new key (a txn of new keys) is their
//     records (8 bytes each), and any other its changes (96 bytes each).
//
// Readers see a published state: a copy of the key index, the keys created
// since that copy was made (sorted runs, a short unsorted tail and a hash
// index: see fresh.go), the history's chunk list, the revision and the
// compacted revision, swapped in with one atomic store after each write. A View holds one state and so keeps seeing
// its revision, however long it is held.
//
// Writing to an existing key does not change the key index at all: it
// appends a version to the key's record, which readers at older revisions
// ignore (they only look at versions at or below their revision). A new key
// goes into the writer's private tree and into the small slice of new keys;
// the tree is copied for readers (O(1): nodes are cloned lazily as the
// writer next touches them) only when that slice is full or compaction
// changed the tree. Copying the tree before every write instead would clone
// a root-to-leaf path per write (~10 µs measured at 1M keys).
//
// Recovery and snapshot loads replay keys that mostly come in key order: a
// key after every key of the index goes in by the tree's append path, and
// the load ends by copying the trees' nodes, which sizes each leaf's array
// to its items (in-order inserts leave leaves half full).
//
// # Compaction
//
// Compact(rev) makes reads below rev fail at once, then frees memory in
// steps of at most 256 keys and 8,192 copied versions, releasing the writer
// lock between steps: writers wait at most one step (see BenchmarkCompact's
// max-step-ns), however large the store. Compaction builds new records for the keys it
// trims and swaps them into the writer's tree, so views taken before it keep
// every version they can see.
//
// # Leases
//
// Grant gives a lease with a TTL; PutLease attaches a key to it; Revoke,
// or its expiry when no KeepAlive came in time, deletes all its keys at
// one revision. Leases are persisted with their deadlines, so a restart
// keeps what is left of each one's time. Time comes from Options.Clock
// (a ManualClock in tests); a store expires its leases from a timer
// goroutine that starts with its first lease and stops at Close, or, with
// Options.ManualLeaseExpiry (and always with a ConsistentIndex), only when
// the caller runs ExpireLeases or revokes what ExpiredLeases lists. See
// lease.go.
//
// # Errors
//
// Errors wrap the sentinel values of package kv (re-exported here with the
// seed API's names): test them with errors.Is. Bad input (an empty key, a
// revision out of range, a wrong txn ID, a call after Close, a damaged
// snapshot) is an error, never a panic, and never changes the store.
package engine
