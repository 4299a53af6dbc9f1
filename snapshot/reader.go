package snapshot

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/cespare/xxhash/v2"
	"github.com/revkv/revkv/internal/zcodec"
	"github.com/revkv/revkv/kv"
)

// Reader reads a snapshot stream entry by entry. Its memory is one block
// (stored and decoded) plus the entry it returns (and, with ReadAhead,
// the chunks of entries decoded ahead). It checks each block's
// checksum before decoding it, and at the end the trailer: counts, body
// length and body checksum. It is not safe for concurrent use.
//
// Only Next's io.EOF says the whole stream was read and verified: a caller
// must not treat what it read as valid before that.
type Reader struct {
	r       io.Reader
	h       Header
	version uint32
	off     int64 // stream offset of the next unread byte
	blkOff  int64 // stream offset of the current block

	stored []byte
	body   []byte // decoded body of the current block
	pos    int    // next unread byte of body
	end    bool   // the end mark was read: no more blocks

	e Entry // returned by Next
	// keyBuf holds the last entry's key after ReuseKeys; nil before.
	keyBuf []byte
	// valBuf holds the last entry's value after ReuseValues; nil before.
	valBuf  []byte
	sum     *xxhash.Digest
	counts  Counts // as read
	trailer Counts
	lastRev int64
	events  bool
	leases  []Lease // the lease section as read so far
	// lastLeaseID is the highest lease ID granted, as read.
	lastLeaseID int64
	err         error // sticky
	// byteWise sends every entry through the general path (for tests that
	// check entryInBlock against it).
	byteWise bool
	// ahead is set by ReadAhead: entries then come from its goroutine.
	ahead *ahead
	// prepared is what ahead's Prepare made of the entry Next returned
	// last.
	prepared any
	// zd is the reader's own decoder, made at its first compressed block,
	// garbage with the reader (see zcodec.Decoder).
	zd *zcodec.Decoder
}

// NewReader reads and checks the header of the snapshot stream r.
func NewReader(r io.Reader) (*Reader, error) {
	sr := &Reader{r: r, sum: xxhash.New()}
	b := make([]byte, headerSize, headerSize+idSize)
	if err := sr.readFull(b, "header"); err != nil {
		return nil, err
	}
	h, size, err := parseHeader(b)
	if errors.Is(err, errShortHeader) {
		b = b[:size]
		if err := sr.readFull(b[headerSize:], "header"); err != nil {
			return nil, err
		}
		h, _, err = parseHeader(b)
	}
	if err != nil {
		return nil, err
	}
	sr.h = h
	sr.version = binary.LittleEndian.Uint32(b[8:])
	return sr, nil
}

// errShortHeader: parseHeader needs more bytes.
var errShortHeader = errors.New("revkv/snapshot: short header")

