package raftstore

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"slices"
	"strings"

	"github.com/revkv/revkv/persist"
	"google.golang.org/protobuf/proto"
)

// Open opens the store in dir of fsys, creating the directory and an
// empty store if needed, and takes the directory's lock (persist.ErrLocked
// if another Store holds it). It reads the whole log back into memory.
//
// A torn tail of the last segment (an append a crash cut short: its end
// missing, or zeros where it should be) is cut, with a warning, and so is
// a snapshot's reset record whose snapshot file never became durable;
// damage anywhere else (a checksum that fails, a missing or truncated
// segment, records that do not follow each other) is a *DamageError
// wrapping ErrCorrupt, never skipped.
func Open(fsys persist.FS, dir string, opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = DefaultSegmentBytes
	}
	if err := fsys.MkdirAll(dir); err != nil {
		return nil, err
	}
	s := &Store{fsys: fsys, dir: dir, log: opts.Logger, segBytes: opts.SegmentBytes}
	lock, err := fsys.Lock(s.path(lockName))
	if err != nil {
		return nil, err
	}
	s.lock = lock
	if err := s.load(); err != nil {
		if s.f != nil {
			s.f.Close()
		}
		lock.Close()
		return nil, err
	}
	return s, nil
}

// dirFiles is what a directory holds, by kind.
type dirFiles struct {
	segs  []uint64 // sequence numbers, ascending
	snaps []uint64 // indexes, ascending
	tmps  []string // names
}

func listDir(fsys persist.FS, dir string) (dirFiles, error) {
	names, err := fsys.List(dir)
	if err != nil {
		return dirFiles{}, err
	}
	var d dirFiles
	for _, name := range names {
		if seq, ok := parseNumber(name, "", segSuffix); ok {
			d.segs = append(d.segs, seq)
		} else if index, ok := parseNumber(name, snapPrefix, snapSuffix); ok {
			d.snaps = append(d.snaps, index)
		} else if strings.HasSuffix(name, tmpSuffix) {
			d.tmps = append(d.tmps, name)
		}
	}
	slices.Sort(d.segs)
	slices.Sort(d.snaps)
	return d, nil
}

// load reads the directory into s, then cleans up after a crash: only
// once everything checked, so a store found damaged is left as it was.
func (s *Store) load() error {
	d, err := listDir(s.fsys, s.dir)
	if err != nil {
		return err
	}
	if err := s.loadSnapshot(d.snaps); err != nil {
		return err
	}
	segs, unfinished, err := s.readSegments(d.segs)
	if err != nil {
		return err
	}
	if len(segs) > 0 {
		if err := s.replaySegments(segs); err != nil {
			return err
		}
	} else if len(d.snaps) > 0 {
		return &DamageError{File: s.dir, Err: errors.New("a snapshot but no log segment")}
	}
	if err := s.cleanUp(d, unfinished); err != nil {
		return err
	}
	if len(segs) == 0 {
		return s.create()
	}
	if err := s.openLast(&segs[len(segs)-1]); err != nil {
		return err
	}
	// What Open read may be only in this machine's memory: a process that
	// wrote it before this one may have died with its fsync failed, or
	// its rename not yet synced. Make it durable before writing on top.
	if err := s.f.Sync(); err != nil {
		return err
	}
	return s.fsys.SyncDir(s.dir)
}

// replaySegments rebuilds the state from segs, first cutting the last
// record if it is the reset record of a snapshot never made durable.
func (s *Store) replaySegments(segs []segment) error {
	last := &segs[len(segs)-1]
	if s.unbackedReset(last) {
		rec := last.recs[len(last.recs)-1]
		last.recs, last.cut = last.recs[:len(last.recs)-1], rec.off
		last.cutWhy = "the record of a snapshot whose file never became durable"
	}
	return s.replay(segs)
}

