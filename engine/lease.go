package engine

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/revkv/revkv/kv"
	"github.com/revkv/revkv/persist"
	"github.com/revkv/revkv/snapshot"
	"github.com/tidwall/btree"
)

// MaxLeaseTTL is the largest TTL, in seconds, Grant takes (kv.MaxLeaseTTL).
const MaxLeaseTTL = kv.MaxLeaseTTL

// Leases. A lease has an ID, a TTL in seconds and a deadline. Keys put
// with its ID are attached to it; when it is revoked, or expires (its
// deadline passes without a KeepAlive), every key attached to it is
// deleted, all at one new revision, in the same durable step that removes
// the lease. Granting, renewing and revoking a lease with no keys do not
// move the revision.
//
// The lease table is persisted beside the keys (persist.Batch.Leases,
// and a snapshot's lease section) with each lease's deadline, so a
// restart keeps what is left of each lease's time. Which keys a lease
// has is not persisted: it is rebuilt from the keys' lease IDs.
//
// Deciding that a lease expired (ExpiredLeases, which reads the clock) is
// apart from applying it (Revoke, which does not): a store expires its
// own leases from a timer (see Options.Clock), and a replicated
// deployment can instead list them on its leader and apply revokes from
// its log (Options.ManualLeaseExpiry).

// Lease is a lease as Grant and Leases report it.
type Lease struct {
	ID int64
	// TTL is the time to live it was granted, in seconds; a KeepAlive
	// renews it to that.
	TTL int64
	// Deadline is when it expires unless renewed, on the store's clock.
	Deadline time.Time
}

// LeaseStatus is what TimeToLive reports of a lease.
type LeaseStatus struct {
	ID int64
	// TTL is the time left, in whole seconds (rounded down; 0 once due).
	TTL int64
	// GrantedTTL is the TTL the lease was granted, in seconds.
	GrantedTTL int64
	// Keys are the keys attached to the lease, in key order, if asked for.
	Keys [][]byte
}

// leaseItem is a lease in the lease trees; deadline in ns since 1970.
type leaseItem struct{ id, ttl, deadline int64 }

func (it leaseItem) lease() Lease {
	return Lease{ID: it.id, TTL: it.ttl, Deadline: time.Unix(0, it.deadline)}
}

type leaseTree = btree.BTreeG[leaseItem]

func newLeaseTree() *leaseTree {
	return btree.NewBTreeGOptions(func(a, b leaseItem) bool { return a.id < b.id }, btree.Options{NoLocks: true})
}

// newExpiryTree orders leases by deadline: its first item is the next to
// expire (a priority queue whose entries can also be found and removed).
func newExpiryTree() *leaseTree {
	return btree.NewBTreeGOptions(func(a, b leaseItem) bool {
		if a.deadline != b.deadline {
			return a.deadline < b.deadline
		}
		return a.id < b.id
	}, btree.Options{NoLocks: true})
}

// leaseTable is the writer's lease state. Only mu's holder changes it;
// the fields marked leaseMu are changed under Store.leaseMu as well, so
// that TimeToLive and the expiry timer can read them without mu.
type leaseTable struct {
	byID *leaseTree // nil until the first lease
	// pub is the copy of byID that readers have (published with the
	// state); dirty says byID changed since it was copied.
	pub   *leaseTree
	dirty bool
	// byExpiry holds the leases of byID by deadline. leaseMu.
	byExpiry *leaseTree
	// keys are the keys attached to each lease, and leaseOf the lease of
	// each attached key: a key is attached while its live version has the
	// ID of a lease in byID. leaseMu.
	keys    map[int64]map[string]struct{}
	leaseOf map[string]int64
	// lastID is the highest lease ID granted, live or not: server-chosen
	// IDs go on above it, so that an ID is not handed out twice (a client
	// still holding a revoked lease's ID must not renew another's lease).
	// Snapshots record it; the log's grants give it back.
	lastID int64
}

// active reports whether the table has any lease (and so perhaps
// attached keys): writes skip all lease work when it has none.
func (lt *leaseTable) active() bool { return lt.byID != nil && lt.byID.Len() > 0 }

func (lt *leaseTable) get(id int64) (leaseItem, bool) {
	if lt.byID == nil {
		return leaseItem{}, false
	}
	return lt.byID.Get(leaseItem{id: id})
}

