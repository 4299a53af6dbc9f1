package engine

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/cespare/xxhash/v2"
)

// The snapshot stream, format version 1. All integers are varints
// (encoding/binary), unsigned ones uvarints.
//
//	header  magic "revkvsn\x00" | uvarint version=1 | rev | compactRev | uvarint cindex
//	base    'B' record ...   each key live at compactRev, strictly by key
//	events  'E' record ...   every change from max(compactRev, 2) to rev, in order
//	end     'Z'
//	trailer 8 bytes big-endian xxhash64 of every byte before it
//
//	record  flags (bit 0: delete) | uvarint len(key) | key | main | sub
//	        puts only: create | version | lease | uvarint len(value) | value
//
// Events at compactRev are kept so that a restored store replays them to a
// watcher starting there; the base already reflects them.
const (
	snapMagic   = "revkvsn\x00"
	snapVersion = 1

	tagBase  = 'B'
	tagEvent = 'E'
	tagEnd   = 'Z'
)

// Snapshot is a point-in-time copy of a store's retained history, taken in
// O(1). Writing it out walks the view it holds; the store goes on serving
// reads and writes meanwhile. A Snapshot is safe for concurrent use.
type Snapshot struct {
	mu   sync.Mutex
	st   *state // nil after Close
	size int64  // -1 until computed
}

// Snapshot returns a snapshot of the store at its current revision.
func (s *Store) Snapshot() (*Snapshot, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	return &Snapshot{st: s.cur.Load(), size: -1}, nil
}

func (sn *Snapshot) state() (*state, error) {
	sn.mu.Lock()
	defer sn.mu.Unlock()
	if sn.st == nil {
		return nil, ErrClosed
	}
	return sn.st, nil
}

// Rev returns the revision the snapshot was taken at.
func (sn *Snapshot) Rev() int64 {
	st, err := sn.state()
	if err != nil {
		return 0
	}
	return st.rev
}

// Size returns the number of bytes WriteTo writes. The first call encodes
// the snapshot once to count them; 0 after Close.
func (sn *Snapshot) Size() int64 {
	sn.mu.Lock()
	defer sn.mu.Unlock()
	if sn.st == nil {
		return 0
	}
	if sn.size < 0 {
		n, _ := sn.st.writeSnapshot(io.Discard)
		sn.size = n
	}
	return sn.size
}

// WriteTo writes the snapshot to w and returns the bytes written. After
// Close it returns ErrClosed.
func (sn *Snapshot) WriteTo(w io.Writer) (int64, error) {
	st, err := sn.state()
	if err != nil {
		return 0, err
	}
	return st.writeSnapshot(w)
}

