package simtest

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/revkv/revkv/kv"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// The checkers must catch what they are there to catch: each gets a
// correct input (accepted) and one with a planted violation (refused), so
// a simulation whose checks pass cannot be passing vacuously.

func put(k int, v string) opInput { return opInput{Kind: opPut, Key: k, Value: v} }
func get(k int) opInput           { return opInput{Kind: opGet, Key: k} }

func TestLinearizabilityChecker(t *testing.T) {
	unknown := opOutput{Unknown: true}
	type op struct {
		in        opInput
		out       opOutput
		call, ret int64
	}
	cases := []struct {
		name string
		ops  []op
		ok   bool
	}{
		{"sequential put get", []op{
			{put(0, "x"), opOutput{Rev: 2}, 1, 2},
			{get(0), opOutput{Rev: 2, Found: true, Value: "x", Mod: 2}, 3, 4},
		}, true},
		{"stale read after acknowledged put", []op{
			{put(0, "x"), opOutput{Rev: 2}, 1, 2},
			{get(0), opOutput{Rev: 1}, 3, 4},
		}, false},
		{"concurrent read may see either", []op{
			{put(0, "x"), opOutput{Rev: 2}, 1, 5},
			{get(0), opOutput{Rev: 1}, 2, 3},
		}, true},
		{"read of a value never written", []op{
			{put(0, "x"), opOutput{Rev: 2}, 1, 2},
			{get(0), opOutput{Rev: 2, Found: true, Value: "y", Mod: 2}, 3, 4},
		}, false},
		{"two puts acknowledged at one revision", []op{
			{put(0, "x"), opOutput{Rev: 2}, 1, 2},
			{put(1, "y"), opOutput{Rev: 2}, 3, 4},
		}, false},
		{"unknown put that happened", []op{
			{put(0, "x"), unknown, 1, 0},
			{get(0), opOutput{Rev: 2, Found: true, Value: "x", Mod: 2}, 3, 4},
		}, true},
		{"unknown put that did not happen", []op{
			{put(0, "x"), unknown, 1, 0},
			{get(0), opOutput{Rev: 1}, 3, 4},
		}, true},
		{"unknown put seen then unseen", []op{
			{put(0, "x"), unknown, 1, 0},
			{get(0), opOutput{Rev: 2, Found: true, Value: "x", Mod: 2}, 3, 4},
			{get(0), opOutput{Rev: 1}, 5, 6},
		}, false},
		{"delete of a missing key keeps the revision", []op{
			{opInput{Kind: opDelete, Key: 1}, opOutput{Rev: 1}, 1, 2},
			{put(1, "x"), opOutput{Rev: 2}, 3, 4},
			{opInput{Kind: opDelete, Key: 1}, opOutput{Rev: 3, Deleted: 1}, 5, 6},
		}, true},
		{"txn on a mod revision", []op{
			{put(0, "x"), opOutput{Rev: 2}, 1, 2},
			{opInput{Kind: opTxn, CmpKey: 0, CmpTarget: cmpMod, CmpMod: 2, ThenKey: 1, ThenValue: "y"}, opOutput{Rev: 3, Succeeded: true}, 3, 4},
			{opInput{Kind: opTxn, CmpKey: 0, CmpTarget: cmpMod, CmpMod: 2, ThenKey: 1, ThenDelete: true}, opOutput{Rev: 4, Succeeded: true, Deleted: 1}, 5, 6},
			{opInput{Kind: opTxn, CmpKey: 0, CmpTarget: cmpValue, CmpValue: "y", ThenKey: 2, ThenValue: "z"}, opOutput{Rev: 4}, 7, 8},
		}, true},
		{"txn that succeeded where its compare failed", []op{
			{put(0, "x"), opOutput{Rev: 2}, 1, 2},
			{opInput{Kind: opTxn, CmpKey: 0, CmpTarget: cmpValue, CmpValue: "other", ThenKey: 1, ThenValue: "y"}, opOutput{Rev: 3, Succeeded: true}, 3, 4},
		}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var h history
			for i, o := range c.ops {
				h.add(i, o.in, o.out, o.call, o.ret)
			}
			checked, err := checkLinearizable(h.ops, 10*time.Second, false)
			if !checked {
				t.Fatal("porcupine timed out on a tiny history")
			}
			if (err == nil) != c.ok {
				t.Fatalf("linearizable: got %v, want ok=%v", err, c.ok)
			}
		})
	}
}

