package member

import "go.etcd.io/raft/v3/raftpb"

// runReady runs m's Ready for the asynchronous benchmark cluster.
func runReady(m *Member, _ func([]*raftpb.Message)) ([]*raftpb.Message, error) {
	return m.Ready()
}
