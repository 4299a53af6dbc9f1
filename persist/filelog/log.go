package filelog

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"sync"
	"sync/atomic"
	"time"

	"github.com/revkv/revkv/internal/zcodec"
	"github.com/revkv/revkv/kv"
	"github.com/revkv/revkv/persist"
)

// SyncPolicy says when a write is durable.
type SyncPolicy int

const (
	// SyncAlways: every write is on stable storage when it returns (group
	// commit shares one fsync between concurrent writers). The default.
	SyncAlways SyncPolicy = iota
	// SyncInterval: writes reach the OS at once and stable storage within
	// Options.SyncInterval; a crash may lose the writes of the last
	// interval, never an older one.
	SyncInterval
	// SyncNone: writes reach the OS at once; stable storage is left to the
	// OS (and to Commit, segment rotation, snapshots and Close).
	SyncNone
)

// String returns the policy's name: always, interval or none.
func (p SyncPolicy) String() string {
	switch p {
	case SyncAlways:
		return "always"
	case SyncInterval:
		return "interval"
	case SyncNone:
		return "none"
	}
	return fmt.Sprintf("SyncPolicy(%d)", int(p))
}

// Options configure a Log. The zero value is the default for applications:
// the OS filesystem, a sync per commit, 64 MiB segments, a snapshot every
// 100,000 revisions or 256 MiB of log.
type Options struct {
	// FS is the filesystem; nil is persist.OS. Tests pass a memfs.FS.
	FS persist.FS
	// Sync is the sync policy.
	Sync SyncPolicy
	// SyncInterval is SyncInterval's period; 0 means 100 ms.
	SyncInterval time.Duration
	// SegmentSize is the size at which a segment is closed and a new one
	// started; 0 means 64 MiB.
	SegmentSize int64
	// SnapshotRevs and SnapshotBytes start a snapshot once that many
	// revisions, or bytes of log, were written since the last one; 0 means
	// 100,000 revisions and 256 MiB, and a negative value turns that
	// trigger off. A compaction always starts one, which gives back the
	// disk of what it removed (see the package doc, "Disk space").
	SnapshotRevs  int64
	SnapshotBytes int64
	// ReadOnly opens the directory to read it only: Recover changes no
	// file (a torn tail is skipped, not cut), no goroutine runs, and
	// Append fails with ErrReadOnly (so an engine on it stops at its first
	// write). Tools that inspect a directory use it.
	ReadOnly bool
	// Logger receives debug records and reports of damage recovered from;
	// nil means no logging.
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.FS == nil {
		o.FS = persist.OS
	}
	if o.SyncInterval <= 0 {
		o.SyncInterval = 100 * time.Millisecond
	}
	if o.SegmentSize <= 0 {
		o.SegmentSize = 64 << 20
	}
	if o.SnapshotRevs == 0 {
		o.SnapshotRevs = 100_000
	}
	if o.SnapshotBytes == 0 {
		o.SnapshotBytes = 256 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Errors.
var (
	// ErrReadOnly: a write to a Log opened with Options.ReadOnly.
	ErrReadOnly = errors.New("revkv/filelog: opened read-only")
	// ErrLocked: another Log (in this or another process) has the
	// directory open. It wraps persist.ErrLocked.
	ErrLocked = fmt.Errorf("revkv/filelog: directory in use: %w", persist.ErrLocked)
	// ErrInUse: Recover for a second store; a Log serves one.
	// It wraps persist.ErrInUse.
	ErrInUse = fmt.Errorf("revkv/filelog: %w", persist.ErrInUse)
	// ErrNotRecovered: Wait, Sync or WriteSnapshot before Recover.
	ErrNotRecovered = errors.New("revkv/filelog: Recover has not run")
	// ErrRevision: a batch whose revision is not positive, or below one
	// appended before (the engine's revision wrapped past MaxInt64). It is
	// refused before it is written, and stops the log; the directory
	// still opens at the last good revision.
	ErrRevision = fmt.Errorf("revkv/filelog: revision out of range: %w", kv.ErrCorrupt)
)

// Log is the file persister: a persist.Persister over one directory.
// Append, Wait, Sync and Close are safe for concurrent use; the engine
// calls Recover first and once (and again from Restore).
type Log struct {
	opts Options
	fs   persist.FS
	dir  string
	lock io.Closer
	log  *slog.Logger

	mu   sync.Mutex
	cond *sync.Cond // on mu: positions moved, or the queue drained
	// Guarded by mu:
	queue     []byte   // encoded batches not yet taken by the flusher
	maxRev    int64    // the highest revision appended
	queueMeta coverage // what the queued batches hold
	appended  uint64   // position of the last batch appended
	written   uint64   // position of the last batch written to a file
	synced    uint64   // position of the last batch on stable storage
	syncWant  uint64   // a Sync waits for this position
	err       error    // sticky: the first write or sync failure
	closing   bool
	running   bool // the goroutines were started (Recover ran once)
	flushed   bool // the flusher has exited: nothing more becomes durable

	kick     chan struct{} // wakes the flusher
	snapKick chan struct{} // wakes the snapshotter
	stop     chan struct{} // closed by Close
	wg       sync.WaitGroup

	// gcMu keeps the snapshotter's removal of old files from running
	// under a Recover reading them. It is taken before filesMu.
	gcMu    sync.Mutex
	filesMu sync.Mutex
	files   fileSet // guarded by filesMu

	target  persist.Target // set by Recover
	owner   any            // the store the log serves; guarded by mu
	storeID uint64         // the store's identity; set by the first Recover
	// manMu serializes writes of the manifest, each built from files
	// under it, so that the last one written is the newest. Taken before
	// filesMu.
	manMu sync.Mutex

	// Owned by the flusher goroutine (and by Recover before it starts):
	seg      persist.File
	segNum   uint64
	segSize  int64
	out      []byte
	enc      *zcodec.Encoder // made at the first write; dropped by Close
	sinceRev int64           // revisions written since the last snapshot started
	sinceLen int64           // bytes written since the last snapshot started
	// compactedSince: a compaction was written since then.
	compactedSince bool
	// compactWritten is the newest compacted revision the flusher has
	// written (-1: none since Open), for the snapshotter (see
	// awaitCompaction).
	compactWritten atomic.Int64
	lastRev        int64
	snapping       bool  // guarded by mu
	segHdr         int64 // the current segment's header size
	marked         int64 // the current segment's size at its last manifest mark
	// rotateWant asks the flusher to start a new segment (guarded by mu);
	// rotations counts the requests it served.
	rotateWant bool
	rotations  uint64
}

var _ persist.Persister = (*Log)(nil)

// Open opens (creating it if needed) the log in directory dir and takes
// its lock: a second Open of the same directory, from this process or
// another, fails with ErrLocked until Close. It reads nothing yet: the
// engine's Open calls Recover.
//
// With Options.ReadOnly, Open creates nothing (a missing directory is an
// error wrapping fs.ErrNotExist) and takes a shared lock if the FS has one
// (persist.SharedLocker) and LOCK exists, none otherwise: read-only Logs
// open beside each other, and on a read-only filesystem, but not beside a
// writer (ErrLocked).
func Open(dir string, opts Options) (*Log, error) {
	opts = opts.withDefaults()
	fsys := opts.FS
	var lock io.Closer
	var err error
	if opts.ReadOnly {
		lock, err = lockShared(fsys, dir)
	} else {
		if err := fsys.MkdirAll(dir); err != nil {
			return nil, fmt.Errorf("revkv/filelog: %w", err)
		}
		lock, err = lockDir(fsys, dir)
	}
	if err != nil {
		return nil, err
	}
	l := &Log{
		opts: opts, fs: fsys, dir: dir, lock: lock, log: opts.Logger,
		kick: make(chan struct{}, 1), snapKick: make(chan struct{}, 1), stop: make(chan struct{}),
	}
	l.cond = sync.NewCond(&l.mu)
	l.compactWritten.Store(-1)
	return l, nil
}

// Dir returns the log's directory.
func (l *Log) Dir() string { return l.dir }

// maxQueue is how many encoded bytes may wait for the flusher before
// Append waits for it (backpressure, so memory does not grow with a disk
// slower than the writers).
const maxQueue = 8 << 20

// Append encodes b and queues it for the flusher. It waits only when the
// queue is full. It returns b's position.
func (l *Log) Append(b *persist.Batch) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.err == nil && !l.closing && len(l.queue) >= maxQueue {
		l.cond.Wait()
	}
	switch {
	case l.err != nil:
		return 0, l.err
	case l.closing || !l.running:
		return 0, kv.ErrClosed
	case l.opts.ReadOnly:
		return 0, ErrReadOnly
	case b.Rev < 1 || b.Rev < l.maxRev:
		// Stop here: a revision that wrapped would make the directory
		// unreadable once written.
		l.err = fmt.Errorf("%w: batch at revision %d after %d", ErrRevision, b.Rev, l.maxRev)
		l.cond.Broadcast()
		return 0, l.err
	}
	l.maxRev = b.Rev
	l.queue = appendBatch(l.queue, b)
	l.queueMeta.add(b)
	l.appended++
	l.kickFlusher()
	return l.appended, nil
}

// Wait returns once the batch at pos is as durable as the sync policy
// promises: on stable storage for SyncAlways; for the other policies at
// once. It returns the log's failure, if any.
func (l *Log) Wait(pos uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.running {
		if l.closing {
			return kv.ErrClosed
		}
		return ErrNotRecovered
	}
	if l.opts.Sync != SyncAlways {
		return l.err
	}
	return l.await(func() bool { return l.synced >= pos }, kv.ErrClosed)
}

// kickFlusher wakes the flusher if it is idle. mu is held.
func (l *Log) kickFlusher() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// await waits until reached holds, the log fails, or the flusher has
// exited, and returns nil, the failure, or gone (in that order of
// precedence: a goal reached before a failure counts). mu is held.
func (l *Log) await(reached func() bool, gone error) error {
	for l.err == nil && !reached() && !l.flushed {
		l.cond.Wait()
	}
	switch {
	case reached():
		return nil
	case l.err != nil:
		return l.err
	}
	return gone
}

// Sync makes every batch appended so far durable, whatever the policy.
func (l *Log) Sync() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.closing:
		return kv.ErrClosed
	case !l.running:
		return ErrNotRecovered
	case l.opts.ReadOnly:
		return nil // nothing was written
	}
	want := l.appended
	l.syncWant = max(l.syncWant, want)
	l.kickFlusher()
	return l.await(func() bool { return l.synced >= want }, kv.ErrClosed)
}

