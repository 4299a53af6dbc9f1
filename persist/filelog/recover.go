package filelog

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"path"

	"github.com/revkv/revkv/kv"
	"github.com/revkv/revkv/persist"
	"github.com/revkv/revkv/snapshot"
)

// Recover loads the newest snapshot that reads back whole into t (falling
// back to older ones, then to none, if snapshots are damaged or missing),
// then replays every batch of every segment; t skips those its snapshot
// holds. It runs in four steps, each its own function:
//
//  1. survey: the manifest against the directory, before any batch is
//     read: missing and cut segments, files of another store.
//  2. load: the snapshot and the log into t, applying the torn-tail rule.
//  3. repair (the first Recover of a read-write Log only): remove our
//     leftover files, make the tail durable by a write of ours unless
//     the last run closed cleanly, record it all in the manifest.
//  4. start: open the segment to write and start the log's goroutines.
//
// A later Recover (the engine's Restore) and a read-only one stop after
// step 2 and change no file. A Log serves one store: Recover for a target
// of another store is ErrInUse.
//
// Damage is an error naming the file and offset (a *DamageError, which
// wraps kv.ErrCorrupt); a damaged snapshot is only an error if no older one,
// nor the log from the start, can stand in for it. A manifest, segment or
// snapshot of a newer format is an error naming the file and both versions
// that wraps snapshot.ErrVersion, not kv.ErrCorrupt.
func (l *Log) Recover(t persist.Target) error {
	first, err := l.claim(t)
	if err != nil {
		return err
	}
	l.gcMu.Lock()
	defer l.gcMu.Unlock()
	d, err := survey(l.fs, l.dir)
	if err != nil {
		return err
	}
	st, err := l.load(t, d, first)
	if err != nil {
		return err
	}
	if !first {
		return nil
	}
	l.lastRev = st.rev
	l.target = t
	if l.opts.ReadOnly {
		l.files = fileSet{segs: st.segs, snaps: st.snaps}
		l.mu.Lock()
		l.running = true
		l.mu.Unlock()
		return nil
	}
	if err := l.repair(d, st); err != nil {
		return fmt.Errorf("revkv/filelog: %w", err)
	}
	l.start()
	l.log.Debug("revkv/filelog: recovered", "dir", l.dir, "segments", len(l.files.segs), "snapshots", len(l.files.snaps), "rev", st.rev)
	return nil
}

// claim records t as the store the log serves, and reports whether this is
// its first Recover.
func (l *Log) claim(t persist.Target) (first bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.closing:
		return false, kv.ErrClosed
	case !l.running:
		l.owner = ownerOf(t)
		return true, nil
	case ownerOf(t) != l.owner:
		return false, ErrInUse
	}
	return false, nil
}

// ownerOf is the store a target recovers for: its Owner if it tells, else
// the target itself.
func ownerOf(t persist.Target) any {
	if o, ok := t.(persist.OwnedTarget); ok {
		return o.Owner()
	}
	return t
}

// dirState is what survey found: the files recovery reads, and what it
// knows of them before reading a batch.
type dirState struct {
	man   *manifest // nil: none (a new directory, or one from before manifests)
	segs  []segMark // to read, in order; size is the sealed size, -1 if unknown
	sizes map[uint64]int64
	snaps []uint64 // to try, oldest first
	// durable is how far the last segment is known synced; clean: it was
	// closed cleanly there and nothing was written after.
	durable int64
	clean   bool
	garbage []string // our files the store does not use: removed by repair
	// nextSeg is the number for a new segment: above every one seen, so
	// that a removed file a crash brings back is never taken for it.
	nextSeg uint64
}

