package filelog

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"path"

	"github.com/revkv/revkv/persist"
)

// DamageError is the error for a damaged log segment or snapshot: it names
// the file and the offset of the damaged frame (or block), and wraps
// ErrCorrupt.
type DamageError struct {
	File   string
	Offset int64
	Err    error // what is wrong
}

// Error names the file, the offset and the damage.
func (e *DamageError) Error() string {
	return fmt.Sprintf("revkv/filelog: %s at offset %d: %v", e.File, e.Offset, e.Err)
}

// Unwrap returns ErrCorrupt and the cause.
func (e *DamageError) Unwrap() []error { return []error{ErrCorrupt, e.Err} }

// scanResult is what scanning a segment found.
type scanResult struct {
	cover coverage
	// end is the offset after the last whole group; torn says the bytes
	// after it are a torn tail (only in the last segment).
	end  int64
	torn bool
	// batches and frames read, and the raw (uncompressed) bytes of the
	// frames.
	batches, frames int
	raw             int64
	firstRev        int64 // of the first batch; 0 if none
}

// maxGroup bounds the raw bytes of one group: the flusher takes at most
// maxQueue bytes of batches, plus the one that overflowed it.
const maxGroup = maxQueue + maxPending

// scanSegment reads segment num of dir and calls fn for each batch of each
// whole group, in order, with the offset of the group's first frame. In
// the last segment, a frame cut short by the end of the file, or zeros to
// the end, is a torn tail: scanning stops there and reports it. Any other
// damage is a *DamageError. An error from fn is returned wrapped with the
// file and offset.
func scanSegment(fsys persist.FS, dir string, num uint64, last bool, fn func(b *persist.Batch, off int64) error) (res scanResult, err error) {
	name := path.Join(dir, segFile(num))
	f, err := fsys.Open(name)
	if err != nil {
		return res, fmt.Errorf("revkv/filelog: %w", err)
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return res, fmt.Errorf("revkv/filelog: %s: %w", name, err)
	}
	r := bufio.NewReaderSize(f, 256<<10)
	damage := func(off int64, format string, args ...any) error {
		return &DamageError{File: name, Offset: off, Err: fmt.Errorf(format, args...)}
	}
	// tornAt says whether the bytes from off on are a torn tail: the last
	// segment, and either cut short (the caller knows) or all zeros.
	zerosFrom := func(off int64) bool {
		if !last {
			return false
		}
		buf := make([]byte, 32<<10)
		for off < size {
			n, err := f.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
			for _, c := range buf[:n] {
				if c != 0 {
					return false
				}
			}
			if err != nil && !errors.Is(err, io.EOF) {
				return false
			}
			off += int64(n)
		}
		return true
	}

	hdr := make([]byte, segHdrSize)
	if size < segHdrSize {
		if last {
			return scanResult{end: 0, torn: true}, nil
		}
		return res, damage(0, "segment of %d bytes, shorter than its header", size)
	}
	if _, err := io.ReadFull(r, hdr); err != nil {
		return res, fmt.Errorf("revkv/filelog: %s: %w", name, err)
	}
	if got, err := checkSegHeader(hdr); err != nil {
		if zerosFrom(0) {
			return scanResult{end: 0, torn: true}, nil
		}
		return res, damage(0, "%v", err)
	} else if got != num {
		return res, damage(0, "segment header says number %d", got)
	}

	off := int64(segHdrSize)
	res.end = off
	groupStart := off
	var group, buf []byte
	fh := make([]byte, frameHdrSize)
	var stored []byte
	for off < size {
		if size-off < frameHdrSize {
			if last {
				res.torn = true
				return res, nil
			}
			return res, damage(off, "frame header cut by the end of the segment")
		}
		if _, err := io.ReadFull(r, fh); err != nil {
			return res, fmt.Errorf("revkv/filelog: %s: %w", name, err)
		}
		h, err := parseFrameHeader(fh)
		if err != nil {
			if zerosFrom(off) {
				res.torn = true
				return res, nil
			}
			return res, damage(off, "%v", err)
		}
		if int64(h.stored) > size-off-frameHdrSize {
			if last {
				res.torn = true
				return res, nil
			}
			return res, damage(off, "frame of %d bytes past the end of the segment", h.stored)
		}
		if cap(stored) < h.stored {
			stored = make([]byte, h.stored)
		}
		stored = stored[:h.stored]
		if _, err := io.ReadFull(r, stored); err != nil {
			return res, fmt.Errorf("revkv/filelog: %s: %w", name, err)
		}
		raw, err := decodeFrame(h, stored, buf)
		if err != nil {
			return res, damage(off, "%v", err)
		}
		if h.flags&flagCompressed != 0 {
			buf = raw
		}
		res.frames++
		res.raw += int64(h.raw)
		off += frameHdrSize + int64(h.stored)
		if len(group)+len(raw) > maxGroup {
			return res, damage(groupStart, "group of more than %d bytes", maxGroup)
		}
		group = append(group, raw...)
		if h.flags&flagContinued != 0 {
			continue
		}
		d := batchDecoder{b: group}
		for d.off < len(d.b) {
			b, err := d.next()
			if errors.Is(err, errShort) {
				return res, damage(groupStart, "batch cut by the end of its group")
			}
			if err != nil {
				return res, damage(groupStart, "%v", err)
			}
			if err := fn(b, groupStart); err != nil {
				return res, fmt.Errorf("revkv/filelog: %s at offset %d: %w", name, groupStart, err)
			}
			if res.batches == 0 {
				res.firstRev = b.Rev
			}
			res.cover.add(b)
			res.batches++
		}
		if cap(group) > 4*maxQueue {
			group = nil
		}
		group = group[:0]
		groupStart = off
		res.end = off
	}
	if len(group) > 0 {
		// The last group's final frame is missing.
		if last {
			res.torn = true
			return res, nil
		}
		return res, damage(groupStart, "group cut by the end of the segment")
	}
	return res, nil
}
