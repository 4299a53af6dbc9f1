package engine

import "unsafe"

// newProbe returns a record without bytes, for setKey: the tests make
// records of a key alone with it.
func newProbe() *keyRecord {
	r := &new(extRecord).keyRecord
	r.kn = extBit
	return r
}

// setKey makes k the key of a probe (from newProbe), without copying it.
func (r *keyRecord) setKey(k []byte) {
	x := (*extRecord)(unsafe.Pointer(r))
	x.ext, x.klen = unsafe.SliceData(k), uint32(len(k))
}