// Close releases the snapshot's view. Later WriteTo calls return ErrClosed.
func (sn *Snapshot) Close() error {
	sn.mu.Lock()
	defer sn.mu.Unlock()
	if sn.st == nil {
		return ErrClosed
	}
	sn.st = nil
	return nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func (st *state) writeSnapshot(w io.Writer) (int64, error) {
	cw := &countWriter{w: w}
	bw := bufio.NewWriterSize(cw, 64<<10)
	d := xxhash.New()
	var buf []byte
	emit := func() {
		d.Write(buf)
		bw.Write(buf) // a write error sticks in bw and surfaces at Flush
	}
	buf = append(buf, snapMagic...)
	buf = binary.AppendUvarint(buf, snapVersion)
	buf = binary.AppendVarint(buf, st.rev)
	buf = binary.AppendVarint(buf, st.compactRev)
	buf = binary.AppendUvarint(buf, st.cindex)
	emit()
	st.base(func(key []byte, v version) {
		buf = appendRecord(append(buf[:0], tagBase), key, v)
		emit()
	})
	st.changes(st.compactRev, st.rev, func(c change) bool {
		buf = appendRecord(append(buf[:0], tagEvent), c.key, c.v)
		emit()
		return true
	})
	buf = append(buf[:0], tagEnd)
	emit()
	buf = binary.BigEndian.AppendUint64(buf[:0], d.Sum64())
	bw.Write(buf)
	err := bw.Flush()
	return cw.n, err
}

// snapReader decodes a snapshot stream. Bytes are hashed a record at a time.
type snapReader struct {
	r   *bufio.Reader
	d   *xxhash.Digest
	off int64  // offset of the next byte
	rec []byte // bytes read but not yet hashed
}

func (sr *snapReader) corrupt(format string, args ...any) error {
	return fmt.Errorf("snapshot at offset %d: %s: %w", sr.off, fmt.Sprintf(format, args...), ErrCorrupt)
}

// missing reports a gap in the history: ErrRevisionNotFound, and ErrCorrupt
// like every other damage.
func (sr *snapReader) missing(format string, args ...any) error {
	return fmt.Errorf("%w: %w", ErrRevisionNotFound, sr.corrupt(format, args...))
}

func (sr *snapReader) ReadByte() (byte, error) {
	b, err := sr.r.ReadByte()
	if err != nil {
		return 0, sr.corrupt("truncated")
	}
	sr.off++
	sr.rec = append(sr.rec, b)
	return b, nil
}

func (sr *snapReader) uvarint() (uint64, error) {
	v, err := binary.ReadUvarint(sr)
	if err != nil && !errors.Is(err, ErrCorrupt) {
		return 0, sr.corrupt("bad varint")
	}
	return v, err
}

func (sr *snapReader) varint() (int64, error) {
	v, err := binary.ReadVarint(sr)
	if err != nil && !errors.Is(err, ErrCorrupt) {
		return 0, sr.corrupt("bad varint")
	}
	return v, err
}

// bytes reads a length-prefixed byte string of at most limit bytes.
func (sr *snapReader) bytes(limit int) ([]byte, error) {
	n, err := sr.uvarint()
	if err != nil {
		return nil, err
	}
	if n > uint64(limit) {
		return nil, sr.corrupt("length %d over limit %d", n, limit)
	}
	if n == 0 {
		return nil, nil
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(sr.r, b); err != nil {
		return nil, sr.corrupt("truncated")
	}
	sr.off += int64(n)
	sr.rec = append(sr.rec, b...)
	return b, nil
}

func (sr *snapReader) hashRecord() {
	sr.d.Write(sr.rec)
	sr.rec = sr.rec[:0]
}

// record reads one record. A put's version is checked to be >= 1, so that
// v.deleted() tells a tombstone from a put.
func (sr *snapReader) record() (key []byte, v version, err error) {
	flags, err := sr.ReadByte()
	if err != nil {
		return nil, v, err
	}
	if flags > 1 {
		return nil, v, sr.corrupt("bad record flags %#x", flags)
	}
	deleted := flags == 1
	if key, err = sr.bytes(MaxKeySize); err != nil {
		return nil, v, err
	}
	if len(key) == 0 {
		return nil, v, sr.corrupt("empty key")
	}
	if v.main, err = sr.varint(); err != nil {
		return nil, v, err
	}
	if v.sub, err = sr.varint(); err != nil {
		return nil, v, err
	}
	if deleted {
		return key, v, nil
	}
	for _, p := range []*int64{&v.create, &v.ver, &v.lease} {
		if *p, err = sr.varint(); err != nil {
			return nil, v, err
		}
	}
	if v.ver < 1 {
		return nil, v, sr.corrupt("put of %q with version %d", key, v.ver)
	}
	v.value, err = sr.bytes(MaxValueSize)
	return key, v, err
}

// Load reads a snapshot written by Snapshot.WriteTo and returns a new store
// holding the same retained history: the same revision, compacted revision,
// consistent index, reads, events and hash.
//
// Every record is checked as it is replayed (order, revisions, versions) and
// the stream's checksum at the end; any damage, truncation or inconsistency
// is an error wrapping ErrCorrupt (or ErrRevisionNotFound for a gap in the
// history) with the offset, and no store is returned. Lengths are bounded by
// MaxKeySize and MaxValueSize, so a crafted stream cannot make Load allocate
// more than one record's worth at a time beyond what it stores.
func Load(r io.Reader, opts Options) (*Store, error) {
	sr := &snapReader{r: bufio.NewReaderSize(r, 64<<10), d: xxhash.New()}
	var magic [len(snapMagic)]byte
	for i := range magic {
		b, err := sr.ReadByte()
		if err != nil {
			return nil, err
		}
		magic[i] = b
	}
	if string(magic[:]) != snapMagic {
		return nil, sr.corrupt("not a revkv snapshot (magic %q)", magic[:])
	}
	ver, err := sr.uvarint()
	if err != nil {
		return nil, err
	}
	if ver != snapVersion {
		return nil, sr.corrupt("format version %d, want %d", ver, snapVersion)
	}
	var rev, compactRev int64
	var cindex uint64
	if rev, err = sr.varint(); err != nil {
		return nil, err
	}
	if compactRev, err = sr.varint(); err != nil {
		return nil, err
	}
	if cindex, err = sr.uvarint(); err != nil {
		return nil, err
	}
	if rev < 1 || compactRev < -1 || compactRev > rev {
		return nil, sr.corrupt("revision %d with compacted revision %d", rev, compactRev)
	}
	sr.hashRecord()

	s := New(opts)
	l := loader{s: s, sr: sr, rev: rev, compactRev: compactRev, next: max(compactRev, 2)}
	if err := l.run(); err != nil {
		return nil, err
	}
	var sum [8]byte
	if _, err := io.ReadFull(sr.r, sum[:]); err != nil {
		return nil, sr.corrupt("truncated checksum")
	}
	if got, want := binary.BigEndian.Uint64(sum[:]), sr.d.Sum64(); got != want {
		return nil, sr.corrupt("checksum %016x, computed %016x", got, want)
	}
	s.w.rev, s.w.compactRev, s.w.cindex = rev, compactRev, cindex
	s.publishLocked()
	return s, nil
}

// loader replays a snapshot's records into a new store that no one else can
// see yet, so it writes the writer state without taking mu.
type loader struct {
	s          *Store
	sr         *snapReader
	rev        int64
	compactRev int64
	next       int64 // the main revision the next new event group must have
	groupRev   int64
	group      []change
	lastKey    []byte
	seenEvent  bool
}

func (l *loader) run() error {
	for {
		tag, err := l.sr.ReadByte()
		if err != nil {
			return err
		}
		switch tag {
		case tagBase:
			if l.seenEvent {
				return l.sr.corrupt("base record after events")
			}
			if err := l.base(); err != nil {
				return err
			}
		case tagEvent:
			l.seenEvent = true
			if err := l.event(); err != nil {
				return err
			}
		case tagEnd:
			l.sr.hashRecord()
			l.flush()
			if last := l.next - 1; l.rev >= max(l.compactRev, 2) && last != l.rev {
				return l.sr.missing("history ends at %d, revision is %d", last, l.rev)
			}
			return nil
		default:
			return l.sr.corrupt("bad tag %#x", tag)
		}
		l.sr.hashRecord()
	}
}

func (l *loader) base() error {
	key, v, err := l.sr.record()
	if err != nil {
		return err
	}
	switch {
	case l.lastKey != nil && bytes.Compare(key, l.lastKey) <= 0:
		return l.sr.corrupt("base key %q out of order", key)
	case v.deleted() || v.main < 2 || v.main > l.compactRev || v.sub < 0:
		return l.sr.corrupt("base record of %q at %d.%d, compacted %d", key, v.main, v.sub, l.compactRev)
	case v.create < 2 || v.create > v.main || v.ver < 1:
		return l.sr.corrupt("base record of %q with create %d, version %d", key, v.create, v.ver)
	}
	l.lastKey = key
	rec := newRecord(key, v)
	l.s.w.keys.Load(keyItem{prefix: keyPrefix(key), rec: rec})
	l.s.changedKeysLocked()
	return nil
}

func (l *loader) event() error {
	key, v, err := l.sr.record()
	if err != nil {
		return err
	}
	if v.main != l.groupRev {
		l.flush()
		if v.main != l.next {
			return l.sr.missing("event at revision %d, expected %d", v.main, l.next)
		}
		if v.main > l.rev {
			return l.sr.corrupt("event at revision %d past snapshot revision %d", v.main, l.rev)
		}
		l.groupRev = v.main
		l.next++
	}
	if v.sub != int64(len(l.group)) {
		return l.sr.corrupt("event %d.%d out of order", v.main, v.sub)
	}
	if v.main == l.compactRev {
		// Already reflected in the base: kept only for Events.
		l.group = append(l.group, change{key: key, v: v})
		return nil
	}
	var c change
	if v.deleted() {
		cs := l.s.deleteLocked(key, nil, v.main, v.sub)
		if len(cs) != 1 {
			return l.sr.corrupt("delete of %q at %d, which is not live", key, v.main)
		}
		c = cs[0]
	} else {
		c = l.s.putLocked(key, v.value, v.lease, v.main, v.sub)
	}
	if c.v.create != v.create || c.v.ver != v.ver {
		return l.sr.corrupt("event %d.%d on %q: create %d version %d, history says %d, %d",
			v.main, v.sub, key, v.create, v.ver, c.v.create, c.v.ver)
	}
	l.group = append(l.group, c)
	return nil
}

// flush adds the finished group of events to the history.
func (l *loader) flush() {
	if len(l.group) == 0 {
		return
	}
	l.s.w.hist = l.s.w.hist.add(l.groupRev, l.group)
	l.group = nil
}
