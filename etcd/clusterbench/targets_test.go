package clusterbench

import (
	"testing"

	"github.com/revkv/revkv/etcd/etcdtest"
	"github.com/revkv/revkv/etcd/internal/embedetcd"
	"github.com/revkv/revkv/etcd/internal/revkvcluster"
	"go.etcd.io/etcd/server/v3/embed"
)

// targets are measured in this order. Every cluster runs with etcd's
// default timing (100 ms heartbeat, 1 s election) and writes its raft log
// to a temporary directory without fsync (etcd's --unsafe-no-fsync; revkv
// through an FS whose Sync does nothing), as a test's throwaway cluster
// would: the comparison is of the software, not of the disk's flushes.
// "revkv-single" is the single-member server without raft (etcdtest on a
// loopback port, its store in memory): the cost of a put without
// replication. The "-fsync" targets sync their logs as a real deployment
// does (etcd its WAL, revkv its raft log), on the machine's disk.
var targets = []target{
	{"etcd-3", func(tb testing.TB) []string { return embedetcd.StartCluster(tb, 3).Endpoints() }},
	{"revkv-1", revkv(1)},
	{"revkv-3", revkv(3)},
	{"revkv-5", revkv(5)},
	{"etcd-1", func(tb testing.TB) []string { return []string{embedetcd.Start(tb).Endpoint} }},
	{"revkv-single", func(tb testing.TB) []string {
		return []string{etcdtest.StartEndpoint(tb, etcdtest.Config{}).Endpoint()}
	}},
	{"etcd-3-fsync", func(tb testing.TB) []string {
		return embedetcd.StartCluster(tb, 3, func(cfg *embed.Config) { cfg.UnsafeNoFsync = false }).Endpoints()
	}},
	{"revkv-3-fsync", func(tb testing.TB) []string {
		return revkvcluster.Start(tb, 3, revkvcluster.Options{Fsync: true}).Endpoints()
	}},
}

func revkv(n int) func(testing.TB) []string {
	return func(tb testing.TB) []string { return revkvcluster.Start(tb, n, revkvcluster.Options{}).Endpoints() }
}
