package snapshot

import (
	"bytes"
	"errors"
	"testing"

	"github.com/revkv/revkv/kv"
)

// TestStoreID: a stream rewritten by WithStoreID, written in pieces of
// every size, reads back whole with the identity, as the same entries;
// rewriting it to 0 gives back the stream without one, byte for byte.
func TestStoreID(t *testing.T) {
	plain, entries := sample(t, 50, 50, 100)
	for _, chunk := range []int{1, 7, 16, 47, 48, 49, 1 << 20} {
		var buf bytes.Buffer
		w := WithStoreID(&buf, 0xfeedface)
		for p := plain; len(p) > 0; {
			n := min(chunk, len(p))
			if m, err := w.Write(p[:n]); err != nil || m != n {
				t.Fatalf("chunk %d: write = %d, %v", chunk, m, err)
			}
			p = p[n:]
		}
		st, err := ReadStatus(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatalf("chunk %d: %v", chunk, err)
		}
		if st.StoreID != 0xfeedface || st.Base+st.Events != uint64(len(entries)) {
			t.Fatalf("chunk %d: status %+v", chunk, st)
		}
		var back bytes.Buffer
		if _, err := WithStoreID(&back, 0).Write(buf.Bytes()); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(back.Bytes(), plain) {
			t.Fatalf("chunk %d: identity removed does not give the original stream", chunk)
		}
	}
	// A header that does not check is refused, not passed on.
	bad := bytes.Clone(plain)
	bad[20] ^= 1
	if _, err := WithStoreID(&bytes.Buffer{}, 1).Write(bad); !errors.Is(err, kv.ErrCorrupt) {
		t.Fatalf("damaged header: %v, want kv.ErrCorrupt", err)
	}
	// Flag 1 with identity 0 is damage.
	h := Header{Rev: 5, CompactRev: -1, StoreID: 1}
	b := appendHeader(nil, h)
	b[40] = 0
	if _, _, err := parseHeader(b); !errors.Is(err, kv.ErrCorrupt) {
		t.Fatalf("identity 0 with the flag: %v, want kv.ErrCorrupt", err)
	}
}
