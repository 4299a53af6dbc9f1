// Package cputime reads the CPU time a process or a thread has used, for
// benchmarks: on a busy machine, CPU time is a steadier measure of work
// than the time on the clock, which also counts the time other processes
// held the CPU. Where it cannot be read (outside Linux), every function
// returns 0, and benchmarks report 0 for it.
package cputime
