package memfs

import (
	"fmt"
	"io"
	"strings"

	"github.com/revkv/revkv/persist"
)

var _ persist.SharedLocker = (*FS)(nil)

// LockShared implements persist.SharedLocker: any number of shared
// holders, none beside Lock's exclusive one. Locks are not files here, so
// it never reports the name missing.
func (f *FS) LockShared(name string) (io.Closer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.locks[name] {
		return nil, fmt.Errorf("%s: %w", name, persist.ErrLocked)
	}
	l := &sharedCloser{f: f}
	l.key = fmt.Sprintf("%s\x00shared\x00%p", name, l)
	f.locks[l.key] = true
	return l, nil
}

// sharedHeld reports whether a shared lock on name is held. mu is held.
func (f *FS) sharedHeld(name string) bool {
	prefix := name + "\x00shared\x00"
	for k := range f.locks {
		if strings.HasPrefix(k, prefix) {
			return true
		}
	}
	return false
}

type sharedCloser struct {
	f   *FS
	key string
}

func (l *sharedCloser) Close() error {
	l.f.mu.Lock()
	defer l.f.mu.Unlock()
	delete(l.f.locks, l.key)
	return nil
}
