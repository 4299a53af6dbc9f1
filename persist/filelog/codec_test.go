package filelog

import (
	"bytes"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/revkv/revkv/internal/zcodec"
	"github.com/revkv/revkv/kv"
	"github.com/revkv/revkv/persist"
	"github.com/revkv/revkv/persist/memfs"
)

func sampleBatches() []persist.Batch {
	return []persist.Batch{
		{Rev: 2, Index: 1, Changes: []persist.Change{{Key: []byte("a"), Value: []byte("1"), Lease: 5}}},
		{Rev: 3, Changes: []persist.Change{{Key: []byte("b"), Value: nil}, {Key: []byte("a"), Delete: true}}},
		{Rev: 3, Index: 9},
		{Rev: 3, Compaction: true, Compact: 0}, // 0 is a compaction too
		{Rev: 4, Changes: []persist.Change{{Key: bytes.Repeat([]byte("k"), 300), Value: bytes.Repeat([]byte("v"), 3*FrameSize/2)}}},
	}
}

func encodeAll(bs []persist.Batch) []byte {
	var raw []byte
	for i := range bs {
		raw = appendBatch(raw, &bs[i])
	}
	return raw
}

func TestBatchRoundTrip(t *testing.T) {
	bs := sampleBatches()
	raw := encodeAll(bs)
	d := batchDecoder{b: raw}
	for i := range bs {
		got, err := d.next()
		if err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		if g, w := fmt.Sprintf("%+v", *got), fmt.Sprintf("%+v", bs[i]); g != w {
			t.Fatalf("batch %d:\n got %s\nwant %s", i, g, w)
		}
	}
	if d.off != len(raw) {
		t.Fatalf("decoded %d of %d bytes", d.off, len(raw))
	}
	// Every proper prefix is short or damaged, never a whole batch more.
	for n := range len(raw) {
		d := batchDecoder{b: raw[:n]}
		for {
			if _, err := d.next(); err != nil {
				break
			}
		}
	}
}

// writeSegment writes a segment holding raw as one group, and returns its
// bytes.
func segmentBytes(raw []byte) []byte {
	return appendFrames(zcodec.NewEncoder(zcodec.Fast), appendSegHeader(nil, 1, 0), raw)
}

func scanBytes(t testing.TB, data []byte, last bool) (scanResult, []persist.Batch, error) {
	return scanRule(t, data, tailRule{last: last})
}

func scanRule(t testing.TB, data []byte, rule tailRule) (scanResult, []persist.Batch, error) {
	return scanWith(t, data, rule, true)
}

// scanWith is scanRule, with the frames read ahead in a goroutine or
// inline. The batches it returns are only good for counting: their
// slices point into buffers the scan reused.
func scanWith(t testing.TB, data []byte, rule tailRule, ahead bool) (scanResult, []persist.Batch, error) {
	fs := memfs.New(memfs.Options{})
	fs.MkdirAll("d")
	f, err := fs.Create("d/" + segFile(1))
	if err != nil {
		t.Fatal(err)
	}
	f.Write(data)
	f.Close()
	var got []persist.Batch
	res, err := scanFrames(fs, "d", 1, rule, ahead, func(b *persist.Batch, off int64) error {
		got = append(got, *b)
		return nil
	})
	return res, got, err
}

