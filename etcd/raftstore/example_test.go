package raftstore_test

import (
	"fmt"
	"log/slog"

	"github.com/revkv/revkv/etcd/raftstore"
	"github.com/revkv/revkv/persist/memfs"
	"go.etcd.io/raft/v3/raftpb"
)

// A member persists each raft.Ready's entries and hard state with Save
// before it sends its messages; after a crash, Open gives raft back
// everything Save returned for.
func Example() {
	fs := memfs.New(memfs.Options{Crash: memfs.CrashTorn}) // persist.OS in production
	opts := raftstore.Options{Logger: slog.New(slog.DiscardHandler)}
	s, err := raftstore.Open(fs, "member-1", opts)
	if err != nil {
		panic(err)
	}
	hs := &raftpb.HardState{Term: new(uint64(1)), Vote: new(uint64(1)), Commit: new(uint64(1))}
	ents := []*raftpb.Entry{
		{Index: new(uint64(1)), Term: new(uint64(1)), Data: []byte("put k v")},
		{Index: new(uint64(2)), Term: new(uint64(1)), Data: []byte("put k w")},
	}
	if err := s.Save(hs, ents); err != nil {
		panic(err) // the store refuses further writes: stop the member
	}

	fs.Crash() // power loss: only what was synced survives
	s, err = raftstore.Open(fs, "member-1", opts)
	if err != nil {
		panic(err)
	}
	defer s.Close()
	hs, _, _ = s.InitialState()
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	got, _ := s.Entries(first, last+1, 1<<20)
	fmt.Printf("term %d, commit %d\n", hs.GetTerm(), hs.GetCommit())
	for _, e := range got {
		fmt.Printf("%d: %s\n", e.GetIndex(), e.GetData())
	}
	// Output:
	// term 1, commit 1
	// 1: put k v
	// 2: put k w
}
