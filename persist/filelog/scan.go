package filelog

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"path"
	"runtime"
	"slices"
	"sync/atomic"
	"time"

	"github.com/revkv/revkv/internal/zcodec"
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
//
// The frames are read, checked and decompressed ahead, by a goroutine of
// the scan's own, while fn applies the groups before them: on two cores
// the open's time is then about the larger of the two parts, not their
// sum. The goroutine never gets more than a run of groups (runBytes)
// ahead, and ends before scanSegment returns.
func scanSegment(fsys persist.FS, dir string, num uint64, rule tailRule, fn func(b *persist.Batch, off int64) error) (res scanResult, err error) {
	return scanPrepared(fsys, dir, num, rule, nil, fn)
}

// scanPrepared is scanSegment that sets batches' Prepared to what prep (if
// not nil) makes of them, in the read-ahead goroutine, before fn gets
// them (see persist.Preparer): of the batches that goroutine gets to
// first, while it waits for the scan (see readAhead); fn gets the others
// with Prepared nil.
func scanPrepared(fsys persist.FS, dir string, num uint64, rule tailRule, prep func(*persist.Batch) any, fn func(b *persist.Batch, off int64) error) (res scanResult, err error) {
	return scanFramesPrep(fsys, dir, num, rule, true, prep, fn)
}

// scanFrames is scanSegment, with the frames read ahead in a goroutine or
// (for a caller that stops at the first batch) only as fn asks for them.
func scanFrames(fsys persist.FS, dir string, num uint64, rule tailRule, ahead bool, fn func(b *persist.Batch, off int64) error) (res scanResult, err error) {
	return scanFramesPrep(fsys, dir, num, rule, ahead, nil, fn)
}

// scanFramesPrep is scanFrames with the prep of scanPrepared (which only
// the read-ahead calls: read inline, no batch is prepared).
func scanFramesPrep(fsys persist.FS, dir string, num uint64, rule tailRule, ahead bool, prep func(*persist.Batch) any, fn func(b *persist.Batch, off int64) error) (res scanResult, err error) {
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
	var src runSource = &inlineRuns{fr: fr}
	if ahead {
		ra := startReadAhead(fr, prep)
		defer ra.stop() // before f.Close: the goroutine reads f
		src = ra
	}
	for {
		run := src.next()
		if err := applyRun(run, &res, name, fn); err != nil {
			return res, err
		}
		if run.stop == nil {
			src.recycle(run)
			continue
		}
		res.frames, res.raw = run.stop.frames, run.stop.rawBytes
		switch {
		case run.stop.flt != nil:
			return res, judge(*run.stop.flt)
		case run.stop.err != io.EOF:
			return res, run.stop.err
		}
		return res, nil
	}
}

// applyRun hands the batches of run's groups to fn, keeping res as a scan
// of the segment up to the end of each group it finishes.
func applyRun(run *groupRun, res *scanResult, name string, fn func(b *persist.Batch, off int64) error) error {
	from := 0
	for _, g := range run.groups {
		res.frames, res.raw = g.frames, g.rawBytes
		for i := from; i < g.batches; i++ {
			if run.prep != nil {
				run.take(i)
			}
			b := run.batch(i)
			if err := fn(b, g.start); err != nil {
				return wrapAt(err, name, g.start)
			}
			if res.batches == 0 {
				res.firstRev = b.Rev
			}
			res.cover.add(b)
			res.batches++
		}
		if g.err != nil {
			return wrapAt(g.err, name, g.start)
		}
		if !g.partial {
			res.end = g.end
		}
		from = g.batches
	}
	return nil
}

// errDecode marks a batch that does not decode from a group whose frames
// all checked: damage, never a torn write.
type errDecode struct{ err error }

func (e errDecode) Error() string { return e.err.Error() }

// decodeError is the errDecode for d.next's error.
func decodeError(err error) error {
	if errors.Is(err, errShort) {
		return errDecode{errors.New("batch cut by the end of its group")}
	}
	return errDecode{err}
}