// cleanUp removes what a crash left and the store does not need: a last
// segment it had only begun (unfinished, "" if none), temporary files,
// snapshots older than the newest.
func (s *Store) cleanUp(d dirFiles, unfinished string) error {
	remove := d.tmps
	if unfinished != "" {
		remove = append(remove, unfinished)
	}
	for _, name := range remove {
		s.log.Warn("raftstore: removing a file a crash left unfinished", "file", s.path(name))
		if err := s.fsys.Remove(s.path(name)); err != nil {
			return err
		}
	}
	if len(d.snaps) > 1 {
		s.removeOldSnapshots()
	}
	return nil
}

// loadSnapshot reads the newest snapshot of indexes (none: an empty one).
func (s *Store) loadSnapshot(indexes []uint64) error {
	s.snap = cloneSnapshot(nil)
	if len(indexes) == 0 {
		return nil
	}
	index := indexes[len(indexes)-1]
	name := snapName(index)
	b, err := readFile(s.fsys, s.path(name))
	if err != nil {
		return err
	}
	snap, sum, err := decodeSnapshot(b)
	if err == nil && snap.GetMetadata().GetIndex() != index {
		err = fmt.Errorf("snapshot at index %d in the file of index %d", snap.GetMetadata().GetIndex(), index)
	}
	if err != nil {
		return &DamageError{File: s.path(name), Err: err}
	}
	s.snap, s.snapSum = cloneSnapshot(snap), sum
	return nil
}

func readFile(fsys persist.FS, name string) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return nil, err
	}
	b := make([]byte, size)
	if _, err := f.ReadAt(b, 0); err != nil && !(errors.Is(err, io.EOF) && size == int64(len(b))) {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return b, nil
}

// segment is a segment file read back.
type segment struct {
	name string
	size int64 // of the file
	hdr  segHeader
	base base
	recs []record // after the base
	// cut is where a torn tail starts (the last segment only), -1 if
	// none; cutWhy says what is cut.
	cut    int64
	cutWhy string
}

// readSegments reads the segments numbered seqs: consecutive, each but
// the last whole. A last segment torn before its base record was whole
// (the crash came while it was being created) is left out, and its name
// returned as unfinished.
func (s *Store) readSegments(seqs []uint64) (segs []segment, unfinished string, err error) {
	for i, seq := range seqs {
		name := segName(seq)
		if i > 0 && seq != seqs[i-1]+1 {
			return nil, "", &DamageError{File: s.path(segName(seqs[i-1] + 1)), Err: errors.New("segment missing")}
		}
		b, err := readFile(s.fsys, s.path(name))
		if err != nil {
			return nil, "", err
		}
		seg, err := decodeSegment(s.path(name), b, i == len(seqs)-1)
		if err != nil {
			return nil, "", err
		}
		if seg == nil {
			return segs, name, nil
		}
		if seg.hdr.seq != seq {
			return nil, "", &DamageError{File: s.path(name), Err: fmt.Errorf("segment %d in the file of segment %d", seg.hdr.seq, seq)}
		}
		if i > 0 && seg.hdr.prevSize != segs[i-1].size {
			return nil, "", &DamageError{File: s.path(segs[i-1].name), Offset: segs[i-1].size, Err: fmt.Errorf("segment of %d bytes, sealed at %d", segs[i-1].size, seg.hdr.prevSize)}
		}
		segs = append(segs, *seg)
	}
	return segs, "", nil
}

