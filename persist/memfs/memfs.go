// Package memfs is an in-memory persist.FS for tests that models
// durability strictly and injects faults.
//
// Durability: a file's data survives Crash only as of its last Sync, and a
// name (Create, Rename, Remove) only as of the last SyncDir of its
// directory. Crash also invalidates every open File.
//
// What Crash keeps of a file's unsynced appended tail is the crash model
// (Options.Crash): nothing (CrashDrop, the default); a prefix of it, as a
// disk that wrote part of it in order (CrashTorn); or, as a filesystem that
// records a file's new size before its data (ext4 with data=writeback, xfs
// after a power loss), the file grown to any size up to its new one, with a
// prefix of the unsynced bytes and zeros after them (CrashGrowFirst).
//
// What a failed Sync means is the sync failure model. By default a failed
// Sync makes nothing durable and a later Sync that succeeds makes
// everything durable: the retry semantics a careful filesystem could give.
// With Options.LinuxSyncFailures, a failed Sync behaves as Linux's fsync
// does (the "fsyncgate" behaviour): reads are unchanged, but the bytes
// written since the last successful Sync are marked clean without reaching
// the disk, so later Syncs of that file succeed without writing them; only
// bytes written again after the failure become durable. A crash then
// shows what the disk held there before (zeros past the durable size).
// See Options.LinuxSyncFailures for directories.
//
// Faults, armed by the test: the Nth Write or Sync from now fails; writes
// fail with ErrNoSpace once the files hold a set number of bytes; every
// operation fails with ErrCrashed after N more operations (until Crash); a
// byte of a file is flipped. Ops counts operations, so a test can run a
// workload once, then crash it at every k-th operation; Syncs counts
// Syncs, so a test can fail each one in turn.
//
// Directories exist once MkdirAll made them (durably: directory creation is
// not modelled). Locks are held in memory and do not appear in List.
package memfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math"
	"math/rand/v2"
	"path"
	"slices"
	"sync"
	"syscall"

	"github.com/revkv/revkv/persist"
)

// Errors of injected faults.
var (
	ErrInjected = errors.New("memfs: injected fault")
	ErrNoSpace  = fmt.Errorf("memfs: %w", syscall.ENOSPC)
	ErrCrashed  = errors.New("memfs: crashed")
)

// Options configure an FS. The zero value drops every unsynced byte at a
// crash and lets a later Sync retry a failed one.
type Options struct {
	// Crash is the crash model: what Crash keeps of unsynced appends.
	Crash CrashModel
	// LinuxSyncFailures makes a failed Sync behave as Linux's fsync: what
	// reads return is unchanged, but nothing written to that file since
	// its last successful Sync becomes durable, not even through a later
	// Sync that succeeds; bytes written again after the failure do. (Bytes,
	// where Linux works in pages: a page rewritten in part is written
	// whole by Linux, so memfs loses a little more, never less.)
	//
	// A failed SyncDir makes nothing durable either, but the directory's
	// changes stay pending: the entries created, renamed or removed since
	// its last successful SyncDir become durable at the next SyncDir that
	// succeeds. Directory changes are metadata, which journalling
	// filesystems (ext4, xfs) commit whole or abort the journal over; they
	// do not drop a failed update and report the next one done.
	LinuxSyncFailures bool
	// Seed seeds the random choices of the crash model.
	Seed uint64
}

// CrashModel says what Crash keeps of a file's unsynced tail: the bytes
// appended since its last Sync, when the Syncs' data is still its
// prefix. (Any other unsynced change, an overwrite or a truncation, is
// dropped whole.)
type CrashModel int

const (
	// CrashDrop drops the unsynced tail: the file comes back as of its
	// last Sync.
	CrashDrop CrashModel = iota
	// CrashTorn keeps a random prefix of the unsynced tail (possibly all
	// or none of it): a disk that wrote part of it, in order.
	CrashTorn
	// CrashGrowFirst brings the file back at a random size between its
	// synced size and its unsynced one (often the whole new size), holding
	// a random prefix of the unsynced tail (often none) and zeros after it
	// up to that size: a filesystem that made the file's new size durable
	// before its data.
	CrashGrowFirst
)