// decodeInto decodes the batches of group g, whose raw bytes (or the rest
// of them, after a part in an earlier run) are raw, into run, until the
// run is full (see full): it returns the bytes left, which go on in the
// next run (g.partial), or nil. A batch that does not decode ends the
// group with g.err.
func (run *groupRun) decodeInto(d *batchDecoder, g *groupSpan, raw []byte) (rest []byte) {
	d.b, d.off = raw, 0
	for d.off < len(d.b) {
		at := d.off
		b, err := d.next()
		if err != nil {
			g.err = decodeError(err)
			break
		}
		if run.full(b) {
			g.partial, rest = true, raw[at:]
			break
		}
		run.add(b)
	}
	g.batches = len(run.batches)
	return rest
}

// full reports whether run has no room for b: it holds runBatches
// batches, or b's changes would take its changes past runBatches. An
// empty run takes any batch.
func (run *groupRun) full(b *persist.Batch) bool {
	return len(run.batches) > 0 && (len(run.batches) >= runBatches || len(run.changes)+len(b.Changes) > runBatches)
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

	fh     []byte
	stored []byte
	dec    batchDecoder // reused: a run keeps copies of its batches
	// zd is the scan's own decoder, made at its first compressed frame,
	// garbage with the scan (see zcodec.Decoder).
	zd *zcodec.Decoder
	// rest is the buffer of a run whose last group's batches did not all
	// fit in it, from restAt on those it did not take; restOf is that
	// group's span. The next run takes the buffer over (see readRun).
	rest   []byte
	restAt int
	restOf groupSpan
	// spare is a buffer for a run that gave its own to the next (see
	// readRun), or nil.
	spare []byte
	// frames and rawBytes count the frames read that checked, and their
	// raw bytes.
	frames   int
	rawBytes int64
}