func TestLeaderLogCatchesTwoLeaders(t *testing.T) {
	l := leaderLog{}
	for _, o := range [][3]uint64{{1, 2, 1}, {2, 2, 1}, {3, 2, 0}, {3, 3, 3}} {
		if err := l.observe(o[0], o[1], o[2]); err != nil {
			t.Fatalf("observe %v: %v", o, err)
		}
	}
	if err := l.observe(2, 2, 2); err == nil {
		t.Fatal("two leaders in term 2 not caught")
	}
}

func events(revs ...[2]int64) []watchEvent {
	var evs []watchEvent
	for _, r := range revs {
		evs = append(evs, watchEvent{Rev: r[0], Sub: r[1], Key: "a", Value: "v", Create: 2, Version: 1})
	}
	return evs
}

func TestWatchChecker(t *testing.T) {
	good := events([2]int64{2, 0}, [2]int64{3, 0}, [2]int64{3, 1}, [2]int64{4, 0})
	ok := func(logs map[uint64]*watchLog, final map[uint64]int64) {
		t.Helper()
		if err := checkWatchHistories(logs, final); err != nil {
			t.Fatal(err)
		}
	}
	bad := func(name string, logs map[uint64]*watchLog, final map[uint64]int64) {
		t.Helper()
		if err := checkWatchHistories(logs, final); err == nil {
			t.Fatalf("%s not caught", name)
		}
	}
	ok(map[uint64]*watchLog{1: {From: 1, Events: good}, 2: {From: 1, Events: good}, 3: {From: 3, Events: good[1:]}},
		map[uint64]int64{1: 4, 2: 4, 3: 4})
	ok(map[uint64]*watchLog{1: {From: 1}}, map[uint64]int64{1: 1})
	bad("a gap", map[uint64]*watchLog{1: {From: 1, Events: events([2]int64{2, 0}, [2]int64{4, 0})}}, map[uint64]int64{1: 4})
	bad("a sub gap", map[uint64]*watchLog{1: {From: 1, Events: events([2]int64{2, 0}, [2]int64{2, 2})}}, map[uint64]int64{1: 2})
	bad("a repeat", map[uint64]*watchLog{1: {From: 1, Events: events([2]int64{2, 0}, [2]int64{2, 0})}}, map[uint64]int64{1: 2})
	bad("a late start", map[uint64]*watchLog{1: {From: 1, Events: events([2]int64{3, 0})}}, map[uint64]int64{1: 3})
	bad("a short history", map[uint64]*watchLog{1: {From: 1, Events: good}}, map[uint64]int64{1: 5})
	other := append([]watchEvent(nil), good...)
	other[2].Value = "w"
	bad("different events", map[uint64]*watchLog{1: {From: 1, Events: good}, 2: {From: 1, Events: other}}, map[uint64]int64{1: 4, 2: 4})
}

func TestHashChecker(t *testing.T) {
	h := func(hash uint32, rev int64) kv.KeyValueHash { return kv.KeyValueHash{Hash: hash, Rev: rev} }
	if err := checkHashes(map[uint64]map[int64]kv.KeyValueHash{1: {2: h(7, 2), 3: h(8, 3)}, 2: {3: h(8, 3)}}); err != nil {
		t.Fatal(err)
	}
	if err := checkHashes(map[uint64]map[int64]kv.KeyValueHash{1: {3: h(8, 3)}, 2: {3: h(9, 3)}}); err == nil {
		t.Fatal("different hashes at one revision not caught")
	}
}

func TestCommittedPrefixChecker(t *testing.T) {
	e := func(i, term uint64, data string) *raftpb.Entry {
		return &raftpb.Entry{Index: &i, Term: &term, Data: []byte(data)}
	}
	if err := checkCommittedPrefixes(map[uint64][]*raftpb.Entry{
		1: {e(1, 1, "a"), e(2, 1, "b"), e(3, 2, "c")},
		2: {e(3, 2, "c")},
	}); err != nil {
		t.Fatal(err)
	}
	if err := checkCommittedPrefixes(map[uint64][]*raftpb.Entry{1: {e(1, 1, "a"), e(2, 1, "b")}, 2: {e(2, 2, "b")}}); err == nil {
		t.Fatal("different terms at one index not caught")
	}
	if err := checkCommittedPrefixes(map[uint64][]*raftpb.Entry{1: {e(1, 1, "a"), e(2, 1, "b")}, 2: {e(2, 1, "x")}}); err == nil {
		t.Fatal("different data at one index not caught")
	}
}

