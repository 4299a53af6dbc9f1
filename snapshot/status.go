package snapshot

import (
	"io"

	"github.com/cespare/xxhash/v2"
)

// Hasher computes the hash of a retained history: xxhash64 over the
// canonical encodings (AppendEntry) of the base entries in key order, then
// of the events after the compacted revision, folded to 32 bits. The engine
// hashes its stores with it, so the hash of a snapshot (Status.Hash) equals
// HashByRev of the store it was taken of.
type Hasher struct {
	d   *xxhash.Digest
	buf []byte
}

// NewHasher returns an empty Hasher.
func NewHasher() *Hasher { return &Hasher{d: xxhash.New(), buf: make([]byte, 0, 40<<10)} }

// Add hashes e. Entries are gathered and hashed 32 KiB at a time: the
// digest costs much less per byte on big writes than on small ones.
func (h *Hasher) Add(e *Entry) {
	h.buf = AppendEntry(h.buf, e)
	if len(h.buf) >= 32<<10 {
		h.d.Write(h.buf)
		h.buf = h.buf[:0]
	}
}

// Clone returns a Hasher that has seen what h has, and goes on apart from
// it. It costs a copy of the digest's state (about 100 bytes): the engine
// keeps clones at intervals to hash a long history again without walking
// all of it.
func (h *Hasher) Clone() *Hasher {
	h.d.Write(h.buf)
	h.buf = h.buf[:0]
	d := *h.d
	return &Hasher{d: &d}
}

// Sum32 returns the hash of what was added.
func (h *Hasher) Sum32() uint32 {
	h.d.Write(h.buf)
	h.buf = h.buf[:0]
	sum := h.d.Sum64()
	return uint32(sum ^ sum>>32)
}

// Status describes a snapshot, as `revkv snapshot status` prints it.
type Status struct {
	Header
	Counts
	// Hash equals the engine's HashByRev(Rev).Hash for the store the
	// snapshot was taken of.
	Hash uint32
	// Size is the snapshot's size in bytes; Counts.BodySize / Size is its
	// compression ratio.
	Size int64
}

// ReadStatus reads the whole snapshot stream r, checking every checksum,
// and describes it. It holds one block and one entry in memory at a time.
// Damage is an error wrapping kv.ErrCorrupt.
func ReadStatus(r io.Reader) (Status, error) {
	sr, err := NewReader(r)
	if err != nil {
		return Status{}, err
	}
	h := NewHasher()
	for {
		e, event, err := sr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return Status{}, err
		}
		if !event || e.Main > sr.h.CompactRev {
			h.Add(e)
		}
	}
	return Status{Header: sr.Header(), Counts: sr.Counts(), Hash: h.Sum32(), Size: sr.Offset()}, nil
}
