// Package fstest checks that a persist.FS behaves as persisters expect, so
// that the OS implementation, memfs and users' own (an FS over a cloud
// disk, say) are held to the same contract.
package fstest

import (
	"errors"
	"io"
	"path"
	"slices"
	"testing"

	"github.com/revkv/revkv/persist"
)

// Run checks fsys in the directory root, which must exist and be empty.
func Run(t *testing.T, fsys persist.FS, root string) {
	t.Helper()
	p := func(name string) string { return path.Join(root, name) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	// Create, write, read back, size.
	f, err := fsys.Create(p("a"))
	must(err)
	if n, err := f.Write([]byte("hello, ")); n != 7 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	f.Write([]byte("world"))
	must(f.Sync())
	if size, err := f.Size(); size != 12 || err != nil {
		t.Fatalf("Size = %d, %v; want 12", size, err)
	}
	buf := make([]byte, 5)
	if n, err := f.ReadAt(buf, 7); n != 5 || string(buf) != "world" || (err != nil && err != io.EOF) {
		t.Fatalf("ReadAt = %d %q %v", n, buf, err)
	}
	if _, err := f.ReadAt(buf, 10); err != io.EOF {
		t.Fatalf("ReadAt past the end: %v, want io.EOF", err)
	}
	must(f.Close())

	r, err := fsys.Open(p("a"))
	must(err)
	all, err := io.ReadAll(r)
	if err != nil || string(all) != "hello, world" {
		t.Fatalf("ReadAll = %q, %v", all, err)
	}
	if _, err := r.Write([]byte("x")); err == nil {
		t.Fatal("Write to a file opened with Open succeeded")
	}
	must(r.Close())

	// OpenReadWrite overwrites in place and truncates.
	rw, err := fsys.OpenReadWrite(p("a"))
	must(err)
	rw.Write([]byte("J"))
	must(rw.Truncate(5))
	must(rw.Sync())
	must(rw.Close())
	if got := readAll(t, fsys, p("a")); got != "Jello" {
		t.Fatalf("after overwrite and truncate: %q", got)
	}

	// Seek to the end and append; Seek reports the offset.
	rw, err = fsys.OpenReadWrite(p("a"))
	must(err)
	if off, err := rw.Seek(0, io.SeekEnd); off != 5 || err != nil {
		t.Fatalf("Seek(0, SeekEnd) = %d, %v; want 5", off, err)
	}
	rw.Write([]byte(", world"))
	if off, err := rw.Seek(-7, io.SeekCurrent); off != 5 || err != nil {
		t.Fatalf("Seek(-7, SeekCurrent) = %d, %v; want 5", off, err)
	}
	must(rw.Sync())
	must(rw.Close())
	if got := readAll(t, fsys, p("a")); got != "Jello, world" {
		t.Fatalf("after appending: %q", got)
	}

	// Create truncates an existing file.
	f, err = fsys.Create(p("a"))
	must(err)
	must(f.Close())
	if got := readAll(t, fsys, p("a")); got != "" {
		t.Fatalf("Create of an existing file left %q", got)
	}

	// Missing files.
	if _, err := fsys.Open(p("missing")); !persist.IsNotExist(err) {
		t.Fatalf("Open of a missing file: %v", err)
	}
	if err := fsys.Remove(p("missing")); !persist.IsNotExist(err) {
		t.Fatalf("Remove of a missing file: %v", err)
	}

	// Rename replaces, Remove removes, List is sorted, SyncDir works.
	writeFile(t, fsys, p("b"), "B")
	writeFile(t, fsys, p("c"), "C")
	must(fsys.Rename(p("b"), p("c")))
	if got := readAll(t, fsys, p("c")); got != "B" {
		t.Fatalf("after Rename(b, c), c = %q", got)
	}
	must(fsys.Remove(p("a")))
	must(fsys.MkdirAll(p("sub/dir")))
	writeFile(t, fsys, p("sub/dir/x"), "x")
	must(fsys.SyncDir(root))
	must(fsys.SyncDir(p("sub/dir")))
	names, err := fsys.List(root)
	must(err)
	if !slices.Equal(names, []string{"c", "sub"}) {
		t.Fatalf("List = %q, want [c sub]", names)
	}

	// Lock is exclusive until closed.
	l, err := fsys.Lock(p("LOCK"))
	must(err)
	if _, err := fsys.Lock(p("LOCK")); !errors.Is(err, persist.ErrLocked) {
		t.Fatalf("second Lock: %v, want ErrLocked", err)
	}
	must(l.Close())
	l, err = fsys.Lock(p("LOCK"))
	must(err)
	must(l.Close())
}

func writeFile(t *testing.T, fsys persist.FS, name, s string) {
	t.Helper()
	f, err := fsys.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func readAll(t *testing.T, fsys persist.FS, name string) string {
	t.Helper()
	f, err := fsys.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
