package engine

import (
	"fmt"
	"runtime"
	"time"

	"github.com/revkv/revkv/kv"
	"github.com/revkv/revkv/persist"
)

// compactStep is how many keys one step of compaction visits while holding
// the writer lock. A step costs up to ~100 µs here (each key is a cache
// miss or two), so that is the longest a writer waits for compaction,
// whatever the size of the store.
const compactStep = 256

// compactStepVersions bounds the versions one step copies, for keys with
// long histories.
const compactStepVersions = 8 * maxCopyOnCompact

// Compact drops the history below revision rev.
//
// Afterwards reads below rev are ErrCompacted, and reads at rev and later
// return exactly what they returned before. Kept are every change at a
// revision >= rev (so Events(rev) replays them, deletes included), and for
// each key live at rev the put that makes it so. A key deleted at or before
// rev is forgotten: putting it again starts a new history.
//
// rev <= the compacted revision is ErrCompacted (a new store's compacted
// revision is -1, so Compact(0) succeeds); rev above the current revision is
// ErrFutureRev.
//
// The new compacted revision takes effect for readers at once. Compact then
// frees memory in steps of a bounded number of keys, releasing the writer
// lock between steps, so writers and readers are never stalled for a time
// that grows with the store; Compact itself returns when all steps are done.
// Views taken before Compact keep their revision. Compactions are serialized.
func (s *Store) Compact(rev int64) error {
	s.compactMu.Lock()
	defer s.compactMu.Unlock()

	after, err := s.beforeCompact(rev)
	if err != nil {
		return err
	}
	err = s.markCompacted(rev)
	for _, fn := range after {
		fn()
	}
	if err != nil {
		return err
	}
	s.freeCompacted(rev)
	return nil
}

// markCompacted makes rev the compacted revision, durably, and publishes
// it: from then on reads below rev fail. compactMu is held.
func (s *Store) markCompacted(rev int64) error {
	if err := s.lockWriter(); err != nil {
		return err
	}
	if rev <= s.w.compactRev {
		s.mu.Unlock()
		return fmt.Errorf("compact to %d, compacted %d: %w", rev, s.w.compactRev, ErrCompacted)
	}
	if rev > s.w.rev {
		cur := s.w.rev
		s.mu.Unlock()
		return fmt.Errorf("compact to %d, current %d: %w", rev, cur, ErrFutureRev)
	}
	if err := s.logLocked(&persist.Batch{Rev: s.w.rev, Index: s.w.cindex, Compaction: true, Compact: rev}); err != nil {
		s.mu.Unlock()
		return err
	}
	s.w.compactRev = rev
	// Readers get a copy of the trees now, so that every node compaction
	// changes is cloned. Nodes used to be cloned after every 64 new keys
	// anyway; now the trees may stay uncopied for a hundred thousand new
	// keys (see fresh.go).
	s.changedKeysLocked()
	s.publishLocked()
	return s.unlockAndWait()
}

// freeCompacted frees the memory of the history below rev, the compacted
// revision, in steps that release the writer lock between them.
// compactMu is held.
func (s *Store) freeCompacted(rev int64) {
	start := time.Now()
	var from []byte
	var longest time.Duration
	steps, freed := 0, 0
	for {
		if err := s.lockWriter(); err != nil {
			// Closed or stopped mid-way: the compaction is in effect (and
			// durable), only its memory was not all freed.
			return
		}
		t0 := time.Now()
		next, n := s.compactStepLocked(rev, from)
		if next == nil {
			s.w.hist = s.w.hist.dropBefore(rev)
		}
		s.publishLocked()
		longest = max(longest, time.Since(t0))
		s.mu.Unlock()
		s.yieldToWriters()
		steps++
		freed += n
		if next == nil {
			break
		}
		from = next
	}
	s.lastCompactStep.Store(int64(longest))
	s.logger().Debug("revkv: compacted", "rev", rev, "steps", steps, "keysChanged", freed,
		"took", time.Since(start), "longestStep", longest)
}

// OnCompact registers before to run at the start of every later
// compaction: Compact(rev) calls before(rev) once it has checked rev, and
// before the new compacted revision takes effect, so that it can keep what
// it still needs of the history below rev (a View taken then keeps all of
// it; package watch keeps it for watches that are reading it). The
// function before returns, if not nil, is called once the compaction has
// taken effect (reads below rev fail), or has failed. Compactions are
// serialized, so the hooks run for one at a time, in order; they must not
// call Compact. Writes and reads go on while they run.
func (s *Store) OnCompact(before func(rev int64) (after func())) {
	s.compactMu.Lock()
	defer s.compactMu.Unlock()
	s.compactHooks = append(s.compactHooks, before)
}

// beforeCompact checks rev against the published state and runs the
// OnCompact hooks, returning what they want run afterwards. compactMu is
// held, so the compacted revision cannot move until Compact moves it; the
// revision only grows.
func (s *Store) beforeCompact(rev int64) (after []func(), err error) {
	if s.closed.Load() {
		return nil, kv.ErrClosed
	}
	st := s.cur.Load()
	if rev <= st.compactRev {
		return nil, fmt.Errorf("compact to %d, compacted %d: %w", rev, st.compactRev, ErrCompacted)
	}
	if rev > st.rev {
		return nil, fmt.Errorf("compact to %d, current %d: %w", rev, st.rev, ErrFutureRev)
	}
	for _, before := range s.compactHooks {
		if fn := before(rev); fn != nil {
			after = append(after, fn)
		}
	}
	return after, nil
}

// compactAllLocked frees the memory of a compaction to rev at once, for
// replay, where nobody waits. mu is held (or the store is private).
func (s *Store) compactAllLocked(rev int64) {
	var from []byte
	for {
		next, _ := s.compactStepLocked(rev, from)
		if next == nil {
			break
		}
		from = next
	}
	s.w.hist = s.w.hist.dropBefore(rev)
}

// yieldToWriters lets writers that are waiting for mu take it before the
// next compaction step. sync.Mutex would let this goroutine take the lock
// straight back; a bounded number of yields keeps a stream of writers from
// starving compaction in turn.
func (s *Store) yieldToWriters() {
	for i := 0; i < 64 && s.waiting.Load() > 0; i++ {
		runtime.Gosched()
	}
}

// compactStepLocked compacts up to compactStep keys from key from (nil: the
// first key), and returns the key to continue from (nil when done) and how
// many keys it changed. mu is held.
func (s *Store) compactStepLocked(rev int64, from []byte) (next []byte, changed int) {
	batch := make([]*keyRecord, 0, compactStep+1)
	s.w.keys.ascend(from, nil, func(r *keyRecord) bool {
		batch = append(batch, r)
		return len(batch) <= compactStep
	})
	if len(batch) > compactStep {
		next = batch[compactStep].key()
		batch = batch[:compactStep]
	}
	copied := 0
	for _, r := range batch {
		if copied >= compactStepVersions {
			// Enough work for one step: continue from this key.
			return r.key(), changed
		}
		old := r.vers.Load()
		if old == nil {
			// One version, a put: compaction keeps it whatever rev is.
			continue
		}
		kept, n := old.compacted(rev)
		if kept == old {
			continue
		}
		changed++
		copied += n
		s.changedKeysLocked()
		keys, l := s.w.keys.side(r.key())
		if kept == nil {
			keys.Delete(keyPrefix(r.key(), l), r.key())
			s.pointsRemoveLocked(r)
			continue
		}
		nr := recordOf(r.key(), kept)
		keys.Set(keyPrefix(r.key(), l), r.key(), nr, nil)
		s.pointsReplaceLocked(r, nr)
	}
	return next, changed
}
