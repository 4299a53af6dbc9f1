package member

import (
	"fmt"

	"github.com/revkv/revkv/etcd/raftstore"
)

var _ Storage = (*raftstore.Store)(nil)

// openRaftStore opens the member's durable log on c.FS/c.Dir.
func openRaftStore(c *Config) (Storage, error) {
	st, err := raftstore.Open(c.FS, c.Dir, raftstore.Options{Logger: c.Logger})
	if err != nil {
		return nil, fmt.Errorf("member %x: raft log in %s: %w", c.ID, c.Dir, err)
	}
	return st, nil
}
