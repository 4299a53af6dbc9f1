package kv_test

import (
	"errors"
	"fmt"

	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/kv"
)

// Events carry their position in the history; errors from any revkv
// package are tested against kv's values.
func Example() {
	s, _ := engine.Open(nil, engine.Options{})
	defer s.Close()
	s.Put([]byte("a"), []byte("1"))
	s.DeleteRange([]byte("a"), nil)

	v, _ := s.View()
	for ev := range v.Events(2) {
		fmt.Println(ev.Type, string(ev.KV.Key), ev.Revision())
	}
	_, _, err := s.Range([]byte("a"), nil, 0, 9)
	fmt.Println(errors.Is(err, kv.ErrFutureRev))
	// Output:
	// PUT a 2.0
	// DELETE a 3.0
	// true
}