// publish returns the lease tree readers get with the next state.
func (lt *leaseTable) publish() *leaseTree {
	if lt.dirty {
		lt.pub, lt.dirty = lt.byID.Copy(), false
	}
	return lt.pub
}

// clock returns the store's clock.
func (s *Store) clock() Clock {
	if s.opts.Clock == nil {
		return systemClock{}
	}
	return s.opts.Clock
}

// deadlineAfter returns now + ttl seconds in ns since 1970, or the largest
// such time if it is beyond that.
func deadlineAfter(now time.Time, ttl int64) int64 {
	n := now.UnixNano()
	if ttl > (math.MaxInt64-n)/int64(time.Second) {
		return math.MaxInt64
	}
	return n + ttl*int64(time.Second)
}

// Grant grants a lease of ttl seconds, due ttl seconds from now on the
// store's clock. id 0 lets the store choose a new positive ID, above
// every ID granted so far (kv.ErrLeaseExists if a caller took
// math.MaxInt64, so that none is left); another
// positive id is used as given, and is kv.ErrLeaseExists if a live lease has
// it. A ttl below 1 is taken as 1; one above kv.MaxLeaseTTL is
// kv.ErrLeaseTTLTooLarge. Granting does not move the revision. The grant is
// durable when Grant returns, as a write is.
func (s *Store) Grant(id, ttl int64) (Lease, error) {
	switch {
	case id < 0:
		return Lease{}, fmt.Errorf("negative lease ID %d: %w", id, kv.ErrLeaseNotFound)
	case ttl > MaxLeaseTTL:
		return Lease{}, fmt.Errorf("TTL %d s, limit %d: %w", ttl, int64(MaxLeaseTTL), kv.ErrLeaseTTLTooLarge)
	}
	ttl = max(ttl, 1)
	if err := s.lockWriter(); err != nil {
		return Lease{}, err
	}
	oldIndex := s.w.cindex
	if s.checkIndexLocked() {
		it, _ := s.w.lt.get(id)
		return it.lease(), s.unlockAndWait() // already applied
	}
	if id == 0 {
		if id = s.newLeaseIDLocked(); id == 0 {
			s.w.cindex = oldIndex
			s.mu.Unlock()
			return Lease{}, fmt.Errorf("no lease ID above %d, the highest granted, is left: %w", s.w.lt.lastID, kv.ErrLeaseExists)
		}
	} else if _, ok := s.w.lt.get(id); ok {
		s.w.cindex = oldIndex
		s.mu.Unlock()
		return Lease{}, fmt.Errorf("lease %d: %w", id, kv.ErrLeaseExists)
	}
	lc := persist.LeaseChange{ID: id, TTL: ttl, Deadline: deadlineAfter(s.clock().Now(), ttl)}
	if err := s.commitLeaseLocked(lc, oldIndex); err != nil {
		return Lease{}, err
	}
	return leaseItem{id: id, ttl: ttl, deadline: lc.Deadline}.lease(), s.unlockAndWait()
}

// newLeaseIDLocked returns an ID above every lease ID seen, or 0 if
// there is none (a caller chose math.MaxInt64: the next would wrap to a
// negative ID). mu is held.
func (s *Store) newLeaseIDLocked() int64 {
	for id := s.w.lt.lastID; id < math.MaxInt64; {
		id++
		if _, ok := s.w.lt.get(id); !ok {
			return id
		}
	}
	return 0
}

// KeepAlive renews a lease: it is due its granted TTL from now. It
// returns that TTL. A lease that is not live, or whose deadline has
// passed (it is about to be revoked), is kv.ErrLeaseNotFound. Renewing does
// not move the revision; it is durable when KeepAlive returns.
func (s *Store) KeepAlive(id int64) (ttl int64, err error) {
	if err := s.lockWriter(); err != nil {
		return 0, err
	}
	oldIndex := s.w.cindex
	it, ok := s.w.lt.get(id)
	if s.checkIndexLocked() {
		return it.ttl, s.unlockAndWait() // already applied
	}
	now := s.clock().Now()
	if !ok || it.deadline <= now.UnixNano() {
		s.w.cindex = oldIndex
		s.mu.Unlock()
		return 0, fmt.Errorf("keep-alive of lease %d: %w", id, kv.ErrLeaseNotFound)
	}
	lc := persist.LeaseChange{ID: id, TTL: it.ttl, Deadline: deadlineAfter(now, it.ttl)}
	if err := s.commitLeaseLocked(lc, oldIndex); err != nil {
		return 0, err
	}
	return it.ttl, s.unlockAndWait()
}

