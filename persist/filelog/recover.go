package filelog

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"path"

	"github.com/revkv/revkv/persist"
	"github.com/revkv/revkv/snapshot"
)

// Recover loads the newest snapshot that reads back whole into t (falling
// back to older ones, then to none, if snapshots are damaged), then replays
// every batch of every segment; t skips those its snapshot holds. The first
// Recover (the engine's Open) also cuts a torn tail off the last segment,
// removes unfinished snapshot files, starts a new segment and starts the
// log's goroutines. A later Recover (the engine's Restore) only reads.
//
// Damage is an error naming the file and offset (a *DamageError, which
// wraps ErrCorrupt); a damaged snapshot is only an error if no older one,
// nor the log from the start, can stand in for it.
func (l *Log) Recover(t persist.Target) error {
	l.mu.Lock()
	first, closing := !l.running, l.closing
	l.mu.Unlock()
	if closing {
		return ErrClosed
	}
	// mutate: this Recover may change files (the first, read-write one).
	mutate := first && !l.opts.ReadOnly
	l.gcMu.Lock()
	defer l.gcMu.Unlock()
	l.filesMu.Lock()
	defer l.filesMu.Unlock()

	ls, err := list(l.fs, l.dir)
	if err != nil {
		return fmt.Errorf("revkv/filelog: %w", err)
	}
	if mutate {
		for _, name := range ls.tmps {
			if err := l.fs.Remove(path.Join(l.dir, name)); err != nil {
				return fmt.Errorf("revkv/filelog: %w", err)
			}
		}
	}

	var good []snapInfo // headers that read, oldest first
	for _, num := range ls.snaps {
		if info, err := l.snapHeader(num); err == nil {
			good = append(good, info)
		}
	}
	var loaded *snapInfo
	var snapErr error
	for i := len(ls.snaps) - 1; i >= 0; i-- {
		num := ls.snaps[i]
		err := l.loadSnapshot(t, num)
		if err == nil {
			for j := range good {
				if good[j].num == num {
					loaded = &good[j]
				}
			}
			break
		}
		if !errors.Is(err, ErrCorrupt) && !errors.Is(err, snapshot.ErrVersion) {
			return err
		}
		l.log.Warn("revkv/filelog: damaged snapshot; trying an older one", "err", err)
		snapErr = errors.Join(snapErr, err)
		good = removeSnap(good, num)
	}

	segs := make([]segInfo, 0, len(ls.segs)+1)
	var appendTo *segInfo // the last segment, if writes go on in it
	var appendAt int64
	rev := int64(0)
	if loaded != nil {
		rev = loaded.rev
	}
	for i, num := range ls.segs {
		last := i == len(ls.segs)-1
		if !last && loaded != nil && coveredSegment(l.fs, l.dir, ls.segs[i+1], *loaded) {
			// Kept for a fallback to an older snapshot; reading it would
			// cost as much as the snapshot. Its coverage is bounded by the
			// loaded snapshot's state, which retention may use.
			segs = append(segs, segInfo{num: num, cover: coverage{rev: loaded.rev, compact: loaded.compact, compacted: true, index: loaded.index}})
			continue
		}
		res, err := scanSegment(l.fs, l.dir, num, last && first, func(b *persist.Batch, off int64) error {
			return t.Apply(b)
		})
		if err != nil {
			if snapErr != nil {
				err = fmt.Errorf("%w (after falling back from damaged snapshots: %w)", err, snapErr)
			}
			return err
		}
		switch {
		case !mutate:
		case res.torn:
			if err := l.cutTail(num, res.end); err != nil {
				return err
			}
			if res.end == 0 {
				continue // not even its header was written: gone
			}
		case last:
			// What was read may never have been synced (a failed sync
			// before this Open): make it durable before writing after it.
			if err := l.syncSegment(num); err != nil {
				return err
			}
		}
		if mutate && last && res.end < l.opts.SegmentSize {
			// Writes go on at its end, so that opening a store to write
			// a little does not leave a small segment behind each time.
			appendTo = &segInfo{num: num, cover: res.cover}
			appendAt = res.end
			rev = max(rev, res.cover.rev)
			continue
		}
		rev = max(rev, res.cover.rev)
		segs = append(segs, segInfo{num: num, cover: res.cover})
	}
	if !first {
		return nil
	}

	l.files = fileSet{segs: segs, snaps: good}
	l.target = t
	l.lastRev = rev
	if l.opts.ReadOnly {
		l.mu.Lock()
		l.running = true
		l.mu.Unlock()
		return nil
	}
	l.filesMu.Unlock()
	switch {
	case appendTo != nil:
		err = l.appendSegment(*appendTo, appendAt)
	case len(ls.segs) > 0:
		err = l.newSegment(ls.segs[len(ls.segs)-1] + 1)
	default:
		err = l.newSegment(1)
	}
	l.filesMu.Lock()
	if err != nil {
		return fmt.Errorf("revkv/filelog: %w", err)
	}
	l.mu.Lock()
	l.running = true
	l.mu.Unlock()
	l.wg.Add(2)
	go l.flusher()
	go l.snapshotter()
	l.log.Debug("revkv/filelog: recovered", "dir", l.dir, "segments", len(segs), "snapshots", len(good), "rev", rev)
	return nil
}

// coveredSegment reports whether the segment before segment next holds
// only batches that the snapshot s holds: so if next's first batch is at a
// revision below the snapshot's. Revisions never go down from one batch to
// the next, and every batch logged at a revision below s's was logged before
// the write that made s's revision, so s holds it, compactions and indexes
// included. (At s's own revision, a compaction may follow the snapshot.)
// Any trouble reading next says no: the caller then reads the segment.
func coveredSegment(fsys persist.FS, dir string, next uint64, s snapInfo) bool {
	var rev int64
	found := false
	_, err := scanSegment(fsys, dir, next, false, func(b *persist.Batch, off int64) error {
		rev, found = b.Rev, true
		return errPeeked
	})
	return found && errors.Is(err, errPeeked) && rev < s.rev
}

var errPeeked = errors.New("first batch read")

func removeSnap(s []snapInfo, num uint64) []snapInfo {
	for i := range s {
		if s[i].num == num {
			return append(s[:i], s[i+1:]...)
		}
	}
	return s
}

// cutTail truncates segment num to size, durably: what follows is a torn
// write, which was never reported durable. A segment whose header is torn
// is removed.
func (l *Log) cutTail(num uint64, size int64) error {
	name := l.segName(num)
	l.log.Warn("revkv/filelog: cutting a torn tail", "file", name, "offset", size)
	if size == 0 {
		if err := l.fs.Remove(name); err != nil {
			return fmt.Errorf("revkv/filelog: %w", err)
		}
		return l.fs.SyncDir(l.dir)
	}
	f, err := l.fs.OpenReadWrite(name)
	if err != nil {
		return fmt.Errorf("revkv/filelog: %w", err)
	}
	err = f.Truncate(size)
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

// appendSegment makes segment s, whose whole content ends at end, the one
// written next.
func (l *Log) appendSegment(s segInfo, end int64) error {
	f, err := l.fs.OpenReadWrite(l.segName(s.num))
	if err != nil {
		return err
	}
	if _, err := f.Seek(end, io.SeekStart); err != nil {
		f.Close()
		return err
	}
	l.seg, l.segNum, l.segSize = f, s.num, end
	l.filesMu.Lock()
	l.files.segs = append(l.files.segs, s)
	l.filesMu.Unlock()
	return nil
}

func (l *Log) syncSegment(num uint64) error {
	f, err := l.fs.OpenReadWrite(l.segName(num))
	if err != nil {
		return fmt.Errorf("revkv/filelog: %w", err)
	}
	err = f.Sync()
	return errors.Join(err, f.Close())
}

func (l *Log) snapHeader(num uint64) (snapInfo, error) {
	f, err := l.fs.Open(path.Join(l.dir, snapFile(num)))
	if err != nil {
		return snapInfo{}, err
	}
	defer f.Close()
	sr, err := snapshot.NewReader(f)
	if err != nil {
		return snapInfo{}, err
	}
	h := sr.Header()
	return snapInfo{num: num, rev: h.Rev, compact: h.CompactRev, index: h.ConsistentIndex}, nil
}

func (l *Log) loadSnapshot(t persist.Target, num uint64) error {
	name := path.Join(l.dir, snapFile(num))
	f, err := l.fs.Open(name)
	if err != nil {
		return fmt.Errorf("revkv/filelog: %w", err)
	}
	defer f.Close()
	if err := t.LoadSnapshot(bufio.NewReaderSize(f, 1<<20)); err != nil {
		return fmt.Errorf("revkv/filelog: snapshot %s: %w", name, err)
	}
	return nil
}