// Close makes everything appended durable, stops the log's goroutines,
// closes its files and releases the directory lock. A snapshot being
// written is abandoned (its WriteSnapshot returns an error), and Close
// waits for that. It returns the error of that last sync, or the
// log's earlier failure.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		return kv.ErrClosed
	}
	l.closing = true
	running := l.running
	want := l.appended
	l.syncWant = max(l.syncWant, want)
	l.cond.Broadcast()
	l.mu.Unlock()

	var err error
	if running && !l.opts.ReadOnly {
		close(l.stop) // also aborts a snapshot being written
		l.wg.Wait()
		l.mu.Lock()
		for l.snapping { // one a caller of WriteSnapshot started
			l.cond.Wait()
		}
		if l.synced < want {
			err = l.err
			if err == nil {
				err = errors.New("revkv/filelog: closed before sync")
			}
		}
		failed := l.err != nil
		l.mu.Unlock()
		if err == nil && !failed {
			// The record of a clean close: the next open appends at
			// this end without rewriting anything.
			err = l.writeManifest(true)
		}
	}
	if l.seg != nil {
		err = errors.Join(err, l.seg.Close())
	}
	// The flusher has exited: its encoder (megabytes of tables) and
	// output buffer go with the log, even if the caller keeps the Log.
	l.enc, l.out = nil, nil
	return errors.Join(err, l.lock.Close())
}

