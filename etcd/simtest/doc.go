// Package simtest is the deterministic simulation of a replicated revkv
// cluster: 3 or 5 etcd/member members, each on its own memfs disk with a
// raftstore log, driven on one goroutine by a rapid state machine that owns
// the network (per-link delay, drops, duplicates, reordering, partitions),
// the clock (ticks), the disks (crashes with torn writes, failed writes and
// fsyncs) and raft's randomness, so a failing run replays and shrinks to a
// short one.
//
// Everything lives in the package's tests; this file only carries the
// package comment. What a run checks, during it and after it has healed
// every partition, restarted every member and let the cluster settle:
//
//   - at most one leader per term, over every Status observed during the run;
//   - identical committed prefixes: every raft entry a member's log held at
//     or below its commit index, over all its incarnations, is the same on
//     every member that held that index;
//   - equal HashByRev at every revision the members retain, and identical
//     member tables;
//   - identical, gap-free watch histories: one watcher per member from
//     revision 1, reopened from where it stopped after a crash, a restart or
//     a snapshot install;
//   - the clients' history (puts, deletes, linearizable gets through
//     ReadIndex, txns comparing a value or a mod revision) is linearizable
//     (porcupine; operations whose outcome is unknown may or may not have
//     happened), and serializable reads match the agreed history at the
//     revision they were answered at;
//   - no acknowledged write is lost: each one is in every member's history
//     at the revision it was acknowledged with.
//
// Half the runs also exercise leases (grants, leased puts, revokes,
// keep-alives, expiry by the leader as the clock goes on); they skip the
// linearizability check, whose model has no leases, and keep the others.
//
// Run longer with REVKV_SIM_STEPS (actions per run) and -rapid.checks
// (runs); see etcd/README.md.
package simtest
