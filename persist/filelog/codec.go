package filelog

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cespare/xxhash/v2"
	"github.com/revkv/revkv/internal/zcodec"
	"github.com/revkv/revkv/kv"
	"github.com/revkv/revkv/persist"
	"github.com/revkv/revkv/snapshot"
)

const (
	segMagic = "revkvlog"
	// segVersion 2 adds batches of kind 'L' (leases); a version 1
	// segment, which has none, is read as it is.
	segVersion    = 2
	minSegVersion = 1
	segHdrSize    = 32 // without a store identity
	segIDSize     = 8
	// segFlagStoreID: the header carries the store's identity.
	segFlagStoreID = 1
	// maxSegHdr is the largest header.
	maxSegHdr = segHdrSize + segIDSize

	frameHdrSize = 24
	// FrameSize is the most raw bytes one frame holds.
	FrameSize = 1 << 20

	flagCompressed = 1
	flagContinued  = 2

	kindChanges = 'C'
	kindCompact = 'K'
	kindIndex   = 'I'
	// kindLeases is a batch with lease changes: changes (maybe none), then
	// the lease changes.
	kindLeases = 'L'

	// maxPending bounds the raw bytes of a batch still being read across
	// frames: one revision's changes (kv.MaxBatchSize counts 32 bytes per
	// change, more than its encoding needs) plus a batch header.
	maxPending = kv.MaxBatchSize + 64
)

// errShort says a batch is not whole yet: its bytes go on in the next frame.
var errShort = errors.New("short batch")

// segHeader is a decoded segment header.
type segHeader struct {
	num  uint64
	id   uint64 // the store's identity; 0 in a segment written before identities
	size int64  // of the header: segHdrSize, plus segIDSize with an identity
}

// appendSegHeader appends the header of segment num of store id (with the
// identity flag, unless id is 0).
func appendSegHeader(b []byte, num, id uint64) []byte {
	start := len(b)
	var flags uint32
	if id != 0 {
		flags |= segFlagStoreID
	}
	b = append(b, segMagic...)
	b = binary.LittleEndian.AppendUint32(b, segVersion)
	b = binary.LittleEndian.AppendUint32(b, flags)
	b = binary.LittleEndian.AppendUint64(b, num)
	if id != 0 {
		b = binary.LittleEndian.AppendUint64(b, id)
	}
	return binary.LittleEndian.AppendUint64(b, xxhash.Sum64(b[start:]))
}

// errShortHeader: the bytes end inside a header.
var errShortHeader = errors.New("short segment header")

