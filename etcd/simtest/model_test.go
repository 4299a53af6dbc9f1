package simtest

import (
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// The clients' view of the cluster, as porcupine checks it: a store of
// nKeys keys with etcd's revision rules. Every write that changes something
// bumps the store revision by one; a delete of a missing key and a txn
// whose branch writes nothing do not. Outputs carry the revision the member
// answered with, so a history is linearizable only if some order of the
// operations also explains every revision the clients saw.

// nKeys is the size of the simulated key space: small, so operations
// conflict often.
const nKeys = 3

// keyName is the key the model's index k stands for.
func keyName(k int) string { return string(rune('a' + k)) }

type opKind uint8

const (
	opGet opKind = iota
	opPut
	opDelete
	opTxn
)

// cmpTarget is what a txn compares.
type cmpTarget uint8

const (
	cmpValue cmpTarget = iota // the key's value equals CmpValue (a missing key never does)
	cmpMod                    // the key's mod revision equals CmpMod (0: missing)
)

// opInput is one client operation. A txn is "if Cmp then (put ThenValue |
// delete) ThenKey": its else branch is empty.
type opInput struct {
	Kind  opKind
	Key   int
	Value string // put

	CmpKey     int
	CmpTarget  cmpTarget
	CmpValue   string
	CmpMod     int64
	ThenKey    int
	ThenValue  string
	ThenDelete bool
}

// opOutput is what the member answered. Unknown marks an operation whose
// fate the client never learnt (leader change, crash, still pending at the
// end): it may have happened or not, and its other fields mean nothing.
type opOutput struct {
	Unknown   bool
	Rev       int64 // the header revision: the store's after the op
	Found     bool  // get
	Value     string
	Mod       int64
	Deleted   int64 // delete, txn-delete
	Succeeded bool  // txn
}

// keyState is one key in the model; the zero value is a missing key.
type keyState struct {
	Present bool
	Value   string
	Mod     int64
}

// kvState is the model's state: comparable with ==, copied by value.
type kvState struct {
	Rev  int64
	Keys [nKeys]keyState
}

// apply returns the state after in and the output a correct member gives.
func (s kvState) apply(in opInput) (kvState, opOutput) {
	switch in.Kind {
	case opGet:
		k := s.Keys[in.Key]
		return s, opOutput{Rev: s.Rev, Found: k.Present, Value: k.Value, Mod: k.Mod}
	case opPut:
		s.Rev++
		s.Keys[in.Key] = keyState{Present: true, Value: in.Value, Mod: s.Rev}
		return s, opOutput{Rev: s.Rev}
	case opDelete:
		if !s.Keys[in.Key].Present {
			return s, opOutput{Rev: s.Rev}
		}
		s.Rev++
		s.Keys[in.Key] = keyState{}
		return s, opOutput{Rev: s.Rev, Deleted: 1}
	case opTxn:
		if !s.holds(in) {
			return s, opOutput{Rev: s.Rev}
		}
		if in.ThenDelete {
			var del opOutput
			s, del = s.apply(opInput{Kind: opDelete, Key: in.ThenKey})
			return s, opOutput{Rev: s.Rev, Succeeded: true, Deleted: del.Deleted}
		}
		s, _ = s.apply(opInput{Kind: opPut, Key: in.ThenKey, Value: in.ThenValue})
		return s, opOutput{Rev: s.Rev, Succeeded: true}
	}
	panic(fmt.Sprintf("simtest: unknown op kind %d", in.Kind))
}

// holds reports whether a txn's compare holds in s.
func (s kvState) holds(in opInput) bool {
	k := s.Keys[in.CmpKey]
	if in.CmpTarget == cmpValue {
		return k.Present && k.Value == in.CmpValue
	}
	return k.Mod == in.CmpMod
}

// kvModel is the porcupine model of the store.
var kvModel = porcupine.Model{
	Init: func() any { return kvState{Rev: 1} }, // an empty store is at revision 1
	Step: func(state, input, output any) (bool, any) {
		next, want := state.(kvState).apply(input.(opInput))
		got := output.(opOutput)
		if got.Unknown {
			return true, next
		}
		return got == want, next
	},
	Equal: func(a, b any) bool { return a.(kvState) == b.(kvState) },
	DescribeOperation: func(input, output any) string {
		return describeOp(input.(opInput), output.(opOutput))
	},
	DescribeState: func(state any) string { return fmt.Sprint(state.(kvState)) },
}

func describeOp(in opInput, out opOutput) string {
	var b strings.Builder
	switch in.Kind {
	case opGet:
		fmt.Fprintf(&b, "get(%s)", keyName(in.Key))
	case opPut:
		fmt.Fprintf(&b, "put(%s=%s)", keyName(in.Key), in.Value)
	case opDelete:
		fmt.Fprintf(&b, "delete(%s)", keyName(in.Key))
	case opTxn:
		if in.CmpTarget == cmpValue {
			fmt.Fprintf(&b, "txn(%s==%q ? ", keyName(in.CmpKey), in.CmpValue)
		} else {
			fmt.Fprintf(&b, "txn(mod(%s)==%d ? ", keyName(in.CmpKey), in.CmpMod)
		}
		if in.ThenDelete {
			fmt.Fprintf(&b, "delete(%s))", keyName(in.ThenKey))
		} else {
			fmt.Fprintf(&b, "put(%s=%s))", keyName(in.ThenKey), in.ThenValue)
		}
	}
	if out.Unknown {
		b.WriteString(" -> ?")
	} else {
		fmt.Fprintf(&b, " -> %+v", out)
	}
	return b.String()
}

// history records the clients' operations for porcupine. Time is the
// simulation's step counter: an operation is called at the step it was
// issued and returns at the step its answer was observed (at or after the
// member resolved it), so its real interval is inside the recorded one.
type history struct {
	ops []porcupine.Operation
}

// add records a completed or unknown operation. An unknown one returns at
// the end of time, so porcupine may also place it after everything (as if
// it never happened).
func (h *history) add(client int, in opInput, out opOutput, call, ret int64) {
	if out.Unknown {
		ret = math.MaxInt64
	}
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
}

// checkLinearizable runs porcupine on the history. It fails only on a
// definite violation: a check that runs out of time is reported as not
// checked (ok, with checked false), never as a pass.
//
// With visualize, a violation also writes porcupine's visualization
// (revkv-sim-porcupine.html in the temporary directory) and names it in
// the error.
func checkLinearizable(ops []porcupine.Operation, timeout time.Duration, visualize bool) (checked bool, err error) {
	res, info := porcupine.CheckOperationsVerbose(kvModel, ops, timeout)
	switch res {
	case porcupine.Ok:
		return true, nil
	case porcupine.Unknown:
		return false, nil
	}
	var b strings.Builder
	b.WriteString("client history is not linearizable; a longest linearizable prefix:\n")
	for _, part := range info.PartialLinearizationsOperations() {
		if len(part) == 0 {
			continue
		}
		for _, op := range part[0] {
			fmt.Fprintf(&b, "  %s [%d,%d]\n", describeOp(op.Input.(opInput), op.Output.(opOutput)), op.Call, op.Return)
		}
	}
	b.WriteString("all operations:\n")
	for _, op := range ops {
		fmt.Fprintf(&b, "  c%d %s [%d,%d]\n", op.ClientId, describeOp(op.Input.(opInput), op.Output.(opOutput)), op.Call, op.Return)
	}
	if visualize {
		// One file, rewritten by each failing run while rapid shrinks: it
		// ends up showing the last (the shrunk) failure.
		name := filepath.Join(os.TempDir(), "revkv-sim-porcupine.html")
		if porcupine.VisualizePath(kvModel, info, name) == nil {
			fmt.Fprintf(&b, "porcupine's visualization: %s\n", name)
		}
	}
	return true, fmt.Errorf("%s", b.String())
}

// settleUnknown uses the members' watch history (checked identical on
// every member) to learn the fate of writes whose outcome the client never
// saw; without it porcupine's search grows exponentially with them. With
// a complete history (from revision 1):
//
//   - every put writes a value of its own: a put or txn-put whose value is
//     in the history happened at that revision; one whose value is not had
//     no effect (never ran, or a txn whose compare failed) and is dropped;
//   - a delete event no known operation accounts for, on a key only one
//     unknown delete (or txn-delete) could have made, is that operation's;
//     unknown deletes of a key with no such event had no effect (dropped).
//
// Anything ambiguous stays unknown.
func settleUnknown(ops []porcupine.Operation, logs map[uint64]*watchLog) []porcupine.Operation {
	var ref *watchLog
	for _, id := range slices.Sorted(maps.Keys(logs)) {
		if logs[id].From <= 1 {
			ref = logs[id] // the histories are identical: one complete one is enough
			break
		}
	}
	if ref == nil {
		return ops
	}
	putAt := map[string][]int64{}   // value -> revisions written
	deletes := map[string][]int64{} // key -> revisions of its delete events
	for _, e := range ref.Events {
		if e.Delete {
			deletes[e.Key] = append(deletes[e.Key], e.Rev)
		} else {
			putAt[e.Value] = append(putAt[e.Value], e.Rev)
		}
	}
	deleted := func(in opInput) (key string, ok bool) {
		switch {
		case in.Kind == opDelete:
			return keyName(in.Key), true
		case in.Kind == opTxn && in.ThenDelete:
			return keyName(in.ThenKey), true
		}
		return "", false
	}
	// The delete events known operations account for, and the unknown
	// operations that may have made the others.
	known := map[string]map[int64]bool{}
	unknownDeletes := map[string]int{}
	for _, op := range ops {
		in, o := op.Input.(opInput), op.Output.(opOutput)
		key, ok := deleted(in)
		switch {
		case !ok:
		case o.Unknown:
			unknownDeletes[key]++
		case o.Deleted > 0: // a txn that deleted nothing wrote no revision
			if known[key] == nil {
				known[key] = map[int64]bool{}
			}
			known[key][o.Rev] = true
		}
	}
	unexplained := func(key string) []int64 {
		var revs []int64
		for _, rev := range deletes[key] {
			if !known[key][rev] {
				revs = append(revs, rev)
			}
		}
		return revs
	}
	var out []porcupine.Operation
	for _, op := range ops {
		in, o := op.Input.(opInput), op.Output.(opOutput)
		if !o.Unknown {
			out = append(out, op)
			continue
		}
		if key, ok := deleted(in); ok {
			revs := unexplained(key)
			switch {
			case len(revs) == 0:
				continue // deleted nothing: no effect
			case len(revs) == 1 && unknownDeletes[key] == 1:
				op.Output = opOutput{Rev: revs[0], Deleted: 1, Succeeded: in.Kind == opTxn}
			}
			out = append(out, op)
			continue
		}
		value := in.Value
		if in.Kind == opTxn {
			value = in.ThenValue
		}
		switch revs := putAt[value]; len(revs) {
		case 0:
			continue // never written: no effect
		case 1:
			op.Output = opOutput{Rev: revs[0], Succeeded: in.Kind == opTxn}
		}
		out = append(out, op)
	}
	return out
}