// commitLeaseLocked makes lc durable as a batch of its own and applies it.
// If the persister refuses it, the consistent index goes back to oldIndex
// and mu is released; otherwise mu is still held. mu is held.
func (s *Store) commitLeaseLocked(lc persist.LeaseChange, oldIndex uint64) error {
	lcs := []persist.LeaseChange{lc}
	if err := s.logLeasesLocked(s.w.rev, nil, lcs); err != nil {
		s.w.cindex = oldIndex
		s.mu.Unlock()
		return err
	}
	s.applyLeaseChangesLocked(lcs)
	s.publishLocked()
	s.kickExpiryLocked()
	return nil
}

// Revoke removes a lease and deletes every key attached to it, all at one
// new revision, in one durable step; it returns the store's revision
// after (unchanged if the lease had no keys). A lease that is not live is
// kv.ErrLeaseNotFound. If the deletes are above MaxBatchSize it is
// kv.ErrTooLarge and nothing changes.
func (s *Store) Revoke(id int64) (rev int64, err error) {
	if err := s.lockWriter(); err != nil {
		return 0, err
	}
	oldIndex := s.w.cindex
	if s.checkIndexLocked() {
		rev = s.w.rev
		return rev, s.unlockAndWait() // already applied
	}
	if _, ok := s.w.lt.get(id); !ok {
		s.w.cindex = oldIndex
		s.mu.Unlock()
		return 0, fmt.Errorf("revoke of lease %d: %w", id, kv.ErrLeaseNotFound)
	}
	if rev, err = s.revokeLocked(id, oldIndex); err != nil {
		return 0, err
	}
	return rev, s.unlockAndWait()
}

// revokeLocked deletes the keys of the live lease id at one new revision
// and removes the lease, as one batch, and returns the revision after. On
// an error the consistent index goes back to oldIndex and mu is
// released; otherwise mu is still held. mu is held.
func (s *Store) revokeLocked(id int64, oldIndex uint64) (int64, error) {
	keys := s.leaseKeysLocked(id)
	var size int64
	for _, k := range keys {
		size += changeSize(k, nil)
	}
	if size > MaxBatchSize {
		s.w.cindex = oldIndex
		s.mu.Unlock()
		return 0, fmt.Errorf("revoke of lease %d: delete of %d keys (%d bytes), limit %d: %w", id, len(keys), size, MaxBatchSize, kv.ErrTooLarge)
	}
	rev := s.w.rev + 1
	cs := make([]change, 0, len(keys))
	for _, k := range keys {
		d, _ := s.deleteLocked(k, nil, rev, int64(len(cs)), MaxBatchSize)
		cs = append(cs, d...) // an attached key is live: one change
	}
	lcs := []persist.LeaseChange{{ID: id, Revoke: true}}
	logRev := rev
	if len(cs) == 0 {
		logRev = s.w.rev
	}
	if err := s.logLeasesLocked(logRev, cs, lcs); err != nil {
		s.w.cindex = oldIndex
		s.mu.Unlock()
		return 0, err
	}
	if len(cs) > 0 {
		s.w.hist = s.w.hist.add(rev, cs)
		s.w.rev = rev
		s.attachLocked(cs)
	}
	s.applyLeaseChangesLocked(lcs)
	s.publishLocked()
	return s.w.rev, nil
}

// leaseKeysLocked returns the keys attached to lease id, in key order.
// mu is held (only its holder changes the attachments).
func (s *Store) leaseKeysLocked(id int64) [][]byte {
	set := s.w.lt.keys[id]
	keys := make([][]byte, 0, len(set))
	for k := range set {
		keys = append(keys, []byte(k))
	}
	slices.SortFunc(keys, func(a, b []byte) int { return cmp.Compare(string(a), string(b)) })
	return keys
}