// flusher writes queued batches to the current segment and syncs it as
// the policy and Sync callers need. It is the only goroutine that writes
// segments.
func (l *Log) flusher() {
	defer l.wg.Done()
	defer func() {
		l.mu.Lock()
		l.flushed = true
		l.cond.Broadcast()
		l.mu.Unlock()
	}()
	var tick <-chan time.Time
	if l.opts.Sync == SyncInterval {
		t := time.NewTicker(l.opts.SyncInterval)
		defer t.Stop()
		tick = t.C
	}
	var spare []byte
	for {
		var why wake
		select {
		case <-l.kick:
		case <-tick:
			why = woke.tick
		case <-l.stop:
			why = woke.stop
		}
		for {
			g, ok := l.takeGroup(spare, why)
			if !ok {
				break
			}
			synced, err := l.flushGroup(g)
			spare = g.buf
			if cap(spare) > 2*maxQueue {
				spare = nil
			}
			more := l.groupDone(g, synced, err, why)
			l.maybeSnapshot()
			if !more {
				break
			}
		}
		if why == woke.stop {
			return
		}
	}
}

// wake is why the flusher woke: a kick (Append, Sync, a rotation
// request), SyncInterval's tick, or Close.
type wake int

var woke = struct{ kick, tick, stop wake }{0, 1, 2}

