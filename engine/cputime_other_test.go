//go:build !linux

package engine

// threadCPU, threadCPUFine and procCPU are not measured here: benchmarks report 0
// cpu-ns/op and proc-cpu-ns/op.
func threadCPU() int64 { return 0 }

func procCPU() int64 { return 0 }

func threadCPUFine() int64 { return 0 }
