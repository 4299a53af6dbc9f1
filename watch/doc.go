// Package watch makes an engine.Store watchable: watchers that replay
// history from any retained revision and then follow new writes, and never
// lose or repeat an event.
//
//	e, _ := engine.Open(nil, engine.Options{}) // or with a persister
//	s := watch.New(e, watch.Options{})
//	defer s.Close()
//	w := s.NewWatcher()
//	w.Watch([]byte("config/"), true, 0) // every key under config/, from now on
//	for resp := range w.Chan() { ... }
//
// # Guarantees
//
// For each watch, events arrive in revision order, each exactly once, with
// none skipped, and the events of one revision in one Response (unless that
// revision alone has more events than the watch's cap). A StartRev <= 0
// means the next revision; one in the past replays history from there; one
// below the compacted revision ends the watch with kv.ErrCompacted and the
// compacted revision. A watch that is running is never ended by
// compaction, whether it keeps up or reads history far behind, and
// whether the compaction comes through Store.Compact or the engine store's
// own Compact: the engine calls the watchers before any compaction takes
// effect (engine.Store.OnCompact), which hand every revision up to it to
// the watches that keep up, and leave each watch still reading history
// below it a view of that history, kept until the watch has read it.
//
// # How it works
//
// A watcher is a cursor into the engine's history, not a buffer that can
// overflow. One goroutine per Store (the hub), started by its first
// Watcher (a Store never watched runs none), wakes when the revision moves
// (engine.Store.Notify), reads the new events from a view, and finds the
// watches whose range holds each key through an index: a map for
// single-key watches and an interval treap for ranges and prefixes, so a
// write costs O(log W + matching watches) with W watches, not O(W). It
// appends each event to the matching watch's pending list and never waits
// for a receiver.
//
// Each Watcher has one goroutine that sends its Responses, blocking on the
// channel as long as its receiver takes. A watch whose pending list reaches
// 4x its cap (its receiver is slow) leaves the index: it sends the whole
// revisions it holds, then reads history from there, a batch at a time;
// when it reaches the present it rejoins the index. So a stalled receiver
// never blocks a writer, another Watcher or compaction, and holds at most
// its pending events, plus, if compactions passed its position, the
// history below them it has yet to read (the memory a View taken before
// the compaction would keep); cancel or close a watch that is not read to
// free it.
//
// # Memory
//
// Measured (BenchmarkIdleWatchMemory): an idle watch on a single key costs
// about 300 bytes; an idle Watcher about 6.6 KiB (its goroutine's stack and
// a channel of 16 Responses). A watch that keeps up holds at most 4x its
// MaxEvents pending events; one that is catching up holds at most that and
// one Response's worth, and the history a compaction would have freed
// below its position.
package watch
