package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/revkv/revkv/etcd/etcdtest"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustPut(t *testing.T, cli *clientv3.Client, k, v string, opts ...clientv3.OpOption) *clientv3.PutResponse {
	t.Helper()
	r, err := cli.Put(ctxT(t), k, v, opts...)
	if err != nil {
		t.Fatalf("put %q: %v", k, err)
	}
	return r
}

func kvKeys(r *clientv3.GetResponse) string {
	var ks []string
	for _, kv := range r.Kvs {
		ks = append(ks, string(kv.Key))
	}
	return strings.Join(ks, ",")
}

// wantErr checks err is exactly etcd's error (clientv3 maps by text).
func wantErr(t *testing.T, err, want error) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v", want)
	}
	if rpctypes.ErrorDesc(err) != rpctypes.ErrorDesc(want) {
		t.Fatalf("got error %v, want %v", err, want)
	}
}

func TestPutGetHeaders(t *testing.T) {
	f := startFake(t, etcdtest.Config{})
	cli := f.Client(clientv3.Config{})
	ctx := ctxT(t)
	p := mustPut(t, cli, "a", "1")
	if p.Header.Revision != 2 || p.Header.ClusterId == 0 || p.Header.MemberId == 0 || p.Header.RaftTerm != 2 {
		t.Fatalf("put header %+v", p.Header)
	}
	p = mustPut(t, cli, "a", "2", clientv3.WithPrevKV())
	if p.PrevKv == nil || string(p.PrevKv.Value) != "1" || p.Header.Revision != 3 {
		t.Fatalf("put prev_kv: %+v", p)
	}
	g, err := cli.Get(ctx, "a")
	if err != nil || len(g.Kvs) != 1 || string(g.Kvs[0].Value) != "2" || g.Kvs[0].Version != 2 || g.Kvs[0].CreateRevision != 2 || g.Kvs[0].ModRevision != 3 || g.Count != 1 {
		t.Fatalf("get: %+v, %v", g, err)
	}
	g, err = cli.Get(ctx, "a", clientv3.WithRev(2))
	if err != nil || string(g.Kvs[0].Value) != "1" || g.Header.Revision != 3 {
		t.Fatalf("get at 2: %+v, %v", g, err)
	}
	_, err = cli.Get(ctx, "a", clientv3.WithRev(10))
	wantErr(t, err, rpctypes.ErrFutureRev)
}

func TestRangeOptions(t *testing.T) {
	cli := newClient(t)
	ctx := ctxT(t)
	for i, k := range []string{"b", "a", "d", "c", "e"} {
		mustPut(t, cli, k, fmt.Sprint(5-i))
	}
	mustPut(t, cli, "a", "x") // a: version 2, mod 7
	cases := []struct {
		name  string
		key   string
		opts  []clientv3.OpOption
		want  string
		count int64
		more  bool
	}{
		{"prefix", "", []clientv3.OpOption{clientv3.WithPrefix()}, "a,b,c,d,e", 5, false},
		{"from key", "c", []clientv3.OpOption{clientv3.WithFromKey()}, "c,d,e", 3, false},
		{"range", "b", []clientv3.OpOption{clientv3.WithRange("d")}, "b,c", 2, false},
		{"limit", "a", []clientv3.OpOption{clientv3.WithFromKey(), clientv3.WithLimit(2)}, "a,b", 5, true},
		{"sort value desc", "a", []clientv3.OpOption{clientv3.WithFromKey(), clientv3.WithSort(clientv3.SortByValue, clientv3.SortDescend)}, "a,b,d,c,e", 5, false},
		{"sort mod asc limit", "a", []clientv3.OpOption{clientv3.WithFromKey(), clientv3.WithSort(clientv3.SortByModRevision, clientv3.SortAscend), clientv3.WithLimit(3)}, "b,d,c", 5, true},
		{"sort key desc", "a", []clientv3.OpOption{clientv3.WithFromKey(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend)}, "e,d,c,b,a", 5, false},
		{"min mod", "a", []clientv3.OpOption{clientv3.WithFromKey(), clientv3.WithMinModRev(5)}, "a,c,e", 5, false},
		{"max create", "a", []clientv3.OpOption{clientv3.WithFromKey(), clientv3.WithMaxCreateRev(3)}, "a,b", 5, false},
		{"version sort", "a", []clientv3.OpOption{clientv3.WithFromKey(), clientv3.WithSort(clientv3.SortByVersion, clientv3.SortDescend), clientv3.WithLimit(1)}, "a", 5, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := cli.Get(ctx, c.key, c.opts...)
			if err != nil {
				t.Fatal(err)
			}
			if got := kvKeys(r); got != c.want || r.Count != c.count || r.More != c.more {
				t.Fatalf("got %s count %d more %v, want %s %d %v", got, r.Count, r.More, c.want, c.count, c.more)
			}
		})
	}
	r, err := cli.Get(ctx, "a", clientv3.WithFromKey(), clientv3.WithCountOnly())
	if err != nil || r.Count != 5 || len(r.Kvs) != 0 {
		t.Fatalf("count only: %+v %v", r, err)
	}
	r, err = cli.Get(ctx, "a", clientv3.WithKeysOnly())
	if err != nil || len(r.Kvs) != 1 || len(r.Kvs[0].Value) != 0 {
		t.Fatalf("keys only: %+v %v", r, err)
	}
}

