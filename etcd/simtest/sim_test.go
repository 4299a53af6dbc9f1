package simtest

import (
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/cryptotest"
	"time"

	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/etcd/member"
	"github.com/revkv/revkv/kv"
	"github.com/revkv/revkv/persist/memfs"
	"go.etcd.io/raft/v3/raftpb"
	"pgregory.net/rapid"
)

// defaultSteps is the number of actions per rapid check in the default
// run; REVKV_SIM_STEPS overrides it.
const defaultSteps = 250

// settleWrites makes clients go on writing while the cluster settles
// (REVKV_SIM_SETTLE_WRITES=1): without it, a member that only catches up
// when new entries come (a liveness bug, as TestJoinIdleCluster's) fails
// the run.
var settleWrites = os.Getenv("REVKV_SIM_SETTLE_WRITES") != ""

// requestTimeoutTicks is the members' Config.RequestTimeoutTicks: short, so
// that requests lost on the way to the leader end (as unknown) before a
// run's settling rounds run out.
const requestTimeoutTicks = 60

func simSteps(t *testing.T) int {
	s := os.Getenv("REVKV_SIM_STEPS")
	if s == "" {
		return defaultSteps
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("REVKV_SIM_STEPS=%q: want a positive number", s)
	}
	return n
}

// TestSimulation runs the cluster simulation: each rapid check starts a
// fresh cluster of 3 or 5 members, runs a random sequence of actions,
// heals everything, lets the cluster settle and checks it (see the package
// doc). A failing check shrinks to a short sequence; the log of the
// failing run lists every action taken.
func TestSimulation(t *testing.T) {
	steps := simSteps(t)
	goroutines := runtime.NumGoroutine()
	var total stats
	rapid.Check(t, func(rt *rapid.T) {
		s := simulate(t, rt, steps)
		total.add(s.stats)
	})
	// Every member, DB and watcher was closed: nothing of theirs may run on.
	for wait := 0; runtime.NumGoroutine() > goroutines; wait++ {
		if wait == 100 {
			t.Fatalf("%d goroutines left running after the runs (%d before)", runtime.NumGoroutine(), goroutines)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("%d runs, %d simulated steps (%d actions + %d settling rounds), %d messages delivered, %d dropped, %d duplicated, "+
		"%d crashes (%d armed to tear a write, %d write or fsync failures armed), %d restarts, %d snapshots received, %d client ops (%d acknowledged, %d unknown of which %d timed out, %d not proposed), "+
		"%d compactions, %d member adds, %d removes, %d promotions, %d leader transfers proposed, %d leased puts and %d deletes by lease revocation or expiry applied, %d watches reopened on a DB replaced by a snapshot, %d committed entries compared, "+
		"%d linearizability checks skipped (porcupine timeout)",
		total.runs, total.actions+total.settleRounds, total.actions, total.settleRounds, total.delivered, total.dropped, total.duplicated,
		total.crashes, total.torn, total.diskFaults, total.restarts, total.snapshots, total.clientOps, total.acked, total.unknown, total.timeouts, total.notProposed,
		total.compactions, total.adds, total.removes, total.promotes, total.transfers, total.leasePuts, total.leaseDeletes, total.watchReopens, total.committedEntries, total.uncheckedHistories)
	// The checks above are only as good as what the runs did: a default
	// run (or longer) must have met every common kind of event (each
	// expected 30 times or more; promotions and lease expiries, a few
	// times per default run, are left out so CI does not flake).
	if total.runs >= 50 && steps >= defaultSteps {
		for what, n := range map[string]int{
			"acknowledged writes": total.acked, "unknown outcomes": total.unknown, "crashes": total.crashes,
			"snapshot installs": total.snapshots, "compactions": total.compactions, "member adds": total.adds,
			"duplicated messages": total.duplicated, "dropped messages": total.dropped,
			"watches reopened after a snapshot install": total.watchReopens,
		} {
			if n == 0 {
				t.Errorf("no %s in %d runs: the simulation no longer exercises them", what, total.runs)
			}
		}
	}
}

// simulate runs one simulation: a new cluster, its actions, settling and
// the checks.
func simulate(t *testing.T, rt *rapid.T, steps int) *sim {
	// raft draws its election timeouts (and member its request-ID
	// epochs) from crypto/rand: seeded here, so a run replays (and
	// shrinks) exactly.
	cryptotest.SetGlobalRandom(t, rapid.Uint64().Draw(rt, "raftSeed"))
	s := newSim(rt, steps)
	if testing.Verbose() {
		s.verbose = t.Logf
	}
	defer s.closeAll()
	s.run()
	s.settle()
	s.check()
	return s
}

// TestSimulationReplays runs the same few seeds twice and wants the same
// runs: rapid can only shrink (and a failure only be replayed) if a run is
// a function of its draws. Anything else that steers it (a goroutine's
// timing, an unseeded random source, map order) breaks this test first.
func TestSimulationReplays(t *testing.T) {
	set := func(name, value string) {
		f := flag.Lookup(name)
		old := f.Value.String()
		if err := f.Value.Set(value); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Value.Set(old) })
	}
	set("rapid.seed", "20261201")
	set("rapid.checks", "8")
	fingerprints := func() []string {
		var fps []string
		rapid.Check(t, func(rt *rapid.T) {
			s := simulate(t, rt, 100)
			fps = append(fps, s.fingerprint)
		})
		return fps
	}
	first, second := fingerprints(), fingerprints()
	if !slices.Equal(first, second) {
		t.Fatalf("the same seeds ran differently:\n%s\nthen:\n%s", strings.Join(first, "\n"), strings.Join(second, "\n"))
	}
}

