package memfs

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"testing"

	"github.com/revkv/revkv/persist"
	"github.com/revkv/revkv/persist/fstest"
	"pgregory.net/rapid"
)

func TestConformance(t *testing.T) {
	m := New(Options{})
	if err := m.MkdirAll("db"); err != nil {
		t.Fatal(err)
	}
	fstest.Run(t, m, "db")
}

func read(m *FS, name string) (string, error) {
	f, err := m.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	return string(b), err
}

func write(t testing.TB, m *FS, name, s string, sync bool) persist.File {
	f, err := m.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte(s))
	if sync {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func TestCrashKeepsOnlyWhatWasSynced(t *testing.T) {
	m := New(Options{})
	// Synced data and a synced directory entry survive.
	write(t, m, "durable", "kept", true)
	m.SyncDir(".")
	// Unsynced data after synced data is dropped.
	f := write(t, m, "partial", "kept", true)
	m.SyncDir(".")
	f.Write([]byte(" lost"))
	// A rename that was not synced is undone; a remove too.
	write(t, m, "old", "renamed", true)
	write(t, m, "gone", "removed", true)
	m.SyncDir(".")
	m.Rename("old", "new")
	m.Remove("gone")
	// A synced file whose name was never synced is lost.
	write(t, m, "unnamed", "data", true)

	m.Crash()
	for name, want := range map[string]string{"durable": "kept", "partial": "kept", "old": "renamed", "gone": "removed"} {
		if got, err := read(m, name); got != want || err != nil {
			t.Errorf("%s after crash = %q, %v; want %q", name, got, err, want)
		}
	}
	for _, name := range []string{"unnamed", "new"} {
		if _, err := read(m, name); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s survived the crash: %v", name, err)
		}
	}
	// Files opened before the crash are dead.
	if _, err := f.Write([]byte("x")); !errors.Is(err, ErrCrashed) {
		t.Errorf("write to a pre-crash file: %v", err)
	}
}

// TestTornWrites: after a crash with torn writes, each file holds its synced
// data followed by a prefix of what it had unsynced, never anything else.
func TestTornWrites(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m := New(Options{Crash: CrashTorn, Seed: rapid.Uint64().Draw(t, "seed")})
		f, _ := m.Create("log")
		m.SyncDir(".")
		var synced, all []byte
		for range rapid.IntRange(1, 20).Draw(t, "writes") {
			b := rapid.SliceOfN(rapid.Byte(), 1, 8).Draw(t, "data")
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
		if !bytes.HasPrefix([]byte(got), synced) || !bytes.HasPrefix(all, []byte(got)) {
			t.Fatalf("after crash %q; synced %q, written %q", got, synced, all)
		}
	})
}

func TestFaults(t *testing.T) {
	m := New(Options{})
	f := write(t, m, "f", "", false)
	m.FailWrite(2)
	if _, err := f.Write([]byte("a")); err != nil {
		t.Fatal(err)
	}
	if n, err := f.Write([]byte("b")); n != 0 || !errors.Is(err, ErrInjected) {
		t.Fatalf("second write: %d, %v", n, err)
	}
	m.FailSync(1)
	if err := f.Sync(); !errors.Is(err, ErrInjected) {
		t.Fatalf("failed sync: %v", err)
	}
	m.Crash()
	if _, err := read(m, "f"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a file whose sync failed survived with its name unsynced: %v", err)
	}

	f = write(t, m, "full", "", false)
	m.LimitDisk(10)
	if n, err := f.Write([]byte("0123456789abc")); n != 10 || !errors.Is(err, ErrNoSpace) {
		t.Fatalf("write past the disk limit: %d, %v", n, err)
	}
	m.LimitDisk(0)

	start := m.Ops()
	m.CrashAfter(3)
	f.Write([]byte("1"))
	f.Write([]byte("2"))
	if _, err := f.Write([]byte("3")); !errors.Is(err, ErrCrashed) {
		t.Fatalf("third op after CrashAfter(3): %v", err)
	}
	if _, err := m.Create("x"); !errors.Is(err, ErrCrashed) {
		t.Fatalf("op after the crash point: %v", err)
	}
	if got := m.Ops() - start; got != 2 {
		t.Fatalf("Ops counted %d operations, want 2", got)
	}
	m.Crash()
	if _, err := m.Create("x"); err != nil {
		t.Fatalf("after Crash the FS works again: %v", err)
	}

	write(t, m, "flip", "abc", true)
	if err := m.FlipByte("flip", 1); err != nil {
		t.Fatal(err)
	}
	if got, _ := read(m, "flip"); got != "a\x9dc" {
		t.Fatalf("after FlipByte: %q", got)
	}
	if err := m.FlipByte("flip", 3); err == nil {
		t.Fatal("FlipByte past the end succeeded")
	}
}
