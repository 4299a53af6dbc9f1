package difftest

import (
	"fmt"
	"slices"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// A side is one server under test seen through a real clientv3.Client.
// Everything a response says is rendered into text in which revisions are
// relative to the side's base revision (the revision at the start of the
// current rapid check) and lease IDs are replaced by the order in which
// the check granted them, so two servers that behave alike render alike
// even though etcd picks lease IDs at random.
type side struct {
	name   string
	c      *clientv3.Client
	base   int64
	leases []clientv3.LeaseID
	ttls   []int64 // TTL asked for each lease, by ordinal
}

func (s *side) rev(r int64) string {
	if r == 0 {
		return "0"
	}
	return fmt.Sprintf("%+d", r-s.base)
}

// abs turns a revision relative to the check's base into the side's own.
func (s *side) abs(r int64) int64 {
	if r <= 0 {
		return r
	}
	return s.base + r
}

func (s *side) lease(id int64) string {
	if id == 0 {
		return "-"
	}
	if i := slices.Index(s.leases, clientv3.LeaseID(id)); i >= 0 {
		return fmt.Sprintf("L%d", i)
	}
	if id == missingLease {
		return "Lmissing"
	}
	return fmt.Sprintf("L?%x", id)
}

func (s *side) leaseID(ordinal int) clientv3.LeaseID {
	if ordinal < 0 || ordinal >= len(s.leases) {
		return missingLease
	}
	return s.leases[ordinal]
}

// missingLease is never granted by either server in practice (etcd draws
// random 63-bit IDs; revkv's are checked against it in the test).
const missingLease = 0x7e57

func (s *side) header(h *pb.ResponseHeader) string {
	if h == nil {
		return "hdr=nil"
	}
	return "rev=" + s.rev(h.Revision)
}

func (s *side) kv(kv *mvccpb.KeyValue) string {
	if kv == nil {
		return "nil"
	}
	return fmt.Sprintf("{%q=%q c%s m%s v%d %s}", kv.Key, kv.Value, s.rev(kv.CreateRevision), s.rev(kv.ModRevision), kv.Version, s.lease(kv.Lease))
}

func (s *side) kvs(kvs []*mvccpb.KeyValue) string {
	parts := make([]string, len(kvs))
	for i, kv := range kvs {
		parts[i] = s.kv(kv)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func errText(err error) string {
	return "ERR " + err.Error()
}

// rangeResp renders the response to a get op.
func (s *side) rangeResp(r *pb.RangeResponse, op *kvOp) string {
	kvs := r.Kvs
	if op.keysOnly && !*strict && !(op.sort && op.target == clientv3.SortByValue) {
		kvs = withoutLeases(kvs)
	}
	body := s.kvs(kvs)
	if sort := op.sortTarget(); sort != nil {
		body = s.sortedKVs(kvs, *sort, r.More)
	}
	return fmt.Sprintf("range %s count=%d more=%v %s", s.header(r.Header), r.Count, r.More, body)
}

func (s *side) putResp(r *pb.PutResponse) string {
	return fmt.Sprintf("put %s prev=%s", s.header(r.Header), s.kv(r.PrevKv))
}

func (s *side) deleteResp(r *pb.DeleteRangeResponse) string {
	return fmt.Sprintf("delete %s deleted=%d prev=%s", s.header(r.Header), r.Deleted, s.kvs(r.PrevKvs))
}

// txnResp renders the response to the txn op (which says, for each range
// of the branch taken, whether it sorted).
func (s *side) txnResp(r *pb.TxnResponse, req *kvOp) string {
	var b strings.Builder
	fmt.Fprintf(&b, "txn %s ok=%v (", s.header(r.Header), r.Succeeded)
	for i, op := range r.Responses {
		if i > 0 {
			b.WriteString("; ")
		}
		branch := req.then
		if !r.Succeeded {
			branch = req.els
		}
		sub := &kvOp{}
		if i < len(branch) {
			sub = &branch[i]
		}
		switch op := op.Response.(type) {
		case *pb.ResponseOp_ResponseRange:
			b.WriteString(s.rangeResp(op.ResponseRange, sub))
		case *pb.ResponseOp_ResponsePut:
			b.WriteString(s.putResp(op.ResponsePut))
		case *pb.ResponseOp_ResponseDeleteRange:
			b.WriteString(s.deleteResp(op.ResponseDeleteRange))
		case *pb.ResponseOp_ResponseTxn:
			b.WriteString(s.txnResp(op.ResponseTxn, sub))
		default:
			fmt.Fprintf(&b, "?%T", op)
		}
	}
	b.WriteString(")")
	return b.String()
}

func (s *side) event(ev *clientv3.Event) string {
	t := "PUT"
	if ev.Type == mvccpb.DELETE {
		t = "DELETE"
	}
	out := fmt.Sprintf("%s %s", t, s.kv(ev.Kv))
	if ev.PrevKv != nil {
		out += " prev=" + s.kv(ev.PrevKv)
	}
	return out
}

// sortedKVs renders a range sorted on target without the order of ties.
// etcd sorts with an unstable sort, so the order of keys that tie on the
// target is an accident of its algorithm, not part of the API; comparing
// it would compare sort implementations. The rendering keeps the sequence
// of target values (the order the API promises) and the kvs as a set in
// key order. When the range was truncated (More), which of the keys tied
// at the cut made it in is equally accidental, so that last tie group is
// rendered by its target value alone.
func (s *side) sortedKVs(kvs []*mvccpb.KeyValue, target pb.RangeRequest_SortTarget, more bool) string {
	if target == pb.RangeRequest_KEY {
		return s.kvs(kvs) // keys are unique: no ties
	}
	targets := make([]string, len(kvs))
	for i, kv := range kvs {
		targets[i] = s.sortValue(kv, target)
	}
	keep := kvs
	if more && len(kvs) > 0 {
		last := targets[len(targets)-1]
		n := len(kvs)
		for n > 0 && targets[n-1] == last {
			n--
		}
		keep = kvs[:n]
	}
	set := slices.Clone(keep)
	slices.SortFunc(set, func(a, b *mvccpb.KeyValue) int {
		return strings.Compare(string(a.Key), string(b.Key))
	})
	return "targets" + fmt.Sprint(targets) + " set" + s.kvs(set)
}

func (s *side) sortValue(kv *mvccpb.KeyValue, target pb.RangeRequest_SortTarget) string {
	switch target {
	case pb.RangeRequest_VERSION:
		return fmt.Sprint(kv.Version)
	case pb.RangeRequest_CREATE:
		return s.rev(kv.CreateRevision)
	case pb.RangeRequest_MOD:
		return s.rev(kv.ModRevision)
	case pb.RangeRequest_VALUE:
		return fmt.Sprintf("%q", kv.Value)
	}
	return fmt.Sprintf("%q", kv.Key)
}

// withoutLeases is kvs with their leases zeroed. etcd v3.7.3 answers a
// keys-only range (not sorted by value) from its in-memory index, which
// does not hold leases, so every kv says lease 0; revkv says the lease.
// Known difference 1 (README); -difftest.strict compares them.
func withoutLeases(kvs []*mvccpb.KeyValue) []*mvccpb.KeyValue {
	out := make([]*mvccpb.KeyValue, len(kvs))
	for i, kv := range kvs {
		out[i] = &mvccpb.KeyValue{Key: kv.Key, Value: kv.Value, CreateRevision: kv.CreateRevision, ModRevision: kv.ModRevision, Version: kv.Version}
	}
	return out
}

type pbPut = pb.PutResponse

func itoa(n int64) string { return fmt.Sprint(n) }

func errString(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}
