package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/persist/filelog"
	"github.com/revkv/revkv/watch"
)

// benchConfig are the load generator's flags.
type benchConfig struct {
	writers, readers, watchers int
	keys, keySize, valueSize   int
	duration                   time.Duration
	sync                       string
	dirSet                     bool
	fs                         *flag.FlagSet
}

func (b *benchConfig) register(fs *flag.FlagSet) {
	b.fs = fs
	fs.IntVar(&b.writers, "writers", 4, "goroutines doing puts")
	fs.IntVar(&b.readers, "readers", 4, "goroutines doing point reads")
	fs.IntVar(&b.watchers, "watchers", 0, "watchers, each on a share of the key space")
	fs.IntVar(&b.keys, "keys", 100_000, "distinct keys")
	fs.IntVar(&b.keySize, "key-size", 16, "bytes per key (at least 8)")
	fs.IntVar(&b.valueSize, "value-size", 128, "bytes per value")
	fs.DurationVar(&b.duration, "duration", 5*time.Second, "how long to run")
	fs.StringVar(&b.sync, "sync", "always", "sync policy: always, interval or none")
}

func (b *benchConfig) policy() (filelog.SyncPolicy, error) {
	for _, p := range []filelog.SyncPolicy{filelog.SyncAlways, filelog.SyncInterval, filelog.SyncNone} {
		if p.String() == b.sync {
			return p, nil
		}
	}
	return 0, fmt.Errorf("%w: --sync %q: want always, interval or none", errUsage, b.sync)
}

// latencies collects one goroutine's operation times.
type latencies []time.Duration

func percentile(all []time.Duration, p float64) time.Duration {
	if len(all) == 0 {
		return 0
	}
	return all[min(len(all)-1, int(float64(len(all))*p))]
}

const maxSamples = 1 << 20 // per goroutine: enough for the 99.9th percentile

