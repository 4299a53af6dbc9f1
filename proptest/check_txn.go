package proptest

import (
	"bytes"
	"context"
	"fmt"

	"github.com/revkv/revkv/kv"
	"pgregory.net/rapid"
)

// TxnKV is what Check drives beyond KV when both KVs it opens have it:
// etcd's conditional txns, range options, put and delete options, and
// interactive txns that can abort. *engine.Store has all of it but
// BeginTxn, which wraps its Begin.
type TxnKV interface {
	KV
	Txn(ctx context.Context, req *kv.TxnRequest) (*kv.TxnResponse, error)
	RangeWithOptions(key, end []byte, opts kv.RangeOptions) (kv.RangeResult, error)
	PutWithOptions(key, value []byte, opts kv.PutOptions) (kv.PutResult, error)
	DeleteRangeWithOptions(key, end []byte, opts kv.DeleteOptions) (kv.DeleteResult, error)
	BeginTxn(ctx context.Context) (Txn, error)
}

// Txn is an open interactive txn (see engine.Txn): a failed write poisons
// it (later calls fail with kv.ErrTxnFailed, and Commit aborts); Abort
// takes back everything it wrote.
type Txn interface {
	Range(key, end []byte, opts kv.RangeOptions) (kv.RangeResult, error)
	Put(key, value []byte, opts kv.PutOptions) (kv.PutResult, error)
	DeleteRange(key, end []byte, opts kv.DeleteOptions) (kv.DeleteResult, error)
	Commit() (int64, error)
	Abort() error
}

// txnActions are the state machine's actions for a TxnKV; nil if either KV
// is not one.
func (m *machine) txnActions() map[string]func(*rapid.T) {
	a, okA := m.a.(TxnKV)
	b, okB := m.b.(TxnKV)
	if !okA || !okB {
		return nil
	}
	x := &txnMachine{machine: m, kvs: []TxnKV{a, b}}
	return map[string]func(*rapid.T){
		"condTxn":     x.condTxn,
		"rangeOpts":   x.rangeOpts,
		"putOpts":     x.putOpts,
		"deleteOpts":  x.deleteOpts,
		"interactive": x.interactive,
	}
}

type txnMachine struct {
	*machine
	kvs []TxnKV
}

// drawRangeOptions draws every range option: limits, read revisions,
// sorts (rarely an undefined one), filters around the current revisions,
// keys-only, count-only and total count.
func drawRangeOptions(t *rapid.T, cur int64) kv.RangeOptions {
	o := kv.RangeOptions{
		Limit:      rapid.Int64Range(-1, 4).Draw(t, "limit"),
		CountOnly:  rapid.IntRange(0, 5).Draw(t, "countOnly") == 0,
		KeysOnly:   rapid.Bool().Draw(t, "keysOnly"),
		TotalCount: rapid.Bool().Draw(t, "totalCount"),
		SortOrder:  kv.SortOrder(rapid.IntRange(0, 2).Draw(t, "sortOrder")),
	}
	// Half the reads in key order, which takes the engine's path that
	// stops one key past the limit.
	if target := rapid.IntRange(0, 8).Draw(t, "sortTarget"); target <= 4 {
		o.SortTarget = kv.SortTarget(target)
	}
	if rapid.IntRange(0, 2).Draw(t, "atRev") == 0 {
		o.Rev = drawRev(t, cur)
	}
	if rapid.IntRange(0, 30).Draw(t, "badSort") == 0 {
		o.SortOrder = 3
	}
	filter := func(label string) int64 {
		if rapid.IntRange(0, 5).Draw(t, label+"Set") > 0 {
			return 0
		}
		return rapid.Int64Range(1, cur+1).Draw(t, label)
	}
	o.MinModRevision, o.MaxModRevision = filter("minMod"), filter("maxMod")
	o.MinCreateRevision, o.MaxCreateRevision = filter("minCreate"), filter("maxCreate")
	return o
}

