package member

import (
	"errors"
	"testing"

	revkv "github.com/revkv/revkv"
	"github.com/revkv/revkv/kv"
)

func i64(v int64) *int64 { return &v }

// TestRequestKinds proposes each kind of request on a follower and on the
// leader, checks the proposer's result, and that every member applied the
// same.
func TestRequestKinds(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	lead := c.leader()
	fol := c.follower(lead)
	c.mustPut(lead, "k0", "v0") // rev 2

	type check func(t *testing.T, res any, err error)
	wantErr := func(target error) check {
		return func(t *testing.T, res any, err error) {
			if !errors.Is(err, target) {
				t.Fatalf("got %v, %v; want %v", res, err, target)
			}
		}
	}
	tests := []struct {
		name string
		req  Request
		ok   check
	}{
		{"put", putReq("k1", "v1"), func(t *testing.T, res any, err error) {
			if err != nil || res.(*kv.TxnResponse).Rev < 3 {
				t.Fatalf("%v %v", res, err)
			}
		}},
		{"delete", Request{Txn: &kv.TxnRequest{Then: []kv.Op{{Type: kv.OpDeleteRange, Key: []byte("k1")}}}}, func(t *testing.T, res any, err error) {
			if err != nil || res.(*kv.TxnResponse).Responses[0].Delete.Deleted != 1 {
				t.Fatalf("%+v %v", res, err)
			}
		}},
		{"txn else", Request{Txn: &kv.TxnRequest{
			Compare: []kv.Compare{{Key: []byte("k0"), Target: kv.CompareValue, Result: kv.CompareEqual, Value: []byte("nope")}},
			Then:    []kv.Op{{Type: kv.OpPut, Key: []byte("then"), Value: []byte("x")}},
			Else:    []kv.Op{{Type: kv.OpPut, Key: []byte("else"), Value: []byte("y")}, {Type: kv.OpRange, Key: []byte("k"), End: []byte("l")}},
		}}, func(t *testing.T, res any, err error) {
			r := res.(*kv.TxnResponse)
			if err != nil || r.Succeeded || len(r.Responses) != 2 || r.Responses[1].Range.Count != 1 {
				t.Fatalf("%+v %v", res, err)
			}
		}},
		{"txn refused", Request{Txn: &kv.TxnRequest{Then: []kv.Op{{Type: kv.OpPut, Value: []byte("no key")}}}}, wantErr(kv.ErrEmptyKey)},
		{"put with missing lease", Request{Txn: &kv.TxnRequest{Then: []kv.Op{{Type: kv.OpPut, Key: []byte("l"), Put: kv.PutOptions{Lease: 77}}}}}, wantErr(kv.ErrLeaseNotFound)},
		{"compact", Request{Compact: i64(3)}, func(t *testing.T, res any, err error) {
			if err != nil || res != nil {
				t.Fatalf("%v %v", res, err)
			}
		}},
		{"compact again", Request{Compact: i64(3)}, wantErr(kv.ErrCompacted)},
		{"compact future", Request{Compact: i64(1000)}, wantErr(kv.ErrFutureRev)},
		{"grant", Request{LeaseGrant: &LeaseGrant{ID: 10, TTL: 30}}, func(t *testing.T, res any, err error) {
			if l := res.(revkv.Lease); err != nil || l.ID != 10 || l.TTL != 30 {
				t.Fatalf("%+v %v", res, err)
			}
		}},
		{"grant taken", Request{LeaseGrant: &LeaseGrant{ID: 10, TTL: 30}}, wantErr(kv.ErrLeaseExists)},
		{"grant any ID", Request{LeaseGrant: &LeaseGrant{TTL: 5}}, func(t *testing.T, res any, err error) {
			if l := res.(revkv.Lease); err != nil || l.ID != 11 {
				t.Fatalf("%+v %v", res, err)
			}
		}},
		{"put with lease", Request{Txn: &kv.TxnRequest{Then: []kv.Op{{Type: kv.OpPut, Key: []byte("leased"), Put: kv.PutOptions{Lease: 10}}}}}, func(t *testing.T, res any, err error) {
			if err != nil {
				t.Fatal(err)
			}
		}},
		{"revoke", Request{LeaseRevoke: 10}, func(t *testing.T, res any, err error) {
			if err != nil || res.(int64) < 5 {
				t.Fatalf("%v %v", res, err)
			}
		}},
		{"revoke gone", Request{LeaseRevoke: 10}, wantErr(kv.ErrLeaseNotFound)},
	}
	for i, tt := range tests {
		on := lead
		if i%2 == 1 {
			on = fol
		}
		t.Run(tt.name, func(t *testing.T) {
			res, err := c.propose(on, tt.req)
			tt.ok(t, res, err)
			c.converged()
		})
	}
	for _, id := range c.ids() {
		if _, ok, _ := c.members[id].DB().Get([]byte("leased")); ok {
			t.Fatalf("member %d: leased key survived the revoke", id)
		}
		if got := c.members[id].DB().CompactRev(); got != 3 {
			t.Fatalf("member %d: compacted at %d", id, got)
		}
	}
}

