package revkv_test

import (
	"testing"

	"github.com/revkv/revkv"

	"github.com/revkv/revkv/internal/cputime"
)

// BenchmarkOpenMemory is a new in-memory DB, one put, and Close: what a
// test that opens a DB of its own pays.
func BenchmarkOpenMemory(b *testing.B) {
	value := make([]byte, 128)
	b.ReportAllocs()
	cpu0 := cputime.Process()
	for b.Loop() {
		db, err := revkv.Open("", revkv.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := db.Put([]byte("key"), value); err != nil {
			b.Fatal(err)
		}
		if err := db.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cputime.Process()-cpu0)/float64(b.N), "proc-cpu-ns/op")
}
