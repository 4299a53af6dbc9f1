package member

import "fmt"

// openRaftStore opens the raftstore on c.FS/c.Dir.
// TODO(raft-store): until package raftstore lands, a member on an FS is refused.
func openRaftStore(c *Config) (Storage, error) {
	return nil, fmt.Errorf("member %x: raftstore on %s not available yet: %w", c.ID, c.Dir, ErrInvalidConfig)
}
