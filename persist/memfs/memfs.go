// Package memfs is an in-memory persist.FS for tests that models
// durability strictly and injects faults.
//
// Durability: a file's data survives Crash only as of its last Sync, and a
// name (Create, Rename, Remove) only as of the last SyncDir of its
// directory. With Options.TornWrites, Crash may also keep a prefix of a
// file's unsynced tail, as a real disk may have flushed part of it. Crash
// also invalidates every open File.
//
// Faults, armed by the test: the Nth Write or Sync from now fails; writes
// fail with ErrNoSpace once the files hold a set number of bytes; every
// operation fails with ErrCrashed after N more operations (until Crash); a
// byte of a file is flipped. Ops counts operations, so a test can run a
// workload once, then crash it at every k-th operation.
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

// Options configure an FS. The zero value keeps no torn tails.
type Options struct {
	// TornWrites makes Crash keep a random prefix of each file's unsynced
	// tail instead of dropping it whole.
	TornWrites bool
	// Seed seeds the choice of torn prefixes.
	Seed uint64
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
}

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
		return err
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
	if f.locks[name] {
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

// Crash simulates a power loss: every file keeps only its synced data (and,
// with TornWrites, maybe a prefix of the rest), every directory only its
// synced entries, and open Files fail from now on. It also clears a
// crashed state set by CrashAfter. Locks are released, as a dead process's
// would be.
func (f *FS) Crash() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.epoch++
	f.crashed = false
	f.crashAfter = 0
	f.locks = map[string]bool{}
	seen := map[*node]bool{}
	for _, d := range f.dirs {
		d.live = make(map[string]*node, len(d.durable))
		for k, n := range d.durable {
			d.live[k] = n
			if seen[n] {
				continue
			}
			seen[n] = true
			keep := bytes.Clone(n.synced)
			if f.opts.TornWrites && len(n.data) > len(n.synced) && bytes.Equal(n.data[:len(n.synced)], n.synced) {
				tail := n.data[len(n.synced):]
				keep = append(keep, tail[:f.rng.IntN(len(tail)+1)]...)
			}
			n.data = keep
			n.synced = bytes.Clone(keep)
		}
	}
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
		m := &node{data: bytes.Clone(n.data), synced: bytes.Clone(n.synced)}
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

// CrashAfter makes the n-th operation from now, and every one after it,
// fail with ErrCrashed, until Crash.
func (f *FS) CrashAfter(n int64) { f.mu.Lock(); f.crashAfter = n; f.mu.Unlock() }

// FailWrite makes the n-th Write from now fail with ErrInjected, writing
// nothing.
func (f *FS) FailWrite(n int64) { f.mu.Lock(); f.failWrite = n; f.mu.Unlock() }

// FailSync makes the n-th Sync or SyncDir from now fail with ErrInjected,
// making nothing durable.
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

func (f *FS) syncFault(name string) error {
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
