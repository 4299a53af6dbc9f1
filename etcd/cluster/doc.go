// Package cluster runs a revkv member of a raft cluster in real time: the
// goroutine that ticks, steps and drains a member.Member, the gRPC
// transport between members, and the server.Backend, server.Lessor and
// server.Replicated the etcd API server serves from.
//
// The transport (Transport) is a gRPC service of its own, written by hand
// (wire.go): raft messages travel as raw bytes on one client stream per
// peer, and followers forward lease keep-alives and TimeToLive calls to
// the leader with unary calls on the same connection.
package cluster