func (c CrashModel) String() string {
	switch c {
	case CrashDrop:
		return "drop"
	case CrashTorn:
		return "torn"
	case CrashGrowFirst:
		return "grow-first"
	}
	return fmt.Sprintf("CrashModel(%d)", int(c))
}

// FS is an in-memory persist.FS. It is safe for concurrent use.
type FS struct {
	mu    sync.Mutex
	opts  Options
	rng   *rand.Rand
	dirs  map[string]*dir
	locks map[string]bool
	epoch int // bumped by Crash: Files of older epochs fail
	ops   int64
	syncs int64

	failWrite, failSync, crashAfter int64 // countdowns; 0: not armed
	diskLimit                       int64 // bytes; 0: no limit
	crashed                         bool
}

type dir struct {
	live    map[string]*node
	durable map[string]*node
}

type node struct {
	data   []byte // what reads see
	synced []byte // what survives a crash
	// lost are the bytes of data that a failed Sync marked clean (only
	// with LinuxSyncFailures): a Sync leaves what synced holds there (zeros
	// past its end) until they are written again.
	lost spans
}

// image is what a successful Sync of n writes: its data, except where a
// failed Sync lost it.
func (n *node) image() []byte {
	img := bytes.Clone(n.data)
	for _, s := range n.lost {
		for i := s.lo; i < s.hi; i++ {
			img[i] = 0
			if i < int64(len(n.synced)) {
				img[i] = n.synced[i]
			}
		}
	}
	return img
}

// loseUnsynced marks every byte of n that differs from what is durable as
// lost, as Linux does with the dirty pages of a failed fsync.
func (n *node) loseUnsynced() {
	start := int64(-1)
	for i := range int64(len(n.data)) {
		differs := i >= int64(len(n.synced)) || n.data[i] != n.synced[i]
		switch {
		case differs && start < 0:
			start = i
		case !differs && start >= 0:
			n.lost = n.lost.add(start, i)
			start = -1
		}
	}
	if start >= 0 {
		n.lost = n.lost.add(start, int64(len(n.data)))
	}
}

// truncated is called when n's data was cut or grown to size: lost bytes
// past it are gone, and bytes it grows by are new (zeros, written).
func (n *node) truncated(size int64) { n.lost = n.lost.remove(size, math.MaxInt64) }

var _ persist.FS = (*FS)(nil)

// New returns an empty FS with the root directory ".".
func New(opts Options) *FS {
	f := &FS{opts: opts, rng: rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x5eed)), dirs: map[string]*dir{}, locks: map[string]bool{}}
	f.dirs["."] = newDir()
	f.dirs["/"] = newDir()
	return f
}

func newDir() *dir { return &dir{live: map[string]*node{}, durable: map[string]*node{}} }

// op counts an operation and applies the crash countdown. mu is held.
func (f *FS) op(name string) error {
	if f.crashed {
		return &fs.PathError{Op: "memfs", Path: name, Err: ErrCrashed}
	}
	if f.crashAfter > 0 {
		f.crashAfter--
		if f.crashAfter == 0 {
			f.crashed = true
			return &fs.PathError{Op: "memfs", Path: name, Err: ErrCrashed}
		}
	}
	f.ops++
	return nil
}

