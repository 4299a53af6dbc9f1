package compare

import (
	"context"
	"path/filepath"

	"go.etcd.io/etcd/pkg/v3/traceutil"
	"go.etcd.io/etcd/server/v3/lease"
	"go.etcd.io/etcd/server/v3/storage/backend"
	"go.etcd.io/etcd/server/v3/storage/mvcc"
	"go.uber.org/zap"
)

// Etcd is etcd's storage/mvcc store on its bbolt backend, at default
// settings (a batch commit every 100 ms or 10,000 writes).
type Etcd struct{}

// Name implements Engine.
func (Etcd) Name() string { return "etcd" }

// Open implements Engine.
func (Etcd) Open(dir string) (Store, error) { return openEtcd(dir) }

func openEtcd(dir string) (*etcdStore, error) {
	b := backend.NewDefaultBackend(zap.NewNop(), filepath.Join(dir, "etcd.db"))
	kv := mvcc.New(zap.NewNop(), b, &lease.FakeLessor{}, mvcc.StoreConfig{})
	return &etcdStore{b: b, kv: kv}, nil
}

type etcdStore struct {
	b  backend.Backend
	kv mvcc.WatchableKV
}

var ctx = context.Background()

func (e *etcdStore) Put(key, value []byte) error { e.kv.Put(key, value, lease.NoLease); return nil }

func (e *etcdStore) Get(key []byte) (bool, error) {
	r, err := e.kv.Range(ctx, key, nil, mvcc.RangeOptions{})
	if err != nil {
		return false, err
	}
	return len(r.KVs) == 1, nil
}

func (e *etcdStore) Scan(key []byte, limit int) (int, error) {
	r, err := e.kv.Range(ctx, key, []byte{}, mvcc.RangeOptions{Limit: int64(limit)})
	if err != nil {
		return 0, err
	}
	return len(r.KVs), nil
}

func (e *etcdStore) TxnPut(keys [][]byte, value []byte) error {
	tw := e.kv.Write(traceutil.TODO())
	for _, k := range keys {
		tw.Put(k, value, lease.NoLease)
	}
	tw.End()
	return nil
}

func (e *etcdStore) Sync() error { e.b.ForceCommit(); return nil }

func (e *etcdStore) Close() error {
	e.kv.Close()
	return e.b.Close()
}

func (e *etcdStore) Rev() int64 { return e.kv.Rev() }

func (e *etcdStore) GetAt(key []byte, rev int64) (bool, error) {
	r, err := e.kv.Range(ctx, key, nil, mvcc.RangeOptions{Rev: rev})
	if err != nil {
		return false, err
	}
	return len(r.KVs) == 1, nil
}

func (e *etcdStore) Compact(rev int64) error {
	done, err := e.kv.Compact(traceutil.TODO(), rev)
	if err != nil {
		return err
	}
	<-done
	return nil
}

func (e *etcdStore) Hash() error {
	_, _, err := e.kv.HashStorage().HashByRev(0)
	return err
}

func (e *etcdStore) Watch(key, end []byte, start int64, fn func(int), stop <-chan struct{}) error {
	ws := e.kv.NewWatchStream()
	// ID 0 is clientv3.AutoWatchID: the stream picks one.
	if _, err := ws.Watch(ctx, 0, key, end, start); err != nil {
		ws.Close()
		return err
	}
	go func() {
		<-stop
		ws.Close()
	}()
	go func() {
		for resp := range ws.Chan() {
			if len(resp.Events) > 0 {
				fn(len(resp.Events))
			}
		}
	}()
	return nil
}

// Durable: etcd reopens its bbolt file.
func (Etcd) Durable() {}