// TimeToLive reports a live lease's remaining and granted TTL, and with
// keys the keys attached to it. A lease that is not live is
// kv.ErrLeaseNotFound. It never waits for writers: the lease comes from the
// published (durable) state, its keys from the writer's table, which may
// already hold a put that is still waiting to be durable.
func (s *Store) TimeToLive(id int64, keys bool) (LeaseStatus, error) {
	if s.closed.Load() {
		return LeaseStatus{}, kv.ErrClosed
	}
	st := s.cur.Load()
	var it leaseItem
	ok := false
	if st.leases != nil {
		it, ok = st.leases.Get(leaseItem{id: id})
	}
	if !ok {
		return LeaseStatus{}, fmt.Errorf("lease %d: %w", id, kv.ErrLeaseNotFound)
	}
	left := max(it.deadline-s.clock().Now().UnixNano(), 0)
	ls := LeaseStatus{ID: id, TTL: left / int64(time.Second), GrantedTTL: it.ttl}
	if keys {
		s.leaseMu.Lock()
		for k := range s.w.lt.keys[id] {
			ls.Keys = append(ls.Keys, []byte(k))
		}
		s.leaseMu.Unlock()
		slices.SortFunc(ls.Keys, func(a, b []byte) int { return cmp.Compare(string(a), string(b)) })
	}
	return ls, nil
}

// Leases returns the live leases in ID order. It never waits for writers.
func (s *Store) Leases() ([]Lease, error) {
	if s.closed.Load() {
		return nil, kv.ErrClosed
	}
	st := s.cur.Load()
	var out []Lease
	if st.leases != nil {
		st.leases.Scan(func(it leaseItem) bool {
			out = append(out, it.lease())
			return true
		})
	}
	return out, nil
}

// checkLeaseLocked refuses a put with a lease that is not live. mu is
// held.
func (s *Store) checkLeaseLocked(id int64) error {
	if id == 0 {
		return nil
	}
	if _, ok := s.w.lt.get(id); !ok {
		return fmt.Errorf("put with lease %d: %w", id, kv.ErrLeaseNotFound)
	}
	return nil
}

// applyLeaseChangesLocked applies lease changes to the table: a grant or
// renewal sets a lease, a revoke removes it (its keys are deleted by the
// changes it comes with). mu is held.
func (s *Store) applyLeaseChangesLocked(lcs []persist.LeaseChange) {
	if len(lcs) == 0 {
		return
	}
	lt := &s.w.lt
	s.leaseMu.Lock()
	defer s.leaseMu.Unlock()
	if lt.byID == nil {
		lt.byID, lt.byExpiry = newLeaseTree(), newExpiryTree()
		lt.keys, lt.leaseOf = map[int64]map[string]struct{}{}, map[string]int64{}
	}
	for _, lc := range lcs {
		if old, ok := lt.byID.Get(leaseItem{id: lc.ID}); ok {
			lt.byExpiry.Delete(old)
		}
		lt.dirty = true
		lt.lastID = max(lt.lastID, lc.ID)
		if lc.Revoke {
			lt.byID.Delete(leaseItem{id: lc.ID})
			for k := range lt.keys[lc.ID] {
				delete(lt.leaseOf, k)
			}
			delete(lt.keys, lc.ID)
			continue
		}
		it := leaseItem{id: lc.ID, ttl: lc.TTL, deadline: lc.Deadline}
		lt.byID.Set(it)
		lt.byExpiry.Set(it)
	}
}

// attachLocked moves the keys of committed changes between leases: a put
// attaches its key to its lease (if live), a delete or a put without one
// detaches it. mu is held.
func (s *Store) attachLocked(cs []change) {
	lt := &s.w.lt
	if !lt.active() {
		return
	}
	s.leaseMu.Lock()
	defer s.leaseMu.Unlock()
	for _, c := range cs {
		to := int64(0)
		if !c.v.deleted() {
			if _, ok := lt.byID.Get(leaseItem{id: c.v.lease}); ok {
				to = c.v.lease
			}
		}
		s.attachKeyLocked(c.key, to)
	}
}

// attachKeyLocked attaches key to lease to (0: to none). mu and leaseMu
// are held.
func (s *Store) attachKeyLocked(key []byte, to int64) {
	lt := &s.w.lt
	from, had := lt.leaseOf[string(key)]
	if had && from == to {
		return
	}
	if had {
		set := lt.keys[from]
		delete(set, string(key))
		if len(set) == 0 {
			delete(lt.keys, from)
		}
		delete(lt.leaseOf, string(key))
	}
	if to == 0 {
		return
	}
	k := string(key)
	lt.leaseOf[k] = to
	set := lt.keys[to]
	if set == nil {
		set = map[string]struct{}{}
		lt.keys[to] = set
	}
	set[k] = struct{}{}
}

