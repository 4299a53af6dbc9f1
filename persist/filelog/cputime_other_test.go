//go:build !linux

package filelog_test

// procCPU and threadCPU are not measured here: benchmarks report 0
// proc-cpu-ns/op and thread-cpu-ns/op.
func procCPU() int64 { return 0 }

func threadCPU() int64 { return 0 }