func TestScanSegment(t *testing.T) {
	raw := encodeAll(sampleBatches())
	data := segmentBytes(raw)
	res, got, err := scanBytes(t, data, false)
	if err != nil || res.torn || len(got) != 5 || res.end != int64(len(data)) || res.frames < 2 {
		t.Fatalf("whole segment: %+v, %d batches, %v", res, len(got), err)
	}
	if res.cover != (coverage{rev: 4, compact: 0, compacted: true, index: 9}) {
		t.Fatalf("coverage %+v", res.cover)
	}

	// Cut anywhere after the header: in the last segment a torn tail
	// (nothing of the cut group applied), elsewhere damage.
	small := segmentBytes(encodeAll(sampleBatches()[:4]))
	two := append(bytes.Clone(small), appendFrames(zcodec.NewEncoder(zcodec.Fast), nil, encodeAll(sampleBatches()[4:]))...)
	for n := segHdrSize; n < len(two); n++ {
		res, got, err := scanBytes(t, two[:n], true)
		whole := n == len(small) || n == segHdrSize // a group boundary
		if err != nil || res.torn == whole {
			t.Fatalf("last segment cut at %d: %+v, %v", n, res, err)
		}
		wantBatches, wantEnd := 0, int64(segHdrSize)
		if n >= len(small) {
			wantBatches, wantEnd = 4, int64(len(small))
		}
		if len(got) != wantBatches || res.end != wantEnd {
			t.Fatalf("last segment cut at %d: %d batches, end %d; want %d, %d", n, len(got), res.end, wantBatches, wantEnd)
		}
		if whole {
			continue
		}
		if _, _, err := scanBytes(t, two[:n], false); !errors.Is(err, kv.ErrCorrupt) {
			t.Fatalf("middle segment cut at %d: %v, want kv.ErrCorrupt", n, err)
		}
	}

	// Zeros after a good prefix (a file extended but not written) are a
	// torn tail in the last segment.
	zeroed := append(bytes.Clone(small), make([]byte, 100)...)
	if res, got, err := scanBytes(t, zeroed, true); err != nil || !res.torn || len(got) != 4 {
		t.Fatalf("zero tail: %+v, %d, %v", res, len(got), err)
	}

	// A damaged byte where the segment is known durable is damage, even
	// at the very end of the last segment.
	for _, off := range []int{0, 20, segHdrSize, segHdrSize + 5, segHdrSize + 13, segHdrSize + 17, len(small) - 1} {
		bad := bytes.Clone(small)
		bad[off] ^= 1
		_, _, err := scanRule(t, bad, tailRule{last: true, durable: int64(len(small))})
		var de *DamageError
		if !errors.As(err, &de) || !errors.Is(err, kv.ErrCorrupt) {
			t.Fatalf("byte %d flipped: %v, want a DamageError", off, err)
		}
	}
}

// TestScanBigGroup: a group of more batches than a read-ahead run holds
// (runBatches) is applied whole and in order, by the read-ahead and
// inline; a batch that does not decode in it, past the first run's share,
// is damage at the group's offset after exactly the batches before it.
func TestScanBigGroup(t *testing.T) {
	const n = 3*runBatches + 100
	var bs []persist.Batch
	for i := range n {
		bs = append(bs, persist.Batch{Rev: int64(i) + 2, Changes: []persist.Change{{Key: fmt.Appendf(nil, "k%05d", i), Value: []byte("v")}}})
	}
	small := encodeAll([]persist.Batch{{Rev: n + 2, Index: 7}})
	enc := zcodec.NewEncoder(zcodec.Fast)
	whole := appendFrames(enc, segmentBytes(encodeAll(bs)), small) // a big group, then a small one
	bad := segmentBytes(append(append(encodeAll(bs[:runBatches+5]), 'Z'), encodeAll(bs[runBatches+5:])...))
	for _, ahead := range []bool{true, false} {
		scan := func(data []byte) (scanResult, int, error) {
			fs := memfs.New(memfs.Options{})
			fs.MkdirAll("d")
			f, _ := fs.Create("d/" + segFile(1))
			f.Write(data)
			f.Close()
			i := 0
			res, err := scanFrames(fs, "d", 1, tailRule{last: true}, ahead, func(b *persist.Batch, off int64) error {
				want := fmt.Appendf(nil, "k%05d", i)
				switch {
				case off != segHdrSize && i < n:
					return fmt.Errorf("batch %d at offset %d", i, off)
				case i < n && (b.Rev != int64(i)+2 || len(b.Changes) != 1 || !bytes.Equal(b.Changes[0].Key, want)):
					return fmt.Errorf("batch %d: %+v", i, b)
				case i == n && b.Index != 7:
					return fmt.Errorf("last batch %+v", b)
				}
				i++
				return nil
			})
			return res, i, err
		}
		res, got, err := scan(whole)
		if err != nil || got != n+1 || res.batches != n+1 || res.end != int64(len(whole)) || res.torn {
			t.Fatalf("ahead %v: %d batches, %+v, %v", ahead, got, res, err)
		}
		res, got, err = scan(bad)
		var de *DamageError
		if !errors.As(err, &de) || de.Offset != segHdrSize || got != runBatches+5 || res.end != segHdrSize {
			t.Fatalf("ahead %v, a bad batch: %d batches, end %d, %v", ahead, got, res.end, err)
		}
	}
}