// stats are the counts of one run (or, added up, of a test).
type stats struct {
	runs, actions, settleRounds                     int
	delivered, dropped, duplicated                  int
	crashes, torn, restarts, snapshots              int
	clientOps, acked, unknown, uncheckedHistories   int
	adds, removes, promotes, compactions, transfers int
	notProposed, timeouts, diskFaults               int
	leasePuts, leaseDeletes, watchReopens           int
	committedEntries                                int
}

func (a *stats) add(b stats) {
	a.runs++
	a.actions += b.actions
	a.settleRounds += b.settleRounds
	a.delivered += b.delivered
	a.dropped += b.dropped
	a.duplicated += b.duplicated
	a.crashes += b.crashes
	a.torn += b.torn
	a.restarts += b.restarts
	a.snapshots += b.snapshots
	a.clientOps += b.clientOps
	a.acked += b.acked
	a.unknown += b.unknown
	a.uncheckedHistories += b.uncheckedHistories
	a.adds += b.adds
	a.removes += b.removes
	a.promotes += b.promotes
	a.compactions += b.compactions
	a.transfers += b.transfers
	a.notProposed += b.notProposed
	a.timeouts += b.timeouts
	a.diskFaults += b.diskFaults
	a.leasePuts += b.leasePuts
	a.leaseDeletes += b.leaseDeletes
	a.watchReopens += b.watchReopens
	a.committedEntries += b.committedEntries
}

// params are a run's cluster settings, drawn once per run.
type params struct {
	size            int
	snapshotEntries uint64
	catchUpEntries  uint64
	// chaos multiplies the weights of the fault actions (drops, delays,
	// partitions, crashes, leader transfers): 0 is a network that only
	// reorders and duplicates, 3 a hostile one.
	chaos int
	// leases turns on the lease actions (grant, leased puts, revoke,
	// keep-alive, the clock going on so the leader revokes expired
	// leases). Their writes are outside the clients' KV model, whose
	// revisions would no longer add up: such runs skip porcupine and keep
	// every other check (leases must replicate as deterministically as
	// the rest).
	leases bool
}

// node is one member as the simulation sees it: its disk outlives its
// incarnations (each Open after a crash is a new *member.Member).
type node struct {
	id      uint64
	fs      *memfs.FS
	rec     *entryRecord
	m       *member.Member // nil while down
	store   *recordingStorage
	joined  bool // started empty, to join by AddMember
	removed bool // removed from the cluster and stopped
	armed   bool // a CrashAfter is armed: it dies at its next failing write
	w       memberWatch
}

