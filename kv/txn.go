package kv

// A conditional txn, as etcd's v3 API has it: if every Compare holds, the
// Then operations run, otherwise the Else operations; all of it at one
// revision, or nothing. Package engine executes them (Store.Txn); a server
// maps etcd's protobufs onto these types field by field.

// CompareTarget is the field of a key that a Compare reads.
type CompareTarget uint8

const (
	CompareVersion CompareTarget = iota
	CompareCreate
	CompareMod
	CompareValue
	CompareLease
)

// CompareResult is the relation a Compare asks for between the key's field
// (on the left) and the Compare's operand (on the right).
type CompareResult uint8

const (
	CompareEqual CompareResult = iota
	CompareGreater
	CompareLess
	CompareNotEqual
)

// Compare is one condition of a txn.
//
// Key and End select keys as an Op does: End nil is the single key; a
// non-nil End is the range [Key, End), with an empty End or "\x00" meaning
// every key >= Key. Every key live in the range must satisfy the condition.
// A missing key, or an empty range, compares as a KeyValue of zeros: its
// version, revisions and lease are 0, and a value compare fails whatever
// the result asked for (etcd's rule: no value is comparable to a missing
// one).
type Compare struct {
	Key, End []byte
	Target   CompareTarget
	Result   CompareResult
	// The operand: the one field that Target names is read.
	Value          []byte
	Version        int64
	CreateRevision int64
	ModRevision    int64
	Lease          int64
}

// OpType says what an Op does.
type OpType uint8

const (
	OpRange OpType = iota
	OpPut
	OpDeleteRange
	OpTxn
)

// String returns the op's name.
func (t OpType) String() string {
	switch t {
	case OpRange:
		return "range"
	case OpPut:
		return "put"
	case OpDeleteRange:
		return "delete"
	case OpTxn:
		return "txn"
	}
	return "op?"
}

// Op is one operation of a txn branch. Which fields it reads depends on
// Type; the others must be zero.
//
// Key and End select keys as in engine.Store.Range (End nil: the single
// key; empty: every key >= Key; otherwise [Key, End)), and End "\x00"
// also means every key >= Key, as etcd's clients spell it. A Put reads
// only Key.
type Op struct {
	Type     OpType
	Key, End []byte

	// Range reads the keys with these options. Its Rev, if above 0, must
	// be a revision the store holds.
	Range RangeOptions

	// Put writes Value (with Put's options).
	Value []byte
	Put   PutOptions
	// Delete holds DeleteRange's options.
	Delete DeleteOptions

	// Txn is a nested txn (OpTxn). Its compares, like the outer ones, read
	// the store as it was before the txn.
	Txn *TxnRequest
}

// RangeOp returns an Op that reads the keys selected by key and end.
func RangeOp(key, end []byte, opts RangeOptions) Op {
	return Op{Type: OpRange, Key: key, End: end, Range: opts}
}

// PutOp returns an Op that sets key to value.
func PutOp(key, value []byte) Op { return Op{Type: OpPut, Key: key, Value: value} }

// DeleteOp returns an Op that deletes the keys selected by key and end.
func DeleteOp(key, end []byte) Op { return Op{Type: OpDeleteRange, Key: key, End: end} }

// TxnOp returns an Op that runs a nested txn.
func TxnOp(r *TxnRequest) Op { return Op{Type: OpTxn, Txn: r} }

// PutOptions are a put's options beyond key and value.
type PutOptions struct {
	// Lease is the lease ID recorded on the new KeyValue (0: none).
	Lease int64
	// IgnoreValue keeps the key's current value and IgnoreLease its
	// current lease: the key must exist (ErrKeyNotFound), and the put's
	// value or lease must then be empty (ErrValueProvided,
	// ErrLeaseProvided).
	IgnoreValue bool
	IgnoreLease bool
	// PrevKV returns the key's value before the put.
	PrevKV bool
}

// Check returns the error for options that contradict the value given.
func (o *PutOptions) Check(value []byte) error {
	switch {
	case o.IgnoreValue && len(value) != 0:
		return ErrValueProvided
	case o.IgnoreLease && o.Lease != 0:
		return ErrLeaseProvided
	}
	return nil
}

// DeleteOptions are a DeleteRange's options beyond its range.
type DeleteOptions struct {
	// PrevKV returns the deleted keys' values.
	PrevKV bool
}

// TxnRequest is a conditional txn: if every Compare holds (an empty list
// holds), Then runs, otherwise Else.
//
// Validation, before anything runs (any failure changes nothing):
//   - every Compare and Op has a non-empty Key (ErrEmptyKey);
//   - no more than the store's limit of compares, or of ops in either
//     branch; a nested txn's limit is the outer limit less the outer
//     txn's largest list (ErrTooManyOps);
//   - sort options are defined values (ErrInvalidSortOption), IgnoreValue
//     and IgnoreLease puts give no value or lease (ErrValueProvided,
//     ErrLeaseProvided);
//   - no key is written twice in a branch, counting the puts of nested
//     txns, and no put is inside a range deleted in the same branch or an
//     enclosing one; the Then and Else of one nested txn may put the same
//     key, since only one of them runs (ErrDuplicateKey). As in etcd, a
//     delete whose End is "\x00" counts as deleting no key here.
//
// Then the compares choose the branches (all of them, nested txns' too, read
// the store as it was before the txn, as etcd evaluates them), and the
// chosen ops are checked against the store:
// range revisions (ErrFutureRev, ErrCompacted), IgnoreValue and
// IgnoreLease puts of missing keys (ErrKeyNotFound), sizes (ErrTooLarge).
type TxnRequest struct {
	Compare []Compare
	Then    []Op
	Else    []Op
}

// ReadOnly reports whether no op of either branch, nested txns included,
// writes: such a txn changes nothing whichever branch runs, so a store
// serves it like a range, and a replicated store need not put it in its
// log.
func (r *TxnRequest) ReadOnly() bool { return readOnlyOps(r.Then) && readOnlyOps(r.Else) }

func readOnlyOps(ops []Op) bool {
	for i := range ops {
		switch ops[i].Type {
		case OpRange:
		case OpTxn:
			if ops[i].Txn != nil && !ops[i].Txn.ReadOnly() {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// TxnResponse is the outcome of a TxnRequest.
type TxnResponse struct {
	// Succeeded reports whether the compares held (Then ran).
	Succeeded bool
	// Rev is the store's revision after the txn: the txn's revision if it
	// changed something, else the revision it read at.
	Rev int64
	// Responses has one entry per op of the branch that ran, in order.
	Responses []OpResponse
}

// OpResponse is the outcome of one Op: the field its Type names is set.
type OpResponse struct {
	Type   OpType
	Range  RangeResult
	Put    PutResult
	Delete DeleteResult
	Txn    *TxnResponse
}

// PutResult is what a put returns.
type PutResult struct {
	// Rev is the revision of the put.
	Rev int64
	// PrevKV is the key's value before the put, if PrevKV was asked for
	// and the key existed.
	PrevKV *KeyValue
}

// DeleteResult is what a DeleteRange returns.
type DeleteResult struct {
	// Deleted is how many keys were deleted.
	Deleted int64
	// Rev is the revision of the delete, or, if nothing was deleted, the
	// store's (the txn's) revision.
	Rev int64
	// PrevKVs are the deleted keys' values, in key order, if PrevKV was
	// asked for.
	PrevKVs []KeyValue
}
