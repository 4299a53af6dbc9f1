// Package zcodec holds the zstd encoders and decoder that revkv's file
// formats share, set up once with the options those formats need: one
// encoder goroutine each (zstd's default is one per CPU, with large
// buffers), and a decoder that never allocates more output than its caller
// allows, so a crafted file cannot exhaust memory.
package zcodec

import (
	"errors"
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Level picks an encoder: Fast for the log, where each commit waits for
// it; Small for snapshots, written in the background and read at restart.
type Level int

const (
	Fast  Level = iota // zstd's fastest level
	Small              // zstd's default level: smaller, about 3x slower
)

var encoders = [...]func() *zstd.Encoder{
	Fast:  sync.OnceValue(func() *zstd.Encoder { return newEncoder(zstd.SpeedFastest) }),
	Small: sync.OnceValue(func() *zstd.Encoder { return newEncoder(zstd.SpeedDefault) }),
}

func newEncoder(l zstd.EncoderLevel) *zstd.Encoder {
	e, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(2), zstd.WithEncoderLevel(l),
		zstd.WithZeroFrames(true), zstd.WithEncoderCRC(false))
	if err != nil {
		panic(err) // only for invalid options, which are constants here
	}
	return e
}

// decoder is shared: DecodeAll is safe for concurrent use, and each call is
// limited by the capacity of the dst it is given.
var decoder = sync.OnceValue(func() *zstd.Decoder {
	d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(2),
		zstd.WithDecodeAllCapLimit(true), zstd.WithDecoderMaxMemory(MaxDecoded))
	if err != nil {
		panic(err) // only for invalid options, which are constants here
	}
	return d
})

// MaxDecoded is the most any one Decode may produce.
const MaxDecoded = 64 << 20

// Encode appends the zstd frame of src to dst. It is safe for concurrent
// use.
func Encode(l Level, dst, src []byte) []byte { return encoders[l]().EncodeAll(src, dst) }

// ErrDecode is wrapped by every Decode error.
var ErrDecode = errors.New("zstd")

// Decode decodes the zstd frame src, which must decode to exactly n bytes
// (n <= MaxDecoded), into dst[:0] (reallocated if its capacity is short).
// It never allocates more than n bytes of output, whatever src claims.
func Decode(dst, src []byte, n int) ([]byte, error) {
	if n < 0 || n > MaxDecoded {
		return nil, fmt.Errorf("decoded size %d over limit %d: %w", n, MaxDecoded, ErrDecode)
	}
	if cap(dst) < n {
		dst = make([]byte, 0, n)
	}
	// The cap limit makes the decoder stop at n bytes: an overlong frame
	// is an error rather than an allocation.
	out, err := decoder().DecodeAll(src, dst[:0:n])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDecode, err)
	}
	if len(out) != n {
		return nil, fmt.Errorf("decoded %d bytes, want %d: %w", len(out), n, ErrDecode)
	}
	return out, nil
}
