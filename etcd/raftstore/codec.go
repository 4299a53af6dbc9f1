package raftstore

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cespare/xxhash/v2"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// The byte layouts are drawn in doc.go.
const (
	segMagic   = "rvkraftl"
	segVersion = 1
	segHdrSize = 40

	recHdrSize = 20
	recTrailer = 0xa5
	// recOverhead is what a record adds to its payload.
	recOverhead = recHdrSize + 1
	// maxPayload bounds one record's payload: a length past it is damage,
	// never a reason to allocate.
	maxPayload = 1 << 30

	snapMagic   = "rvkrsnap"
	snapVersion = 1
	snapHdrSize = 40
)

// Record kinds.
const (
	kindBase    = 'B' // first record of every segment: the state it starts from
	kindEntries = 'E' // consecutive entries, replacing any at and after the first
	kindHard    = 'H' // a hard state
	kindCompact = 'C' // entries up to an index dropped
	kindReset   = 'R' // a snapshot applied: every entry dropped
	kindSnap    = 'S' // a snapshot created (its file is durable)
	kindDrop    = 'D' // the segments before one are being removed
)

// marshal encodes a raftpb message deterministically (so equal messages
// have equal bytes and proto.Size agrees with what is stored). raftpb
// messages have no required fields: it fails only on a message changed
// while it is encoded, which is the caller's bug (ErrInvalid).
func marshal(m proto.Message) ([]byte, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encoding a %T: %v: %w", m, err, ErrInvalid)
	}
	return b, nil
}

// segHeader is a decoded segment header.
type segHeader struct {
	seq uint64
	// prevSize is the size the previous segment was sealed at (0 for the
	// first segment of a store).
	prevSize int64
}

func appendSegHeader(b []byte, h segHeader) []byte {
	start := len(b)
	b = append(b, segMagic...)
	b = binary.LittleEndian.AppendUint32(b, segVersion)
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = binary.LittleEndian.AppendUint64(b, h.seq)
	b = binary.LittleEndian.AppendUint64(b, uint64(h.prevSize))
	return binary.LittleEndian.AppendUint64(b, xxhash.Sum64(b[start:]))
}

// errShortHeader: the bytes end inside a segment header.
var errShortHeader = errors.New("short segment header")

