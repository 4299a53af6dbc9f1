package snapshot

import (
	"errors"
)

// ErrClosed is what Next returns after Close.
var ErrClosed = errors.New("revkv/snapshot: reader closed")

// ReadAhead makes the reader read, check, decompress and decode the
// stream in a goroutine of its own, up to two chunks of entries (a few
// hundred kilobytes) ahead of Next, so that a caller on another core
// applies entries while the next ones are decoded. Next returns the same
// entries and errors as without it, and Offset what it would have said;
// each Entry's Key and Value are valid only until the next call to Next
// (as after ReuseKeys and ReuseValues). The caller must call Close once
// done with the reader, whether it read to the end or not: Close stops
// the goroutine and waits for it, and until then the goroutine may read
// from the stream. Call ReadAhead before the first Next (after it, or
// again, it does nothing).
func (sr *Reader) ReadAhead() { sr.ReadAheadPrepared(nil) }

// Prepare makes, from an entry the read-ahead goroutine has decoded, what
// its reader's caller will need for it (see ReadAheadPrepared), or nil.
// If p is not nil, key and value hold the entry's Key and Value (value nil
// if the Value is empty), in memory of p's that no one writes: the
// entry's Key and Value are then those, not copies.
type Prepare func(e *Entry, event bool) (p any, key, value []byte)

// ReadAheadPrepared is ReadAhead, with prep (if not nil) called on every
// entry in the read-ahead goroutine, as it is decoded: so that work a
// caller does per entry (such as making the record a store keeps it in)
// runs on another core, ahead of Next. After Next returns an entry,
// Prepared returns what prep made of it. prep must be safe to call on
// another goroutine than the caller's, and may see entries that Next
// never returns (past damage, or after Close).
func (sr *Reader) ReadAheadPrepared(prep Prepare) {
	if sr.ahead != nil || sr.err != nil || sr.body != nil || sr.end { // not before the first Next
		return
	}
	src := &Reader{r: sr.r, h: sr.h, version: sr.version, off: sr.off, sum: sr.sum}
	src.ReuseKeys()
	src.ReuseValues()
	a := &ahead{src: src, prep: prep, out: make(chan *entryChunk, aheadChunks-1), free: make(chan *entryChunk, aheadChunks),
		quit: make(chan struct{}), done: make(chan struct{})}
	for range aheadChunks {
		// Room for a full chunk from the start: grown one append at a
		// time, the arrays would cost twice as much in garbage.
		a.free <- &entryChunk{entries: make([]aheadEntry, 0, chunkEntries), data: make([]byte, 0, chunkBytes+4<<10)}
	}
	sr.ahead = a
	go a.run()
}

// Close stops the goroutine of ReadAhead, if any, and waits for it to end;
// later calls to Next return ErrClosed (or the error, or io.EOF, that an
// earlier call returned). It returns nil, and calling it again does
// nothing.
func (sr *Reader) Close() error {
	if sr.err == nil {
		sr.err = ErrClosed
	}
	if a := sr.ahead; a != nil && !a.closed {
		a.closed = true
		close(a.quit)
		<-a.done
	}
	return nil
}

const (
	// aheadChunks is how many chunks go round: one the caller reads, one
	// waiting, one being filled.
	aheadChunks = 3
	// chunkEntries and chunkBytes bound a chunk: enough entries that
	// handing one over costs little next to decoding them, few enough
	// that the caller starts soon and memory stays small.
	chunkEntries = 1024
	chunkBytes   = 256 << 10
)

// ahead is the state of ReadAhead: the reader the goroutine runs, and the
// chunks going back and forth.
type ahead struct {
	src        *Reader
	prep       Prepare // nil: none
	out, free  chan *entryChunk
	quit, done chan struct{}
	closed     bool

	cur *entryChunk // the chunk Next reads from
	i   int         // its next entry
}

