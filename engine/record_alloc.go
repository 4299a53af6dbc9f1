package engine

import "unsafe"

// Records carry their bytes (key and first value) in the same allocation,
// right after the record (see keyRecord.bytes):
// a record of n bytes is a sizedRecord whose array is the smallest of
// recordClasses that holds n (n+8 with a lease, see leaseBit), chosen so
// that record and array together fill one of the Go allocator's size
// classes. The garbage collector scans only the record's pointers: the
// array holds none.

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
	{224, allocFor[[224]byte]},
	{256, allocFor[[256]byte]},
	{288, allocFor[[288]byte]},
	{320, allocFor[[320]byte]},
	{352, allocFor[[352]byte]},
	{384, allocFor[[384]byte]},
	{416, allocFor[[416]byte]},
	{448, allocFor[[448]byte]},
	{480, allocFor[[480]byte]},
	{544, allocFor[[544]byte]},
	{608, allocFor[[608]byte]},
	{672, allocFor[[672]byte]},
	{736, allocFor[[736]byte]},
	{864, allocFor[[864]byte]},
	{992, allocFor[[992]byte]},
}

// maxInline is the most bytes a record holds inline; longer ones go in an
// allocation of their own (which the garbage collector does not scan
// either: it holds no pointers), from an extRecord.
const maxInline = 992

// allocRecord returns a new record with room for n bytes, and that room,
// holding lease as its first version's (see leaseBit). The caller sets
// the lengths (setLens).
func allocRecord(n int, lease int64) (*keyRecord, []byte) {
	if n > maxInline || lease != 0 && n+8 > maxInline {
		r := new(extRecord)
		data := make([]byte, n)
		r.ext, r.kn, r.lease = unsafe.SliceData(data), extBit, lease
		return &r.keyRecord, data
	}
	if lease == 0 {
		r, data := allocInline(n)
		return r, data[:n:n]
	}
	r, data := allocInline(n + 8)
	r.kn = leaseBit
	*(*int64)(unsafe.Pointer(&data[0])) = lease
	return r, data[8 : 8+n : 8+n]
}

// allocInline returns a new record with room for n (<= maxInline) bytes
// after it.
func allocInline(n int) (*keyRecord, []byte) {
	// A binary search would take as many steps as the scan takes for the
	// records most stores make (keys and values of a few dozen bytes).
	for i := range recordClasses {
		if c := &recordClasses[i]; c.n >= n {
			return c.alloc()
		}
	}
	panic("unreachable: n <= maxInline")
}
