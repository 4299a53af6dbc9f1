package filelog_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/kv"
	"github.com/revkv/revkv/persist"
	"github.com/revkv/revkv/persist/filelog"
	"github.com/revkv/revkv/persist/memfs"
	"github.com/revkv/revkv/snapshot"
)

// verifyDir is what `revkv verify` does, in-package: a read-only open
// through the engine (the open's own checks and message), then Inspect
// (every checksum). It returns the first problem found.
func verifyDir(fsys persist.FS) error {
	l, err := filelog.Open("db", filelog.Options{FS: fsys, ReadOnly: true})
	if err != nil {
		return err
	}
	s, err := engine.Open(l, engine.Options{})
	if err != nil {
		return err
	}
	if err := s.Close(); err != nil {
		return err
	}
	files, err := filelog.Inspect(fsys, "db")
	if err != nil {
		return err
	}
	for _, f := range files {
		if f.Err != nil {
			return f.Err
		}
	}
	return nil
}

// openHash opens the store read-write and returns the hash of its state.
func openHash(fsys persist.FS) (kv.KeyValueHash, error) {
	s, err := openStore(fsys, filelog.Options{SnapshotRevs: -1})
	if err != nil {
		return kv.KeyValueHash{}, err
	}
	defer s.Close()
	return s.HashByRev(0)
}

// lastSegment returns the path of the newest segment in db.
func lastSegment(t *testing.T, fsys *memfs.FS) string {
	t.Helper()
	names, err := fsys.List("db")
	if err != nil {
		t.Fatal(err)
	}
	last := ""
	for _, n := range names {
		if strings.HasSuffix(n, ".log") {
			last = n
		}
	}
	return "db/" + last
}

// TestReviewTornNewSegmentVerify: a crash while the flusher creates the
// next segment (after Create, before its header's Sync) leaves an unlisted
// segment with a torn header. The open removes it as a leftover; verify
// must agree that the directory is fine.
func TestReviewTornNewSegmentVerify(t *testing.T) {
	for _, hdr := range []int{0, 10, 39} {
		t.Run(fmt.Sprint(hdr), func(t *testing.T) {
			fs, want := flipDir(t)
			last := lastSegment(t, fs)
			var num uint64
			fmt.Sscanf(strings.TrimPrefix(last, "db/"), "%d.log", &num)
			next := fmt.Sprintf("db/%020d.log", num+1)
			f, err := fs.Create(next)
			if err != nil {
				t.Fatal(err)
			}
			f.Write(make([]byte, hdr))
			f.Close()
			verr := verifyDir(fs)
			got, oerr := openHash(fs.Clone())
			if oerr != nil || got != want {
				t.Fatalf("open: %v (hash %v, want %v)", oerr, got, want)
			}
			if verr != nil {
				t.Fatalf("verify fails a directory that opens with the same state: %v", verr)
			}
		})
	}
}

