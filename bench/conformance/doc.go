// Package conformance holds revkv to etcd's own storage/mvcc store, the
// descendant of the API revkv implements: a differential test that runs
// the same random operations on both and compares every answer, and
// linearizability checks of revkv under concurrent clients (porcupine).
// It has tests only; it lives in the bench module because that module
// already imports etcd, which revkv's users never download.
package conformance
