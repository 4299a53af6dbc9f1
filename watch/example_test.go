package watch_test

import (
	"fmt"

	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/watch"
)

func Example() {
	e, _ := engine.Open(nil, engine.Options{}) // no persister: in memory
	s := watch.New(e, watch.Options{})
	defer s.Close()
	s.Put([]byte("config/mode"), []byte("safe")) // revision 2

	w := s.NewWatcher()
	defer w.Close()
	// Every key under config/, replaying history from revision 2.
	w.Watch([]byte("config/"), true, 2)

	s.Put([]byte("config/mode"), []byte("fast"))
	s.DeleteRange([]byte("config/mode"), nil)

	for n := 0; n < 3; {
		resp := <-w.Chan()
		for _, ev := range resp.Events {
			fmt.Printf("%s %s=%s at %d\n", ev.Type, ev.KV.Key, ev.KV.Value, ev.KV.ModRevision)
			n++
		}
	}
	// Output:
	// PUT config/mode=safe at 2
	// PUT config/mode=fast at 3
	// DELETE config/mode= at 4
}

func ExampleWatcher_WatchRange() {
	e, _ := engine.Open(nil, engine.Options{}) // no persister: in memory
	s := watch.New(e, watch.Options{})
	defer s.Close()
	w := s.NewWatcher()
	defer w.Close()

	// Keys in [a, c), with each event's previous value, deletes only.
	id, _ := w.WatchRange(watch.Request{Key: []byte("a"), End: []byte("c"), PrevKV: true, NoPut: true})
	s.Put([]byte("b"), []byte("1"))
	s.DeleteRange([]byte("b"), nil)

	resp := <-w.Chan()
	ev := resp.Events[0]
	fmt.Println(resp.WatchID == id, ev.Type, string(ev.KV.Key), "was", string(ev.PrevKV.Value))

	w.Cancel(id)
	resp = <-w.Chan()
	fmt.Println(resp.Canceled, resp.Err)
	// Output:
	// true DELETE b was 1
	// true revkv: watcher is canceled
}