// survey checks the directory against its manifest: every file it lists
// is there, every sealed segment has its recorded size, the last is not
// shorter than what was known durable, and no segment or snapshot belongs
// to another store. It reads headers only.
//
// The manifest is read before the directory is listed. A Restore surveys
// a log that is running: its flusher may start a segment (for a snapshot)
// and record it in the manifest meanwhile, though it removes nothing
// (removals wait for gcMu, which Recover holds). Read in this order, such
// a segment is at worst listed but not in the manifest read, which is
// what a crash between its creation and its recording leaves: ignored by
// a Restore, which replays what the manifest lists. The other order would
// find the manifest listing a segment the listing lacked, and call it
// missing.
func survey(fsys persist.FS, dir string) (*dirState, error) {
	man, err := readManifest(fsys, dir)
	if err != nil {
		return nil, err
	}
	ls, err := list(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("revkv/filelog: %w", err)
	}
	d := &dirState{man: man, sizes: map[uint64]int64{}}
	for _, name := range ls.tmps {
		d.garbage = append(d.garbage, path.Join(dir, name))
	}
	ids, err := readIDs(fsys, dir, ls, d.sizes)
	if err != nil {
		return nil, err
	}
	d.nextSeg = 1
	if n := len(ls.segs); n > 0 {
		d.nextSeg = ls.segs[n-1] + 1
	}
	if man != nil {
		if n := len(man.segs); n > 0 {
			d.nextSeg = max(d.nextSeg, man.segs[n-1].num+1)
		}
	}
	if man == nil {
		return d, d.legacy(dir, ls, ids)
	}
	return d, d.managed(dir, ls, ids)
}

// fileIDs are the identities in the headers of a directory's files, by
// name; a file whose header does not read is absent.
type fileIDs map[string]uint64

// readIDs reads the identity in each segment's and snapshot's header, and
// each segment's size.
func readIDs(fsys persist.FS, dir string, ls listing, sizes map[uint64]int64) (fileIDs, error) {
	ids := fileIDs{}
	for _, num := range ls.segs {
		name := path.Join(dir, segFile(num))
		f, err := fsys.Open(name)
		if err != nil {
			return nil, fmt.Errorf("revkv/filelog: %w", err)
		}
		size, err := f.Size()
		b := make([]byte, maxSegHdr)
		n, _ := f.ReadAt(b, 0)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("revkv/filelog: %s: %w", name, err)
		}
		sizes[num] = size
		if h, err := parseSegHeader(b[:n]); err == nil {
			ids[segFile(num)] = h.id
		}
	}
	for _, num := range ls.snaps {
		f, err := fsys.Open(path.Join(dir, snapFile(num)))
		if err != nil {
			return nil, fmt.Errorf("revkv/filelog: %w", err)
		}
		sr, err := snapshot.NewReader(f)
		f.Close()
		if err == nil {
			ids[snapFile(num)] = sr.Header().StoreID
		}
	}
	return ids, nil
}

// legacy surveys a directory without a manifest: a new one, or one written
// before manifests, whose files carry no identity. A file with one means
// the manifest was lost: that is damage, not a reason to open less.
func (d *dirState) legacy(dir string, ls listing, ids fileIDs) error {
	names := make([]string, 0, len(ls.segs)+len(ls.snaps))
	for _, num := range ls.segs {
		names = append(names, segFile(num))
	}
	for _, num := range ls.snaps {
		names = append(names, snapFile(num))
	}
	for _, name := range names {
		if id := ids[name]; id != 0 {
			return &DamageError{File: path.Join(dir, manifestName), Err: fmt.Errorf("missing, but %s belongs to store %016x", name, id)}
		}
	}
	for _, num := range ls.segs {
		d.segs = append(d.segs, segMark{num: num, size: -1})
	}
	d.snaps = ls.snaps
	return nil
}

