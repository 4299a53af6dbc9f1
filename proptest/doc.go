// Package proptest holds a KV implementation to revkv's semantics (etcd
// parity, docs/SEMANTICS.md) by property-based testing.
//
// Model is the reference: a plain, obviously correct implementation that
// keeps a full copy of the key space at every revision. Check runs a rapid
// state machine that applies random puts, deletes, ranges at current and
// past revisions, txns, compactions, hashes and held views to an
// implementation of KV and to a Model side by side, compares every result
// and error, and shrinks any difference to a minimal sequence of steps.
//
//	func TestMyStore(t *testing.T) {
//		proptest.Check(t, func() (proptest.KV, error) { return newMyAdapter(), nil })
//	}
//
// The package's own tests hold revkv's engine (and its watchers) to the
// model, and run one generated sequence in memory, on the file persister
// and across restarts, requiring the same results everywhere.
package proptest
