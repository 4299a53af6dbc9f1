package engine

import "syscall"

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
