package member

import "go.etcd.io/raft/v3/raftpb"

// runReady runs m's Ready for the asynchronous benchmark cluster, sending
// a leader's appends while it writes.
func runReady(m *Member, send func([]*raftpb.Message)) ([]*raftpb.Message, error) {
	return m.ReadySend(send)
}