// entryChunk is a run of decoded entries, their keys and values copied
// into data, and, if the stream ends after them, how (io.EOF or the
// error).
type entryChunk struct {
	entries []aheadEntry
	data    []byte
	err     error
}

// aheadEntry is an entry whose Key and Value are in its chunk's data, or,
// if it was prepared (p not nil), in e.
type aheadEntry struct {
	e          Entry // Key and Value unset unless prepared
	p          any   // what Prepare made of it
	key, value span
	event      bool
	off        int64 // the reader's Offset after reading it
}

// span is where bytes are in a chunk's data.
type span struct{ at, n int }

// add copies e into the chunk.
func (c *entryChunk) add(e *Entry, event bool, off int64) {
	ae := aheadEntry{e: *e, event: event, off: off}
	ae.e.Key, ae.e.Value = nil, nil
	ae.key = span{len(c.data), len(e.Key)}
	c.data = append(c.data, e.Key...)
	ae.value = span{len(c.data), len(e.Value)}
	c.data = append(c.data, e.Value...)
	c.entries = append(c.entries, ae)
}

// addPrepared adds e, which Prepare made p of, with the key and value p
// holds.
func (c *entryChunk) addPrepared(e *Entry, event bool, off int64, p any, key, value []byte) {
	ae := aheadEntry{e: *e, p: p, event: event, off: off}
	ae.e.Key, ae.e.Value = key, value
	c.entries = append(c.entries, ae)
}

// bytes returns the bytes of s, nil if none, clipped: an append to them
// cannot write into the next entry's.
func (c *entryChunk) bytes(s span) []byte {
	if s.n == 0 {
		return nil
	}
	return c.data[s.at : s.at+s.n : s.at+s.n]
}

// run fills chunks until the stream ends or Close says stop.
func (a *ahead) run() {
	defer close(a.done)
	for {
		var c *entryChunk
		select {
		case c = <-a.free:
		case <-a.quit:
			return
		}
		a.fill(c)
		select {
		case a.out <- c:
		case <-a.quit:
			return
		}
		if c.err != nil {
			return
		}
	}
}

// fill empties c and reads entries into it until it is full or the
// stream ends.
func (a *ahead) fill(c *entryChunk) {
	clear(c.entries) // what Prepare made of the last ones
	c.entries, c.err = c.entries[:0], nil
	if cap(c.data) > 4*chunkBytes { // after a huge value
		c.data = nil
	}
	c.data = c.data[:0]
	for len(c.entries) < chunkEntries && len(c.data) < chunkBytes {
		e, event, err := a.src.Next()
		if err != nil {
			c.err = err
			return
		}
		if a.prep != nil {
			if p, k, v := a.prep(e, event); p != nil {
				c.addPrepared(e, event, a.src.Offset(), p, k, v)
				continue
			}
		}
		c.add(e, event, a.src.Offset())
	}
}

// next is Next with ReadAhead: the next entry of the current chunk, the
// next chunk's first, or how the stream ended. At the end it brings the
// trailer, the leases and the offset the goroutine read into sr (the
// goroutine has ended by then: it sends nothing after the last chunk).
func (a *ahead) next(sr *Reader) (*Entry, bool, error) {
	for a.cur == nil || a.i == len(a.cur.entries) {
		if a.cur != nil {
			if err := a.cur.err; err != nil {
				sr.off, sr.trailer = a.src.off, a.src.trailer
				sr.leases, sr.lastLeaseID = a.src.leases, a.src.lastLeaseID
				return nil, false, err
			}
			a.free <- a.cur
		}
		a.cur, a.i = <-a.out, 0
	}
	ae := &a.cur.entries[a.i]
	a.i++
	sr.off = ae.off
	sr.e, sr.prepared = ae.e, ae.p
	if ae.p == nil {
		sr.e.Key, sr.e.Value = a.cur.bytes(ae.key), a.cur.bytes(ae.value)
	}
	return &sr.e, ae.event, nil
}
