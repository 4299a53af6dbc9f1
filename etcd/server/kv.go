package server

import (
	"bytes"
	"context"
	"errors"
	"math"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/revkv/revkv/kv"
)

// kvServer is etcd's KV service.
type kvServer struct {
	pb.UnimplementedKVServer
	s *Server
}

// Range reads keys. Its header's revision is the store's revision when
// the read was made, whatever revision it read at, as in etcd. Unless the
// client asks for a serializable read, a replicated member first waits
// until it has applied what the cluster has committed.
func (k *kvServer) Range(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	if err := checkRange(r); err != nil {
		return nil, err
	}
	if !r.Serializable {
		if err := k.s.readBarrier(ctx); err != nil {
			return nil, err
		}
	}
	res, err := k.s.b.Range(r.Key, end(r.RangeEnd), rangeOptions(r))
	if err != nil {
		return nil, toGRPC(err)
	}
	resp := rangeResponse(&res)
	k.s.hdr.fill(resp.Header)
	return resp, nil
}

// RangeStream is Range in chunks, as etcd's: every chunk reads at the
// revision of the first (the store's revision when the stream began, unless
// the request names one), carries about Options.MaxRequestBytes of keys,
// and the last chunk also has the header, More and Count. Like etcd's, it
// takes only key order and no revision filters.
func (k *kvServer) RangeStream(r *pb.RangeRequest, stream grpc.ServerStreamingServer[pb.RangeStreamResponse]) error {
	if err := checkRange(r); err != nil {
		return err
	}
	o := rangeOptions(r)
	// etcd's test of the request's fields, before it reads an unspecified
	// order with another target as ascending: each chunk is then sorted
	// on its own, as etcd's are.
	if o.SortOrder != kv.SortNone && !(o.SortTarget == kv.SortByKey && o.SortOrder == kv.SortAscend) {
		return status.Errorf(codes.Unimplemented, "RangeStream does not support custom sort orders")
	}
	if o.Filtered() {
		return status.Errorf(codes.Unimplemented, "RangeStream does not support revision filters")
	}
	if !r.Serializable {
		if err := k.s.readBarrier(stream.Context()); err != nil {
			return err
		}
	}
	if r.CountOnly {
		res, err := k.s.b.Range(r.Key, end(r.RangeEnd), o)
		if err != nil {
			return toGRPC(err)
		}
		out := &pb.RangeResponse{Header: k.s.hdr.at(res.Rev), Count: res.Count}
		return stream.Send(&pb.RangeStreamResponse{RangeResponse: out})
	}
	return k.rangeChunks(r.Key, end(r.RangeEnd), o, stream)
}

// firstChunk is the key limit of a stream's first chunk; later chunks
// double or halve it to land near the target size, as etcd's do.
const firstChunk = 10

func (k *kvServer) rangeChunks(key, end []byte, o kv.RangeOptions, stream grpc.ServerStreamingServer[pb.RangeStreamResponse]) error {
	total := o.Limit
	if total <= 0 {
		total = math.MaxInt64
	}
	target := k.s.opts.MaxRequestBytes
	var headerRev, count, sent int64
	o.Limit = min(firstChunk, total)
	o.TotalCount = true // the first read counts the whole range, once
	for {
		res, err := k.s.b.Range(key, end, o)
		if err != nil {
			return toGRPC(err)
		}
		if headerRev == 0 {
			headerRev, count = res.Rev, res.Count
			if o.Rev <= 0 {
				o.Rev = headerRev
			}
			o.TotalCount = false
		}
		sent += int64(len(res.KVs))
		out := &pb.RangeResponse{Kvs: keyValues(res.KVs)}
		done := !res.More || sent == total || end == nil
		if done {
			out.Header = k.s.hdr.at(headerRev)
			out.More = res.More
			out.Count = count
		}
		if err := stream.Send(&pb.RangeStreamResponse{RangeResponse: out}); err != nil {
			return err
		}
		if done {
			return nil
		}
		key = append(bytes.Clone(res.KVs[len(res.KVs)-1].Key), 0)
		size := proto.Size(out)
		switch {
		case size < target/2:
			o.Limit *= 2
		case size > target*2:
			o.Limit = max(o.Limit/2, 1)
		}
		o.Limit = min(o.Limit, total-sent)
	}
}

// Put writes one key, as a txn of one op (so prev_kv, ignore_value and
// ignore_lease are applied at the put's revision, atomically).
func (k *kvServer) Put(ctx context.Context, r *pb.PutRequest) (*pb.PutResponse, error) {
	cost := costPut(r)
	if err := k.s.checkQuota(cost); err != nil {
		return nil, err
	}
	if err := checkPut(r); err != nil {
		return nil, err
	}
	if err := k.s.checkSize(r); err != nil {
		return nil, err
	}
	if err := k.s.maintenance.noSpace(); err != nil {
		return nil, err
	}
	res, err := k.s.b.Txn(ctx, &kv.TxnRequest{Then: []kv.Op{putOp(r)}})
	if err != nil {
		return nil, toGRPC(k.putError(ctx, r, err))
	}
	k.s.charge(cost)
	resp := putResponse(&res.Responses[0].Put)
	k.s.hdr.fill(resp.Header)
	return resp, nil
}

