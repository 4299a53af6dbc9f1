package member

import (
	"fmt"
	"slices"

	"go.etcd.io/raft/v3/raftpb"
)

// membership is the cluster's member table: each member's attributes,
// and the IDs removed (never to be reused). It changes only when a
// committed ConfChange is applied (or a snapshot installed), so it is the
// same on every member at the same applied index.
type membership struct {
	members map[uint64]Peer
	removed map[uint64]bool
}

func newMembership() membership {
	return membership{members: map[uint64]Peer{}, removed: map[uint64]bool{}}
}

// list returns the members in ID order (deep copies).
func (t *membership) list() []Peer {
	out := make([]Peer, 0, len(t.members))
	for _, p := range t.members {
		out = append(out, clonePeer(p))
	}
	slices.SortFunc(out, func(a, b Peer) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}

// removedIDs returns the removed IDs in order.
func (t *membership) removedIDs() []uint64 {
	out := make([]uint64, 0, len(t.removed))
	for id := range t.removed {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

func clonePeer(p Peer) Peer {
	p.PeerURLs = slices.Clone(p.PeerURLs)
	p.ClientURLs = slices.Clone(p.ClientURLs)
	return p
}

// validate reports whether the change of member id (to p's attributes) can
// be applied to the table: the same decision on every member, made when
// the change is applied (and earlier, by the proposer, to fail fast).
func (t *membership) validate(typ raftpb.ConfChangeType, id uint64, p *Peer, promote bool) error {
	if id == 0 {
		return fmt.Errorf("member ID 0: %w", ErrInvalidRequest)
	}
	old, exists := t.members[id]
	switch typ {
	case raftpb.ConfChangeType_ConfChangeAddNode, raftpb.ConfChangeType_ConfChangeAddLearnerNode:
		if t.removed[id] {
			return fmt.Errorf("member %x: %w", id, ErrIDRemoved)
		}
		if exists {
			if typ == raftpb.ConfChangeType_ConfChangeAddNode && old.IsLearner && promote {
				return nil
			}
			if typ == raftpb.ConfChangeType_ConfChangeAddNode && promote {
				return fmt.Errorf("promote member %x: %w", id, ErrNotLearner)
			}
			return fmt.Errorf("member %x: %w", id, ErrMemberExists)
		}
		if promote {
			return fmt.Errorf("promote member %x: %w", id, ErrMemberNotFound)
		}
		return t.checkURLs(id, p.PeerURLs)
	case raftpb.ConfChangeType_ConfChangeRemoveNode:
		if !exists {
			return t.notFound(id)
		}
		if !old.IsLearner && t.voters() == 1 {
			return fmt.Errorf("remove member %x: %w", id, ErrLastVoter)
		}
		return nil
	case raftpb.ConfChangeType_ConfChangeUpdateNode:
		if !exists {
			return t.notFound(id)
		}
		return t.checkURLs(id, p.PeerURLs)
	}
	return fmt.Errorf("conf change type %v: %w", typ, ErrInvalidRequest)
}

// voters returns the number of voting members.
func (t *membership) voters() int {
	n := 0
	for _, p := range t.members {
		if !p.IsLearner {
			n++
		}
	}
	return n
}

func (t *membership) notFound(id uint64) error {
	if t.removed[id] {
		return fmt.Errorf("member %x: %w: %w", id, ErrMemberNotFound, ErrIDRemoved)
	}
	return fmt.Errorf("member %x: %w", id, ErrMemberNotFound)
}

// checkURLs refuses peer URLs another member has (naming the first such
// member in ID order, so that every member reports the same).
func (t *membership) checkURLs(id uint64, urls []string) error {
	for _, o := range t.list() {
		if o.ID == id {
			continue
		}
		for _, u := range urls {
			if slices.Contains(o.PeerURLs, u) {
				return fmt.Errorf("peer URL %s is member %x's: %w", u, o.ID, ErrMemberExists)
			}
		}
	}
	return nil
}

// publish sets a member's name and client URLs.
func (t *membership) publish(attrs *Peer) error {
	p, ok := t.members[attrs.ID]
	if !ok {
		return t.notFound(attrs.ID)
	}
	p.Name, p.ClientURLs = attrs.Name, slices.Clone(attrs.ClientURLs)
	t.members[attrs.ID] = p
	return nil
}

// apply applies a change validate accepted. A promotion is an AddNode of
// an existing learner (promote tells it from an add).
func (t *membership) apply(typ raftpb.ConfChangeType, id uint64, p *Peer, promote bool) {
	switch typ {
	case raftpb.ConfChangeType_ConfChangeAddNode, raftpb.ConfChangeType_ConfChangeAddLearnerNode:
		if old, ok := t.members[id]; ok && promote {
			old.IsLearner = false
			t.members[id] = old
			return
		}
		q := clonePeer(*p)
		q.ID = id
		q.IsLearner = typ == raftpb.ConfChangeType_ConfChangeAddLearnerNode
		t.members[id] = q
	case raftpb.ConfChangeType_ConfChangeRemoveNode:
		delete(t.members, id)
		t.removed[id] = true
	case raftpb.ConfChangeType_ConfChangeUpdateNode:
		old := t.members[id]
		old.PeerURLs = slices.Clone(p.PeerURLs)
		t.members[id] = old
	}
}
