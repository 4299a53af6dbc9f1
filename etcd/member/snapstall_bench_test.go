package member

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/revkv/revkv/kv"
)

// BenchmarkStatusDuringSnapshot measures how long Status waits while
// Ready takes a local snapshot of a DB of 100,000 keys (about 12 MB): each
// iteration applies 1000 puts in one Ready, which snapshots, while another
// goroutine calls Status every 100µs. status-max-µs is the longest Status
// call of an iteration (mean over iterations).
//
//	cd etcd && go test -run '^$' -bench StatusDuringSnapshot -benchtime 10x ./member/
func BenchmarkStatusDuringSnapshot(b *testing.B) {
	const perTxn, txns, every = 125, 800, 1000
	c := newTestCluster(b, 1, func(cfg *Config) { cfg.SnapshotEntries = every })
	m := c.members[c.leader()]
	val := make([]byte, 100)
	for t := range txns {
		var ops []kv.Op
		for i := range perTxn {
			ops = append(ops, kv.Op{Type: kv.OpPut, Key: fmt.Appendf(nil, "fill%03d-%05d", t, i), Value: val})
		}
		if _, err := m.Propose(Request{Txn: &kv.TxnRequest{Then: ops}}); err != nil {
			b.Fatal(err)
		}
	}
	c.deliver()
	var worst time.Duration
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		var ps []*Pending
		for range every {
			p, err := m.Propose(putReq(fmt.Sprintf("key%09d", i), "v"))
			if err != nil {
				b.Fatal(err)
			}
			ps = append(ps, p)
			i++
		}
		stop := make(chan struct{})
		var max time.Duration
		var wg sync.WaitGroup
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				_ = m.Status()
				max = maxDur(max, time.Since(start))
				time.Sleep(100 * time.Microsecond) // a reader, not a spinner competing for the CPU
			}
		})
		if _, err := m.Ready(); err != nil {
			b.Fatal(err)
		}
		close(stop)
		wg.Wait()
		worst += max
		for _, p := range ps {
			if _, err := p.Result(); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(worst.Microseconds())/float64(b.N), "status-max-µs")
}

func maxDur(a, b time.Duration) time.Duration {
	if a > b {
		return a
	}
	return b
}
