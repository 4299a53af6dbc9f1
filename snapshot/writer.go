package snapshot

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/cespare/xxhash/v2"
	"github.com/revkv/revkv/internal/zcodec"
)

// Writer writes a snapshot stream. Its memory is one block, the largest
// entry and a zstd encoder (about 3 MB), all garbage with the Writer. It is not safe for concurrent use.
type Writer struct {
	w       io.Writer
	written int64
	err     error // sticky: the first error from w

	block   []byte // body bytes not yet written, at most BlockSize
	stored  []byte
	scratch []byte
	body    *xxhash.Digest
	counts  Counts
	lastRev int64 // main revision of the last event
	events  bool  // an event was added: no more base entries
	// leases says a lease was added: no more base entries or events.
	leases      bool
	lastLease   int64 // ID of the last lease added
	lastLeaseID int64 // as given to LastLeaseID
	done        bool
	// enc is made at the first block and goes with the Writer: no
	// encoder outlives the snapshots being written.
	enc *zcodec.Encoder
}

// NewWriter writes the header for h to w and returns a Writer for the
// entries. h must describe a possible store: Rev >= 1 and
// -1 <= CompactRev <= Rev.
func NewWriter(w io.Writer, h Header) (*Writer, error) {
	if h.Rev < 1 || h.CompactRev < -1 || h.CompactRev > h.Rev {
		return nil, fmt.Errorf("revkv/snapshot: header with revision %d, compacted %d", h.Rev, h.CompactRev)
	}
	sw := &Writer{w: w, block: make([]byte, 0, BlockSize), body: xxhash.New()}
	sw.write(appendHeader(make([]byte, 0, headerSize+idSize), h))
	return sw, sw.err
}

// appendHeader appends h's header: with a store identity (flag 1) if h has
// one.
func appendHeader(b []byte, h Header) []byte {
	start := len(b)
	var flags uint32
	if h.StoreID != 0 {
		flags |= flagStoreID
	}
	b = append(b, magic...)
	b = binary.LittleEndian.AppendUint32(b, version)
	b = binary.LittleEndian.AppendUint32(b, flags)
	b = binary.LittleEndian.AppendUint64(b, uint64(h.Rev))
	b = binary.LittleEndian.AppendUint64(b, uint64(h.CompactRev))
	b = binary.LittleEndian.AppendUint64(b, h.ConsistentIndex)
	if h.StoreID != 0 {
		b = binary.LittleEndian.AppendUint64(b, h.StoreID)
	}
	return binary.LittleEndian.AppendUint64(b, xxhash.Sum64(b[start:]))
}

// WithStoreID returns a writer that passes a snapshot stream on to w with
// its header rewritten to carry the store identity id (replacing any it
// had; 0 removes it), and everything after the header unchanged: the
// blocks' and trailer's checksums do not cover the header, so the stream
// stays valid. A stream whose header does not check is an error wrapping
// kv.ErrCorrupt (or ErrVersion) from Write. File persisters write their
// snapshots (and snapshots they import) through it.
func WithStoreID(w io.Writer, id uint64) io.Writer {
	return &idWriter{w: w, id: id}
}

type idWriter struct {
	w    io.Writer
	id   uint64
	head []byte // header bytes gathered so far; nil once written
	done bool
}

func (iw *idWriter) Write(p []byte) (int, error) {
	if iw.done {
		return iw.w.Write(p)
	}
	n := len(p)
	iw.head = append(iw.head, p...)
	h, size, err := parseHeader(iw.head)
	if errors.Is(err, errShortHeader) {
		return n, nil // more to come
	}
	if err != nil {
		return 0, err
	}
	h.StoreID = iw.id
	rest := iw.head[size:]
	iw.done = true
	if _, err := iw.w.Write(appendHeader(nil, h)); err != nil {
		return 0, err
	}
	if len(rest) > 0 {
		if _, err := iw.w.Write(rest); err != nil {
			return 0, err
		}
	}
	iw.head = nil
	return n, nil
}