func (n *node) up() bool { return n.m != nil }

// clientOp is a request in flight: a KV write (Propose), a linearizable
// read (ReadIndex, then a read of the member's DB), or a compaction or
// membership change (not part of the KV history).
type clientOp struct {
	node uint64
	in   opInput
	read bool
	kv   bool // part of the porcupine history
	what string
	call int64
	p    *member.Pending
	done func(res any, err error) // non-KV ops
}

type sim struct {
	t     *rapid.T
	p     params
	steps int

	net     *network
	nodes   map[uint64]*node
	nextID  uint64
	clock   *engine.ManualClock
	leaders leaderLog
	peers   []member.Peer // the bootstrap members

	hist        history
	ops         []*clientOp
	acked       []ackedWrite
	now         int64 // porcupine's clock: bumped at every call and observation
	vals        int   // values written so far (each put writes a new one)
	leaseIDs    int64 // the last lease ID asked for
	urls        int   // peer URLs made by updateMember
	serialReads []serialRead
	known       [nKeys]keyState
	maxRev      int64

	stats       stats
	verbose     func(format string, args ...any) // with -v: one line per run
	fingerprint string                           // what the run did, in brief (TestSimulationReplays)
}

func newSim(t *rapid.T, steps int) *sim {
	s := &sim{
		t:       t,
		steps:   steps,
		net:     newNetwork(),
		nodes:   map[uint64]*node{},
		clock:   engine.NewManualClock(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)),
		leaders: leaderLog{},
	}
	s.p = params{
		size:            rapid.SampledFrom([]int{3, 5}).Draw(t, "members"),
		snapshotEntries: uint64(rapid.IntRange(2, 25).Draw(t, "snapshotEntries")),
		catchUpEntries:  uint64(rapid.IntRange(1, 5).Draw(t, "catchUpEntries")),
		chaos:           rapid.IntRange(0, 3).Draw(t, "chaos"),
		leases:          rapid.Bool().Draw(t, "leases"),
	}
	var peers []member.Peer
	for i := 1; i <= s.p.size; i++ {
		peers = append(peers, peerOf(uint64(i), false))
	}
	s.nextID = uint64(s.p.size) + 1
	s.peers = peers
	for _, p := range peers {
		n := s.newNode(p.ID)
		s.open(n, peers, false)
	}
	s.warmUp()
	return s
}

// warmUp runs the new cluster, with no faults, until it has a leader all
// members know: a run spends its actions on a working cluster, not on the
// first election.
func (s *sim) warmUp() {
	for range 100 {
		s.tickAll()
		for range 4 {
			s.deliverAll()
		}
		if s.settled() {
			return
		}
	}
	s.fatalf("no leader after 100 ticks of a healthy new cluster: %s", s.describe())
}

func peerOf(id uint64, learner bool) member.Peer {
	return member.Peer{
		ID: id, Name: fmt.Sprintf("m%d", id), IsLearner: learner,
		PeerURLs:   []string{fmt.Sprintf("http://m%d:2380", id)},
		ClientURLs: []string{fmt.Sprintf("http://m%d:2379", id)},
	}
}

func (s *sim) newNode(id uint64) *node {
	seed := rapid.Uint64().Draw(s.t, "diskSeed")
	n := &node{id: id, fs: memfs.New(memfs.Options{Crash: memfs.CrashTorn, Seed: seed}), rec: newEntryRecord()}
	s.nodes[id] = n
	return n
}

// ids returns the IDs of the nodes that pass keep, in order.
func (s *sim) ids(keep func(*node) bool) []uint64 {
	var ids []uint64
	for _, id := range slices.Sorted(maps.Keys(s.nodes)) {
		if keep(s.nodes[id]) {
			ids = append(ids, id)
		}
	}
	return ids
}

func (s *sim) upIDs() []uint64 { return s.ids(func(n *node) bool { return n.up() }) }

// pick draws one of ids, or returns false if there is none.
func (s *sim) pick(ids []uint64, label string) (*node, bool) {
	if len(ids) == 0 {
		return nil, false
	}
	return s.nodes[rapid.SampledFrom(ids).Draw(s.t, label)], true
}

