package etcdtest_test

import (
	"context"
	"fmt"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/revkv/revkv/etcd/etcdtest"
)

// The cost of one operation through each fake: in-process, with no
// connection (StartInProcess, NewInProcessClient), over an in-memory
// connection (Start, NewClient) and over a loopback TCP port
// (StartEndpoint, NewEndpoint).
//
//	go test -run '^$' -bench . -benchtime 2000x ./etcdtest/

var fakes = []struct {
	name  string
	start func(testing.TB, etcdtest.Config) *etcdtest.Fake
}{
	{"inproc", etcdtest.StartInProcess},
	{"bufconn", etcdtest.Start},
	{"loopback", etcdtest.StartEndpoint},
}

func BenchmarkPut(b *testing.B) {
	for _, fk := range fakes {
		b.Run(fk.name, func(b *testing.B) {
			cli := fk.start(b, etcdtest.Config{}).Client(clientv3.Config{})
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
	for _, fk := range fakes {
		b.Run(fk.name, func(b *testing.B) {
			f := fk.start(b, etcdtest.Config{})
			cli := f.Client(clientv3.Config{})
			for i := range 1000 {
				f.DB.Put([]byte(fmt.Sprintf("key%06d", i)), []byte("value"))
			}
			ctx := context.Background()
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

func BenchmarkTxn(b *testing.B) {
	for _, fk := range fakes {
		b.Run(fk.name, func(b *testing.B) {
			cli := fk.start(b, etcdtest.Config{}).Client(clientv3.Config{})
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

// BenchmarkWatchDelivery: the time from a write (made directly on the DB)
// to its event reaching a clientv3 watch.
func BenchmarkWatchDelivery(b *testing.B) {
	for _, fk := range fakes {
		b.Run(fk.name, func(b *testing.B) {
			f := fk.start(b, etcdtest.Config{})
			cli := f.Client(clientv3.Config{})
			ctx := context.Background()
			wc := cli.Watch(ctx, "w")
			f.DB.Put([]byte("w"), []byte("0"))
			<-wc
			b.ReportAllocs()
			for b.Loop() {
				f.DB.Put([]byte("w"), []byte("v"))
				if r := <-wc; len(r.Events) == 0 {
					b.Fatal("no event")
				}
			}
		})
	}
}

// BenchmarkStart: the start-up cost of a fake with a client, and with the
// client's first request (which dials).
func BenchmarkStart(b *testing.B) {
	for _, fk := range fakes {
		b.Run(fk.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				f := fk.start(b, etcdtest.Config{})
				f.Client(clientv3.Config{})
				f.Close()
			}
		})
		b.Run(fk.name+"/first-request", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				f := fk.start(b, etcdtest.Config{})
				if _, err := f.Client(clientv3.Config{}).Get(context.Background(), "k"); err != nil {
					b.Fatal(err)
				}
				f.Close()
			}
		})
	}
}
