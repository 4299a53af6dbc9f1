package member

import (
	"fmt"

	"go.etcd.io/raft/v3"
)

// Linearizable reads. raft's ReadIndex costs a heartbeat round to a
// quorum per request, so reads are batched as etcd batches them: the reads
// that arrive while a request is in flight wait for the next one, issued
// when the answer comes (or when the request in flight is an election
// timeout old: a request or answer lost on the way must not hold the reads
// behind it until they time out). A batch's reads all get its index,
// which is good for each: the request left after every one of them
// arrived.

// readBatch is one raft read request in flight and the reads it answers.
type readBatch struct {
	tick uint64 // issued at
	lead uint64 // the leader it went to
	ps   []*Pending
}

// readWait is a read whose index is known, waiting for the member to
// apply it.
type readWait struct {
	index uint64
	p     *Pending
}

// ReadIndex asks the leader for its commit index (raft's ReadIndex). The
// Pending is resolved, with that index (a uint64), once this member has
// applied it: a read of DB() then sees every write committed before
// ReadIndex was called (a linearizable read). It fails with ErrNoLeader,
// ErrLeaderChanged, ErrTimeout or ErrStopped.
func (m *Member) ReadIndex() *Pending {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.usable(); err != nil {
		return failed(err)
	}
	lead := m.rn.BasicStatus().Lead
	if lead == raft.None {
		return failed(fmt.Errorf("member %x: %w", m.cfg.ID, ErrNoLeader))
	}
	m.nextReads = append(m.nextReads, newPending(m.ticks, lead))
	p := m.nextReads[len(m.nextReads)-1]
	m.issueReads()
	return p
}

// issueReads sends the waiting reads' request, unless one sent less than
// an election timeout ago is still unanswered. mu is held.
func (m *Member) issueReads() {
	if len(m.nextReads) == 0 || m.err != nil || m.closed {
		return
	}
	for _, b := range m.reads {
		if m.ticks-b.tick < uint64(m.cfg.ElectionTick) {
			return
		}
	}
	lead := m.rn.BasicStatus().Lead
	if lead == raft.None {
		return // the next leader change fails them, or a later call sends them
	}
	m.readSeq++
	id := requestID{Member: m.cfg.ID, Epoch: m.epoch, Seq: m.readSeq}
	e := &encoder{}
	e.id(id)
	m.reads[id.Seq] = &readBatch{tick: m.ticks, lead: lead, ps: m.nextReads}
	m.nextReads = nil
	m.rn.ReadIndex(e.b)
}

// readStates moves the reads raft answered to the wait for apply.
func (m *Member) readStates(rss []raft.ReadState) {
	for _, rs := range rss {
		d := &decoder{b: rs.RequestCtx}
		id := d.id()
		if d.done() != nil || id.Member != m.cfg.ID || id.Epoch != m.epoch {
			continue
		}
		if b, ok := m.reads[id.Seq]; ok {
			delete(m.reads, id.Seq)
			for _, p := range b.ps {
				m.readWait = append(m.readWait, readWait{index: rs.Index, p: p})
			}
		}
	}
}

// resolveReads resolves the reads whose index is applied.
func (m *Member) resolveReads() {
	keep := m.readWait[:0]
	for _, r := range m.readWait {
		if r.index <= m.applied {
			r.p.resolve(r.index, nil)
		} else {
			keep = append(keep, r)
		}
	}
	clear(m.readWait[len(keep):])
	m.readWait = keep
}

// failReads fails, with err, the reads whose index is not known yet,
// unless keep(tick, lead) says to keep them: for a request in flight its
// tick and leader, for a read not sent yet its own. mu is held.
func (m *Member) failReads(keep func(tick, lead uint64) bool, err error) {
	for seq, b := range m.reads {
		if !keep(b.tick, b.lead) {
			for _, p := range b.ps {
				p.resolve(nil, err)
			}
			delete(m.reads, seq)
		}
	}
	next := m.nextReads[:0]
	for _, p := range m.nextReads {
		if keep(p.tick, p.lead) {
			next = append(next, p)
		} else {
			p.resolve(nil, err)
		}
	}
	clear(m.nextReads[len(next):])
	m.nextReads = next
}