// parseSegHeader checks the segment header at the front of b.
// errShortHeader means b ends inside it.
func parseSegHeader(b []byte) (segHeader, error) {
	if len(b) < 16 {
		return segHeader{}, errShortHeader
	}
	if string(b[:8]) != segMagic {
		return segHeader{}, fmt.Errorf("not a revkv log segment (magic %q)", b[:8])
	}
	flags := binary.LittleEndian.Uint32(b[12:])
	h := segHeader{size: segHdrSize}
	if flags&segFlagStoreID != 0 {
		h.size += segIDSize
	}
	if int64(len(b)) < h.size {
		return segHeader{}, errShortHeader
	}
	if got, want := binary.LittleEndian.Uint64(b[h.size-8:]), xxhash.Sum64(b[:h.size-8]); got != want {
		return segHeader{}, fmt.Errorf("segment header checksum %016x, computed %016x", got, want)
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v < minSegVersion || v > segVersion {
		return segHeader{}, fmt.Errorf("segment format version %d, this build reads %d to %d: %w", v, minSegVersion, segVersion, snapshot.ErrVersion)
	}
	if flags&^segFlagStoreID != 0 {
		return segHeader{}, fmt.Errorf("unknown segment flags %#x", flags)
	}
	h.num = binary.LittleEndian.Uint64(b[16:])
	if flags&segFlagStoreID != 0 {
		if h.id = binary.LittleEndian.Uint64(b[24:]); h.id == 0 {
			return segHeader{}, errors.New("segment identity 0 with the identity flag")
		}
	}
	return h, nil
}

// appendFrames appends raw as frames of at most FrameSize raw bytes each,
// all but the last marked continued, compressed with enc.
func appendFrames(enc *zcodec.Encoder, dst, raw []byte) []byte {
	for len(raw) > 0 {
		chunk := raw[:min(len(raw), FrameSize)]
		raw = raw[len(chunk):]
		var flags byte
		if len(raw) > 0 {
			flags |= flagContinued
		}
		start := len(dst)
		dst = append(dst, make([]byte, frameHdrSize)...)
		dst = enc.Encode(dst, chunk)
		if len(dst)-start-frameHdrSize >= len(chunk) {
			dst = append(dst[:start+frameHdrSize], chunk...)
		} else {
			flags |= flagCompressed
		}
		h := dst[start : start+frameHdrSize]
		stored := dst[start+frameHdrSize:]
		binary.LittleEndian.PutUint32(h[0:], uint32(len(stored)))
		binary.LittleEndian.PutUint32(h[4:], uint32(len(chunk)))
		h[8] = flags
		binary.LittleEndian.PutUint32(h[12:], uint32(xxhash.Sum64(h[:12])))
		binary.LittleEndian.PutUint64(h[16:], xxhash.Sum64(stored))
	}
	return dst
}

// frameHeader is a decoded frame header.
type frameHeader struct {
	stored, raw int
	flags       byte
	sum         uint64
}

// parseFrameHeader decodes and checks a frame header.
func parseFrameHeader(h []byte) (frameHeader, error) {
	if got, want := binary.LittleEndian.Uint32(h[12:]), uint32(xxhash.Sum64(h[:12])); got != want {
		return frameHeader{}, fmt.Errorf("frame header checksum %08x, computed %08x", got, want)
	}
	fh := frameHeader{
		stored: int(binary.LittleEndian.Uint32(h[0:])),
		raw:    int(binary.LittleEndian.Uint32(h[4:])),
		flags:  h[8],
		sum:    binary.LittleEndian.Uint64(h[16:]),
	}
	switch {
	case fh.flags&^(flagCompressed|flagContinued) != 0 || h[9] != 0 || h[10] != 0 || h[11] != 0:
		return fh, fmt.Errorf("bad frame flags %#x", h[8:12])
	case fh.raw == 0 || fh.raw > FrameSize || fh.stored == 0 || fh.stored > fh.raw:
		return fh, fmt.Errorf("frame of %d stored bytes for %d raw bytes", fh.stored, fh.raw)
	case fh.flags&flagCompressed == 0 && fh.stored != fh.raw:
		return fh, fmt.Errorf("uncompressed frame of %d stored bytes for %d raw bytes", fh.stored, fh.raw)
	}
	return fh, nil
}

// checkFrame checks a frame's stored bytes against its header's checksum.
func checkFrame(fh frameHeader, stored []byte) error {
	if got := xxhash.Sum64(stored); got != fh.sum {
		return fmt.Errorf("frame checksum %016x, computed %016x", fh.sum, got)
	}
	return nil
}

// appendBatch appends the encoding of b.
func appendBatch(dst []byte, b *persist.Batch) []byte {
	switch {
	case len(b.Leases) > 0:
		dst = append(dst, kindLeases)
	case len(b.Changes) > 0:
		dst = append(dst, kindChanges)
	case b.Compaction:
		dst = append(dst, kindCompact)
	default:
		dst = append(dst, kindIndex)
	}
	dst = binary.AppendVarint(dst, b.Rev)
	dst = binary.AppendUvarint(dst, b.Index)
	switch {
	case len(b.Leases) > 0:
		dst = appendChanges(dst, b.Changes)
		dst = appendLeaseChanges(dst, b.Leases)
	case len(b.Changes) > 0:
		dst = appendChanges(dst, b.Changes)
	case b.Compaction:
		dst = binary.AppendVarint(dst, b.Compact)
	}
	return dst
}

// appendChanges appends a count and the changes.
func appendChanges(dst []byte, cs []persist.Change) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(cs)))
	for i := range cs {
		c := &cs[i]
		var flags byte
		if c.Delete {
			flags = 1
		}
		dst = append(dst, flags)
		dst = binary.AppendUvarint(dst, uint64(len(c.Key)))
		dst = append(dst, c.Key...)
		if !c.Delete {
			dst = binary.AppendVarint(dst, c.Lease)
			dst = binary.AppendUvarint(dst, uint64(len(c.Value)))
			dst = append(dst, c.Value...)
		}
	}
	return dst
}

// batchDecoder decodes batches from the front of a byte slice.
type batchDecoder struct {
	b   []byte
	off int
	// reuse makes next return the same Batch every time, its Changes in
	// one array reused too: for replay, where each batch is applied and
	// dropped before the next (two allocations per batch less).
	reuse bool
	batch persist.Batch
	cs    []persist.Change
}

// maxReused bounds the change array a reusing decoder keeps between
// batches.
const maxReused = 1024

func (d *batchDecoder) uvarint() (uint64, error) {
	v, n := binary.Uvarint(d.b[d.off:])
	switch {
	case n == 0:
		return 0, errShort
	case n < 0:
		return 0, errors.New("bad varint")
	}
	d.off += n
	return v, nil
}

func (d *batchDecoder) varint() (int64, error) {
	u, err := d.uvarint() // zig-zag, as binary.AppendVarint writes it
	return int64(u>>1) ^ -int64(u&1), err
}

func (d *batchDecoder) bytes(limit int) ([]byte, error) {
	n, err := d.uvarint()
	if err != nil {
		return nil, err
	}
	if n > uint64(limit) {
		return nil, fmt.Errorf("length %d over limit %d", n, limit)
	}
	if uint64(len(d.b)-d.off) < n {
		return nil, errShort
	}
	b := d.b[d.off : d.off+int(n) : d.off+int(n)]
	d.off += int(n)
	return b, nil
}

