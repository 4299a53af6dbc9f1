package server

import (
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// Request validation, in etcd's order, before anything reaches the store:
// what a request breaks first decides the error a client sees, so the
// checks run in the order etcd's gRPC layer runs them.

func checkRange(r *pb.RangeRequest) error {
	if len(r.Key) == 0 {
		return rpctypes.ErrGRPCEmptyKey
	}
	if _, ok := pb.RangeRequest_SortOrder_name[int32(r.SortOrder)]; !ok {
		return rpctypes.ErrGRPCInvalidSortOption
	}
	if _, ok := pb.RangeRequest_SortTarget_name[int32(r.SortTarget)]; !ok {
		return rpctypes.ErrGRPCInvalidSortOption
	}
	return nil
}

func checkPut(r *pb.PutRequest) error {
	switch {
	case len(r.Key) == 0:
		return rpctypes.ErrGRPCEmptyKey
	case r.IgnoreValue && len(r.Value) != 0:
		return rpctypes.ErrGRPCValueProvided
	case r.IgnoreLease && r.Lease != 0:
		return rpctypes.ErrGRPCLeaseProvided
	}
	return nil
}

func checkDelete(r *pb.DeleteRangeRequest) error {
	if len(r.Key) == 0 {
		return rpctypes.ErrGRPCEmptyKey
	}
	return nil
}

// checkTxn checks a txn's sizes and keys: no list (compares, success,
// failure) longer than limit, no empty key, and each op valid; a nested
// txn's limit is limit less the longest list of the txn around it.
func checkTxn(r *pb.TxnRequest, limit int) error {
	n := max(len(r.Compare), len(r.Success), len(r.Failure))
	if n > limit {
		return rpctypes.ErrGRPCTooManyOps
	}
	for _, c := range r.Compare {
		if len(c.Key) == 0 {
			return rpctypes.ErrGRPCEmptyKey
		}
	}
	for _, ops := range [][]*pb.RequestOp{r.Success, r.Failure} {
		for _, op := range ops {
			if err := checkOp(op, limit-n); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkOp(op *pb.RequestOp, limit int) error {
	switch r := op.GetRequest().(type) {
	case *pb.RequestOp_RequestRange:
		return checkRange(r.RequestRange)
	case *pb.RequestOp_RequestPut:
		return checkPut(r.RequestPut)
	case *pb.RequestOp_RequestDeleteRange:
		return checkDelete(r.RequestDeleteRange)
	case *pb.RequestOp_RequestTxn:
		return checkTxn(r.RequestTxn, limit)
	}
	// An op with no request: etcd answers "key not found".
	return rpctypes.ErrGRPCKeyNotFound
}

// interval is a deleted range as etcd's duplicate check sees it: the
// single key begin if point, else [begin, end) compared as strings, with
// the end taken as given (so "\x00", etcd's "every key from", deletes no
// key here, as in etcd).
type interval struct {
	begin, end string
	point      bool
}

func (iv interval) has(k string) bool {
	if iv.point {
		return k == iv.begin
	}
	return iv.begin <= k && k < iv.end
}

type intervals []interval

func (ivs intervals) has(k string) bool {
	for _, iv := range ivs {
		if iv.has(k) {
			return true
		}
	}
	return false
}

// checkWrites finds a key that one branch of a txn writes twice: put
// twice, or put inside a range deleted in the same branch or an enclosing
// one. The success and failure branches of one nested txn may put the same
// key, since only one of them runs. It returns the puts and deletes of ops
// for the txn around them.
func checkWrites(ops []*pb.RequestOp) (map[string]struct{}, intervals, error) {
	var dels intervals
	for _, op := range ops {
		d := op.GetRequestDeleteRange()
		if d == nil {
			continue
		}
		if len(d.RangeEnd) == 0 {
			dels = append(dels, interval{begin: string(d.Key), point: true})
		} else {
			dels = append(dels, interval{begin: string(d.Key), end: string(d.RangeEnd)})
		}
	}
	puts := map[string]struct{}{}
	for _, op := range ops {
		t := op.GetRequestTxn()
		if t == nil {
			continue
		}
		thenPuts, thenDels, err := checkWrites(t.Success)
		if err != nil {
			return nil, nil, err
		}
		elsePuts, elseDels, err := checkWrites(t.Failure)
		if err != nil {
			return nil, nil, err
		}
		for k := range thenPuts {
			if _, dup := puts[k]; dup || dels.has(k) {
				return nil, nil, rpctypes.ErrGRPCDuplicateKey
			}
			puts[k] = struct{}{}
		}
		for k := range elsePuts {
			_, dup := puts[k]
			_, both := thenPuts[k]
			if dup && !both || dels.has(k) {
				return nil, nil, rpctypes.ErrGRPCDuplicateKey
			}
			puts[k] = struct{}{}
		}
		dels = append(dels, thenDels...)
		dels = append(dels, elseDels...)
	}
	for _, op := range ops {
		p := op.GetRequestPut()
		if p == nil {
			continue
		}
		k := string(p.Key)
		if _, dup := puts[k]; dup || dels.has(k) {
			return nil, nil, rpctypes.ErrGRPCDuplicateKey
		}
		puts[k] = struct{}{}
	}
	return puts, dels, nil
}
