package filelog

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"

	"github.com/revkv/revkv/kv"
	"github.com/revkv/revkv/persist"
	"github.com/revkv/revkv/snapshot"
)

// DamageError is the error for a damaged log segment or snapshot: it names
// the file and the offset of the damaged frame (or block), and wraps
// kv.ErrCorrupt.
type DamageError struct {
	File   string
	Offset int64
	Err    error // what is wrong
}

// Error names the file, the offset and the damage.
func (e *DamageError) Error() string {
	return fmt.Sprintf("revkv/filelog: %s at offset %d: %v", e.File, e.Offset, e.Err)
}

// Unwrap returns kv.ErrCorrupt and the cause.
func (e *DamageError) Unwrap() []error { return []error{kv.ErrCorrupt, e.Err} }

// scanResult is what scanning a segment found.
type scanResult struct {
	cover coverage
	// end is the offset after the last whole group; torn says the bytes
	// after it are a torn tail (only in the last segment).
	end  int64
	torn bool
	id   uint64 // the store identity in the header (0: none)
	hdr  int64  // the header's size
	size int64  // of the file
	// batches and frames read, and the raw (uncompressed) bytes of the
	// frames.
	batches, frames int
	raw             int64
	firstRev        int64 // of the first batch; 0 if none
}

// maxGroup bounds the raw bytes of one group: the flusher takes at most
// maxQueue bytes of batches, plus the one that overflowed it.
const maxGroup = maxQueue + maxPending

// tailRule says where a segment may end in a torn tail: the torn-tail rule
// of the package doc, applied by torn.
type tailRule struct {
	last bool // the last segment: the only one that may
	// durable is how far the segment is known synced (from the manifest):
	// a fault before it is damage, whatever follows.
	durable int64
}

// fault is a frame (or header, or group) that does not check.
type fault struct {
	off int64 // where the bad frame starts
	// end is where its bytes end: what it claims (the header alone if the
	// header is bad), or the end of the file if cut short.
	end int64
	// checked: its checksums held, so it was written whole and a torn
	// write cannot explain it.
	checked bool
	// hole: its frame header is all zeros, a page the filesystem never
	// got (writeback is not in write order) rather than a flipped byte.
	hole bool
	err  error
}

// torn reports whether a fault at the first byte after cut (the end of the
// last whole group) is a torn tail: in the last segment, past what is
// known durable, a write that did not finish, and either a hole (whatever
// follows it: nothing past the mark was promised by a sync that
// completed) or nothing but zeros after it.
func (r tailRule) torn(cut int64, flt fault, zerosFrom func(int64) bool) bool {
	return r.last && cut >= r.durable && !flt.checked && (flt.hole || zerosFrom(flt.end))
}

// scanSegment reads segment num of dir and calls fn for each batch of each
// whole group, in order, with the offset of the group's first frame. A
// fault the rule calls a torn tail ends the scan (res.torn, res.end is
// where it starts); any other is a *DamageError. An error from fn is
// returned wrapped with the file and offset. fn keeps nothing of a batch
// past its call: the batch and its slices are reused for the next.
func scanSegment(fsys persist.FS, dir string, num uint64, rule tailRule, fn func(b *persist.Batch, off int64) error) (res scanResult, err error) {
	name := path.Join(dir, segFile(num))
	f, err := fsys.Open(name)
	if err != nil {
		return res, fmt.Errorf("revkv/filelog: %w", err)
	}
	defer f.Close()
	fr, err := newFrameReader(f, name)
	if err != nil {
		return res, err
	}
	res.size = fr.size
	judge := func(flt fault) error {
		if rule.torn(res.end, flt, fr.zerosFrom) {
			res.torn = true
			return nil
		}
		return &DamageError{File: name, Offset: flt.off, Err: flt.err}
	}

	h, flt, err := fr.header()
	if err != nil {
		return res, err
	}
	if flt != nil {
		return res, judge(*flt)
	}
	if h.num != num {
		return res, &DamageError{File: name, Err: fmt.Errorf("segment header says number %d", h.num)}
	}
	res.id, res.hdr = h.id, h.size
	res.end = h.size
	groupStart := res.end
	var group []byte
	d := batchDecoder{reuse: true} // fn keeps nothing of a batch past its call
	for {
		fh, raw, flt, err := fr.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return res, err
		}
		if flt != nil {
			return res, judge(*flt)
		}
		res.frames++
		res.raw += int64(fh.raw)
		if len(group)+len(raw) > maxGroup {
			return res, &DamageError{File: name, Offset: groupStart, Err: fmt.Errorf("group of more than %d bytes", maxGroup)}
		}
		group = append(group, raw...)
		if fh.flags&flagContinued != 0 {
			continue
		}
		if err := decodeGroup(&d, group, &res, func(b *persist.Batch) error { return fn(b, groupStart) }); err != nil {
			return res, wrapAt(err, name, groupStart)
		}
		if cap(group) > 4*maxQueue {
			group = nil
		}
		group = group[:0]
		groupStart = fr.off
		res.end = fr.off
	}
	if len(group) > 0 { // the last group's final frame is missing
		return res, judge(fault{off: groupStart, end: fr.size, err: errors.New("group cut by the end of the segment")})
	}
	return res, nil
}

// errDecode marks a batch that does not decode from a group whose frames
// all checked: damage, never a torn write.
type errDecode struct{ err error }

func (e errDecode) Error() string { return e.err.Error() }

