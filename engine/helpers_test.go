package engine

import (
	"bytes"
	"errors"
	"io"
)

func b(s string) []byte { return []byte(s) }

// tb is what the helpers need of *testing.T, *testing.F and *rapid.T.
type tb interface {
	Helper()
	Fatalf(format string, args ...any)
}

func mustPut(t tb, s *Store, key, value string) int64 {
	t.Helper()
	rev, err := s.Put(b(key), b(value))
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	return rev
}

// keysOf renders a range result as "k=v@mod/create/ver" strings.
func keysOf(kvs []KeyValue) []string {
	var out []string
	for _, kv := range kvs {
		out = append(out, string(kv.Key)+"="+string(kv.Value))
	}
	return out
}

func wantErr(t tb, what string, got, want error) {
	t.Helper()
	if want == nil && got != nil || want != nil && !errors.Is(got, want) {
		t.Fatalf("%s: error %v, want %v", what, got, want)
	}
}

func sameKV(a, b KeyValue) bool {
	return bytes.Equal(a.Key, b.Key) && bytes.Equal(a.Value, b.Value) && a.CreateRevision == b.CreateRevision &&
		a.ModRevision == b.ModRevision && a.Version == b.Version && a.Lease == b.Lease
}

// loadStore returns a new in-memory store filled from the snapshot in r
// (Open with no persister, then LoadSnapshot).
func loadStore(r io.Reader, opts Options) (*Store, error) {
	s, err := Open(nil, opts)
	if err != nil {
		return nil, err
	}
	if err := s.LoadSnapshot(r); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}