// next decodes the batch at the front. errShort means its bytes are not
// all there; any other error is damage. The batch's slices point into the
// decoder's bytes.
func (d *batchDecoder) next() (*persist.Batch, error) {
	if d.off >= len(d.b) {
		return nil, errShort
	}
	kind := d.b[d.off]
	d.off++
	var b *persist.Batch
	if d.reuse {
		d.batch = persist.Batch{}
		b = &d.batch
	} else {
		b = new(persist.Batch)
	}
	var err error
	if b.Rev, err = d.varint(); err != nil {
		return nil, err
	}
	if b.Index, err = d.uvarint(); err != nil {
		return nil, err
	}
	if b.Rev < 1 {
		return nil, fmt.Errorf("batch at revision %d", b.Rev)
	}
	switch kind {
	case kindIndex:
		return b, nil
	case kindCompact:
		b.Compaction = true
		if b.Compact, err = d.varint(); err != nil {
			return nil, err
		}
		if b.Compact < 0 || b.Compact > b.Rev {
			return nil, fmt.Errorf("compaction to %d at revision %d", b.Compact, b.Rev)
		}
		return b, nil
	case kindChanges:
		b.Changes, err = d.changes(1)
		return b, err
	case kindLeases:
		if b.Changes, err = d.changes(0); err != nil {
			return nil, err
		}
		b.Leases, err = d.leaseChanges()
		return b, err
	default:
		return nil, fmt.Errorf("bad batch kind %#x", kind)
	}
}

// count decodes a count of items of at least 2 bytes each: a count beyond
// what the rest of a whole batch could hold is damage, not a reason to
// allocate; one beyond what the bytes read so far hold is a short batch.
func (d *batchDecoder) count(least uint64, what string) (uint64, error) {
	n, err := d.uvarint()
	if err != nil {
		return 0, err
	}
	if n < least || n > maxPending/2 {
		return 0, fmt.Errorf("batch of %d %s", n, what)
	}
	if rest := uint64(len(d.b) - d.off); n > rest/2 {
		return 0, errShort
	}
	return n, nil
}

// changes decodes a count (at least least) and the changes.
func (d *batchDecoder) changes(least uint64) ([]persist.Change, error) {
	n, err := d.count(least, "changes")
	if err != nil || n == 0 {
		return nil, err
	}
	var cs []persist.Change
	switch {
	case d.reuse && uint64(cap(d.cs)) >= n:
		cs = d.cs[:n]
		clear(cs)
	case d.reuse && n <= maxReused:
		d.cs = make([]persist.Change, n, max(n, 16))
		cs = d.cs
	default:
		cs = make([]persist.Change, n)
	}
	for i := range cs {
		c := &cs[i]
		if d.off >= len(d.b) {
			return nil, errShort
		}
		flags := d.b[d.off]
		d.off++
		if flags > 1 {
			return nil, fmt.Errorf("bad change flags %#x", flags)
		}
		c.Delete = flags == 1
		if c.Key, err = d.bytes(kv.MaxKeySize); err != nil {
			return nil, err
		}
		if len(c.Key) == 0 {
			return nil, errors.New("change with an empty key")
		}
		if c.Delete {
			continue
		}
		if c.Lease, err = d.varint(); err != nil {
			return nil, err
		}
		if c.Value, err = d.bytes(kv.MaxValueSize); err != nil {
			return nil, err
		}
	}
	return cs, nil
}

// appendLeaseChanges appends a count and the lease changes:
//
//	u8 flags (1: revoke) | varint id | grants: varint ttl | varint deadline
func appendLeaseChanges(dst []byte, ls []persist.LeaseChange) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(ls)))
	for i := range ls {
		l := &ls[i]
		if l.Revoke {
			dst = append(dst, 1)
			dst = binary.AppendVarint(dst, l.ID)
			continue
		}
		dst = append(dst, 0)
		dst = binary.AppendVarint(dst, l.ID)
		dst = binary.AppendVarint(dst, l.TTL)
		dst = binary.AppendVarint(dst, l.Deadline)
	}
	return dst
}

// leaseChanges decodes a count (at least 1) and the lease changes.
func (d *batchDecoder) leaseChanges() ([]persist.LeaseChange, error) {
	n, err := d.count(1, "lease changes")
	if err != nil {
		return nil, err
	}
	ls := make([]persist.LeaseChange, n)
	for i := range ls {
		l := &ls[i]
		if d.off >= len(d.b) {
			return nil, errShort
		}
		flags := d.b[d.off]
		d.off++
		if flags > 1 {
			return nil, fmt.Errorf("bad lease change flags %#x", flags)
		}
		l.Revoke = flags == 1
		if l.ID, err = d.varint(); err != nil {
			return nil, err
		}
		if l.ID <= 0 {
			return nil, fmt.Errorf("lease change of ID %d", l.ID)
		}
		if l.Revoke {
			continue
		}
		if l.TTL, err = d.varint(); err != nil {
			return nil, err
		}
		if l.Deadline, err = d.varint(); err != nil {
			return nil, err
		}
		if l.TTL < 1 || l.TTL > kv.MaxLeaseTTL {
			return nil, fmt.Errorf("lease %d with TTL %d", l.ID, l.TTL)
		}
	}
	return ls, nil
}