// managed surveys a directory against its manifest.
func (d *dirState) managed(dir string, ls listing, ids fileIDs) error {
	m := d.man
	foreign := func(name string, id uint64) error {
		return &DamageError{File: path.Join(dir, name), Err: fmt.Errorf("%w: it belongs to store %016x, this is store %016x", ErrForeign, id, m.id)}
	}
	listed := map[string]bool{}
	for i, s := range m.segs {
		name := segFile(s.num)
		listed[name] = true
		size, ok := d.sizes[s.num]
		switch last := i == len(m.segs)-1; {
		case !ok:
			return &DamageError{File: path.Join(dir, name), Err: errors.New("missing: the manifest lists it")}
		case ids[name] != 0 && ids[name] != m.id:
			return foreign(name, ids[name])
		case !last && size != s.size:
			return &DamageError{File: path.Join(dir, name), Offset: min(size, s.size), Err: fmt.Errorf("segment of %d bytes, the manifest recorded %d", size, s.size)}
		case last && size < s.size:
			return &DamageError{File: path.Join(dir, name), Offset: size, Err: fmt.Errorf("segment of %d bytes, shorter than the %d the manifest recorded durable", size, s.size)}
		case last:
			d.durable = s.size
			d.clean = m.clean && size == s.size
			d.segs = append(d.segs, segMark{num: s.num, size: -1})
		default:
			d.segs = append(d.segs, s)
		}
	}
	for _, num := range m.snaps {
		name := snapFile(num)
		listed[name] = true
		if id, ok := ids[name]; ok && id != 0 && id != m.id {
			return foreign(name, id)
		}
		d.snaps = append(d.snaps, num) // a missing one fails to load, and is fallen back from
	}
	var lastSeg, lastSnap uint64 // the newest listed
	if n := len(m.segs); n > 0 {
		lastSeg = m.segs[n-1].num
	}
	if n := len(m.snaps); n > 0 {
		lastSnap = m.snaps[n-1]
	}
	unlisted := func(name string, older bool) error {
		id, ok := ids[name]
		// Ours: left by a crash between writing a file and recording it,
		// or recording its removal and doing it; too torn to tell, or
		// from before identities and older than what is listed (a
		// removal of a file the first manifest listed), likewise.
		if !ok || id == m.id || (id == 0 && older) {
			d.garbage = append(d.garbage, path.Join(dir, name))
			return nil
		}
		return foreign(name, id)
	}
	for _, num := range ls.segs {
		if name := segFile(num); !listed[name] {
			if err := unlisted(name, num < lastSeg); err != nil {
				return err
			}
		}
	}
	for _, num := range ls.snaps {
		if name := snapFile(num); !listed[name] {
			if err := unlisted(name, num < lastSnap); err != nil {
				return err
			}
		}
	}
	return nil
}

// recovered is what load recovered.
type recovered struct {
	snaps []snapInfo // the snapshots that read (the loaded one and older ones whose header reads)
	segs  []segInfo  // every segment, in order
	last  scanResult // of the last segment, if any
	rev   int64
}

// load loads the newest snapshot that reads whole, then replays the log.
// The last segment may end in a torn tail only on the first Recover (a
// later one runs on a log just synced).
func (l *Log) load(t persist.Target, d *dirState, first bool) (*recovered, error) {
	st := &recovered{}
	snap, snapErr, err := l.loadNewestSnapshot(t, d.snaps, st)
	if err != nil {
		return nil, err
	}
	if snap != nil {
		st.rev = snap.rev
	}
	var firstRev int64 // of the log's first batch
	var prep func(*persist.Batch) any
	if p, ok := t.(persist.Preparer); ok {
		prep = p.Prepare // in the read-ahead goroutine: see persist.Preparer
	}
	for i, s := range d.segs {
		last := i == len(d.segs)-1
		if !last && snap != nil && (coveredSegment(l.fs, l.dir, d.segs[i+1].num, *snap) || sealedCovered(l.fs, l.dir, s.num, *snap)) {
			// Kept for a fallback to an older snapshot; reading it would
			// cost as much as the snapshot. Its coverage is bounded by the
			// loaded snapshot's state, which retention may use.
			l.log.Debug("revkv/filelog: segment covered by the snapshot, not read", "file", l.segName(s.num), "snapshot", snap.num)
			st.segs = append(st.segs, segInfo{num: s.num, size: d.sizes[s.num], cover: coverage{rev: snap.rev, compact: snap.compact, compacted: true, index: snap.index}})
			continue
		}
		rule := tailRule{last: last && first, durable: d.durable}
		res, err := scanPrepared(l.fs, l.dir, s.num, rule, prep, func(b *persist.Batch, off int64) error {
			return t.Apply(b)
		})
		if err != nil {
			return nil, fallbackError(err, snapErr)
		}
		if i == 0 {
			firstRev = res.firstRev
		}
		st.rev = max(st.rev, res.cover.rev)
		st.segs = append(st.segs, segInfo{num: s.num, size: res.size, cover: res.cover})
		if last {
			st.last = res
		}
	}
	if snap == nil && snapErr != nil && (firstRev < 1 || firstRev > 2) {
		// No snapshot stands in, and the log does not reach back to the
		// first write: what it holds is not the store.
		return nil, fmt.Errorf("revkv/filelog: no snapshot loads, and the log does not start at the first revision: %w", snapErr)
	}
	return st, nil
}

