package clusterbench

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/revkv/revkv/etcd/etcdtest"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestMeasure runs the harness on a small scale against the single-member
// server: it counts exactly the puts it was asked for, all of them land,
// and the percentiles come from the sorted latencies.
func TestMeasure(t *testing.T) {
	f := etcdtest.StartEndpoint(t, etcdtest.Config{})
	clis := clients(t, []string{f.Endpoint()}, 4)
	r := measure(context.Background(), clis, 200)
	if r.ops != 200 || r.errors != 0 || len(r.latencies) != 200 {
		t.Fatalf("ops %d errors %d latencies %d, want 200 0 200", r.ops, r.errors, len(r.latencies))
	}
	if r.percentile(50) > r.percentile(99) || r.percentile(99) > r.latencies[199] || r.throughput() <= 0 {
		t.Fatalf("p50 %v p99 %v max %v throughput %v", r.percentile(50), r.percentile(99), r.latencies[199], r.throughput())
	}
	// The workload's puts are updates of the key space: the store holds
	// at most keySpace keys and at least one.
	resp, err := clis[0].Get(context.Background(), "0", clientv3.WithFromKey(), clientv3.WithCountOnly())
	if err != nil || resp.Count < 1 || resp.Count > 200 {
		t.Fatalf("count %v, %v", resp, err)
	}

	// A context that ends stops the clients.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	r = measure(ctx, clis, 1<<30)
	if r.elapsed > 5*time.Second || r.errors != 0 {
		t.Fatalf("stopped after %v with %d errors", r.elapsed, r.errors)
	}
}

func TestPercentile(t *testing.T) {
	r := result{latencies: []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 5}, {99, 10}, {100, 10}, {10, 1}, {11, 2}, {0.1, 1}} {
		if got := r.percentile(c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
	if (result{}).percentile(50) != 0 || (result{}).throughput() != 0 {
		t.Error("empty result")
	}
}

func TestMerge(t *testing.T) {
	a := result{ops: 2, errors: 1, elapsed: time.Second, latencies: []time.Duration{1, 5}}
	b := result{ops: 3, elapsed: 2 * time.Second, latencies: []time.Duration{2, 3, 9}}
	m := (result{}).merge(a).merge(b)
	if m.ops != 5 || m.errors != 1 || m.elapsed != 3*time.Second || !slices.Equal(m.latencies, []time.Duration{1, 2, 3, 5, 9}) {
		t.Fatalf("%+v", m)
	}
	if a.latencies[1] != 5 {
		t.Fatal("merge changed its receiver")
	}
}