func drawPutOptions(t *rapid.T) (value []byte, o kv.PutOptions) {
	value, o.Lease = drawValue(t), drawLease(t)
	o.PrevKV = rapid.Bool().Draw(t, "prevKV")
	if rapid.IntRange(0, 4).Draw(t, "ignoreValue") == 0 {
		o.IgnoreValue = true
		if rapid.IntRange(0, 3).Draw(t, "keepValue") > 0 {
			value = nil
		}
	}
	if rapid.IntRange(0, 4).Draw(t, "ignoreLease") == 0 {
		o.IgnoreLease = true
		if rapid.IntRange(0, 3).Draw(t, "keepLease") > 0 {
			o.Lease = 0
		}
	}
	return value, o
}

// drawEnd draws an op's or compare's end: nil, empty, etcd's "\x00", or a
// key.
func (ks keySet) drawEnd(t *rapid.T) []byte {
	switch rapid.IntRange(0, 5).Draw(t, "endKind") {
	case 0, 1, 2:
		return nil
	case 3:
		return []byte{}
	case 4:
		return []byte{0}
	}
	return []byte(ks.draw(t, "end"))
}

func (x *txnMachine) drawCompare(t *rapid.T) kv.Compare {
	c := kv.Compare{
		Key:    x.keys.drawKey(t, "cmpKey"),
		End:    x.keys.drawEnd(t),
		Target: kv.CompareTarget(rapid.IntRange(0, 4).Draw(t, "target")),
		Result: kv.CompareResult(rapid.IntRange(0, 3).Draw(t, "result")),
	}
	n := rapid.Int64Range(0, x.m.Rev()+1).Draw(t, "operand")
	switch c.Target {
	case kv.CompareValue:
		c.Value = drawValue(t)
	case kv.CompareVersion:
		c.Version = n % 4
	case kv.CompareCreate:
		c.CreateRevision = n
	case kv.CompareMod:
		c.ModRevision = n
	case kv.CompareLease:
		c.Lease = rapid.SampledFrom([]int64{0, 7, 8}).Draw(t, "leaseOperand")
	}
	return c
}

func (x *txnMachine) drawOp(t *rapid.T, depth int) kv.Op {
	kinds := 3
	if depth < 2 {
		kinds = 4
	}
	op := kv.Op{Type: kv.OpType(rapid.IntRange(0, kinds-1).Draw(t, "opType"))}
	switch op.Type {
	case kv.OpRange:
		op.Key, op.End = x.keys.drawKey(t, "key"), x.keys.drawEnd(t)
		op.Range = drawRangeOptions(t, x.m.Rev())
	case kv.OpPut:
		op.Key = x.keys.drawKey(t, "key")
		op.Value, op.Put = drawPutOptions(t)
	case kv.OpDeleteRange:
		op.Key, op.End = x.keys.drawKey(t, "key"), x.keys.drawEnd(t)
		op.Delete.PrevKV = rapid.Bool().Draw(t, "prevKV")
	case kv.OpTxn:
		op.Txn = x.drawTxn(t, depth+1)
	}
	return op
}

func (x *txnMachine) drawTxn(t *rapid.T, depth int) *kv.TxnRequest {
	req := &kv.TxnRequest{}
	for range rapid.IntRange(0, 2).Draw(t, "compares") {
		req.Compare = append(req.Compare, x.drawCompare(t))
	}
	for range rapid.IntRange(0, 3).Draw(t, "thenOps") {
		req.Then = append(req.Then, x.drawOp(t, depth))
	}
	for range rapid.IntRange(0, 2).Draw(t, "elseOps") {
		req.Else = append(req.Else, x.drawOp(t, depth))
	}
	return req
}

// condTxn runs a random conditional txn (nested up to two levels) on
// both KVs and the model.
func (x *txnMachine) condTxn(t *rapid.T) {
	req := x.drawTxn(t, 0)
	want, wantErr := x.m.Txn(req, 128)
	for i, s := range x.kvs {
		got, err := s.Txn(context.Background(), req)
		what := fmt.Sprintf("KV %d: Txn(%s)", i, showTxn(req))
		if !sameErr(err, wantErr) {
			t.Fatalf("%s error %v; model %v", what, err, wantErr)
		}
		if got == nil || got.Rev != want.Rev {
			t.Fatalf("%s = %+v; model rev %d", what, got, want.Rev)
		}
		if wantErr == nil {
			checkTxnResponse(t, what, got, want)
		}
	}
}

