// Package zcodec holds the zstd codec that revkv's file formats share: an
// encoder that each writer owns for as long as it writes, sized to the
// frames those formats make, and a decoder that each reader owns likewise,
// which never allocates more output than its caller allows, so a crafted
// file cannot exhaust memory.
package zcodec

import (
	"errors"
	"fmt"
	"slices"

	"github.com/klauspost/compress/zstd"
)

// Level picks an encoder: Fast for the log, where each commit waits for
// it; Small for snapshots, written in the background and read at restart.
type Level int

const (
	Fast  Level = iota // zstd's fastest level
	Small              // zstd's default level: smaller, about 3x slower
)

// MaxFrame is the input size the encoders are sized for: both formats cut
// their data into frames or blocks of at most 1 MiB, so a longer zstd
// window would only cost memory. Longer inputs still encode (and decode),
// matching within the last MiB only.
const MaxFrame = 1 << 20

// Encoder compresses frames. It is owned by one writer (a log, a snapshot
// writer) and becomes garbage with it: no encoder outlives the writers
// that use it, which matters because an encoder's tables are megabytes.
// zstd's defaults (one encoder per CPU, an 8 MiB window) kept about 55 MB
// alive per process for good; this one holds about 2 MB (Fast) or 3 MB
// (Small) once used, and nothing until then. Encode is safe for concurrent
// use, which serializes on the one encoder.
type Encoder struct {
	z *zstd.Encoder
}

// NewEncoder returns an encoder at level l.
func NewEncoder(l Level) *Encoder {
	speed := zstd.SpeedFastest
	if l == Small {
		speed = zstd.SpeedDefault
	}
	z, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(speed),
		zstd.WithWindowSize(MaxFrame), zstd.WithLowerEncoderMem(true),
		zstd.WithZeroFrames(true), zstd.WithEncoderCRC(false))
	if err != nil {
		panic(err) // only for invalid options, which are constants here
	}
	return &Encoder{z: z}
}

// Encode appends the zstd frame of src to dst.
func (e *Encoder) Encode(dst, src []byte) []byte { return e.z.EncodeAll(src, dst) }

func newZstdDecoder(concurrency int) *zstd.Decoder {
	d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(concurrency),
		zstd.WithDecodeAllCapLimit(true), zstd.WithDecoderMaxMemory(MaxDecoded))
	if err != nil {
		panic(err) // only for invalid options, which are constants here
	}
	return d
}

// MaxDecoded is the most any one Decode may produce.
const MaxDecoded = 64 << 20

// ErrDecode is wrapped by every Decode error.
var ErrDecode = errors.New("zstd")

// Decoder decodes frames for one reader (a segment scan, a snapshot
// load) and becomes garbage with it, with whatever it references: zstd's
// decoder keeps a reference to the last output buffer it decoded into,
// which a decoder shared by the process would keep alive (megabytes: a
// reader's buffer) for as long as the process runs. Making one costs about 12 KB
// and no goroutine. A Decoder is not safe for concurrent use.
type Decoder struct {
	z *zstd.Decoder
}

// NewDecoder returns a decoder for one reader.
func NewDecoder() *Decoder { return &Decoder{z: newZstdDecoder(1)} }

// AppendDecode appends to dst the n bytes (n <= MaxDecoded) that the zstd
// frame src must decode to, in dst's storage if its spare capacity holds
// them (else in a copy grown by n). It never allocates more than n bytes
// of output, whatever src claims. On error dst's spare capacity may have
// been written.
func (d *Decoder) AppendDecode(dst, src []byte, n int) ([]byte, error) {
	return appendDecode(d.z, dst, src, n)
}

func appendDecode(z *zstd.Decoder, dst, src []byte, n int) ([]byte, error) {
	if n < 0 || n > MaxDecoded {
		return dst, fmt.Errorf("decoded size %d over limit %d: %w", n, MaxDecoded, ErrDecode)
	}
	dst = slices.Grow(dst, n)
	// The cap limit makes the decoder stop at n bytes: an overlong frame
	// is an error rather than an allocation.
	at := len(dst)
	out, err := z.DecodeAll(src, dst[at:at:at+n])
	if err != nil {
		return dst, fmt.Errorf("%w: %w", ErrDecode, err)
	}
	if len(out) != n {
		return dst, fmt.Errorf("decoded %d bytes, want %d: %w", len(out), n, ErrDecode)
	}
	if n > 0 && &out[0] != &dst[:at+n][at] {
		copy(dst[at:at+n], out) // never seen: the decoder appends in place
	}
	return dst[:at+n], nil
}