// group is what the flusher took from the queue in one go, and what it
// owes for it.
type group struct {
	buf    []byte // encoded batches
	meta   coverage
	pos    uint64 // position of the last batch in it
	sync   bool   // sync the segment after writing it
	rotate bool   // start a new segment after it (WriteSnapshot asked)
}

// takeGroup takes the queued batches (leaving spare as the new queue) and
// decides what writing them owes. It reports false if the log failed.
func (l *Log) takeGroup(spare []byte, why wake) (group, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return group{}, false
	}
	g := group{buf: l.queue, meta: l.queueMeta, pos: l.appended, rotate: l.rotateWant}
	g.sync = l.syncOwedLocked(g.pos, why)
	l.queue, l.queueMeta = spare[:0], coverage{}
	l.rotateWant = false
	l.cond.Broadcast() // the queue has room again
	return g, true
}

// syncOwedLocked is the sync decision: whether the flusher must sync
// after writing the batches up to pos. mu is held.
func (l *Log) syncOwedLocked(pos uint64, why wake) bool {
	switch {
	case why == woke.stop: // Close makes everything durable
		return true
	case l.syncWant > l.synced: // a Sync (the engine's Commit) waits
		return true
	case l.opts.Sync == SyncAlways: // every write waits for its sync
		return pos > l.synced
	case why == woke.tick: // SyncInterval: the period's writes
		return l.written > l.synced
	}
	return false
}

// flushGroup writes g, then syncs and rotates as g owes (rotation syncs
// too). It reports whether the segment was synced.
func (l *Log) flushGroup(g group) (synced bool, err error) {
	if err := l.writeGroup(g.buf, g.meta); err != nil {
		return false, err
	}
	if g.sync {
		if err := l.syncSegment(); err != nil {
			return false, err
		}
		synced = true
		if l.segSize-l.marked >= l.markEvery() {
			// Move the manifest's mark, so that a cut of the newest
			// segment before it is found.
			if err := l.writeManifest(false); err != nil {
				return synced, err
			}
			l.marked = l.segSize
		}
	}
	if l.segSize >= l.opts.SegmentSize || (g.rotate && l.segSize > l.segHdr) {
		if err := l.rotate(); err != nil {
			return synced, err
		}
		synced = true
	}
	if g.rotate {
		l.mu.Lock()
		l.rotations++
		l.mu.Unlock()
	}
	return synced, nil
}

// groupDone records what flushing g achieved (or the failure, which
// stops the log) and wakes waiters. It reports whether the flusher should
// go on without waiting for a kick: batches are queued that someone waits
// on.
func (l *Log) groupDone(g group, synced bool, err error, why wake) (more bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	defer l.cond.Broadcast()
	if err != nil {
		if l.err == nil {
			l.err = fmt.Errorf("revkv/filelog: %w", err)
			l.log.Error("revkv/filelog: write failed; no more writes", "err", err)
		}
		return false
	}
	l.written = g.pos
	if synced {
		l.synced = g.pos
	}
	return len(l.queue) > 0 && (why == woke.stop || l.opts.Sync == SyncAlways || l.syncWant > l.synced)
}

