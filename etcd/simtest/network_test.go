package simtest

import (
	"fmt"
	"maps"
	"slices"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// network is the simulated network between members. It holds every
// message in flight; the simulation decides (through rapid draws) which
// one is delivered, dropped or duplicated next, so reordering is a matter
// of picking a later message first. A message is deliverable once the
// simulated clock reaches its due time (sent + the link's delay). A
// partition cuts a set of members off from the rest: messages across the
// cut are dropped when sent and when delivered.
type network struct {
	now    int64 // the simulated clock, in ticks
	queue  []envelope
	delay  map[link]int64 // extra ticks on a link; absent: 0
	cutOff map[uint64]bool
	seq    int64

	sent, delivered, dropped, duplicated int
	// lostSnaps are the MsgSnaps dropped since the simulation last looked:
	// their senders must hear of it (Member.ReportSnapshot), as a real
	// transport tells them, or they wait for the snapshot forever.
	lostSnaps []link
}

type link struct{ from, to uint64 }

// envelope is a message in flight, as the bytes a real transport would
// carry: a receiver never shares memory with the sender, and every message
// goes through the codec.
type envelope struct {
	from, to uint64
	typ      raftpb.MessageType
	data     []byte
	due      int64
	seq      int64 // send order
}

func (e envelope) decode() *raftpb.Message {
	m := new(raftpb.Message)
	if err := proto.Unmarshal(e.data, m); err != nil {
		panic(fmt.Sprintf("simtest: a message does not decode: %v", err))
	}
	return m
}

func newNetwork() *network {
	return &network{delay: map[link]int64{}, cutOff: map[uint64]bool{}}
}

// connected reports whether a and b are on the same side of the partition.
func (n *network) connected(a, b uint64) bool { return n.cutOff[a] == n.cutOff[b] }

// send queues msgs, dropping those across the partition.
func (n *network) send(msgs []*raftpb.Message) error {
	for _, m := range msgs {
		n.sent++
		from, to := m.GetFrom(), m.GetTo()
		if !n.connected(from, to) {
			n.lose(from, to, m.GetType())
			continue
		}
		data, err := proto.Marshal(m)
		if err != nil {
			return fmt.Errorf("encoding %v from %d to %d: %w", m.GetType(), from, to, err)
		}
		n.seq++
		n.queue = append(n.queue, envelope{from: from, to: to, typ: m.GetType(), data: data, due: n.now + n.delay[link{from, to}], seq: n.seq})
	}
	return nil
}

// ready returns the indexes in queue of the deliverable messages, in send
// order.
func (n *network) ready() []int {
	var idx []int
	for i, e := range n.queue {
		if e.due <= n.now {
			idx = append(idx, i)
		}
	}
	return idx
}

// take removes the i-th message of the queue and returns it, with false if
// the partition drops it.
func (n *network) take(i int) (*raftpb.Message, bool) {
	e := n.queue[i]
	n.queue = slices.Delete(n.queue, i, i+1)
	if !n.connected(e.from, e.to) {
		n.lose(e.from, e.to, e.typ)
		return nil, false
	}
	n.delivered++
	return e.decode(), true
}

// duplicate returns a copy of the i-th message and leaves it queued, so it
// arrives twice.
func (n *network) duplicate(i int) (*raftpb.Message, bool) {
	e := n.queue[i]
	if !n.connected(e.from, e.to) {
		return nil, false
	}
	n.duplicated++
	return e.decode(), true
}

// drop removes the i-th message.
func (n *network) drop(i int) {
	e := n.queue[i]
	n.queue = slices.Delete(n.queue, i, i+1)
	n.lose(e.from, e.to, e.typ)
}

func (n *network) lose(from, to uint64, typ raftpb.MessageType) {
	n.dropped++
	if typ == raftpb.MessageType_MsgSnap {
		n.lostSnaps = append(n.lostSnaps, link{from, to})
	}
}

// dropTo drops every message to id (a member that crashed or left: what
// was on its way to it is lost with its connections).
func (n *network) dropTo(id uint64) {
	n.queue = slices.DeleteFunc(n.queue, func(e envelope) bool {
		if e.to == id {
			n.lose(e.from, e.to, e.typ)
			return true
		}
		return false
	})
}

// partition cuts the members in cut off from the others.
func (n *network) partition(cut []uint64) {
	clear(n.cutOff)
	for _, id := range cut {
		n.cutOff[id] = true
	}
}

// heal removes the partition and every link delay.
func (n *network) heal() {
	clear(n.cutOff)
	clear(n.delay)
}

func (n *network) String() string {
	return fmt.Sprintf("now %d, %d queued, cut off %v, delays %v; sent %d delivered %d dropped %d duplicated %d",
		n.now, len(n.queue), slices.Sorted(maps.Keys(n.cutOff)), n.delay, n.sent, n.delivered, n.dropped, n.duplicated)
}