func (f *FS) lookupDir(name string) (*dir, string, error) {
	d := f.dirs[path.Dir(path.Clean(name))]
	if d == nil {
		return nil, "", &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return d, path.Base(name), nil
}

// entry counts an operation on name and resolves its directory. mu is
// held.
func (f *FS) entry(name string) (*dir, string, error) {
	if err := f.op(name); err != nil {
		return nil, "", err
	}
	return f.lookupDir(name)
}

// Create implements persist.FS.
func (f *FS) Create(name string) (persist.File, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, base, err := f.entry(name)
	if err != nil {
		return nil, err
	}
	n := d.live[base]
	if n == nil {
		n = &node{}
		d.live[base] = n
	} else {
		n.data = nil // truncated; durable as of the next Sync
		n.truncated(0)
	}
	return &file{fs: f, n: n, name: name, epoch: f.epoch}, nil
}

func (f *FS) open(name string, write bool) (persist.File, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, base, err := f.entry(name)
	if err != nil {
		return nil, err
	}
	n := d.live[base]
	if n == nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return &file{fs: f, n: n, name: name, epoch: f.epoch, readOnly: !write}, nil
}

// Open implements persist.FS.
func (f *FS) Open(name string) (persist.File, error) { return f.open(name, false) }

// OpenReadWrite implements persist.FS.
func (f *FS) OpenReadWrite(name string) (persist.File, error) { return f.open(name, true) }

// Rename implements persist.FS.
func (f *FS) Rename(oldname, newname string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	od, obase, err := f.entry(oldname)
	if err != nil {
		return err
	}
	nd, nbase, err := f.lookupDir(newname)
	if err != nil {
		return err
	}
	n := od.live[obase]
	if n == nil {
		return &fs.PathError{Op: "rename", Path: oldname, Err: fs.ErrNotExist}
	}
	delete(od.live, obase)
	nd.live[nbase] = n
	return nil
}

// Remove implements persist.FS.
func (f *FS) Remove(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, base, err := f.entry(name)
	if err != nil {
		return err
	}
	if d.live[base] == nil {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	delete(d.live, base)
	return nil
}

// List implements persist.FS.
func (f *FS) List(dirname string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.dirs[path.Clean(dirname)]
	if d == nil {
		return nil, &fs.PathError{Op: "readdir", Path: dirname, Err: fs.ErrNotExist}
	}
	names := make([]string, 0, len(d.live))
	for name := range d.live {
		names = append(names, name)
	}
	for p := range f.dirs {
		if p != "." && p != "/" && path.Dir(p) == path.Clean(dirname) {
			names = append(names, path.Base(p))
		}
	}
	slices.Sort(names)
	return names, nil
}

// MkdirAll implements persist.FS.
func (f *FS) MkdirAll(dirname string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for p := path.Clean(dirname); ; p = path.Dir(p) {
		if f.dirs[p] == nil {
			f.dirs[p] = newDir()
		}
		if p == "." || p == "/" {
			return nil
		}
	}
}

// SyncDir implements persist.FS.
func (f *FS) SyncDir(dirname string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.op(dirname); err != nil {
		return err
	}
	d := f.dirs[path.Clean(dirname)]
	if d == nil {
		return &fs.PathError{Op: "sync", Path: dirname, Err: fs.ErrNotExist}
	}
	if err := f.syncFault(dirname); err != nil {
		return err // the changes stay pending, in either sync model
	}
	d.durable = make(map[string]*node, len(d.live))
	for k, v := range d.live {
		d.durable[k] = v
	}
	return nil
}

// Lock implements persist.FS.
func (f *FS) Lock(name string) (io.Closer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.locks[name] || f.sharedHeld(name) {
		return nil, fmt.Errorf("%s: %w", name, persist.ErrLocked)
	}
	f.locks[name] = true
	return lockCloser{f: f, name: name}, nil
}

type lockCloser struct {
	f    *FS
	name string
}

func (l lockCloser) Close() error {
	l.f.mu.Lock()
	defer l.f.mu.Unlock()
	delete(l.f.locks, l.name)
	return nil
}

// Crash simulates a power loss: every file keeps only its synced data (and
// what the crash model keeps of the rest), every directory only its synced
// entries, and open Files fail from now on. It also clears a crashed state
// set by CrashAfter. Locks are released, as a dead process's would be.
func (f *FS) Crash() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.epoch++
	f.crashed = false
	f.crashAfter = 0
	f.locks = map[string]bool{}
	seen := map[*node]bool{}
	for _, name := range slices.Sorted(maps.Keys(f.dirs)) { // the same choices for the same seed
		d := f.dirs[name]
		d.live = make(map[string]*node, len(d.durable))
		for _, k := range slices.Sorted(maps.Keys(d.durable)) {
			n := d.durable[k]
			d.live[k] = n
			if seen[n] {
				continue
			}
			seen[n] = true
			n.data = f.survivor(n)
			n.synced = bytes.Clone(n.data)
			n.lost = nil
		}
	}
}

// survivor is what n holds after a crash, under the crash model. mu is
// held.
func (f *FS) survivor(n *node) []byte {
	keep := bytes.Clone(n.synced)
	img := n.image() // what the disk would hold had every write reached it
	if len(img) <= len(keep) || !bytes.Equal(img[:len(keep)], keep) {
		return keep // not an append: dropped whole
	}
	tail := img[len(keep):]
	switch f.opts.Crash {
	case CrashTorn:
		keep = append(keep, tail[:f.rng.IntN(len(tail)+1)]...)
	case CrashGrowFirst:
		// Favour the states that differ most from a torn write: the
		// whole new size, and nothing but zeros in it.
		size := len(tail)
		if f.rng.IntN(2) == 0 {
			size = f.rng.IntN(len(tail) + 1)
		}
		written := 0
		if f.rng.IntN(3) != 0 {
			written = f.rng.IntN(size + 1)
		}
		keep = append(keep, tail[:written]...)
		keep = append(keep, make([]byte, size-written)...)
	}
	return keep
}

// Clone returns a copy of f's files and directories (what they hold now
// and what would survive a crash), with no locks held, no faults armed and
// its own random source: a disk image a test can damage and throw away.
func (f *FS) Clone() *FS {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := New(f.opts)
	nodes := map[*node]*node{}
	cp := func(n *node) *node {
		if m := nodes[n]; m != nil {
			return m
		}
		m := &node{data: bytes.Clone(n.data), synced: bytes.Clone(n.synced), lost: slices.Clone(n.lost)}
		nodes[n] = m
		return m
	}
	for name, d := range f.dirs {
		nd := newDir()
		for k, n := range d.live {
			nd.live[k] = cp(n)
		}
		for k, n := range d.durable {
			nd.durable[k] = cp(n)
		}
		c.dirs[name] = nd
	}
	return c
}

// Ops returns how many operations (creates, opens, writes, syncs,
// truncates, renames, removes, directory syncs) the FS has served; one that
// failed at a CrashAfter point is not counted.
func (f *FS) Ops() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ops
}

