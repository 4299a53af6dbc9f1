package server

import (
	"sync"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// The storage quota, as etcd's: a write whose cost would take the store's
// size to the quota raises the NOSPACE alarm and fails with "database
// space exceeded"; while the alarm is raised every put fails (see
// maintenanceServer.noSpace), until a client disarms it.
//
// etcd measures its bbolt file, which only grows until a defragmentation.
// revkv's size is estimated the same way: the store's snapshot size,
// measured when the server starts and again after each compaction and
// defragmentation, plus the cost of every write since. Costs are etcd's
// estimates.
const (
	kvOverhead    = 256 // etcd's estimate of a key's metadata
	leaseOverhead = 64  // and of a lease
)

type quota struct {
	limit int64 // < 0: none

	mu sync.Mutex
	// size is the estimate. While a measurement runs, it goes on growing
	// with charges, and charged counts them so that the measurement's
	// result can take them in.
	size      int64
	measuring bool
	charged   int64
	wg        sync.WaitGroup // the measurement running, if any
}

// check returns nil if a write of cost fits, and otherwise raises the
// NOSPACE alarm and returns etcd's error.
func (s *Server) checkQuota(cost int64) error {
	q := &s.quota
	if cost == 0 || q.limit < 0 {
		return nil
	}
	q.mu.Lock()
	fits := q.size+cost < q.limit
	q.mu.Unlock()
	if fits {
		return nil
	}
	if s.maintenance.raise(s.opts.MemberID, pb.AlarmType_NOSPACE) {
		s.log.Warn("storage quota exceeded: NOSPACE alarm raised; writes fail until it is disarmed",
			"quota", q.limit, "cost", cost)
	}
	return rpctypes.ErrGRPCNoSpace
}

// charge adds a write's cost to the estimate.
func (s *Server) charge(cost int64) {
	q := &s.quota
	q.mu.Lock()
	q.size += cost
	q.charged += cost
	q.mu.Unlock()
}

// remeasure measures the store again, in the background (a measurement
// encodes a snapshot: writers must not wait for it). The estimate then
// becomes the size measured plus what was charged meanwhile. Close waits
// for a measurement that runs.
func (s *Server) remeasure() {
	q := &s.quota
	if q.limit < 0 {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.measuring {
		return
	}
	q.measuring, q.charged = true, 0
	q.wg.Add(1)
	go func() {
		defer q.wg.Done()
		n := s.storeSize()
		q.mu.Lock()
		q.size, q.measuring = n+q.charged, false
		q.mu.Unlock()
	}()
}

// waitMeasured waits for a measurement that runs.
func (q *quota) waitMeasured() { q.wg.Wait() }

// storeSize is the size of a snapshot of the store.
func (s *Server) storeSize() int64 {
	sn, err := s.b.Snapshot()
	if err != nil {
		return 0
	}
	defer sn.Close()
	return sn.Size()
}

func costPut(r *pb.PutRequest) int64 { return int64(kvOverhead + len(r.Key) + len(r.Value)) }

// costTxn is the cost of the costlier branch's puts, nested txns included.
func costTxn(r *pb.TxnRequest) int64 {
	branch := func(ops []*pb.RequestOp) (c int64) {
		for _, op := range ops {
			if p := op.GetRequestPut(); p != nil {
				c += costPut(p)
			} else if t := op.GetRequestTxn(); t != nil {
				c += costTxn(t)
			}
		}
		return c
	}
	return max(branch(r.Success), branch(r.Failure))
}