func TestPutOptionsAndErrors(t *testing.T) {
	f := startFake(t, etcdtest.Config{})
	cli := f.Client(clientv3.Config{})
	ctx := ctxT(t)
	_, err := cli.Put(ctx, "k", "", clientv3.WithIgnoreValue())
	wantErr(t, err, rpctypes.ErrKeyNotFound)
	mustPut(t, cli, "k", "v")
	p, err := cli.Put(ctx, "k", "", clientv3.WithIgnoreValue(), clientv3.WithPrevKV())
	if err != nil || string(p.PrevKv.Value) != "v" {
		t.Fatalf("ignore value: %+v %v", p, err)
	}
	g, _ := cli.Get(ctx, "k")
	if string(g.Kvs[0].Value) != "v" || g.Kvs[0].Version != 2 {
		t.Fatalf("after ignore value: %+v", g.Kvs[0])
	}
	_, err = cli.Put(ctx, "k", "x", clientv3.WithIgnoreValue())
	wantErr(t, err, rpctypes.ErrValueProvided)
	_, err = cli.Put(ctx, "k", "x", clientv3.WithIgnoreLease(), clientv3.WithLease(5))
	wantErr(t, err, rpctypes.ErrLeaseProvided)
	_, err = cli.Put(ctx, "", "x")
	wantErr(t, err, rpctypes.ErrEmptyKey)
	_, err = cli.Get(ctx, "")
	wantErr(t, err, rpctypes.ErrEmptyKey)
	_, err = cli.Delete(ctx, "")
	wantErr(t, err, rpctypes.ErrEmptyKey)
	// An invalid sort option, sent raw (clientv3 cannot make one).
	_, err = pb.NewKVClient(etcdtest.Conn(cli)).Range(ctx, &pb.RangeRequest{Key: []byte("k"), SortOrder: 7})
	wantErr(t, err, rpctypes.ErrGRPCInvalidSortOption)
	// Above etcd's 1.5 MiB request limit, within gRPC's 2 MiB.
	_, err = cli.Put(ctx, "k", strings.Repeat("x", 1600<<10))
	wantErr(t, err, rpctypes.ErrRequestTooLarge)
	_, err = cli.Txn(ctx).Then(clientv3.OpDelete(strings.Repeat("x", 1600<<10))).Commit()
	wantErr(t, err, rpctypes.ErrRequestTooLarge)
	if _, err = cli.Txn(ctx).Then(clientv3.OpGet(strings.Repeat("x", 1600<<10))).Commit(); err != nil {
		t.Fatalf("a large read-only txn is not limited (etcd does not propose it): %v", err)
	}
	_, err = cli.Put(ctx, "k", strings.Repeat("x", 3<<20))
	if err == nil {
		t.Fatal("a 3 MiB put succeeded")
	}
}

