package filelog

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/revkv/revkv/persist"
)

// coverage is what a run of batches holds, as the most any of them
// reaches: a state at or past all three holds them all (see
// persist.Batch.Covered).
type coverage struct {
	rev       int64
	compact   int64 // meaningful only if compacted
	compacted bool  // the run holds a compaction
	index     uint64
	// leaseRev is the highest revision of a batch of lease changes alone
	// (0: none). Such a batch does not move the revision, so a snapshot
	// at its revision may have been taken before it: only a snapshot past
	// it holds it (see persist.Batch.Covered).
	leaseRev int64
}

func (c *coverage) add(b *persist.Batch) {
	c.rev = max(c.rev, b.Rev)
	if b.Compaction {
		c.compact = max(c.compact, b.Compact)
		c.compacted = true
	}
	c.index = max(c.index, b.Index)
	if len(b.Leases) > 0 && len(b.Changes) == 0 {
		c.leaseRev = max(c.leaseRev, b.Rev)
	}
}

func (c *coverage) merge(o coverage) {
	c.rev = max(c.rev, o.rev)
	if o.compacted {
		c.compact = max(c.compact, o.compact)
		c.compacted = true
	}
	c.index = max(c.index, o.index)
	c.leaseRev = max(c.leaseRev, o.leaseRev)
}

// coveredBy reports whether a snapshot's state holds every batch c covers.
func (c coverage) coveredBy(s snapInfo) bool {
	return c.rev <= s.rev && (!c.compacted || c.compact <= s.compact) && c.index <= s.index &&
		(c.leaseRev == 0 || c.leaseRev < s.rev)
}

// reachedBy reports whether a snapshot's state is at or past every
// revision, compaction and index of c: whether the engine published what
// c's batches did. Unlike coveredBy it ignores lease batches, which do not
// move the revision.
func (c coverage) reachedBy(s snapInfo) bool {
	return c.rev <= s.rev && (!c.compacted || c.compact <= s.compact) && c.index <= s.index
}

type segInfo struct {
	num   uint64
	cover coverage
	// size is a sealed segment's size (the manifest records it); -1 if
	// not known (a directory from before manifests).
	size int64
}

type snapInfo struct {
	num     uint64
	rev     int64
	compact int64
	index   uint64
}

// fileSet is what the log knows of its directory.
type fileSet struct {
	segs  []segInfo  // by number; the last is the one being written
	snaps []snapInfo // good snapshots, by number
	// synced is how far the last segment is synced (for the manifest).
	synced int64
}

func (fs *fileSet) nextSnap() uint64 {
	if len(fs.snaps) == 0 {
		return 1
	}
	return fs.snaps[len(fs.snaps)-1].num + 1
}

const (
	segSuffix    = ".log"
	snapPrefix   = "snap-"
	snapSuffix   = ".snap"
	tmpSuffix    = ".tmp"
	manifestName = "MANIFEST"
)

func segFile(num uint64) string  { return fmt.Sprintf("%020d%s", num, segSuffix) }
func snapFile(num uint64) string { return fmt.Sprintf("%s%020d%s", snapPrefix, num, snapSuffix) }

// parseName tells a directory entry's kind and number: 'l' a segment,
// 's' a snapshot, 't' a temporary file of ours (a segment, snapshot or
// manifest being written: one of those names plus ".tmp"), 0 anything
// else, which the log leaves alone.
func parseName(name string) (kind byte, num uint64) {
	if base, ok := strings.CutSuffix(name, tmpSuffix); ok {
		if k, _ := parseName(base); k != 0 || base == manifestName {
			return 't', 0
		}
		return 0, 0
	}
	switch {
	case strings.HasSuffix(name, segSuffix):
		n, err := strconv.ParseUint(strings.TrimSuffix(name, segSuffix), 10, 64)
		if err == nil && n > 0 && name == segFile(n) {
			return 'l', n
		}
	case strings.HasPrefix(name, snapPrefix) && strings.HasSuffix(name, snapSuffix):
		n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(name, snapPrefix), snapSuffix), 10, 64)
		if err == nil && n > 0 && name == snapFile(n) {
			return 's', n
		}
	}
	return 0, 0
}

// listing is a directory's revkv files, each kind sorted by number.
type listing struct {
	segs, snaps []uint64
	tmps        []string
	manifest    bool // MANIFEST exists
}

func list(fsys persist.FS, dir string) (listing, error) {
	names, err := fsys.List(dir)
	if err != nil {
		return listing{}, err
	}
	var ls listing
	for _, name := range names { // List sorts, and numbers are zero-padded
		switch kind, num := parseName(name); kind {
		case 'l':
			ls.segs = append(ls.segs, num)
		case 's':
			ls.snaps = append(ls.snaps, num)
		case 't':
			ls.tmps = append(ls.tmps, name)
		default:
			ls.manifest = ls.manifest || name == manifestName
		}
	}
	return ls, nil
}
