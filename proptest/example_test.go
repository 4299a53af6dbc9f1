package proptest_test

import (
	"fmt"

	"github.com/revkv/revkv/proptest"
)

// The reference model on its own: the answers an etcd-like store must
// give. Check drives a KV and this model side by side.
func ExampleModel() {
	m := proptest.NewModel()
	m.Put([]byte("a"), []byte("1"), 0)
	m.Put([]byte("a"), []byte("2"), 0)
	kvs, rev, _ := m.Range([]byte("a"), nil, 0, 2)
	fmt.Printf("%s=%s (version %d) read at %d, current revision %d\n", kvs[0].Key, kvs[0].Value, kvs[0].Version, 2, rev)
	m.Compact(3)
	_, _, err := m.Range([]byte("a"), nil, 0, 2)
	fmt.Println(err)
	// Output:
	// a=1 (version 1) read at 2, current revision 3
	// revkv: required revision has been compacted
}
