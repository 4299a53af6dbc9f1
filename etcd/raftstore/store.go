package raftstore

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/revkv/revkv/persist"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// DefaultSegmentBytes is the size past which the log goes on in a new
// segment when Options.SegmentBytes is 0.
const DefaultSegmentBytes = 64 << 20

// Options configure a Store. The zero value is ready to use.
type Options struct {
	// Logger receives the warnings of Open (a torn tail cut, leftovers of
	// a crash removed). nil: slog.Default().
	Logger *slog.Logger
	// SegmentBytes is the size past which the log goes on in a new
	// segment file; old segments are removed once compaction covers them.
	// 0: DefaultSegmentBytes.
	SegmentBytes int64
}

// Store is the durable raft log, hard state and snapshot of one cluster
// member, in a directory of a persist.FS. It implements raft.Storage with
// the answers and errors of raft.MemoryStorage, from memory: the log is
// read from disk only by Open.
//
// Durability: Save, ApplySnapshot, CreateSnapshot and Compact make their
// change durable (written and fsynced) before they return nil; a change
// they returned an error for may or may not survive a crash (a Save: its
// entries and not its hard state, too). Calls that ErrInvalid or raft's
// errors refuse write nothing and leave the store usable. After a
// write or sync fails, the store refuses every later change (ErrFailed),
// so nothing is ever acknowledged on top of bytes the disk may not hold;
// reopen the directory to go on.
//
// Concurrency: a Store is safe for concurrent use (one mutex); raft calls
// it from the member's goroutine only. Entries handed to Save and
// returned by Entries are shared, not copied, as raft.MemoryStorage
// shares them: neither side may modify them.
type Store struct {
	mu sync.Mutex

	fsys     persist.FS
	dir      string
	log      *slog.Logger
	segBytes int64
	lock     io.Closer

	f    persist.File // the last segment, open for appending
	segs []segMeta    // every segment in the directory, oldest first; the last is f's
	size int64        // of the last segment: everything in it is durable

	state   logState
	hs      *raftpb.HardState // nil: none saved yet
	snap    *raftpb.Snapshot  // never nil (raftpb.EnsureSnapshot)
	snapSum uint64            // the checksum of snap's file (0: no file)

	err    error // the first write failure: every later write refuses
	closed bool
	buf    []byte

	// Replay only: the newest drop record's segment number, and the
	// newest snapshot's record (reset or snapshot, or a base's).
	dropped  uint64
	lastSnap mark
}

var _ raft.Storage = (*Store)(nil)

// segMeta is what the store keeps of a segment.
type segMeta struct {
	seq uint64
	// lastIndex is the last index of the log when the segment started
	// (its base record's): every entry it holds the replay of a later
	// segment misses is at or below it (see removableSegments).
	lastIndex uint64
}

// InitialState implements raft.Storage: the last hard state saved (nil if
// none) and the configuration of the newest snapshot.
func (s *Store) InitialState() (*raftpb.HardState, *raftpb.ConfState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var hs *raftpb.HardState
	if s.hs != nil {
		hs = proto.Clone(s.hs).(*raftpb.HardState)
	}
	return hs, proto.Clone(s.snap.GetMetadata().GetConfState()).(*raftpb.ConfState), nil
}

// Entries implements raft.Storage: the entries in [lo, hi), at most
// maxSize bytes of their encoding but at least one. raft.ErrCompacted if
// lo is compacted; raft.ErrUnavailable if the log holds no entry or hi is
// past the last one.
func (s *Store) Entries(lo, hi, maxSize uint64) ([]*raftpb.Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := &s.state
	switch {
	case lo <= l.offset():
		return nil, raft.ErrCompacted
	case hi > l.last()+1, lo > hi: // raft.MemoryStorage panics
		return nil, raft.ErrUnavailable
	case len(l.ents) == 1:
		return nil, raft.ErrUnavailable
	}
	ents := limitSize(l.ents[lo-l.offset():hi-l.offset()], maxSize)
	return ents[:len(ents):len(ents)], nil
}

// limitSize returns the longest prefix of ents (at least one entry) whose
// encodings add up to at most maxSize bytes, as raft counts them.
func limitSize(ents []*raftpb.Entry, maxSize uint64) []*raftpb.Entry {
	if len(ents) == 0 {
		return ents
	}
	size := uint64(proto.Size(ents[0]))
	for n := 1; n < len(ents); n++ {
		size += uint64(proto.Size(ents[n]))
		if size > maxSize {
			return ents[:n]
		}
	}
	return ents
}

