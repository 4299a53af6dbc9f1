package server_test

import (
	"flag"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/revkv/revkv/etcd/etcdtest"
)

// fake picks the fake the tests run on; they pass on each:
//
//	go test ./server -fake=bufconn|inproc|loopback
var fake = flag.String("fake", "bufconn", "fake to run the tests on: bufconn, inproc or loopback")

func startFake(t *testing.T, cfg etcdtest.Config) *etcdtest.Fake {
	t.Helper()
	switch *fake {
	case "inproc":
		return etcdtest.StartInProcess(t, cfg)
	case "loopback":
		return etcdtest.StartEndpoint(t, cfg)
	case "bufconn":
		return etcdtest.Start(t, cfg)
	}
	t.Fatalf("unknown -fake %q", *fake)
	return nil
}

func newClient(t *testing.T) *clientv3.Client {
	t.Helper()
	return startFake(t, etcdtest.Config{}).Client(clientv3.Config{})
}

// endpoint names the client's server for the Maintenance calls that take
// one (an in-process client has no endpoints, and needs none).
func endpoint(cli *clientv3.Client) string {
	if eps := cli.Endpoints(); len(eps) > 0 {
		return eps[0]
	}
	return "inproc"
}