func TestDeleteRange(t *testing.T) {
	cli := newClient(t)
	ctx := ctxT(t)
	for _, k := range []string{"a", "b", "c", "d"} {
		mustPut(t, cli, k, k)
	}
	d, err := cli.Delete(ctx, "b", clientv3.WithRange("d"), clientv3.WithPrevKV())
	if err != nil || d.Deleted != 2 || len(d.PrevKvs) != 2 || string(d.PrevKvs[1].Key) != "c" || d.Header.Revision != 6 {
		t.Fatalf("delete: %+v %v", d, err)
	}
	d, err = cli.Delete(ctx, "zz")
	if err != nil || d.Deleted != 0 || d.Header.Revision != 6 {
		t.Fatalf("delete nothing: %+v %v", d, err)
	}
	d, err = cli.Delete(ctx, "\x00", clientv3.WithFromKey())
	if err != nil || d.Deleted != 2 || d.Header.Revision != 7 {
		t.Fatalf("delete all: %+v %v", d, err)
	}
}

func TestTxn(t *testing.T) {
	cli := newClient(t)
	ctx := ctxT(t)
	mustPut(t, cli, "a", "1")
	mustPut(t, cli, "b", "2")
	r, err := cli.Txn(ctx).If(
		clientv3.Compare(clientv3.Value("a"), "=", "1"),
		clientv3.Compare(clientv3.Version("b"), ">", 0),
		clientv3.Compare(clientv3.CreateRevision("a"), "<", 3),
		clientv3.Compare(clientv3.ModRevision("b"), "!=", 3),
	).Then(clientv3.OpPut("x", "y")).Else(
		clientv3.OpPut("a", "else", clientv3.WithPrevKV()),
		clientv3.OpGet("a"),
		clientv3.OpDelete("b", clientv3.WithPrevKV()),
		clientv3.OpTxn(
			[]clientv3.Cmp{clientv3.Compare(clientv3.Value("a"), "=", "1")},
			[]clientv3.Op{clientv3.OpGet("b")},
			nil),
	).Commit()
	if err != nil {
		t.Fatal(err)
	}
	if r.Succeeded || len(r.Responses) != 4 || r.Header.Revision != 4 {
		t.Fatalf("txn: %+v", r)
	}
	if pv := r.Responses[0].GetResponsePut().PrevKv; pv == nil || string(pv.Value) != "1" {
		t.Fatalf("put prev: %+v", r.Responses[0])
	}
	if g := r.Responses[1].GetResponseRange(); string(g.Kvs[0].Value) != "else" || g.Header.Revision != 4 {
		t.Fatalf("range in txn: %+v", g)
	}
	if d := r.Responses[2].GetResponseDeleteRange(); d.Deleted != 1 || string(d.PrevKvs[0].Value) != "2" {
		t.Fatalf("delete in txn: %+v", d)
	}
	// Nested compares read the store as it was before the txn.
	if n := r.Responses[3].GetResponseTxn(); !n.Succeeded || len(n.Responses[0].GetResponseRange().Kvs) != 0 {
		t.Fatalf("nested: %+v", n)
	}
	// Lease compare, and an empty range compare.
	r, err = cli.Txn(ctx).If(clientv3.Compare(clientv3.LeaseValue("a"), "=", 0),
		clientv3.Compare(clientv3.Version("nokey").WithPrefix(), "=", 0)).Commit()
	if err != nil || !r.Succeeded || r.Header.Revision != 4 {
		t.Fatalf("lease compare: %+v %v", r, err)
	}
}