func TestAckedWriteChecker(t *testing.T) {
	logs := map[uint64]*watchLog{
		1: {From: 1, Events: []watchEvent{{Rev: 2, Key: "a", Value: "x"}, {Rev: 3, Key: "a", Delete: true}}},
		2: {From: 3, Events: []watchEvent{{Rev: 3, Key: "a", Delete: true}}},
	}
	if err := checkAckedWrites([]ackedWrite{{Rev: 2, Key: "a", Value: "x"}, {Rev: 3, Key: "a", Delete: true}}, logs); err != nil {
		t.Fatal(err)
	}
	for _, w := range []ackedWrite{{Rev: 2, Key: "a", Value: "y"}, {Rev: 3, Key: "b", Delete: true}, {Rev: 4, Key: "a", Value: "x"}} {
		if err := checkAckedWrites([]ackedWrite{w}, logs); err == nil {
			t.Fatalf("lost write %+v not caught", w)
		}
	}
}

func TestNetwork(t *testing.T) {
	n := newNetwork()
	n.delay[link{1, 2}] = 2
	mustSend := func(msgs ...*raftpb.Message) {
		t.Helper()
		if err := n.send(msgs); err != nil {
			t.Fatal(err)
		}
	}
	mustSend(msg(1, 2, 1), msg(2, 1, 2))
	if r := n.ready(); len(r) != 1 || n.queue[r[0]].decode().GetIndex() != 2 {
		t.Fatalf("ready before the delay: %v", r)
	}
	n.now += 2
	if r := n.ready(); len(r) != 2 {
		t.Fatalf("ready after the delay: %v", r)
	}
	if m, ok := n.duplicate(0); !ok || m.GetIndex() != 1 || len(n.queue) != 2 {
		t.Fatalf("duplicate: %v %v, %d queued", m, ok, len(n.queue))
	}
	n.partition([]uint64{2})
	if _, ok := n.take(0); ok {
		t.Fatal("a message across the partition was delivered")
	}
	mustSend(msg(1, 2, 3), msg(1, 3, 4))
	if len(n.queue) != 2 {
		t.Fatalf("send across the partition queued: %d queued", len(n.queue))
	}
	n.heal()
	n.dropTo(3)
	if len(n.queue) != 1 {
		t.Fatalf("dropTo(3) left %d, want 1", len(n.queue))
	}
	n.send([]*raftpb.Message{{From: proto.Uint64(1), To: proto.Uint64(2), Type: raftpb.MessageType_MsgSnap.Enum()}})
	n.drop(1)
	if len(n.lostSnaps) != 1 || n.lostSnaps[0] != (link{1, 2}) {
		t.Fatalf("a dropped MsgSnap is not reported: %v", n.lostSnaps)
	}
}

func msg(from, to, index uint64) *raftpb.Message {
	return &raftpb.Message{From: &from, To: &to, Index: &index}
}

