package cluster

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// BenchmarkCluster: clientv3 requests to a 3-member cluster on loopback
// (logs on memfs, where fsync costs nothing), from concurrent goroutines
// spread over clients of the three members.
//
//	go test -run '^$' -bench Cluster -benchtime 3000x ./cluster/
func BenchmarkCluster(b *testing.B) {
	c := newTestCluster(b, 3, func(c *testCluster) { c.tick = 100 * time.Millisecond })
	c.leader()
	clis := []*clientv3.Client{c.client(0), c.client(1), c.client(2)}
	ctx := context.Background()
	if _, err := clis[0].Put(ctx, "k", "v"); err != nil {
		b.Fatal(err)
	}
	ops := map[string]func(cli *clientv3.Client, i int64) error{
		"put": func(cli *clientv3.Client, i int64) error {
			_, err := cli.Put(ctx, fmt.Sprint("k", i%1000), "value")
			return err
		},
		"get": func(cli *clientv3.Client, i int64) error { _, err := cli.Get(ctx, "k"); return err },
		"serializable-get": func(cli *clientv3.Client, i int64) error {
			_, err := cli.Get(ctx, "k", clientv3.WithSerializable())
			return err
		},
	}
	for _, name := range []string{"put", "get", "serializable-get"} {
		op := ops[name]
		b.Run(name, func(b *testing.B) {
			var n atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					if err := op(clis[i%3], i); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
