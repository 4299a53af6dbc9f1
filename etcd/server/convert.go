package server

import (
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/revkv/revkv/kv"
)

// Conversions between etcd's protobufs and revkv's kv types, field by
// field. Requests have been validated (validate.go) before they get here.

// end returns the range end revkv reads for a protobuf range_end: nil (a
// single key) for an empty one, and the non-nil empty slice (every key
// from key on) for "\x00", as etcd's server turns it.
func end(rangeEnd []byte) []byte {
	switch {
	case len(rangeEnd) == 0:
		return nil
	case len(rangeEnd) == 1 && rangeEnd[0] == 0:
		return []byte{}
	}
	return rangeEnd
}

// opEnd is end for an op inside a txn request: there "\x00" stays as given,
// which kv.Op reads as "every key from" for the op and as "no key" for the
// duplicate-write rule, as etcd's does.
func opEnd(rangeEnd []byte) []byte {
	if len(rangeEnd) == 0 {
		return nil
	}
	return rangeEnd
}

func rangeOptions(r *pb.RangeRequest) kv.RangeOptions {
	return kv.RangeOptions{
		Limit:      r.Limit,
		Rev:        r.Revision,
		CountOnly:  r.CountOnly,
		KeysOnly:   r.KeysOnly,
		TotalCount: true, // etcd's count is always the whole range's
		// etcd's enum values are revkv's, in the same order.
		SortOrder:         kv.SortOrder(r.SortOrder),
		SortTarget:        kv.SortTarget(r.SortTarget),
		MinModRevision:    r.MinModRevision,
		MaxModRevision:    r.MaxModRevision,
		MinCreateRevision: r.MinCreateRevision,
		MaxCreateRevision: r.MaxCreateRevision,
	}
}

func putOp(r *pb.PutRequest) kv.Op {
	return kv.Op{Type: kv.OpPut, Key: r.Key, Value: r.Value, Put: kv.PutOptions{
		Lease:       r.Lease,
		IgnoreValue: r.IgnoreValue,
		IgnoreLease: r.IgnoreLease,
		PrevKV:      r.PrevKv,
	}}
}

func deleteOp(r *pb.DeleteRangeRequest) kv.Op {
	return kv.Op{Type: kv.OpDeleteRange, Key: r.Key, End: opEnd(r.RangeEnd), Delete: kv.DeleteOptions{PrevKV: r.PrevKv}}
}

func txnRequest(r *pb.TxnRequest) *kv.TxnRequest {
	t := &kv.TxnRequest{
		Compare: make([]kv.Compare, len(r.Compare)),
		Then:    ops(r.Success),
		Else:    ops(r.Failure),
	}
	for i, c := range r.Compare {
		t.Compare[i] = compare(c)
	}
	return t
}

func ops(rs []*pb.RequestOp) []kv.Op {
	if len(rs) == 0 {
		return nil
	}
	out := make([]kv.Op, len(rs))
	for i, r := range rs {
		switch r := r.GetRequest().(type) {
		case *pb.RequestOp_RequestRange:
			out[i] = kv.Op{Type: kv.OpRange, Key: r.RequestRange.Key, End: opEnd(r.RequestRange.RangeEnd), Range: rangeOptions(r.RequestRange)}
		case *pb.RequestOp_RequestPut:
			out[i] = putOp(r.RequestPut)
		case *pb.RequestOp_RequestDeleteRange:
			out[i] = deleteOp(r.RequestDeleteRange)
		case *pb.RequestOp_RequestTxn:
			out[i] = kv.Op{Type: kv.OpTxn, Txn: txnRequest(r.RequestTxn)}
		}
	}
	return out
}

func compare(c *pb.Compare) kv.Compare {
	k := kv.Compare{Key: c.Key, End: opEnd(c.RangeEnd)}
	// Result and Target enums have revkv's values in the same order.
	k.Result = kv.CompareResult(c.Result)
	k.Target = kv.CompareTarget(c.Target)
	switch u := c.TargetUnion.(type) {
	case *pb.Compare_Version:
		k.Version = u.Version
	case *pb.Compare_CreateRevision:
		k.CreateRevision = u.CreateRevision
	case *pb.Compare_ModRevision:
		k.ModRevision = u.ModRevision
	case *pb.Compare_Value:
		k.Value = u.Value
	case *pb.Compare_Lease:
		k.Lease = u.Lease
	}
	return k
}

func keyValue(k *kv.KeyValue) *mvccpb.KeyValue {
	return &mvccpb.KeyValue{
		Key:            k.Key,
		Value:          k.Value,
		CreateRevision: k.CreateRevision,
		ModRevision:    k.ModRevision,
		Version:        k.Version,
		Lease:          k.Lease,
	}
}

func keyValues(ks []kv.KeyValue) []*mvccpb.KeyValue {
	if len(ks) == 0 {
		return nil
	}
	// One allocation for all of them.
	vals := make([]mvccpb.KeyValue, len(ks))
	out := make([]*mvccpb.KeyValue, len(ks))
	for i := range ks {
		k := &ks[i]
		v := &vals[i]
		v.Key, v.Value = k.Key, k.Value
		v.CreateRevision, v.ModRevision, v.Version, v.Lease = k.CreateRevision, k.ModRevision, k.Version, k.Lease
		out[i] = v
	}
	return out
}

func rangeResponse(r *kv.RangeResult) *pb.RangeResponse {
	return &pb.RangeResponse{
		Header: &pb.ResponseHeader{Revision: r.Rev},
		Kvs:    keyValues(r.KVs),
		More:   r.More,
		Count:  r.Count,
	}
}

func putResponse(r *kv.PutResult) *pb.PutResponse {
	p := &pb.PutResponse{Header: &pb.ResponseHeader{Revision: r.Rev}}
	if r.PrevKV != nil {
		p.PrevKv = keyValue(r.PrevKV)
	}
	return p
}

func deleteResponse(r *kv.DeleteResult) *pb.DeleteRangeResponse {
	return &pb.DeleteRangeResponse{
		Header:  &pb.ResponseHeader{Revision: r.Rev},
		Deleted: r.Deleted,
		PrevKvs: keyValues(r.PrevKVs),
	}
}

// txnResponse converts a txn's outcome. As in etcd, only the outermost
// header carries the revision: a nested txn's header is empty, and each
// op's header has only the revision the op saw.
func txnResponse(r *kv.TxnResponse, rev int64) *pb.TxnResponse {
	t := &pb.TxnResponse{
		Header:    &pb.ResponseHeader{Revision: rev},
		Succeeded: r.Succeeded,
		Responses: make([]*pb.ResponseOp, len(r.Responses)),
	}
	for i := range r.Responses {
		o := &r.Responses[i]
		switch o.Type {
		case kv.OpRange:
			t.Responses[i] = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseRange{ResponseRange: rangeResponse(&o.Range)}}
		case kv.OpPut:
			t.Responses[i] = &pb.ResponseOp{Response: &pb.ResponseOp_ResponsePut{ResponsePut: putResponse(&o.Put)}}
		case kv.OpDeleteRange:
			t.Responses[i] = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseDeleteRange{ResponseDeleteRange: deleteResponse(&o.Delete)}}
		case kv.OpTxn:
			t.Responses[i] = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseTxn{ResponseTxn: txnResponse(o.Txn, 0)}}
		}
	}
	return t
}
