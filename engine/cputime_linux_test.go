package engine

import (
	"syscall"
	"unsafe"
)

// threadCPU returns the CPU time (user and system) the calling thread has
// used, in ns: on a busy machine, a steadier measure of a single-threaded
// loop than the time on the clock. The caller locks its OS thread.
func threadCPU() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru) != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// procCPU returns the CPU time (user and system) of the whole process, in
// ns: a benchmark's own work plus the garbage collector's, which runs on
// other threads.
func procCPU() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// threadCPUFine is threadCPU to the nanosecond (clock_gettime of the
// thread's CPU clock), for timing one call. The caller locks its OS thread.
func threadCPUFine() int64 {
	var ts syscall.Timespec
	const threadClock = 3 // CLOCK_THREAD_CPUTIME_ID
	if _, _, e := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, threadClock, uintptr(unsafe.Pointer(&ts)), 0); e != 0 {
		return 0
	}
	return ts.Nano()
}
