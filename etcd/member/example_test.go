package member_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/etcd/member"
	"github.com/revkv/revkv/kv"
)

// A one-member cluster driven by hand: tick until it leads, propose a put,
// run Ready until the put is applied. A real driver (package cluster) does
// the same from a goroutine with a ticker, and sends Ready's messages to
// the peers.
func Example() {
	m, err := member.Open(member.Config{
		ID:    1,
		Peers: []member.Peer{{ID: 1, Name: "one", PeerURLs: []string{"http://127.0.0.1:2380"}}},
		Clock: engine.NewManualClock(time.Unix(0, 0)),
	})
	if err != nil {
		panic(err)
	}
	defer m.Close()
	for m.Status().Leader != 1 {
		m.Tick()
		if _, err := m.Ready(); err != nil { // a single member sends nothing
			panic(err)
		}
	}
	p, err := m.Propose(member.Request{Txn: &kv.TxnRequest{Then: []kv.Op{kv.PutOp([]byte("greeting"), []byte("hello"))}}})
	if err != nil {
		panic(err)
	}
	for {
		if _, err := m.Ready(); err != nil {
			panic(err)
		}
		if res, err := p.Result(); !errors.Is(err, member.ErrNotDone) {
			fmt.Println("put at revision", res.(*kv.TxnResponse).Rev, err)
			break
		}
	}
	kv, _, _ := m.DB().Get([]byte("greeting"))
	fmt.Printf("%s = %s\n", kv.Key, kv.Value)
	// Output:
	// put at revision 2 <nil>
	// greeting = hello
}
