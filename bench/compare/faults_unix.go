//go:build unix

package compare

import "syscall"

// minorFaults returns the process's minor page faults so far, or 0 where
// the system does not count them.
func minorFaults() uint64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return uint64(ru.Minflt)
}