// Syncs returns how many Syncs and SyncDirs the FS has served, failed
// ones included (one refused at a CrashAfter point is not counted): a test
// that runs a workload with FailSync(k) knows the fault was met when
// Syncs() >= k.
func (f *FS) Syncs() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.syncs
}

// CrashAfter makes the n-th operation from now, and every one after it,
// fail with ErrCrashed, until Crash.
func (f *FS) CrashAfter(n int64) { f.mu.Lock(); f.crashAfter = n; f.mu.Unlock() }

// FailWrite makes the n-th Write from now fail with ErrInjected, writing
// nothing.
func (f *FS) FailWrite(n int64) { f.mu.Lock(); f.failWrite = n; f.mu.Unlock() }

// FailSync makes the n-th Sync or SyncDir from now fail with ErrInjected,
// making nothing durable; with Options.LinuxSyncFailures, a failed Sync
// also makes the file's unsynced bytes never durable (see there).
func (f *FS) FailSync(n int64) { f.mu.Lock(); f.failSync = n; f.mu.Unlock() }

// LimitDisk makes writes fail with ErrNoSpace once all files together hold
// limit bytes (a write that crosses it writes what fits); 0 removes the
// limit.
func (f *FS) LimitDisk(limit int64) { f.mu.Lock(); f.diskLimit = limit; f.mu.Unlock() }

// FlipByte flips every bit of the byte at off in the file name, in what it
// holds now and in what survives a crash: a damaged disk.
func (f *FS) FlipByte(name string, off int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, base, err := f.lookupDir(name)
	if err != nil {
		return err
	}
	n := d.live[base]
	if n == nil || off < 0 || off >= int64(len(n.data)) {
		return &fs.PathError{Op: "flip", Path: name, Err: fs.ErrInvalid}
	}
	n.data[off] ^= 0xff
	if off < int64(len(n.synced)) {
		n.synced[off] ^= 0xff
	}
	return nil
}

// syncFault counts a Sync or SyncDir and fails it if FailSync armed it.
func (f *FS) syncFault(name string) error {
	f.syncs++
	if f.failSync > 0 {
		f.failSync--
		if f.failSync == 0 {
			return &fs.PathError{Op: "sync", Path: name, Err: ErrInjected}
		}
	}
	return nil
}

func (f *FS) used() int64 {
	var total int64
	seen := map[*node]bool{}
	for _, d := range f.dirs {
		for _, n := range d.live {
			if !seen[n] {
				seen[n] = true
				total += int64(len(n.data))
			}
		}
	}
	return total
}
