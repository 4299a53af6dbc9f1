package filelog_test

import (
	"fmt"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/persist"
	"github.com/revkv/revkv/persist/filelog"
	"github.com/revkv/revkv/persist/memfs"
)

// betweenReadsFS runs hook once, when armed, right after the first of the
// two reads a survey of dir makes (its listing and its MANIFEST), so that
// the second read sees what hook did, whichever order they come in.
type betweenReadsFS struct {
	*memfs.FS
	dir   string
	mu    sync.Mutex
	armed bool
	hook  func()
}

func (f *betweenReadsFS) fire() {
	f.mu.Lock()
	armed := f.armed
	f.armed = false
	f.mu.Unlock()
	if armed {
		f.hook()
	}
}

func (f *betweenReadsFS) List(dir string) ([]string, error) {
	names, err := f.FS.List(dir)
	if dir == f.dir {
		f.fire()
	}
	return names, err
}

func (f *betweenReadsFS) Open(name string) (persist.File, error) {
	file, err := f.FS.Open(name)
	if name == path.Join(f.dir, "MANIFEST") {
		f.fire()
	}
	return file, err
}

// segments returns the names of dir's segments.
func segments(t *testing.T, fs *memfs.FS, dir string) []string {
	t.Helper()
	names, err := fs.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	var segs []string
	for _, n := range names {
		if strings.HasSuffix(n, ".log") {
			segs = append(segs, n)
		}
	}
	return segs
}

// TestRestoreBesideSnapshot: a snapshot the log starts while a Restore
// surveys the directory (its new segment created, and recorded in the
// manifest, between the survey's listing and its reading of the manifest)
// does not make the Restore see a listed segment as missing, and both
// finish: the store keeps every key, and so does the next open.
func TestRestoreBesideSnapshot(t *testing.T) {
	mem := memfs.New(memfs.Options{})
	fs := &betweenReadsFS{FS: mem, dir: "db"}
	l, err := filelog.Open("db", filelog.Options{FS: fs, SnapshotRevs: -1})
	if err != nil {
		t.Fatal(err)
	}
	s, err := engine.Open(l, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	const keys = 20
	for i := range keys {
		if _, err := s.Put(fmt.Appendf(nil, "k%02d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	before := len(segments(t, mem, "db"))
	snapDone := make(chan error, 1)
	fs.hook = func() {
		// The snapshot starts a new segment first, then waits (for the
		// survey's lock) to record itself: wait for the segment only.
		go func() { snapDone <- l.WriteSnapshot() }()
		deadline := time.Now().Add(10 * time.Second)
		for len(segments(t, mem, "db")) == before {
			if time.Now().After(deadline) {
				t.Error("the snapshot started no segment")
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
	fs.mu.Lock()
	fs.armed = true
	fs.mu.Unlock()
	if err := s.Restore(); err != nil {
		t.Fatalf("Restore beside a snapshot: %v", err)
	}
	select {
	case err := <-snapDone:
		if err != nil {
			t.Fatalf("WriteSnapshot beside a Restore: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WriteSnapshot did not finish after the Restore")
	}
	check := func(s *engine.Store, when string) {
		t.Helper()
		kvs, _, err := s.Range([]byte("k"), []byte("l"), 0, 0)
		if err != nil || len(kvs) != keys {
			t.Fatalf("%s: %d keys, %v; want %d", when, len(kvs), err, keys)
		}
	}
	check(s, "after Restore")
	if _, err := s.Put([]byte("after"), []byte("v")); err != nil {
		t.Fatalf("put after Restore: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, _ = mustOpen(t, "db", filelog.Options{FS: mem})
	defer s.Close()
	check(s, "reopened")
}