func (s *sim) tick() int64 { s.now++; return s.now }

func (s *sim) logf(format string, args ...any) {
	s.t.Logf("[%d] "+format, append([]any{s.net.now}, args...)...)
}

func (s *sim) fatalf(format string, args ...any) {
	s.t.Fatalf("[tick %d] "+format+"\nnetwork: %v", append(append([]any{s.net.now}, args...), s.net)...)
}

// open starts (or restarts) n's member from its disk.
func (s *sim) open(n *node, peers []member.Peer, join bool) {
	store, err := openRecording(n)
	if err != nil {
		s.fatalf("member %d: opening its raft log after a crash: %v", n.id, err)
	}
	m, err := member.Open(member.Config{
		ID: n.id, Storage: store, Peers: peers, Join: join,
		SnapshotEntries: s.p.snapshotEntries, CatchUpEntries: s.p.catchUpEntries,
		RequestTimeoutTicks: requestTimeoutTicks, Clock: s.clock,
	})
	if err != nil {
		_ = store.Close()
		s.fatalf("member %d: Open: %v", n.id, err)
	}
	n.m, n.store = m, store
	s.ready(n)
}

// isCrash reports whether err comes from n's disk having crashed or
// failed (an armed CrashAfter, FailWrite or FailSync): the expected end of
// its incarnation (a member stops at a storage failure; it is restarted).
func isCrash(n *node, err error) bool {
	return n.armed && (errors.Is(err, memfs.ErrCrashed) || errors.Is(err, memfs.ErrInjected))
}

// ready runs n's Ready, sends its messages and observes the cluster.
func (s *sim) ready(n *node) {
	if !n.up() {
		return
	}
	msgs, err := n.m.Ready()
	if err := s.net.send(msgs); err != nil {
		s.fatalf("member %d: %v", n.id, err)
	}
	switch {
	case err == nil:
	case isCrash(n, err):
		s.kill(n)
	case errors.Is(err, member.ErrStopped) && s.removedFromCluster(n):
		s.logf("member %d stopped after its removal", n.id)
		s.stop(n)
	default:
		s.fatalf("member %d: Ready: %v", n.id, err)
	}
	s.syncWatch(n, false)
	s.observe()
}

// removedFromCluster reports whether some running member no longer lists
// n (it stops itself when it applies its own removal).
func (s *sim) removedFromCluster(n *node) bool {
	for _, id := range s.upIDs() {
		if id != n.id && !slices.ContainsFunc(s.nodes[id].m.Members(), func(p member.Peer) bool { return p.ID == n.id }) {
			return true
		}
	}
	return false
}

// kill ends n's incarnation as a power loss would: nothing it still
// writes reaches the disk (every operation fails from now on), its member
// is closed to free it, and the disk keeps what it had synced (plus a torn
// prefix of the rest). Messages on their way to it are lost.
func (s *sim) kill(n *node) {
	s.stats.crashes++
	// Take every event the watch has yet to deliver first: where the
	// history resumes must not depend on how fast the watch goroutine ran
	// (it bounds the compactions drawn later), or a run would not replay.
	s.syncWatch(n, true)
	n.fs.FailWrite(0)
	n.fs.FailSync(0)
	n.fs.CrashAfter(1)
	_ = n.m.Close() // fails on the crashed disk: nothing of it is durable
	n.fs.Crash()
	n.m, n.store, n.armed = nil, nil, false
	s.net.dropTo(n.id)
	s.syncWatch(n, false)
	s.logf("member %d crashed", n.id)
}

// stop closes a member that was removed from the cluster.
func (s *sim) stop(n *node) {
	if n.up() {
		s.syncWatch(n, true) // as in kill
		_ = n.m.Close()
		n.m, n.store = nil, nil
	}
	n.removed = true
	s.net.dropTo(n.id)
	s.syncWatch(n, false)
}