func (x *txnMachine) rangeOpts(t *rapid.T) {
	key, end := x.keys.drawRange(t)
	opts := drawRangeOptions(t, x.m.Rev())
	want, wantErr := x.m.RangeWithOptions(key, end, opts)
	got, err := x.kvs[0].RangeWithOptions(key, end, opts)
	checkRange(t, fmt.Sprintf("RangeWithOptions(%q, %q, %+v)", key, end, opts), got, err, want, wantErr)
}

func (x *txnMachine) putOpts(t *rapid.T) {
	key := x.keys.drawKey(t, "key")
	value, opts := drawPutOptions(t)
	want, wantErr := x.m.PutWithOptions(key, value, opts)
	for i, s := range x.kvs {
		got, err := s.PutWithOptions(key, value, opts)
		checkPut(t, fmt.Sprintf("KV %d: PutWithOptions(%q, %q, %+v)", i, key, value, opts), got, err, want, wantErr)
	}
}

func (x *txnMachine) deleteOpts(t *rapid.T) {
	key, end := x.keys.drawRange(t)
	opts := kv.DeleteOptions{PrevKV: rapid.Bool().Draw(t, "prevKV")}
	want, wantErr := x.m.DeleteRangeWithOptions(key, end, opts)
	for i, s := range x.kvs {
		got, err := s.DeleteRangeWithOptions(key, end, opts)
		checkDelete(t, fmt.Sprintf("KV %d: DeleteRangeWithOptions(%q, %q, %+v)", i, key, end, opts), got, err, want, wantErr)
	}
}

// interactive runs an interactive txn of random reads and writes on both
// KVs and the model, and ends it with Commit or Abort.
func (x *txnMachine) interactive(t *rapid.T) {
	txs := make([]Txn, len(x.kvs))
	for i, s := range x.kvs {
		tx, err := s.BeginTxn(context.Background())
		if err != nil {
			t.Fatalf("KV %d: BeginTxn: %v", i, err)
		}
		txs[i] = tx
	}
	x.m.TxnBegin()
	for range rapid.IntRange(0, 5).Draw(t, "ops") {
		switch rapid.IntRange(0, 2).Draw(t, "op") {
		case 0:
			key := x.keys.drawKey(t, "key")
			value, opts := drawPutOptions(t)
			want, wantErr := x.m.TxnPutWithOptions(key, value, opts)
			for i, tx := range txs {
				got, err := tx.Put(key, value, opts)
				checkPut(t, fmt.Sprintf("KV %d: Txn.Put(%q, %q, %+v)", i, key, value, opts), got, err, want, wantErr)
			}
		case 1:
			key, end := x.keys.drawRange(t)
			opts := kv.DeleteOptions{PrevKV: rapid.Bool().Draw(t, "prevKV")}
			want, wantErr := x.m.TxnDeleteWithOptions(key, end, opts)
			for i, tx := range txs {
				got, err := tx.DeleteRange(key, end, opts)
				checkDelete(t, fmt.Sprintf("KV %d: Txn.DeleteRange(%q, %q)", i, key, end), got, err, want, wantErr)
			}
		case 2:
			key, end := x.keys.drawRange(t)
			opts := drawRangeOptions(t, x.m.Rev()+1)
			want, wantErr := x.m.TxnRangeWithOptions(key, end, opts)
			got, err := txs[0].Range(key, end, opts)
			checkRange(t, fmt.Sprintf("Txn.Range(%q, %q, %+v)", key, end, opts), got, err, want, wantErr)
		}
	}
	if rapid.Bool().Draw(t, "abort") {
		x.m.TxnAbort()
		for i, tx := range txs {
			if err := tx.Abort(); err != nil {
				t.Fatalf("KV %d: Abort: %v", i, err)
			}
		}
		return
	}
	wantErr := x.m.TxnEnd()
	for i, tx := range txs {
		rev, err := tx.Commit()
		if !sameErr(err, wantErr) || wantErr == nil && rev != x.m.Rev() {
			t.Fatalf("KV %d: Commit = %d, %v; model %d, %v", i, rev, err, x.m.Rev(), wantErr)
		}
	}
}