func parseSegHeader(b []byte) (segHeader, error) {
	if len(b) < segHdrSize {
		return segHeader{}, errShortHeader
	}
	if got, want := binary.LittleEndian.Uint64(b[32:]), xxhash.Sum64(b[:32]); got != want {
		return segHeader{}, fmt.Errorf("segment header checksum %016x, computed %016x", got, want)
	}
	if string(b[:8]) != segMagic {
		return segHeader{}, fmt.Errorf("not a raftstore segment (magic %q)", b[:8])
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != segVersion {
		return segHeader{}, fmt.Errorf("segment format version %d, this build reads %d", v, segVersion)
	}
	if f := binary.LittleEndian.Uint32(b[12:]); f != 0 {
		return segHeader{}, fmt.Errorf("unknown segment flags %#x", f)
	}
	h := segHeader{seq: binary.LittleEndian.Uint64(b[16:]), prevSize: int64(binary.LittleEndian.Uint64(b[24:]))}
	if h.prevSize < 0 {
		return segHeader{}, fmt.Errorf("previous segment size %d", h.prevSize)
	}
	return h, nil
}

// appendRecord appends a record of kind holding payload.
func appendRecord(b []byte, kind byte, payload []byte) []byte {
	var h [recHdrSize]byte
	binary.LittleEndian.PutUint32(h[0:], uint32(len(payload)))
	h[4] = kind
	binary.LittleEndian.PutUint64(h[8:], xxhash.Sum64(payload))
	binary.LittleEndian.PutUint32(h[16:], uint32(xxhash.Sum64(h[:16])))
	b = append(b, h[:]...)
	b = append(b, payload...)
	return append(b, recTrailer)
}

// recHeader is a decoded record header.
type recHeader struct {
	size int64 // of the payload
	kind byte
	sum  uint64
}

// parseRecHeader checks a whole record header.
func parseRecHeader(h []byte) (recHeader, error) {
	if got, want := binary.LittleEndian.Uint32(h[16:]), uint32(xxhash.Sum64(h[:16])); got != want {
		return recHeader{}, fmt.Errorf("record header checksum %08x, computed %08x", got, want)
	}
	r := recHeader{size: int64(binary.LittleEndian.Uint32(h[0:])), kind: h[4], sum: binary.LittleEndian.Uint64(h[8:])}
	switch {
	case h[5] != 0 || h[6] != 0 || h[7] != 0:
		return r, fmt.Errorf("record header padding %x", h[5:8])
	case r.size > maxPayload:
		return r, fmt.Errorf("record payload of %d bytes", r.size)
	}
	return r, nil
}

// checkRecord checks a record's payload and trailer against its header.
func checkRecord(h recHeader, payload []byte, trailer byte) error {
	if got := xxhash.Sum64(payload); got != h.sum {
		return fmt.Errorf("record checksum %016x, computed %016x", h.sum, got)
	}
	if trailer != recTrailer {
		return fmt.Errorf("record trailer %#x", trailer)
	}
	return nil
}

// Payloads. Integers are uvarints; messages are raftpb's protobuf
// encoding, length-prefixed where more follows.

// base is the payload of a base record: the log's state when its segment
// started.
type base struct {
	dummyIndex, dummyTerm uint64 // the entry before the first
	lastIndex, lastTerm   uint64
	snap                  mark              // the newest snapshot's index and file checksum (0: none)
	hs                    *raftpb.HardState // nil: none saved yet
}

func appendBase(b []byte, s base) ([]byte, error) {
	b = binary.AppendUvarint(b, s.dummyIndex)
	b = binary.AppendUvarint(b, s.dummyTerm)
	b = binary.AppendUvarint(b, s.lastIndex)
	b = binary.AppendUvarint(b, s.lastTerm)
	b = binary.AppendUvarint(b, s.snap.index)
	b = binary.LittleEndian.AppendUint64(b, s.snap.sum)
	if s.hs == nil {
		return append(b, 0), nil
	}
	m, err := marshal(s.hs)
	return append(append(b, 1), m...), err
}

func decodeBase(p []byte) (base, error) {
	var s base
	d := decoder{b: p}
	s.dummyIndex, s.dummyTerm = d.uvarint(), d.uvarint()
	s.lastIndex, s.lastTerm = d.uvarint(), d.uvarint()
	s.snap.index = d.uvarint()
	if sum := d.bytes(8); sum != nil {
		s.snap.sum = binary.LittleEndian.Uint64(sum)
	}
	switch has := d.byte(); {
	case d.err != nil:
		return s, d.err
	case has > 1:
		return s, fmt.Errorf("base record hard state flag %d", has)
	case has == 1:
		s.hs = &raftpb.HardState{}
		if err := proto.Unmarshal(d.rest(), s.hs); err != nil {
			return s, fmt.Errorf("base record hard state: %w", err)
		}
	case len(d.rest()) > 0:
		return s, errors.New("base record: bytes after the state")
	}
	if s.lastIndex < s.dummyIndex {
		return s, fmt.Errorf("base record: last index %d below the first %d", s.lastIndex, s.dummyIndex+1)
	}
	return s, nil
}

// appendEntries appends the payload of an entries record; ents are
// consecutive.
func appendEntries(b []byte, ents []*raftpb.Entry) ([]byte, error) {
	b = binary.AppendUvarint(b, ents[0].GetIndex())
	b = binary.AppendUvarint(b, uint64(len(ents)))
	for _, e := range ents {
		m, err := marshal(e)
		if err != nil {
			return nil, err
		}
		b = binary.AppendUvarint(b, uint64(len(m)))
		b = append(b, m...)
	}
	return b, nil
}

func decodeEntries(p []byte) ([]*raftpb.Entry, error) {
	d := decoder{b: p}
	first, n := d.uvarint(), d.uvarint()
	if d.err != nil {
		return nil, d.err
	}
	// Every entry takes at least a byte: a count past the bytes left is
	// damage, and must not size an allocation.
	if n == 0 || n > uint64(len(d.b)) || first == 0 || first+n < first {
		return nil, fmt.Errorf("entries record: %d entries from index %d in %d bytes", n, first, len(p))
	}
	ents := make([]*raftpb.Entry, n)
	for i := range ents {
		m := d.bytes(d.uvarint())
		if d.err != nil {
			return nil, d.err
		}
		e := &raftpb.Entry{}
		if err := proto.Unmarshal(m, e); err != nil {
			return nil, fmt.Errorf("entry %d: %w", first+uint64(i), err)
		}
		if e.GetIndex() != first+uint64(i) {
			return nil, fmt.Errorf("entry %d of a record from index %d has index %d", i, first, e.GetIndex())
		}
		ents[i] = e
	}
	if len(d.rest()) > 0 {
		return nil, errors.New("entries record: bytes after the entries")
	}
	return ents, nil
}

func appendHard(b []byte, hs *raftpb.HardState) ([]byte, error) {
	m, err := marshal(hs)
	return append(b, m...), err
}

func decodeHard(p []byte) (*raftpb.HardState, error) {
	hs := &raftpb.HardState{}
	if err := proto.Unmarshal(p, hs); err != nil {
		return nil, fmt.Errorf("hard state: %w", err)
	}
	return hs, nil
}

// mark is the payload of a compact record (index, term of the new dummy)
// and of a reset or snapshot record (the snapshot's index, term and file
// checksum).
type mark struct {
	index, term uint64
	sum         uint64 // reset only
}

func appendCompact(b []byte, m mark) []byte {
	b = binary.AppendUvarint(b, m.index)
	return binary.AppendUvarint(b, m.term)
}

func decodeCompact(p []byte) (mark, error) {
	d := decoder{b: p}
	m := mark{index: d.uvarint(), term: d.uvarint()}
	if d.err == nil && len(d.rest()) > 0 {
		return m, errors.New("compact record: bytes after the mark")
	}
	return m, d.err
}

func appendReset(b []byte, m mark) []byte {
	b = appendCompact(b, m)
	return binary.LittleEndian.AppendUint64(b, m.sum)
}

func decodeReset(p []byte) (mark, error) {
	d := decoder{b: p}
	m := mark{index: d.uvarint(), term: d.uvarint()}
	sum := d.bytes(8)
	if d.err != nil {
		return m, d.err
	}
	m.sum = binary.LittleEndian.Uint64(sum)
	if len(d.rest()) > 0 {
		return m, errors.New("reset record: bytes after the mark")
	}
	return m, nil
}

func appendDrop(b []byte, seq uint64) []byte { return binary.AppendUvarint(b, seq) }

func decodeDrop(p []byte) (uint64, error) {
	d := decoder{b: p}
	seq := d.uvarint()
	if d.err == nil && len(d.rest()) > 0 {
		return 0, errors.New("drop record: bytes after the segment number")
	}
	return seq, d.err
}

// decoder reads a payload; the first error sticks and later reads return
// zeros.
type decoder struct {
	b   []byte
	err error
}

var errTruncated = errors.New("payload ends early")

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = fmt.Errorf("bad uvarint: %w", errTruncated)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if b := d.bytes(1); b != nil {
		return b[0]
	}
	return 0
}

