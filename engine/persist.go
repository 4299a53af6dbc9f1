package engine

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/revkv/revkv/kv"
	"github.com/revkv/revkv/persist"
)

// Persistence. With a persister, a write goes through three steps:
//
//  1. Under mu: the change is applied to the writer's index, handed to the
//     persister (Append, no I/O wait), and the resulting state is queued
//     for publication with the batch's position.
//  2. mu is released, so the next writer can start: its batch joins the
//     same sync (group commit).
//  3. The writer waits until its batch is durable (persister's Wait), then
//     publishes the newest queued state that is durable.
//
// So readers and watchers only ever see durable writes: nothing a reader
// saw can be taken back by a crash. A failure in step 1 or 3 stops the
// store (fail-stop): the states after the last durable one are never
// published, reads go on serving what was, and writes fail with kv.ErrStopped.

// pubQueue holds states built by the writer and waiting for their batches
// to be durable.
type pubQueue struct {
	mu      sync.Mutex
	pending []*state // guarded by mu; in position order
	durable uint64   // guarded by mu; every position <= durable is durable
}

// Open returns a store: the one constructor, for every persister.
//
// With p nil, the store is purely in memory: empty, at revision 1, with
// compacted revision -1; nothing is written anywhere, Close leaves nothing
// behind, and Open never fails. (LoadSnapshot fills such a store from a
// snapshot.)
//
// Otherwise p makes the store's writes durable. Open first has p recover
// the state it holds (snapshot and log), so the store starts where the
// last one using p's storage stopped. The store owns p from then on: Close
// closes it, and so does a failed Open. Package persist/filelog is the
// file persister (revkv.Open wires it for a directory).
func Open(p persist.Persister, opts Options) (*Store, error) {
	s := newStore(opts)
	if p == nil {
		return s, nil
	}
	// The persister keeps its target (to take snapshots): the tail is
	// forgotten once the replay is over.
	tail := new(replayTail)
	defer tail.forget()
	if err := p.Recover(target{s: s, owner: s, tail: tail}); err != nil {
		if !errors.Is(err, persist.ErrInUse) { // not ours to close
			p.Close()
		}
		return nil, fmt.Errorf("revkv/engine: recover: %w", err)
	}
	s.p = p
	s.changedKeysLocked() // the next publication copies the trees whole
	s.publishLocked()
	s.kickExpiryLocked()
	s.logger().Debug("revkv: recovered", "rev", s.w.rev, "compactRev", s.w.compactRev, "index", s.w.cindex)
	return s, nil
}

// logChangesLocked hands the changes of revision rev to the persister.
// mu is held.
func (s *Store) logChangesLocked(rev int64, cs []change) error {
	return s.logLeasesLocked(rev, cs, nil)
}

// logLeasesLocked hands the changes cs and lease changes lcs to the
// persister as one batch at revision rev. mu is held.
func (s *Store) logLeasesLocked(rev int64, cs []change, lcs []persist.LeaseChange) error {
	if s.p == nil {
		return nil
	}
	// The batch is reused: a persister does not keep it past Append.
	b := &s.w.batch
	*b = persist.Batch{Rev: rev, Index: s.w.cindex, Changes: b.Changes[:0], Leases: lcs}
	for _, c := range cs {
		b.Changes = append(b.Changes, persist.Change{Key: c.key, Value: c.v.value, Lease: c.v.lease, Delete: c.v.deleted()})
	}
	err := s.logLocked(b)
	clear(b.Changes) // keep no key or value alive
	if cap(b.Changes) > 1024 {
		b.Changes = nil // after a big txn
	}
	return err
}

// logLocked hands b to the persister. A refusal stops the store. mu is held.
func (s *Store) logLocked(b *persist.Batch) error {
	if s.p == nil {
		return nil
	}
	pos, err := s.p.Append(b)
	if err != nil {
		return s.stop(fmt.Errorf("persist revision %d: %w", b.Rev, err))
	}
	s.w.pos = pos
	return nil
}

// unlockAndWait releases mu and waits until what the writer did is durable
// and published.
func (s *Store) unlockAndWait() error {
	if s.p == nil {
		s.mu.Unlock()
		return nil
	}
	pos := s.w.pos
	s.mu.Unlock()
	return s.waitDurable(pos)
}

func (s *Store) waitDurable(pos uint64) error {
	if err := s.p.Wait(pos); err != nil {
		return s.stop(fmt.Errorf("persist: %w", err))
	}
	s.publishDurable(pos)
	return nil
}

// queueLocked queues st for publication once its position is durable, or
// publishes it now if it already is. mu is held.
func (s *Store) queueLocked(st *state) {
	q := &s.pubq
	q.mu.Lock()
	if len(q.pending) > 0 || st.pos > q.durable {
		q.pending = append(q.pending, st)
		q.mu.Unlock()
		return
	}
	s.cur.Store(st)
	q.mu.Unlock()
	s.wake()
}

