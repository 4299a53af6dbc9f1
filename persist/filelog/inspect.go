package filelog

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"

	"github.com/revkv/revkv/kv"
	"github.com/revkv/revkv/persist"
	"github.com/revkv/revkv/snapshot"
)

// File describes one file of a log directory, as Inspect found it.
type File struct {
	Name string // in the directory
	Size int64
	// Segment is set for a log segment, Snapshot for a snapshot.
	Segment  *SegmentInfo
	Snapshot *snapshot.Status
	// Err is the damage found, if any: a *DamageError or a snapshot error,
	// both wrapping kv.ErrCorrupt; or, for a segment or snapshot of a
	// newer format, an error wrapping snapshot.ErrVersion.
	Err error
}

// SegmentInfo describes a log segment.
type SegmentInfo struct {
	Number    uint64
	Frames    int
	Batches   int
	RawBytes  int64 // the frames' bytes before compression
	FirstRev  int64 // revision of the first batch (0: none)
	LastRev   int64 // the highest revision a batch reached
	TornAt    int64 // offset where a torn tail starts (last segment only); -1 if none
	Compacted int64 // the highest compaction in the segment, -1 if none
	// StoreID is the store identity in the header (0: a segment written
	// before identities).
	StoreID uint64
}

// Inspect reads every segment and snapshot of the log directory dir,
// checking every checksum, and describes each file, in name order (the
// manifest's damage first if any, then the segments, then the snapshots).
// It checks the directory against its manifest as an open does (missing
// and cut files, files of another store: reported as a File named after
// the file the damage names), and also what an open skips (segments a
// snapshot covers, older snapshots read whole). A leftover of a crash
// that the open removes unread (a file the manifest does not list) is
// described, but its damage is not reported: it may be torn. It takes a reader's lock
// (ErrLocked if a store has the directory open) and changes nothing.
// Damage is reported per file in File.Err; the error is for what stopped
// the whole inspection (no such directory, an I/O error, the lock).
func Inspect(fsys persist.FS, dir string) ([]File, error) {
	if fsys == nil {
		fsys = persist.OS
	}
	lock, ls, err := lockAndList(fsys, dir)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	var files []File
	var durable int64 // of the last segment, as the manifest says
	// lastSeg is the segment a torn tail may end: the newest one the
	// manifest lists (the newest in the directory if none does).
	var lastSeg uint64
	if n := len(ls.segs); n > 0 {
		lastSeg = ls.segs[n-1]
	}
	// leftover: files the open removes unread (a crash's leftovers, which
	// may be torn): not damage.
	leftover := map[string]bool{}
	d, err := survey(fsys, dir)
	var de *DamageError
	switch {
	case errors.As(err, &de):
		files = append(files, File{Name: path.Base(de.File), Err: err})
	case err != nil:
		return nil, err
	default:
		durable = d.durable
		if n := len(d.segs); n > 0 {
			lastSeg = d.segs[n-1].num
		}
		for _, name := range d.garbage {
			leftover[path.Base(name)] = true
		}
		for _, num := range d.snaps {
			if !slices.Contains(ls.snaps, num) {
				name := path.Join(dir, snapFile(num))
				files = append(files, File{Name: snapFile(num), Err: &DamageError{File: name, Err: errors.New("missing: the manifest lists it")}})
			}
		}
	}
	for _, num := range ls.segs {
		f := File{Name: segFile(num), Segment: &SegmentInfo{Number: num, TornAt: -1}}
		rule := tailRule{last: num == lastSeg, durable: durable}
		res, err := scanSegment(fsys, dir, num, rule, func(*persist.Batch, int64) error { return nil })
		if err != nil && !errors.Is(err, kv.ErrCorrupt) && !errors.Is(err, snapshot.ErrVersion) {
			return files, err
		}
		if !leftover[f.Name] {
			f.Err = err
		}
		si := f.Segment
		si.Frames, si.Batches, si.RawBytes, si.FirstRev = res.frames, res.batches, res.raw, res.firstRev
		si.LastRev, si.Compacted, si.StoreID = res.cover.rev, -1, res.id
		if res.cover.compacted {
			si.Compacted = res.cover.compact
		}
		if res.torn {
			si.TornAt = res.end
		}
		if f.Size, err = fileSize(fsys, path.Join(dir, f.Name)); err != nil {
			return files, err
		}
		files = append(files, f)
	}
	for _, num := range ls.snaps {
		f := File{Name: snapFile(num)}
		name := path.Join(dir, f.Name)
		r, err := fsys.Open(name)
		if err != nil {
			return files, fmt.Errorf("revkv/filelog: %w", err)
		}
		st, err := snapshot.ReadStatus(bufio.NewReaderSize(r, 1<<20))
		r.Close()
		if err != nil {
			if !errors.Is(err, kv.ErrCorrupt) && !errors.Is(err, snapshot.ErrVersion) {
				return files, fmt.Errorf("revkv/filelog: %s: %w", name, err)
			}
			if !leftover[f.Name] {
				f.Err = fmt.Errorf("%s: %w", name, err)
			}
		} else {
			f.Snapshot = &st
		}
		if f.Size, err = fileSize(fsys, name); err != nil {
			return files, err
		}
		files = append(files, f)
	}
	return files, nil
}