// decodeGroup decodes the batches of one whole group with d and hands
// each to fn, counting them in res.
func decodeGroup(d *batchDecoder, group []byte, res *scanResult, fn func(b *persist.Batch) error) error {
	d.b, d.off = group, 0
	for d.off < len(d.b) {
		b, err := d.next()
		if errors.Is(err, errShort) {
			return errDecode{errors.New("batch cut by the end of its group")}
		}
		if err != nil {
			return errDecode{err}
		}
		if err := fn(b); err != nil {
			return err
		}
		if res.batches == 0 {
			res.firstRev = b.Rev
		}
		res.cover.add(b)
		res.batches++
	}
	return nil
}

// wrapAt names the file and offset in an error from decoding or applying
// a group.
func wrapAt(err error, name string, off int64) error {
	var de errDecode
	if errors.As(err, &de) {
		return &DamageError{File: name, Offset: off, Err: de.err}
	}
	return fmt.Errorf("revkv/filelog: %s at offset %d: %w", name, off, err)
}

// frameReader reads a segment's header and frames in order, and says how
// each one that does not check is bad; what that means is tailRule's
// decision, not its.
type frameReader struct {
	f    persist.File
	r    *bufio.Reader
	name string
	size int64
	off  int64 // of the next unread byte

	fh          []byte
	stored, buf []byte
}

func newFrameReader(f persist.File, name string) (*frameReader, error) {
	size, err := f.Size()
	if err != nil {
		return nil, fmt.Errorf("revkv/filelog: %s: %w", name, err)
	}
	return &frameReader{f: f, r: bufio.NewReaderSize(f, 256<<10), name: name, size: size, fh: make([]byte, frameHdrSize)}, nil
}

func (fr *frameReader) read(b []byte) error {
	if _, err := io.ReadFull(fr.r, b); err != nil {
		return fmt.Errorf("revkv/filelog: %s: %w", fr.name, err)
	}
	fr.off += int64(len(b))
	return nil
}

// header reads the segment header.
func (fr *frameReader) header() (segHeader, *fault, error) {
	b := make([]byte, min(fr.size, maxSegHdr))
	if err := fr.read(b); err != nil {
		return segHeader{}, nil, err
	}
	h, err := parseSegHeader(b)
	if errors.Is(err, errShortHeader) {
		return h, &fault{end: fr.size, err: fmt.Errorf("segment of %d bytes, shorter than its header", fr.size)}, nil
	}
	if errors.Is(err, snapshot.ErrVersion) {
		// Its checksum holds: written by a newer build, not damage, and
		// never a torn tail to cut.
		return h, nil, fmt.Errorf("revkv/filelog: %s: %w", fr.name, err)
	}
	if err != nil {
		return h, &fault{end: int64(len(b)), err: err}, nil
	}
	fr.off = h.size
	fr.r.Reset(io.NewSectionReader(fr.f, h.size, fr.size-h.size))
	return h, nil, nil
}

// next reads the next frame and returns its header and raw bytes (valid
// until the next call); io.EOF at the end of the file.
func (fr *frameReader) next() (frameHeader, []byte, *fault, error) {
	off := fr.off
	if off >= fr.size {
		return frameHeader{}, nil, nil, io.EOF
	}
	if fr.size-off < frameHdrSize {
		return frameHeader{}, nil, &fault{off: off, end: fr.size, err: errors.New("frame header cut by the end of the segment")}, nil
	}
	if err := fr.read(fr.fh); err != nil {
		return frameHeader{}, nil, nil, err
	}
	h, err := parseFrameHeader(fr.fh)
	if err != nil {
		hole := !slices.ContainsFunc(fr.fh, func(c byte) bool { return c != 0 })
		return h, nil, &fault{off: off, end: off + frameHdrSize, hole: hole, err: err}, nil
	}
	end := off + frameHdrSize + int64(h.stored)
	if end > fr.size {
		return h, nil, &fault{off: off, end: fr.size, err: fmt.Errorf("frame of %d bytes past the end of the segment", h.stored)}, nil
	}
	if cap(fr.stored) < h.stored {
		fr.stored = make([]byte, h.stored)
	}
	fr.stored = fr.stored[:h.stored]
	if err := fr.read(fr.stored); err != nil {
		return h, nil, nil, err
	}
	if err := checkFrame(h, fr.stored); err != nil {
		return h, nil, &fault{off: off, end: end, err: err}, nil
	}
	if h.flags&flagCompressed != 0 && cap(fr.buf) < FrameSize {
		// Every frame the log writes fits: one buffer for the scan.
		// (Decode takes only what the frame holds of its capacity, so
		// keeping what it returns would shrink the buffer.)
		fr.buf = make([]byte, 0, FrameSize)
	}
	raw, err := decodeFrame(h, fr.stored, fr.buf)
	if err != nil {
		return h, nil, &fault{off: off, end: end, checked: true, err: err}, nil
	}
	return h, raw, nil, nil
}

// zerosFrom reports whether the file holds only zeros from off to its end.
func (fr *frameReader) zerosFrom(off int64) bool {
	buf := make([]byte, 32<<10)
	for off < fr.size {
		n, err := fr.f.ReadAt(buf[:min(int64(len(buf)), fr.size-off)], off)
		for _, c := range buf[:n] {
			if c != 0 {
				return false
			}
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return false
		}
		if n == 0 {
			return false
		}
		off += int64(n)
	}
	return true
}
