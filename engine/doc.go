// Package engine is revkv's in-memory MVCC key-value store: the storage API
// of etcd's early v3 storage package (Range, Put, DeleteRange, txns,
// Compact, Hash, Snapshot) with etcd's semantics, where every revision of
// every key stays readable until it is compacted.
//
// # Using it
//
//	s := engine.New(engine.Options{})
//	defer s.Close()
//	rev, _ := s.Put([]byte("k"), []byte("v1"))
//	s.Put([]byte("k"), []byte("v2"))
//	kvs, _, _ := s.Range([]byte("k"), nil, 0, rev) // k=v1, as of rev
//
// Every method is safe for concurrent use. Reads never block and are never
// blocked; writes are serialized. See Store for the details, and the
// Example functions for txns, views, compaction and snapshots.
//
// # Layout
//
// The store keeps two structures, both shared between the single writer and
// any number of readers without locks:
//
//   - The key index: a copy-on-write B-tree (github.com/tidwall/btree) of
//     key records, ordered by key. Each tree item carries the key's first 8
//     bytes inline, so a descent rarely leaves the tree's nodes. A record
//     holds the key and an atomic pointer to an immutable list of the key's
//     versions (oldest first, the latest inline). A point read at the current
//     revision is a tree descent plus two record loads: O(log n). A read at
//     an old revision adds a binary search of that key's versions:
//     O(log n + log v). A range of k keys is a seek plus k records:
//     O(log n + k), plus any deleted-but-not-compacted keys in the range.
//
//   - The history: every revision's changes, in revision order, in
//     fixed-size chunks. Main revisions are contiguous, so "all changes
//     since revision R" (what watchers, persisters, hashing and snapshots
//     read) finds R's chunk by arithmetic: O(1 + results).
//
// Readers see a published state: the root of the key index, the history's
// chunk list, the revision and the compacted revision, swapped in with one
// atomic store after each write. A View holds one state and so keeps seeing
// its revision, however long it is held. Writing to an existing key does not
// change the key index at all: it appends a version to the key's record,
// which readers at older revisions ignore (they only look at versions at or
// below their revision). Only a new key, or compaction, changes the tree;
// then the writer copies the tree (O(1); nodes are cloned as the writer
// touches them) before the next publication. Calling the tree's Copy before
// every write would clone a root-to-leaf path per write (~10 µs measured at
// 1M keys); this layout pays that only for new keys.
//
// # Compaction
//
// Compact(rev) makes reads below rev fail at once, then frees memory in
// steps of a bounded number of keys, releasing the writer lock between
// steps: writers wait at most one step (see BenchmarkCompact's max-stall-ns),
// however large the store. Compaction builds new records for the keys it
// trims and swaps them into the writer's tree, so views taken before it keep
// every version they can see.
//
// # Errors
//
// Errors wrap the sentinel values of package kv (re-exported here with the
// seed API's names): test them with errors.Is. Bad input (an empty key, a
// revision out of range, a wrong txn ID, a call after Close, a damaged
// snapshot) is an error, never a panic, and never changes the store.
package engine
