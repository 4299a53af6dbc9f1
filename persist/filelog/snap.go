package filelog

import (
	"errors"
	"fmt"
	"io"
	"path"
	"time"

	"github.com/revkv/revkv/kv"
	"github.com/revkv/revkv/persist"
	"github.com/revkv/revkv/snapshot"
)

// maybeSnapshot wakes the snapshotter when enough log was written since
// the last snapshot, or a compaction was. Called by the flusher.
func (l *Log) maybeSnapshot() {
	revs, bytes := l.opts.SnapshotRevs, l.opts.SnapshotBytes
	if l.compactedSince || (revs > 0 && l.sinceRev >= revs) || (bytes > 0 && l.sinceLen >= bytes) {
		l.sinceRev, l.sinceLen, l.compactedSince = 0, 0, false
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
		l.awaitCompaction()
		if err := l.WriteSnapshot(); err != nil && !errors.Is(err, errStopping) {
			// The log still holds everything: a failed snapshot only
			// means a longer replay. The next trigger tries again.
			l.log.Error("revkv/filelog: snapshot failed", "err", err)
		}
	}
}

var errStopping = errors.New("revkv/filelog: closing")

// awaitCompaction waits, for a while, until the target's state shows the
// newest compaction the flusher has written. The engine publishes a
// write's state once the log reports it durable, which races with the
// flusher's kick of the snapshotter: a snapshot taken before the
// compaction's state is published holds the compacted history, and the
// kick that would have reclaimed the disk is spent. After the wait the
// snapshot is taken anyway (a later compaction or trigger takes another).
func (l *Log) awaitCompaction() {
	want := l.compactWritten.Load()
	if want < 0 {
		return
	}
	wait := 100 * time.Microsecond
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); wait = min(2*wait, 20*time.Millisecond) {
		sn, err := l.target.Snapshot()
		if err != nil {
			return
		}
		got := sn.CompactRev()
		sn.Close()
		if got >= want {
			return
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-l.stop:
			t.Stop()
			return
		}
	}
}

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
// itself as Options.SnapshotRevs and SnapshotBytes say, and after each
// compaction; WriteSnapshot is for callers who want one at a point of
// their choosing. Snapshots are serialized.
//
// The log starts a new segment before taking a snapshot, so every older
// segment holds only what the snapshot holds: an open that loads the
// snapshot skips them unread. The first snapshot after a compaction
// reclaims the disk the compacted history took: it is written twice (two
// files, the fallback of each other), so the two kept are both after the
// compaction and everything older is removed.
func (l *Log) WriteSnapshot() error {
	if err := l.beginSnapshot(); err != nil {
		return err
	}
	defer l.endSnapshot()

	sn, err := l.target.Snapshot()
	if err != nil {
		return err
	}
	info := snapInfo{rev: sn.Rev(), compact: sn.CompactRev(), index: sn.ConsistentIndex()}
	l.filesMu.Lock()
	n := len(l.files.snaps)
	var newest snapInfo
	if n > 0 {
		newest = l.files.snaps[n-1]
	}
	l.filesMu.Unlock()
	if n > 0 && newest.rev == info.rev && newest.compact == info.compact && newest.index == info.index {
		sn.Close()
		return nil // nothing new since the last one
	}
	compacted := info.compact >= 0 && (n == 0 || info.compact > newest.compact)
	// Start a new segment first, and take the snapshot after: every older
	// segment then holds only what the snapshot holds, so an open skips
	// them unread (sealedCovered), and retention can remove them once the
	// snapshot is the older of the two kept.
	sn.Close()
	if err := l.rotateNow(); err != nil {
		return err
	}
	if sn, info, err = l.snapshotPublished(); err != nil {
		return err
	}
	defer sn.Close()
	l.filesMu.Lock()
	info.num = l.files.nextSnap()
	l.filesMu.Unlock()

	name := path.Join(l.dir, snapFile(info.num))
	err = l.writeSnapFile(info.num, func(w io.Writer) error {
		_, err := sn.WriteTo(snapshot.WithStoreID(w, l.storeID))
		return err
	})
	if err != nil {
		return err
	}
	infos := []snapInfo{info}
	if compacted {
		twin := info
		twin.num++
		err := l.writeSnapFile(twin.num, func(w io.Writer) error {
			f, err := l.fs.Open(name)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(w, f)
			return err
		})
		if err != nil {
			return err
		}
		infos = append(infos, twin)
	}
	l.log.Debug("revkv/filelog: snapshot written", "file", name, "rev", info.rev, "copies", len(infos))

	l.gcMu.Lock() // no Recover reads the files being removed
	defer l.gcMu.Unlock()
	garbage, err := l.recordSnapshot(infos...)
	if err != nil {
		return fmt.Errorf("revkv/filelog: snapshot %s: %w", name, err)
	}
	var errs []error
	for _, name := range garbage {
		if err := l.fs.Remove(name); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		// What was not removed is found again, and removed, at the next
		// open: the manifest no longer lists it.
		return fmt.Errorf("revkv/filelog: removing old files: %w", err)
	}
	return nil
}

// beginSnapshot waits for a snapshot in progress and marks one started.
func (l *Log) beginSnapshot() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.closing:
		return kv.ErrClosed
	case !l.running:
		return ErrNotRecovered
	case l.opts.ReadOnly:
		return ErrReadOnly
	}
	for l.snapping {
		l.cond.Wait()
	}
	l.snapping = true
	return nil
}

func (l *Log) endSnapshot() {
	l.mu.Lock()
	l.snapping = false
	l.cond.Broadcast()
	l.mu.Unlock()
}