// Term implements raft.Storage: the term of entry i, for i from
// FirstIndex()-1 to LastIndex(); raft.ErrCompacted below,
// raft.ErrUnavailable above.
func (s *Store) Term(i uint64) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := &s.state
	switch {
	case i < l.offset():
		return 0, raft.ErrCompacted
	case i > l.last():
		return 0, raft.ErrUnavailable
	}
	return l.term(i), nil
}

// LastIndex implements raft.Storage.
func (s *Store) LastIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state.last(), nil
}

// FirstIndex implements raft.Storage.
func (s *Store) FirstIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state.first(), nil
}

// Snapshot implements raft.Storage: a copy of the newest snapshot (an
// empty one at index 0 if there is none).
func (s *Store) Snapshot() (*raftpb.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return proto.Clone(s.snap).(*raftpb.Snapshot), nil
}

// Save makes ents and hs durable, in that order (so a crash between them
// never leaves a commit index past the entries saved), and returns once
// they are. ents are consecutive; they replace every entry at and after
// ents[0]'s index, and those at or below a compacted index are skipped,
// as raft.MemoryStorage.Append does. An empty hs (raft.IsEmptyHardState,
// nil included) is not written. ErrInvalid if ents are not consecutive,
// leave a gap after the last entry or encode to more than 1 GiB (nothing
// is written); ErrFailed or
// ErrClosed; or the filesystem's error (and the store refuses every later
// write).
func (s *Store) Save(hs *raftpb.HardState, ents []*raftpb.Entry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writable(); err != nil {
		return err
	}
	if err := checkConsecutive(ents); err != nil {
		return err
	}
	if err := s.state.checkAppend(ents); err != nil {
		return err
	}
	b := s.buf[:0]
	if live := liveEntries(ents, s.state.first()); len(live) > 0 {
		p, err := appendEntries(nil, live)
		if err != nil {
			return err
		}
		if len(p) > maxPayload {
			return fmt.Errorf("entries of %d bytes in one save, at most %d: %w", len(p), maxPayload, ErrInvalid)
		}
		b = appendRecord(b, kindEntries, p)
	}
	saveHS := !raft.IsEmptyHardState(hs)
	if saveHS {
		p, err := appendHard(nil, hs)
		if err != nil {
			return err
		}
		b = appendRecord(b, kindHard, p)
	}
	s.buf = b
	if len(b) == 0 {
		return nil
	}
	if err := s.write(b); err != nil {
		return err
	}
	s.state.appendEntries(ents)
	if saveHS {
		s.hs = proto.Clone(hs).(*raftpb.HardState)
	}
	return nil
}

// checkConsecutive checks that ents have consecutive indexes, from 1 on.
func checkConsecutive(ents []*raftpb.Entry) error {
	for i, e := range ents {
		if e == nil {
			return fmt.Errorf("entry %d is nil: %w", i, ErrInvalid)
		}
		if e.GetIndex() != ents[0].GetIndex()+uint64(i) || e.GetIndex() == 0 {
			return fmt.Errorf("entry %d has index %d after index %d: %w", i, e.GetIndex(), ents[0].GetIndex(), ErrInvalid)
		}
	}
	return nil
}

// liveEntries returns the entries of ents from index first on.
func liveEntries(ents []*raftpb.Entry, first uint64) []*raftpb.Entry {
	if len(ents) == 0 || ents[len(ents)-1].GetIndex() < first {
		return nil
	}
	if ents[0].GetIndex() < first {
		return ents[first-ents[0].GetIndex():]
	}
	return ents
}

// ApplySnapshot replaces the log with snap, a snapshot received from the
// leader: once it returns, snap (its data included) is durable and every
// entry is dropped. The hard state is left alone, as raft.MemoryStorage
// leaves it: a crash after ApplySnapshot and before the Save of the
// Ready's hard state leaves a commit index below the snapshot's, on which
// raft refuses to start (it panics), so the caller raises it before
// restarting raft (member.repairHardState does; see
// TestRestartAfterApplySnapshot). raft.ErrSnapOutOfDate if the store has a snapshot at
// the same index or a later one (as raft.MemoryStorage, a first snapshot
// at index 0 is accepted: a bootstrap that sets only the configuration);
// ErrFailed, ErrClosed or the filesystem's error (and the store refuses
// every later write).
func (s *Store) ApplySnapshot(snap *raftpb.Snapshot) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writable(); err != nil {
		return err
	}
	snap = cloneSnapshot(snap)
	index, term := snap.GetMetadata().GetIndex(), snap.GetMetadata().GetTerm()
	if cur := s.snap.GetMetadata().GetIndex(); cur != 0 && cur >= index {
		return raft.ErrSnapOutOfDate
	}
	file, sum, err := encodeSnapshot(snap)
	if err != nil {
		return err
	}
	// The reset record goes first: Open cuts one that no snapshot file
	// backs (a crash before the file was durable), while a snapshot file
	// alone could not say whether it was applied or only created.
	if err := s.write(appendRecord(s.buf[:0], kindReset, appendReset(nil, mark{index, term, sum}))); err != nil {
		return err
	}
	if err := s.writeSnapshot(index, file); err != nil {
		return err
	}
	s.snap, s.snapSum = snap, sum
	s.state.reset(index, term)
	s.removeOldSnapshots()
	return nil
}