func (sw *Writer) write(p []byte) {
	if sw.err != nil {
		return
	}
	n, err := sw.w.Write(p)
	sw.written += int64(n)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	sw.err = err
}

// Written returns the number of bytes written to the underlying writer so
// far.
func (sw *Writer) Written() int64 { return sw.written }

// Base adds a base entry: a key live at the compacted revision. Base
// entries come before every event, in increasing key order.
func (sw *Writer) Base(e *Entry) error {
	if sw.events || sw.leases {
		return errors.New("revkv/snapshot: base entry after events or leases")
	}
	sw.counts.Base++
	return sw.add(tagBase, e)
}

// Event adds an event, in revision then sub-revision order.
func (sw *Writer) Event(e *Entry) error {
	if sw.leases {
		return errors.New("revkv/snapshot: event after leases")
	}
	sw.events = true
	sw.counts.Events++
	if e.Main != sw.lastRev {
		sw.counts.Revisions++
		sw.lastRev = e.Main
	}
	return sw.add(tagEvent, e)
}

func (sw *Writer) add(tag byte, e *Entry) error {
	if sw.done {
		return errors.New("revkv/snapshot: write after Finish")
	}
	sw.scratch = AppendEntry(append(sw.scratch[:0], tag), e)
	sw.appendBody(sw.scratch)
	if cap(sw.scratch) > 4*BlockSize {
		sw.scratch = nil // do not keep one huge value's buffer
	}
	return sw.err
}

// appendBody adds p to the body, writing blocks as they fill.
func (sw *Writer) appendBody(p []byte) {
	sw.body.Write(p)
	sw.counts.BodySize += uint64(len(p))
	for len(p) > 0 && sw.err == nil {
		n := copy(sw.block[len(sw.block):BlockSize], p)
		sw.block = sw.block[:len(sw.block)+n]
		p = p[n:]
		if len(sw.block) == BlockSize {
			sw.flushBlock()
		}
	}
}

func (sw *Writer) flushBlock() {
	if len(sw.block) == 0 {
		return
	}
	sw.stored = binary.LittleEndian.AppendUint32(sw.stored[:0], 0)
	sw.stored = binary.LittleEndian.AppendUint32(sw.stored, uint32(len(sw.block)))
	sw.stored = append(sw.stored, make([]byte, 8)...)
	if sw.enc == nil {
		sw.enc = zcodec.NewEncoder(zcodec.Small)
	}
	sw.stored = sw.enc.Encode(sw.stored, sw.block)
	if len(sw.stored)-blockHdr >= len(sw.block) {
		sw.stored = append(sw.stored[:blockHdr], sw.block...)
	}
	binary.LittleEndian.PutUint32(sw.stored, uint32(len(sw.stored)-blockHdr))
	sum := xxhash.New()
	sum.Write(sw.stored[:8])
	sum.Write(sw.stored[blockHdr:])
	binary.LittleEndian.PutUint64(sw.stored[8:], sum.Sum64())
	sw.write(sw.stored)
	sw.block = sw.block[:0]
}

// Finish writes the last block, the end mark and the trailer, which records
// keys as the number of keys live at the snapshot's revision. The Writer
// must not be used after.
func (sw *Writer) Finish(keys uint64) error {
	if sw.done {
		return errors.New("revkv/snapshot: Finish called twice")
	}
	sw.done = true
	sw.flushBlock()
	sw.counts.Keys = keys
	b := make([]byte, 8, 8+trailerSize)
	b = appendTrailer(b, sw.counts, sw.body.Sum64())
	sw.write(b)
	return sw.err
}

func appendTrailer(b []byte, c Counts, bodySum uint64) []byte {
	start := len(b)
	for _, v := range []uint64{c.Base, c.Events, c.Revisions, c.Keys, c.BodySize, bodySum} {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	return binary.LittleEndian.AppendUint64(b, xxhash.Sum64(b[start:]))
}
