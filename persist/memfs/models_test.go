package memfs

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// TestLinuxSyncFailure walks the fsyncgate sequence: a failed Sync, then a
// successful one, then a crash. With LinuxSyncFailures the failed bytes
// are lost (zeros where the file had no durable data, the old bytes where
// it had), though reads showed them and the later Sync succeeded; bytes
// written again after the failure survive. By default the later Sync
// makes everything durable.
func TestLinuxSyncFailure(t *testing.T) {
	for _, tc := range []struct {
		linux bool
		want  string
	}{
		{false, "AAaabbbbcccc"},
		{true, "xxaa\x00\x00bbcccc"}, // the overwrite is lost too
	} {
		m := New(Options{LinuxSyncFailures: tc.linux})
		f := write(t, m, "f", "xxaa", true)
		m.SyncDir(".")
		f.Seek(0, 0)
		f.Write([]byte("AA")) // an overwrite of durable bytes...
		f.Seek(4, 0)
		f.Write([]byte("bbbb")) // ...and an append
		m.FailSync(1)
		if err := f.Sync(); !errors.Is(err, ErrInjected) {
			t.Fatalf("linux %v: armed Sync: %v", tc.linux, err)
		}
		if got, _ := read(m, "f"); got != "AAaabbbb" {
			t.Fatalf("linux %v: reads after a failed Sync: %q", tc.linux, got)
		}
		f.Seek(6, 0)
		f.Write([]byte("bb")) // written again: dirty again
		f.Write([]byte("cccc"))
		if err := f.Sync(); err != nil {
			t.Fatalf("linux %v: Sync after the failure: %v", tc.linux, err)
		}
		if err := f.Sync(); err != nil { // and again: still nothing more
			t.Fatal(err)
		}
		m.Crash()
		if got, _ := read(m, "f"); got != tc.want {
			t.Errorf("linux %v: after the crash %q, want %q", tc.linux, got, tc.want)
		}
	}
}

// TestLinuxSyncFailureTruncate: lost bytes cut off by a truncation are
// gone; bytes a truncation grows the file by are written (zeros).
func TestLinuxSyncFailureTruncate(t *testing.T) {
	m := New(Options{LinuxSyncFailures: true})
	f := write(t, m, "f", "ab", true)
	m.SyncDir(".")
	f.Write([]byte("cdef"))
	m.FailSync(1)
	f.Sync()
	f.Truncate(4)
	f.Truncate(8)
	f.Seek(8, 0)
	f.Write([]byte("g"))
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	m.Crash()
	if got, _ := read(m, "f"); got != "ab\x00\x00\x00\x00\x00\x00g" {
		t.Fatalf("after the crash %q", got)
	}
}

// TestSyncModelsAgainstReference runs random writes, truncations and
// Syncs (some failing) on one file, then a crash, under both sync failure
// models, against a byte-by-byte reference: a byte is dirty from its write
// to the next Sync; a successful Sync makes dirty bytes durable and the
// file's size durable (bytes past the old durable size that are not dirty
// were lost: zeros); a failed Sync cleans dirty bytes (Linux) or leaves
// them dirty (retry).
func TestSyncModelsAgainstReference(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		linux := rapid.Bool().Draw(t, "linux")
		m := New(Options{LinuxSyncFailures: linux})
		f, _ := m.Create("f")
		m.SyncDir(".")
		var data, dur []byte
		var dirty []bool
		for range rapid.IntRange(1, 30).Draw(t, "ops") {
			switch rapid.IntRange(0, 3).Draw(t, "op") {
			case 0, 1: // write at or before the end
				off := rapid.IntRange(0, len(data)).Draw(t, "off")
				b := rapid.SliceOfN(rapid.ByteRange('a', 'z'), 1, 6).Draw(t, "data")
				f.Seek(int64(off), 0)
				f.Write(b)
				for i, c := range b {
					if off+i == len(data) {
						data, dirty = append(data, c), append(dirty, true)
					} else {
						data[off+i], dirty[off+i] = c, true
					}
				}
			case 2:
				size := rapid.IntRange(0, len(data)+4).Draw(t, "size")
				f.Truncate(int64(size))
				for len(data) < size {
					data, dirty = append(data, 0), append(dirty, true)
				}
				data, dirty = data[:size], dirty[:size]
			case 3:
				if rapid.Bool().Draw(t, "fail") {
					m.FailSync(1)
					if err := f.Sync(); err == nil {
						t.Fatal("armed Sync succeeded")
					}
					if linux {
						clear(dirty)
					}
					break
				}
				if err := f.Sync(); err != nil {
					t.Fatal(err)
				}
				next := make([]byte, len(data))
				for i := range next {
					switch {
					case dirty[i]:
						next[i] = data[i]
					case i < len(dur):
						next[i] = dur[i]
					}
				}
				dur = next
				clear(dirty)
			}
			if got, _ := read(m, "f"); got != string(data) {
				t.Fatalf("reads %q, want %q", got, data)
			}
		}
		m.Crash()
		if got, _ := read(m, "f"); got != string(dur) {
			t.Fatalf("after the crash %q, want %q (reads showed %q)", got, dur, data)
		}
	})
}

