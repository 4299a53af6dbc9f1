package member

import (
	"fmt"
	"testing"
)

// BenchmarkPut3 measures a put proposed on the leader of 3 members on
// memory storage, through commit and apply on every member: the cost of
// the member layer and raft on one goroutine, no I/O, no network.
//
//	cd etcd && go test -run '^$' -bench Put3 -benchtime 2000x ./member/
func BenchmarkPut3(b *testing.B) {
	c := newTestCluster(b, 3, nil)
	lead := c.leader()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		p, err := c.members[lead].Propose(putReq(fmt.Sprintf("key%09d", i), "value-of-some-length"))
		if err != nil {
			b.Fatal(err)
		}
		c.deliver()
		if _, err := p.Result(); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
