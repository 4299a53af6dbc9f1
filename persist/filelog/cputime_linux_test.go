package filelog_test

import "syscall"

// procCPU returns the CPU time (user and system) of the whole process, in
// ns: on a busy machine a steadier measure than the clock, which counts
// the time other processes held the CPU. It includes the garbage
// collector's work on other threads, and any read-ahead goroutine's.
func procCPU() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// threadCPU returns the CPU time (user and system) the calling thread has
// used, in ns. The caller locks its OS thread: for an open, the time of
// the goroutine that applies what it reads, without the read-ahead's and
// the collector's on other threads.
func threadCPU() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru) != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
