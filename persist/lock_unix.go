//go:build unix

package persist

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// nonBlock opens a FIFO without waiting for its other end.
const nonBlock = syscall.O_NONBLOCK

// clearNonBlock puts a regular file back in blocking mode (it makes no
// difference to regular files on Linux; elsewhere it may).
func clearNonBlock(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) { serr = syscall.SetNonblock(int(fd), false) })
	return errors.Join(err, serr)
}

// lockFile takes an flock on name: held until the file is closed, released
// by the kernel if the process dies.
func lockFile(name string) (io.Closer, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	return flock(f, name, syscall.LOCK_EX)
}

// lockShared takes a shared flock on name, which must exist: it creates
// nothing and opens name for reading only, so it works on a read-only
// filesystem.
func lockShared(name string) (io.Closer, error) {
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	return flock(f, name, syscall.LOCK_SH)
}

func flock(f *os.File, name string, how int) (io.Closer, error) {
	if err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB); err != nil {
		f.Close()
		if err == syscall.EWOULDBLOCK {
			return nil, fmt.Errorf("%s: %w", name, ErrLocked)
		}
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	return f, nil
}
