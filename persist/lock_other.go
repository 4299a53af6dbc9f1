//go:build !unix

package persist

import (
	"fmt"
	"io"
	"os"
)

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

type removeOnClose struct{ *os.File }

func (r removeOnClose) Close() error {
	err := r.File.Close()
	if rerr := os.Remove(r.Name()); err == nil {
		err = rerr
	}
	return err
}
