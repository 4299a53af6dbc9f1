package filelog

import (
	"errors"
	"fmt"
	"path"
	"testing"

	"github.com/revkv/revkv/internal/zcodec"
	"github.com/revkv/revkv/persist"
	"github.com/revkv/revkv/persist/memfs"
)

// TestSealedCovered: a sealed segment is judged covered by a snapshot from
// its last groups alone, only when every batch in it is held by the
// snapshot, and never when a frame does not check or the segment does
// not end at a group's end.
func TestSealedCovered(t *testing.T) {
	put := func(rev int64) persist.Batch {
		return persist.Batch{Rev: rev, Index: uint64(rev), Changes: []persist.Change{{Key: []byte("k"), Value: []byte("v")}}}
	}
	puts := func(from, to int64) []persist.Batch {
		var bs []persist.Batch
		for r := from; r <= to; r++ {
			bs = append(bs, put(r))
		}
		return bs
	}
	enc := zcodec.NewEncoder(zcodec.Fast)
	segment := func(groups ...[]persist.Batch) []byte {
		b := appendSegHeader(nil, 1, 0)
		for _, g := range groups {
			b = appendFrames(enc, b, encodeAll(g))
		}
		return b
	}
	compact := persist.Batch{Rev: 10, Index: 10, Compaction: true, Compact: 8}
	lease := persist.Batch{Rev: 10, Index: 10, Leases: []persist.LeaseChange{{ID: 1, TTL: 5}}}
	index := persist.Batch{Rev: 10, Index: 11}
	atTen := make([][]persist.Batch, maxTailGroups+1) // groups at revision 10 alone
	atTen[0] = puts(1, 10)
	for i := 1; i < len(atTen); i++ {
		atTen[i] = []persist.Batch{index}
	}
	whole := segment(puts(1, 5), puts(6, 10))
	flipped := append([]byte(nil), whole...)
	flipped[segHdrSize+frameHdrSize+2] ^= 1 // the first group's stored bytes
	// A group of two frames, and the same cut after its first frame
	// (continued).
	big := []persist.Batch{{Rev: 3, Changes: []persist.Change{{Key: []byte("k"), Value: make([]byte, FrameSize)}}}}
	two := segment(puts(1, 2), big)
	cont := two[:len(two)-len(appendFrames(enc, nil, encodeAll(big)[FrameSize:]))]
	type testCase struct {
		name string
		data []byte
		snap snapInfo
		want bool
	}
	cases := []testCase{
		{"at the last revision", whole, snapInfo{rev: 10, compact: -1, index: 10}, true},
		{"past it", whole, snapInfo{rev: 12, compact: -1, index: 12}, true},
		{"below it", whole, snapInfo{rev: 9, compact: -1, index: 9}, false},
		{"index past the snapshot's", whole, snapInfo{rev: 10, compact: -1, index: 9}, false},
		{"compaction after the snapshot", segment(puts(1, 10), []persist.Batch{compact}), snapInfo{rev: 10, compact: 5, index: 10}, false},
		{"compaction held", segment(puts(1, 10), []persist.Batch{compact}), snapInfo{rev: 10, compact: 8, index: 10}, true},
		{"lease batch at the snapshot's revision", segment(puts(1, 10), []persist.Batch{lease}), snapInfo{rev: 10, compact: -1, index: 10}, false},
		{"lease batch below it", segment(append(puts(1, 10), lease)), snapInfo{rev: 11, compact: -1, index: 11}, true},
		{"the last group starts at the snapshot's revision", segment(puts(1, 9), puts(10, 10), []persist.Batch{index}), snapInfo{rev: 10, compact: -1, index: 11}, true},
		{"one group", segment(puts(1, 10)), snapInfo{rev: 10, compact: -1, index: 10}, true},
		{"too many groups to look back", segment(atTen...), snapInfo{rev: 10, compact: -1, index: 11}, false},
		{"no group", segment(), snapInfo{rev: 10, compact: -1, index: 10}, false},
		{"a frame that does not check", flipped, snapInfo{rev: 10, compact: -1, index: 10}, false},
		{"cut in a frame", whole[:len(whole)-3], snapInfo{rev: 10, compact: -1, index: 10}, false},
		{"cut in a frame header", whole[:len(segment(puts(1, 5)))+10], snapInfo{rev: 10, compact: -1, index: 10}, false},
		{"a group of two frames", two, snapInfo{rev: 3, compact: -1, index: 3}, true},
		{"ends in a continued frame", cont, snapInfo{rev: 3, compact: -1, index: 3}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := memfs.New(memfs.Options{})
			fs.MkdirAll("d")
			f, err := fs.Create("d/" + segFile(1))
			if err != nil {
				t.Fatal(err)
			}
			f.Write(tc.data)
			f.Close()
			if got := sealedCovered(fs, "d", 1, tc.snap); got != tc.want {
				t.Fatalf("sealedCovered = %v, want %v", got, tc.want)
			}
		})
	}
}

// BenchmarkCoveredSegment: what an open spends on the segment a snapshot
// covers in bench/compare's restore directory (100k batches of one put of
// `k%015d` and 128 zero bytes, in groups of 63), reading it (scan, as
// before a snapshot sealed its segment; the batches only counted, not
// applied) or judging it covered (sealedCovered).
func BenchmarkCoveredSegment(b *testing.B) {
	const n = 100_000
	enc := zcodec.NewEncoder(zcodec.Fast)
	seg := appendSegHeader(nil, 1, 0)
	value := make([]byte, 128)
	var raw []byte
	for i := range n {
		bt := persist.Batch{Rev: int64(i + 2), Changes: []persist.Change{{Key: fmt.Appendf(nil, "k%015d", i), Value: value}}}
		raw = appendBatch(raw, &bt)
		if i%63 == 62 || i == n-1 {
			seg, raw = appendFrames(enc, seg, raw), raw[:0]
		}
	}
	dir := b.TempDir()
	f, err := persist.OS.Create(path.Join(dir, segFile(1)))
	if err == nil {
		_, err = f.Write(seg)
		err = errors.Join(err, f.Close())
	}
	if err != nil {
		b.Fatal(err)
	}
	b.Run("scan", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			count := 0
			_, err := scanSegment(persist.OS, dir, 1, tailRule{}, func(*persist.Batch, int64) error { count++; return nil })
			if err != nil || count != n {
				b.Fatalf("%d batches, %v", count, err)
			}
		}
	})
	b.Run("sealedCovered", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !sealedCovered(persist.OS, dir, 1, snapInfo{rev: n + 1, compact: -1}) {
				b.Fatal("not covered")
			}
		}
	})
}
