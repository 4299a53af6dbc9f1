package server

import (
	"context"
	"crypto/sha256"
	"io"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/revkv/revkv/kv"
)

// StorageVersion is the storage version the server reports (Status, and
// the version of a snapshot stream).
const StorageVersion = "3.7.0"

// defaultQuotaBytes is etcd's default backend quota (2 GiB), reported in
// Status.
const defaultQuotaBytes = 2 << 30

// maintenanceServer is etcd's Maintenance service.
type maintenanceServer struct {
	pb.UnimplementedMaintenanceServer
	s *Server

	mu     sync.Mutex // guards alarms, read by every write, and hashes
	alarms []*pb.AlarmMember
	// hashes are the hashes taken before the last compactions, at their
	// revisions, newest last.
	hashes []kv.KeyValueHash

	sizeMu sync.Mutex // guards the size fields; held while computing it
	// size is the snapshot size Status reports as DbSize, which costs a
	// pass over the store to compute: it is recomputed only when the
	// revision moved and sizeTTL has passed since (sizeAt).
	sizeRev, size int64
	sizeAt        time.Time
}

// sizeTTL bounds how often Status recomputes DbSize on a store being
// written.
const sizeTTL = 5 * time.Second

// Status reports the member: a replicated backend's raft state, or a
// single member that is always the leader, with the store's revision
// standing in for raft's indexes. As etcd, a member that knows no leader
// lists "etcdserver: no leader" in Errors.
func (m *maintenanceServer) Status(ctx context.Context, r *pb.StatusRequest) (*pb.StatusResponse, error) {
	hdr := m.s.hdr.now()
	size := m.dbSize(hdr.Revision)
	rs := RaftStatus{Leader: m.s.opts.MemberID, Term: m.s.opts.RaftTerm, Index: uint64(hdr.Revision), Applied: uint64(hdr.Revision)}
	if m.s.repl != nil {
		rs = m.s.repl.Status()
	}
	resp := &pb.StatusResponse{
		Header:           hdr,
		Version:          Version,
		DbSize:           size,
		DbSizeInUse:      size,
		Leader:           rs.Leader,
		RaftIndex:        rs.Index,
		RaftTerm:         rs.Term,
		RaftAppliedIndex: rs.Applied,
		IsLearner:        rs.IsLearner,
		DbSizeQuota:      max(m.s.opts.QuotaBackendBytes, 0),
		StorageVersion:   StorageVersion,
		DowngradeInfo:    &pb.DowngradeInfo{},
	}
	if rs.Leader == 0 {
		resp.Errors = append(resp.Errors, rpctypes.ErrorDesc(rpctypes.ErrGRPCNoLeader)) // "etcdserver: no leader"
	}
	for _, a := range m.alarmList() {
		resp.Errors = append(resp.Errors, a.String())
	}
	return resp, nil
}

// dbSize returns the size of a snapshot of the store, recomputed at most
// once per revision and once per sizeTTL.
func (m *maintenanceServer) dbSize(rev int64) int64 {
	m.sizeMu.Lock()
	defer m.sizeMu.Unlock()
	if m.size > 0 && (m.sizeRev == rev || time.Since(m.sizeAt) < sizeTTL) {
		return m.size
	}
	m.sizeRev, m.size, m.sizeAt = rev, m.s.storeSize(), time.Now()
	return m.size
}

// Alarm lists, raises or clears alarms. A raised NOSPACE alarm makes
// writes fail with etcd's "database space exceeded" until it is cleared,
// as in etcd; other alarms are only listed.
func (m *maintenanceServer) Alarm(ctx context.Context, r *pb.AlarmRequest) (*pb.AlarmResponse, error) {
	resp := &pb.AlarmResponse{}
	m.mu.Lock()
	switch r.Action {
	case pb.AlarmRequest_GET:
		for _, a := range m.alarms {
			if r.Alarm == pb.AlarmType_NONE || a.Alarm == r.Alarm {
				resp.Alarms = append(resp.Alarms, a)
			}
		}
	case pb.AlarmRequest_ACTIVATE:
		if r.Alarm == pb.AlarmType_NONE {
			break
		}
		resp.Alarms = append(resp.Alarms, m.raiseLocked(r.MemberID, r.Alarm))
	case pb.AlarmRequest_DEACTIVATE:
		if a := m.find(r.MemberID, r.Alarm); a >= 0 {
			m.s.log.Info("alarm disarmed", "member", r.MemberID, "alarm", r.Alarm.String())
			resp.Alarms = append(resp.Alarms, m.alarms[a])
			m.alarms = append(m.alarms[:a], m.alarms[a+1:]...)
		}
	}
	m.mu.Unlock()
	resp.Header = m.s.hdr.now()
	return resp, nil
}

// raise raises an alarm, and reports whether it was not raised already.
func (m *maintenanceServer) raise(member uint64, t pb.AlarmType) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := len(m.alarms)
	m.raiseLocked(member, t)
	return len(m.alarms) > n
}

func (m *maintenanceServer) raiseLocked(member uint64, t pb.AlarmType) *pb.AlarmMember {
	if a := m.find(member, t); a >= 0 {
		return m.alarms[a]
	}
	a := &pb.AlarmMember{MemberID: member, Alarm: t}
	m.alarms = append(m.alarms, a)
	return a
}

func (m *maintenanceServer) find(member uint64, t pb.AlarmType) int {
	for i, a := range m.alarms {
		if a.MemberID == member && a.Alarm == t {
			return i
		}
	}
	return -1
}

func (m *maintenanceServer) alarmList() []*pb.AlarmMember {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]*pb.AlarmMember(nil), m.alarms...)
}