// TestTornTailRule: the states a power loss leaves on a filesystem that
// grows a file before writing its data (a frame header then zeros, half a
// payload then zeros, part of a header then zeros, a frame cut short) are
// a torn tail after the durable mark, and damage before it; damage with
// anything but zeros after it is damage everywhere.
func TestTornTailRule(t *testing.T) {
	first := segmentBytes(encodeAll(sampleBatches()[:4]))
	second := appendFrames(zcodec.NewEncoder(zcodec.Fast), nil, encodeAll(sampleBatches()[4:]))
	durable := int64(len(first))
	zeros := func(n int) []byte { return make([]byte, n) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	flipped := bytes.Clone(second) // its last byte: in its last frame
	flipped[len(flipped)-1] ^= 0xff
	hdrFlipped := bytes.Clone(second) // a byte of its first frame's header
	hdrFlipped[3] ^= 0x10
	for _, tc := range []struct {
		name string
		tail []byte
		torn bool
	}{
		{"frame header then zeros", cat(second[:frameHdrSize], zeros(len(second)-frameHdrSize)), true},
		{"half a payload then zeros", cat(second[:frameHdrSize+(len(second)-frameHdrSize)/2], zeros(len(second))), true},
		{"10 header bytes then zeros", cat(second[:10], zeros(100)), true},
		{"all zeros", zeros(200), true},
		{"cut short", second[:len(second)-3], true},
		{"a flipped payload byte at the end", flipped, true},
		{"a flipped payload byte, then more", cat(flipped, second), false},
		// A hole: a frame header of zeros past the mark is torn, whatever
		// follows (out-of-order writeback).
		{"zeros then data", cat(zeros(frameHdrSize), second), true},
		{"a zeroed frame header, then more", cat(zeros(frameHdrSize), flipped[frameHdrSize:], second), true},
		{"a flipped header byte, then more", cat(hdrFlipped, second), false},
		{"a header zeroed but one byte, then more", cat(zeros(frameHdrSize-1), second[frameHdrSize-1:], second), false},
	} {
		data := cat(first, tc.tail)
		res, got, err := scanRule(t, data, tailRule{last: true, durable: durable})
		if tc.torn {
			if err != nil || !res.torn || res.end != durable || len(got) != 4 {
				t.Errorf("%s: %+v, %d batches, %v; want a torn tail at %d", tc.name, res, len(got), err, durable)
			}
		} else if de := (*DamageError)(nil); !errors.As(err, &de) || de.Offset < durable {
			t.Errorf("%s: %v, want a DamageError at or after %d", tc.name, err, durable)
		}
		// Before the durable mark, or in a segment that is not the last,
		// the same bytes are damage.
		for _, rule := range []tailRule{{last: true, durable: int64(len(data))}, {last: false}} {
			if _, _, err := scanRule(t, data, rule); !errors.Is(err, kv.ErrCorrupt) {
				t.Errorf("%s under %+v: %v, want kv.ErrCorrupt", tc.name, rule, err)
			}
		}
	}
}

// FuzzSegment: any bytes as the last segment scan to batches, a torn tail
// or a DamageError; never a panic or an unbounded allocation.
func FuzzSegment(f *testing.F) {
	raw := encodeAll(sampleBatches()[:4])
	f.Add(segmentBytes(raw))
	f.Add(segmentBytes(raw)[:60])
	f.Add(segmentBytes(encodeAll(leaseBatches())))
	f.Add(appendSegHeader(nil, 1, 0))
	f.Add(append(appendSegHeader(nil, 1, 0), make([]byte, 30)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, last := range []bool{false, true} {
			res, _, err := scanBytes(t, data, last)
			if err != nil && !errors.Is(err, kv.ErrCorrupt) {
				t.Fatalf("error %v is not kv.ErrCorrupt", err)
			}
			if err == nil && res.end > int64(len(data)) {
				t.Fatalf("end %d past %d bytes", res.end, len(data))
			}
			// Read inline, the segment scans the same.
			res2, got2, err2 := scanWith(t, data, tailRule{last: last}, false)
			_, got, _ := scanBytes(t, data, last)
			if fmt.Sprintf("%+v %d %v", res, len(got), err) != fmt.Sprintf("%+v %d %v", res2, len(got2), err2) {
				t.Fatalf("read ahead: %+v, %d batches, %v; inline: %+v, %d, %v", res, len(got), err, res2, len(got2), err2)
			}
		}
		checkSealedCovered(t, data)
	})
}

// checkSealedCovered: sealedCovered never calls a segment covered by a
// snapshot that does not hold one of its batches, on a segment whose
// revisions never go down (as a log's never do).
func checkSealedCovered(t *testing.T, data []byte) {
	_, got, _ := scanBytes(t, data, false)
	var all coverage
	for i := range got {
		if i > 0 && got[i].Rev < got[i-1].Rev {
			return
		}
		all.add(&got[i])
	}
	fs := memfs.New(memfs.Options{})
	fs.MkdirAll("d")
	f, err := fs.Create("d/" + segFile(1))
	if err != nil {
		t.Fatal(err)
	}
	f.Write(data)
	f.Close()
	for _, s := range []snapInfo{
		{rev: all.rev, compact: all.compact, index: all.index},
		{rev: all.rev + 1, compact: all.compact, index: all.index},
		{rev: all.rev - 1, compact: all.compact, index: all.index},
		{rev: all.rev, compact: all.compact - 1, index: all.index},
		{rev: all.rev, compact: all.compact, index: all.index - 1},
	} {
		if !sealedCovered(fs, "d", 1, s) {
			continue
		}
		for i := range got {
			var c coverage
			c.add(&got[i])
			if got[i].Rev >= s.rev && !c.coveredBy(s) {
				t.Fatalf("covered by %+v, but batch %d (%+v) is not held", s, i, got[i])
			}
		}
	}
}

// FuzzBatch: the batch decoder on any bytes returns batches, errShort or
// an error; a decoded batch re-encodes to the bytes it came from.
func FuzzBatch(f *testing.F) {
	for _, b := range sampleBatches()[:4] {
		f.Add(appendBatch(nil, &b))
	}
	f.Add([]byte{kindChanges, 2, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	for _, b := range leaseBatches() {
		f.Add(appendBatch(nil, &b))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d := batchDecoder{b: data}
		for {
			start := d.off
			b, err := d.next()
			if err != nil {
				return
			}
			if again := appendBatch(nil, b); !bytes.Equal(again, data[start:d.off]) {
				// Varints have more than one encoding; the decoded
				// batch must still be the same batch.
				d2 := batchDecoder{b: again}
				b2, err := d2.next()
				if err != nil || fmt.Sprintf("%+v", *b2) != fmt.Sprintf("%+v", *b) {
					t.Fatalf("re-encoding %+v does not decode to it: %+v, %v", b, b2, err)
				}
			}
		}
	})
}

// FuzzManifest: any bytes as a manifest parse to one that encodes back to
// the same bytes, or an error; never a panic or an unbounded allocation.
func FuzzManifest(f *testing.F) {
	f.Add((&manifest{id: 1}).append(nil))
	f.Add((&manifest{id: 7, clean: true, segs: []segMark{{3, 40}, {4, 1000}}, snaps: []uint64{2, 3}}).append(nil))
	f.Add([]byte("revkvman"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseManifest(b)
		if err != nil {
			return
		}
		if got := m.append(nil); !bytes.Equal(got, b) {
			t.Fatalf("parsed %+v, which encodes to other bytes", m)
		}
	})
}

// TestScanGroupsRapid: segments of groups of any size, big ones (more
// batches than a run holds, whose rest goes on in the runs after) next to
// small ones, are applied whole, in order and unchanged, by the read-ahead
// and inline, each with the Prepared that the scan's prep made of it, or
// none (inline, none; ahead, those the read-ahead did not get to first).
// Under -race it also checks that the reader never writes bytes a run it
// handed over still points to, nor a batch the scan has taken.
func TestScanGroupsRapid(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		sizes := rapid.SliceOfN(rapid.OneOf(rapid.IntRange(1, 40), rapid.IntRange(runBatches-2, 3*runBatches+50)), 1, 6).Draw(t, "groups")
		enc := zcodec.NewEncoder(zcodec.Fast)
		data := appendSegHeader(nil, 1, 0)
		var want []persist.Batch
		for _, n := range sizes {
			var g []persist.Batch
			for range n {
				i := len(want) + len(g)
				v := bytes.Repeat(fmt.Appendf(nil, "%d.", i), 1+i%7)
				g = append(g, persist.Batch{Rev: int64(i) + 2, Changes: []persist.Change{{Key: fmt.Appendf(nil, "k%06d", i), Value: v}}})
			}
			data = appendFrames(enc, data, encodeAll(g))
			want = append(want, g...)
		}
		for _, ahead := range []bool{true, false} {
			fs := memfs.New(memfs.Options{})
			fs.MkdirAll("d")
			f, _ := fs.Create("d/" + segFile(1))
			f.Write(data)
			f.Close()
			i := 0
			prep := func(b *persist.Batch) any { return b.Rev }
			res, err := scanFramesPrep(fs, "d", 1, tailRule{last: true}, ahead, prep, func(b *persist.Batch, off int64) error {
				if i >= len(want) {
					return fmt.Errorf("batch %d of %d", i, len(want))
				}
				w := &want[i]
				if b.Prepared != nil && (!ahead || b.Prepared != w.Rev) {
					return fmt.Errorf("batch %d prepared %v", i, b.Prepared)
				}
				if b.Rev != w.Rev || len(b.Changes) != 1 || !bytes.Equal(b.Changes[0].Key, w.Changes[0].Key) || !bytes.Equal(b.Changes[0].Value, w.Changes[0].Value) {
					return fmt.Errorf("batch %d: %+v, want %+v", i, b, w)
				}
				i++
				return nil
			})
			if err != nil || i != len(want) || res.batches != len(want) || res.end != int64(len(data)) || res.torn {
				t.Fatalf("ahead %v: %d of %d batches, %+v, %v", ahead, i, len(want), res, err)
			}
		}
	})
}

