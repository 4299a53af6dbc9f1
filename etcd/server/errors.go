package server

import (
	"context"
	"errors"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/revkv/revkv/kv"
)

// grpcErrors maps revkv's errors to the gRPC errors etcd returns for the
// same failure, in the order they are tried: an error that wraps several
// (kv.ErrTxnFailed wraps the op's failure) gets the first that matches.
var grpcErrors = []struct{ from, to error }{
	{kv.ErrCompacted, rpctypes.ErrGRPCCompacted},
	{kv.ErrFutureRev, rpctypes.ErrGRPCFutureRev},
	{kv.ErrEmptyKey, rpctypes.ErrGRPCEmptyKey},
	{kv.ErrKeyNotFound, rpctypes.ErrGRPCKeyNotFound},
	{kv.ErrValueProvided, rpctypes.ErrGRPCValueProvided},
	{kv.ErrLeaseProvided, rpctypes.ErrGRPCLeaseProvided},
	{kv.ErrDuplicateKey, rpctypes.ErrGRPCDuplicateKey},
	{kv.ErrTooManyOps, rpctypes.ErrGRPCTooManyOps},
	{kv.ErrInvalidSortOption, rpctypes.ErrGRPCInvalidSortOption},
	{kv.ErrLeaseNotFound, rpctypes.ErrGRPCLeaseNotFound},
	{kv.ErrLeaseExists, rpctypes.ErrGRPCLeaseExist},
	{kv.ErrLeaseTTLTooLarge, rpctypes.ErrGRPCLeaseTTLTooLarge},
	{kv.ErrTooLarge, rpctypes.ErrGRPCRequestTooLarge},
	{kv.ErrClosed, rpctypes.ErrGRPCStopped},
	{kv.ErrStopped, rpctypes.ErrGRPCStopped},
	{kv.ErrCorrupt, rpctypes.ErrGRPCCorrupt},
	// A Replicated backend's.
	{ErrNoLeader, rpctypes.ErrGRPCNoLeader},
	{ErrNotLeader, rpctypes.ErrGRPCNotLeader},
	{ErrLeaderChanged, rpctypes.ErrGRPCLeaderChanged},
	{ErrTimeout, rpctypes.ErrGRPCTimeout},
	{ErrStopped, rpctypes.ErrGRPCStopped},
	{ErrMemberNotFound, rpctypes.ErrGRPCMemberNotFound},
	{ErrMemberExists, rpctypes.ErrGRPCMemberExist},
	{ErrPeerURLExists, rpctypes.ErrGRPCPeerURLExist},
	{ErrMemberNotLearner, rpctypes.ErrGRPCMemberNotLearner},
	{ErrLearnerNotReady, rpctypes.ErrGRPCLearnerNotReady},
	{ErrTooManyLearners, rpctypes.ErrGRPCTooManyLearners},
	{ErrUnhealthy, rpctypes.ErrGRPCUnhealthy},
	{ErrNotEnoughStartedMembers, rpctypes.ErrGRPCMemberNotEnoughStarted},
	{ErrBadLeaderTransferee, rpctypes.ErrGRPCBadLeaderTransferee},
	{ErrNotSupportedForLearner, rpctypes.ErrGRPCNotSupportedForLearner},
}

// toGRPC returns the gRPC error etcd would return for err. Context errors
// pass unchanged (gRPC turns them into Canceled and DeadlineExceeded, as
// etcd lets it); an error with no etcd equivalent is codes.Unknown with
// its text, as etcd reports one.
func toGRPC(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	for _, m := range grpcErrors {
		if errors.Is(err, m.from) {
			return m.to
		}
	}
	return status.Error(codes.Unknown, err.Error())
}