// noSpace returns etcd's "database space exceeded" while a NOSPACE alarm
// is raised.
func (m *maintenanceServer) noSpace() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, a := range m.alarms {
		if a.Alarm == pb.AlarmType_NOSPACE {
			return rpctypes.ErrGRPCNoSpace
		}
	}
	return nil
}

// Hash returns the hash of the store's retained history at its current
// revision (revkv's hash, not a hash of etcd's bbolt file).
func (m *maintenanceServer) Hash(ctx context.Context, r *pb.HashRequest) (*pb.HashResponse, error) {
	h, err := m.s.b.HashByRev(0)
	if err != nil {
		return nil, toGRPC(err)
	}
	return &pb.HashResponse{Header: m.s.hdr.at(h.Rev), Hash: h.Hash}, nil
}

// keptHashes is how many compactions' hashes are kept (etcd's number).
const keptHashes = 10

// keepHash keeps the hash a compaction took of its revision.
func (m *maintenanceServer) keepHash(h kv.KeyValueHash) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.hashes = append(m.hashes, h)
	if len(m.hashes) > keptHashes {
		m.hashes = m.hashes[len(m.hashes)-keptHashes:]
	}
}

func (m *maintenanceServer) keptHash(rev int64) (kv.KeyValueHash, bool) {
	if ch, ok := m.s.b.(CompactionHasher); ok {
		return ch.CompactionHash(rev)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, h := range m.hashes {
		if h.Rev == rev {
			return h, true
		}
	}
	return kv.KeyValueHash{}, false
}

// HashKV returns the hash of the retained history up to r.Revision (0: the
// current revision), with the compacted revision it covers. For the
// revision of one of the last compactions, it is the hash taken just
// before that compaction (as etcd answers), so compacting does not change
// it.
func (m *maintenanceServer) HashKV(ctx context.Context, r *pb.HashKVRequest) (*pb.HashKVResponse, error) {
	rev := m.s.b.Rev()
	h, ok := m.keptHash(r.Revision)
	if !ok {
		var err error
		if h, err = m.s.b.HashByRev(r.Revision); err != nil {
			return nil, toGRPC(err)
		}
	}
	return &pb.HashKVResponse{
		Header:          m.s.hdr.at(max(rev, h.Rev)),
		Hash:            h.Hash,
		CompactRevision: h.CompactRev,
		HashRevision:    h.Rev,
	}, nil
}

// snapshotChunk is the size of the blobs a snapshot is streamed in (etcd's).
const snapshotChunk = 32 << 10

// Snapshot streams a snapshot of the store in etcd's envelope: the
// payload, in chunks with the bytes remaining, then one last message with
// the payload's SHA-256, which clients check. The payload is revkv's
// snapshot format (package snapshot), padded with zero bytes to a multiple
// of 512 so that clientv3's snapshot.Save finds the checksum where a bbolt
// file's would be; it restores into revkv, not into etcd.
func (m *maintenanceServer) Snapshot(r *pb.SnapshotRequest, stream pb.Maintenance_SnapshotServer) error {
	sn, err := m.s.b.Snapshot()
	if err != nil {
		return toGRPC(err)
	}
	defer sn.Close()
	size := sn.Size()
	total := (size + 511) / 512 * 512
	pr, pw := io.Pipe()
	defer pr.Close()
	go func() {
		_, err := sn.WriteTo(pw)
		pw.CloseWithError(err)
	}()
	h := sha256.New()
	sent := int64(0)
	buf := make([]byte, snapshotChunk)
	for sent < total {
		n := int(min(int64(len(buf)), total-sent))
		got, err := io.ReadFull(pr, buf[:n])
		if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			return toGRPC(err)
		}
		clear(buf[got:n]) // the padding after the payload
		sent += int64(n)
		h.Write(buf[:n])
		if err := stream.Send(&pb.SnapshotResponse{RemainingBytes: uint64(total - sent), Blob: buf[:n], Version: StorageVersion}); err != nil {
			return err
		}
	}
	if err := stream.Send(&pb.SnapshotResponse{Blob: h.Sum(nil), Version: StorageVersion}); err != nil {
		return err
	}
	m.s.log.Info("sent snapshot", "rev", sn.Rev(), "bytes", total)
	return nil
}

// Defragment has nothing to do, revkv keeping no free pages, but to
// measure the store again for the quota; it returns once measured.
func (m *maintenanceServer) Defragment(ctx context.Context, r *pb.DefragmentRequest) (*pb.DefragmentResponse, error) {
	m.s.remeasure()
	m.s.quota.waitMeasured()
	return &pb.DefragmentResponse{Header: m.s.hdr.now()}, nil
}

// MoveLeader transfers the leadership of a replicated backend; it must
// be asked of the leader (etcd's "not leader" otherwise). A single member
// is the leader and has no one to move to.
func (m *maintenanceServer) MoveLeader(ctx context.Context, r *pb.MoveLeaderRequest) (*pb.MoveLeaderResponse, error) {
	if rep := m.s.repl; rep != nil {
		if _, self, _ := rep.Header(); rep.Status().Leader != self {
			return nil, rpctypes.ErrGRPCNotLeader
		}
		if err := rep.MoveLeader(ctx, r.TargetID); err != nil {
			return nil, toGRPC(err)
		}
		return &pb.MoveLeaderResponse{Header: m.s.hdr.now()}, nil
	}
	if r.TargetID == m.s.opts.MemberID {
		return &pb.MoveLeaderResponse{Header: m.s.hdr.now()}, nil
	}
	return nil, rpctypes.ErrGRPCBadLeaderTransferee
}

// Downgrade is not supported: there is one version.
func (m *maintenanceServer) Downgrade(ctx context.Context, r *pb.DowngradeRequest) (*pb.DowngradeResponse, error) {
	return nil, status.Error(codes.Unimplemented, "revkv: downgrade is not supported")
}