// publishDurable records that every position up to pos is durable and
// publishes the newest queued state that is.
func (s *Store) publishDurable(pos uint64) {
	q := &s.pubq
	q.mu.Lock()
	q.durable = max(q.durable, pos)
	i := 0
	for i < len(q.pending) && q.pending[i].pos <= q.durable {
		i++
	}
	if i == 0 {
		q.mu.Unlock()
		return
	}
	s.cur.Store(q.pending[i-1])
	q.pending = append(q.pending[:0], q.pending[i:]...)
	q.mu.Unlock()
	s.wake()
}

// stop makes the store fail-stop with cause err, unless it stopped
// before, and returns the error writers get from now on.
func (s *Store) stop(err error) error {
	e := fmt.Errorf("%w: %w", kv.ErrStopped, err)
	if s.stopped.CompareAndSwap(nil, &e) {
		s.logger().Error("revkv: persistence failed; the store takes no more writes", "err", err)
		return e
	}
	return *s.stopped.Load()
}

// Err returns nil while the store accepts writes, and after a persistence
// failure the error every write returns: it wraps kv.ErrStopped and the
// cause. Reads keep working after it; to write again, Close the store and
// open it again, which recovers what was durable.
func (s *Store) Err() error {
	if e := s.stopped.Load(); e != nil {
		return *e
	}
	return nil
}

// Commit makes every write before it durable, whatever the persister's
// sync policy: when it returns nil they survive a crash. A pure in-memory
// store has nothing to make durable. After Close it returns kv.ErrClosed, and
// after a persistence failure the stop error (see Err).
func (s *Store) Commit() error {
	if s.closed.Load() {
		return kv.ErrClosed
	}
	if err := s.Err(); err != nil {
		return err
	}
	if s.p == nil {
		return nil
	}
	// Holding mu, every write that returned has been appended.
	s.mu.Lock()
	pos := s.w.pos
	s.mu.Unlock()
	if err := s.p.Sync(); err != nil {
		return s.stop(fmt.Errorf("commit: %w", err))
	}
	s.publishDurable(pos)
	return nil
}

