package engine

import "github.com/revkv/revkv/persist/filelog"

// New returns a store persisted in the directory at path, with the seed
// API's signature: a filelog.Log with its default options (every write is
// durable when it returns; periodic snapshots), and the consistent index
// taken from ig (nil for none). If the directory holds a store, New
// recovers it. path "" gives a pure in-memory store.
//
// This is the one place the engine knows a concrete persister: for any
// other (or other options), build it and call Open.
func New(path string, ig ConsistentIndexGetter) (*Store, error) {
	if path == "" {
		return NewMemory(Options{ConsistentIndex: ig}), nil
	}
	l, err := filelog.Open(path, filelog.Options{})
	if err != nil {
		return nil, err
	}
	return Open(l, Options{ConsistentIndex: ig})
}
