package cluster

import (
	"fmt"
	"time"

	"github.com/revkv/revkv/etcd/member"
	"github.com/revkv/revkv/etcd/server"
)

// etcd's strict reconfiguration check (--strict-reconfig-check, on by
// default): a membership change that would leave fewer started members
// than a quorum is refused (server.ErrNotEnoughStartedMembers), and so is
// one made while the cluster is not healthy as this member sees it
// (server.ErrUnhealthy): an addition unless the voters this member has
// been connected to for HealthInterval would make a quorum with the new
// member counted as down, a removal unless the active members left still
// make a quorum. A member is started once it has published its
// name; a peer is active while this member has a stream open to it.

// quorum is the majority of n voters.
func quorum(n int) int { return n/2 + 1 }

// voters returns the voting members of a member table.
func voters(ps []member.Peer) []member.Peer {
	var out []member.Peer
	for _, p := range ps {
		if !p.IsLearner {
			out = append(out, p)
		}
	}
	return out
}

func started(p member.Peer) bool { return p.Name != "" }

// startedCount counts the members of ps but skip, and the started ones.
func startedCount(ps []member.Peer, skip uint64) (n, total int) {
	for _, p := range ps {
		if p.ID == skip {
			continue
		}
		total++
		if started(p) {
			n++
		}
	}
	return n, total
}

// readyToAddVoter: with one more voter, the started voters still make a
// quorum (or the cluster has one started member, which may take a second
// to restore from, as etcd allows).
func readyToAddVoter(vs []member.Peer) bool {
	n, total := startedCount(vs, 0)
	total++
	return n == 1 && total == 2 || n >= quorum(total)
}

// readyToRemoveVoter: without voter id, the started voters still make a
// quorum of the rest.
func readyToRemoveVoter(vs []member.Peer, id uint64) bool {
	n, total := startedCount(vs, id)
	return n >= quorum(total)
}

// readyToPromote: with the learner counted as a started voter, the
// started voters make a quorum.
func readyToPromote(vs []member.Peer) bool {
	n, total := startedCount(vs, 0)
	return n+1 >= quorum(total+1)
}

// connectedSince counts the voters this member has been connected to since
// before since, itself included.
func connectedSince(vs []member.Peer, self uint64, since time.Time, activeSince func(uint64) time.Time) int {
	n := 0
	for _, p := range vs {
		if t := activeSince(p.ID); p.ID == self || !t.IsZero() && t.Before(since) {
			n++
		}
	}
	return n
}

// mayAdd checks an addition.
func (n *Node) mayAdd(learner bool) error {
	if n.cfg.DisableStrictReconfigCheck {
		return nil
	}
	vs := voters(n.m.Members())
	if !learner && !readyToAddVoter(vs) {
		return fmt.Errorf("add a voter to %d voters: %w", len(vs), server.ErrNotEnoughStartedMembers)
	}
	connected := connectedSince(vs, n.cfg.ID, time.Now().Add(-n.cfg.HealthInterval), n.tr.ActiveSince)
	if !connectedToAdd(connected, len(vs)) {
		return fmt.Errorf("add a member: %d of %d voters connected for %v: %w", connected, len(vs), n.cfg.HealthInterval, server.ErrUnhealthy)
	}
	return nil
}

// connectedToAdd: the voters this member has been connected to (itself
// included) would still make a quorum with one more member counted as
// down, the new one; a single voter may always add.
func connectedToAdd(connected, voters int) bool {
	return voters == 1 || connected >= quorum(voters+1)
}

// mayRemove checks the removal of member id.
func (n *Node) mayRemove(id uint64) error {
	if n.cfg.DisableStrictReconfigCheck {
		return nil
	}
	ps := n.m.Members()
	for _, p := range ps {
		if p.ID == id && p.IsLearner {
			return nil // a learner is no part of any quorum
		}
	}
	vs := voters(ps)
	if !readyToRemoveVoter(vs, id) {
		return fmt.Errorf("remove member %x: %w", id, server.ErrNotEnoughStartedMembers)
	}
	if id != n.cfg.ID && n.tr.ActiveSince(id).IsZero() {
		return nil // a member down is no part of the active quorum
	}
	if active := connectedSince(vs, n.cfg.ID, time.Now().Add(-n.cfg.HealthInterval), n.tr.ActiveSince); active-1 < quorum(len(vs)-1) {
		return fmt.Errorf("remove member %x: %d of %d voters active: %w", id, active, len(vs), server.ErrUnhealthy)
	}
	return nil
}

// mayPromote checks a promotion.
func (n *Node) mayPromote() error {
	if n.cfg.DisableStrictReconfigCheck {
		return nil
	}
	if vs := voters(n.m.Members()); !readyToPromote(vs) {
		return fmt.Errorf("promote a learner: %w", server.ErrNotEnoughStartedMembers)
	}
	return nil
}
