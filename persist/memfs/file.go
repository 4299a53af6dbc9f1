package memfs

import (
	"io"
	"io/fs"
)

// file is an open file of an FS. Its position is its own; its data is the
// node's, shared with other handles on the same file.
type file struct {
	fs       *FS
	n        *node
	name     string
	pos      int64
	epoch    int
	readOnly bool
	closed   bool
}

// check fails operations on closed files and files from before a crash.
// fs.mu is held.
func (f *file) check(op string) error {
	switch {
	case f.closed:
		return &fs.PathError{Op: op, Path: f.name, Err: fs.ErrClosed}
	case f.epoch != f.fs.epoch:
		return &fs.PathError{Op: op, Path: f.name, Err: ErrCrashed}
	}
	return nil
}

func (f *file) Read(p []byte) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("read"); err != nil {
		return 0, err
	}
	if f.pos >= int64(len(f.n.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.n.data[f.pos:])
	f.pos += int64(n)
	return n, nil
}

func (f *file) ReadAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("read"); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: fs.ErrInvalid}
	}
	if off >= int64(len(f.n.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.n.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Seek implements io.Seeker. Seeking past the end is allowed; a later
// Write fills the gap with zeros.
func (f *file) Seek(offset int64, whence int) (int64, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("seek"); err != nil {
		return 0, err
	}
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += f.pos
	case io.SeekEnd:
		offset += int64(len(f.n.data))
	default:
		return 0, &fs.PathError{Op: "seek", Path: f.name, Err: fs.ErrInvalid}
	}
	if offset < 0 {
		return 0, &fs.PathError{Op: "seek", Path: f.name, Err: fs.ErrInvalid}
	}
	f.pos = offset
	return offset, nil
}

func (f *file) Write(p []byte) (int, error) {
	m := f.fs
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := f.check("write"); err != nil {
		return 0, err
	}
	if f.readOnly {
		return 0, &fs.PathError{Op: "write", Path: f.name, Err: fs.ErrPermission}
	}
	if err := m.op(f.name); err != nil {
		return 0, err
	}
	if m.failWrite > 0 {
		m.failWrite--
		if m.failWrite == 0 {
			return 0, &fs.PathError{Op: "write", Path: f.name, Err: ErrInjected}
		}
	}
	want := p
	var err error
	if m.diskLimit > 0 {
		grow := max(f.pos+int64(len(p))-int64(len(f.n.data)), 0)
		if room := m.diskLimit - m.used(); grow > room {
			fit := int64(len(p)) - (grow - max(room, 0))
			want = p[:max(fit, 0)]
			err = &fs.PathError{Op: "write", Path: f.name, Err: ErrNoSpace}
		}
	}
	if end := f.pos + int64(len(want)); end > int64(len(f.n.data)) {
		f.n.data = append(f.n.data, make([]byte, end-int64(len(f.n.data)))...)
	}
	copy(f.n.data[f.pos:], want)
	f.n.lost = f.n.lost.remove(f.pos, f.pos+int64(len(want))) // dirty again
	f.pos += int64(len(want))
	return len(want), err
}

func (f *file) Sync() error {
	m := f.fs
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := f.check("sync"); err != nil {
		return err
	}
	if err := m.op(f.name); err != nil {
		return err
	}
	if err := m.syncFault(f.name); err != nil {
		if m.opts.LinuxSyncFailures {
			f.n.loseUnsynced()
		}
		return err
	}
	f.n.synced = f.n.image()
	return nil
}

func (f *file) Size() (int64, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("stat"); err != nil {
		return 0, err
	}
	return int64(len(f.n.data)), nil
}

func (f *file) Truncate(size int64) error {
	m := f.fs
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := f.check("truncate"); err != nil {
		return err
	}
	if f.readOnly || size < 0 {
		return &fs.PathError{Op: "truncate", Path: f.name, Err: fs.ErrInvalid}
	}
	if err := m.op(f.name); err != nil {
		return err
	}
	if size <= int64(len(f.n.data)) {
		f.n.data = f.n.data[:size:size]
	} else {
		f.n.data = append(f.n.data, make([]byte, size-int64(len(f.n.data)))...)
	}
	f.n.truncated(size)
	return nil
}

func (f *file) Close() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return &fs.PathError{Op: "close", Path: f.name, Err: fs.ErrClosed}
	}
	f.closed = true
	return nil
}