// settleUnknown may only use the history to decide what the clients could
// not see: a put found in it happened there (and is then checked like an
// acknowledged one), a put missing from a complete history never happened,
// a delete event nothing else explains is the one unknown delete's, and
// anything it cannot tell stays unknown.
func TestSettleUnknown(t *testing.T) {
	unknown := opOutput{Unknown: true}
	logs := map[uint64]*watchLog{1: {From: 1, Events: []watchEvent{
		{Rev: 2, Key: "a", Value: "x"}, {Rev: 3, Key: "a", Delete: true},
		{Rev: 4, Key: "b", Value: "y"}, {Rev: 5, Key: "b", Delete: true}, {Rev: 6, Key: "b", Value: "z"}, {Rev: 7, Key: "b", Delete: true},
	}}}
	var h history
	h.add(0, put(0, "x"), unknown, 1, 0)
	h.add(1, put(0, "never"), unknown, 2, 0)
	h.add(2, opInput{Kind: opDelete, Key: 0}, unknown, 3, 0)                               // the only one that can have deleted a at 3
	h.add(3, opInput{Kind: opTxn, CmpKey: 1, ThenKey: 1, ThenValue: "w"}, unknown, 4, 0)   // w never written
	h.add(4, opInput{Kind: opDelete, Key: 2}, unknown, 5, 0)                               // c never deleted
	h.add(5, opInput{Kind: opDelete, Key: 1}, unknown, 6, 0)                               // b deleted at 5 or 7: which?
	h.add(6, opInput{Kind: opTxn, CmpKey: 0, ThenKey: 1, ThenDelete: true}, unknown, 7, 0) // the other one
	h.add(7, opInput{Kind: opDelete, Key: 1}, opOutput{Rev: 9, Deleted: 1}, 8, 9)          // a known one elsewhere
	ops := settleUnknown(h.ops, logs)
	var got []string
	for _, op := range ops {
		got = append(got, describeOp(op.Input.(opInput), op.Output.(opOutput)))
	}
	want := []string{
		describeOp(put(0, "x"), opOutput{Rev: 2}),
		describeOp(opInput{Kind: opDelete, Key: 0}, opOutput{Rev: 3, Deleted: 1}),
		describeOp(opInput{Kind: opDelete, Key: 1}, unknown),
		describeOp(opInput{Kind: opTxn, CmpKey: 0, ThenKey: 1, ThenDelete: true}, unknown),
		describeOp(opInput{Kind: opDelete, Key: 1}, opOutput{Rev: 9, Deleted: 1}),
	}
	if !slices.Equal(got, want) {
		t.Fatalf("settled:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// A txn whose delete found nothing wrote no revision: the delete event
	// at the revision it answered with is someone else's (found by a
	// long run, where this was read the other way).
	var h2 history
	h2.add(0, opInput{Kind: opDelete, Key: 0}, unknown, 1, 0)
	h2.add(1, opInput{Kind: opTxn, CmpKey: 2, ThenKey: 0, ThenDelete: true}, opOutput{Rev: 3, Succeeded: true}, 5, 6)
	if ops := settleUnknown(h2.ops, logs); len(ops) != 2 || ops[0].Output.(opOutput) != (opOutput{Rev: 3, Deleted: 1}) {
		t.Fatalf("the unknown delete behind a txn that deleted nothing: %v", ops)
	}
	// A history that contradicts the found revision is caught.
	ops = append(ops, porcupineOp(8, get(0), opOutput{Rev: 2, Found: true, Value: "x", Mod: 3}, 5, 6))
	if _, err := checkLinearizable(ops, 10*time.Second, false); err == nil {
		t.Fatal("a get at the wrong mod revision of a settled put not caught")
	}
	// With no complete history, nothing is settled.
	logs[1].From = 3
	if ops := settleUnknown(h.ops, logs); len(ops) != len(h.ops) {
		t.Fatalf("%d ops left from an incomplete history, want %d", len(ops), len(h.ops))
	}
}

func porcupineOp(client int, in opInput, out opOutput, call, ret int64) porcupine.Operation {
	var h history
	h.add(client, in, out, call, ret)
	return h.ops[0]
}

func TestSerialReadChecker(t *testing.T) {
	logs := map[uint64]*watchLog{1: {From: 1, Events: []watchEvent{{Rev: 2, Key: "a", Value: "x"}, {Rev: 3, Key: "b", Value: "y"}, {Rev: 4, Key: "a", Delete: true}}}}
	good := []serialRead{
		{Member: 1, Key: "a", Rev: 1},
		{Member: 2, Key: "a", Rev: 2, Found: true, Value: "x", Mod: 2},
		{Member: 2, Key: "a", Rev: 3, Found: true, Value: "x", Mod: 2},
		{Member: 3, Key: "a", Rev: 4},
		{Member: 3, Key: "b", Rev: 4, Found: true, Value: "y", Mod: 3},
	}
	if err := checkSerialReads(good, logs); err != nil {
		t.Fatal(err)
	}
	for _, r := range []serialRead{
		{Member: 1, Key: "a", Rev: 3},                                  // missing where the history has it
		{Member: 1, Key: "a", Rev: 4, Found: true, Value: "x", Mod: 2}, // a delete not seen at its revision
		{Member: 1, Key: "b", Rev: 3, Found: true, Value: "z", Mod: 3}, // another value
		{Member: 1, Key: "b", Rev: 5, Found: true, Value: "y", Mod: 3}, // a revision the history never reached
	} {
		if err := checkSerialReads([]serialRead{r}, logs); err == nil {
			t.Fatalf("bad read %+v not caught", r)
		}
	}
}
