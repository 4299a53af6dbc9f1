// Package simtest is the deterministic simulation of a replicated revkv
// cluster: 3 or 5 etcd/member members, each on its own memfs, driven on one
// goroutine by a rapid state machine that owns the network (per-link delay,
// drops, duplicates, reordering, partitions), the clock (ticks) and the
// disks (crashes with torn writes), so a failing run shrinks to a short one.
//
// Everything lives in the package's tests; this file only carries the
// package comment. What a run checks, after it has healed every partition
// and let the cluster settle:
//
//   - at most one leader per term, over every Status observed during the run;
//   - identical committed prefixes: the raft logs of all members agree on
//     every index both hold up to the smallest commit index;
//   - equal HashByRev at every revision all members retain;
//   - identical, gap-free watch histories: one watcher per member from
//     revision 1, reopened from where it stopped after a crash, a restart or
//     a snapshot install;
//   - the clients' history (puts, deletes, linearizable gets through
//     ReadIndex, txns comparing a value or a mod revision) is linearizable
//     (porcupine; operations whose outcome is unknown may or may not have
//     happened);
//   - no acknowledged write is lost: each one is in every member's history
//     at the revision it was acknowledged with.
//
// Run longer with REVKV_SIM_STEPS (steps per rapid check) and
// -rapid.checks (see etcd/README.md).
package simtest