// fallbackError is the error of a log that failed to load after the open
// fell back from the snapshots of snapErr (if any). When one of them is
// of a newer format, a newer build wrote the store, and that is what the
// user must hear (snapshot.ErrVersion, not damage): the log's error then
// only comes from reading it without the snapshot it needs.
func fallbackError(err, snapErr error) error {
	switch {
	case snapErr == nil:
		return err
	case errors.Is(snapErr, snapshot.ErrVersion):
		return fmt.Errorf("revkv/filelog: a snapshot is of a newer format: %w (without it, the log says: %v)", snapErr, err)
	}
	return fmt.Errorf("%w (after falling back from damaged or missing snapshots: %w)", err, snapErr)
}

// loadNewestSnapshot loads the newest of snaps that reads back whole into
// t, and returns its header; nil if none did (then t is as it was).
// snapErr gathers the damage of those that did not; err is an error that
// is not damage (I/O).
func (l *Log) loadNewestSnapshot(t persist.Target, snaps []uint64, st *recovered) (snap *snapInfo, snapErr, err error) {
	for _, num := range snaps { // headers that read, oldest first
		if info, err := l.snapHeader(num); err == nil {
			st.snaps = append(st.snaps, info)
		}
	}
	for i := len(snaps) - 1; i >= 0; i-- {
		num := snaps[i]
		err := l.loadSnapshot(t, num)
		if err == nil {
			for j := range st.snaps {
				if st.snaps[j].num == num {
					return &st.snaps[j], snapErr, nil
				}
			}
			return nil, nil, fmt.Errorf("revkv/filelog: snapshot %d loaded but its header did not read", num)
		}
		if !errors.Is(err, kv.ErrCorrupt) && !errors.Is(err, snapshot.ErrVersion) {
			return nil, nil, err
		}
		l.log.Warn("revkv/filelog: damaged or missing snapshot; trying an older one", "err", err)
		snapErr = errors.Join(snapErr, err)
		st.snaps = removeSnap(st.snaps, num)
	}
	return nil, snapErr, nil
}

// coveredSegment reports whether the segment before segment next holds
// only batches that the snapshot s holds: so if next's first batch is at a
// revision below the snapshot's. Revisions never go down from one batch to
// the next, and every batch logged at a revision below s's was logged before
// the write that made s's revision, so s holds it, compactions and indexes
// included. (At s's own revision, a compaction may follow the snapshot.)
// Any trouble reading next says no: the caller then reads the segment.
func coveredSegment(fsys persist.FS, dir string, next uint64, s snapInfo) bool {
	rev, ok := firstRev(fsys, dir, next)
	return ok && rev < s.rev
}

// firstRev returns the revision of segment num's first batch, reading
// only its first group; ok is false if it has none or does not read.
func firstRev(fsys persist.FS, dir string, num uint64) (rev int64, ok bool) {
	_, err := scanFrames(fsys, dir, num, tailRule{}, false, func(b *persist.Batch, off int64) error {
		rev, ok = b.Rev, true
		return errPeeked
	})
	return rev, ok && errors.Is(err, errPeeked)
}

var errPeeked = errors.New("first batch read")

// maxTailGroups bounds the groups sealedCovered decodes from a segment's
// end; past them it says no, and the segment is read as any other.
const maxTailGroups = 16

