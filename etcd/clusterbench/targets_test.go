package clusterbench

import (
	"testing"

	"github.com/revkv/revkv/etcd/etcdtest"
	"github.com/revkv/revkv/etcd/internal/embedetcd"
)

// targets are measured in this order. etcd runs with fsync off (its
// directory is a throwaway); "revkv-single" is the single-member server
// without raft (etcdtest on a loopback port), the cost of a put without
// replication.
var targets = []target{
	{"etcd-3", func(tb testing.TB) []string { return embedetcd.StartCluster(tb, 3).Endpoints() }},
	{"etcd-1", func(tb testing.TB) []string { return []string{embedetcd.Start(tb).Endpoint} }},
	{"revkv-single", func(tb testing.TB) []string {
		return []string{etcdtest.StartEndpoint(tb, etcdtest.Config{}).Endpoint()}
	}},
}
