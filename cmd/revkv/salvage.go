package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/revkv/revkv/persist"
	"github.com/revkv/revkv/persist/filelog"
)

// Salvage rebuilds a store from what reads back whole, through filelog's
// own reading and writing (Inspect, Dump, LoadSnapshot, a Log's Append):
// it never copies files, so the new directory is a store of this build's
// format whatever extra files (a manifest, a lock) the old one had.
//
//  1. The base is the newest snapshot whose checksums hold
//     (LoadSnapshot), or an empty store if there is none.
//  2. Every batch of the log up to its first damage that the base does not
//     already hold (Batch.Covered) is appended, in order, as it was.
//  3. The new directory is opened like any store, which checks it.
//
// A damaged or missing manifest (the files carry an identity) does not
// stop it: the log is then every segment in the directory, in number
// order (filelog.DumpWithoutManifest), and step 3's open refuses a log
// whose revisions do not follow on.

// salvageBase is the snapshot a salvage starts from.
type salvageBase struct {
	file       string // "" for none: an empty store
	rev        int64
	compactRev int64
	index      uint64
}

// newestSound picks the newest snapshot that Inspect found whole.
func newestSound(files []filelog.File) salvageBase {
	base := salvageBase{rev: 1, compactRev: -1} // an empty store's
	for _, f := range files {
		if f.Snapshot != nil && f.Err == nil && (base.file == "" || f.Snapshot.Rev > base.rev) {
			base = salvageBase{file: f.Name, rev: f.Snapshot.Rev, compactRev: f.Snapshot.CompactRev, index: f.Snapshot.ConsistentIndex}
		}
	}
	return base
}

// salvage rebuilds the readable part of the store in dir in newDir and
// says what was left behind.
func salvage(e *env, dir, newDir string) error {
	if err := checkDir(dir, true); err != nil {
		return err
	}
	if entries, err := os.ReadDir(newDir); err == nil && len(entries) > 0 {
		return usagef("%s is not empty: salvage writes a new store", newDir)
	}
	e.progress.now("reading %s ...", dir)
	files, err := filelog.Inspect(persist.OS, dir)
	e.progress.done()
	if err != nil {
		return openError(dir, err)
	}
	if len(files) == 0 {
		return fmt.Errorf("%s holds no segment or snapshot: nothing to salvage", dir)
	}
	base := newestSound(files)
	var left []string
	noManifest := false
	for _, f := range files {
		switch {
		case f.Name == "MANIFEST" && f.Err != nil:
			noManifest = true
			left = append(left, fmt.Sprintf("the manifest: %s; the log was read without it, as every segment in the directory in number order", message(f.Err)))
		case f.Snapshot == nil && f.Segment == nil:
		case f.Snapshot != nil && f.Err != nil:
			left = append(left, fmt.Sprintf("snapshot %s: %s", f.Name, message(f.Err)))
		case f.Segment != nil && f.Err == nil && f.Segment.TornAt >= 0:
			left = append(left, fmt.Sprintf("the torn tail of %s from offset %d: a write a crash cut short, never reported durable", f.Name, f.Segment.TornAt))
		}
	}
	if base.file != "" {
		if err := restoreFrom(e, filepath.Join(dir, base.file), newDir); err != nil {
			return err
		}
	}
	last, damage, err := replayLog(e, dir, newDir, base, noManifest)
	if err != nil {
		return err
	}
	if damage != nil {
		lost := fmt.Sprintf("revisions after %d", last)
		if hi := highestRev(files); hi > last {
			lost = fmt.Sprintf("revisions %d to at least %d", last+1, hi)
		}
		left = append(left, fmt.Sprintf("the log from %s offset %d on (%s): %s",
			filepath.Base(damage.File), damage.Offset, lost, message(damage.Err)))
	}

	// The new directory opens like any store: that checks it.
	s, err := openStore(storeSpec{dir: newDir, progress: e.progress})
	if err != nil {
		return fmt.Errorf("the salvaged store in %s does not open (it is left there for a look): %w", newDir, err)
	}
	rev := s.Rev()
	if err := s.Close(); err != nil {
		return err
	}
	if e.json() {
		return e.emit(map[string]any{"dir": newDir, "revision": rev, "left_behind": left}, "")
	}
	from := "an empty store"
	if base.file != "" {
		from = fmt.Sprintf("snapshot %s (revision %d)", base.file, base.rev)
	}
	fmt.Fprintf(e.out, "salvaged %s into %s: a store at revision %d, from %s and the log after it\n", dir, newDir, rev, from)
	if len(left) == 0 {
		fmt.Fprintln(e.out, "nothing was left behind")
	}
	for _, l := range left {
		fmt.Fprintf(e.out, "left behind: %s\n", l)
	}
	return nil
}

// restoreFrom makes newDir a store holding the snapshot file.
func restoreFrom(e *env, file, newDir string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	err = restoreStore(newDir, bufio.NewReaderSize(progressReader(e, f, "restoring "+filepath.Base(file)), 1<<20))
	e.progress.done()
	return err
}

// replayLog appends to the store in newDir every batch of dir's log that
// base does not hold, up to the log's first damage. It returns the last
// revision appended (base's if none), and the damage that ended the log,
// if any. Without a manifest it reads every segment of dir.
func replayLog(e *env, dir, newDir string, base salvageBase, noManifest bool) (last int64, damage *filelog.DamageError, err error) {
	l, err := openLog(newDir)
	if err != nil {
		return 0, nil, err
	}
	defer func() { err = errors.Join(err, l.Close()) }()
	if err := l.Recover(discardTarget{}); err != nil {
		return 0, nil, err
	}
	last = base.rev
	dump := filelog.Dump
	if noManifest {
		dump = filelog.DumpWithoutManifest
	}
	dumpErr := dump(persist.OS, dir, func(file string, off int64, b *persist.Batch) error {
		if b.Covered(base.rev, base.compactRev, base.index) {
			return nil
		}
		e.progress.update("salvaging: %s, revision %d", file, b.Rev)
		// Append encodes the batch before it returns, so Dump may reuse
		// the batch's buffers afterwards.
		if _, err := l.Append(b); err != nil {
			return err
		}
		last = b.Rev
		return nil
	})
	e.progress.done()
	if errors.As(dumpErr, &damage) {
		dumpErr = nil
	}
	if dumpErr != nil {
		return 0, nil, dumpErr
	}
	return last, damage, l.Sync()
}

// discardTarget stands in for an engine while a salvage writes a log: the
// new directory holds at most the base snapshot, which salvage has
// checked already, and the final open reads it all again.
type discardTarget struct{}

var _ persist.Target = discardTarget{}

func (discardTarget) LoadSnapshot(r io.Reader) error {
	_, err := io.Copy(io.Discard, r)
	return err
}

func (discardTarget) Apply(*persist.Batch) error { return nil }

func (discardTarget) Snapshot() (persist.Snapshot, error) {
	return nil, errors.New("salvage: no snapshots while salvaging")
}

// highestRev is the highest revision any file reached.
func highestRev(files []filelog.File) int64 {
	var rev int64
	for _, f := range files {
		switch {
		case f.Segment != nil:
			rev = max(rev, f.Segment.LastRev)
		case f.Snapshot != nil:
			rev = max(rev, f.Snapshot.Rev)
		}
	}
	return rev
}