func fileSize(fsys persist.FS, name string) (int64, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return 0, fmt.Errorf("revkv/filelog: %w", err)
	}
	defer f.Close()
	return f.Size()
}

// Dump calls fn for each batch of each segment of the log directory dir,
// in order, with the segment's name and the offset of the frame group the
// batch is in, until fn returns an error. It takes the directory's lock
// and changes nothing; damage ends it with a *DamageError, as do the
// manifest's findings (a missing or cut segment). The batch and its
// slices are valid only during the call.
func Dump(fsys persist.FS, dir string, fn func(file string, off int64, b *persist.Batch) error) error {
	if fsys == nil {
		fsys = persist.OS
	}
	lock, _, err := lockAndList(fsys, dir)
	if err != nil {
		return err
	}
	defer lock.Close()
	d, err := survey(fsys, dir)
	if err != nil {
		return err
	}
	// The segments the open reads: a crash's leftovers are not the log.
	nums := make([]uint64, len(d.segs))
	for i, s := range d.segs {
		nums[i] = s.num
	}
	return dumpSegments(fsys, dir, nums, d.durable, fn)
}

// DumpWithoutManifest is Dump for a directory whose manifest is damaged or
// missing (what salvage reads then): it reads every segment in the
// directory in number order, the newest under the torn-tail rule with
// nothing known synced. Without the manifest it cannot tell a crash's
// leftover segment, nor a cut or missing one, from the log: the batches
// it passes are only as good as the checks of whoever applies them (an
// engine's replay refuses a revision out of order).
func DumpWithoutManifest(fsys persist.FS, dir string, fn func(file string, off int64, b *persist.Batch) error) error {
	if fsys == nil {
		fsys = persist.OS
	}
	lock, ls, err := lockAndList(fsys, dir)
	if err != nil {
		return err
	}
	defer lock.Close()
	return dumpSegments(fsys, dir, ls.segs, 0, fn)
}

// dumpSegments calls fn for each batch of the segments nums, in order;
// the last may end in a torn tail past durable.
func dumpSegments(fsys persist.FS, dir string, nums []uint64, durable int64, fn func(file string, off int64, b *persist.Batch) error) error {
	for i, num := range nums {
		name := segFile(num)
		rule := tailRule{last: i == len(nums)-1, durable: durable}
		_, err := scanSegment(fsys, dir, num, rule, func(b *persist.Batch, off int64) error {
			return fn(name, off, b)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// lockDir takes the lock of the log directory dir.
func lockDir(fsys persist.FS, dir string) (io.Closer, error) {
	lock, err := fsys.Lock(path.Join(dir, "LOCK"))
	if errors.Is(err, persist.ErrLocked) {
		return nil, fmt.Errorf("%w: %s", ErrLocked, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("revkv/filelog: lock %s: %w", dir, err)
	}
	return lock, nil
}

// lockShared takes the lock of the log directory dir for a reader: shared
// if the FS has shared locks and a writer ever locked dir, none otherwise
// (see Open). A missing directory is an error wrapping fs.ErrNotExist.
func lockShared(fsys persist.FS, dir string) (io.Closer, error) {
	if _, err := fsys.List(dir); err != nil {
		return nil, fmt.Errorf("revkv/filelog: %w", err)
	}
	sl, ok := fsys.(persist.SharedLocker)
	if !ok {
		return nopCloser{}, nil
	}
	lock, err := sl.LockShared(path.Join(dir, "LOCK"))
	switch {
	case persist.IsNotExist(err):
		return nopCloser{}, nil
	case errors.Is(err, persist.ErrLocked):
		return nil, fmt.Errorf("%w: %s", ErrLocked, dir)
	case err != nil:
		return nil, fmt.Errorf("revkv/filelog: lock %s: %w", dir, err)
	}
	return lock, nil
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }

// lockAndList takes a reader's lock of the log directory dir and lists
// its files.
func lockAndList(fsys persist.FS, dir string) (io.Closer, listing, error) {
	lock, err := lockShared(fsys, dir)
	if err != nil {
		return nil, listing{}, err
	}
	ls, err := list(fsys, dir)
	if err != nil {
		lock.Close()
		return nil, listing{}, fmt.Errorf("revkv/filelog: %w", err)
	}
	return lock, ls, nil
}
