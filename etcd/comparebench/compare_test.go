// Package comparebench measures revkv's etcd server side by side with etcd
// v3.7.3 itself (embed, in-process, in the same run), through the same
// clientv3 calls, so that the figures are ratios on one machine:
//
//	cd etcd && go test -run '^$' -bench . -benchtime 2000x ./comparebench/
//
// Targets: the etcdtest fake on an in-memory connection ("bufconn"), the
// fake on a loopback TCP port ("loopback", the same server the revkv-etcd
// command runs), and embedded etcd on a loopback port ("etcd", fsync off:
// its directory is a throwaway, as a test's would be).
package comparebench

import (
	"context"
	"fmt"
	"testing"

	"github.com/revkv/revkv/etcd/etcdtest"
	"github.com/revkv/revkv/etcd/internal/embedetcd"
	clientv3 "go.etcd.io/etcd/client/v3"
)

var targets = []struct {
	name string
	// clients starts a server and returns n clients of it.
	clients func(testing.TB, int) []*clientv3.Client
}{
	{"bufconn", func(tb testing.TB, n int) []*clientv3.Client {
		return fakeClients(tb, etcdtest.Start(tb, etcdtest.Config{}), n)
	}},
	{"loopback", func(tb testing.TB, n int) []*clientv3.Client {
		return fakeClients(tb, etcdtest.StartEndpoint(tb, etcdtest.Config{}), n)
	}},
	{"etcd", func(tb testing.TB, n int) []*clientv3.Client {
		e := embedetcd.Start(tb)
		out := make([]*clientv3.Client, n)
		for i := range out {
			out[i] = e.Client(tb)
		}
		return out
	}},
}

func fakeClients(tb testing.TB, f *etcdtest.Fake, n int) []*clientv3.Client {
	out := make([]*clientv3.Client, n)
	for i := range out {
		out[i] = f.Client(clientv3.Config{})
	}
	return out
}

func BenchmarkPut(b *testing.B) {
	for _, tg := range targets {
		b.Run(tg.name, func(b *testing.B) {
			cli := tg.clients(b, 1)[0]
			ctx := context.Background()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := cli.Put(ctx, fmt.Sprintf("key%06d", i%1000), "value"); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

func BenchmarkRange(b *testing.B) {
	for _, tg := range targets {
		b.Run(tg.name, func(b *testing.B) {
			cli := tg.clients(b, 1)[0]
			ctx := context.Background()
			for i := range 1000 {
				if _, err := cli.Put(ctx, fmt.Sprintf("key%06d", i), "value"); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := cli.Get(ctx, fmt.Sprintf("key%06d", i%1000)); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkRange100 reads 100 keys by prefix in one request.
func BenchmarkRange100(b *testing.B) {
	for _, tg := range targets {
		b.Run(tg.name, func(b *testing.B) {
			cli := tg.clients(b, 1)[0]
			ctx := context.Background()
			for i := range 1000 {
				if _, err := cli.Put(ctx, fmt.Sprintf("key%06d", i), "value"); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				r, err := cli.Get(ctx, fmt.Sprintf("key%04d", i%10), clientv3.WithPrefix())
				if err != nil || len(r.Kvs) != 100 {
					b.Fatal(err, len(r.Kvs))
				}
				i++
			}
		})
	}
}

func BenchmarkTxn(b *testing.B) {
	for _, tg := range targets {
		b.Run(tg.name, func(b *testing.B) {
			cli := tg.clients(b, 1)[0]
			ctx := context.Background()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				k := fmt.Sprintf("key%06d", i%1000)
				_, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(k), "<", 1<<40)).
					Then(clientv3.OpPut(k, "v"), clientv3.OpGet(k)).Commit()
				if err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkWatchDelivery is a put by one client and the arrival of its
// event at another client's watch: the write and the delivery, end to end.
func BenchmarkWatchDelivery(b *testing.B) {
	for _, tg := range targets {
		b.Run(tg.name, func(b *testing.B) {
			cs := tg.clients(b, 2)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			wc := cs[1].Watch(ctx, "w", clientv3.WithCreatedNotify())
			<-wc
			b.ReportAllocs()
			for b.Loop() {
				if _, err := cs[0].Put(ctx, "w", "v"); err != nil {
					b.Fatal(err)
				}
				if r := <-wc; len(r.Events) != 1 {
					b.Fatal("no event")
				}
			}
		})
	}
}

// BenchmarkStart is a server's start-up to its first answered request,
// then its shutdown.
func BenchmarkStart(b *testing.B) {
	for _, tg := range targets {
		b.Run(tg.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				tb := &iteration{TB: b}
				if _, err := tg.clients(tb, 1)[0].Get(context.Background(), "k"); err != nil {
					b.Fatal(err)
				}
				tb.cleanup()
			}
		})
	}
}

// iteration is a testing.TB whose Cleanup runs at the end of one
// benchmark iteration instead of the end of the benchmark.
type iteration struct {
	testing.TB
	fns []func()
}

func (it *iteration) Cleanup(f func()) { it.fns = append(it.fns, f) }

func (it *iteration) cleanup() {
	for i := len(it.fns) - 1; i >= 0; i-- {
		it.fns[i]()
	}
	it.fns = nil
}