func runBench(ctx context.Context, e *env, g *global, b benchConfig, stderr io.Writer) error {
	b.fs.Visit(func(f *flag.Flag) { b.dirSet = b.dirSet || f.Name == "dir" })
	policy, err := b.policy()
	if err != nil {
		return err
	}
	if b.keySize < 8 || b.keys < 1 || b.valueSize < 0 || b.writers < 0 || b.readers < 0 || b.watchers < 0 {
		return fmt.Errorf("%w: bench: --key-size >= 8, --keys >= 1, counts >= 0", errUsage)
	}
	where := "memory"
	var s *engine.Store
	switch {
	case g.mem:
		s, _ = engine.Open(nil, engine.Options{}) // no persister: never fails
	default:
		dir := g.dir
		if !b.dirSet {
			if dir, err = os.MkdirTemp("", "revkv-bench-"); err != nil {
				return err
			}
			defer os.RemoveAll(dir)
		}
		where = dir + " (sync " + b.sync + ")"
		l, err := filelog.Open(dir, filelog.Options{Sync: policy})
		if err != nil {
			return err
		}
		if s, err = engine.Open(l, engine.Options{}); err != nil {
			return err
		}
	}
	ws := watch.New(s, watch.Options{})
	defer ws.Close()

	key := func(i int) []byte {
		k := make([]byte, b.keySize)
		copy(k, fmt.Sprintf("%08x", i%b.keys))
		return k
	}
	ctx, cancel := context.WithTimeout(ctx, b.duration)
	defer cancel()
	var writes, reads, events atomic.Int64
	var mu sync.Mutex
	var wlat, rlat []time.Duration
	var firstErr error
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		cancel()
	}
	var wg sync.WaitGroup
	for i := range b.watchers {
		w := ws.NewWatcher()
		defer w.Close()
		lo := i * b.keys / b.watchers
		hi := (i + 1) * b.keys / b.watchers
		end := key(hi)
		if hi >= b.keys {
			end = []byte{}
		}
		if _, err := w.WatchRange(watch.Request{Key: key(lo), End: end}); err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case resp := <-w.Chan():
					events.Add(int64(len(resp.Events)))
				}
			}
		}()
	}
	worker := func(seed int, op func(r *rand.Rand) error, count *atomic.Int64, into *[]time.Duration) {
		defer wg.Done()
		r := rand.New(rand.NewPCG(uint64(seed), 7))
		lat := make(latencies, 0, 1<<14)
		for ctx.Err() == nil {
			t0 := time.Now()
			if err := op(r); err != nil {
				fail(err)
				break
			}
			if len(lat) < maxSamples {
				lat = append(lat, time.Since(t0))
			}
			count.Add(1)
		}
		mu.Lock()
		*into = append(*into, lat...)
		mu.Unlock()
	}
	value := make([]byte, b.valueSize)
	for i := range b.writers {
		wg.Add(1)
		go worker(i, func(r *rand.Rand) error {
			_, err := s.Put(key(r.IntN(b.keys)), value)
			return err
		}, &writes, &wlat)
	}
	for i := range b.readers {
		wg.Add(1)
		go worker(1000+i, func(r *rand.Rand) error {
			_, _, err := s.Range(key(r.IntN(b.keys)), nil, 0, 0)
			return err
		}, &reads, &rlat)
	}

	fmt.Fprintf(stderr, "revkv bench: %d writers, %d readers, %d watchers, %d keys of %d bytes, values of %d bytes, on %s, for %v\n",
		b.writers, b.readers, b.watchers, b.keys, b.keySize, b.valueSize, where, b.duration)
	start := time.Now()
	tick := time.NewTicker(time.Second)
	var lw, lr, le int64
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-tick.C:
			w, r, ev := writes.Load(), reads.Load(), events.Load()
			fmt.Fprintf(stderr, "%6.1fs  %9d writes/s  %9d reads/s  %9d events/s  revision %d\n",
				time.Since(start).Seconds(), w-lw, r-lr, ev-le, s.Rev())
			lw, lr, le = w, r, ev
		}
	}
	tick.Stop()
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return firstErr
	}
	if err := s.Commit(); err != nil {
		return err
	}
	slices.Sort(wlat)
	slices.Sort(rlat)
	sum := map[string]any{
		"seconds": elapsed.Seconds(), "revision": s.Rev(),
		"writes": writes.Load(), "writes_per_sec": float64(writes.Load()) / elapsed.Seconds(),
		"reads": reads.Load(), "reads_per_sec": float64(reads.Load()) / elapsed.Seconds(),
		"events":       events.Load(),
		"write_p50_us": us(percentile(wlat, .5)), "write_p99_us": us(percentile(wlat, .99)), "write_p999_us": us(percentile(wlat, .999)),
		"read_p50_us": us(percentile(rlat, .5)), "read_p99_us": us(percentile(rlat, .99)), "read_p999_us": us(percentile(rlat, .999)),
	}
	if e.json {
		return e.emit(sum, "")
	}
	fmt.Fprintf(e.out, "%.1fs, revision %d\n", elapsed.Seconds(), s.Rev())
	fmt.Fprintf(e.out, "writes  %10d  %10.0f/s  latency p50 %8.1fµs  p99 %8.1fµs  p99.9 %8.1fµs\n", writes.Load(),
		sum["writes_per_sec"], us(percentile(wlat, .5)), us(percentile(wlat, .99)), us(percentile(wlat, .999)))
	fmt.Fprintf(e.out, "reads   %10d  %10.0f/s  latency p50 %8.1fµs  p99 %8.1fµs  p99.9 %8.1fµs\n", reads.Load(),
		sum["reads_per_sec"], us(percentile(rlat, .5)), us(percentile(rlat, .99)), us(percentile(rlat, .999)))
	if b.watchers > 0 {
		fmt.Fprintf(e.out, "events  %10d received by %d watchers\n", events.Load(), b.watchers)
	}
	return nil
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }
