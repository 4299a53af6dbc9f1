package filelog

import (
	"errors"
	"fmt"
	"io"
	"path"

	"github.com/revkv/revkv/persist"
	"github.com/revkv/revkv/snapshot"
)

// maybeSnapshot wakes the snapshotter when enough log was written since
// the last snapshot. Called by the flusher.
func (l *Log) maybeSnapshot() {
	revs, bytes := l.opts.SnapshotRevs, l.opts.SnapshotBytes
	if (revs > 0 && l.sinceRev >= revs) || (bytes > 0 && l.sinceLen >= bytes) {
		l.sinceRev, l.sinceLen = 0, 0
		select {
		case l.snapKick <- struct{}{}:
		default:
		}
	}
}

func (l *Log) snapshotter() {
	defer l.wg.Done()
	for {
		select {
		case <-l.snapKick:
		case <-l.stop:
			return
		}
		if err := l.WriteSnapshot(); err != nil && !errors.Is(err, errStopping) {
			// The log still holds everything: a failed snapshot only
			// means a longer replay. The next trigger tries again.
			l.log.Error("revkv/filelog: snapshot failed", "err", err)
		}
	}
}

var errStopping = errors.New("revkv/filelog: closing")

// stopWriter fails writes once the log is closing, so Close does not wait
// for a large snapshot to finish.
type stopWriter struct {
	w    io.Writer
	stop <-chan struct{}
}

func (s stopWriter) Write(p []byte) (int, error) {
	select {
	case <-s.stop:
		return 0, errStopping
	default:
		return s.w.Write(p)
	}
}

// WriteSnapshot writes a snapshot of the engine's current state now: to a
// temporary file, synced, renamed into place, and the directory synced.
// Then it keeps the two newest snapshots and removes older ones, and the
// segments the older of the two kept covers entirely. The log does this by
// itself as Options.SnapshotRevs and SnapshotBytes say; WriteSnapshot is
// for callers who want one at a point of their choosing. Snapshots are
// serialized.
func (l *Log) WriteSnapshot() error {
	l.mu.Lock()
	if !l.running || l.closing {
		l.mu.Unlock()
		return ErrClosed
	}
	if l.opts.ReadOnly {
		l.mu.Unlock()
		return ErrReadOnly
	}
	for l.snapping {
		l.cond.Wait()
	}
	l.snapping = true
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.snapping = false
		l.cond.Broadcast()
		l.mu.Unlock()
	}()

	sn, err := l.target.Snapshot()
	if err != nil {
		return err
	}
	defer sn.Close()
	info := snapInfo{rev: sn.Rev(), compact: sn.CompactRev(), index: sn.ConsistentIndex()}
	l.filesMu.Lock()
	info.num = l.files.nextSnap()
	if n := len(l.files.snaps); n > 0 {
		if p := l.files.snaps[n-1]; p.rev == info.rev && p.compact == info.compact && p.index == info.index {
			l.filesMu.Unlock()
			return nil // nothing new since the last one
		}
	}
	l.filesMu.Unlock()

	name := path.Join(l.dir, snapFile(info.num))
	tmp := name + tmpSuffix
	f, err := l.fs.Create(tmp)
	if err != nil {
		return fmt.Errorf("revkv/filelog: %w", err)
	}
	_, err = sn.WriteTo(stopWriter{w: f, stop: l.stop})
	if err == nil {
		err = f.Sync()
	}
	err = errors.Join(err, f.Close())
	if err == nil {
		err = l.fs.Rename(tmp, name)
	}
	if err == nil {
		err = l.fs.SyncDir(l.dir)
	}
	if err != nil {
		l.fs.Remove(tmp) // best effort: Open removes leftovers too
		return fmt.Errorf("revkv/filelog: snapshot %s: %w", name, err)
	}
	l.log.Debug("revkv/filelog: snapshot written", "file", name, "rev", info.rev)

	l.gcMu.Lock() // no Recover reads the files being removed
	defer l.gcMu.Unlock()
	l.filesMu.Lock()
	l.files.snaps = append(l.files.snaps, info)
	garbage := l.retainLocked()
	l.filesMu.Unlock()
	// Removed outside filesMu, which the flusher takes after every write.
	var errs []error
	for _, name := range garbage {
		if err := l.fs.Remove(name); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		// What was not removed is found again, and skipped, at the next
		// open; nothing depends on it being gone.
		return fmt.Errorf("revkv/filelog: removing old files: %w", err)
	}
	return nil
}

// retainLocked drops from the file set the snapshots older than the two
// newest, and the segments (but the current one) that the older of the two
// covers, and returns their names for removal: if the newest is found
// damaged at the next Open, the older one and the log after it are still
// all there. Removals need no directory sync: a file that comes back after
// a crash is older than what replaced it, and replay skips it. filesMu is
// held.
func (l *Log) retainLocked() (garbage []string) {
	snaps := l.files.snaps
	if len(snaps) < 2 {
		return nil
	}
	base := snaps[len(snaps)-2]
	for _, s := range snaps[:len(snaps)-2] {
		garbage = append(garbage, path.Join(l.dir, snapFile(s.num)))
	}
	l.files.snaps = append(snaps[:0], snaps[len(snaps)-2:]...)
	segs := l.files.segs
	kept := segs[:0]
	for i, s := range segs {
		if i < len(segs)-1 && s.cover.coveredBy(base) {
			garbage = append(garbage, l.segName(s.num))
			continue
		}
		kept = append(kept, s)
	}
	l.files.segs = kept
	return garbage
}

// LoadSnapshot makes a new log directory dir (which must not exist, or be
// empty) whose state is the snapshot read from r: Open on it then recovers
// that state, and writes go on from its revision. The snapshot is checked
// whole (every checksum) before it is put in place; a damaged one is an
// error wrapping ErrCorrupt and leaves no store behind.
func LoadSnapshot(fsys persist.FS, dir string, r io.Reader) error {
	if fsys == nil {
		fsys = persist.OS
	}
	if err := fsys.MkdirAll(dir); err != nil {
		return fmt.Errorf("revkv/filelog: %w", err)
	}
	lock, ls, err := lockAndList(fsys, dir)
	if err != nil {
		return err
	}
	defer lock.Close()
	if len(ls.segs)+len(ls.snaps) > 0 {
		return fmt.Errorf("revkv/filelog: %s already holds a store", dir)
	}
	name := path.Join(dir, snapFile(1))
	tmp := name + tmpSuffix
	f, err := fsys.Create(tmp)
	if err != nil {
		return fmt.Errorf("revkv/filelog: %w", err)
	}
	_, err = io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		_, err = snapshot.ReadStatus(io.NewSectionReader(f, 0, 1<<62))
	}
	err = errors.Join(err, f.Close())
	if err == nil {
		err = fsys.Rename(tmp, name)
	}
	if err == nil {
		err = fsys.SyncDir(dir)
	}
	if err != nil {
		fsys.Remove(tmp)
		return fmt.Errorf("revkv/filelog: snapshot for %s: %w", dir, err)
	}
	return nil
}
