//go:build linux

package compare

import (
	"syscall"
	"testing"
)

// TestMinorFaults: touching pages of new anonymous memory counts a fault
// for each.
func TestMinorFaults(t *testing.T) {
	const pages = 256
	page := syscall.Getpagesize()
	mem, err := syscall.Mmap(-1, 0, pages*page, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Skip("mmap:", err)
	}
	defer syscall.Munmap(mem)
	syscall.Madvise(mem, syscall.MADV_NOHUGEPAGE) // a page a fault, where huge pages are the default
	before := minorFaults()
	for i := 0; i < len(mem); i += page {
		mem[i] = 1
	}
	if got := minorFaults() - before; got < pages {
		t.Fatalf("%d faults for %d new pages", got, pages)
	}
}