// parseHeader decodes and checks the header at the front of b and returns
// its size. errShortHeader means b holds too little of it (then size is
// how much the header takes, if b tells that already).
func parseHeader(b []byte) (h Header, size int, err error) {
	corrupt := func(off int64, format string, args ...any) error {
		return fmt.Errorf("revkv/snapshot: offset %d: %s: %w", off, fmt.Sprintf(format, args...), kv.ErrCorrupt)
	}
	if len(b) < 16 {
		return h, headerSize, errShortHeader
	}
	if string(b[:8]) != magic {
		return h, 0, corrupt(0, "not a revkv snapshot (magic %q)", b[:8])
	}
	flags := binary.LittleEndian.Uint32(b[12:])
	size = headerSize
	if flags&flagStoreID != 0 {
		size += idSize
	}
	if len(b) < size {
		return h, size, errShortHeader
	}
	if got, want := binary.LittleEndian.Uint64(b[size-8:]), xxhash.Sum64(b[:size-8]); got != want {
		return h, 0, corrupt(0, "header checksum %016x, computed %016x", got, want)
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v < minVersion || v > version {
		return h, 0, fmt.Errorf("revkv/snapshot: format version %d, this build reads %d to %d: %w", v, minVersion, version, ErrVersion)
	}
	if flags&^flagStoreID != 0 {
		return h, 0, corrupt(12, "unknown flags %#x", flags)
	}
	h = Header{
		Rev:             int64(binary.LittleEndian.Uint64(b[16:])),
		CompactRev:      int64(binary.LittleEndian.Uint64(b[24:])),
		ConsistentIndex: binary.LittleEndian.Uint64(b[32:]),
	}
	if flags&flagStoreID != 0 {
		h.StoreID = binary.LittleEndian.Uint64(b[40:])
		if h.StoreID == 0 {
			return h, 0, corrupt(40, "store identity 0 with flag %#x", flagStoreID)
		}
	}
	if h.Rev < 1 || h.CompactRev < -1 || h.CompactRev > h.Rev {
		return h, 0, corrupt(16, "revision %d with compacted revision %d", h.Rev, h.CompactRev)
	}
	return h, size, nil
}

// Header returns the snapshot's header.
func (sr *Reader) Header() Header { return sr.h }

// Counts returns the trailer's counts; they are known (and checked) only
// once Next has returned io.EOF.
func (sr *Reader) Counts() Counts { return sr.trailer }

// Offset returns the number of stream bytes read so far.
func (sr *Reader) Offset() int64 { return sr.off }

func (sr *Reader) corrupt(off int64, format string, args ...any) error {
	return fmt.Errorf("revkv/snapshot: offset %d: %s: %w", off, fmt.Sprintf(format, args...), kv.ErrCorrupt)
}

func (sr *Reader) readFull(b []byte, what string) error {
	n, err := io.ReadFull(sr.r, b)
	sr.off += int64(n)
	switch err {
	case nil:
		return nil
	case io.EOF, io.ErrUnexpectedEOF:
		return sr.corrupt(sr.off, "truncated in %s", what)
	default:
		return err
	}
}

// Next returns the next entry and whether it is an event (else a base
// entry). The Entry is reused by the next call, but its Key and Value are
// new each time: the caller may keep them (the Key only until the next
// call after ReuseKeys, the Value after ReuseValues). At the end of a stream whose
// trailer and checksums hold, Next returns io.EOF; any damage is an error
// wrapping kv.ErrCorrupt.
func (sr *Reader) Next() (e *Entry, event bool, err error) {
	if sr.err != nil {
		return nil, false, sr.err
	}
	sr.prepared = nil
	if sr.ahead != nil {
		e, event, err = sr.ahead.next(sr)
	} else {
		e, event, err = sr.next()
	}
	if err != nil {
		sr.err = err
	}
	return e, event, err
}

// Prepared returns what the Prepare of ReadAheadPrepared made of the entry
// the last call to Next returned: nil if none, or without ReadAheadPrepared.
func (sr *Reader) Prepared() any { return sr.prepared }

// ReuseKeys makes the Key of every Entry that Next returns from now on
// valid only until the next call to Next, which reads the next key into
// the same buffer: for a caller that copies the keys it keeps (or keeps
// them in a form of its own), one allocation per entry less. Values stay
// the caller's.
func (sr *Reader) ReuseKeys() {
	if sr.keyBuf == nil {
		sr.keyBuf = make([]byte, 0, 64)
	}
}

// ReuseValues is ReuseKeys for values: the Value of every Entry that Next
// returns from now on is valid only until the next call to Next (an empty
// value is nil, as without it). For a caller that copies the values it
// keeps, such as a store that holds a value in the same allocation as its
// key. The buffer grows to the largest value read.
func (sr *Reader) ReuseValues() {
	if sr.valBuf == nil {
		sr.valBuf = make([]byte, 0, 256)
	}
}

func (sr *Reader) next() (*Entry, bool, error) {
	tag, err := sr.ReadByte()
	// Lease entries are gathered for Leases, not returned.
	for err == nil && (tag == tagLease || tag == tagLastLease) {
		if tag == tagLease {
			err = sr.lease()
		} else {
			err = sr.lastLease()
		}
		if err == nil {
			tag, err = sr.ReadByte()
		}
	}
	if err == io.EOF {
		if err := sr.checkLeases(); err != nil {
			return nil, false, err
		}
		return nil, false, sr.finish()
	}
	if err != nil {
		return nil, false, err
	}
	if len(sr.leases) > 0 || sr.lastLeaseID != 0 {
		return nil, false, sr.bodyCorrupt("entry after leases")
	}
	var event bool
	switch tag {
	case tagBase:
		if sr.events {
			return nil, false, sr.bodyCorrupt("base entry after events")
		}
		sr.counts.Base++
	case tagEvent:
		event = true
		sr.events = true
		sr.counts.Events++
	default:
		return nil, false, sr.bodyCorrupt("bad entry tag %#x", tag)
	}
	e, err := sr.entry()
	if err != nil {
		return nil, false, err
	}
	if event && e.Main != sr.lastRev {
		sr.counts.Revisions++
		sr.lastRev = e.Main
	}
	return e, event, nil
}

func (sr *Reader) bodyCorrupt(format string, args ...any) error {
	return sr.corrupt(sr.blkOff, "body byte %d of block: %s", sr.pos, fmt.Sprintf(format, args...))
}

// ReadByte returns the next body byte, reading blocks as needed; io.EOF at
// the end mark.
func (sr *Reader) ReadByte() (byte, error) {
	for sr.pos == len(sr.body) {
		if sr.end {
			return 0, io.EOF
		}
		if err := sr.readBlock(); err != nil {
			return 0, err
		}
	}
	c := sr.body[sr.pos]
	sr.pos++
	return c, nil
}

// readBody fills p from the body; running out is corruption.
func (sr *Reader) readBody(p []byte) error {
	for len(p) > 0 {
		if sr.pos == len(sr.body) {
			if sr.end {
				return sr.bodyCorrupt("entry cut by the end of the body")
			}
			if err := sr.readBlock(); err != nil {
				return err
			}
			continue
		}
		n := copy(p, sr.body[sr.pos:])
		sr.pos += n
		p = p[n:]
	}
	return nil
}

func (sr *Reader) readBlock() error {
	sr.blkOff = sr.off
	var h [blockHdr]byte
	if err := sr.readFull(h[:8], "block header"); err != nil {
		return err
	}
	n, m := binary.LittleEndian.Uint32(h[:]), binary.LittleEndian.Uint32(h[4:])
	if n == 0 && m == 0 {
		sr.end = true
		sr.body, sr.pos = sr.body[:0], 0
		return nil
	}
	if m == 0 || m > BlockSize || n == 0 || n > m {
		return sr.corrupt(sr.blkOff, "block of %d stored bytes for %d body bytes", n, m)
	}
	if err := sr.readFull(h[8:], "block header"); err != nil {
		return err
	}
	if cap(sr.stored) < int(n) {
		sr.stored = make([]byte, n)
	}
	sr.stored = sr.stored[:n]
	if err := sr.readFull(sr.stored, "block"); err != nil {
		return err
	}
	d := xxhash.New()
	d.Write(h[:8])
	d.Write(sr.stored)
	if got, want := binary.LittleEndian.Uint64(h[8:]), d.Sum64(); got != want {
		return sr.corrupt(sr.blkOff, "block checksum %016x, computed %016x", want, got)
	}
	if n == m {
		sr.body = append(sr.body[:0], sr.stored...)
	} else {
		if sr.zd == nil {
			sr.zd = zcodec.NewDecoder()
		}
		body, err := sr.zd.AppendDecode(sr.body[:0], sr.stored, int(m))
		if err != nil {
			return sr.corrupt(sr.blkOff, "block: %v", err)
		}
		sr.body = body
	}
	sr.pos = 0
	sr.sum.Write(sr.body)
	sr.counts.BodySize += uint64(m)
	return nil
}

func (sr *Reader) uvarint() (uint64, error) {
	v, err := binary.ReadUvarint(sr)
	switch {
	case err == io.EOF:
		return 0, sr.bodyCorrupt("entry cut by the end of the body")
	case err != nil && errors.Is(err, kv.ErrCorrupt):
		return 0, err
	case err != nil:
		return 0, sr.bodyCorrupt("bad varint")
	}
	return v, nil
}

func (sr *Reader) varint() (int64, error) {
	u, err := sr.uvarint() // zig-zag, as binary.AppendVarint writes it
	return int64(u>>1) ^ -int64(u&1), err
}

func (sr *Reader) bytes(limit int) ([]byte, error) {
	n, err := sr.uvarint()
	if err != nil {
		return nil, err
	}
	if n > uint64(limit) {
		return nil, sr.bodyCorrupt("length %d over limit %d", n, limit)
	}
	if n == 0 {
		return nil, nil
	}
	b := make([]byte, n)
	return b, sr.readBody(b)
}

// bytesInto is bytes into buf's spare room, grown as needed.
func (sr *Reader) bytesInto(buf []byte, limit int) ([]byte, error) {
	n, err := sr.uvarint()
	if err != nil {
		return buf, err
	}
	if n > uint64(limit) {
		return buf, sr.bodyCorrupt("length %d over limit %d", n, limit)
	}
	buf = slices.Grow(buf, int(n))[:n]
	return buf, sr.readBody(buf)
}

func (sr *Reader) entry() (*Entry, error) {
	if !sr.byteWise {
		if e := sr.entryInBlock(); e != nil {
			return e, nil
		}
	}
	flags, err := sr.ReadByte()
	if err != nil {
		return nil, sr.bodyCorrupt("entry cut by the end of the body")
	}
	if flags > 1 {
		return nil, sr.bodyCorrupt("bad entry flags %#x", flags)
	}
	e := &sr.e
	*e = Entry{Delete: flags == 1}
	if sr.keyBuf != nil {
		sr.keyBuf, err = sr.bytesInto(sr.keyBuf[:0], kv.MaxKeySize)
		e.Key = sr.keyBuf
	} else {
		e.Key, err = sr.bytes(kv.MaxKeySize)
	}
	if err != nil {
		return nil, err
	}
	if len(e.Key) == 0 {
		return nil, sr.bodyCorrupt("empty key")
	}
	if e.Main, err = sr.varint(); err != nil {
		return nil, err
	}
	if e.Sub, err = sr.varint(); err != nil {
		return nil, err
	}
	if e.Delete {
		return e, nil
	}
	for _, p := range []*int64{&e.Create, &e.Version, &e.Lease} {
		if *p, err = sr.varint(); err != nil {
			return nil, err
		}
	}
	if e.Version < 1 {
		return nil, sr.bodyCorrupt("put of %q with version %d", e.Key, e.Version)
	}
	if sr.valBuf == nil {
		e.Value, err = sr.bytes(kv.MaxValueSize)
		return e, err
	}
	sr.valBuf, err = sr.bytesInto(sr.valBuf[:0], kv.MaxValueSize)
	if len(sr.valBuf) > 0 {
		e.Value = sr.valBuf
	}
	return e, err
}

// finish reads and checks the trailer after the end mark.
func (sr *Reader) finish() error {
	start := sr.off
	var b [trailerSize]byte
	if err := sr.readFull(b[:], "trailer"); err != nil {
		return err
	}
	if got, want := binary.LittleEndian.Uint64(b[48:]), xxhash.Sum64(b[:48]); got != want {
		return sr.corrupt(start, "trailer checksum %016x, computed %016x", got, want)
	}
	var v [6]uint64
	for i := range v {
		v[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	t := Counts{Base: v[0], Events: v[1], Revisions: v[2], Keys: v[3], BodySize: v[4]}
	c := sr.counts
	if t.Base != c.Base || t.Events != c.Events || t.Revisions != c.Revisions || t.BodySize != c.BodySize {
		return sr.corrupt(start, "trailer counts %+v, read %+v", t, c)
	}
	if got := sr.sum.Sum64(); got != v[5] {
		return sr.corrupt(start, "body checksum %016x, computed %016x", v[5], got)
	}
	sr.trailer = t
	return io.EOF
}

// entryInBlock decodes the entry at the read position straight from the
// block's bytes, without the general path's byte-at-a-time reads, if the
// entry lies whole in the current block and reads as valid; its Key and
// Value then point into the block under ReuseKeys and ReuseValues (valid
// until the next call to Next, which is when the block's buffer may be
// read into again), and are copies otherwise. On anything else (an entry
// that goes on in the next block, a bad flag, varint or length) it reads
// nothing and returns nil, and the general path reads the entry and says
// what is wrong with it: both paths accept the same entries and report
// the same errors.
func (sr *Reader) entryInBlock() *Entry {
	b := sr.body[sr.pos:]
	if len(b) == 0 || b[0] > 1 {
		return nil
	}
	del := b[0] == 1
	i := 1
	key, i, ok := lenBytes(b, i, kv.MaxKeySize)
	if !ok || len(key) == 0 {
		return nil
	}
	var v [5]int64 // main, sub; for puts create, version, lease
	nv := 5
	if del {
		nv = 2
	}
	for j := range nv {
		u, n := binary.Uvarint(b[i:])
		if n <= 0 {
			return nil
		}
		i += n
		v[j] = int64(u>>1) ^ -int64(u&1) // zig-zag, as binary.AppendVarint writes it
	}
	var val []byte
	if !del {
		if v[3] < 1 {
			return nil
		}
		if val, i, ok = lenBytes(b, i, kv.MaxValueSize); !ok {
			return nil
		}
	}
	e := &sr.e
	*e = Entry{Key: key, Main: v[0], Sub: v[1], Create: v[2], Version: v[3], Lease: v[4], Delete: del}
	if sr.keyBuf == nil {
		e.Key = slices.Clone(key)
	}
	switch {
	case len(val) == 0:
		e.Value = nil
	case sr.valBuf == nil:
		e.Value = slices.Clone(val)
	default:
		e.Value = val
	}
	sr.pos += i
	return e
}

// lenBytes reads a uvarint length at b[i:] and that many bytes after it
// (clipped, so that an append to them cannot write into b), and returns
// the offset past them; false if they are not all in b, or the length is
// over limit or not a valid varint.
func lenBytes(b []byte, i, limit int) ([]byte, int, bool) {
	n, w := binary.Uvarint(b[i:])
	if w <= 0 || n > uint64(limit) || n > uint64(len(b)-i-w) {
		return nil, i, false
	}
	i += w
	end := i + int(n)
	return b[i:end:end], end, true
}
