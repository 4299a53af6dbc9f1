package member

import (
	"fmt"

	"github.com/revkv/revkv/kv"
)

// Request is a change to the replicated state: exactly one field is set.
// Propose puts it in the raft log; every member applies it, in log order,
// to its DB. Pending.Result gives the proposer the outcome:
//
//	Txn          *kv.TxnResponse (puts and deletes are 1-op txns)
//	Compact      nil
//	LeaseGrant   revkv.Lease (the lease as granted)
//	LeaseRevoke  int64, the revision after the revoke
//
// or the error the DB returned (a kv error), the same on every member.
type Request struct {
	Txn *kv.TxnRequest
	// Compact is the revision to compact the history below.
	Compact *int64
	// LeaseGrant grants a lease. Its ID is chosen by the proposer (0: the
	// DB picks the next free ID, the same on every member).
	LeaseGrant *LeaseGrant
	// LeaseRevoke revokes the lease with this ID (the leader proposes one
	// for each lease that expires).
	LeaseRevoke int64

	// attrs publishes a member's name and client URLs (Member.Publish):
	// logged as a request, not a ConfChange, as raft takes one ConfChange
	// at a time and every member publishes when it starts.
	attrs *Peer
}

// LeaseGrant is a lease grant request.
type LeaseGrant struct {
	ID  int64 // 0: the next free ID
	TTL int64 // seconds
}

// requestKind is the field a Request sets; the codec writes it.
type requestKind uint8

const (
	kindTxn requestKind = iota + 1
	kindCompact
	kindLeaseGrant
	kindLeaseRevoke
	kindAttrs
)

// kind returns the one field req sets, or ErrInvalidRequest (also for a
// txn the entry codec cannot carry).
func (req *Request) kind() (requestKind, error) {
	var k requestKind
	n := 0
	if req.Txn != nil {
		k, n = kindTxn, n+1
	}
	if req.Compact != nil {
		k, n = kindCompact, n+1
	}
	if req.LeaseGrant != nil {
		k, n = kindLeaseGrant, n+1
	}
	if req.LeaseRevoke != 0 {
		k, n = kindLeaseRevoke, n+1
	}
	if req.attrs != nil {
		k, n = kindAttrs, n+1
	}
	if n != 1 {
		return 0, fmt.Errorf("request sets %d fields, not one: %w", n, ErrInvalidRequest)
	}
	if k == kindTxn {
		if err := encodable(req.Txn, 0); err != nil {
			return 0, fmt.Errorf("txn the log cannot carry: %w: %w", err, ErrInvalidRequest)
		}
	}
	return k, nil
}

// requestID names a proposal: the proposing member, the incarnation of it
// that proposed (a random number drawn at Open), and a counter. Only the
// proposer reads it: it resolves its Pending when it applies the entry
// (if the bytes are the ones it proposed); the others ignore it.
type requestID struct {
	Member, Epoch, Seq uint64
}