func (d *decoder) bytes(n uint64) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = errTruncated
		return nil
	}
	b := d.b[:n:n]
	d.b = d.b[n:]
	return b
}

func (d *decoder) rest() []byte { return d.b }

// Snapshot files.

// encodeSnapshot returns the file holding snap: a header naming its
// index and term, the snapshot's protobuf encoding, and a checksum of
// everything before it, which is also the file's identity in a reset
// record.
func encodeSnapshot(snap *raftpb.Snapshot) (file []byte, sum uint64, err error) {
	m, err := marshal(snap)
	if err != nil {
		return nil, 0, err
	}
	b := make([]byte, 0, snapHdrSize+len(m)+8)
	b = append(b, snapMagic...)
	b = binary.LittleEndian.AppendUint32(b, snapVersion)
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = binary.LittleEndian.AppendUint64(b, snap.GetMetadata().GetIndex())
	b = binary.LittleEndian.AppendUint64(b, snap.GetMetadata().GetTerm())
	b = binary.LittleEndian.AppendUint64(b, uint64(len(m)))
	b = append(b, m...)
	sum = xxhash.Sum64(b)
	return binary.LittleEndian.AppendUint64(b, sum), sum, nil
}

// decodeSnapshot decodes a snapshot file; the snapshot's Data is b's
// storage.
func decodeSnapshot(b []byte) (*raftpb.Snapshot, uint64, error) {
	if len(b) < snapHdrSize+8 {
		return nil, 0, fmt.Errorf("snapshot file of %d bytes", len(b))
	}
	body := b[:len(b)-8]
	sum := xxhash.Sum64(body)
	if got := binary.LittleEndian.Uint64(b[len(body):]); got != sum {
		return nil, 0, fmt.Errorf("snapshot checksum %016x, computed %016x", got, sum)
	}
	if string(b[:8]) != snapMagic {
		return nil, 0, fmt.Errorf("not a raftstore snapshot (magic %q)", b[:8])
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != snapVersion {
		return nil, 0, fmt.Errorf("snapshot format version %d, this build reads %d", v, snapVersion)
	}
	if f := binary.LittleEndian.Uint32(b[12:]); f != 0 {
		return nil, 0, fmt.Errorf("unknown snapshot flags %#x", f)
	}
	index, term := binary.LittleEndian.Uint64(b[16:]), binary.LittleEndian.Uint64(b[24:])
	if n := binary.LittleEndian.Uint64(b[32:]); n != uint64(len(body)-snapHdrSize) {
		return nil, 0, fmt.Errorf("snapshot of %d bytes in a body of %d", n, len(body)-snapHdrSize)
	}
	snap := &raftpb.Snapshot{}
	if err := proto.Unmarshal(body[snapHdrSize:], snap); err != nil {
		return nil, 0, fmt.Errorf("snapshot: %w", err)
	}
	if snap.GetMetadata().GetIndex() != index || snap.GetMetadata().GetTerm() != term {
		return nil, 0, fmt.Errorf("snapshot header at index %d term %d, metadata at %d term %d", index, term, snap.GetMetadata().GetIndex(), snap.GetMetadata().GetTerm())
	}
	return snap, sum, nil
}