func TestTxnValidation(t *testing.T) {
	cli := newClient(t)
	ctx := ctxT(t)
	many := make([]clientv3.Op, 129)
	for i := range many {
		many[i] = clientv3.OpGet(fmt.Sprint(i))
	}
	_, err := cli.Txn(ctx).Then(many...).Commit()
	wantErr(t, err, rpctypes.ErrTooManyOps)
	// A nested txn's limit is the limit less the outer txn's longest list:
	// 128 - 101 = 27 ops.
	nestedOps := func(n int) []clientv3.Op {
		outer := append([]clientv3.Op(nil), many[:100]...)
		return append(outer, clientv3.OpTxn(nil, many[:n], nil))
	}
	if _, err = cli.Txn(ctx).Then(nestedOps(27)...).Commit(); err != nil {
		t.Fatalf("nested txn at its limit: %v", err)
	}
	_, err = cli.Txn(ctx).Then(nestedOps(28)...).Commit()
	wantErr(t, err, rpctypes.ErrTooManyOps)
	_, err = cli.Txn(ctx).Then(clientv3.OpPut("a", "1"), clientv3.OpPut("a", "2")).Commit()
	wantErr(t, err, rpctypes.ErrDuplicateKey)
	_, err = cli.Txn(ctx).Then(clientv3.OpDelete("a", clientv3.WithPrefix()), clientv3.OpPut("ab", "2")).Commit()
	wantErr(t, err, rpctypes.ErrDuplicateKey)
	// A from-key delete ("\x00" end) counts as deleting nothing, as in etcd.
	if _, err = cli.Txn(ctx).Then(clientv3.OpDelete("a", clientv3.WithFromKey()), clientv3.OpPut("b", "2")).Commit(); err != nil {
		t.Fatalf("from-key delete and put: %v", err)
	}
	// Then and Else of one nested txn may put the same key.
	nested := clientv3.OpTxn(nil, []clientv3.Op{clientv3.OpPut("n", "1")}, []clientv3.Op{clientv3.OpPut("n", "2")})
	if _, err = cli.Txn(ctx).Then(nested).Commit(); err != nil {
		t.Fatalf("nested then/else: %v", err)
	}
	_, err = cli.Txn(ctx).Then(nested, clientv3.OpPut("n", "3")).Commit()
	wantErr(t, err, rpctypes.ErrDuplicateKey)
	_, err = cli.Txn(ctx).If(clientv3.Compare(clientv3.Value(""), "=", "")).Commit()
	wantErr(t, err, rpctypes.ErrEmptyKey)
	_, err = cli.Txn(ctx).Then(clientv3.OpPut("k", "", clientv3.WithIgnoreValue())).Commit()
	wantErr(t, err, rpctypes.ErrKeyNotFound)
	_, err = cli.Txn(ctx).Then(clientv3.OpGet("k", clientv3.WithRev(100))).Commit()
	wantErr(t, err, rpctypes.ErrFutureRev)
	// An op with no request.
	_, err = pb.NewKVClient(etcdtest.Conn(cli)).Txn(ctx, &pb.TxnRequest{Success: []*pb.RequestOp{{}}})
	wantErr(t, err, rpctypes.ErrGRPCKeyNotFound)
}

func TestCompact(t *testing.T) {
	cli := newClient(t)
	ctx := ctxT(t)
	for i := range 5 {
		mustPut(t, cli, "k", fmt.Sprint(i))
	}
	if _, err := cli.Compact(ctx, 4); err != nil {
		t.Fatal(err)
	}
	_, err := cli.Compact(ctx, 4)
	wantErr(t, err, rpctypes.ErrCompacted)
	_, err = cli.Compact(ctx, 100)
	wantErr(t, err, rpctypes.ErrFutureRev)
	_, err = cli.Get(ctx, "k", clientv3.WithRev(3))
	wantErr(t, err, rpctypes.ErrCompacted)
	g, err := cli.Get(ctx, "k", clientv3.WithRev(4))
	if err != nil || string(g.Kvs[0].Value) != "2" {
		t.Fatalf("get at compacted rev: %+v %v", g, err)
	}
}