// sealedCovered reports whether sealed segment num holds only batches
// that the snapshot s holds, judged from the segment's last groups: the
// case of a segment the log sealed just before taking s (WriteSnapshot
// does), which coveredSegment cannot tell, the next segment starting after
// s's revision. A segment whose first batch is past s's revision says no
// at once; otherwise every frame is checked (headers and checksums, not
// decompressed), then the groups are decoded from the last one back until
// one starts below s's revision: every batch before it is below s's
// revision too, so s holds it (see coveredSegment), and the batches of
// the groups decoded must each be held by s (coverage.coveredBy: at s's
// own revision a compaction, an index or a lease batch may have followed
// the snapshot). Any trouble says no: the caller then reads the segment,
// which reports any damage as it always did.
func sealedCovered(fsys persist.FS, dir string, num uint64, s snapInfo) bool {
	if rev, ok := firstRev(fsys, dir, num); !ok || rev > s.rev {
		// A segment of the log after the snapshot: not worth reading
		// twice (here and by the replay).
		return false
	}
	name := path.Join(dir, segFile(num))
	f, err := fsys.Open(name)
	if err != nil {
		return false
	}
	defer f.Close()
	fr, err := newFrameReader(f, name)
	if err != nil {
		return false
	}
	h, flt, err := fr.header()
	if err != nil || flt != nil || h.num != num {
		return false
	}
	starts, ok := fr.groupStarts()
	if !ok {
		return false
	}
	var cover coverage
	for i := len(starts) - 1; i >= max(0, len(starts)-maxTailGroups); i-- {
		first, c, ok := fr.groupCoverage(starts[i])
		if !ok {
			return false
		}
		cover.merge(c)
		if !cover.coveredBy(s) {
			return false
		}
		if first < s.rev || i == 0 {
			return true
		}
	}
	return false
}

func removeSnap(s []snapInfo, num uint64) []snapInfo {
	for i := range s {
		if s[i].num == num {
			return append(s[:i], s[i+1:]...)
		}
	}
	return s
}

// repair makes the directory what the log writes on: leftovers removed,
// a manifest, and the tail it appends after durable by its own write. A
// clean reopen (the last run closed, nothing written since) writes
// nothing.
func (l *Log) repair(d *dirState, st *recovered) error {
	for _, name := range d.garbage {
		l.log.Info("revkv/filelog: removing a leftover file", "file", name)
		if err := l.fs.Remove(name); err != nil && !persist.IsNotExist(err) {
			return err
		}
	}
	l.files = fileSet{segs: st.segs, snaps: st.snaps}
	headerless := len(st.segs) > 0 && st.last.end == 0
	if headerless {
		// Not even its header was written (a torn tail of a directory
		// from before manifests): not a segment.
		if err := l.rewriteTail(st.segs[len(st.segs)-1].num, 0); err != nil {
			return err
		}
		l.files.segs = l.files.segs[:len(st.segs)-1]
	}
	if n := len(l.files.segs); headerless && n > 0 {
		l.files.synced = l.files.segs[n-1].size // sealed: a new one follows
	} else if n > 0 {
		l.files.synced = max(st.last.hdr, d.durable)
	}
	if err := l.setAsideFallenBack(d, st); err != nil {
		return err
	}
	if err := l.adoptManifest(d); err != nil {
		return err
	}
	if len(l.files.segs) == 0 || headerless {
		return l.startSegment(d.nextSeg)
	}
	return l.continueLast(d, st)
}

// damagedSuffix marks a snapshot a legacy directory's first open fell
// back from: the name parser ignores it, so the file stays for the user
// to look at and no later open takes it for a file of another store.
const damagedSuffix = ".damaged"

// setAsideFallenBack renames aside, in a directory from before manifests,
// every snapshot the load did not use because it was damaged or missing
// its header. Its first manifest will not list them, and such a file
// carries no identity: left in place, one numbered above the newest
// listed snapshot would make every later open refuse it as a file of
// another store. A managed directory needs none of this: there the
// damaged snapshot carries the store's identity and is removed as a
// leftover. The manifest's SyncDir makes the renames durable with it; a
// crash before leaves a directory the next open surveys the same way.
func (l *Log) setAsideFallenBack(d *dirState, st *recovered) error {
	if d.man != nil {
		return nil
	}
	used := map[uint64]bool{}
	for _, s := range st.snaps {
		used[s.num] = true
	}
	for _, num := range d.snaps {
		if used[num] {
			continue
		}
		name := path.Join(l.dir, snapFile(num))
		l.log.Warn("revkv/filelog: setting aside a damaged snapshot the open fell back from", "file", name, "to", name+damagedSuffix)
		if err := l.fs.Rename(name, name+damagedSuffix); err != nil {
			return err
		}
	}
	return nil
}

