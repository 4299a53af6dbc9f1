package watch

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/revkv/revkv/internal/cputime"
)

// Benchmarks (run with -race off):
//
//	go test -run '^$' -bench . -benchmem ./watch
//
// Times include delivery: each benchmark waits, inside the timed loop's
// last iteration or after it, until the watchers have what it wrote.

var value = make([]byte, 128)

func key(i int) []byte { return []byte(fmt.Sprintf("key-%012d", i)) }

// BenchmarkPutOtherWatchers: a put while W watches (single keys, on 100
// Watchers) watch other keys. The dispatcher's work per put should not grow
// with W.
func BenchmarkPutOtherWatchers(b *testing.B) {
	for _, w := range []int{1, 1000, 100_000} {
		b.Run(fmt.Sprintf("watchers=%d", w), func(b *testing.B) {
			s := New(memory(), Options{})
			defer s.Close()
			streams := make([]*Watcher, min(w, 100))
			for i := range streams {
				streams[i] = s.NewWatcher()
			}
			for i := range w {
				streams[i%len(streams)].WatchRange(Request{Key: key(i)})
			}
			other := []byte("unwatched-key-00")
			b.ReportAllocs()
			for b.Loop() {
				s.Put(other, value)
			}
			// The dispatcher's work for the last puts counts too.
			b.StartTimer()
			s.h.waitDispatched(s.Rev())
			b.StopTimer()
		})
	}
}

// BenchmarkFanout: 1,000 Watchers on one key; one op is a put and its
// delivery to all 1,000 receivers.
func BenchmarkFanout(b *testing.B) {
	const watchers = 1000
	s := New(memory(), Options{})
	defer s.Close()
	var received atomic.Int64
	var wg sync.WaitGroup
	for range watchers {
		w := s.NewWatcher()
		w.WatchRange(Request{Key: []byte("hot")})
		countEvents(w, &received, &wg)
	}
	b.ReportAllocs()
	n := int64(0)
	for b.Loop() {
		s.Put([]byte("hot"), value)
		n++
		for received.Load() < n*watchers {
			runtime.Gosched()
		}
	}
	b.ReportMetric(float64(n*watchers)/b.Elapsed().Seconds(), "events/s")
	s.Close()
	wg.Wait()
}

// BenchmarkCatchUp: one op is a new watcher replaying 1,000,000 events
// from history.
func BenchmarkCatchUp(b *testing.B) {
	const events = 1_000_000
	s := New(memory(), Options{})
	defer s.Close()
	for i := range events {
		s.Put(key(i%1000), value)
	}
	b.ReportAllocs()
	for b.Loop() {
		w := s.NewWatcher()
		w.WatchRange(Request{Key: []byte("key-"), End: []byte("key."), StartRev: 2})
		got := 0
		for got < events {
			got += len((<-w.Chan()).Events)
		}
		w.Close()
	}
	b.ReportMetric(float64(events)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkIdleWatchMemory reports the heap held per idle watch (single
// keys, 100,000 of them on one Watcher) and per idle Watcher (its
// goroutine and channel; 1,000 of them).
func BenchmarkIdleWatchMemory(b *testing.B) {
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc + m.StackInuse
	}
	for b.Loop() {
		s := New(memory(), Options{})
		base := heap()
		w := s.NewWatcher()
		const watches = 100_000
		for i := range watches {
			w.WatchRange(Request{Key: key(i)})
		}
		perWatch := float64(heap()-base) / watches
		base = heap()
		const watchers = 1000
		for range watchers {
			s.NewWatcher().WatchRange(Request{Key: []byte("k")})
		}
		perWatcher := float64(heap()-base) / watchers
		b.ReportMetric(perWatch, "B/watch")
		b.ReportMetric(perWatcher, "B/watcher")
		s.Close()
	}
}

// BenchmarkPrefixWatches: 10,000 watches on one prefix, 100 on each of
// 100 Watchers, or each on a Watcher of its own; one op is burst puts under
// the prefix and their delivery to every watch (burst 1: each put is
// delivered before the next is written; burst 100: the puts come faster
// than the receivers take them, so events pile up in the watches). B/event
// is the heap allocated per event delivered.
func BenchmarkPrefixWatches(b *testing.B) {
	for _, shape := range [][3]int{{100, 100, 1}, {10_000, 1, 1}, {10_000, 1, 100}} {
		b.Run(fmt.Sprintf("watchers=%d/each=%d/burst=%d", shape[0], shape[1], shape[2]), func(b *testing.B) {
			prefixWatches(b, shape[0], shape[1], shape[2])
		})
	}
}

func prefixWatches(b *testing.B, watchers, perWatcher, burst int) {
	s := New(memory(), Options{})
	defer s.Close()
	var received atomic.Int64
	var wg sync.WaitGroup
	for range watchers {
		w := s.NewWatcher()
		for range perWatcher {
			w.WatchRange(Request{Key: []byte("key-"), End: []byte("key.")})
		}
		countEvents(w, &received, &wg)
	}
	watches := int64(watchers * perWatcher)
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	b.ReportAllocs()
	n := int64(0)
	for b.Loop() {
		for range burst {
			s.Put(key(int(n%1000)), value)
			n++
		}
		for received.Load() < n*watches {
			runtime.Gosched()
		}
	}
	runtime.ReadMemStats(&m1)
	b.ReportMetric(float64(n*watches)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(m1.TotalAlloc-m0.TotalAlloc)/float64(n*watches), "B/event")
	s.Close()
	wg.Wait()
}

// BenchmarkFanoutDistinct: 1,000 Watchers, each watching a key of its own
// (bench/compare's watch-fanout); one op is a put to each of the 1,000
// keys and the delivery of every event.
func BenchmarkFanoutDistinct(b *testing.B) {
	const watchers = 1000
	s := New(memory(), Options{})
	defer s.Close()
	var received atomic.Int64
	var wg sync.WaitGroup
	for i := range watchers {
		w := s.NewWatcher()
		w.WatchRange(Request{Key: key(i)})
		countEvents(w, &received, &wg)
	}
	keys := make([][]byte, watchers)
	for i := range keys {
		keys[i] = key(i)
	}
	b.ReportAllocs()
	n := int64(0)
	cpu0 := cputime.Process()
	for b.Loop() {
		for _, k := range keys {
			s.Put(k, value)
		}
		n += watchers
		for received.Load() < n {
			runtime.Gosched()
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
	// The receivers' wait loop spins (as bench/compare's does), so this
	// counts its idle turns too.
	b.ReportMetric(float64(cputime.Process()-cpu0)/float64(n), "proc-cpu-ns/event")
	s.Close()
	wg.Wait()
}

// countEvents counts the events w receives into received, in a goroutine
// that wg waits for (it ends when w is closed).
func countEvents(w *Watcher, received *atomic.Int64, wg *sync.WaitGroup) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		for r := range w.Chan() {
			received.Add(int64(len(r.Events)))
		}
	}()
}

// BenchmarkNewStore is a new in-memory engine store made watchable, one
// put, and Close (bench/compare's new-store): what a test that makes a
// fake store of its own pays.
func BenchmarkNewStore(b *testing.B) {
	b.ReportAllocs()
	cpu0 := cputime.Process()
	for b.Loop() {
		s := New(memory(), Options{})
		if _, err := s.Put([]byte("key"), value); err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
	b.ReportMetric(float64(cputime.Process()-cpu0)/float64(b.N), "proc-cpu-ns/op")
}