// attachAllLocked attaches every live key with a live lease's ID: how a
// loaded store rebuilds its attachments. mu is held (or the store is
// private).
func (s *Store) attachAllLocked() {
	if !s.w.lt.active() {
		return
	}
	s.leaseMu.Lock()
	defer s.leaseMu.Unlock()
	s.w.keys.ascend(nil, nil, func(r *keyRecord) bool {
		if v, ok := r.at(s.w.rev); ok && !v.deleted() && v.lease != 0 {
			if _, live := s.w.lt.get(v.lease); live {
				s.attachKeyLocked(r.key(), v.lease)
			}
		}
		return true
	})
}

// ExpiredLeases returns the IDs of the live leases whose deadline is at
// or before now, soonest first. It only reads: a replicated deployment's
// leader calls it and proposes a Revoke for each; a store that expires
// its own leases calls ExpireLeases.
func (s *Store) ExpiredLeases(now time.Time) []int64 {
	s.leaseMu.Lock()
	defer s.leaseMu.Unlock()
	lt := &s.w.lt
	if lt.byExpiry == nil {
		return nil
	}
	var ids []int64
	n := now.UnixNano()
	lt.byExpiry.Scan(func(it leaseItem) bool {
		if it.deadline > n {
			return false
		}
		ids = append(ids, it.id)
		return true
	})
	return ids
}

// ExpireLeases revokes every lease due at or before now (see
// ExpiredLeases), each at a revision of its own, and returns how many it
// revoked. A lease renewed or revoked meanwhile is left alone. It is what
// the store's expiry timer runs; with Options.ManualLeaseExpiry it is the
// caller's to run.
//
// A store driven by a consensus log (Options.ConsistentIndex) refuses it
// with an error wrapping errors.ErrUnsupported: there every change must be
// an entry of the log, so the leader proposes a Revoke for each of
// ExpiredLeases instead (an expiry here would carry no index of its own,
// and a replay after a restart would skip it).
func (s *Store) ExpireLeases(now time.Time) (int, error) {
	if s.opts.ConsistentIndex != nil {
		return 0, fmt.Errorf("revkv/engine: ExpireLeases on a store with a ConsistentIndex (revoke through the log): %w", errors.ErrUnsupported)
	}
	n := 0
	for _, id := range s.ExpiredLeases(now) {
		done, err := s.expireLease(id, now)
		if err != nil {
			return n, err
		}
		if done {
			n++
		}
	}
	return n, nil
}

// expireLease revokes lease id if it is still live and due at now.
func (s *Store) expireLease(id int64, now time.Time) (bool, error) {
	if err := s.lockWriter(); err != nil {
		return false, err
	}
	if it, ok := s.w.lt.get(id); !ok || it.deadline > now.UnixNano() {
		s.mu.Unlock()
		return false, nil
	}
	// Not a log entry of its own: the consistent index stays as it is.
	if _, err := s.revokeLocked(id, s.w.cindex); err != nil {
		return false, err
	}
	return true, s.unlockAndWait()
}

// loadLeases installs a snapshot's lease section in a store being loaded
// and attaches the live keys to them. The store is private.
func (s *Store) loadLeases(ls []snapshot.Lease, lastID int64) error {
	lcs := make([]persist.LeaseChange, 0, len(ls))
	for _, l := range ls {
		if l.TTL > kv.MaxLeaseTTL {
			return fmt.Errorf("revkv/engine: snapshot lease %d with TTL %d: %w", l.ID, l.TTL, kv.ErrCorrupt)
		}
		lcs = append(lcs, persist.LeaseChange{ID: l.ID, TTL: l.TTL, Deadline: l.Deadline})
	}
	s.applyLeaseChangesLocked(lcs)
	s.w.lt.lastID = max(s.w.lt.lastID, lastID)
	s.attachAllLocked()
	return nil
}

// sameAs reports how lt's leases differ from o's (nil if they do not):
// Restore's check that the durable copy holds the leases the store has.
func (lt *leaseTable) sameAs(o *leaseTable) error {
	var a, b []leaseItem
	for _, t := range []struct {
		lt  *leaseTable
		out *[]leaseItem
	}{{lt, &a}, {o, &b}} {
		if t.lt.byID != nil {
			t.lt.byID.Scan(func(it leaseItem) bool { *t.out = append(*t.out, it); return true })
		}
	}
	if !slices.Equal(a, b) || lt.lastID != o.lastID {
		return fmt.Errorf("leases %v (last ID %d), the store has %v (last ID %d)", a, lt.lastID, b, o.lastID)
	}
	return nil
}
