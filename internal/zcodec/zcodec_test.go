package zcodec

import (
	"bytes"
	"errors"
	"testing"
)

// TestAppendDecode: a frame decodes after what dst holds, in dst's spare
// room when it has enough; a frame that decodes to any other length than
// the caller says is ErrDecode, and so are bytes that are not a frame.
func TestAppendDecode(t *testing.T) {
	src := bytes.Repeat([]byte("revkv frame "), 1000)
	frame := NewEncoder(Fast).Encode(nil, src)
	d := NewDecoder()
	dst := make([]byte, 3, 3+len(src))
	copy(dst, "abc")
	out, err := d.AppendDecode(dst, frame, len(src))
	if err != nil || string(out[:3]) != "abc" || !bytes.Equal(out[3:], src) {
		t.Fatalf("decoded %d bytes, %v", len(out), err)
	}
	if &out[0] != &dst[0] {
		t.Error("decoded into a new array though dst had room")
	}
	if out, err = d.AppendDecode(nil, frame, len(src)); err != nil || !bytes.Equal(out, src) {
		t.Fatalf("into nil: %d bytes, %v", len(out), err)
	}
	for _, n := range []int{len(src) - 1, len(src) + 1, -1, MaxDecoded + 1} {
		if _, err := d.AppendDecode(nil, frame, n); !errors.Is(err, ErrDecode) {
			t.Errorf("told %d bytes: %v, want ErrDecode", n, err)
		}
	}
	if _, err := d.AppendDecode(nil, []byte("not a frame"), 5); !errors.Is(err, ErrDecode) {
		t.Errorf("garbage: %v, want ErrDecode", err)
	}
}
