package snapshot

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/revkv/revkv/kv"
)

// sample writes a snapshot of n base entries and m events, with values of
// up to maxValue bytes, and returns it with the entries written.
func sample(t testing.TB, n, m, maxValue int) ([]byte, []Entry) {
	rng := rand.New(rand.NewPCG(uint64(n), uint64(m)))
	var buf bytes.Buffer
	h := Header{Rev: int64(m) + 10, CompactRev: 10, ConsistentIndex: 99}
	w, err := NewWriter(&buf, h)
	if err != nil {
		t.Fatal(err)
	}
	var all []Entry
	for i := range n {
		e := Entry{Key: []byte(fmt.Sprintf("key%08d", i)), Value: bytes.Repeat([]byte{byte(i)}, rng.IntN(maxValue+1)),
			Main: 5, Create: 3, Version: 2, Lease: int64(i % 3)}
		if err := w.Base(&e); err != nil {
			t.Fatal(err)
		}
		all = append(all, e)
	}
	for i := range m {
		e := Entry{Key: []byte(fmt.Sprintf("ev%d", i)), Main: int64(11 + i), Delete: i%4 == 3}
		if !e.Delete {
			e.Value, e.Create, e.Version = []byte("v"), e.Main, 1
		}
		if err := w.Event(&e); err != nil {
			t.Fatal(err)
		}
		all = append(all, e)
	}
	if err := w.Finish(uint64(n)); err != nil {
		t.Fatal(err)
	}
	if w.Written() != int64(buf.Len()) {
		t.Fatalf("Written %d, wrote %d", w.Written(), buf.Len())
	}
	return buf.Bytes(), all
}

func readAll(data []byte) (Header, []Entry, Counts, error) { return readAllKeys(data, false) }

// readAllKeys is readAll, with the reader reusing its key buffer if
// reuse (the entries it returns have keys of their own).
func readAllKeys(data []byte, reuse bool) (Header, []Entry, Counts, error) {
	return readAllWith(data, reuse, false)
}

// readAllWith is readAllKeys, with every entry read by the reader's
// general path if byteWise (not straight from its block).
func readAllWith(data []byte, reuse, byteWise bool) (Header, []Entry, Counts, error) {
	r, err := NewReader(bytes.NewReader(data))
	if err != nil {
		return Header{}, nil, Counts{}, err
	}
	r.byteWise = byteWise
	if reuse {
		r.ReuseKeys()
		r.ReuseValues()
	}
	var got []Entry
	for {
		e, _, err := r.Next()
		if err == io.EOF {
			return r.Header(), got, r.Counts(), nil
		}
		if err != nil {
			return r.Header(), got, Counts{}, err
		}
		c := *e
		if reuse {
			c.Key = bytes.Clone(c.Key)
			if c.Value != nil {
				c.Value = bytes.Clone(c.Value)
			}
		}
		got = append(got, c)
	}
}

