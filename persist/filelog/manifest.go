package filelog

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path"

	"github.com/cespare/xxhash/v2"
	"github.com/revkv/revkv/persist"
	"github.com/revkv/revkv/snapshot"
)

// manifest is the record of which files make up the store and how much of
// the log is known durable (see the package doc, "Manifest").
type manifest struct {
	id uint64 // the store's identity, in every segment and snapshot it writes
	// clean: the log was closed cleanly, its last segment synced to
	// exactly segs[last].size.
	clean bool
	// segs are the segments, in order; every one but the last is sealed
	// and its size exact; the last's size is how far it is known durable
	// (its header at least).
	segs  []segMark
	snaps []uint64 // the snapshots, in order
}

type segMark struct {
	num  uint64
	size int64
}

const (
	manMagic   = "revkvman"
	manVersion = 1
	manClean   = 1 // flag: closed cleanly
	// maxManifest bounds what a reader allocates for a damaged count.
	maxManifestFiles = 1 << 20
)

// ErrForeign is the error (wrapped in a *DamageError, so also kv.ErrCorrupt)
// for a segment or snapshot that belongs to another store, or that a
// store's manifest does not know.
var ErrForeign = errors.New("revkv/filelog: file of another store")

func (m *manifest) append(b []byte) []byte {
	start := len(b)
	var flags uint32
	if m.clean {
		flags |= manClean
	}
	b = append(b, manMagic...)
	b = binary.LittleEndian.AppendUint32(b, manVersion)
	b = binary.LittleEndian.AppendUint32(b, flags)
	b = binary.LittleEndian.AppendUint64(b, m.id)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(m.segs)))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(m.snaps)))
	for _, s := range m.segs {
		b = binary.LittleEndian.AppendUint64(b, s.num)
		b = binary.LittleEndian.AppendUint64(b, uint64(s.size))
	}
	for _, n := range m.snaps {
		b = binary.LittleEndian.AppendUint64(b, n)
	}
	return binary.LittleEndian.AppendUint64(b, xxhash.Sum64(b[start:]))
}

// parseManifest decodes and checks a manifest file's bytes.
func parseManifest(b []byte) (*manifest, error) {
	const fixed = 8 + 4 + 4 + 8 + 4 + 4
	if len(b) < fixed+8 {
		return nil, fmt.Errorf("manifest of %d bytes", len(b))
	}
	if got, want := binary.LittleEndian.Uint64(b[len(b)-8:]), xxhash.Sum64(b[:len(b)-8]); got != want {
		return nil, fmt.Errorf("manifest checksum %016x, computed %016x", got, want)
	}
	if string(b[:8]) != manMagic {
		return nil, fmt.Errorf("not a revkv manifest (magic %q)", b[:8])
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != manVersion {
		return nil, fmt.Errorf("manifest format version %d, this build reads %d: %w", v, manVersion, snapshot.ErrVersion)
	}
	flags := binary.LittleEndian.Uint32(b[12:])
	if flags&^manClean != 0 {
		return nil, fmt.Errorf("unknown manifest flags %#x", flags)
	}
	m := &manifest{clean: flags&manClean != 0, id: binary.LittleEndian.Uint64(b[16:])}
	nseg, nsnap := binary.LittleEndian.Uint32(b[24:]), binary.LittleEndian.Uint32(b[28:])
	if m.id == 0 || nseg > maxManifestFiles || nsnap > maxManifestFiles ||
		len(b) != fixed+16*int(nseg)+8*int(nsnap)+8 {
		return nil, fmt.Errorf("manifest of %d bytes for %d segments and %d snapshots (store %x)", len(b), nseg, nsnap, m.id)
	}
	p := b[fixed:]
	for range nseg {
		s := segMark{num: binary.LittleEndian.Uint64(p), size: int64(binary.LittleEndian.Uint64(p[8:]))}
		if s.num == 0 || s.size < segHdrSize || (len(m.segs) > 0 && s.num <= m.segs[len(m.segs)-1].num) {
			return nil, fmt.Errorf("manifest lists segment %d of %d bytes out of order", s.num, s.size)
		}
		m.segs = append(m.segs, s)
		p = p[16:]
	}
	for range nsnap {
		n := binary.LittleEndian.Uint64(p)
		if n == 0 || (len(m.snaps) > 0 && n <= m.snaps[len(m.snaps)-1]) {
			return nil, fmt.Errorf("manifest lists snapshot %d out of order", n)
		}
		m.snaps = append(m.snaps, n)
		p = p[8:]
	}
	return m, nil
}

// readManifest reads dir's manifest; nil if there is none (a new
// directory, or one from before manifests). Damage is a *DamageError.
func readManifest(fsys persist.FS, dir string) (*manifest, error) {
	name := path.Join(dir, manifestName)
	f, err := fsys.Open(name)
	if persist.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("revkv/filelog: %w", err)
	}
	defer f.Close()
	size, err := f.Size()
	if err == nil && size > 32+16*maxManifestFiles {
		err = fmt.Errorf("manifest of %d bytes", size)
		return nil, &DamageError{File: name, Err: err}
	}
	var b []byte
	if err == nil {
		b = make([]byte, size)
		_, err = io.ReadFull(f, b)
	}
	if err != nil {
		return nil, fmt.Errorf("revkv/filelog: %s: %w", name, err)
	}
	m, err := parseManifest(b)
	if errors.Is(err, snapshot.ErrVersion) {
		// Written by a newer build: not damage, and nothing to repair.
		return nil, fmt.Errorf("revkv/filelog: %s: %w", name, err)
	}
	if err != nil {
		return nil, &DamageError{File: name, Err: err}
	}
	return m, nil
}

// writeManifest replaces dir's manifest with m, durably: a temporary file,
// synced, renamed over the old one, and the directory synced. A crash
// leaves the old manifest or the new one, whole.
func writeManifest(fsys persist.FS, dir string, m *manifest) error {
	name := path.Join(dir, manifestName)
	tmp := name + tmpSuffix
	f, err := fsys.Create(tmp)
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	_, err = f.Write(m.append(nil))
	if err == nil {
		err = f.Sync()
	}
	err = errors.Join(err, f.Close())
	if err == nil {
		err = fsys.Rename(tmp, name)
	}
	if err == nil {
		err = fsys.SyncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// newStoreID draws a store identity: random, never 0.
func newStoreID() uint64 {
	for {
		var b [8]byte
		rand.Read(b[:])
		if id := binary.LittleEndian.Uint64(b[:]); id != 0 {
			return id
		}
	}
}
