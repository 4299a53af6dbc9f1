package raftstore

import (
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"

	"github.com/revkv/revkv/persist"
)

// File names: segments "<seq>.seg" and snapshots "snap-<index>.snap",
// numbers in 16 hex digits (so they sort by name); "<name>.tmp" is a
// snapshot being written; "LOCK" is the directory's lock.
const (
	segSuffix  = ".seg"
	snapPrefix = "snap-"
	snapSuffix = ".snap"
	tmpSuffix  = ".tmp"
	lockName   = "LOCK"
)

func segName(seq uint64) string          { return fmt.Sprintf("%016x%s", seq, segSuffix) }
func snapName(index uint64) string       { return fmt.Sprintf("%s%016x%s", snapPrefix, index, snapSuffix) }
func (s *Store) path(name string) string { return path.Join(s.dir, name) }

// parseNumber reads the 16 hex digits of a file name between prefix and
// suffix.
func parseNumber(name, prefix, suffix string) (uint64, bool) {
	hex, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return 0, false
	}
	if hex, ok = strings.CutSuffix(hex, suffix); !ok || len(hex) != 16 {
		return 0, false
	}
	n, err := strconv.ParseUint(hex, 16, 64)
	return n, err == nil
}

// write appends b (whole records) to the last segment, going on in a new
// segment first if the last is full, and syncs it.
func (s *Store) write(b []byte) error {
	if s.size >= s.segBytes {
		if err := s.rotate(); err != nil {
			return err
		}
	}
	if _, err := s.f.Write(b); err != nil {
		return s.fail(fmt.Errorf("write %s: %w", s.path(segName(s.lastSeq())), err))
	}
	if err := s.f.Sync(); err != nil {
		return s.fail(fmt.Errorf("sync %s: %w", s.path(segName(s.lastSeq())), err))
	}
	s.size += int64(len(b))
	return nil
}

func (s *Store) lastSeq() uint64 { return s.segs[len(s.segs)-1].seq }

// fail records the first write failure, after which the store refuses
// every change, and returns err. It cuts the segment back to what was
// durable before: after a failed fsync, Linux reports the unsynced pages
// clean, so a reopen in this process would read records the disk may
// never hold, and append after them. (Best effort: if that fails too,
// only a crash shows what the disk holds, and Open copes with a tail.)
func (s *Store) fail(err error) error {
	if s.err == nil {
		s.err = err
	}
	if s.f.Truncate(s.size) == nil {
		s.f.Seek(s.size, io.SeekStart)
		s.f.Sync()
	}
	return err
}

// rotate seals the last segment (everything in it is synced already) and
// starts the next, whose base record holds the log's state: its header
// and base are durable, and so is its name, before a record goes in it.
func (s *Store) rotate() error {
	seq := s.lastSeq() + 1
	p, err := appendBase(nil, s.baseState())
	if err != nil {
		return err // the hard state changed under Save's feet: nothing written
	}
	b := appendRecord(appendSegHeader(nil, segHeader{seq: seq, prevSize: s.size}), kindBase, p)
	name := s.path(segName(seq))
	f, err := s.createDurable(name, b)
	if err != nil {
		return s.fail(err)
	}
	if err := s.f.Close(); err != nil {
		s.log.Warn("raftstore: closing a sealed segment", "err", err)
	}
	s.f, s.size = f, int64(len(b))
	s.segs = append(s.segs, segMeta{seq: seq, lastIndex: s.state.last()})
	return nil
}

// createDurable creates name holding b, durably (synced, and its name
// too). On failure it removes what it made, so a reopen in this process
// does not read bytes the disk may not hold.
func (s *Store) createDurable(name string, b []byte) (persist.File, error) {
	f, err := s.fsys.Create(name)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", name, err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = s.fsys.SyncDir(s.dir)
	}
	if err != nil {
		f.Close()
		s.fsys.Remove(name)
		return nil, fmt.Errorf("create %s: %w", name, err)
	}
	return f, nil
}

// baseState is the base record of a segment starting now.
func (s *Store) baseState() base {
	l := &s.state
	return base{
		dummyIndex: l.offset(), dummyTerm: l.offsetTerm(), lastIndex: l.last(), lastTerm: l.term(l.last()),
		snap: mark{index: s.snap.GetMetadata().GetIndex(), sum: s.snapSum}, hs: s.hs,
	}
}

// writeSnapshot makes file, a snapshot at index, durable under its name:
// written to a temporary file, synced, renamed, the directory synced.
func (s *Store) writeSnapshot(index uint64, file []byte) error {
	name := s.path(snapName(index))
	tmp := name + tmpSuffix
	f, err := s.fsys.Create(tmp)
	if err != nil {
		return s.fail(fmt.Errorf("create %s: %w", tmp, err))
	}
	_, err = f.Write(file)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = s.fsys.Rename(tmp, name)
	}
	if err == nil {
		err = s.fsys.SyncDir(s.dir)
	}
	if err != nil {
		s.fsys.Remove(tmp)
		return s.fail(fmt.Errorf("snapshot %s: %w", name, err))
	}
	return nil
}

// removeOldSnapshots removes the snapshot files older than the newest.
// A failure is only logged: Open removes what is left.
func (s *Store) removeOldSnapshots() {
	names, err := s.fsys.List(s.dir)
	if err != nil {
		s.log.Warn("raftstore: listing old snapshots", "dir", s.dir, "err", err)
		return
	}
	newest := s.snap.GetMetadata().GetIndex()
	for _, name := range names {
		if index, ok := parseNumber(name, snapPrefix, snapSuffix); ok && index < newest {
			if err := s.fsys.Remove(s.path(name)); err != nil {
				s.log.Warn("raftstore: removing an old snapshot", "file", s.path(name), "err", err)
			}
		}
	}
}

// removeSegments removes the n oldest segments, which the log no longer
// needs (see removableSegments), oldest first, so that whatever a crash
// keeps of them is a suffix, which removableSegments allowed as well. A
// failure is only logged: the next compaction retries.
func (s *Store) removeSegments(n int) {
	if n == 0 {
		return
	}
	removed := 0
	for _, seg := range s.segs[:n] {
		if err := s.fsys.Remove(s.path(segName(seg.seq))); err != nil {
			s.log.Warn("raftstore: removing a compacted segment", "file", s.path(segName(seg.seq)), "err", err)
			break
		}
		removed++
	}
	s.segs = s.segs[removed:]
	if err := s.fsys.SyncDir(s.dir); err != nil {
		s.log.Warn("raftstore: syncing the directory after removing segments", "dir", s.dir, "err", err)
	}
}

// removableSegments returns how many of the oldest segments may go, the
// log's entries being compacted up to offset (durably): the largest k
// such that every segment up to the k-th (counting from 0) started with
// a last index at or below offset. Open replays from the first segment
// left as if the entries up to its base's last index were compacted: so
// they must be, for it and for any segment before it that a crash in the
// middle of the removals keeps.
func removableSegments(segs []segMeta, offset uint64) int {
	n := 0
	for k, seg := range segs {
		if seg.lastIndex > offset {
			break
		}
		n = k
	}
	return n
}
