package snapshot

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/cespare/xxhash/v2"
)

// readTrace reads data to its end and describes everything a caller can
// see: each entry and the offset after it, the final error and offset,
// the counts and the leases.
func readTrace(data []byte, ahead bool) string { return readTracePrep(data, ahead, false) }

// prepTest is what the Prepare of readTracePrep makes of an entry.
type prepTest struct {
	main       int64
	key, value []byte
}

// prepareOdd is a Prepare that makes copies of the entries at odd
// revisions.
func prepareOdd(e *Entry, event bool) (any, []byte, []byte) {
	if e.Main%2 == 0 {
		return nil, nil, nil
	}
	p := &prepTest{main: e.Main, key: bytes.Clone(e.Key)}
	if len(e.Value) > 0 {
		p.value = bytes.Clone(e.Value)
	}
	return p, p.key, p.value
}

// readTracePrep is readTrace, with ReadAheadPrepared(prepareOdd) if prep
// (and ahead): a line says so where Prepared is not what prepareOdd made
// of the entry, or the entry's Key and Value are not the prepared ones.
func readTracePrep(data []byte, ahead, prep bool) string {
	var b strings.Builder
	r, err := NewReader(bytes.NewReader(data))
	if err != nil {
		return "NewReader: " + err.Error()
	}
	r.ReuseKeys()
	r.ReuseValues()
	if ahead {
		if prep {
			r.ReadAheadPrepared(prepareOdd)
		} else {
			r.ReadAhead()
		}
		defer r.Close()
	}
	for {
		e, event, err := r.Next()
		if err != nil {
			fmt.Fprintf(&b, "end %v at %d: counts %+v, leases %v, last %d\n", err, r.Offset(), r.Counts(), r.Leases(), r.LastLeaseID())
			return b.String()
		}
		if p, ok := r.Prepared().(*prepTest); prep && (ok != (e.Main%2 == 1) || ok && (p.main != e.Main ||
			unsafe.SliceData(e.Key) != unsafe.SliceData(p.key) || unsafe.SliceData(e.Value) != unsafe.SliceData(p.value))) {
			fmt.Fprintf(&b, "prepared %+v for entry %+v\n", r.Prepared(), e)
		}
		c := *e
		c.Key, c.Value = nil, nil // in the line as their hash
		fmt.Fprintf(&b, "%x %x %v %v %+v at %d\n", xxhash.Sum64(e.Key), xxhash.Sum64(e.Value), e.Value == nil, event, c, r.Offset())
	}
}

// TestReadAhead: with ReadAhead a reader returns what it returns without,
// entry by entry with the same offsets, and ends the same way, for whole
// streams, streams cut anywhere and streams with a byte flipped; and so it
// does with ReadAheadPrepared, whose Prepared is what its Prepare made of
// each entry, whose Key and Value then are.
func TestReadAhead(t *testing.T) {
	var streams [][]byte
	for _, tc := range []struct{ n, m, v int }{{0, 0, 0}, {3, 2, 10}, {3000, 2000, 100}, {3, 2, 3 * BlockSize / 2}} {
		data, _ := sample(t, tc.n, tc.m, tc.v)
		streams = append(streams, data)
	}
	streams = append(streams, leaseSeeds(t)...)
	for i, data := range streams {
		variants := [][]byte{data}
		for _, cut := range []int{len(data) / 3, len(data) - 1, len(data) - 60} {
			if cut > 0 {
				variants = append(variants, data[:cut])
			}
		}
		for _, at := range []int{len(data) / 2, len(data) - 70} {
			if at > 60 {
				flipped := bytes.Clone(data)
				flipped[at] ^= 0x10
				variants = append(variants, flipped)
			}
		}
		for j, v := range variants {
			want, got := readTrace(v, false), readTrace(v, true)
			if got != want {
				t.Fatalf("stream %d variant %d: with ReadAhead\n%.2000s\nwithout\n%.2000s", i, j, got, want)
			}
			if got := readTracePrep(v, true, true); got != want {
				t.Fatalf("stream %d variant %d: with ReadAheadPrepared\n%.2000s\nwithout\n%.2000s", i, j, got, want)
			}
		}
	}
}

// TestReadAheadClose: Close mid-stream, or before the first Next, stops
// the goroutine before it returns; Next then returns ErrClosed.
func TestReadAheadClose(t *testing.T) {
	data, _ := sample(t, 3000, 2000, 100)
	before := runtime.NumGoroutine()
	for _, reads := range []int{0, 1, 1500, 4999} {
		r, err := NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		r.ReadAhead()
		for range reads {
			if _, _, err := r.Next(); err != nil {
				t.Fatal(err)
			}
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if _, _, err := r.Next(); !errors.Is(err, ErrClosed) {
			t.Fatalf("after %d entries and Close: Next says %v", reads, err)
		}
		r.Close() // again: nothing
	}
	// Close waited for each goroutine; allow the runtime a moment to
	// account for their exits.
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("%d goroutines after Close, %d before", n, before)
	}
	// At the end of a stream, Close keeps io.EOF.
	r, _ := NewReader(bytes.NewReader(data))
	r.ReadAhead()
	for {
		if _, _, err := r.Next(); err != nil {
			if err != io.EOF {
				t.Fatal(err)
			}
			break
		}
	}
	r.Close()
	if _, _, err := r.Next(); err != io.EOF {
		t.Fatalf("after the end and Close: %v", err)
	}
}
