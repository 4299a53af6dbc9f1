//go:build !linux

package watch

// procCPU is not measured here: benchmarks report 0 proc-cpu-ns.
func procCPU() int64 { return 0 }
