//go:build !linux

package filelog_test

// procCPU is not measured here: benchmarks report 0 proc-cpu-ns/op.
func procCPU() int64 { return 0 }
