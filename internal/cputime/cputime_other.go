//go:build !linux

package cputime

// Process is not measured here: 0.
func Process() int64 { return 0 }

// Thread is not measured here: 0.
func Thread() int64 { return 0 }

// ThreadFine is not measured here: 0.
func ThreadFine() int64 { return 0 }