// observe checks every running member's Status against the leaders seen
// so far, records its newly committed entries and resolves the client
// requests that are done.
func (s *sim) observe() {
	for _, id := range s.upIDs() {
		st := s.nodes[id].m.Status()
		if err := s.leaders.observe(id, st.Term, st.Leader); err != nil {
			s.fatalf("%v", err)
		}
		// Every member has run Ready since its last input, so its log
		// up to raft's commit index is on its disk: committed entries
		// (member need not save a hard state for each commit advance).
		rec := s.nodes[id].rec
		if rec.advance(st.Committed, "Status"); rec.err != nil {
			s.fatalf("member %d: %v", id, rec.err)
		}
	}
	s.ops = slices.DeleteFunc(s.ops, func(op *clientOp) bool {
		select {
		case <-op.p.Done():
		default:
			return false
		}
		res, err := op.p.Result()
		s.resolve(op, res, err)
		return true
	})
}

// notProposed reports whether err says the request never reached the log.
func notProposed(err error) bool {
	return errors.Is(err, member.ErrNoLeader) || errors.Is(err, member.ErrProposalDropped)
}

// refused reports whether err is a membership change the member table
// refused (when proposed or when applied): it certainly did not happen.
func refused(err error) bool {
	for _, e := range []error{member.ErrMemberExists, member.ErrIDRemoved, member.ErrMemberNotFound,
		member.ErrNotLearner, member.ErrLearnerNotReady, member.ErrNotLeader, member.ErrInvalidRequest} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// resolve records the outcome of a done request.
func (s *sim) resolve(op *clientOp, res any, err error) {
	if !op.kv {
		op.done(res, err)
		return
	}
	if op.read {
		n := s.nodes[op.node]
		if err != nil || !n.up() {
			return // a read that failed changed nothing: leave it out
		}
		rr, err := n.m.DB().Range([]byte(keyName(op.in.Key)), nil, kv.RangeOptions{})
		if err != nil {
			s.fatalf("member %d: read after ReadIndex: %v", n.id, err)
		}
		out := opOutput{Rev: rr.Rev}
		if len(rr.KVs) == 1 {
			out.Found, out.Value, out.Mod = true, string(rr.KVs[0].Value), rr.KVs[0].ModRevision
			s.known[op.in.Key] = keyState{Present: true, Value: out.Value, Mod: out.Mod}
		}
		s.hist.add(int(op.node), op.in, out, op.call, s.tick())
		return
	}
	if err != nil {
		if notProposed(err) {
			return
		}
		s.stats.unknown++
		if errors.Is(err, member.ErrTimeout) {
			s.stats.timeouts++
		}
		s.hist.add(int(op.node), op.in, opOutput{Unknown: true}, op.call, 0)
		return
	}
	resp, ok := res.(*kv.TxnResponse)
	if !ok {
		s.fatalf("member %d: %s resolved with %T, want *kv.TxnResponse", op.node, op.what, res)
	}
	out := opOutput{Rev: resp.Rev}
	if op.in.Kind == opTxn {
		out.Succeeded = resp.Succeeded
	}
	s.maxRev = max(s.maxRev, resp.Rev)
	var w *ackedWrite
	switch op.in.Kind {
	case opPut:
		w = &ackedWrite{Rev: resp.Rev, Key: keyName(op.in.Key), Value: op.in.Value}
		s.known[op.in.Key] = keyState{Present: true, Value: op.in.Value, Mod: resp.Rev}
	case opDelete:
		if len(resp.Responses) == 1 {
			out.Deleted = resp.Responses[0].Delete.Deleted
		}
		if out.Deleted > 0 {
			w = &ackedWrite{Rev: resp.Rev, Key: keyName(op.in.Key), Delete: true}
		}
	case opTxn:
		if resp.Succeeded && op.in.ThenDelete && len(resp.Responses) == 1 {
			out.Deleted = resp.Responses[0].Delete.Deleted
		}
		if resp.Succeeded && (!op.in.ThenDelete || out.Deleted > 0) { // a delete of nothing has no revision of its own
			w = &ackedWrite{Rev: resp.Rev, Key: keyName(op.in.ThenKey), Value: op.in.ThenValue, Delete: op.in.ThenDelete}
		}
	}
	if w != nil {
		s.acked = append(s.acked, *w)
	}
	s.stats.acked++
	s.hist.add(int(op.node), op.in, out, op.call, s.tick())
}

// run takes the run's actions.
func (s *sim) run() {
	weight := func(a simAction) int {
		switch {
		case a.lease && !s.p.leases:
			return 0
		case a.fault:
			return a.weight * s.p.chaos
		}
		return a.weight
	}
	total := 0
	for _, a := range simActions {
		total += weight(a)
	}
	for range s.steps {
		x := rapid.IntRange(0, total-1).Draw(s.t, "action")
		for _, a := range simActions {
			if x < weight(a) {
				s.t.Logf("[%d] %s", s.net.now, a.name) // read with the draws that follow
				a.run(s)
				break
			}
			x -= weight(a)
		}
		s.reportLostSnaps()
		s.stats.actions++
	}
}

// settle heals the network, restarts every member that is down and runs
// the cluster (ticks and every message delivered) until all members agree
// on a leader and have applied the same entries, for a few rounds in a
// row.
func (s *sim) settle() {
	s.net.heal()
	for _, id := range slices.Sorted(maps.Keys(s.nodes)) {
		n := s.nodes[id]
		if n.armed {
			n.fs.CrashAfter(0)
			n.fs.FailWrite(0)
			n.fs.FailSync(0)
			n.armed = false
		}
		if !n.up() && !n.removed {
			s.stats.restarts++
			s.reopen(n)
		}
	}
	const maxRounds = 1000
	stable := 0
	for round := 0; ; round++ {
		if stable >= 3 && len(s.ops) == 0 {
			return
		}
		if round == maxRounds {
			s.fatalf("the cluster did not settle in %d rounds: %s", maxRounds, s.describe())
		}
		s.stats.settleRounds++
		s.tickAll()
		// A few hops of messages per tick: the replies to the replies to
		// what was queued (an election, an append and its commit), not
		// all of them: a member that resends forever must not stall the
		// simulation.
		for range 4 {
			s.deliverAll()
			s.reportLostSnaps()
		}
		if round == 50 {
			s.dropStrangers()
		}
		if s.settled() {
			stable++
			continue
		}
		stable = 0
		if round > 25 && round%3 == 0 && settleWrites {
			s.put() // clients go on writing while the cluster settles
		}
	}
}

// members returns the running nodes in the cluster: those the leader
// lists, or nil if no member is the leader.
func (s *sim) members() []*node {
	var lead *node
	for _, id := range s.upIDs() {
		n := s.nodes[id]
		if st := n.m.Status(); st.Leader == n.id {
			lead = n
		}
	}
	if lead == nil {
		return nil
	}
	var ns []*node
	for _, p := range lead.m.Members() {
		ns = append(ns, s.nodes[p.ID])
	}
	return ns
}

// dropStrangers stops the running members the cluster does not list
// (joiners whose addition failed, members removed while cut off), as
// etcd's peers refuse a removed member.
func (s *sim) dropStrangers() {
	in := map[uint64]bool{}
	ms := s.members()
	if ms == nil {
		return
	}
	for _, n := range ms {
		if n != nil {
			in[n.id] = true
		}
	}
	for _, id := range s.upIDs() {
		if !in[id] {
			s.logf("member %d is not in the cluster: stopped", id)
			s.stop(s.nodes[id])
		}
	}
}

// settled reports whether every member of the cluster is up and has
// applied all that the leader committed, on the same term.
func (s *sim) settled() bool {
	ms := s.members()
	if len(ms) == 0 {
		return false
	}
	var want member.Status
	var rev int64
	for i, n := range ms {
		if n == nil || !n.up() {
			return false
		}
		st := n.m.Status()
		if i == 0 {
			want, rev = st, n.m.DB().Rev()
		}
		if st.Leader != want.Leader || st.Term != want.Term || st.Applied != st.Committed || st.Committed != want.Committed || n.m.DB().Rev() != rev {
			return false
		}
	}
	return true
}

func (s *sim) describe() string {
	var b []byte
	for _, id := range slices.Sorted(maps.Keys(s.nodes)) {
		n := s.nodes[id]
		if n.up() {
			last, _ := n.store.LastIndex()
			term, _ := n.store.Term(last)
			b = fmt.Appendf(b, "\n  member %d: %+v log to %d (term %d) rev %d members %v", id, n.m.Status(), last, term, n.m.DB().Rev(), n.m.Members())
		} else {
			b = fmt.Appendf(b, "\n  member %d: down (removed %v)", id, n.removed)
		}
	}
	return string(b)
}

// check runs every checker on the settled cluster.
func (s *sim) check() {
	ms := s.members()
	finals := map[uint64]int64{}
	logs := map[uint64]*watchLog{}
	hashes := map[uint64]map[int64]kv.KeyValueHash{}
	for _, n := range ms {
		s.syncWatch(n, true)
		db := n.m.DB()
		finals[n.id] = db.Rev()
		logs[n.id] = &n.w.log
		hashes[n.id] = map[int64]kv.KeyValueHash{}
		for rev := max(db.CompactRev(), 1); rev <= db.Rev(); rev++ {
			h, err := db.HashByRev(rev)
			if err != nil {
				s.fatalf("member %d: HashByRev(%d): %v", n.id, rev, err)
			}
			hashes[n.id][rev] = h
		}
	}
	// The member table is replicated state too: the same everywhere.
	for _, n := range ms[1:] {
		if got, want := n.m.Members(), ms[0].m.Members(); !reflect.DeepEqual(got, want) {
			s.fatalf("member tables differ: member %d has %v, member %d %v", n.id, got, ms[0].id, want)
		}
	}
	if err := checkWatchHistories(logs, finals); err != nil {
		s.fatalf("%v", err)
	}
	if err := checkHashes(hashes); err != nil {
		s.fatalf("%v", err)
	}
	entries := map[uint64][]*raftpb.Entry{}
	for id, n := range s.nodes {
		if n.rec.err != nil {
			s.fatalf("member %d: %v", id, n.rec.err)
		}
		entries[id] = n.rec.committedEntries()
		s.stats.committedEntries += len(entries[id])
	}
	if err := checkCommittedPrefixes(entries); err != nil {
		s.fatalf("%v", err)
	}
	if err := checkAckedWrites(s.acked, logs); err != nil {
		s.fatalf("%v", err)
	}
	if err := checkSerialReads(s.serialReads, logs); err != nil {
		s.fatalf("%v", err)
	}
	for _, e := range logs[ms[0].id].Events {
		if strings.HasPrefix(e.Key, "l") {
			if e.Delete {
				s.stats.leaseDeletes++
			} else {
				s.stats.leasePuts++
			}
		}
	}
	checked := true
	if !s.p.leases {
		ops := settleUnknown(s.hist.ops, logs)
		var err error
		if checked, err = checkLinearizable(ops, 20*time.Second, true); err != nil {
			s.fatalf("%v", err)
		}
	}
	if !checked {
		s.stats.uncheckedHistories++
		s.logf("porcupine timed out on %d operations: history not checked", len(s.hist.ops))
	}
	if s.verbose == nil {
		s.verbose = s.t.Logf
	}
	s.verbose("run: %d members (snapshot every %d entries, catch-up %d, chaos %d, leases %v), %d actions, %d settling rounds, %d ops, %d acked, %d committed entries compared, final revision %d, net %v",
		s.p.size, s.p.snapshotEntries, s.p.catchUpEntries, s.p.chaos, s.p.leases, s.stats.actions, s.stats.settleRounds, len(s.hist.ops), len(s.acked), s.stats.committedEntries, finals[ms[0].id], s.net)
	s.stats.delivered, s.stats.dropped, s.stats.duplicated = s.net.delivered, s.net.dropped, s.net.duplicated
	s.fingerprint = fmt.Sprintf("%+v revision %d entries %d ops %d net %v", s.p, finals[ms[0].id], s.stats.committedEntries, len(s.hist.ops), s.net)
}

// closeAll closes every running member and watcher.
func (s *sim) closeAll() {
	for _, n := range s.nodes {
		if n.w.w != nil {
			n.w.w.Close()
			n.w.w, n.w.db = nil, nil
		}
		if n.up() {
			_ = n.m.Close()
			n.m = nil
		}
	}
}
