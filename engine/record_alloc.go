package engine

import "unsafe"

// Records carry their bytes (key and first value) in the same allocation,
// right after the record (see keyRecord.bytes):
// a record of n bytes is a sizedRecord whose array is the smallest of
// recordClasses that holds n, chosen so that record and array together
// fill one of the Go allocator's size classes. The garbage collector scans
// only the record's pointers: the array holds none.

// sizedRecord is a record and the bytes it points to.
type sizedRecord[A any] struct {
	keyRecord
	data A
}

// allocFor returns a record whose array is an A, and that array.
func allocFor[A any]() (*keyRecord, []byte) {
	r := new(sizedRecord[A])
	return &r.keyRecord, unsafe.Slice((*byte)(unsafe.Pointer(&r.data)), unsafe.Sizeof(r.data))
}

// recordClass is one size of inline array: it holds up to n bytes.
type recordClass struct {
	n     int
	alloc func() (*keyRecord, []byte)
}

// recordClasses are the inline arrays, smallest first: each makes the
// record (recordSize bytes) plus its array one of the allocator's size
// classes, so no allocation rounds up by more than the gap to the class
// below.
var recordClasses = [...]recordClass{
	{16, allocFor[[16]byte]},
	{32, allocFor[[32]byte]},
	{48, allocFor[[48]byte]},
	{64, allocFor[[64]byte]},
	{80, allocFor[[80]byte]},
	{96, allocFor[[96]byte]},
	{112, allocFor[[112]byte]},
	{128, allocFor[[128]byte]},
	{144, allocFor[[144]byte]},
	{160, allocFor[[160]byte]},
	{176, allocFor[[176]byte]},
	{192, allocFor[[192]byte]},
	{208, allocFor[[208]byte]},
	{240, allocFor[[240]byte]},
	{272, allocFor[[272]byte]},
	{304, allocFor[[304]byte]},
	{336, allocFor[[336]byte]},
	{368, allocFor[[368]byte]},
	{400, allocFor[[400]byte]},
	{432, allocFor[[432]byte]},
	{464, allocFor[[464]byte]},
	{528, allocFor[[528]byte]},
	{592, allocFor[[592]byte]},
	{656, allocFor[[656]byte]},
	{720, allocFor[[720]byte]},
	{848, allocFor[[848]byte]},
	{976, allocFor[[976]byte]},
}

// maxInline is the most bytes a record holds inline; longer ones go in an
// allocation of their own (which the garbage collector does not scan
// either: it holds no pointers), from an extRecord.
const maxInline = 976

// allocRecord returns a new record with room for n bytes, and that room.
func allocRecord(n int) (*keyRecord, []byte) {
	if n > maxInline {
		r := new(extRecord)
		data := make([]byte, n)
		r.ext, r.kn = unsafe.SliceData(data), extBit
		return &r.keyRecord, data
	}
	// A binary search would take as many steps as the scan takes for the
	// records most stores make (keys and values of a few dozen bytes).
	for i := range recordClasses {
		if c := &recordClasses[i]; c.n >= n {
			r, data := c.alloc()
			return r, data[:n:n]
		}
	}
	panic("unreachable: n <= maxInline")
}
