package simtest

import (
	"errors"
	"fmt"
	"maps"
	"os"
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
	"go.etcd.io/raft/v3"
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
		// raft draws its election timeouts from crypto/rand: seeded here,
		// so a run replays (and shrinks) exactly.
		cryptotest.SetGlobalRandom(t, rapid.Uint64().Draw(rt, "raftSeed"))
		s := newSim(rt, steps)
		if testing.Verbose() {
			s.verbose = t.Logf
		}
		defer s.closeAll()
		s.run()
		s.settle()
		s.check()
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
		"%d compactions, %d member adds, %d removes, %d promotions, %d leader transfers proposed, %d leased puts and %d deletes by lease revocation or expiry applied, "+
		"%d linearizability checks skipped (porcupine timeout)",
		total.runs, total.actions+total.settleRounds, total.actions, total.settleRounds, total.delivered, total.dropped, total.duplicated,
		total.crashes, total.torn, total.diskFaults, total.restarts, total.snapshots, total.clientOps, total.acked, total.unknown, total.timeouts, total.notProposed,
		total.compactions, total.adds, total.removes, total.promotes, total.transfers, total.leasePuts, total.leaseDeletes, total.uncheckedHistories)
	// The checks above are only as good as what the runs did: a default
	// run (or longer) must have met every kind of event at least once.
	if total.runs >= 50 && steps >= defaultSteps {
		for what, n := range map[string]int{
			"acknowledged writes": total.acked, "unknown outcomes": total.unknown, "crashes": total.crashes,
			"snapshot installs": total.snapshots, "compactions": total.compactions, "member adds": total.adds,
			"promotions": total.promotes, "lease expiries or revocations": total.leaseDeletes,
			"duplicated messages": total.duplicated, "dropped messages": total.dropped,
		} {
			if n == 0 {
				t.Errorf("no %s in %d runs: the simulation no longer exercises them", what, total.runs)
			}
		}
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
	leasePuts, leaseDeletes                         int
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
	serialReads []serialRead
	known       [nKeys]keyState
	maxRev      int64

	stats   stats
	verbose func(format string, args ...any) // with -v: one line per run
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
// so far and resolves the client requests that are done.
func (s *sim) observe() {
	for _, id := range s.upIDs() {
		st := s.nodes[id].m.Status()
		if err := s.leaders.observe(id, st.Term, st.Leader); err != nil {
			s.fatalf("%v", err)
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
		if resp.Succeeded {
			w = &ackedWrite{Rev: resp.Rev, Key: keyName(op.in.ThenKey), Value: op.in.ThenValue, Delete: op.in.ThenDelete}
			if op.in.ThenDelete && (len(resp.Responses) != 1 || resp.Responses[0].Delete.Deleted == 0) {
				w = nil // deleted nothing: no revision of its own
			}
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
				a.run(s)
				break
			}
			x -= weight(a)
		}
		s.reportLostSnaps()
		s.stats.actions++
	}
}

type simAction struct {
	name   string
	weight int
	fault  bool // weighted by the run's chaos level
	run    func(*sim)
	lease  bool // only in runs with leases
}

// simActions are the simulation's moves, weighted. The first is what
// shrinking turns every action into: the clock going on.
var simActions = []simAction{
	{"tick", 12, false, (*sim).tickAll, false},
	{"tickOne", 3, false, (*sim).tickOne, false},
	{"deliver", 14, false, (*sim).deliverOne, false},
	{"deliverAll", 10, false, (*sim).deliverAll, false},
	{"duplicate", 2, false, (*sim).duplicateOne, false},
	{"heal", 2, false, (*sim).heal, false},
	{"restart", 2, false, (*sim).restart, false},
	{"put", 5, false, (*sim).put, false},
	{"delete", 2, false, (*sim).del, false},
	{"txn", 3, false, (*sim).txn, false},
	{"get", 4, false, (*sim).get, false},
	{"serialRead", 2, false, (*sim).serialRead, false},
	{"compact", 1, false, (*sim).compact, false},
	{"addMember", 1, false, (*sim).addMember, false},
	{"removeMember", 1, false, (*sim).removeMember, false},
	{"promote", 1, false, (*sim).promote, false},
	{"drop", 2, true, (*sim).dropOne, false},
	{"delay", 1, true, (*sim).delayLink, false},
	{"partition", 1, true, (*sim).partition, false},
	{"crash", 1, true, (*sim).crash, false},
	{"diskFault", 1, true, (*sim).diskFault, false},
	{"transferLeader", 1, true, (*sim).transferLeader, false},
	{"leaseGrant", 2, false, (*sim).leaseGrant, true},
	{"leasePut", 3, false, (*sim).leasePut, true},
	{"leaseRevoke", 1, false, (*sim).leaseRevoke, true},
	{"keepAlive", 2, false, (*sim).keepAlive, true},
	{"clock", 2, false, (*sim).advanceClock, true},
}

func (s *sim) tickAll() {
	s.net.now++
	for _, id := range s.upIDs() {
		s.nodes[id].m.Tick()
	}
	for _, id := range s.upIDs() {
		s.ready(s.nodes[id])
	}
}

// tickOne ticks one member alone: its clock runs fast.
func (s *sim) tickOne() {
	if n, ok := s.pick(s.upIDs(), "member"); ok {
		n.m.Tick()
		s.ready(n)
	}
}

// deliver hands m to its member, if it is up, and runs its Ready.
func (s *sim) deliver(m *raftpb.Message) {
	n := s.nodes[m.GetTo()]
	if n == nil || !n.up() {
		return
	}
	if n.m.IsRemoved(m.GetFrom()) {
		return // as etcd's transport, a member ignores removed ones
	}
	if err := n.m.Step(m); err != nil {
		switch {
		case isCrash(n, err):
			s.kill(n)
			return
		case errors.Is(err, raft.ErrStepPeerNotFound), errors.Is(err, raft.ErrStepLocalMsg):
		case errors.Is(err, raft.ErrProposalDropped):
			// A proposal forwarded to a leader that refuses it: its
			// proposer times it out (an unknown outcome).
		case errors.Is(err, member.ErrStopped) && (n.removed || s.removedFromCluster(n)):
		default:
			s.fatalf("member %d: Step(%v from %d): %v", n.id, m.GetType(), m.GetFrom(), err)
		}
	}
	s.ready(n)
	if m.GetType() == raftpb.MsgSnap {
		s.stats.snapshots++
		if from := s.nodes[m.GetFrom()]; from != nil && from.up() {
			from.m.ReportSnapshot(n.id, false)
			s.ready(from)
		}
	}
}

// reportLostSnaps tells the senders of the MsgSnaps the network lost.
func (s *sim) reportLostSnaps() {
	for len(s.net.lostSnaps) > 0 {
		l := s.net.lostSnaps[0]
		s.net.lostSnaps = s.net.lostSnaps[1:]
		if from := s.nodes[l.from]; from != nil && from.up() {
			from.m.ReportSnapshot(l.to, true)
			s.ready(from)
		}
	}
}

func (s *sim) deliverOne() {
	r := s.net.ready()
	if len(r) == 0 {
		return
	}
	i := r[rapid.IntRange(0, len(r)-1).Draw(s.t, "message")]
	if m, ok := s.net.take(i); ok {
		s.deliver(m)
	}
}

// deliverAll delivers every message deliverable now, in send order (not
// the ones their delivery makes).
func (s *sim) deliverAll() {
	var due []int64
	for _, i := range s.net.ready() {
		due = append(due, s.net.queue[i].seq)
	}
	for _, seq := range due {
		i := slices.IndexFunc(s.net.queue, func(e envelope) bool { return e.seq == seq })
		if i < 0 {
			continue // dropped meanwhile (its member crashed)
		}
		if m, ok := s.net.take(i); ok {
			s.deliver(m)
		}
	}
}

func (s *sim) dropOne() {
	if len(s.net.queue) > 0 {
		s.net.drop(rapid.IntRange(0, len(s.net.queue)-1).Draw(s.t, "message"))
	}
}

func (s *sim) duplicateOne() {
	if len(s.net.queue) == 0 {
		return
	}
	if m, ok := s.net.duplicate(rapid.IntRange(0, len(s.net.queue)-1).Draw(s.t, "message")); ok {
		s.deliver(m)
	}
}

func (s *sim) delayLink() {
	ids := slices.Sorted(maps.Keys(s.nodes))
	from := rapid.SampledFrom(ids).Draw(s.t, "from")
	to := rapid.SampledFrom(ids).Draw(s.t, "to")
	s.net.delay[link{from, to}] = int64(rapid.IntRange(0, 8).Draw(s.t, "delay"))
}

func (s *sim) partition() {
	ids := slices.Sorted(maps.Keys(s.nodes))
	cut := rapid.SliceOfNDistinct(rapid.SampledFrom(ids), 1, len(ids)-1, rapid.ID[uint64]).Draw(s.t, "cutOff")
	s.net.partition(cut)
	s.logf("partition: %v cut off", cut)
}

func (s *sim) heal() { s.net.heal() }

// crash kills a member now, or arms its disk to fail after a few more
// operations (so the crash lands inside a Ready, tearing what it writes).
func (s *sim) crash() {
	n, ok := s.pick(s.upIDs(), "member")
	if !ok {
		return
	}
	if k := rapid.IntRange(0, 20).Draw(s.t, "crashAfterOps"); k > 0 && !n.armed {
		n.fs.CrashAfter(int64(k))
		n.armed = true
		s.stats.torn++
		return
	}
	s.kill(n)
}

// diskFault makes one of a member's next writes or fsyncs fail: the member
// must stop (and is then restarted), never go on as if it had written.
func (s *sim) diskFault() {
	n, ok := s.pick(s.upIDs(), "member")
	if !ok || n.armed {
		return
	}
	k := int64(rapid.IntRange(1, 10).Draw(s.t, "faultAfter"))
	if rapid.Bool().Draw(s.t, "failSync") {
		n.fs.FailSync(k)
	} else {
		n.fs.FailWrite(k)
	}
	n.armed = true
	s.stats.diskFaults++
}

func (s *sim) restart() {
	n, ok := s.pick(s.ids(func(n *node) bool { return !n.up() && !n.removed }), "member")
	if !ok {
		return
	}
	s.stats.restarts++
	s.logf("member %d restarts", n.id)
	s.reopen(n)
}

// reopen restarts n with the Config it was first started with (a member
// that crashed before its log had anything bootstraps or joins again).
func (s *sim) reopen(n *node) {
	if n.joined {
		s.open(n, nil, true)
	} else {
		s.open(n, s.peers, false)
	}
}

// propose sends a KV write through a random member.
func (s *sim) propose(in opInput, req *kv.TxnRequest) {
	n, ok := s.pick(s.upIDs(), "member")
	if !ok {
		return
	}
	s.stats.clientOps++
	op := &clientOp{node: n.id, in: in, kv: true, what: describeOp(in, opOutput{Unknown: true}), call: s.tick()}
	p, err := n.m.Propose(member.Request{Txn: req})
	switch {
	case err == nil:
	case notProposed(err), errors.Is(err, member.ErrStopped):
		s.stats.notProposed++
		return
	case isCrash(n, err):
		s.kill(n)
		return
	default:
		s.fatalf("member %d: Propose(%s): %v", n.id, op.what, err)
	}
	op.p = p
	s.ops = append(s.ops, op)
	s.ready(n)
}

func (s *sim) drawKey(label string) int { return rapid.IntRange(0, nKeys-1).Draw(s.t, label) }

func (s *sim) newValue() string { s.vals++; return fmt.Sprintf("v%d", s.vals) }

func (s *sim) put() {
	k, v := s.drawKey("key"), s.newValue()
	s.propose(opInput{Kind: opPut, Key: k, Value: v},
		&kv.TxnRequest{Then: []kv.Op{kv.PutOp([]byte(keyName(k)), []byte(v))}})
}

func (s *sim) del() {
	k := s.drawKey("key")
	s.propose(opInput{Kind: opDelete, Key: k},
		&kv.TxnRequest{Then: []kv.Op{kv.DeleteOp([]byte(keyName(k)), nil)}})
}

// txn compares a key's value or mod revision, mostly with what a client
// last saw of it (so the compare often holds), then puts or deletes.
func (s *sim) txn() {
	in := opInput{Kind: opTxn, CmpKey: s.drawKey("cmpKey"), ThenKey: s.drawKey("thenKey")}
	known := s.known[in.CmpKey]
	fresh := rapid.Bool().Draw(s.t, "cmpKnown")
	cmp := kv.Compare{Key: []byte(keyName(in.CmpKey)), Result: kv.CompareEqual}
	if rapid.Bool().Draw(s.t, "cmpMod") {
		in.CmpTarget, in.CmpMod = cmpMod, known.Mod
		if !fresh {
			in.CmpMod = int64(rapid.IntRange(0, int(s.maxRev)+1).Draw(s.t, "mod"))
		}
		cmp.Target, cmp.ModRevision = kv.CompareMod, in.CmpMod
	} else {
		in.CmpTarget, in.CmpValue = cmpValue, known.Value
		if !fresh || !known.Present {
			in.CmpValue = fmt.Sprintf("v%d", rapid.IntRange(0, s.vals).Draw(s.t, "value"))
		}
		cmp.Target, cmp.Value = kv.CompareValue, []byte(in.CmpValue)
	}
	then := kv.DeleteOp([]byte(keyName(in.ThenKey)), nil)
	if in.ThenDelete = rapid.Bool().Draw(s.t, "thenDelete"); !in.ThenDelete {
		in.ThenValue = s.newValue()
		then = kv.PutOp([]byte(keyName(in.ThenKey)), []byte(in.ThenValue))
	}
	s.propose(in, &kv.TxnRequest{Compare: []kv.Compare{cmp}, Then: []kv.Op{then}})
}

// get is a linearizable read: ReadIndex on a random member, then a read
// of its DB once the Pending says it has applied enough.
func (s *sim) get() {
	n, ok := s.pick(s.upIDs(), "member")
	if !ok {
		return
	}
	s.stats.clientOps++
	in := opInput{Kind: opGet, Key: s.drawKey("key")}
	s.ops = append(s.ops, &clientOp{node: n.id, in: in, read: true, kv: true, what: describeOp(in, opOutput{}), call: s.tick(), p: n.m.ReadIndex()})
	s.ready(n)
}

// serialRead reads a key straight from a random member's DB (etcd's
// serializable read: no ReadIndex, possibly stale). It need not be
// linearizable, but it must be the key as the agreed history has it at
// the revision the member answered with (checkSerialReads).
func (s *sim) serialRead() {
	n, ok := s.pick(s.upIDs(), "member")
	if !ok {
		return
	}
	k := s.drawKey("key")
	rr, err := n.m.DB().Range([]byte(keyName(k)), nil, kv.RangeOptions{})
	if err != nil {
		s.fatalf("member %d: serializable read: %v", n.id, err)
	}
	r := serialRead{Member: n.id, Key: keyName(k), Rev: rr.Rev}
	if len(rr.KVs) == 1 {
		r.Found, r.Value, r.Mod = true, string(rr.KVs[0].Value), rr.KVs[0].ModRevision
	}
	s.serialReads = append(s.serialReads, r)
}

// other proposes a request that is not part of the KV history and calls
// done with its outcome.
func (s *sim) other(n *node, what string, p *member.Pending, done func(res any, err error)) {
	s.logf("member %d: %s", n.id, what)
	s.ops = append(s.ops, &clientOp{node: n.id, what: what, call: s.tick(), p: p, done: done})
	s.ready(n)
}

// compact compacts at a revision no member's watch history still needs
// (a watch reopened below the compacted revision could not resume), so
// every member's history stays gap-free by construction and a gap is a bug.
func (s *sim) compact() {
	n, ok := s.pick(s.upIDs(), "member")
	if !ok {
		return
	}
	bound := s.watchFloor()
	if bound < 2 {
		return
	}
	rev := int64(rapid.IntRange(1, int(bound)).Draw(s.t, "compactRev"))
	p, err := n.m.Propose(member.Request{Compact: &rev})
	if err != nil {
		if isCrash(n, err) {
			s.kill(n)
		}
		return
	}
	s.stats.compactions++
	s.other(n, fmt.Sprintf("compact(%d)", rev), p, func(any, error) {})
}

func (s *sim) addMember() {
	if len(s.ids(func(n *node) bool { return !n.removed })) >= 7 {
		return
	}
	n, ok := s.pick(s.upIDs(), "member")
	if !ok {
		return
	}
	id := s.nextID
	s.nextID++
	learner := rapid.Bool().Draw(s.t, "learner")
	p := n.m.AddMember(peerOf(id, learner))
	// The new member starts now, empty: it idles until the leader, once
	// the change is applied, brings it the log or a snapshot.
	s.open(s.newNode(id), nil, true)
	s.nodes[id].joined = true
	s.stats.adds++
	s.other(n, fmt.Sprintf("add member %d (learner %v)", id, learner), p, func(_ any, err error) {
		s.logf("add member %d: %v", id, err)
		if notProposed(err) || refused(err) {
			s.stop(s.nodes[id]) // certainly not added
		}
	})
}

// removeMember removes a learner, or a voter while the member asked lists
// more than 3 voters (as etcd's strict reconfiguration check keeps a
// quorum of started members; removing the last voter is TestRemoveLastVoter's
// business).
func (s *sim) removeMember() {
	n, ok := s.pick(s.upIDs(), "member")
	if !ok {
		return
	}
	var voters, candidates []uint64
	for _, p := range n.m.Members() {
		if !p.IsLearner {
			voters = append(voters, p.ID)
		}
	}
	for _, p := range n.m.Members() {
		if p.IsLearner || len(voters) > 3 {
			candidates = append(candidates, p.ID)
		}
	}
	if len(candidates) == 0 {
		return
	}
	target := rapid.SampledFrom(candidates).Draw(s.t, "target")
	p := n.m.RemoveMember(target)
	s.stats.removes++
	s.other(n, fmt.Sprintf("remove member %d", target), p, func(_ any, err error) {
		s.logf("remove member %d: %v", target, err)
		if err == nil {
			s.stop(s.nodes[target])
		}
	})
}

func (s *sim) promote() {
	n, ok := s.pick(s.upIDs(), "member")
	if !ok {
		return
	}
	var learners []uint64
	for _, p := range n.m.Members() {
		if p.IsLearner {
			learners = append(learners, p.ID)
		}
	}
	if len(learners) == 0 {
		return
	}
	target := rapid.SampledFrom(learners).Draw(s.t, "learner")
	// Only the leader knows how far a learner is: a client's request
	// goes there (etcd's followers forward it).
	if lead := s.nodes[n.m.Status().Leader]; lead != nil && lead.up() {
		n = lead
	}
	s.stats.promotes++
	s.other(n, fmt.Sprintf("promote member %d", target), n.m.PromoteMember(target), func(_ any, err error) {
		s.logf("promote member %d: %v", target, err)
	})
}

// leaseGrant grants a lease with a new ID, through a random member.
func (s *sim) leaseGrant() {
	s.leaseIDs++
	id := s.leaseIDs
	ttl := int64(rapid.IntRange(1, 20).Draw(s.t, "ttl"))
	s.proposeOther(fmt.Sprintf("grant lease %d (ttl %d)", id, ttl), member.Request{LeaseGrant: &member.LeaseGrant{ID: id, TTL: ttl}}, func(any, error) {})
}

// drawLease returns a lease ID granted or asked for (a grant's outcome
// may be unknown; a request naming a lease that is not there is refused
// the same way on every member).
func (s *sim) drawLease() (int64, bool) {
	if s.leaseIDs == 0 {
		return 0, false
	}
	return int64(rapid.IntRange(1, int(s.leaseIDs)).Draw(s.t, "lease")), true
}

// leasePut puts a key outside the clients' model ("la", "lb", "lc") with
// a lease (maybe gone by then: refused the same way on every member).
func (s *sim) leasePut() {
	id, ok := s.drawLease()
	if !ok {
		return
	}
	k := "l" + keyName(s.drawKey("key"))
	s.vals++
	v := fmt.Sprintf("l%d", s.vals)
	op := kv.Op{Type: kv.OpPut, Key: []byte(k), Value: []byte(v), Put: kv.PutOptions{Lease: id}}
	s.proposeOther(fmt.Sprintf("put %s=%s with lease %d", k, v, id), member.Request{Txn: &kv.TxnRequest{Then: []kv.Op{op}}}, func(any, error) {})
}

func (s *sim) leaseRevoke() {
	if id, ok := s.drawLease(); ok {
		s.proposeOther(fmt.Sprintf("revoke lease %d", id), member.Request{LeaseRevoke: id}, func(any, error) {})
	}
}

// keepAlive renews a lease on the leader (renewals are leader-local).
func (s *sim) keepAlive() {
	id, ok := s.drawLease()
	if !ok {
		return
	}
	for _, n := range s.upIDs() {
		if st := s.nodes[n].m.Status(); st.Leader == n {
			_, err := s.nodes[n].m.KeepAlive(id)
			if err != nil && !errors.Is(err, kv.ErrLeaseNotFound) && !errors.Is(err, member.ErrNotLeader) && !errors.Is(err, member.ErrStopped) {
				s.fatalf("member %d: KeepAlive(%d): %v", n, id, err)
			}
		}
	}
}

// advanceClock moves the members' clock (lease deadlines) on: the leader
// proposes a revoke for each lease past its deadline at its next ticks.
func (s *sim) advanceClock() {
	s.clock.Advance(time.Duration(rapid.IntRange(1, 10).Draw(s.t, "seconds")) * time.Second)
}

// proposeOther proposes a request outside the clients' model through a
// random member.
func (s *sim) proposeOther(what string, req member.Request, done func(any, error)) {
	n, ok := s.pick(s.upIDs(), "member")
	if !ok {
		return
	}
	p, err := n.m.Propose(req)
	switch {
	case err == nil:
	case isCrash(n, err):
		s.kill(n)
		return
	case notProposed(err), errors.Is(err, member.ErrStopped):
		return
	default:
		s.fatalf("member %d: Propose(%s): %v", n.id, what, err)
	}
	s.other(n, what, p, done)
}

// transferLeader asks the leader to hand leadership to another member.
func (s *sim) transferLeader() {
	var lead *node
	for _, id := range s.upIDs() {
		if st := s.nodes[id].m.Status(); st.Leader == id {
			lead = s.nodes[id]
		}
	}
	if lead == nil {
		return
	}
	var others []uint64
	for _, p := range lead.m.Members() {
		if p.ID != lead.id && !p.IsLearner {
			others = append(others, p.ID)
		}
	}
	if len(others) == 0 {
		return
	}
	to := rapid.SampledFrom(others).Draw(s.t, "transferTo")
	s.logf("member %d: transfer leadership to %d", lead.id, to)
	if err := lead.m.TransferLeader(to); err != nil && !errors.Is(err, member.ErrNotLeader) {
		s.fatalf("member %d: TransferLeader(%d): %v", lead.id, to, err)
	}
	s.stats.transfers++
	s.ready(lead)
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
			b = fmt.Appendf(b, "\n  member %d: %+v rev %d members %v", id, n.m.Status(), n.m.DB().Rev(), n.m.Members())
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
	s.verbose("run: %d members (snapshot every %d entries, catch-up %d, chaos %d), %d actions, %d settling rounds, %d ops, %d acked, final revision %d, net %v",
		s.p.size, s.p.snapshotEntries, s.p.catchUpEntries, s.p.chaos, s.stats.actions, s.stats.settleRounds, len(s.hist.ops), len(s.acked), finals[ms[0].id], s.net)
	s.stats.delivered, s.stats.dropped, s.stats.duplicated = s.net.delivered, s.net.dropped, s.net.duplicated
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
