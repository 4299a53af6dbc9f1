package cputime

import (
	"syscall"
	"unsafe"
)

// Process returns the CPU time (user and system) of the whole process, in
// ns: the caller's work plus every other goroutine's and the garbage
// collector's.
func Process() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// Thread returns the CPU time (user and system) the calling thread has
// used, in ns, to the kernel's tick. The caller locks its OS thread
// (runtime.LockOSThread), or the figure mixes threads.
func Thread() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru) != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// ThreadFine is Thread to the nanosecond (the thread's CPU clock), for
// timing a single call. The caller locks its OS thread.
func ThreadFine() int64 {
	var ts syscall.Timespec
	const threadClock = 3 // CLOCK_THREAD_CPUTIME_ID
	if _, _, e := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, threadClock, uintptr(unsafe.Pointer(&ts)), 0); e != 0 {
		return 0
	}
	return ts.Nano()
}