// putError orders a failed put's errors as etcd checks them: the lease
// before the key. The store reports a missing key first for a put that
// keeps the key's value (ignore_value) and also names a lease that is not
// live; etcd reports the lease.
func (k *kvServer) putError(ctx context.Context, r *pb.PutRequest, err error) error {
	if r.Lease == 0 || !errors.Is(err, kv.ErrKeyNotFound) || k.s.lease == nil {
		return err
	}
	if _, _, _, lerr := k.s.lease.LeaseTimeToLive(ctx, r.Lease, false); errors.Is(lerr, kv.ErrLeaseNotFound) {
		return lerr
	}
	return err
}

// DeleteRange deletes keys, as a txn of one op.
func (k *kvServer) DeleteRange(ctx context.Context, r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	if err := checkDelete(r); err != nil {
		return nil, err
	}
	if err := k.s.checkSize(r); err != nil {
		return nil, err
	}
	res, err := k.s.b.Txn(ctx, &kv.TxnRequest{Then: []kv.Op{deleteOp(r)}})
	if err != nil {
		return nil, toGRPC(err)
	}
	resp := deleteResponse(&res.Responses[0].Delete)
	k.s.hdr.fill(resp.Header)
	return resp, nil
}

// Txn runs a conditional txn, validated first as etcd validates it.
func (k *kvServer) Txn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	cost := costTxn(r)
	if err := k.s.checkQuota(cost); err != nil {
		return nil, err
	}
	if err := checkTxn(r, k.s.opts.MaxTxnOps); err != nil {
		return nil, err
	}
	if _, _, err := checkWrites(r.Success); err != nil {
		return nil, err
	}
	if _, _, err := checkWrites(r.Failure); err != nil {
		return nil, err
	}
	if hasWrite(r, false) {
		if err := k.s.checkSize(r); err != nil {
			return nil, err
		}
	}
	if hasWrite(r, true) {
		if err := k.s.maintenance.noSpace(); err != nil {
			return nil, err
		}
	}
	// A txn that only reads is not proposed but run locally (see
	// Replicated): make it linearizable unless every range in it is
	// serializable, as etcd does.
	if !hasWrite(r, false) && !serializableTxn(r) {
		if err := k.s.readBarrier(ctx); err != nil {
			return nil, err
		}
	}
	res, err := k.s.b.Txn(ctx, txnRequest(r))
	if err != nil {
		return nil, toGRPC(err)
	}
	k.s.charge(cost)
	resp := txnResponse(res, res.Rev)
	k.s.hdr.fill(resp.Header)
	return resp, nil
}

// Compact compacts the history below r.Revision. It is done when it
// returns, so Physical is always honoured.
//
// As etcd does, it first hashes the history up to r.Revision, and HashKV
// at that revision answers that hash from then on: a compaction does not
// change the hash of the revision it compacts at. A Backend that is a
// CompactionHasher takes that hash itself, where it compacts (on every
// member of a cluster).
func (k *kvServer) Compact(ctx context.Context, r *pb.CompactionRequest) (*pb.CompactionResponse, error) {
	_, hashes := k.s.b.(CompactionHasher)
	var h kv.KeyValueHash
	herr := errors.ErrUnsupported
	if !hashes {
		h, herr = k.s.b.HashByRev(r.Revision)
	}
	if err := k.s.b.Compact(ctx, r.Revision); err != nil {
		return nil, toGRPC(err)
	}
	if herr == nil {
		k.s.maintenance.keepHash(h)
	}
	k.s.remeasure()
	k.s.log.Debug("compacted", "rev", r.Revision)
	return &pb.CompactionResponse{Header: k.s.hdr.now()}, nil
}

// serializableTxn reports whether every range of a txn, nested or not,
// asks for a serializable read.
func serializableTxn(r *pb.TxnRequest) bool {
	for _, ops := range [][]*pb.RequestOp{r.Success, r.Failure} {
		for _, op := range ops {
			if rr := op.GetRequestRange(); rr != nil && !rr.Serializable {
				return false
			}
			if t := op.GetRequestTxn(); t != nil && !serializableTxn(t) {
				return false
			}
		}
	}
	return true
}

// hasWrite reports whether a txn has a put (or, unless putsOnly, a
// delete) in any branch, nested or not. etcd checks the size only of txns
// that write (others are not proposed to raft), and a NOSPACE alarm
// refuses only txns that put.
func hasWrite(r *pb.TxnRequest, putsOnly bool) bool {
	for _, ops := range [][]*pb.RequestOp{r.Success, r.Failure} {
		for _, op := range ops {
			if op.GetRequestPut() != nil || !putsOnly && op.GetRequestDeleteRange() != nil {
				return true
			}
			if t := op.GetRequestTxn(); t != nil && hasWrite(t, putsOnly) {
				return true
			}
		}
	}
	return false
}
