package compare

import (
	"github.com/hashicorp/go-memdb"
)

// Memdb is hashicorp/go-memdb: in memory, immutable radix trees.
type Memdb struct{}

// Name implements Engine.
func (Memdb) Name() string { return "go-memdb" }

type pair struct {
	Key   string
	Value []byte
}

var memSchema = &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{
	"kv": {Name: "kv", Indexes: map[string]*memdb.IndexSchema{
		"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Key"}},
	}},
}}

// Open implements Engine.
func (Memdb) Open(string) (Store, error) {
	db, err := memdb.NewMemDB(memSchema)
	if err != nil {
		return nil, err
	}
	return &memStore{db: db}, nil
}

type memStore struct{ db *memdb.MemDB }

func (s *memStore) Put(key, value []byte) error {
	txn := s.db.Txn(true)
	if err := txn.Insert("kv", &pair{Key: string(key), Value: value}); err != nil {
		txn.Abort()
		return err
	}
	txn.Commit()
	return nil
}

func (s *memStore) Get(key []byte) (bool, error) {
	v, err := s.db.Txn(false).First("kv", "id", string(key))
	return v != nil, err
}

func (s *memStore) Scan(key []byte, limit int) (int, error) {
	it, err := s.db.Txn(false).LowerBound("kv", "id", string(key))
	if err != nil {
		return 0, err
	}
	n := 0
	for obj := it.Next(); obj != nil && n < limit; obj = it.Next() {
		n++
	}
	return n, nil
}

func (s *memStore) TxnPut(keys [][]byte, value []byte) error {
	txn := s.db.Txn(true)
	for _, k := range keys {
		if err := txn.Insert("kv", &pair{Key: string(k), Value: value}); err != nil {
			txn.Abort()
			return err
		}
	}
	txn.Commit()
	return nil
}

func (s *memStore) Sync() error  { return nil }
func (s *memStore) Close() error { return nil }