// decodeSegment checks a segment's bytes b: its header, its records up
// to the first that does not check (a torn tail if last allows it and
// the bytes have its shape; damage otherwise) and its base record, and
// decodes the base. nil, nil: the segment is torn before its base record
// was whole, so it held nothing yet.
// Errors name the file as file.
func decodeSegment(file string, b []byte, last bool) (*segment, error) {
	hdr, err := parseSegHeader(b)
	if err != nil {
		if last && (errors.Is(err, errShortHeader) || tornShape(b, 0, segHdrSize)) {
			return nil, nil
		}
		return nil, &DamageError{File: file, Err: err}
	}
	seg := &segment{name: path.Base(file), size: int64(len(b)), hdr: hdr, cut: -1}
	recs, st := scanRecords(b, segHdrSize)
	if st != nil {
		if !last || !st.torn {
			return nil, &DamageError{File: file, Offset: st.off, Err: st.err}
		}
		seg.cut, seg.cutWhy = st.off, "a torn tail: "+st.err.Error()
	}
	if len(recs) == 0 || recs[0].kind != kindBase {
		if last && len(recs) == 0 {
			return nil, nil
		}
		return nil, &DamageError{File: file, Offset: segHdrSize, Err: errors.New("segment does not start with a base record")}
	}
	if seg.base, err = decodeBase(recs[0].payload); err != nil {
		return nil, &DamageError{File: file, Offset: recs[0].off, Err: err}
	}
	seg.recs = recs[1:]
	return seg, nil
}

// unbackedReset says whether the last record of the log is the reset
// record of a snapshot whose file is not the newest snapshot (nor older
// than it): ApplySnapshot writes the record first and the file after, so
// a crash between the two leaves such a record last, and the snapshot it
// names does not exist.
func (s *Store) unbackedReset(last *segment) bool {
	if len(last.recs) == 0 || last.recs[len(last.recs)-1].kind != kindReset {
		return false
	}
	m, err := decodeReset(last.recs[len(last.recs)-1].payload)
	if err != nil {
		return false // replay reports it
	}
	return !s.backs(m)
}

// backs says whether the newest snapshot file is the one a record names
// (its index and checksum), or a newer one.
func (s *Store) backs(m mark) bool {
	newest := s.snap.GetMetadata().GetIndex()
	return s.snapSum != 0 && (newest > m.index || newest == m.index && s.snapSum == m.sum)
}

// replay rebuilds the log and hard state from segs.
//
// It starts from the first segment's base as if every entry up to its
// last index were compacted: when earlier segments were removed, they
// were (removableSegments), and the entries up to there that the first
// segment's records rewrite are compacted by a later record. Each later
// base must agree with the state replayed up to it: its hard state, and
// its log bounds when the replay is exact (the first base held no entry).
func (s *Store) replay(segs []segment) error {
	b0 := segs[0].base
	exact := b0.lastIndex == b0.dummyIndex
	s.state = newLogState(b0.lastIndex, b0.lastTerm)
	s.hs = b0.hs
	s.lastSnap = b0.snap
	for i := range segs {
		seg := &segs[i]
		if i > 0 {
			if err := s.checkBase(seg, exact); err != nil {
				return err
			}
			s.lastSnap = seg.base.snap
		}
		for _, r := range seg.recs {
			if err := s.replayRecord(r); err != nil {
				return &DamageError{File: s.path(seg.name), Offset: r.off, Err: err}
			}
		}
		s.segs = append(s.segs, segMeta{seq: seg.hdr.seq, lastIndex: seg.base.lastIndex})
	}
	return s.checkReplayed(segs)
}

// checkReplayed checks what replay found against the files: the segments
// before the first were removed by the store (a drop record says so: it
// tells a compaction from lost files), and the newest snapshot the log
// names has its file.
func (s *Store) checkReplayed(segs []segment) error {
	if first := segs[0].hdr.seq; first > 1 && first > s.dropped {
		return &DamageError{File: s.path(segName(first - 1)), Err: fmt.Errorf("segment missing (removed up to %d only)", s.dropped)}
	}
	if r := s.lastSnap; r.sum != 0 && !s.backs(r) {
		return &DamageError{File: s.path(snapName(r.index)), Err: fmt.Errorf("snapshot at index %d missing (newest snapshot file at %d)", r.index, s.snap.GetMetadata().GetIndex())}
	}
	return nil
}

