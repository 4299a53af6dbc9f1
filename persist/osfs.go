package persist

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
)

// OS is the operating system's filesystem.
var OS FS = osFS{}

type osFS struct{}

type osFile struct{ *os.File }

func (f osFile) Size() (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

func (osFS) Create(name string) (File, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	return regular(f)
}

func (osFS) Open(name string) (File, error) { return openRegular(name, os.O_RDONLY) }

func (osFS) OpenReadWrite(name string) (File, error) { return openRegular(name, os.O_RDWR) }

// openRegular opens name without blocking (a FIFO's open would wait for
// a writer) and refuses anything but a regular file.
func openRegular(name string, flag int) (File, error) {
	f, err := os.OpenFile(name, flag|nonBlock, 0)
	if err != nil {
		return nil, err
	}
	return regular(f)
}

func regular(f *os.File) (File, error) {
	st, err := f.Stat()
	if err == nil && !st.Mode().IsRegular() {
		err = fmt.Errorf("%s: %w (%v)", f.Name(), ErrNotRegular, st.Mode().Type())
	}
	if err == nil {
		err = clearNonBlock(f)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return osFile{f}, nil
}

func (osFS) Rename(oldname, newname string) error { return os.Rename(oldname, newname) }
func (osFS) Remove(name string) error             { return os.Remove(name) }
func (osFS) MkdirAll(dir string) error            { return os.MkdirAll(dir, 0o755) }

func (osFS) List(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	slices.Sort(names)
	return names, nil
}

func (osFS) SyncDir(dir string) error {
	d, err := os.Open(filepath.Clean(dir))
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return err
	}
	return d.Close()
}

func (osFS) Lock(name string) (io.Closer, error) { return lockFile(name) }

func (osFS) LockShared(name string) (io.Closer, error) { return lockShared(name) }
