package simtest

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/revkv/revkv/etcd/member"
	"github.com/revkv/revkv/kv"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"pgregory.net/rapid"
)

// The simulation's actions: each is one rapid-drawn move of the network,
// the clock, the disks, the clients or the operator.

// simAction is one kind of move, with its weight among them.
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
	{"updateMember", 1, false, (*sim).updateMember, false},
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
	k := rapid.IntRange(0, 20).Draw(s.t, "crashAfterOps")
	if k == 20 {
		s.crashAll() // one crash in 21 is a power loss of every member
		return
	}
	if k > 0 && !n.armed {
		n.fs.CrashAfter(int64(k))
		n.armed = true
		s.stats.torn++
		return
	}
	s.kill(n)
}

// crashAll is a power loss of the whole cluster: every member crashes at
// once (everything acknowledged must survive on the disks).
func (s *sim) crashAll() {
	for _, id := range s.upIDs() {
		s.kill(s.nodes[id])
	}
	s.logf("all members crashed")
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

// removeMember removes a listed member: a learner, or a voter while more
// than 2 are listed. (Removing the leader of 2 voters can leave the other
// waiting for ever: if the commit of the removal does not reach it before
// the leader steps down, it needs the removed member's vote, which a
// longer log refuses; see /work/notes/raft-sim.md. Refusing the last
// voter is TestRemoveLastVoter's.)
func (s *sim) removeMember() {
	n, ok := s.pick(s.upIDs(), "member")
	if !ok {
		return
	}
	voters := 0
	for _, p := range n.m.Members() {
		if !p.IsLearner {
			voters++
		}
	}
	var candidates []uint64
	for _, p := range n.m.Members() {
		if p.IsLearner || voters > 2 {
			candidates = append(candidates, p.ID)
		}
	}
	if len(candidates) == 0 {
		return
	}
	target := rapid.SampledFrom(candidates).Draw(s.t, "target")
	p := n.m.RemoveMember(target)
	s.stats.removes++
	// A removed member is not stopped here: as etcd's (which stops after a
	// delay), it runs on, so that if it led, the others learn that its
	// removal committed (a 2-voter cluster removing its leader otherwise
	// waits for ever for its vote). It stops when its Ready fails, or
	// when the settled cluster no longer lists it (dropStrangers).
	s.other(n, fmt.Sprintf("remove member %d", target), p, func(_ any, err error) {
		s.logf("remove member %d: %v", target, err)
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

// updateMember gives a member new peer URLs (a ConfChangeUpdateNode: the
// member table changes alike on every member, raft's configuration not).
func (s *sim) updateMember() {
	n, ok := s.pick(s.upIDs(), "member")
	if !ok {
		return
	}
	ms := n.m.Members()
	if len(ms) == 0 {
		return
	}
	target := rapid.SampledFrom(ms).Draw(s.t, "target").ID
	s.urls++
	url := fmt.Sprintf("http://m%d-%d:2380", target, s.urls)
	s.other(n, fmt.Sprintf("update member %d to %s", target, url), n.m.UpdateMember(target, []string{url}), func(_ any, err error) {
		s.logf("update member %d: %v", target, err)
	})
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
