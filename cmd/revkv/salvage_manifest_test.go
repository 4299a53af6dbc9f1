package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/persist/filelog"
)

// TestSalvageMissingManifestWithSnapshots: a store whose compactions left
// twin snapshots and removed its first segments loses its MANIFEST;
// salvage starts from the newest snapshot, reads the segments left without
// the manifest, and the copy has the store's revision and hash.
func TestSalvageMissingManifestWithSnapshots(t *testing.T) {
	tmp := t.TempDir()
	dir, saved := filepath.Join(tmp, "d"), filepath.Join(tmp, "saved")
	l, err := filelog.Open(dir, filelog.Options{SegmentSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	s, err := engine.Open(l, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		if _, err := s.Put([]byte(fmt.Sprintf("key%02d", i%50)), []byte(strings.Repeat("v", i))); err != nil {
			t.Fatal(err)
		}
		if i == 100 || i == 200 {
			if err := s.Compact(int64(i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	want, err := s.Hash()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "00000000000000000001.log")); !os.IsNotExist(err) {
		t.Fatalf("segment 1 still there (%v): the test needs retention to have run", err)
	}
	if err := os.Remove(filepath.Join(dir, "MANIFEST")); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := cli(t, "", "salvage", dir, saved)
	if code != 0 || !strings.Contains(out, "a store at revision 301, from snapshot") || !strings.Contains(out, "left behind: the manifest: ") {
		t.Fatalf("salvage: %d %s %s", code, out, errOut)
	}
	l2, err := filelog.Open(saved, filelog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s2, err := engine.Open(l2, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if got, err := s2.Hash(); err != nil || got != want || s2.Rev() != 301 {
		t.Fatalf("salvaged store at revision %d, hash %x (%v); want 301, %x", s2.Rev(), got, err, want)
	}
}