// TestScanPrepareShared: the read-ahead prepares the batches it gets to
// before the scan, and the scan takes the others unprepared: with a slow
// scan the read-ahead prepares some (it has time while it waits for a run
// back), with a slow prep the scan takes some unprepared; every batch is applied
// once, in order, with what prep made of it or nothing, and prep runs at
// most once per batch.
func TestScanPrepareShared(t *testing.T) {
	const n = 4*runBatches + 10
	var bs []persist.Batch
	for i := range n {
		bs = append(bs, persist.Batch{Rev: int64(i) + 2, Changes: []persist.Change{{Key: fmt.Appendf(nil, "k%06d", i), Value: []byte("v")}}})
	}
	fs := memfs.New(memfs.Options{})
	fs.MkdirAll("d")
	f, _ := fs.Create("d/" + segFile(1))
	f.Write(segmentBytes(encodeAll(bs)))
	f.Close()
	for _, slow := range []string{"scan", "prep"} {
		var calls atomic.Int64
		prep := func(b *persist.Batch) any {
			calls.Add(1)
			if slow == "prep" {
				time.Sleep(20 * time.Microsecond)
			}
			return b.Rev
		}
		i, prepared := 0, 0
		_, err := scanPrepared(fs, "d", 1, tailRule{last: true}, prep, func(b *persist.Batch, off int64) error {
			if b.Rev != int64(i)+2 {
				return fmt.Errorf("batch %d at revision %d", i, b.Rev)
			}
			if b.Prepared != nil {
				if b.Prepared != b.Rev {
					return fmt.Errorf("batch %d prepared %v", i, b.Prepared)
				}
				prepared++
			}
			if slow == "scan" && i%64 == 0 {
				time.Sleep(100 * time.Microsecond)
			}
			i++
			return nil
		})
		if err != nil || i != n {
			t.Fatalf("slow %s: %d of %d batches, %v", slow, i, n, err)
		}
		if c := calls.Load(); c < int64(prepared) || c > n {
			t.Fatalf("slow %s: prep ran %d times for %d prepared batches of %d", slow, c, prepared, n)
		}
		t.Logf("slow %s: %d of %d batches prepared", slow, prepared, n)
		if slow == "scan" && prepared == 0 || slow == "prep" && prepared == n {
			t.Errorf("slow %s: %d of %d batches prepared", slow, prepared, n)
		}
	}
}