// writeGroup writes a group of encoded batches as frames, in one write.
func (l *Log) writeGroup(raw []byte, meta coverage) error {
	if len(raw) == 0 {
		return nil
	}
	if l.enc == nil {
		l.enc = zcodec.NewEncoder(zcodec.Fast)
	}
	l.out = appendFrames(l.enc, l.out[:0], raw)
	n, err := l.seg.Write(l.out)
	l.segSize += int64(n)
	if err == nil && n < len(l.out) {
		err = io.ErrShortWrite
	}
	if cap(l.out) > 2*maxQueue {
		l.out = nil
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", l.segName(l.segNum), err)
	}
	l.filesMu.Lock()
	l.files.segs[len(l.files.segs)-1].cover.merge(meta)
	l.filesMu.Unlock()
	if meta.rev > l.lastRev && l.lastRev > 0 {
		l.sinceRev += meta.rev - l.lastRev
	}
	l.lastRev = max(l.lastRev, meta.rev)
	l.sinceLen += int64(n)
	l.compactedSince = l.compactedSince || meta.compacted
	if meta.compacted && meta.compact > l.compactWritten.Load() {
		l.compactWritten.Store(meta.compact)
	}
	return nil
}

// syncSegment syncs the current segment and records how far it is synced,
// for the manifest.
func (l *Log) syncSegment() error {
	if err := l.seg.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", l.segName(l.segNum), err)
	}
	l.filesMu.Lock()
	l.files.synced = l.segSize
	l.filesMu.Unlock()
	return nil
}

// markEvery is how much log may be synced past the manifest's mark
// before the flusher moves it: a quarter segment, so that the manifest is
// written a few times per segment (two fsyncs each), never per put.
func (l *Log) markEvery() int64 { return max(l.opts.SegmentSize/4, 4<<10) }

// rotate syncs the current segment, seals it at its size, starts the next
// one and records both in the manifest.
func (l *Log) rotate() error {
	if err := l.syncSegment(); err != nil {
		return err
	}
	if err := l.seg.Close(); err != nil {
		return err
	}
	l.seg = nil
	l.filesMu.Lock()
	l.files.segs[len(l.files.segs)-1].size = l.segSize
	l.filesMu.Unlock()
	return l.startSegment(l.segNum + 1)
}

// newSegment creates segment num with its header, durably (file and
// directory entry), and makes it current. The caller records it in the
// manifest before writing to it.
func (l *Log) newSegment(num uint64) error {
	name := l.segName(num)
	f, err := l.fs.Create(name)
	if err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	hdr := appendSegHeader(nil, num, l.storeID)
	_, err = f.Write(hdr)
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = l.fs.SyncDir(l.dir)
	}
	if err != nil {
		f.Close()
		return fmt.Errorf("create %s: %w", name, err)
	}
	l.seg, l.segNum, l.segSize, l.segHdr = f, num, int64(len(hdr)), int64(len(hdr))
	l.marked = l.segSize
	l.filesMu.Lock()
	l.files.segs = append(l.files.segs, segInfo{num: num, size: -1})
	l.files.synced = l.segSize
	l.filesMu.Unlock()
	return nil
}

// writeManifest records the log's files in the manifest: the sealed
// segments with their sizes, the current one as synced so far, the
// snapshots; clean says the log is closing with everything synced.
func (l *Log) writeManifest(clean bool) error {
	l.manMu.Lock()
	defer l.manMu.Unlock()
	l.filesMu.Lock()
	m := l.manifestLocked(clean)
	l.filesMu.Unlock()
	return writeManifest(l.fs, l.dir, m)
}

// manifestLocked builds the manifest of the file set. filesMu is held.
func (l *Log) manifestLocked(clean bool) *manifest {
	m := &manifest{id: l.storeID, clean: clean}
	for i, s := range l.files.segs {
		size := s.size
		if i == len(l.files.segs)-1 {
			size = l.files.synced
		}
		m.segs = append(m.segs, segMark{num: s.num, size: size})
	}
	for _, s := range l.files.snaps {
		m.snaps = append(m.snaps, s.num)
	}
	return m
}

func (l *Log) segName(num uint64) string { return path.Join(l.dir, segFile(num)) }