// Restore rebuilds the store's in-memory state from its durable copy, as a
// restart would: it makes everything durable, then has the persister
// replay its snapshot and log into a new state, which replaces the current
// one. The revision, history and hash stay the same (Restore is how to
// check that the durable copy is whole); views and watchers keep working.
// A pure in-memory store's state is its only copy, so Restore leaves it as
// it is; to fill a new store from a snapshot stream, use LoadSnapshot.
//
// If the durable copy cannot be read, Restore returns the error and the
// store keeps its state but takes no more writes (see Err).
func (s *Store) Restore() error {
	if err := s.lockWriter(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if s.p == nil {
		return nil
	}
	if err := s.p.Sync(); err != nil {
		return s.stop(fmt.Errorf("restore: %w", err))
	}
	fresh := newStore(s.opts)
	tail := new(replayTail)
	defer tail.forget()
	if err := s.p.Recover(target{s: fresh, owner: s, tail: tail}); err != nil {
		return s.stop(fmt.Errorf("restore: %w", err))
	}
	fresh.changedKeysLocked()
	if fresh.w.rev != s.w.rev || fresh.w.compactRev != s.w.compactRev || fresh.w.cindex != s.w.cindex {
		return s.stop(fmt.Errorf("restore: durable copy is at revision %d (compacted %d, index %d), the store at %d (compacted %d, index %d): %w",
			fresh.w.rev, fresh.w.compactRev, fresh.w.cindex, s.w.rev, s.w.compactRev, s.w.cindex, kv.ErrCorrupt))
	}
	if err := fresh.w.lt.sameAs(&s.w.lt); err != nil {
		return s.stop(fmt.Errorf("restore: durable copy: %w: %w", err, kv.ErrCorrupt))
	}
	pos := s.w.pos
	s.leaseMu.Lock() // the expiry timer and TimeToLive read s.w.lt under it
	s.w = fresh.w
	s.leaseMu.Unlock()
	s.w.pos = pos
	s.w.full = true
	s.pubq.mu.Lock()
	s.pubq.pending = nil
	s.pubq.durable = max(s.pubq.durable, pos)
	s.pubq.mu.Unlock()
	s.publishLocked()
	s.kickExpiryLocked()
	return nil
}

// target is a Store as its persister sees it. Recover runs before anyone
// else has the store (or, for Restore, on a private store), so its methods
// use the writer state without taking mu.
type target struct {
	s     *Store // the state recovered into
	owner *Store // the store it is for (s, or the store Restore runs for)
	// tail is what the replay knows of the greatest key (see
	// replayPutLocked): a store filled in key order replays its puts by
	// the tree's append path.
	tail *replayTail
}

// Owner implements persist.OwnedTarget.
func (t target) Owner() any { return t.owner }

func (t target) LoadSnapshot(r io.Reader) error {
	loaded, err := load(r, t.s.opts)
	if err != nil {
		return err
	}
	t.s.w = loaded.w
	t.tail.forget() // of another index
	return nil
}

func (t target) Snapshot() (persist.Snapshot, error) { return t.s.Snapshot() }

// Prepare implements persist.Preparer: it makes the records that b's puts
// make if their keys are new (the first version: see replayPutLocked), on
// the persister's read-ahead goroutine, so that the replay only inserts
// them. A *keyRecord for a batch of one change, else a []*keyRecord (nil
// for a delete); a record the replay does not take (the key was not new)
// is garbage.
func (t target) Prepare(b *persist.Batch) any {
	switch {
	case len(b.Changes) == 1:
		if rec := prepareChange(&b.Changes[0], b.Rev, 0); rec != nil {
			return rec
		}
	case len(b.Changes) > 1:
		recs := make([]*keyRecord, len(b.Changes))
		for i := range b.Changes {
			recs[i] = prepareChange(&b.Changes[i], b.Rev, i)
		}
		return recs
	}
	return nil
}

// maxApplyBuf is the most changes of a batch that target.Apply collects in
// the writer's buffer (applyBuf), which keeps its size.
const maxApplyBuf = 256

func (t target) Apply(b *persist.Batch) error {
	s := t.s
	w := &s.w
	if b.Covered(w.rev, w.compactRev, w.cindex) {
		return nil
	}
	switch {
	case len(b.Changes) > 0:
		if b.Rev != w.rev+1 {
			return fmt.Errorf("batch of revision %d after revision %d: %w: %w", b.Rev, w.rev, ErrRevisionNotFound, kv.ErrCorrupt)
		}
		// The changes go into the writer's buffer, reused: the history
		// packs a batch of one change (a Put), and keeps a batch of new
		// keys as their records; it gets a copy of any other.
		cs := w.applyBuf[:0]
		if len(b.Changes) > maxApplyBuf {
			cs = make([]change, 0, len(b.Changes)) // a buffer that big would stay
		}
		for i, c := range b.Changes {
			if err := checkPut(c.Key, c.Value); err != nil {
				return fmt.Errorf("batch of revision %d: change %d: %w: %w", b.Rev, i, err, kv.ErrCorrupt)
			}
			if !c.Delete {
				pre := preparedFor(b.Prepared, i, &c, b.Rev)
				cs = append(cs, s.replayPutLocked(t.tail, pre, c.Key, c.Value, c.Lease, b.Rev, int64(i)))
				continue
			}
			d, _ := s.deleteLocked(c.Key, nil, b.Rev, int64(i), MaxBatchSize)
			if len(d) != 1 {
				return fmt.Errorf("batch of revision %d deletes %q, which is not live: %w", b.Rev, c.Key, kv.ErrCorrupt)
			}
			cs = append(cs, d[0])
		}
		switch {
		case len(cs) == 1:
			w.hist = w.hist.addOne(b.Rev, cs[0]) // keeps no reference to cs
		case keeps(cs) && len(b.Changes) <= maxApplyBuf:
			w.hist = w.hist.add(b.Rev, slices.Clone(cs)) // not the buffer
		default:
			w.hist = w.hist.add(b.Rev, cs) // cs is its own, or not kept
		}
		s.attachLocked(cs)
		if len(b.Changes) <= maxApplyBuf {
			clear(cs) // keeps no record, key or value alive
			w.applyBuf = cs
		}
		w.rev = b.Rev
		w.cindex = max(w.cindex, b.Index)
		s.applyLeaseChangesLocked(b.Leases)
	case b.Rev != w.rev:
		return fmt.Errorf("batch at revision %d after revision %d: %w", b.Rev, w.rev, kv.ErrCorrupt)
	case len(b.Leases) > 0:
		s.applyLeaseChangesLocked(b.Leases)
		w.cindex = max(w.cindex, b.Index)
	case b.Compaction:
		if b.Compact > w.rev || b.Compact < 0 {
			return fmt.Errorf("compaction to %d at revision %d: %w", b.Compact, w.rev, kv.ErrCorrupt)
		}
		w.compactRev = b.Compact
		s.compactAllLocked(b.Compact)
		t.tail.forget() // compaction removed keys, maybe the greatest
	default:
		w.cindex = b.Index
	}
	return nil
}

// closePersister makes everything durable and closes the persister; mu is
// held and the store is marked closed.
func (s *Store) closePersister() error {
	if s.p == nil {
		return nil
	}
	stopped := s.Err()
	var err error
	if stopped == nil {
		if err = s.p.Sync(); err == nil {
			s.publishDurable(s.w.pos)
		}
	}
	err = errors.Join(err, s.p.Close())
	if stopped != nil {
		return stopped
	}
	return err
}