// adoptManifest takes the store's identity from its manifest; a new
// directory, or one from before manifests, gets an identity and a
// manifest of what is there, before any file carries the identity.
func (l *Log) adoptManifest(d *dirState) error {
	if d.man != nil {
		l.storeID = d.man.id
		return nil
	}
	l.storeID = newStoreID()
	return l.writeManifest(false)
}

// continueLast makes the last segment the one written next (or seals it
// and starts the next, if full): unless the last run closed cleanly at
// its end, its valid bytes are first written again, and the manifest
// records the new mark.
func (l *Log) continueLast(d *dirState, st *recovered) error {
	last := &l.files.segs[len(l.files.segs)-1]
	end := st.last.end
	clean := d.clean && !st.last.torn && end == st.last.size
	if !clean {
		if st.last.torn {
			l.log.Warn("revkv/filelog: cutting a torn tail", "file", l.segName(last.num), "offset", end)
		}
		if err := l.rewriteTail(last.num, end); err != nil {
			return err
		}
	}
	if end >= l.opts.SegmentSize {
		last.size = end
		return l.startSegment(last.num + 1)
	}
	// Writes go on at its end, so that opening a store to write a little
	// does not leave a small segment behind each time.
	if err := l.appendSegment(last.num, st.last.hdr, end); err != nil {
		return err
	}
	if clean {
		return nil // the manifest already says all there is
	}
	return l.writeManifest(false)
}

// startSegment starts segment num, durably, and records it in the
// manifest before anything is written to it.
func (l *Log) startSegment(num uint64) error {
	if err := l.newSegment(num); err != nil {
		return err
	}
	return l.writeManifest(false)
}

// rewriteTail makes the first end bytes of segment num durable by writing
// them again: to a temporary file, synced, renamed over the segment, and
// the directory synced. A sync that failed in an earlier run may have left
// pages that read back from the cache but never reach the disk, and a
// later sync of the same file does not write them again (Linux); only a
// fresh write proves them. With end 0 (a torn header) the segment is
// removed instead.
func (l *Log) rewriteTail(num uint64, end int64) error {
	name := l.segName(num)
	if end == 0 {
		if err := l.fs.Remove(name); err != nil {
			return err
		}
		return l.fs.SyncDir(l.dir)
	}
	src, err := l.fs.Open(name)
	if err != nil {
		return err
	}
	tmp := name + tmpSuffix
	dst, err := l.fs.Create(tmp)
	if err != nil {
		src.Close()
		return err
	}
	_, err = io.Copy(dst, io.NewSectionReader(src, 0, end))
	if err == nil {
		err = dst.Sync()
	}
	// Both closed before the rename: some systems refuse to replace an
	// open file.
	err = errors.Join(err, dst.Close(), src.Close())
	if err == nil {
		err = l.fs.Rename(tmp, name)
	}
	if err == nil {
		err = l.fs.SyncDir(l.dir)
	}
	if err != nil {
		l.fs.Remove(tmp) // best effort: the next open removes it too
		return fmt.Errorf("rewrite %s: %w", name, err)
	}
	return nil
}

// start marks the log running and starts its goroutines.
func (l *Log) start() {
	l.mu.Lock()
	l.running = true
	l.mu.Unlock()
	l.wg.Add(2)
	go l.flusher()
	go l.snapshotter()
}

// appendSegment makes segment num, whose whole content ends at end, the
// one written next.
func (l *Log) appendSegment(num uint64, hdr, end int64) error {
	f, err := l.fs.OpenReadWrite(l.segName(num))
	if err != nil {
		return err
	}
	if _, err := f.Seek(end, io.SeekStart); err != nil {
		f.Close()
		return err
	}
	l.seg, l.segNum, l.segSize, l.segHdr = f, num, end, hdr
	l.marked = end
	l.filesMu.Lock()
	l.files.synced = end
	l.filesMu.Unlock()
	return nil
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
	if persist.IsNotExist(err) {
		return &DamageError{File: name, Err: errors.New("missing: the manifest lists it")}
	}
	if err != nil {
		return fmt.Errorf("revkv/filelog: %w", err)
	}
	defer f.Close()
	if err := t.LoadSnapshot(bufio.NewReaderSize(f, 1<<20)); err != nil {
		return fmt.Errorf("revkv/filelog: snapshot %s: %w", name, err)
	}
	return nil
}
