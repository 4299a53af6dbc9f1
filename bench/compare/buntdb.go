package compare

import (
	"path/filepath"

	"github.com/tidwall/buntdb"
)

// Buntdb is buntdb with its append-only file, synced every second (its
// default).
type Buntdb struct{}

// Name implements Engine.
func (Buntdb) Name() string { return "buntdb" }

// Open implements Engine.
func (Buntdb) Open(dir string) (Store, error) { return openBunt(dir) }

func openBunt(dir string) (*buntStore, error) {
	db, err := buntdb.Open(filepath.Join(dir, "bunt.db"))
	if err != nil {
		return nil, err
	}
	return &buntStore{db: db}, nil
}

type buntStore struct{ db *buntdb.DB }

func (s *buntStore) Put(key, value []byte) error {
	return s.db.Update(func(tx *buntdb.Tx) error {
		_, _, err := tx.Set(string(key), string(value), nil)
		return err
	})
}

func (s *buntStore) Get(key []byte) (bool, error) {
	found := false
	err := s.db.View(func(tx *buntdb.Tx) error {
		_, err := tx.Get(string(key))
		if err == buntdb.ErrNotFound {
			return nil
		}
		found = err == nil
		return err
	})
	return found, err
}

func (s *buntStore) Scan(key []byte, limit int) (int, error) {
	n := 0
	err := s.db.View(func(tx *buntdb.Tx) error {
		return tx.AscendGreaterOrEqual("", string(key), func(k, v string) bool {
			n++
			return n < limit
		})
	})
	return n, err
}

func (s *buntStore) TxnPut(keys [][]byte, value []byte) error {
	return s.db.Update(func(tx *buntdb.Tx) error {
		for _, k := range keys {
			if _, _, err := tx.Set(string(k), string(value), nil); err != nil {
				return err
			}
		}
		return nil
	})
}

// Sync has nothing to do: buntdb's writes are visible when Update returns
// and fsynced by its own once-a-second policy.
func (s *buntStore) Sync() error  { return nil }
func (s *buntStore) Close() error { return s.db.Close() }

// Durable: buntdb replays its append-only file.
func (Buntdb) Durable() {}