func newFrameReader(f persist.File, name string) (*frameReader, error) {
	size, err := f.Size()
	if err != nil {
		return nil, fmt.Errorf("revkv/filelog: %s: %w", name, err)
	}
	return &frameReader{f: f, r: bufio.NewReaderSize(f, 256<<10), name: name, size: size, fh: make([]byte, frameHdrSize), dec: batchDecoder{reuse: true}}, nil
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

// appendFrame reads the next frame and appends its raw bytes to group:
// an uncompressed frame's read straight into group's spare room, a
// compressed one's decompressed there. io.EOF at the end of the file; on
// a fault or error, what group holds past its old length is undefined.
func (fr *frameReader) appendFrame(group []byte) ([]byte, frameHeader, *fault, error) {
	off := fr.off
	if off >= fr.size {
		return group, frameHeader{}, nil, io.EOF
	}
	if fr.size-off < frameHdrSize {
		return group, frameHeader{}, &fault{off: off, end: fr.size, err: errors.New("frame header cut by the end of the segment")}, nil
	}
	if err := fr.read(fr.fh); err != nil {
		return group, frameHeader{}, nil, err
	}
	h, err := parseFrameHeader(fr.fh)
	if err != nil {
		hole := !slices.ContainsFunc(fr.fh, func(c byte) bool { return c != 0 })
		return group, h, &fault{off: off, end: off + frameHdrSize, hole: hole, err: err}, nil
	}
	end := off + frameHdrSize + int64(h.stored)
	if end > fr.size {
		return group, h, &fault{off: off, end: fr.size, err: fmt.Errorf("frame of %d bytes past the end of the segment", h.stored)}, nil
	}
	at := len(group)
	stored := fr.stored
	if h.flags&flagCompressed == 0 { // its stored bytes are its raw bytes
		group = slices.Grow(group, h.stored)[:at+h.stored]
		stored = group[at:]
	} else if cap(stored) < h.stored {
		stored = make([]byte, h.stored)
		fr.stored = stored
	}
	stored = stored[:h.stored]
	if err := fr.read(stored); err != nil {
		return group, h, nil, err
	}
	if err := checkFrame(h, stored); err != nil {
		return group, h, &fault{off: off, end: end, err: err}, nil
	}
	if h.flags&flagCompressed == 0 {
		return group, h, nil, nil
	}
	if fr.zd == nil {
		fr.zd = zcodec.NewDecoder()
	}
	group, err = fr.zd.AppendDecode(group, stored, h.raw)
	if err != nil {
		return group, h, &fault{off: off, end: end, checked: true, err: err}, nil
	}
	return group, h, nil, nil
}

// groupRun is a run of whole groups read from a segment: their raw bytes
// one after the other (or, for the rest of a group the last run could not
// hold, the last run's buffer, whose bytes before the rest that run's
// batches use; raw is nil once a run handed its buffer on: see readRun),
// their batches decoded (pointing into the raw bytes), and, if the segment
// ends after them, how.
type groupRun struct {
	raw     []byte
	groups  []groupSpan
	batches []runBatch
	changes []persist.Change // of every batch, one after the other
	stop    *scanStop        // nil: more groups follow
	// prep holds each batch's preparation state (prepOpen...) if the
	// scan prepares batches, else it is nil; back is the batch below
	// which the read-ahead prepares next (the read-ahead's alone).
	prep []uint32
	back int
}

// The preparation states of a run's batches. The read-ahead prepares
// batches of the runs it handed over from the last one down, while it
// waits for a run to come back; the scan takes them from the first one up,
// prepared or not (Apply does the work then); whoever comes first to a
// batch has it. So on two cores Prepare's work goes to the side that has
// time for it: the read-ahead when the scan is behind, the scan when the
// read-ahead is (reading and decompressing cost more than applying for
// some logs, less for others).
const (
	prepOpen  uint32 = iota // neither has it yet
	prepBusy                // the read-ahead is preparing it
	prepDone                // prepared: its Prepared is set
	prepTaken               // the scan took it unprepared
)

// take makes batch i of run the scan's: prepared, or left to it. If the
// read-ahead is preparing it, take waits for that (one batch's work). The
// batch's Prepared, written before prepareBack's atomic store of
// prepDone, is visible once take has loaded that state.
func (run *groupRun) take(i int) {
	p := &run.prep[i]
	if atomic.CompareAndSwapUint32(p, prepOpen, prepTaken) {
		return
	}
	// One batch's work is short: yield while it lasts. If it lasts much
	// longer (the read-ahead's thread descheduled mid-batch), sleep, so
	// as not to burn a core that thread may need.
	for spins := 0; atomic.LoadUint32(p) == prepBusy; spins++ {
		if spins < takeSpins {
			runtime.Gosched()
		} else {
			time.Sleep(takeSleep)
		}
	}
}

// takeSpins and takeSleep bound take's wait for a batch being prepared:
// that many yields, then sleeps this long each.
const (
	takeSpins = 100
	takeSleep = 20 * time.Microsecond
)

// prepareBack prepares up to n of run's batches, from the last one it has
// not prepared down, and reports whether it prepared any: false once none
// is left or the scan has taken the next one (and so all before it).
func (run *groupRun) prepareBack(prep func(*persist.Batch) any, n int) bool {
	did := false
	for ; n > 0 && run.back > 0; n-- {
		i := run.back - 1
		if !atomic.CompareAndSwapUint32(&run.prep[i], prepOpen, prepBusy) {
			run.back = 0
			break
		}
		b := run.batch(i)
		b.Prepared = prep(b)
		atomic.StoreUint32(&run.prep[i], prepDone)
		run.back, did = i, true
	}
	return did
}

// runBatch is a decoded batch whose changes are changes[lo:hi] of its run.
type runBatch struct {
	b      persist.Batch // Changes unset
	lo, hi int
}

// groupSpan is one group of a run.
type groupSpan struct {
	rawEnd     int   // where its bytes end in the run's raw bytes
	start, end int64 // the offsets of its first frame and past its last
	batches    int   // where its batches end in the run's batches
	// err is an errDecode if a batch does not decode; batches holds
	// those before it.
	err error
	// partial: the run holds the group's batches only up to batches,
	// the rest are in the next run (the group was read and checked
	// whole, but its batches did not fit in one run).
	partial bool
	// frames and rawBytes count the frames of the segment through this
	// group, and their raw bytes.
	frames   int
	rawBytes int64
}

// add appends b, its changes copied into the run's array (their bytes
// stay where they are, in raw).
func (run *groupRun) add(b *persist.Batch) {
	rb := runBatch{b: *b, lo: len(run.changes)}
	rb.b.Changes = nil
	run.changes = append(run.changes, b.Changes...)
	rb.hi = len(run.changes)
	run.batches = append(run.batches, rb)
}

// batch returns batch i of the run, its Changes set.
func (run *groupRun) batch(i int) *persist.Batch {
	rb := &run.batches[i]
	if rb.hi > rb.lo {
		rb.b.Changes = run.changes[rb.lo:rb.hi:rb.hi]
	}
	return &rb.b
}

// newRun returns an empty run with room for what a run of read-ahead
// usually holds (runBytes, runBatches): grown one append at a time, its
// arrays would cost twice that in garbage at each scan.
func newRun() *groupRun {
	return &groupRun{raw: make([]byte, 0, 2*runBytes), batches: make([]runBatch, 0, runBatches), changes: make([]persist.Change, 0, runBatches)}
}

// reset empties run for reuse, keeping its arrays but raw (which readRun
// sees to); nothing in it keeps a key or value of the last use alive.
func (run *groupRun) reset() {
	clear(run.changes)
	clear(run.batches)
	*run = groupRun{raw: run.raw, groups: run.groups[:0], batches: run.batches[:0], changes: run.changes[:0], prep: run.prep[:0]}
}

// scanStop is how reading a segment's frames ended: at the end of the
// file (err io.EOF), at a fault (flt: a frame that does not check, or the
// last group cut short) or at an error that says nothing of the segment
// (I/O; or a group too long, which is a *DamageError as it is).
type scanStop struct {
	flt      *fault
	err      error
	frames   int // read and checked, the last group's included
	rawBytes int64
}

// readRun reads whole groups into run (reset) until their raw bytes reach
// limit (one group at least) or the segment ends, and decodes their
// batches; or, if the last run did not take all the batches of its last
// group, it takes the rest of them, and nothing else.
//
// Those batches are in the last run's buffer, which the last run (still
// being applied, maybe) points into: rather than copy them, this run
// takes that buffer over, and its own buffer waits as the spare for a
// run that gave its buffer away. (Groups appended after them would grow,
// so copy, a buffer of their size: the run holds the rest only.) A buffer
// is written from its start again only by the last run that took it, once
// that run is recycled: runs are applied and recycled in order, so by
// then no run points into it.
func (fr *frameReader) readRun(run *groupRun, limit int) {
	run.reset()
	own := run.raw
	if own == nil {
		own, fr.spare = fr.spare, nil
	}
	if fr.rest != nil {
		if own != nil {
			fr.spare = own[:0]
		}
		run.raw = fr.rest
		g := fr.restOf
		g.partial = false
		run.groups = append(run.groups, g)
		fr.decodeLast(run, fr.restAt)
		return
	}
	run.raw = keepBuf(own)
	for run.stop == nil && fr.rest == nil && (len(run.groups) == 0 || len(run.raw) < limit && len(run.batches) < runBatches) {
		from := len(run.raw)
		run.raw, run.stop = fr.readGroup(run, run.raw)
		if run.stop == nil {
			fr.decodeLast(run, from)
		}
	}
}

// decodeLast decodes the batches of run's last group, whose raw bytes
// start at from in the run's; if they do not all fit, the run hands its
// buffer, with the rest, on to the next run (fr.rest; see readRun).
func (fr *frameReader) decodeLast(run *groupRun, from int) {
	g := &run.groups[len(run.groups)-1]
	rest := run.decodeInto(&fr.dec, g, run.raw[from:g.rawEnd])
	fr.rest = nil
	if rest != nil {
		fr.rest, fr.restAt, fr.restOf = run.raw[:g.rawEnd], g.rawEnd-len(rest), *g
		run.raw = nil
	}
}

// readGroup appends the raw bytes of the next group to raw and its span
// to run; or says how the segment ends instead.
func (fr *frameReader) readGroup(run *groupRun, raw []byte) ([]byte, *scanStop) {
	groupStart, from := fr.off, len(raw)
	for {
		var fh frameHeader
		var flt *fault
		var err error
		raw, fh, flt, err = fr.appendFrame(raw)
		switch {
		case err == io.EOF && len(raw) > from: // the last group's final frame is missing
			flt = &fault{off: groupStart, end: fr.size, err: errors.New("group cut by the end of the segment")}
			err = nil
		case err == nil && flt == nil:
			fr.frames++
			fr.rawBytes += int64(fh.raw)
			if len(raw)-from > maxGroup {
				err = &DamageError{File: fr.name, Offset: groupStart, Err: fmt.Errorf("group of more than %d bytes", maxGroup)}
			}
		}
		if err != nil || flt != nil {
			return raw[:from], &scanStop{flt: flt, err: err, frames: fr.frames, rawBytes: fr.rawBytes}
		}
		if fh.flags&flagContinued == 0 {
			run.groups = append(run.groups, groupSpan{rawEnd: len(raw), start: groupStart, end: fr.off, frames: fr.frames, rawBytes: fr.rawBytes})
			return raw, nil
		}
	}
}

// runSource hands out a segment's runs of groups in order, the last with
// its stop set; recycle gives back a run for a later one.
type runSource interface {
	next() *groupRun
	recycle(run *groupRun)
}

// keepBuf returns raw's storage emptied for reuse, or nil if it grew
// too big to keep (after a huge group).
func keepBuf(raw []byte) []byte {
	if cap(raw) > 4*maxQueue {
		return nil
	}
	return raw[:0]
}

// inlineRuns reads one group at a time, when asked.
type inlineRuns struct {
	fr  *frameReader
	run groupRun
}

func (s *inlineRuns) next() *groupRun {
	s.fr.readRun(&s.run, 0)
	return &s.run
}

func (s *inlineRuns) recycle(*groupRun) {}

// runBytes and runBatches bound the raw bytes and batches of groups a
// read-ahead run gathers before handing them over (but a run holds one
// whole group at least): enough that the hand-overs cost little next to
// the work on them (groups of a few kilobytes are common: a group is what
// one sync gathered), few enough to keep two runs in memory.
const (
	runBytes   = 256 << 10
	runBatches = 2048
)

// readAhead reads runs of groups in a goroutine, one run ahead of the
// scan: two runs go back and forth, one filled while the scan applies
// the other (buffers move between them: see readRun). With a prep, the goroutine prepares the batches of the runs
// it handed over while it waits for one back (see prepOpen).
type readAhead struct {
	out  chan *groupRun
	free chan *groupRun
	quit chan struct{}
	done chan struct{}
	prep func(*persist.Batch) any // nil: none
	// sent are the runs handed over and not yet back, oldest first (with
	// a prep; the goroutine's own).
	sent []*groupRun
}

func startReadAhead(fr *frameReader, prep func(*persist.Batch) any) *readAhead {
	ra := &readAhead{out: make(chan *groupRun, 1), free: make(chan *groupRun, 2), quit: make(chan struct{}), done: make(chan struct{}), prep: prep}
	ra.free <- newRun()
	ra.free <- newRun()
	go ra.run(fr)
	return ra
}

// prepStep is how many batches the read-ahead prepares between two looks
// at whether a run came back: a few microseconds of work.
const prepStep = 16

// run reads runs until the segment ends or stop is called, and after the
// last one, with a prep, prepares batches until the scan has taken them
// all.
func (ra *readAhead) run(fr *frameReader) {
	defer close(ra.done)
	for {
		run := ra.nextFree()
		if run == nil {
			return
		}
		fr.readRun(run, runBytes)
		if ra.prep != nil {
			n := len(run.batches)
			run.prep = slices.Grow(run.prep[:0], n)[:n]
			clear(run.prep)
			run.back = n
			ra.sent = append(ra.sent, run)
		}
		select {
		case ra.out <- run:
		case <-ra.quit:
			return
		}
		if run.stop != nil {
			for !ra.stopped() && ra.prepareSome() {
			}
			return
		}
	}
}

// nextFree returns a run to fill once the scan gives one back, preparing
// batches meanwhile; nil once stop is called.
func (ra *readAhead) nextFree() *groupRun {
	for {
		select {
		case run := <-ra.free:
			ra.back(run)
			return run
		case <-ra.quit:
			return nil
		default:
		}
		if !ra.prepareSome() {
			select {
			case run := <-ra.free:
				ra.back(run)
				return run
			case <-ra.quit:
				return nil
			}
		}
	}
}

// back forgets run, which the scan gave back: the scan has taken every one
// of its batches, so none is left to prepare.
func (ra *readAhead) back(run *groupRun) {
	if i := slices.Index(ra.sent, run); i >= 0 {
		ra.sent = slices.Delete(ra.sent, i, i+1)
	}
}

// prepareSome prepares a few batches of the runs handed over, from the
// last batch of the newest down (the farthest from where the scan
// applies), and reports whether it prepared any.
func (ra *readAhead) prepareSome() bool {
	for i := len(ra.sent) - 1; i >= 0; i-- {
		if ra.sent[i].prepareBack(ra.prep, prepStep) {
			return true
		}
	}
	return false
}

func (ra *readAhead) stopped() bool {
	select {
	case <-ra.quit:
		return true
	default:
		return false
	}
}

func (ra *readAhead) next() *groupRun       { return <-ra.out }
func (ra *readAhead) recycle(run *groupRun) { ra.free <- run }

// stop ends the goroutine and waits for it: after stop, nothing reads the
// segment's file.
func (ra *readAhead) stop() {
	close(ra.quit)
	<-ra.done
}

// groupStarts reads the rest of the segment's frames, checking each
// (header and stored bytes' checksums) without decompressing it, and
// returns the offsets where its groups start; ok is false if a frame does
// not check or the segment does not end at the end of a group.
func (fr *frameReader) groupStarts() (starts []int64, ok bool) {
	inGroup := false
	for fr.off < fr.size {
		if fr.size-fr.off < frameHdrSize || fr.read(fr.fh) != nil {
			return nil, false
		}
		h, err := parseFrameHeader(fr.fh)
		if err != nil || fr.off+int64(h.stored) > fr.size {
			return nil, false
		}
		if cap(fr.stored) < h.stored {
			fr.stored = make([]byte, h.stored)
		}
		stored := fr.stored[:h.stored]
		if fr.read(stored) != nil || checkFrame(h, stored) != nil {
			return nil, false
		}
		if !inGroup {
			starts = append(starts, fr.off-frameHdrSize-int64(h.stored))
		}
		inGroup = h.flags&flagContinued != 0
	}
	return starts, !inGroup
}

// groupCoverage reads the group whose first frame is at off, and returns
// the revision of its first batch and what its batches cover; ok is false
// if it does not read or decode whole.
func (fr *frameReader) groupCoverage(off int64) (first int64, c coverage, ok bool) {
	fr.off = off
	fr.r.Reset(io.NewSectionReader(fr.f, off, fr.size-off))
	var run groupRun
	raw, stop := fr.readGroup(&run, nil)
	if stop != nil {
		return 0, c, false
	}
	d := &fr.dec
	d.b, d.off = raw, 0
	for n := 0; d.off < len(d.b); n++ {
		b, err := d.next()
		if err != nil {
			return 0, c, false
		}
		if n == 0 {
			first = b.Rev
		}
		c.add(b)
	}
	return first, c, len(raw) > 0
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
