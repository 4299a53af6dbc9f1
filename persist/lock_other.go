//go:build !unix

package persist

import (
	"fmt"
	"io"
	"os"
)

const nonBlock = 0

func clearNonBlock(*os.File) error { return nil }

// lockFile creates name exclusively; it is removed on Close. A process that
// dies leaves it behind, so on these systems a stale lock file must be
// removed by hand.
func lockFile(name string) (io.Closer, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		if os.IsExist(err) {
			return nil, fmt.Errorf("%s: %w", name, ErrLocked)
		}
		return nil, err
	}
	return removeOnClose{f}, nil
}

// lockShared fails if a writer holds name; readers take nothing, so any
// number of them may read beside each other.
func lockShared(name string) (io.Closer, error) {
	if _, err := os.Stat(name); err == nil {
		return nil, fmt.Errorf("%s: %w", name, ErrLocked)
	}
	return nopCloser{}, nil
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }

type removeOnClose struct{ *os.File }

func (r removeOnClose) Close() error {
	err := r.File.Close()
	if rerr := os.Remove(r.Name()); err == nil {
		err = rerr
	}
	return err
}
