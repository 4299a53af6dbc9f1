package compare

import (
	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/persist/filelog"
	"github.com/revkv/revkv/watch"
)

// Revkv is revkv's engine in memory, with watchers.
type Revkv struct{}

// Name implements Engine.
func (Revkv) Name() string { return "revkv" }

// Open implements Engine.
func (Revkv) Open(string) (Store, error) {
	s, err := engine.Open(nil, engine.Options{})
	if err != nil {
		return nil, err
	}
	return &revkvStore{s: watch.New(s, watch.Options{})}, nil
}

// RevkvFile is revkv with file persistence (persist/filelog) at its
// interval sync policy, every 100 ms: the policy comparable to etcd's
// default batch commit every 100 ms. Sync (the end of each timed write
// workload) is a Commit, which makes everything durable.
type RevkvFile struct{}

// Name implements Engine.
func (RevkvFile) Name() string { return "revkv+filelog" }

// Durable implements Durable.
func (RevkvFile) Durable() {}

// Open implements Engine.
func (RevkvFile) Open(dir string) (Store, error) {
	l, err := filelog.Open(dir, filelog.Options{Sync: filelog.SyncInterval})
	if err != nil {
		return nil, err
	}
	s, err := engine.Open(l, engine.Options{})
	if err != nil {
		return nil, err
	}
	return &revkvStore{s: watch.New(s, watch.Options{})}, nil
}

type revkvStore struct{ s *watch.Store }

func (r *revkvStore) Put(key, value []byte) error { _, err := r.s.Put(key, value); return err }

func (r *revkvStore) Get(key []byte) (bool, error) {
	kvs, _, err := r.s.Range(key, nil, 0, 0)
	return len(kvs) == 1, err
}

func (r *revkvStore) Scan(key []byte, limit int) (int, error) {
	kvs, _, err := r.s.Range(key, []byte{}, int64(limit), 0)
	return len(kvs), err
}

func (r *revkvStore) TxnPut(keys [][]byte, value []byte) error {
	id, err := r.s.TxnBegin()
	if err != nil {
		return err
	}
	for _, k := range keys {
		if _, err := r.s.TxnPut(id, k, value); err != nil {
			r.s.TxnEnd(id)
			return err
		}
	}
	return r.s.TxnEnd(id)
}

func (r *revkvStore) Sync() error  { return r.s.Commit() }
func (r *revkvStore) Close() error { return r.s.Close() }
func (r *revkvStore) Rev() int64   { return r.s.Rev() }

func (r *revkvStore) GetAt(key []byte, rev int64) (bool, error) {
	kvs, _, err := r.s.Range(key, nil, 0, rev)
	return len(kvs) == 1, err
}

func (r *revkvStore) Compact(rev int64) error { return r.s.Compact(rev) }
func (r *revkvStore) Hash() error             { _, err := r.s.HashByRev(0); return err }

func (r *revkvStore) Watch(key, end []byte, start int64, fn func(int), stop <-chan struct{}) error {
	w := r.s.NewWatcher()
	if _, err := w.WatchRange(watch.Request{Key: key, End: end, StartRev: start}); err != nil {
		w.Close()
		return err
	}
	go func() {
		<-stop
		w.Close()
	}()
	go func() {
		for resp := range w.Chan() {
			if len(resp.Events) > 0 {
				fn(len(resp.Events))
			}
		}
	}()
	return nil
}
