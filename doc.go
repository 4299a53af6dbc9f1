// Package revkv is an embeddable MVCC key-value store with etcd's
// semantics, held in RAM, with pluggable persistence. Open gives one
// handle, a *DB, for everything: reads at any retained revision, writes,
// conditional and interactive txns, leases, watches and compaction.
//
//	db, err := revkv.Open("", revkv.Options{}) // in memory; a directory persists it
//	if err != nil { ... }
//	defer db.Close()
//	db.Put([]byte("greeting"), []byte("hello"))
//	kv, ok, err := db.Get([]byte("greeting"))
//
// The packages under this one are its parts, for those who build their
// own: engine (the in-memory store), watch (watchers), persist and
// persist/filelog (persistence), snapshot (the snapshot format), kv (the
// shared types and errors) and proptest (a reference model and rapid
// state machines). A DB user needs none of them but kv: its error values,
// its constants (sort orders, compare targets) and its op builders
// (kv.PutOp...); the types in DB's signatures are aliased here.
//
// # Errors
//
// Every error wraps one of the values of package kv: test them with
// errors.Is. Bad input is an error, never a panic, and never changes the
// store.
package revkv
