package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"

	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/kv"
	"github.com/revkv/revkv/persist"
	"github.com/revkv/revkv/persist/filelog"
	"github.com/revkv/revkv/snapshot"
)

// This file is the only place the command opens or creates a store, so
// that a change in how stores are opened is a change here alone.

// storeSpec says which store to open and how.
type storeSpec struct {
	dir      string
	mem      bool
	readOnly bool               // change no file; fail if there is no store
	sync     filelog.SyncPolicy // for writes
	progress *progress          // reports a long recovery; nil for none
}

func (g *global) spec(readOnly bool, p *progress) storeSpec {
	return storeSpec{dir: g.dir.v, mem: g.mem, readOnly: readOnly, progress: p}
}

// openStore opens the store sp names: in memory, or the one in sp.dir
// (recovered if it holds one, created if not, unless read-only).
func openStore(sp storeSpec) (*engine.Store, error) {
	if sp.mem {
		return engine.Open(nil, engine.Options{}) // no persister: never fails
	}
	if err := checkDir(sp.dir, sp.readOnly); err != nil {
		return nil, err
	}
	l, err := filelog.Open(sp.dir, filelog.Options{ReadOnly: sp.readOnly, Sync: sp.sync})
	if err != nil {
		return nil, openError(sp.dir, err)
	}
	var p persist.Persister = l
	if sp.progress.on() {
		p = &recoveryProgress{Persister: l, p: sp.progress, dir: sp.dir}
	}
	s, err := engine.Open(p, engine.Options{})
	if err != nil {
		return nil, openError(sp.dir, err)
	}
	return s, nil
}

// restoreStore makes a new store in dir from the snapshot read from r.
func restoreStore(dir string, r io.Reader) error {
	if err := checkDir(dir, false); err != nil {
		return err
	}
	return filelog.LoadSnapshot(persist.OS, dir, r)
}

// openLog opens the log in dir without an engine, for salvage to append
// batches to as they were: no syncs but the last (salvage calls Sync), and
// no snapshots of its own, since there is no engine to take them from.
func openLog(dir string) (*filelog.Log, error) {
	return filelog.Open(dir, filelog.Options{Sync: filelog.SyncNone, SnapshotRevs: -1, SnapshotBytes: -1})
}

// checkDir explains a --dir that cannot hold a store before the library
// reports it in its own terms (lock D: open D/LOCK: ...).
func checkDir(dir string, mustExist bool) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist) && mustExist:
		return &explained{msg: fmt.Sprintf("no store at %s: no such directory (a write, such as put, creates one)", dir), err: err}
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case !fi.IsDir():
		return &explained{msg: fmt.Sprintf("%s is not a directory", dir), err: syscall.ENOTDIR}
	}
	return nil
}

// openError says what a failed open means for the user.
func openError(dir string, err error) error {
	switch {
	case errors.Is(err, persist.ErrLocked):
		return &explained{msg: fmt.Sprintf("%s is in use by another process (or another store open in this one); close that first", dir), err: err}
	case errors.Is(err, syscall.ENOTDIR):
		return &explained{msg: fmt.Sprintf("%s (or a directory above it) is not a directory", dir), err: err}
	case errors.Is(err, snapshot.ErrVersion):
		return &explained{msg: message(err) + " (a newer revkv wrote it: open it with that release)", err: err}
	case errors.Is(err, kv.ErrCorrupt):
		return &explained{msg: message(err) + fmt.Sprintf(" ('revkv verify %s' lists the damage; 'revkv salvage %s NEWDIR' copies what is readable)", dir, dir), err: err}
	}
	return err
}

// recoveryProgress is a persister that reports, on a terminal, how far
// the recovery of a large directory has come: the revisions replayed and
// the snapshot bytes loaded. It changes nothing else.
type recoveryProgress struct {
	persist.Persister
	p   *progress
	dir string
}

func (r *recoveryProgress) Recover(t persist.Target) error {
	defer r.p.done()
	return r.Persister.Recover(&progressTarget{Target: t, r: r})
}

type progressTarget struct {
	persist.Target
	r     *recoveryProgress
	bytes int64
}

func (t *progressTarget) LoadSnapshot(src io.Reader) error {
	return t.Target.LoadSnapshot(&countingReader{r: src, n: func(n int64) {
		t.bytes += n
		t.r.p.update("opening %s: snapshot, %s read", t.r.dir, byteCount(t.bytes))
	}})
}

func (t *progressTarget) Apply(b *persist.Batch) error {
	t.r.p.update("opening %s: replaying the log, revision %d", t.r.dir, b.Rev)
	return t.Target.Apply(b)
}

// countingReader reports each read's size.
type countingReader struct {
	r io.Reader
	n func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n(int64(n))
	return n, err
}