// checkBase checks a segment's base record against the replayed state:
// its hard state, its newest snapshot (which may be newer than the
// records say: a snapshot whose file became durable but not its record,
// a store reopened then took as its newest), and log bounds if the replay
// is exact.
func (s *Store) checkBase(seg *segment, exact bool) error {
	b := seg.base
	l := &s.state
	switch {
	case !proto.Equal(b.hs, s.hs) && !(b.hs == nil && s.hs == nil):
		return &DamageError{File: s.path(seg.name), Offset: segHdrSize, Err: errors.New("base hard state differs from the one replayed")}
	case b.snap.index < s.lastSnap.index || b.snap.index == s.lastSnap.index && b.snap.sum != s.lastSnap.sum:
		return &DamageError{File: s.path(seg.name), Offset: segHdrSize, Err: fmt.Errorf("base snapshot at %d older than the one replayed at %d", b.snap.index, s.lastSnap.index)}
	case exact && (b.dummyIndex != l.offset() || b.dummyTerm != l.offsetTerm() || b.lastIndex != l.last() || b.lastTerm != l.term(l.last())):
		return &DamageError{File: s.path(seg.name), Offset: segHdrSize, Err: fmt.Errorf("base log (%d, %d] differs from the one replayed (%d, %d]", b.dummyIndex, b.lastIndex, l.offset(), l.last())}
	}
	return nil
}

// replayRecord applies one record (not a base) to the state.
func (s *Store) replayRecord(r record) error {
	switch r.kind {
	case kindEntries:
		ents, err := decodeEntries(r.payload)
		if err != nil {
			return err
		}
		if ents[0].GetIndex() > s.state.last()+1 {
			return fmt.Errorf("entries from index %d after the last entry %d: entries missing", ents[0].GetIndex(), s.state.last())
		}
		s.state.replayEntries(ents)
	case kindHard:
		hs, err := decodeHard(r.payload)
		if err != nil {
			return err
		}
		s.hs = hs
	case kindCompact:
		m, err := decodeCompact(r.payload)
		if err != nil {
			return err
		}
		s.state.compactTo(m)
	case kindReset:
		m, err := decodeReset(r.payload)
		if err != nil {
			return err
		}
		s.state.reset(m.index, m.term)
		s.lastSnap = m
	case kindSnap:
		m, err := decodeReset(r.payload)
		if err != nil {
			return err
		}
		s.lastSnap = m
	case kindDrop:
		seq, err := decodeDrop(r.payload)
		if err != nil {
			return err
		}
		s.dropped = max(s.dropped, seq)
	default:
		return fmt.Errorf("record of kind %q in the middle of a segment", r.kind)
	}
	return nil
}

// openLast opens the last segment for appending, cutting its torn tail.
func (s *Store) openLast(last *segment) error {
	f, err := s.fsys.OpenReadWrite(s.path(last.name))
	if err != nil {
		return err
	}
	s.f = f
	s.size = last.size
	if last.cut >= 0 {
		s.log.Warn("raftstore: cutting the end of the last segment", "file", s.path(last.name), "offset", last.cut, "bytes", last.size-last.cut, "what", last.cutWhy)
		if err := f.Truncate(last.cut); err != nil {
			return err
		}
		s.size = last.cut
	}
	_, err = f.Seek(s.size, io.SeekStart)
	return err
}

// create starts an empty store: its first segment, and the directory's
// own name durable (it may be new).
func (s *Store) create() error {
	p, _ := appendBase(nil, base{}) // no hard state: nothing to fail
	b := appendRecord(appendSegHeader(nil, segHeader{seq: 1}), kindBase, p)
	f, err := s.createDurable(s.path(segName(1)), b)
	if err != nil {
		return err
	}
	if err := s.fsys.SyncDir(path.Dir(path.Clean(s.dir))); err != nil {
		f.Close()
		return err
	}
	s.f, s.size = f, int64(len(b))
	s.state = newLogState(0, 0)
	s.segs = []segMeta{{seq: 1}}
	return nil
}