// rotateNow has the flusher start a new segment (if the current one holds
// any batch) after what is queued, and waits for it.
func (l *Log) rotateNow() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	want := l.rotations + 1
	l.rotateWant = true
	l.kickFlusher()
	return l.await(func() bool { return l.rotations >= want }, errStopping)
}

// publishTries and publishWait bound how long snapshotPublished waits
// for the engine to publish what the log wrote: a writer publishes its
// write right after its Wait returns, so this is a scheduling delay, not
// I/O.
const (
	publishTries = 20
	publishWait  = 250 * time.Microsecond
)

// snapshotPublished takes a snapshot of the target once its state holds
// every batch the sealed segments hold (just after a rotation): the
// engine publishes a write only after the log made it durable, so the
// batches of the group the rotation followed may not be visible yet, and
// a snapshot without them would leave the segment they end to be read at
// every open. If they do not show within a few milliseconds (a writer
// descheduled), the snapshot is taken as it is: correct, only less useful
// to the next open.
func (l *Log) snapshotPublished() (persist.Snapshot, snapInfo, error) {
	want := l.sealedCover()
	for try := 1; ; try++ {
		sn, err := l.target.Snapshot()
		if err != nil {
			return nil, snapInfo{}, err
		}
		info := snapInfo{rev: sn.Rev(), compact: sn.CompactRev(), index: sn.ConsistentIndex()}
		if want.reachedBy(info) || try == publishTries {
			return sn, info, nil
		}
		sn.Close()
		select {
		case <-l.stop:
			return nil, snapInfo{}, errStopping
		case <-time.After(publishWait):
		}
	}
}

// sealedCover is what the segments before the current one hold.
func (l *Log) sealedCover() coverage {
	l.filesMu.Lock()
	defer l.filesMu.Unlock()
	var c coverage
	for _, s := range l.files.segs[:max(len(l.files.segs)-1, 0)] {
		c.merge(s.cover)
	}
	return c
}

// writeSnapFile writes snapshot file num with write: to a temporary file,
// synced, renamed into place, and the directory synced.
func (l *Log) writeSnapFile(num uint64, write func(io.Writer) error) error {
	name := path.Join(l.dir, snapFile(num))
	tmp := name + tmpSuffix
	f, err := l.fs.Create(tmp)
	if err != nil {
		return fmt.Errorf("revkv/filelog: %w", err)
	}
	err = write(stopWriter{w: f, stop: l.stop})
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
	return nil
}

// recordSnapshot adds snapshot info to the file set, drops what it makes
// unneeded, and records that in the manifest; it returns the names of the
// files to remove, which may go only once the manifest no longer lists
// them. Removed outside filesMu, which the flusher takes after every
// write.
func (l *Log) recordSnapshot(infos ...snapInfo) (garbage []string, err error) {
	l.manMu.Lock()
	defer l.manMu.Unlock()
	l.filesMu.Lock()
	l.files.snaps = append(l.files.snaps, infos...)
	garbage = l.retainLocked()
	m := l.manifestLocked(false)
	l.filesMu.Unlock()
	if err := writeManifest(l.fs, l.dir, m); err != nil {
		return nil, err
	}
	return garbage, nil
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

// holdsStore reports whether the directory listed in ls holds a store,
// not only what a crash in LoadSnapshot leaves: its snapshot, carrying
// the new store's identity, renamed into place before the manifest that
// would have listed it. LoadSnapshot replaces that.
func holdsStore(fsys persist.FS, dir string, ls listing) (bool, error) {
	if ls.manifest || len(ls.segs) > 0 {
		return true, nil
	}
	if len(ls.snaps) == 0 {
		return false, nil
	}
	if len(ls.snaps) > 1 || ls.snaps[0] != 1 {
		return true, nil
	}
	ids, err := readIDs(fsys, dir, ls, map[uint64]int64{})
	if err != nil {
		return false, err
	}
	return ids[snapFile(1)] == 0, nil // none: a store from before identities
}

// LoadSnapshot makes a new log directory dir (which must not exist, or be
// empty) whose state is the snapshot read from r: Open on it then recovers
// that state, and writes go on from its revision. The snapshot is checked
// whole (every checksum) before it is put in place; a damaged one is an
// error wrapping kv.ErrCorrupt and leaves no store behind. A crash during
// LoadSnapshot may leave its snapshot without the manifest that lists it:
// Open refuses that directory, and LoadSnapshot may be run on it again.
func LoadSnapshot(fsys persist.FS, dir string, r io.Reader) error {
	if fsys == nil {
		fsys = persist.OS
	}
	if err := fsys.MkdirAll(dir); err != nil {
		return fmt.Errorf("revkv/filelog: %w", err)
	}
	lock, err := lockDir(fsys, dir)
	if err != nil {
		return err
	}
	defer lock.Close()
	ls, err := list(fsys, dir)
	if err != nil {
		return fmt.Errorf("revkv/filelog: %w", err)
	}
	if holds, err := holdsStore(fsys, dir, ls); err != nil || holds {
		return errors.Join(err, fmt.Errorf("revkv/filelog: %s already holds a store", dir))
	}
	// The snapshot becomes this new store's, under a new identity; the
	// manifest that lists it is written last, so a failure leaves no
	// store behind.
	id := newStoreID()
	name := path.Join(dir, snapFile(1))
	tmp := name + tmpSuffix
	f, err := fsys.Create(tmp)
	if err != nil {
		return fmt.Errorf("revkv/filelog: %w", err)
	}
	_, err = io.Copy(snapshot.WithStoreID(f, id), r)
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
	if err == nil {
		err = writeManifest(fsys, dir, &manifest{id: id, snaps: []uint64{1}})
	}
	if err != nil {
		fsys.Remove(tmp)
		return fmt.Errorf("revkv/filelog: snapshot for %s: %w", dir, err)
	}
	return nil
}
