package persist

// LeaseChange is one change to the engine's lease table. Each one sets a
// lease's whole state (or removes it), so replaying it on a state that
// already holds it changes nothing.
type LeaseChange struct {
	// ID is the lease's ID (> 0).
	ID int64
	// Revoke removes the lease (a revoke or an expiry); TTL and Deadline
	// are then zero. Otherwise the change grants the lease or renews it:
	// either way it now has TTL and Deadline.
	Revoke bool
	// TTL is the lease's granted time to live, in seconds.
	TTL int64
	// Deadline is when the lease expires, in nanoseconds since 1970 UTC
	// on the granting engine's clock. A deadline, not a remaining time,
	// is stored so that a restart neither resets nor stretches a lease:
	// after any downtime it has what is left of its time.
	Deadline int64
}

// leasesCovered reports whether a state with revision rev and consistent
// index index holds the effect of a batch of lease changes alone. Such a
// batch is made at revision b.Rev without moving it, after the changes
// of b.Rev: a state past b.Rev holds it. A state at b.Rev may or may not
// (a snapshot can be taken between two lease changes at one revision), so
// the batch is not covered and is applied again: each change sets a
// lease's whole state, and the changes at one revision replay in order,
// so the result is the same. With a consistent index (replicated use,
// where each batch has its own), the index tells exactly.
func (b *Batch) leasesCovered(rev int64, index uint64) bool {
	if b.Index > 0 {
		return b.Index <= index
	}
	return b.Rev < rev
}