func TestProposeInvalid(t *testing.T) {
	c := newTestCluster(t, 1, nil)
	c.leader()
	for _, req := range []Request{{}, {Compact: i64(1), LeaseRevoke: 3}} {
		if _, err := c.members[1].Propose(req); !errors.Is(err, ErrInvalidRequest) {
			t.Fatalf("%+v: %v", req, err)
		}
	}
}

func TestProposeNoLeader(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	if _, err := c.members[1].Propose(putReq("a", "b")); !errors.Is(err, ErrNoLeader) {
		t.Fatalf("propose before an election: %v", err)
	}
	if _, err := c.members[1].ReadIndex().Result(); !errors.Is(err, ErrNoLeader) {
		t.Fatalf("read index before an election: %v", err)
	}
}

func TestOpenInvalidConfig(t *testing.T) {
	for name, cfg := range map[string]Config{
		"ID 0":             {Peers: []Peer{{ID: 1}}},
		"not a peer":       {ID: 2, Peers: []Peer{{ID: 1}}},
		"repeated peer":    {ID: 1, Peers: []Peer{{ID: 1}, {ID: 1}}},
		"learner peer":     {ID: 1, Peers: []Peer{{ID: 1}, {ID: 2, IsLearner: true}}},
		"join and peers":   {ID: 1, Join: true, Peers: []Peer{{ID: 1}}},
		"nothing to start": {ID: 1},
		"ticks":            {ID: 1, Peers: []Peer{{ID: 1}}, ElectionTick: 2, HeartbeatTick: 2},
		// Bootstrap applies every peer to raft's configuration, while the
		// member table would refuse the second holder of a URL: the two
		// would disagree until a restart rebuilt raft's from the table's.
		"repeated peer URL": {ID: 1, Peers: []Peer{{ID: 1, PeerURLs: []string{"http://a"}}, {ID: 2, PeerURLs: []string{"http://a"}}}},
		"negative timeout":  {ID: 1, Peers: []Peer{{ID: 1}}, RequestTimeoutTicks: -1},
	} {
		if _, err := Open(cfg); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestProposeUncodableTxn: a txn the entry codec cannot carry (an op of a
// type it does not know, txns nested deeper than it decodes) is refused
// by Propose: once in the log, it would fail to decode on every member,
// stopping them all, and again at every restart.
func TestProposeUncodableTxn(t *testing.T) {
	nested := &kv.TxnRequest{Then: []kv.Op{{Type: kv.OpPut, Key: []byte("k"), Value: []byte("v")}}}
	for range maxTxnDepth + 1 {
		nested = &kv.TxnRequest{Then: []kv.Op{{Type: kv.OpTxn, Txn: nested}}}
	}
	nilNested := &kv.TxnRequest{}
	for range maxTxnDepth + 1 {
		nilNested = &kv.TxnRequest{Then: []kv.Op{{Type: kv.OpTxn, Txn: nilNested}}}
	}
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.MaxTxnOps = 1000 })
	lead := c.leader()
	for name, txn := range map[string]*kv.TxnRequest{
		"op type 9":    {Then: []kv.Op{{Type: 9, Key: []byte("k")}}},
		"else op type": {Else: []kv.Op{{Type: kv.OpTxn, Txn: &kv.TxnRequest{Then: []kv.Op{{Type: 200, Key: []byte("k")}}}}}},
		"too deep":     nested,
		"too deep nil": nilNested,
	} {
		p, err := c.members[lead].Propose(Request{Txn: txn})
		if !errors.Is(err, ErrInvalidRequest) {
			if err == nil {
				_, err = c.wait(p)
			}
			t.Errorf("%s: %v", name, err)
		}
	}
	c.mustPut(lead, "after", "v")
	c.converged()
}
