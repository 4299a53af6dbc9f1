package member

import (
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// Storage is the member's durable raft state: the log, the hard state and
// the snapshots (package raftstore on a persist.FS; memoryStorage for
// a member with no FS). Every method is called under the member's lock.
type Storage interface {
	raft.Storage
	// Save makes hs and ents durable before it returns. ents may replace
	// a suffix of the log (every entry at and after ents[0]'s index);
	// an empty hs is not written.
	Save(hs *raftpb.HardState, ents []*raftpb.Entry) error
	// ApplySnapshot makes a snapshot received from the leader durable and
	// drops every entry it covers.
	ApplySnapshot(snap *raftpb.Snapshot) error
	// CreateSnapshot records (durably) a snapshot of the state machine at
	// applied index i.
	CreateSnapshot(i uint64, cs *raftpb.ConfState, data []byte) (*raftpb.Snapshot, error)
	// Compact drops the entries up to i (at most the snapshot's index).
	Compact(i uint64) error
	Close() error
}

// memoryStorage is a Storage that keeps everything in memory: raft's
// MemoryStorage, with the member's Save.
type memoryStorage struct{ *raft.MemoryStorage }

// NewMemoryStorage returns a Storage in memory (nothing is durable): for
// tests and simulations, whose "restart" reopens a member on the same
// Storage value.
func NewMemoryStorage() Storage { return memoryStorage{raft.NewMemoryStorage()} }

func (s memoryStorage) Save(hs *raftpb.HardState, ents []*raftpb.Entry) error {
	if !raft.IsEmptyHardState(hs) {
		if err := s.SetHardState(hs); err != nil {
			return err
		}
	}
	return s.Append(ents)
}

func (s memoryStorage) Close() error { return nil }