// reviewImage builds the directory the damage sweep alters: w's ops on
// 300-byte segments with snapshots after ops 15 and 30, then closed
// cleanly, or crashed (SyncAlways: every op acknowledged is durable, and
// the manifest's mark of the last segment is below its end).
func reviewImage(t *testing.T, w *workload, crashed bool) *memfs.FS {
	t.Helper()
	fs := memfs.New(memfs.Options{})
	s, l := mustOpen(t, "db", filelog.Options{SegmentSize: 300, SnapshotRevs: -1, FS: fs})
	for i, o := range w.ops {
		if err := apply(s, o); err != nil {
			t.Fatal(err)
		}
		if i == 15 || i == 30 {
			if err := l.WriteSnapshot(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if crashed {
		crashNow(fs, s)
		return fs
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return fs
}

// damageCase is one alteration of one file of a sweep image.
type damageCase struct {
	file  string
	off   int64
	trunc bool // truncate the file to off bytes; else flip the byte at off
}

func (c damageCase) String() string {
	if c.trunc {
		return fmt.Sprintf("%s cut to %d bytes", c.file, c.off)
	}
	return fmt.Sprintf("%s byte %d flipped", c.file, c.off)
}

func (c damageCase) apply(t *testing.T, fs *memfs.FS) {
	t.Helper()
	if !c.trunc {
		if err := fs.FlipByte("db/"+c.file, c.off); err != nil {
			t.Fatal(err)
		}
		return
	}
	cutFile(t, fs, "db/"+c.file, c.off)
}

// judgeDamage alters a clone of img as c says, runs verify on one clone and
// a read-write open (then a second open) on another, and classifies the
// outcome; it returns an error for an outcome the package doc does not
// allow: a wrong state, a cut of acknowledged data where no torn tail can
// be (a clean close, or not the last segment), a refusal that is not a
// DamageError, verify passing a directory that does not open, or a
// second open that differs from the first.
func judgeDamage(t *testing.T, img *memfs.FS, w *workload, c damageCase, crashed bool, lastSeg string) (string, error) {
	all := len(w.ops)
	vfs := img.Clone()
	c.apply(t, vfs)
	verr := verifyDir(vfs)
	ofs := img.Clone()
	c.apply(t, ofs)
	s, oerr := openStore(ofs, filelog.Options{SnapshotRevs: -1})
	if oerr != nil {
		if !errors.Is(oerr, kv.ErrCorrupt) {
			return "", fmt.Errorf("%v: refused with %v, not kv.ErrCorrupt", c, oerr)
		}
		if verr == nil {
			return "", fmt.Errorf("%v: verify passes, open fails: %v", c, oerr)
		}
		outcome := "refused"
		if !strings.Contains(oerr.Error(), c.file) {
			outcome += " (naming another file)"
		}
		if verr.Error() != oerr.Error() {
			outcome += " (verify's message differs)"
		}
		return outcome, nil
	}
	i, err := w.matchState(s, 0, all)
	s.Close()
	if err != nil {
		return "", fmt.Errorf("%v: opened a wrong state: %v", c, err)
	}
	outcome := "same state"
	if i < all {
		if !crashed || "db/"+c.file != lastSeg {
			return "", fmt.Errorf("%v: opened state %d of %d, without a torn tail to explain it (verify: %v)", c, i, all, verr)
		}
		outcome = "torn-tail cut"
	}
	s, err = openStore(ofs, filelog.Options{SnapshotRevs: -1})
	if err != nil {
		return "", fmt.Errorf("%v: opened, then the second open failed: %v", c, err)
	}
	j, err := w.matchState(s, 0, all)
	s.Close()
	if err != nil || j != i {
		return "", fmt.Errorf("%v: first open state %d, second %d (%v)", c, i, j, err)
	}
	if verr != nil {
		outcome += ", verify reports damage the open skips"
	}
	return outcome, nil
}

// TestReviewDamageSweep flips each byte and cuts each file at each offset
// of a small store (segments, snapshots, manifest), closed cleanly and
// crashed, and checks every outcome against the package doc, and verify
// against the open. The default run takes every 29th offset;
// REVKV_REVIEW_SWEEP=1 takes every one.
func TestReviewDamageSweep(t *testing.T) {
	stride := int64(29)
	if os.Getenv("REVKV_REVIEW_SWEEP") != "" {
		stride = 1
	}
	for _, tc := range []struct {
		name    string
		w       *workload
		crashed bool
	}{
		{"clean", genWorkload(t, 3, 40), false},
		{"crashed", genWorkload(t, 3, 40), true},
		// Without compactions the two snapshots are not twins, and more
		// segments stay.
		{"clean-nocompact", withoutCompactions(t, genWorkload(t, 3, 40)), false},
		{"crashed-nocompact", withoutCompactions(t, genWorkload(t, 3, 40)), true},
	} {
		w, crashed := tc.w, tc.crashed
		t.Run(tc.name, func(t *testing.T) {
			img := reviewImage(t, w, crashed)
			lastSeg := lastSegment(t, img)
			names, err := img.List("db")
			if err != nil {
				t.Fatal(err)
			}
			outcomes := map[string]int{}
			fails := 0
			for _, name := range names {
				if name == "LOCK" {
					continue
				}
				f, err := img.Open("db/" + name)
				if err != nil {
					t.Fatal(err)
				}
				size, _ := f.Size()
				f.Close()
				for off := int64(0); off < size; off++ {
					for _, trunc := range []bool{false, true} {
						if off%stride != 0 {
							continue
						}
						c := damageCase{file: name, off: off, trunc: trunc}
						kind := map[bool]string{false: "flip", true: "cut"}[trunc]
						outcome, err := judgeDamage(t, img, w, c, crashed, lastSeg)
						if err != nil {
							outcomes[kind+": FAIL"]++
							if fails++; fails <= 10 {
								t.Error(err)
							}
							continue
						}
						outcomes[kind+": "+outcome]++
					}
				}
			}
			t.Logf("%v: %v", names, outcomes)
		})
	}
}

// withoutCompactions is w with each compaction replaced by a commit, and
// its reference states recomputed.
func withoutCompactions(t *testing.T, w *workload) *workload {
	ops := slices.Clone(w.ops)
	for i := range ops {
		if ops[i].kind == "compact" {
			ops[i] = op{kind: "commit"}
		}
	}
	return refWorkload(t, ops)
}

// refWorkload is the workload of ops, with the states a reference store
// reaches.
func refWorkload(t *testing.T, ops []op) *workload {
	ref, _ := engine.Open(nil, engine.Options{}) // no persister: never fails
	out := &workload{}
	record := func() {
		h, err := ref.HashByRev(0)
		if err != nil {
			t.Fatal(err)
		}
		v, err := ref.View()
		if err != nil {
			t.Fatal(err)
		}
		out.hashes = append(out.hashes, h)
		out.views = append(out.views, v)
	}
	record()
	for _, o := range ops {
		if err := apply(ref, o); err != nil {
			t.Fatal(err)
		}
		out.ops = append(out.ops, o)
		record()
	}
	return out
}

// TestReviewHoleInUnsyncedTail: under SyncNone (or SyncInterval), many
// writes sit unsynced in the page cache, and a power loss may persist a
// later page of them and not an earlier one (writeback order is not
// write order; ext4 and XFS then read the missing page as zeros). The
// state holds every committed write, then zeros, then frames that check;
// all of it past the manifest's mark. Past the mark a frame whose header
// is all zeros is a torn tail, whatever follows: the open cuts there
// (with the warning) and keeps every committed write, and verify agrees.
// A byte flipped to anything but a hole, followed by frames that check,
// stays damage.
func TestReviewHoleInUnsyncedTail(t *testing.T) {
	const holeAt = 5 // the unsynced put whose frame the hole starts at
	build := func(t *testing.T) (img *memfs.FS, seg string, frames []int64) {
		fs := memfs.New(memfs.Options{})
		opts := filelog.Options{Sync: filelog.SyncNone, SnapshotRevs: -1}
		s, err := openStore(fs, opts)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 10 {
			if _, err := s.Put([]byte(fmt.Sprintf("c%02d", i)), []byte("committed")); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Commit(); err != nil {
			t.Fatal(err)
		}
		seg = lastSegment(t, fs)
		for i := range 20 { // each its own write: the flusher writes at once, unsynced
			before := fileSize(t, fs, seg)
			frames = append(frames, before)
			if _, err := s.Put([]byte(fmt.Sprintf("u%02d", i)), benchValue(uint64(i))); err != nil {
				t.Fatal(err)
			}
			for deadline := time.Now().Add(5 * time.Second); fileSize(t, fs, seg) == before; time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the flusher did not write the put")
				}
			}
		}
		img = fs.Clone() // what the page cache holds: the power goes now
		s.Close()
		return img, seg, frames
	}
	// keys returns which of the unsynced keys the store holds, after
	// checking it holds every committed one.
	keys := func(t *testing.T, s *engine.Store) (got []int) {
		t.Helper()
		for i := range 10 {
			kvs, _, err := s.Range([]byte(fmt.Sprintf("c%02d", i)), nil, 0, 0)
			if err != nil || len(kvs) != 1 {
				t.Fatalf("committed key c%02d: %v %v", i, kvs, err)
			}
		}
		for i := range 20 {
			kvs, _, err := s.Range([]byte(fmt.Sprintf("u%02d", i)), nil, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(kvs) == 1 {
				got = append(got, i)
			}
		}
		return got
	}

	t.Run("hole is cut", func(t *testing.T) {
		img, seg, frames := build(t)
		// A hole from the start of put holeAt's frame through part of the
		// next: frames that check follow it.
		cut := frames[holeAt]
		zero(t, img, seg, cut, frames[holeAt+1]-cut+10)
		if err := verifyDir(img.Clone()); err != nil {
			t.Fatalf("verify refuses a state the open cuts: %v", err)
		}
		files, err := filelog.Inspect(img, "db")
		if err != nil {
			t.Fatal(err)
		}
		if f := files[len(files)-1]; f.Segment == nil || "db/"+f.Name != seg || f.Segment.TornAt != cut {
			t.Fatalf("inspect of %s: %+v, want TornAt %d", seg, f, cut)
		}
		var logs strings.Builder
		opts := filelog.Options{Sync: filelog.SyncNone, SnapshotRevs: -1,
			Logger: slog.New(slog.NewTextHandler(&logs, nil))}
		s, err := openStore(img, opts)
		if err != nil {
			t.Fatalf("a crash state refused: %v", err)
		}
		got := keys(t, s)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if want := []int{0, 1, 2, 3, 4}; !slices.Equal(got, want) {
			t.Fatalf("unsynced keys after the cut: %v, want %v", got, want)
		}
		warn := fmt.Sprintf("offset=%d", cut)
		if !strings.Contains(logs.String(), "cutting a torn tail") || !strings.Contains(logs.String(), warn) ||
			!strings.Contains(logs.String(), strings.TrimPrefix(seg, "db/")) {
			t.Fatalf("no warning naming %s and %s: %q", seg, warn, logs.String())
		}
		if n := fileSize(t, img, seg); n != cut {
			t.Fatalf("%s is %d bytes after the cut, want %d", seg, n, cut)
		}
		s, err = openStore(img, opts) // and the cut store opens again, the same
		if err != nil {
			t.Fatalf("reopen after the cut: %v", err)
		}
		defer s.Close()
		if got := keys(t, s); !slices.Equal(got, []int{0, 1, 2, 3, 4}) {
			t.Fatalf("unsynced keys after reopening: %v", got)
		}
	})

	t.Run("flip is damage", func(t *testing.T) {
		img, seg, frames := build(t)
		off := frames[holeAt] + 30 // inside the frame, not a whole zero header
		f, err := img.OpenReadWrite(seg)
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 1)
		if _, err := f.ReadAt(b, off); err != nil {
			t.Fatal(err)
		}
		b[0] ^= 0x5a
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(b); err != nil {
			t.Fatal(err)
		}
		f.Close()
		var de *filelog.DamageError
		if err := verifyDir(img.Clone()); !errors.As(err, &de) || de.Offset != frames[holeAt] {
			t.Fatalf("verify: %v, want a DamageError at %d", err, frames[holeAt])
		}
		_, err = openStore(img, filelog.Options{Sync: filelog.SyncNone, SnapshotRevs: -1})
		if !errors.As(err, &de) || !errors.Is(err, kv.ErrCorrupt) || de.Offset != frames[holeAt] || de.File != seg {
			t.Fatalf("open: %v, want a DamageError in %s at %d", err, seg, frames[holeAt])
		}
	})
}

func fileSize(t *testing.T, fsys persist.FS, name string) int64 {
	t.Helper()
	f, err := fsys.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n, err := f.Size()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// zero overwrites n bytes of name at off with zeros.
func zero(t *testing.T, fsys persist.FS, name string, off, n int64) {
	t.Helper()
	f, err := fsys.OpenReadWrite(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(make([]byte, n)); err != nil {
		t.Fatal(err)
	}
}

// uncleanImage is a crashed store (reviewImage) whose newest segment ends
// in a torn frame header, with the leftovers a crash at rotation and
// during a manifest write leave.
func uncleanImage(t *testing.T, w *workload) *memfs.FS {
	t.Helper()
	img := reviewImage(t, withoutCompactions(t, w), true)
	seg := lastSegment(t, img)
	f, err := img.OpenReadWrite(seg)
	if err != nil {
		t.Fatal(err)
	}
	f.Seek(0, io.SeekEnd)
	f.Write([]byte{9, 0, 0, 0, 9, 0, 0}) // the start of a frame header
	f.Close()
	var num uint64
	fmt.Sscanf(strings.TrimPrefix(seg, "db/"), "%d.log", &num)
	for name, n := range map[string]int{fmt.Sprintf("db/%020d.log", num+1): 12, "db/MANIFEST.tmp": 30} {
		f, err := img.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		f.Write(make([]byte, n))
		f.Close()
	}
	return img
}

func dirBytes(t *testing.T, fsys persist.FS) int64 {
	names, err := fsys.List("db")
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, name := range names {
		n += fileSize(t, fsys, "db/"+name)
	}
	return n
}

// TestReviewUncleanDirectory: a directory a crash left (torn tail,
// leftovers) opens read-only on a read-only filesystem with every
// acknowledged write and verify agrees; a read-write open that meets a
// full disk in its repair fails, changes nothing an open needs, and the
// directory opens whole once there is room, also after a crash right
// after the failed open.
func TestReviewUncleanDirectory(t *testing.T) {
	w := withoutCompactions(t, genWorkload(t, 3, 40))
	all := len(w.ops)
	img := uncleanImage(t, w)

	s, err := openStore(readOnlyFS{img.Clone()}, filelog.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only open of an unclean directory on a read-only filesystem: %v", err)
	}
	if _, err := w.matchState(s, all, all); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := verifyDir(readOnlyFS{img.Clone()}); err != nil {
		t.Fatalf("verify of a directory that opens: %v", err)
	}

	used, full := dirBytes(t, img), 0
	for _, room := range []int64{0, 1, 40, 200, 600} {
		fs := img.Clone()
		fs.LimitDisk(used + room)
		s, err := openStore(fs, filelog.Options{SnapshotRevs: -1})
		if err == nil {
			s.Close() // enough room: fine
		} else if errors.Is(err, memfs.ErrNoSpace) {
			full++
		} else {
			t.Fatalf("room %d: open on a full disk: %v", room, err)
		}
		fs.LimitDisk(0)
		for _, crash := range []bool{false, true} {
			if crash {
				fs.Crash()
			}
			s, err := openStore(fs, filelog.Options{SnapshotRevs: -1})
			if err != nil {
				t.Fatalf("room %d, crash %v: open after a full disk: %v", room, crash, err)
			}
			if _, err := w.matchState(s, all, all); err != nil {
				t.Fatalf("room %d, crash %v: %v", room, crash, err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if full < 3 {
		t.Fatalf("only %d opens met the full disk", full)
	}
}

// TestReviewCrashAtMarkMove crashes a store at each file operation while
// the flusher moves the manifest's mark of the newest segment (every
// quarter segment of synced log, 4 KiB here): the crash sweeps run on
// 512-byte segments, which rotate before a mark ever moves, so this path
// is theirs only here. Every acknowledged put must survive, under each
// crash model and with Linux's fsync failure semantics.
func TestReviewCrashAtMarkMove(t *testing.T) {
	var ops []op
	for i := range 70 { // about 12 KiB of log: three marks, no rotation
		ops = append(ops, op{kind: "put", key: []byte(fmt.Sprintf("k%02d", i%30)), value: benchValue(uint64(i))})
	}
	w := refWorkload(t, ops)
	opts := filelog.Options{SegmentSize: 16 << 10, SnapshotRevs: -1}
	{ // the marks do move: the manifest of a run not yet closed says so
		fs := memfs.New(memfs.Options{})
		s, err := openStore(fs, opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range w.ops {
			if err := apply(s, o); err != nil {
				t.Fatal(err)
			}
		}
		f, _ := fs.Open("db/MANIFEST")
		b := make([]byte, 56)
		_, err = f.ReadAt(b, 0)
		f.Close()
		s.Close()
		if mark := binary.LittleEndian.Uint64(b[40:]); err != nil || mark < 8<<10 {
			t.Fatalf("the manifest's mark is at %d (%v), want past two moves", mark, err)
		}
	}
	points := 0
	for _, model := range crashModels {
		for k, misses := int64(1), 0; misses < 3; k++ {
			fsopts := memfs.Options{Crash: model, LinuxSyncFailures: true, Seed: uint64(k)}
			reached, err := crashRunIn(t, w, opts, fsopts, k)
			if !reached {
				misses++
				continue
			}
			misses = 0
			points++
			if err != nil {
				t.Fatalf("%v, crash at op %d: %v", model, k, err)
			}
		}
	}
	t.Logf("%d crash points", points)
}

// TestReviewManifestNewerOrDamaged: a manifest, segment or snapshot of a
// newer format (its checksum good), or a manifest with a byte flipped, is
// refused by open and verify with an error naming the file, and a refused
// read-write open changes no file (a downgrade must not rewrite a newer
// store). A newer format is not damage: it wraps snapshot.ErrVersion, not
// kv.ErrCorrupt, and says both versions.
func TestReviewManifestNewerOrDamaged(t *testing.T) {
	// newer sets the u32 version at 8 of a header whose checksum is the
	// u64 at hdr-8, hdr being 48 (snapshot) or 32 (segment) plus 8 with
	// the identity flag (bit 0 of the u32 at 12).
	newer := func(base int) func(b []byte) {
		return func(b []byte) {
			hdr := base
			if binary.LittleEndian.Uint32(b[12:])&1 != 0 {
				hdr += 8
			}
			binary.LittleEndian.PutUint32(b[8:], 9)
			binary.LittleEndian.PutUint64(b[hdr-8:], xxhash.Sum64(b[:hdr-8]))
		}
	}
	for _, tc := range []struct {
		name    string
		files   func(names []string) []string // which files of db to edit
		edit    func(b []byte)
		want    []string
		version bool // wraps snapshot.ErrVersion, else kv.ErrCorrupt
	}{
		{"manifest newer", manifestOnly, func(b []byte) {
			binary.LittleEndian.PutUint32(b[8:], 2)
			binary.LittleEndian.PutUint64(b[len(b)-8:], xxhash.Sum64(b[:len(b)-8]))
		}, []string{"MANIFEST", "version 2", "reads 1"}, true},
		{"manifest flipped", manifestOnly, func(b []byte) { b[20] ^= 0x40 }, []string{"MANIFEST", "checksum"}, false},
		{"segment newer", func(names []string) []string {
			return lastWith(names, ".log")
		}, newer(32), []string{".log", "version 9", "reads 1 to 2"}, true},
		{"snapshots newer", func(names []string) []string {
			var snaps []string
			for _, n := range names {
				if strings.HasSuffix(n, ".snap") {
					snaps = append(snaps, n)
				}
			}
			return snaps
		}, newer(48), []string{".snap", "version 9", "reads 1 to 2"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := historyDir(t)
			names, err := fs.List("db")
			if err != nil {
				t.Fatal(err)
			}
			edited := tc.files(names)
			if len(edited) == 0 {
				t.Fatalf("no file to edit in %v", names)
			}
			for _, name := range edited {
				name = "db/" + name
				f, err := fs.Open(name)
				if err != nil {
					t.Fatal(err)
				}
				b := make([]byte, fileSize(t, fs, name))
				f.ReadAt(b, 0)
				f.Close()
				tc.edit(b)
				w, err := fs.Create(name)
				if err != nil {
					t.Fatal(err)
				}
				w.Write(b)
				w.Close()
			}
			before := snapshotFiles(t, fs)
			_, oerr := openStore(fs, filelog.Options{})
			verr := verifyDir(fs)
			for _, err := range []error{oerr, verr} {
				if err == nil {
					t.Fatalf("open: %v; verify: %v; want both refused", oerr, verr)
				}
				for _, w := range tc.want {
					if !strings.Contains(err.Error(), w) {
						t.Fatalf("open: %v; verify: %v; want both to say %q", oerr, verr, w)
					}
				}
				if v, c := errors.Is(err, snapshot.ErrVersion), errors.Is(err, kv.ErrCorrupt); v != tc.version || c == tc.version {
					t.Fatalf("%v: ErrVersion %v, ErrCorrupt %v; want version %v", err, v, c, tc.version)
				}
			}
			if after := snapshotFiles(t, fs); !maps.Equal(before, after) {
				t.Fatalf("a refused open changed the directory:\n%v\n%v", before, after)
			}
		})
	}
}

func manifestOnly([]string) []string { return []string{"MANIFEST"} }

// lastWith returns the last of names (sorted) that ends in suffix.
func lastWith(names []string, suffix string) []string {
	for i := len(names) - 1; i >= 0; i-- {
		if strings.HasSuffix(names[i], suffix) {
			return names[i : i+1]
		}
	}
	return nil
}

// snapshotFiles returns the contents of every file of db but LOCK.
func snapshotFiles(t *testing.T, fsys persist.FS) map[string]string {
	names, err := fsys.List("db")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, name := range names {
		if name == "LOCK" {
			continue
		}
		f, err := fsys.Open("db/" + name)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		m[name] = string(b)
	}
	return m
}

// TestReviewCrashDuringLoadSnapshot crashes LoadSnapshot at each of its
// file operations. A crash before it returns may leave no store, or the
// store, but never a directory that neither opens nor takes LoadSnapshot
// again. (The snapshot it renames into place carries the new store's
// identity, so without the manifest, written last, the open calls the
// manifest lost; LoadSnapshot used to say the directory held a store.)
func TestReviewCrashDuringLoadSnapshot(t *testing.T) {
	src, _ := engine.Open(nil, engine.Options{}) // no persister: never fails
	for i := range 20 {
		if _, err := src.Put([]byte(fmt.Sprintf("k%02d", i)), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	want, _ := src.HashByRev(0)
	snapBytes := func() io.Reader {
		sn, err := src.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		defer sn.Close()
		var b strings.Builder
		if _, err := sn.WriteTo(&b); err != nil {
			t.Fatal(err)
		}
		return strings.NewReader(b.String())
	}
	points := 0
	for k := int64(1); ; k++ {
		fs := memfs.New(memfs.Options{Crash: memfs.CrashTorn, Seed: uint64(k)})
		fs.CrashAfter(k)
		if err := filelog.LoadSnapshot(fs, "db", snapBytes()); err == nil {
			break // finished before the crash point
		}
		points++
		fs.Crash()
		s, err := openStore(fs, filelog.Options{})
		if err == nil {
			h, _ := s.HashByRev(0)
			rev := s.Rev()
			s.Close()
			if h == want || rev <= 1 {
				continue // the store, or none
			}
			t.Fatalf("crash at op %d: opened a state that is neither the snapshot nor empty (rev %d)", k, rev)
		}
		ferr := filelog.LoadSnapshot(fs, "db", snapBytes())
		if ferr != nil {
			t.Fatalf("crash at op %d: open: %v; LoadSnapshot again: %v", k, err, ferr)
		}
	}
	t.Logf("%d crash points", points)
}

// TestReviewFsyncFaultAtMarkMove fails each sync in turn of a workload
// whose manifest mark moves (4 KiB marks on 16 KiB segments; the fault
// sweeps' 512-byte segments never move it), under Linux's fsync failure
// semantics and each crash model; then a clean reopen must serve every
// acknowledged put, take 5 more, and after a crash open with all of them
// and what the clean reopen served.
func TestReviewFsyncFaultAtMarkMove(t *testing.T) {
	opts := filelog.Options{SegmentSize: 16 << 10, SnapshotRevs: -1}
	const puts, more = 70, 5
	key := func(p string, i int) []byte { return []byte(fmt.Sprintf("%s%03d", p, i)) }
	check := func(s *engine.Store, p string, n int) error {
		for i := range n {
			kvs, _, err := s.Range(key(p, i), nil, 0, 0)
			if err != nil || len(kvs) != 1 || string(kvs[0].Value) != string(benchValue(uint64(i))) {
				return fmt.Errorf("acknowledged put %s lost (%v)", key(p, i), err)
			}
		}
		return nil
	}
	put := func(s *engine.Store, p string, n int) int {
		for i := range n {
			if _, err := s.Put(key(p, i), benchValue(uint64(i))); err != nil {
				return i
			}
		}
		return n
	}
	runs := 0
	for _, model := range append([]memfs.CrashModel{memfs.CrashDrop}, crashModels...) {
		for k := int64(1); ; k++ {
			fs := memfs.New(memfs.Options{LinuxSyncFailures: true, Crash: model, Seed: uint64(k)})
			fs.FailSync(k)
			acked := 0
			if s, err := openStore(fs, opts); err == nil {
				acked = put(s, "p", puts)
				s.Close()
			}
			if fs.Syncs() < k {
				break
			}
			runs++
			where := fmt.Sprintf("%v, sync %d failed, %d acked", model, k, acked)
			s, err := openStore(fs, opts)
			if err != nil {
				t.Fatalf("%s: clean reopen: %v", where, err)
			}
			if err := check(s, "p", acked); err != nil {
				t.Fatalf("%s: clean reopen: %v", where, err)
			}
			seen, err := rangeOf(s, "p")
			if err != nil {
				t.Fatal(err)
			}
			if n := put(s, "q", more); n < more {
				t.Fatalf("%s: put after a clean reopen failed", where)
			}
			crashNow(fs, s)
			s, err = openStore(fs, opts)
			if err != nil {
				t.Fatalf("%s: open after the crash: %v", where, err)
			}
			err = errors.Join(check(s, "p", acked), check(s, "q", more), sameAs(s, "p", seen))
			s.Close()
			if err != nil {
				t.Fatalf("%s: after the crash: %v", where, err)
			}
		}
	}
	if runs < 3*70 {
		t.Fatalf("only %d fault runs", runs)
	}
	t.Logf("%d fault runs", runs)
}

// TestReviewDumpSkipsLeftovers: Dump reads the segments the open reads;
// a crash's torn leftover segment (see TestReviewTornNewSegmentVerify)
// is not the log, and made Dump fail.
func TestReviewDumpSkipsLeftovers(t *testing.T) {
	fs, _ := flipDir(t)
	count := func() (int, error) {
		n := 0
		err := filelog.Dump(fs, "db", func(string, int64, *persist.Batch) error { n++; return nil })
		return n, err
	}
	want, err := count()
	if err != nil {
		t.Fatal(err)
	}
	last := lastSegment(t, fs)
	var num uint64
	fmt.Sscanf(strings.TrimPrefix(last, "db/"), "%d.log", &num)
	f, err := fs.Create(fmt.Sprintf("db/%020d.log", num+1))
	if err != nil {
		t.Fatal(err)
	}
	f.Write(make([]byte, 10))
	f.Close()
	if got, err := count(); err != nil || got != want {
		t.Fatalf("Dump with a torn leftover segment: %d batches, %v; want %d, nil", got, err, want)
	}
}

// TestReviewLegacyDamagedSnapshot: a directory from before manifests whose
// only snapshot is damaged in its body opens from the log (it reaches
// back to the first write) with a warning, and its first read-write open
// writes a manifest without that snapshot. The second open must not then
// refuse the snapshot as a file of another store: it is the same
// pre-identity file the first open saw.
func TestReviewLegacyDamagedSnapshot(t *testing.T) {
	dir := copyLegacy(t)
	snap := filepath.Join(dir, "snap-00000000000000000001.snap")
	b, err := os.ReadFile(snap)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-20] ^= 0x10 // in the body: the header still reads
	if err := os.WriteFile(snap, b, 0o644); err != nil {
		t.Fatal(err)
	}
	var revs []int64
	var hashes []uint32
	for i := range 2 {
		l, err := filelog.Open(dir, filelog.Options{})
		if err != nil {
			t.Fatal(err)
		}
		s, err := engine.Open(l, engine.Options{})
		if err != nil {
			t.Fatalf("open %d: %v", i+1, err)
		}
		h, err := s.Hash()
		if err != nil {
			t.Fatal(err)
		}
		revs = append(revs, s.Rev())
		hashes = append(hashes, h)
		s.Close()
	}
	if revs[0] != revs[1] || revs[0] != 51 {
		t.Fatalf("revisions %v, want 51 twice", revs)
	}
	if hashes[0] != hashes[1] {
		t.Fatalf("hashes %x, want the same data twice", hashes)
	}
	if _, err := os.Stat(snap + ".damaged"); err != nil {
		t.Fatalf("the damaged snapshot is not set aside: %v", err)
	}
	if _, err := os.Stat(snap); !os.IsNotExist(err) {
		t.Fatalf("the damaged snapshot is still in place: %v", err)
	}
}

// legacyMem is testdata/legacy-v1 (written before manifests) in a memfs,
// synced.
func legacyMem(t *testing.T, fsopts memfs.Options) *memfs.FS {
	t.Helper()
	fs := memfs.New(fsopts)
	if err := fs.MkdirAll("db"); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir("testdata/legacy-v1")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("testdata/legacy-v1", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		f, err := fs.Create("db/" + e.Name())
		if err != nil {
			t.Fatal(err)
		}
		f.Write(b)
		f.Sync()
		f.Close()
	}
	if err := fs.SyncDir("db"); err != nil {
		t.Fatal(err)
	}
	return fs
}

// TestReviewCrashDuringLegacyUpgrade crashes the first read-write open of
// a directory from before manifests (it writes the first manifest and
// rewrites the tail), then a put, at each file operation: the next open
// must find the old store whole (revision 51, the old code's hash), or
// with the put, and take writes.
func TestReviewCrashDuringLegacyUpgrade(t *testing.T) {
	points := 0
	for _, model := range crashModels {
		for k := int64(1); ; k++ {
			fs := legacyMem(t, memfs.Options{Crash: model, LinuxSyncFailures: true, Seed: uint64(k)})
			fs.CrashAfter(k)
			s, err := openStore(fs, filelog.Options{SegmentSize: 400})
			if err == nil {
				_, err = s.Put([]byte("new"), []byte("v"))
				s.Close()
			}
			if err == nil {
				break
			}
			points++
			fs.Crash()
			s, err = openStore(fs, filelog.Options{SegmentSize: 400})
			if err != nil {
				t.Fatalf("%v, crash at op %d: reopen: %v", model, k, err)
			}
			h, herr := s.HashByRev(51)
			rev := s.Rev()
			if herr != nil || h.Hash != 3701410136 || (rev != 51 && rev != 52) {
				s.Close()
				t.Fatalf("%v, crash at op %d: revision %d, hash at 51 %+v (%v)", model, k, rev, h, herr)
			}
			if err := writeAndReopen(fs, filelog.Options{SegmentSize: 400}, s); err != nil {
				t.Fatalf("%v, crash at op %d: %v", model, k, err)
			}
		}
	}
	t.Logf("%d crash points", points)
}

// TestReviewIndexOnlyAcrossRotation: a store that only records applied
// entries that change nothing (index batches at one revision, as a
// stream of keep-alives would be) across segment rotations and
// snapshots, crashed at each file operation: the index acknowledged last
// must survive (every batch is at the same revision, so only the index
// tells them apart, in replay, coverage and retention).
func TestReviewIndexOnlyAcrossRotation(t *testing.T) {
	opts := filelog.Options{SegmentSize: 512, SnapshotRevs: -1}
	run := func(fs *memfs.FS, ig *index) (acked uint64, err error) {
		l, err := filelog.Open("db", filelog.Options{FS: fs, SegmentSize: opts.SegmentSize, SnapshotRevs: -1})
		if err != nil {
			return 0, err
		}
		s, err := engine.Open(l, engine.Options{ConsistentIndex: ig})
		if err != nil {
			return 0, err
		}
		defer s.Close()
		ig.n.Store(1)
		if _, err := s.Put([]byte("a"), []byte("1")); err != nil {
			return 0, err
		}
		acked = 1
		for i := uint64(2); i <= 120; i++ {
			ig.n.Store(i)
			if _, _, err := s.DeleteRange([]byte("nothing"), nil); err != nil {
				return acked, err
			}
			acked = i
			if i%40 == 0 {
				if err := l.WriteSnapshot(); err != nil {
					return acked, err
				}
			}
		}
		return acked, nil
	}
	points := 0
	for k := int64(1); ; k++ {
		fs := memfs.New(memfs.Options{Crash: memfs.CrashGrowFirst, LinuxSyncFailures: true, Seed: uint64(k)})
		fs.CrashAfter(k)
		var ig index
		acked, err := run(fs, &ig)
		if err == nil {
			if k == 1 {
				t.Fatal("no crash point reached")
			}
			break
		}
		points++
		fs.Crash()
		var ig2 index
		l, err := filelog.Open("db", filelog.Options{FS: fs, SegmentSize: opts.SegmentSize, SnapshotRevs: -1})
		if err != nil {
			t.Fatal(err)
		}
		s, err := engine.Open(l, engine.Options{ConsistentIndex: &ig2})
		if err != nil {
			t.Fatalf("crash at op %d (index %d acknowledged): reopen: %v", k, acked, err)
		}
		got := s.ConsistentIndex()
		kvs, _, _ := s.Range([]byte("a"), nil, 0, 0)
		s.Close()
		if got < acked || (acked >= 1 && len(kvs) != 1) {
			t.Fatalf("crash at op %d: index %d acknowledged, %d after the crash (key a: %v)", k, acked, got, kvs)
		}
	}
	t.Logf("%d crash points", points)
}