// TestReuseKeys: a reader reusing its key and value buffers reads the
// same entries, allocates nothing per entry, and hands out keys and values
// that an append cannot write past (they may point into its block).
func TestReuseKeys(t *testing.T) {
	data, want := sample(t, 3000, 2000, 100)
	_, got, _, err := readAllKeys(data, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("read %d entries, wrote %d", len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(AppendEntry(nil, &got[i]), AppendEntry(nil, &want[i])) {
			t.Fatalf("entry %d: %+v, wrote %+v", i, got[i], want[i])
		}
	}
	r, _ := NewReader(bytes.NewReader(data))
	r.ReuseKeys()
	r.ReuseValues()
	for range 10 { // past the first block's read and the buffers' growth
		if _, _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
	}
	allocs := testing.AllocsPerRun(1000, func() {
		e, _, err := r.Next()
		if err != nil {
			t.Fatal(err)
		}
		if cap(e.Key) != len(e.Key) || cap(e.Value) != len(e.Value) {
			t.Fatalf("key of %d bytes with capacity %d, value of %d with %d", len(e.Key), cap(e.Key), len(e.Value), cap(e.Value))
		}
	})
	if allocs > 0.01 {
		t.Errorf("%.2f allocations per entry", allocs)
	}
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct{ n, m, maxValue int }{
		{0, 0, 0},
		{1, 0, 10},
		{0, 5, 0},
		{3000, 2000, 100},           // several blocks
		{3, 2, 3 * BlockSize / 2},   // entries spanning blocks
		{2, 1, kv.MaxValueSize / 4}, // a large value
	} {
		data, want := sample(t, tc.n, tc.m, tc.maxValue)
		// Both ways of reading an entry: straight from its block, and
		// the general path's.
		for _, byteWise := range []bool{false, true} {
			h, got, c, err := readAllWith(data, false, byteWise)
			if err != nil {
				t.Fatalf("%+v: %v", tc, err)
			}
			if h.ConsistentIndex != 99 || h.CompactRev != 10 {
				t.Fatalf("header %+v", h)
			}
			if len(got) != len(want) {
				t.Fatalf("%+v: read %d entries, wrote %d", tc, len(got), len(want))
			}
			for i := range got {
				if !bytes.Equal(AppendEntry(nil, &got[i]), AppendEntry(nil, &want[i])) {
					t.Fatalf("%+v: entry %d: %+v, wrote %+v", tc, i, got[i], want[i])
				}
			}
			if c.Base != uint64(tc.n) || c.Events != uint64(tc.m) || c.Keys != uint64(tc.n) || c.Revisions != uint64(tc.m) {
				t.Fatalf("%+v: counts %+v", tc, c)
			}
		}
	}
}

// TestCompresses: compressible entries are stored compressed.
func TestCompresses(t *testing.T) {
	data, _ := sample(t, 20000, 0, 64)
	st, err := ReadStatus(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if ratio := float64(st.BodySize) / float64(st.Size); ratio < 3 {
		t.Fatalf("body %d bytes stored in %d: ratio %.1f", st.BodySize, st.Size, ratio)
	}
}

// TestDamage: every truncation and every flipped byte is an error
// wrapping kv.ErrCorrupt (or ErrVersion for the version field), never a
// panic and never a clean end of stream.
func TestDamage(t *testing.T) {
	data, _ := sample(t, 200, 100, 300)
	for n := range len(data) {
		if _, _, _, err := readAll(data[:n]); !errors.Is(err, kv.ErrCorrupt) {
			t.Fatalf("truncated to %d of %d bytes: %v", n, len(data), err)
		}
	}
	for i := range data {
		bad := bytes.Clone(data)
		bad[i] ^= 0x5a
		_, _, _, err := readAll(bad)
		if !errors.Is(err, kv.ErrCorrupt) && !errors.Is(err, ErrVersion) {
			t.Fatalf("byte %d flipped: %v", i, err)
		}
	}
}

// rawStream builds a stream by hand: a valid header and the given blocks
// of body bytes, stored uncompressed with good checksums, then the end
// mark and a trailer that matches whatever counts are given.
func rawStream(h Header, blocks [][]byte, c Counts) []byte {
	b := appendHeader(nil, h)
	sum := xxhash.New()
	for _, blk := range blocks {
		var hdr [8]byte
		binary.LittleEndian.PutUint32(hdr[:], uint32(len(blk)))
		binary.LittleEndian.PutUint32(hdr[4:], uint32(len(blk)))
		d := xxhash.New()
		d.Write(hdr[:])
		d.Write(blk)
		b = append(b, hdr[:]...)
		b = binary.LittleEndian.AppendUint64(b, d.Sum64())
		b = append(b, blk...)
		sum.Write(blk)
		c.BodySize += uint64(len(blk))
	}
	b = append(b, make([]byte, 8)...)
	return appendTrailer(b, c, sum.Sum64())
}

// TestRejects: streams whose checksums all hold but whose content breaks
// the format.
func TestRejects(t *testing.T) {
	h := Header{Rev: 5, CompactRev: -1}
	ev := func(key string) []byte {
		return AppendEntry([]byte{tagEvent}, &Entry{Key: []byte(key), Main: 2, Create: 2, Version: 1})
	}
	huge := binary.AppendUvarint([]byte{tagEvent, 0}, kv.MaxKeySize+1)
	hugeValue := append([]byte{tagEvent, 0, 1, 'k', 4, 0, 4, 2, 0}, binary.AppendUvarint(nil, kv.MaxValueSize+1)...)
	tests := []struct {
		name   string
		blocks [][]byte
		c      Counts
	}{
		{"bad tag", [][]byte{{'X'}}, Counts{}},
		{"bad flags", [][]byte{{tagEvent, 7}}, Counts{Events: 1}},
		{"key over the limit", [][]byte{huge}, Counts{Events: 1}},
		{"value over the limit", [][]byte{hugeValue}, Counts{Events: 1}},
		{"empty key", [][]byte{ev("")}, Counts{Events: 1, Revisions: 1}},
		{"entry cut by the end", [][]byte{ev("abc")[:5]}, Counts{Events: 1}},
		{"base after event", [][]byte{append(ev("a"), AppendEntry([]byte{tagBase}, &Entry{Key: []byte("b"), Main: 1, Version: 1})...)}, Counts{Events: 1, Base: 1, Revisions: 1}},
		{"counts disagree", [][]byte{ev("a")}, Counts{Events: 2, Revisions: 1}},
		{"put with version 0", [][]byte{AppendEntry([]byte{tagEvent}, &Entry{Key: []byte("a"), Main: 2})}, Counts{Events: 1, Revisions: 1}},
	}
	for _, tt := range tests {
		if _, _, _, err := readAll(rawStream(h, tt.blocks, tt.c)); !errors.Is(err, kv.ErrCorrupt) {
			t.Errorf("%s: %v, want kv.ErrCorrupt", tt.name, err)
		}
	}
	// The same machinery makes a valid stream, so the cases above fail
	// for their own reason.
	if _, got, _, err := readAll(rawStream(h, [][]byte{ev("a")}, Counts{Events: 1, Revisions: 1})); err != nil || len(got) != 1 {
		t.Fatalf("hand-built valid stream: %v, %d entries", err, len(got))
	}
	if _, err := NewWriter(io.Discard, Header{Rev: 0}); err == nil {
		t.Error("NewWriter accepted revision 0")
	}
	if _, err := NewWriter(io.Discard, Header{Rev: 3, CompactRev: 4}); err == nil {
		t.Error("NewWriter accepted a compacted revision above the revision")
	}
}

// TestStatusHash: Status's hash covers base entries and events after the
// compacted revision, as the engine's HashByRev does.
func TestStatusHash(t *testing.T) {
	data, all := sample(t, 50, 30, 20)
	st, err := ReadStatus(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	h := NewHasher()
	for i := range all {
		if all[i].Main > st.CompactRev || i < 50 {
			h.Add(&all[i])
		}
	}
	if got := h.Sum32(); got != st.Hash {
		t.Fatalf("status hash %08x, computed %08x", st.Hash, got)
	}
	if st.Size != int64(len(data)) || st.Rev != 40 || st.Keys != 50 {
		t.Fatalf("status %+v", st)
	}
}

type failWriter struct{ n int }

func (w *failWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		k := w.n
		w.n = 0
		return k, errors.New("disk full")
	}
	w.n -= len(p)
	return len(p), nil
}

// TestWriteErrorSticks: a write error is returned, and by every later
// call.
func TestWriteErrorSticks(t *testing.T) {
	w, err := NewWriter(&failWriter{n: 100}, Header{Rev: 1, CompactRev: -1})
	if err != nil {
		t.Fatal(err)
	}
	var werr error
	for i := 0; werr == nil && i < 100000; i++ {
		werr = w.Event(&Entry{Key: []byte(fmt.Sprint(i)), Main: 2, Create: 2, Version: 1, Value: make([]byte, 100)})
	}
	if werr == nil {
		t.Fatal("no error from a failing writer")
	}
	if err := w.Finish(0); err == nil {
		t.Fatal("Finish after a write error succeeded")
	}
}

// FuzzReader: any bytes give entries and io.EOF, or an error wrapping
// kv.ErrCorrupt or ErrVersion; never a panic, never an allocation beyond
// the format's bounds.
func FuzzReader(f *testing.F) {
	for _, tc := range []struct{ n, m, v int }{{0, 0, 0}, {2, 3, 5}, {40, 20, 200}} {
		data, _ := sample(f, tc.n, tc.m, tc.v)
		f.Add(data)
	}
	f.Add(rawStream(Header{Rev: 5, CompactRev: -1}, [][]byte{{'X'}}, Counts{}))
	for _, d := range leaseSeeds(f) {
		f.Add(d)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, got, _, err := readAll(data)
		if err != nil && !errors.Is(err, kv.ErrCorrupt) && !errors.Is(err, ErrVersion) {
			t.Fatalf("error %v wraps neither kv.ErrCorrupt nor ErrVersion", err)
		}
		// Reusing the key and value buffers changes nothing read.
		_, got2, _, err2 := readAllKeys(data, true)
		if (err == nil) != (err2 == nil) || len(got) != len(got2) {
			t.Fatalf("with ReuseKeys and ReuseValues: %d entries (%v), without %d (%v)", len(got2), err2, len(got), err)
		}
		for i := range got {
			if !bytes.Equal(AppendEntry(nil, &got[i]), AppendEntry(nil, &got2[i])) {
				t.Fatalf("entry %d with ReuseKeys and ReuseValues: %+v, without %+v", i, got2[i], got[i])
			}
		}
		// Read ahead, everything reads the same.
		if got, want := readTrace(data, true), readTrace(data, false); got != want {
			t.Fatalf("with ReadAhead\n%.2000s\nwithout\n%.2000s", got, want)
		}
		// Entries read straight from their block read as the general
		// path reads them, and fail with the same errors.
		_, got3, _, err3 := readAllWith(data, true, true)
		if fmt.Sprint(err) != fmt.Sprint(err3) || len(got) != len(got3) {
			t.Fatalf("byte-wise: %d entries (%v), from the block %d (%v)", len(got3), err3, len(got), err)
		}
		for i := range got {
			if !bytes.Equal(AppendEntry(nil, &got[i]), AppendEntry(nil, &got3[i])) {
				t.Fatalf("entry %d byte-wise: %+v, from the block %+v", i, got3[i], got[i])
			}
		}
	})
}
