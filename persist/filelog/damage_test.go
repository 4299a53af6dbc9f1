package filelog_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/kv"
	"github.com/revkv/revkv/persist/filelog"
	"github.com/revkv/revkv/persist/memfs"
)

// TestFaults injects a failed write, a failed sync or a full disk at
// random points of a workload: the write that meets it gets an error (no
// panic), the store stops taking writes but still serves reads, and it
// reopens (with and without a crash) with every durable write.
func TestFaults(t *testing.T) {
	w := genWorkload(t, 42, 120)
	rng := rand.New(rand.NewPCG(1, 2))
	counts := map[string]int{}
	for trial := range 300 {
		fs := memfs.New(memfs.Options{Crash: memfs.CrashTorn, Seed: uint64(trial)})
		kind := []string{"write", "sync", "disk"}[trial%3]
		s, err := openStore(fs, tiny)
		if err != nil {
			t.Fatal(err)
		}
		switch kind {
		case "write":
			fs.FailWrite(1 + rng.Int64N(150))
		case "sync":
			fs.FailSync(1 + rng.Int64N(200))
		case "disk":
			fs.LimitDisk(200 + rng.Int64N(6000))
		}
		durable, attempted := 0, 0
		for i, o := range w.ops {
			attempted = i + 1
			if err = apply(s, o); err != nil {
				break
			}
			durable = i + 1
		}
		if err == nil {
			s.Close()
			continue // the fault hit a snapshot, or nothing
		}
		counts[kind]++
		if !errors.Is(err, kv.ErrStopped) {
			t.Fatalf("trial %d (%s): error %v does not wrap ErrStopped", trial, kind, err)
		}
		if kind == "disk" && !errors.Is(err, memfs.ErrNoSpace) {
			t.Fatalf("trial %d: full disk reported as %v", trial, err)
		}
		if _, err := s.Put([]byte("x"), nil); !errors.Is(err, kv.ErrStopped) {
			t.Fatalf("trial %d (%s): write after failure: %v", trial, kind, err)
		}
		// Reads serve the last published, durable state.
		if _, err := w.matchState(s, durable, durable); err != nil {
			t.Fatalf("trial %d (%s): reads after failure: %v", trial, kind, err)
		}
		s.Close()
		fs.LimitDisk(0)

		// Reopen as the same process would, then after a crash.
		for _, crash := range []bool{false, true} {
			if crash {
				fs.Crash()
			}
			s, err = openStore(fs, tiny)
			if err != nil {
				t.Fatalf("trial %d (%s, crash %v): reopen: %v", trial, kind, crash, err)
			}
			if _, err := w.matchState(s, durable, attempted); err != nil {
				t.Fatalf("trial %d (%s, crash %v): %v", trial, kind, crash, err)
			}
			if crash { // (a write before would change the state the crash checks)
				if _, err := s.Put([]byte("after"), nil); err != nil {
					t.Fatalf("trial %d (%s): write after reopen: %v", trial, kind, err)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Logf("faults met by a write: %v", counts)
	for _, k := range []string{"write", "sync", "disk"} {
		if counts[k] < 20 {
			t.Errorf("only %d trials met a %s fault", counts[k], k)
		}
	}
}

// flipDir builds a small data directory with several segments and two
// snapshots, and returns it closed, with the hash of its state.
func flipDir(t *testing.T) (*memfs.FS, kv.KeyValueHash) {
	fs := memfs.New(memfs.Options{})
	opts := filelog.Options{SegmentSize: 300, SnapshotRevs: -1, FS: fs}
	l, err := filelog.Open("db", opts)
	if err != nil {
		t.Fatal(err)
	}
	s, err := engine.Open(l, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	w := genWorkload(t, 7, 40)
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
	h, err := s.HashByRev(0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return fs, h
}

// TestFlipEveryByte flips each byte of each file of a small data
// directory, one at a time, and opens it: the open must fail with an error
// naming the file (and wrapping kv.ErrCorrupt), or recover the very same
// state (a damaged newest snapshot falls back to the older one). A wrong
// value is never served.
func TestFlipEveryByte(t *testing.T) {
	base, want := flipDir(t)
	names, err := base.List("db")
	if err != nil {
		t.Fatal(err)
	}
	var segs, snaps int
	outcomes := map[string]int{}
	for _, name := range names {
		if name == "LOCK" {
			continue
		}
		if strings.HasSuffix(name, ".snap") {
			snaps++
		} else {
			segs++
		}
		f, err := base.Open("db/" + name)
		if err != nil {
			t.Fatal(err)
		}
		size, _ := f.Size()
		f.Close()
		for off := range size {
			fs := base.Clone()
			if err := fs.FlipByte("db/"+name, off); err != nil {
				t.Fatal(err)
			}
			s, err := openStore(fs, filelog.Options{SnapshotRevs: -1})
			if err != nil {
				if !errors.Is(err, kv.ErrCorrupt) || !strings.Contains(err.Error(), name) {
					t.Fatalf("%s byte %d flipped: %v: want kv.ErrCorrupt naming the file", name, off, err)
				}
				outcomes["detected"]++
				continue
			}
			got, err := s.HashByRev(0)
			s.Close()
			if err != nil || got != want {
				t.Fatalf("%s byte %d flipped: opened with hash %+v (%v), want %+v", name, off, got, err, want)
			}
			outcomes["recovered"]++
		}
	}
	if segs < 3 || snaps != 2 {
		t.Fatalf("directory has %d segments and %d snapshots; the test wants several and 2", segs, snaps)
	}
	t.Logf("%d segments, %d snapshots: %v", segs, snaps, outcomes)
	if outcomes["recovered"] == 0 || outcomes["detected"] == 0 {
		t.Fatal(fmt.Sprint("expected both outcomes: ", outcomes))
	}
}
