// Package persist is where revkv's engine meets durable storage: the
// persister plug-in point (Persister, Target, Batch), and the filesystem
// persisters use, a small interface (FS) in the spirit of pebble's vfs.FS
// with an implementation on the operating system's files (OS). The
// in-memory filesystem in persist/memfs models crashes and injects faults
// for tests; persist/fstest checks any FS against the contract.
package persist

import (
	"errors"
	"io"
	"io/fs"
)

// Errors of package persist. Missing files are fs.ErrNotExist, as the os
// package reports them.
var (
	// ErrLocked: another process (or FS user) holds the lock.
	ErrLocked = errors.New("revkv/persist: locked by another user")
	// ErrNotRegular: a name that should be a file's is a directory, a
	// FIFO, a device or a socket. OS refuses to open those (a FIFO's open
	// would wait for a writer forever).
	ErrNotRegular = errors.New("revkv/persist: not a regular file")
)

// FS is the filesystem persisters use. Names are slash-separated paths.
// Implementations are safe for concurrent use; a File is used by one
// goroutine at a time.
//
// Durability follows POSIX: data written to a File is durable once its
// Sync returns; a Create, Rename or Remove is durable once SyncDir of the
// directory holding the name returns.
type FS interface {
	// Create creates name, truncating it if it exists, for reading and
	// writing.
	Create(name string) (File, error)
	// Open opens an existing file for reading. It must not block: a name
	// that is not a regular file (a FIFO, a device) is an error wrapping
	// ErrNotRegular, as OS reports it.
	Open(name string) (File, error)
	// OpenReadWrite opens an existing file for reading and writing, at
	// offset 0 (to truncate a torn tail, or Seek to its end and append).
	OpenReadWrite(name string) (File, error)
	// Rename replaces newname with oldname, atomically.
	Rename(oldname, newname string) error
	// Remove removes a file.
	Remove(name string) error
	// List returns the names of the entries of dir, sorted.
	List(dir string) ([]string, error)
	// MkdirAll creates dir and its parents.
	MkdirAll(dir string) error
	// SyncDir makes the entries of dir durable.
	SyncDir(dir string) error
	// Lock takes an exclusive lock named name, creating the file if needed;
	// ErrLocked if someone holds it. Close releases it.
	Lock(name string) (io.Closer, error)
}

// SharedLocker is an FS that can also take a shared lock, for readers:
// LockShared(name) takes a lock that any number of readers may hold at
// once, but not beside Lock's exclusive one (ErrLocked either way). It
// creates nothing and needs no write access: if name does not exist, it
// returns an error wrapping fs.ErrNotExist (no writer ever locked it).
// OS implements it; an FS that does not lets readers go without a lock.
type SharedLocker interface {
	LockShared(name string) (io.Closer, error)
}

var _ SharedLocker = osFS{}

// File is an open file of an FS. Read, Write and Seek share one offset.
type File interface {
	io.Reader
	io.ReaderAt
	io.Writer
	io.Seeker
	io.Closer
	// Sync makes the file's data durable.
	Sync() error
	// Size returns the file's size.
	Size() (int64, error)
	// Truncate changes the file's size.
	Truncate(size int64) error
}

// IsNotExist reports whether err says a file does not exist.
func IsNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