func checkRange(t *rapid.T, what string, got kv.RangeResult, err error, want kv.RangeResult, wantErr error) {
	if !sameErr(err, wantErr) {
		t.Fatalf("%s error %v; model %v", what, err, wantErr)
	}
	if got.Rev != want.Rev {
		t.Fatalf("%s rev %d; model %d", what, got.Rev, want.Rev)
	}
	if wantErr != nil {
		return
	}
	checkKVs(t, what, got.KVs, want.KVs)
	if got.Count != want.Count || got.More != want.More {
		t.Fatalf("%s count %d, more %v; model %d, %v", what, got.Count, got.More, want.Count, want.More)
	}
}

func checkPut(t *rapid.T, what string, got kv.PutResult, err error, want kv.PutResult, wantErr error) {
	if !sameErr(err, wantErr) {
		t.Fatalf("%s error %v; model %v", what, err, wantErr)
	}
	if wantErr != nil {
		return
	}
	if got.Rev != want.Rev || (got.PrevKV == nil) != (want.PrevKV == nil) || got.PrevKV != nil && !equalKV(*got.PrevKV, *want.PrevKV) {
		t.Fatalf("%s = %+v (prev %v); model %+v (prev %v)", what, got, got.PrevKV, want, want.PrevKV)
	}
}

func checkDelete(t *rapid.T, what string, got kv.DeleteResult, err error, want kv.DeleteResult, wantErr error) {
	if !sameErr(err, wantErr) {
		t.Fatalf("%s error %v; model %v", what, err, wantErr)
	}
	if wantErr != nil {
		return
	}
	if got.Deleted != want.Deleted || got.Rev != want.Rev {
		t.Fatalf("%s = %d at %d; model %d at %d", what, got.Deleted, got.Rev, want.Deleted, want.Rev)
	}
	checkKVs(t, what+" prevKVs", got.PrevKVs, want.PrevKVs)
}

func checkTxnResponse(t *rapid.T, what string, got, want *kv.TxnResponse) {
	if got.Succeeded != want.Succeeded || len(got.Responses) != len(want.Responses) {
		t.Fatalf("%s: succeeded %v with %d responses; model %v with %d", what, got.Succeeded, len(got.Responses), want.Succeeded, len(want.Responses))
	}
	for i, g := range got.Responses {
		w := want.Responses[i]
		op := fmt.Sprintf("%s op %d (%v)", what, i, w.Type)
		if g.Type != w.Type {
			t.Fatalf("%s: type %v", op, g.Type)
		}
		switch w.Type {
		case kv.OpRange:
			checkRange(t, op, g.Range, nil, w.Range, nil)
		case kv.OpPut:
			checkPut(t, op, g.Put, nil, w.Put, nil)
		case kv.OpDeleteRange:
			checkDelete(t, op, g.Delete, nil, w.Delete, nil)
		case kv.OpTxn:
			if g.Txn == nil || g.Txn.Rev != w.Txn.Rev {
				t.Fatalf("%s: %+v; model rev %d", op, g.Txn, w.Txn.Rev)
			}
			checkTxnResponse(t, op, g.Txn, w.Txn)
		}
	}
}

// showTxn renders a request compactly for failure messages.
func showTxn(r *kv.TxnRequest) string {
	var b bytes.Buffer
	b.WriteString("if")
	for _, c := range r.Compare {
		fmt.Fprintf(&b, " %q..%q t%d r%d v%q n%d/%d/%d/%d;", c.Key, c.End, c.Target, c.Result, c.Value, c.Version, c.CreateRevision, c.ModRevision, c.Lease)
	}
	for i, ops := range [][]kv.Op{r.Then, r.Else} {
		b.WriteString([]string{" then [", " else ["}[i])
		for _, op := range ops {
			if op.Type == kv.OpTxn && op.Txn != nil {
				fmt.Fprintf(&b, " {%s}", showTxn(op.Txn))
				continue
			}
			fmt.Fprintf(&b, " %v %q..%q %q %+v %+v %+v;", op.Type, op.Key, op.End, op.Value, op.Put, op.Delete, op.Range)
		}
		b.WriteString(" ]")
	}
	return b.String()
}
