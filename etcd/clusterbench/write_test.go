package clusterbench

import (
	"context"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"
)

// baseline is the target every ratio is relative to.
const baseline = "etcd-3"

// settings reads the scale of TestWrite from the environment.
func settings(t *testing.T) (clients int, duration time.Duration, rounds int) {
	clients, duration, rounds = 16, 10*time.Second, 3
	for _, v := range []struct {
		name string
		n    *int
	}{{"REVKV_CLUSTERBENCH_CLIENTS", &clients}, {"REVKV_CLUSTERBENCH_ROUNDS", &rounds}} {
		if s := os.Getenv(v.name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 {
				t.Fatalf("%s=%q: want a positive integer", v.name, s)
			}
			*v.n = n
		}
	}
	if s := os.Getenv("REVKV_CLUSTERBENCH_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			t.Fatalf("REVKV_CLUSTERBENCH_DURATION=%q: want a positive duration", s)
		}
		duration = d
	}
	return clients, duration, rounds
}

// TestWrite measures every target in turn, one at a time (each cluster
// is stopped before the next starts), for the same duration with the same
// clients, in rounds (each round starts every cluster afresh), so that a
// change of load on the machine during the run falls on every target; it
// logs a table of each target's rounds together, with its ratios to
// etcd's 3-member cluster.
func TestWrite(t *testing.T) {
	if os.Getenv("REVKV_CLUSTERBENCH") == "" {
		t.Skip("a benchmark of minutes: run with REVKV_CLUSTERBENCH=1")
	}
	n, d, rounds := settings(t)
	results := make([]result, len(targets))
	for round := range rounds {
		for i, tg := range targets {
			t.Run(fmt.Sprintf("%s/round%d", tg.name, round), func(t *testing.T) {
				r := run(t, tg, n, d)
				t.Logf("%d puts, %d errors in %v", r.ops, r.errors, r.elapsed.Round(time.Millisecond))
				if r.errors*100 > r.ops+r.errors {
					t.Errorf("%d of %d puts failed", r.errors, r.ops+r.errors)
				}
				results[i] = results[i].merge(r)
			})
		}
	}
	t.Logf("%d clients, %d rounds of %v per target, %d-byte values on %d keys:\n%s", n, rounds, d, valueSize, keySpace, table(results))
}

// run starts tg's cluster, measures it for d with n clients, and stops it.
func run(t *testing.T, tg target, n int, d time.Duration) result {
	clis := clients(t, tg.start(t), n)
	// A short warm-up: connections, leader's first proposals, caches.
	warm, cancel := context.WithTimeout(context.Background(), d/10)
	measure(warm, clis, math.MaxInt)
	cancel()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return measure(ctx, clis, math.MaxInt)
}

// table formats the results, one row per target, with ratios to the
// baseline's (throughput: higher is better; latency: lower is better).
func table(results []result) string {
	var base result
	for i, tg := range targets {
		if tg.name == baseline {
			base = results[i]
		}
	}
	ratio := func(a, b float64) string {
		if b == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2fx", a/b)
	}
	var sb strings.Builder
	w := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "target\tputs/s\tp50\tp99\terrors\tputs/s vs "+baseline+"\tp50 vs "+baseline+"\tp99 vs "+baseline+"\t")
	for i, tg := range targets {
		r := results[i]
		fmt.Fprintf(w, "%s\t%.0f\t%v\t%v\t%d\t%s\t%s\t%s\t\n", tg.name, r.throughput(),
			r.percentile(50).Round(time.Microsecond), r.percentile(99).Round(time.Microsecond), r.errors,
			ratio(r.throughput(), base.throughput()),
			ratio(float64(r.percentile(50)), float64(base.percentile(50))),
			ratio(float64(r.percentile(99)), float64(base.percentile(99))))
	}
	w.Flush()
	return sb.String()
}

// BenchmarkWrite is TestWrite's measurement as a benchmark: b.N puts per
// target from 16 concurrent clients, with the latency percentiles and
// the throughput as metrics.
func BenchmarkWrite(b *testing.B) {
	for _, tg := range targets {
		b.Run(tg.name, func(b *testing.B) {
			clis := clients(b, tg.start(b), 16)
			b.ResetTimer()
			r := measure(context.Background(), clis, b.N)
			b.StopTimer()
			if r.errors > 0 {
				b.Fatalf("%d puts failed", r.errors)
			}
			b.ReportMetric(r.throughput(), "puts/s")
			b.ReportMetric(float64(r.percentile(50).Microseconds()), "p50-µs")
			b.ReportMetric(float64(r.percentile(99).Microseconds()), "p99-µs")
		})
	}
}
