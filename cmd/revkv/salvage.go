package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/revkv/revkv/persist"
	"github.com/revkv/revkv/persist/filelog"
)

// salvagePlan is what salvage copies: each file whole, or its first
// bytes; and what it leaves behind, in words.
type salvagePlan struct {
	copies []fileCopy
	left   []string
}

type fileCopy struct {
	name string
	size int64 // bytes from the start to copy
}

// planSalvage decides what of a damaged directory to keep, from what
// Inspect found. Segments are copied in order up to the first damage: the
// damaged one up to the damaged frame (the frames before it are whole), a
// torn tail not at all. A later segment is copied only if a snapshot that
// reads back whole covers the revisions lost at the damage, since replay
// must not skip a revision. Snapshots are copied when they read back whole.
func planSalvage(files []filelog.File) salvagePlan {
	var p salvagePlan
	var snapRev int64 = -1
	for _, f := range files {
		if f.Snapshot != nil && f.Err == nil {
			snapRev = max(snapRev, f.Snapshot.Rev)
		}
	}
	broken := false // the log before this segment lost revisions
	for i, f := range files {
		if f.Segment == nil {
			continue
		}
		if broken && f.Segment.FirstRev-1 > snapRev {
			p.left = append(p.left, fmt.Sprintf("%s whole (revisions %d..%d): it follows revisions lost to damage that no snapshot holds", f.Name, f.Segment.FirstRev, f.Segment.LastRev))
			continue
		}
		broken = false
		var de *filelog.DamageError
		switch {
		case f.Err == nil && f.Segment.TornAt < 0:
			p.copies = append(p.copies, fileCopy{f.Name, f.Size})
		case f.Err == nil:
			p.copies = append(p.copies, fileCopy{f.Name, f.Segment.TornAt})
			p.left = append(p.left, fmt.Sprintf("the torn tail of %s from offset %d: a write a crash cut short, never reported durable", f.Name, f.Segment.TornAt))
		case errors.As(f.Err, &de) && de.Offset > 0:
			p.copies = append(p.copies, fileCopy{f.Name, de.Offset})
			p.left = append(p.left, fmt.Sprintf("%s from offset %d to its end (%d bytes): %s", f.Name, de.Offset, f.Size-de.Offset, message(de.Err)))
			broken = laterSegment(files, i)
		default:
			p.left = append(p.left, fmt.Sprintf("%s whole: %s", f.Name, message(f.Err)))
			broken = laterSegment(files, i)
		}
	}
	for _, f := range files {
		switch {
		case f.Snapshot == nil && f.Segment != nil:
		case f.Err == nil:
			p.copies = append(p.copies, fileCopy{f.Name, f.Size})
		default:
			p.left = append(p.left, fmt.Sprintf("snapshot %s: %s", f.Name, message(f.Err)))
		}
	}
	return p
}

func laterSegment(files []filelog.File, i int) bool {
	for _, f := range files[i+1:] {
		if f.Segment != nil {
			return true
		}
	}
	return false
}

// salvage copies what is readable of the store in dir into newDir, opens
// the copy to check it, and says what was left behind.
func salvage(e *env, dir, newDir string) error {
	if err := checkDir(dir, true); err != nil {
		return err
	}
	if entries, err := os.ReadDir(newDir); err == nil && len(entries) > 0 {
		return usagef("%s is not empty: salvage copies into a new directory", newDir)
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
	p := planSalvage(files)
	if err := os.MkdirAll(newDir, 0o755); err != nil {
		return err
	}
	for _, c := range p.copies {
		e.progress.update("copying %s", c.name)
		if err := copyPrefix(filepath.Join(dir, c.name), filepath.Join(newDir, c.name), c.size); err != nil {
			return err
		}
	}
	e.progress.done()
	// A read-write open cuts a torn tail the copy ends with and checks
	// that the copy recovers; then it is a store like any other.
	s, err := openStore(storeSpec{dir: newDir, progress: e.progress})
	if err != nil {
		return fmt.Errorf("the copy in %s does not open (it is left there for a look): %w", newDir, err)
	}
	rev := s.Rev()
	if err := s.Close(); err != nil {
		return err
	}
	if e.json() {
		return e.emit(map[string]any{"dir": newDir, "revision": rev, "left_behind": p.left}, "")
	}
	fmt.Fprintf(e.out, "salvaged %s into %s: a store at revision %d\n", dir, newDir, rev)
	if len(p.left) == 0 {
		fmt.Fprintln(e.out, "nothing was left behind")
	}
	for _, l := range p.left {
		fmt.Fprintf(e.out, "left behind: %s\n", l)
	}
	return nil
}

// copyPrefix copies the first n bytes of the file src into a new file
// dst, synced.
func copyPrefix(src, dst string, n int64) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = io.CopyN(out, in, n)
	if err == nil {
		err = out.Sync()
	}
	return errors.Join(err, out.Close())
}
