package simtest

import (
	"bytes"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"

	"github.com/revkv/revkv/etcd/member"
	"github.com/revkv/revkv/etcd/raftstore"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// raftDir is where each member's raft log lives on its own disk.
const raftDir = "raft"

// entryRecord is what one member's raft log committed, over all its
// incarnations: the simulation's evidence for "identical committed
// prefixes". It outlives crashes (it is the simulation's, not the
// member's), and is rebuilt from the disk at each restart.
type entryRecord struct {
	log       map[uint64]*raftpb.Entry // the log as last written (since the last snapshot)
	committed map[uint64]*raftpb.Entry // every entry seen at or below a commit index
	commit    uint64
	err       error // the first committed entry seen to change
}

func newEntryRecord() *entryRecord {
	return &entryRecord{log: map[uint64]*raftpb.Entry{}, committed: map[uint64]*raftpb.Entry{}}
}

func sameEntry(a, b *raftpb.Entry) bool {
	return a.GetIndex() == b.GetIndex() && a.GetTerm() == b.GetTerm() && a.GetType() == b.GetType() && bytes.Equal(a.GetData(), b.GetData())
}

// freeze records e as committed, failing if a different entry was
// committed at its index before.
func (r *entryRecord) freeze(e *raftpb.Entry, how string) {
	i := e.GetIndex()
	if c, ok := r.committed[i]; ok && !sameEntry(c, e) && r.err == nil {
		r.err = fmt.Errorf("committed entry %d changed (%s): term %d (%d bytes), now term %d (%d bytes)",
			i, how, c.GetTerm(), len(c.GetData()), e.GetTerm(), len(e.GetData()))
	}
	r.committed[i] = e
}

// advance raises the commit index: the entries of the log up to it are
// committed.
func (r *entryRecord) advance(commit uint64, how string) {
	for i := r.commit + 1; i <= commit; i++ {
		if e, ok := r.log[i]; ok {
			r.freeze(e, how)
		}
	}
	r.commit = max(r.commit, commit)
}

func (r *entryRecord) committedEntries() []*raftpb.Entry {
	var out []*raftpb.Entry
	for _, i := range slices.Sorted(maps.Keys(r.committed)) {
		out = append(out, r.committed[i])
	}
	return out
}

// recordingStorage is the member's raftstore (on the node's memfs), with
// every successful write also recorded in the node's entryRecord.
type recordingStorage struct {
	member.Storage
	rec *entryRecord
}

// openRecording opens n's raft log and reloads n's record from what
// survived on the disk.
func openRecording(n *node) (*recordingStorage, error) {
	st, err := raftstore.Open(n.fs, raftDir, raftstore.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	r := &recordingStorage{Storage: st, rec: n.rec}
	if err := r.reload(); err != nil {
		_ = st.Close()
		return nil, err
	}
	return r, nil
}

func (r *recordingStorage) reload() error {
	clear(r.rec.log)
	first, err := r.FirstIndex()
	if err != nil {
		return err
	}
	last, err := r.LastIndex()
	if err != nil {
		return err
	}
	if last >= first {
		ents, err := r.Entries(first, last+1, math.MaxUint64)
		if err != nil {
			return err
		}
		for _, e := range ents {
			r.rec.log[e.GetIndex()] = proto.Clone(e).(*raftpb.Entry)
		}
	}
	hs, _, err := r.InitialState()
	if err != nil {
		return err
	}
	// Everything at or below the commit index on disk, or below one seen
	// before the crash, must be what was committed there.
	for i, e := range r.rec.log {
		if i <= max(r.rec.commit, hs.GetCommit()) {
			r.rec.freeze(e, "reloaded after a restart")
		}
	}
	r.rec.commit = max(r.rec.commit, hs.GetCommit())
	return nil
}

func (r *recordingStorage) Save(hs *raftpb.HardState, ents []*raftpb.Entry) error {
	if err := r.Storage.Save(hs, ents); err != nil {
		return err
	}
	if len(ents) > 0 {
		first := ents[0].GetIndex()
		for i := range r.rec.log {
			if i >= first {
				delete(r.rec.log, i)
			}
		}
		for _, e := range ents {
			c := proto.Clone(e).(*raftpb.Entry)
			r.rec.log[e.GetIndex()] = c
			if c.GetIndex() <= r.rec.commit {
				r.rec.freeze(c, "overwritten by Save")
			}
		}
	}
	if hs != nil {
		r.rec.advance(hs.GetCommit(), "Save")
	}
	return nil
}

func (r *recordingStorage) ApplySnapshot(snap *raftpb.Snapshot) error {
	if err := r.Storage.ApplySnapshot(snap); err != nil {
		return err
	}
	clear(r.rec.log)
	r.rec.commit = max(r.rec.commit, snap.GetMetadata().GetIndex())
	return nil
}
