// Package difftest is the differential test of issue 13: the same random
// clientv3 operations against etcd v3.7.3 itself (embed, in-process, one
// member in a temporary directory) and against revkv's etcd server,
// compared response by response (results, errors, header revisions) and
// watch event by watch event. Revisions are compared relative to the
// start of each rapid check and lease IDs by grant order; the few
// normalizations and known differences are documented where they apply.
//
//	go test ./difftest                                   # CI: ~750 steps, a few seconds
//	go test ./difftest -difftest.long -timeout 2h        # 1000 checks of up to 200 steps
//	go test ./difftest -run TestRevkvAgainstEtcd -difftest.strict   # known differences too
package difftest

import (
	"testing"

	"github.com/revkv/revkv/etcd/etcdtest"
	"github.com/revkv/revkv/etcd/internal/embedetcd"
)

// TestRevkvAgainstEtcd is the differential test of issue 13: random
// clientv3 operations against etcd v3.7.3 (embed, in-process) and
// revkv's server (etcdtest's in-memory fake), compared response by
// response. Long run:
//
//	cd etcd && go test ./difftest -run TestRevkvAgainstEtcd -difftest.long -timeout 2h
func TestRevkvAgainstEtcd(t *testing.T) {
	a := &side{name: "etcd", c: embedetcd.Start(t).Client(t)}
	b := &side{name: "revkv", c: etcdtest.NewClient(t)}
	run(t, a, b)
}

// TestEtcdAgainstEtcd runs the harness with etcd on both sides: any
// difference it reports is the harness's own nondeterminism (lease IDs,
// tie orders, clocks), not a server's, so the renderings stay honest. It
// runs with -difftest.long only.
func TestEtcdAgainstEtcd(t *testing.T) {
	if !*long {
		t.Skip("runs with -difftest.long")
	}
	a := &side{name: "etcd1", c: embedetcd.Start(t).Client(t)}
	b := &side{name: "etcd2", c: embedetcd.Start(t).Client(t)}
	run(t, a, b)
}
