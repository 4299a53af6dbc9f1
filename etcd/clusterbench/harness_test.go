// Package clusterbench measures the write throughput and latency of
// replicated clusters on loopback addresses: revkv's clusters of 1, 3 and
// 5 members side by side with a 3-member etcd v3.7.3 cluster (embed,
// in-process, in the same run), through the same clientv3 puts, so that
// the figures are ratios on one machine. A full run takes a few minutes,
// so it runs only when asked:
//
//	cd etcd && REVKV_CLUSTERBENCH=1 go test ./clusterbench -run TestWrite -v -timeout 30m
//
// REVKV_CLUSTERBENCH_CLIENTS (default 16 concurrent clients, each its own
// clientv3.Client on every endpoint of the cluster),
// REVKV_CLUSTERBENCH_DURATION (default 10s per target and round) and
// REVKV_CLUSTERBENCH_ROUNDS (default 3) set the scale. The
// same measurement runs as a benchmark, b.N puts per target, for
// benchstat:
//
//	cd etcd && go test ./clusterbench -run '^$' -bench Write -benchtime 2000x
//
// Every member, every client and the benchmark itself share one process
// and the machine's cores: the absolute figures say little, the ratios
// between targets measured in one run are the result.
package clusterbench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// A target is a cluster to measure: start starts it (stopped by the
// test's Cleanup) and returns the client endpoints of its members.
type target struct {
	name  string
	start func(tb testing.TB) []string
}

// workload is what every client does: puts of valueSize-byte values to
// keys drawn uniformly from keySpace keys (so that most puts update a key,
// as a steady-state store does).
const (
	keySpace  = 100_000
	valueSize = 256
)

// result is one target's measurement.
type result struct {
	ops, errors int
	elapsed     time.Duration
	latencies   []time.Duration // of the successful puts, sorted
}

// merge returns the measurements of r and o together.
func (r result) merge(o result) result {
	lats := append(slices.Clone(r.latencies), o.latencies...)
	slices.Sort(lats)
	return result{ops: r.ops + o.ops, errors: r.errors + o.errors, elapsed: r.elapsed + o.elapsed, latencies: lats}
}

// throughput is successful puts per second.
func (r result) throughput() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.ops) / r.elapsed.Seconds()
}

// percentile is the nearest-rank p-th percentile (0 < p <= 100) of the
// latencies, 0 if there are none.
func (r result) percentile(p float64) time.Duration {
	n := len(r.latencies)
	if n == 0 {
		return 0
	}
	i := int(float64(n)*p/100+0.999999) - 1
	return r.latencies[min(max(i, 0), n-1)]
}

// clients returns n clients, each on every endpoint, closed when the test
// ends. They are ready: each has answered a Get.
func clients(tb testing.TB, endpoints []string, n int) []*clientv3.Client {
	tb.Helper()
	out := make([]*clientv3.Client, n)
	for i := range out {
		c, err := clientv3.New(clientv3.Config{
			Endpoints:   endpoints,
			DialTimeout: 10 * time.Second,
			Logger:      zap.NewNop(),
		})
		if err != nil {
			tb.Fatalf("clusterbench: client: %v", err)
		}
		tb.Cleanup(func() { c.Close() })
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err = c.Get(ctx, "warm-up")
		cancel()
		if err != nil {
			tb.Fatalf("clusterbench: client %d: %v", i, err)
		}
		out[i] = c
	}
	return out
}

// measure runs the clients concurrently, each putting in a loop, until
// limit puts have been started or ctx ends, whichever comes first. A put
// that fails is counted, not retried; a put cut short by ctx's end is not
// counted at all.
func measure(ctx context.Context, clis []*clientv3.Client, limit int) result {
	var started atomic.Int64
	value := string(make([]byte, valueSize))
	lats := make([][]time.Duration, len(clis))
	errs := make([]int, len(clis))
	var wg sync.WaitGroup
	begin := time.Now()
	for i, c := range clis {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			for started.Add(1) <= int64(limit) {
				key := fmt.Sprintf("%08d", rng.IntN(keySpace))
				t0 := time.Now()
				_, err := c.Put(ctx, key, value)
				d := time.Since(t0)
				switch {
				case ctx.Err() != nil:
					return
				case err != nil:
					errs[i]++
				default:
					lats[i] = append(lats[i], d)
				}
			}
		})
	}
	wg.Wait()
	r := result{elapsed: time.Since(begin)}
	for i := range clis {
		r.latencies = append(r.latencies, lats[i]...)
		r.errors += errs[i]
	}
	r.ops = len(r.latencies)
	slices.Sort(r.latencies)
	return r
}