// CreateSnapshot makes a snapshot of the state machine at applied index
// i, with configuration cs (nil: the newest snapshot's) and data, durable
// before it returns; the log is unchanged (Compact drops entries).
// raft.ErrSnapOutOfDate if i is not past the newest snapshot's index;
// raft.ErrCompacted if entry i is compacted (its term is gone);
// ErrInvalid if i is past the last entry; ErrFailed, ErrClosed or the
// filesystem's error (and the store refuses every later write).
func (s *Store) CreateSnapshot(i uint64, cs *raftpb.ConfState, data []byte) (*raftpb.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writable(); err != nil {
		return nil, err
	}
	l := &s.state
	switch {
	case i <= s.snap.GetMetadata().GetIndex():
		return nil, raft.ErrSnapOutOfDate
	case i > l.last():
		return nil, fmt.Errorf("snapshot at %d past the last index %d: %w", i, l.last(), ErrInvalid)
	case i < l.offset():
		return nil, raft.ErrCompacted
	}
	snap := cloneSnapshot(s.snap)
	snap.Metadata.Index, snap.Metadata.Term = new(i), new(l.term(i))
	if cs != nil {
		snap.Metadata.ConfState = raftpb.EnsureConfState(proto.Clone(cs).(*raftpb.ConfState))
	}
	snap.Data = data
	file, sum, err := encodeSnapshot(snap)
	if err != nil {
		return nil, err
	}
	if err := s.writeSnapshot(i, file); err != nil {
		return nil, err
	}
	// The record comes after the file: Open finds the file of the newest
	// snapshot record, or a newer one, or reports it lost.
	if err := s.write(appendRecord(s.buf[:0], kindSnap, appendReset(nil, mark{i, l.term(i), sum}))); err != nil {
		return nil, err
	}
	s.snap, s.snapSum = snap, sum
	s.removeOldSnapshots()
	return proto.Clone(snap).(*raftpb.Snapshot), nil
}

// Compact drops the entries up to i, durably (raft needs i at or below
// the applied index; the member keeps it at or below the newest
// snapshot's, so a follower that falls behind gets the snapshot).
// raft.ErrCompacted if i is already compacted; ErrInvalid if i is past
// the last entry; ErrFailed, ErrClosed or the filesystem's error (and the
// store refuses every later write). Segments the compaction covers are
// removed (a failure to remove one is logged, and retried at the next
// compaction); ApplySnapshot leaves them to the next Compact.
func (s *Store) Compact(i uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writable(); err != nil {
		return err
	}
	l := &s.state
	switch {
	case i <= l.offset():
		return raft.ErrCompacted
	case i > l.last():
		return fmt.Errorf("compact %d past the last index %d: %w", i, l.last(), ErrInvalid)
	}
	b := appendRecord(s.buf[:0], kindCompact, appendCompact(nil, mark{index: i, term: l.term(i)}))
	// Segments go only after a drop record saying so is durable: Open
	// tells segments removed from segments lost by it.
	drop := removableSegments(s.segs, i)
	if drop > 0 {
		b = appendRecord(b, kindDrop, appendDrop(nil, s.segs[drop].seq))
	}
	s.buf = b
	if err := s.write(b); err != nil {
		return err
	}
	l.compact(i)
	s.removeSegments(drop)
	return nil
}

// Close closes the segment and releases the directory. Reads still
// answer from memory; writes return ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return errors.Join(s.f.Close(), s.lock.Close())
}

// writable says whether the store may take a change.
func (s *Store) writable() error {
	switch {
	case s.closed:
		return ErrClosed
	case s.err != nil:
		return fmt.Errorf("%w: %w", ErrFailed, s.err)
	}
	return nil
}

// cloneSnapshot returns a copy of snap (nil: an empty snapshot) with
// every field raft reads set (raftpb.EnsureSnapshot, whose ConfState's
// AutoLeave too: InitialState would set it).
func cloneSnapshot(snap *raftpb.Snapshot) *raftpb.Snapshot {
	if snap == nil {
		snap = &raftpb.Snapshot{}
	}
	snap = raftpb.EnsureSnapshot(proto.Clone(snap).(*raftpb.Snapshot))
	raftpb.EnsureConfState(snap.Metadata.ConfState)
	return snap
}
