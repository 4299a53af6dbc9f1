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
