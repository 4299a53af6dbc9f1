package difftest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/revkv/revkv/etcd/etcdtest"
	"github.com/revkv/revkv/etcd/internal/embedetcd"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestEdgeRequests compares both servers' answers to requests at the
// edges of etcd's validation, which random operations rarely reach: op
// and size limits, empty and "\x00" keys, flags that contradict each
// other, lease TTL and ID limits, and raw requests clientv3 would not
// build.
func TestEdgeRequests(t *testing.T) {
	sides := []*side{
		{name: "etcd", c: embedetcd.Start(t).Client(t)},
		{name: "revkv", c: etcdtest.NewClient(t)},
	}
	big := strings.Repeat("x", 2<<20)
	many := func(n int) []clientv3.Op {
		ops := make([]clientv3.Op, n)
		for i := range ops {
			ops[i] = clientv3.OpPut(fmt.Sprintf("k%03d", i), "v")
		}
		return ops
	}
	cases := []struct {
		name string
		// known is the number of a known difference (README; 0: none):
		// without -difftest.strict it is logged, not failed.
		known int
		do    func(s *side, ctx context.Context) string
	}{
		{"put empty key", 0, func(s *side, ctx context.Context) string {
			r, err := s.c.Put(ctx, "", "v")
			return resp(s, r, err)
		}},
		{"get empty key", 0, func(s *side, ctx context.Context) string {
			r, err := s.c.Get(ctx, "")
			return resp(s, r, err)
		}},
		{"delete empty key", 0, func(s *side, ctx context.Context) string {
			r, err := s.c.Delete(ctx, "")
			return resp(s, r, err)
		}},
		{"get all from \\x00", 0, func(s *side, ctx context.Context) string {
			r, err := s.c.Get(ctx, "\x00", clientv3.WithFromKey(), clientv3.WithKeysOnly())
			return resp(s, r, err)
		}},
		{"range end before key", 0, func(s *side, ctx context.Context) string {
			r, err := s.c.Get(ctx, "b", clientv3.WithRange("a"))
			return resp(s, r, err)
		}},
		{"txn of 128 ops", 0, func(s *side, ctx context.Context) string {
			r, err := s.c.Txn(ctx).Then(many(128)...).Commit()
			if err != nil {
				return errText(err)
			}
			return fmt.Sprintf("ok %s responses=%d", s.header(r.Header), len(r.Responses))
		}},
		{"txn of 129 ops", 0, func(s *side, ctx context.Context) string {
			r, err := s.c.Txn(ctx).Then(many(129)...).Commit()
			return resp(s, r, err)
		}},
		{"txn of 129 compares", 0, func(s *side, ctx context.Context) string {
			cmps := make([]clientv3.Cmp, 129)
			for i := range cmps {
				cmps[i] = clientv3.Compare(clientv3.Version("k"), "=", 0)
			}
			r, err := s.c.Txn(ctx).If(cmps...).Commit()
			return resp(s, r, err)
		}},
		{"put twice in a txn", 0, func(s *side, ctx context.Context) string {
			r, err := s.c.Txn(ctx).Then(clientv3.OpPut("d", "1"), clientv3.OpPut("d", "2")).Commit()
			return resp(s, r, err)
		}},
		{"put in both branches", 0, func(s *side, ctx context.Context) string {
			r, err := s.c.Txn(ctx).Then(clientv3.OpPut("d", "1")).Else(clientv3.OpPut("d", "2")).Commit()
			return resp(s, r, err)
		}},
		{"put inside a deleted range", 0, func(s *side, ctx context.Context) string {
			r, err := s.c.Txn(ctx).Then(clientv3.OpDelete("a", clientv3.WithRange("z")), clientv3.OpPut("d", "1")).Commit()
			return resp(s, r, err)
		}},
		{"put in nested txn and outer", 0, func(s *side, ctx context.Context) string {
			r, err := s.c.Txn(ctx).Then(clientv3.OpTxn(nil, []clientv3.Op{clientv3.OpPut("d", "1")}, nil), clientv3.OpPut("d", "2")).Commit()
			return resp(s, r, err)
		}},
		{"request too large", 0, func(s *side, ctx context.Context) string {
			r, err := s.c.Put(ctx, "big", big)
			return resp(s, r, err)
		}},
		{"ignore_value with a value", 0, func(s *side, ctx context.Context) string {
			r, err := s.c.Put(ctx, "k", "v", clientv3.WithIgnoreValue())
			return resp(s, r, err)
		}},
		{"ignore_lease with a lease", 0, func(s *side, ctx context.Context) string {
			r, err := s.c.Put(ctx, "k", "v", clientv3.WithIgnoreLease(), clientv3.WithLease(5))
			return resp(s, r, err)
		}},
		{"ignore_value on a missing key", 0, func(s *side, ctx context.Context) string {
			r, err := s.c.Put(ctx, "missing", "", clientv3.WithIgnoreValue())
			return resp(s, r, err)
		}},
		{"compact future", 0, func(s *side, ctx context.Context) string {
			r, err := s.c.Compact(ctx, 1000)
			return resp(s, r, err)
		}},
		{"compact 0", 0, func(s *side, ctx context.Context) string {
			r, err := s.c.Compact(ctx, 0)
			return resp(s, r, err)
		}},
		{"grant TTL too large", 0, func(s *side, ctx context.Context) string {
			r, err := s.c.Grant(ctx, 9_000_000_001)
			if err != nil {
				return errText(err)
			}
			return fmt.Sprint("granted ttl=", r.TTL)
		}},
		{"grant TTL 0 and negative", 0, func(s *side, ctx context.Context) string {
			out := ""
			for _, ttl := range []int64{0, -1} {
				r, err := s.c.Grant(ctx, ttl)
				if err != nil {
					out += errText(err) + "; "
				} else {
					out += fmt.Sprint("ttl=", r.TTL, "; ")
				}
			}
			return out
		}},
		{"grant explicit ID twice", 0, func(s *side, ctx context.Context) string {
			lc := pb.NewLeaseClient(s.c.ActiveConnection())
			out := ""
			for range 2 {
				r, err := lc.LeaseGrant(ctx, &pb.LeaseGrantRequest{ID: 0x1234, TTL: 60})
				if err != nil {
					out += errText(err) + "; "
				} else {
					out += fmt.Sprintf("id=%x ttl=%d; ", r.ID, r.TTL)
				}
			}
			return out
		}},
		{"revoke missing lease", 0, func(s *side, ctx context.Context) string {
			_, err := s.c.Revoke(ctx, 0x4321)
			return errString(err)
		}},
		{"time to live of missing lease", 0, func(s *side, ctx context.Context) string {
			r, err := s.c.TimeToLive(ctx, 0x4321)
			if err != nil {
				return errText(err)
			}
			return fmt.Sprint("ttl=", r.TTL, " granted=", r.GrantedTTL)
		}},
		{"raw range with empty key", 0, func(s *side, ctx context.Context) string {
			kc := pb.NewKVClient(s.c.ActiveConnection())
			_, err := kc.Range(ctx, &pb.RangeRequest{})
			return errString(err)
		}},
		{"raw range with bad sort", 0, func(s *side, ctx context.Context) string {
			kc := pb.NewKVClient(s.c.ActiveConnection())
			_, err := kc.Range(ctx, &pb.RangeRequest{Key: []byte("a"), SortOrder: 7})
			return errString(err)
		}},
		{"raw compare with bad target", 0, func(s *side, ctx context.Context) string {
			kc := pb.NewKVClient(s.c.ActiveConnection())
			_, err := kc.Txn(ctx, &pb.TxnRequest{Compare: []*pb.Compare{{Key: []byte("a"), Target: 9}}})
			return errString(err)
		}},
		{"raw txn op with no request", 0, func(s *side, ctx context.Context) string {
			kc := pb.NewKVClient(s.c.ActiveConnection())
			_, err := kc.Txn(ctx, &pb.TxnRequest{Success: []*pb.RequestOp{{}}})
			return errString(err)
		}},
		{"range stream sorted by create revision, order unspecified", 0, func(s *side, ctx context.Context) string {
			for _, k := range []string{"s/b", "s/a"} {
				if _, err := s.c.Put(ctx, k, "v"); err != nil {
					return errText(err)
				}
			}
			ch, err := s.c.GetStream(ctx, "s/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortNone))
			if err != nil {
				return errText(err)
			}
			r, err := clientv3.GetStreamToGetResponse(ch)
			return resp(s, r, err)
		}},
		{"range stream sorted by create revision, ascending", 0, func(s *side, ctx context.Context) string {
			ch, err := s.c.GetStream(ctx, "s/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
			if err != nil {
				return errText(err)
			}
			r, err := clientv3.GetStreamToGetResponse(ch)
			return resp(s, r, err)
		}},
		{"range stream with a revision filter", 0, func(s *side, ctx context.Context) string {
			ch, err := s.c.GetStream(ctx, "s/", clientv3.WithPrefix(), clientv3.WithMinModRev(2))
			if err != nil {
				return errText(err)
			}
			r, err := clientv3.GetStreamToGetResponse(ch)
			return resp(s, r, err)
		}},
		{"keys-only range of a leased key", 1, func(s *side, ctx context.Context) string {
			g, err := s.c.Grant(ctx, 600)
			if err != nil {
				return errText(err)
			}
			s.leases = append(s.leases, g.ID)
			if _, err := s.c.Put(ctx, "leased", "v", clientv3.WithLease(g.ID)); err != nil {
				return errText(err)
			}
			r, err := s.c.Get(ctx, "leased", clientv3.WithKeysOnly())
			if err != nil {
				return errText(err)
			}
			return s.kvs(r.Kvs)
		}},
		{"put with a missing lease and ignore_value on a missing key", 0, func(s *side, ctx context.Context) string {
			r, err := s.c.Put(ctx, "nokey", "", clientv3.WithLease(missingLease), clientv3.WithIgnoreValue())
			return resp(s, r, err)
		}},
		{"txn put with a missing lease and ignore_value on a missing key", 0, func(s *side, ctx context.Context) string {
			r, err := s.c.Txn(ctx).Then(clientv3.OpPut("nokey", "", clientv3.WithLease(missingLease), clientv3.WithIgnoreValue())).Commit()
			return resp(s, r, err)
		}},
		{"raw delete with empty key", 0, func(s *side, ctx context.Context) string {
			kc := pb.NewKVClient(s.c.ActiveConnection())
			_, err := kc.DeleteRange(ctx, &pb.DeleteRangeRequest{})
			return errString(err)
		}},
	}
	for _, s := range sides {
		r, err := s.c.Get(context.Background(), "a")
		if err != nil {
			t.Fatal(err)
		}
		s.base = r.Header.Revision
	}
	for _, c := range cases {
		var out [2]string
		for i, s := range sides {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			out[i] = c.do(s, ctx)
			cancel()
		}
		switch {
		case out[0] == out[1]:
			if c.known != 0 && !*strict {
				t.Logf("%s: known difference %d no longer differs: drop its mark", c.name, c.known)
			}
		case c.known != 0 && !*strict:
			t.Logf("%s (known difference %d):\n  etcd:  %s\n  revkv: %s", c.name, c.known, out[0], out[1])
		default:
			t.Errorf("%s:\n  etcd:  %s\n  revkv: %s", c.name, out[0], out[1])
		}
	}
}

// resp renders a clientv3 response, or its error.
func resp(s *side, r any, err error) string {
	if err != nil {
		return errText(err)
	}
	switch r := r.(type) {
	case *clientv3.GetResponse:
		return s.rangeResp((*pb.RangeResponse)(r), &kvOp{kind: opGet})
	case *clientv3.TxnResponse:
		return s.txnResp((*pb.TxnResponse)(r), &kvOp{kind: opTxn})
	case *clientv3.PutResponse:
		return s.putResp((*pb.PutResponse)(r))
	case *clientv3.DeleteResponse:
		return s.deleteResp((*pb.DeleteRangeResponse)(r))
	case *clientv3.CompactResponse:
		return "compact " + s.header(r.Header)
	}
	return fmt.Sprintf("%T", r)
}