// TestCrashGrowFirst: after a crash, a file holds its synced data, then a
// prefix of its unsynced appends, then zeros, and is no longer than it
// was.
func TestCrashGrowFirst(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m := New(Options{Crash: CrashGrowFirst, Seed: rapid.Uint64().Draw(t, "seed")})
		f, _ := m.Create("log")
		m.SyncDir(".")
		var synced, all []byte
		for range rapid.IntRange(1, 20).Draw(t, "writes") {
			b := rapid.SliceOfN(rapid.ByteRange(1, 255), 1, 8).Draw(t, "data")
			f.Write(b)
			all = append(all, b...)
			if rapid.Bool().Draw(t, "sync") {
				f.Sync()
				synced = bytes.Clone(all)
			}
		}
		m.Crash()
		got, err := read(m, "log")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := growFirstShape([]byte(got), synced, all); err != nil {
			t.Fatal(err)
		}
	})
}

// TestCrashGrowFirstShapes: over a fixed set of seeds, each shape a
// grow-first crash can leave (nothing kept, the new size with only zeros,
// data then zeros, all the data) turns up. The seeds are fixed so the
// test cannot fail by chance: a shape drawn with a probability of a few
// percent per crash is missed by a hundred random draws often enough to
// fail CI.
func TestCrashGrowFirstShapes(t *testing.T) {
	synced, all := []byte("sync"), []byte("sync-tail")
	shapes := map[string]int{}
	for seed := range uint64(500) {
		m := New(Options{Crash: CrashGrowFirst, Seed: seed})
		f, _ := m.Create("log")
		m.SyncDir(".")
		f.Write(synced)
		f.Sync()
		f.Write(all[len(synced):])
		m.Crash()
		got, err := read(m, "log")
		if err != nil {
			t.Fatal(err)
		}
		shape, err := growFirstShape([]byte(got), synced, all)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		shapes[shape]++
	}
	t.Logf("shapes over 500 seeds: %v", shapes)
	for _, shape := range []string{"nothing", "zeros", "data then zeros", "data"} {
		if shapes[shape] == 0 {
			t.Errorf("no crash left %s: %v", shape, shapes)
		}
	}
}

// growFirstShape checks that got, a file read back after a grow-first
// crash, is synced, then a prefix of the unsynced rest of all (whose
// bytes are never zero), then zeros, no longer than all; and names its
// shape.
func growFirstShape(got, synced, all []byte) (string, error) {
	if !bytes.HasPrefix(got, synced) || len(got) > len(all) {
		return "", fmt.Errorf("after crash %q; synced %q, written %q", got, synced, all)
	}
	tail := got[len(synced):]
	kept := len(bytes.TrimRight(tail, "\x00"))
	if !bytes.Equal(tail[:kept], all[len(synced):len(synced)+kept]) {
		return "", fmt.Errorf("after crash %q: not a prefix of the unsynced %q then zeros", got, all[len(synced):])
	}
	switch {
	case len(all) == len(synced):
		return "all synced", nil
	case len(tail) == 0:
		return "nothing", nil
	case kept == 0:
		return "zeros", nil
	case kept < len(tail):
		return "data then zeros", nil
	}
	return "data", nil
}

// TestFailedSyncDir: under both sync failure models, a failed SyncDir
// makes no entry durable, and the next successful one makes them all
// durable.
func TestFailedSyncDir(t *testing.T) {
	for _, linux := range []bool{false, true} {
		m := New(Options{LinuxSyncFailures: linux})
		write(t, m, "a", "a", true)
		m.FailSync(1)
		if err := m.SyncDir("."); !errors.Is(err, ErrInjected) {
			t.Fatalf("armed SyncDir: %v", err)
		}
		c := m.Clone()
		c.Crash()
		if _, err := read(c, "a"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("linux %v: an entry whose SyncDir failed survived a crash: %v", linux, err)
		}
		if err := m.SyncDir("."); err != nil {
			t.Fatal(err)
		}
		m.Crash()
		if got, err := read(m, "a"); got != "a" || err != nil {
			t.Errorf("linux %v: entry synced after a failed SyncDir: %q, %v", linux, got, err)
		}
	}
}

// TestSyncsCounts: Syncs counts file and directory syncs, failed ones too.
func TestSyncsCounts(t *testing.T) {
	m := New(Options{})
	f := write(t, m, "f", "x", true)
	m.SyncDir(".")
	m.FailSync(1)
	f.Sync()
	if got := m.Syncs(); got != 3 {
		t.Fatalf("Syncs = %d, want 3", got)
	}
}

func TestSpans(t *testing.T) {
	var s spans
	s = s.add(10, 20).add(30, 40).add(20, 25).add(0, 2).add(1, 3)
	if want := (spans{{0, 3}, {10, 25}, {30, 40}}); !slices.Equal(s, want) {
		t.Fatalf("add: %v, want %v", s, want)
	}
	s = s.remove(12, 14).remove(35, 100).remove(0, 3)
	if want := (spans{{10, 12}, {14, 25}, {30, 35}}); !slices.Equal(s, want) {
		t.Fatalf("remove: %v, want %v", s, want)
	}
}
