// Package etcdctltest runs etcdctl v3.7.3, built from the Go module proxy,
// against the revkv-etcd command: every command against a single member
// (TestEtcdctl), and the membership and endpoint commands against a
// 3-member cluster of revkv-etcd processes (TestEtcdctlCluster), the same
// steps that TestEtcdctlClusterEtcd checks against etcd itself. It builds
// two binaries (about 40 s the first time, a few seconds once the build
// cache has them), so it runs only when asked:
//
//	cd etcd && REVKV_ETCDCTL=1 go test ./etcdctltest -v
//
// With REVKV_ETCDCTL_DUMP=1 a failed test logs the goroutines of every
// revkv-etcd it started (SIGQUIT), to find a hang. Without network access
// to the module proxy the etcdctl build fails and the test skips, saying
// so.
package etcdctltest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/revkv/revkv/etcd/internal/etcdctlbuild"
)

// build returns paths of etcdctl v3.7.3 and of revkv-etcd.
func build(t *testing.T) (etcdctl, server string) {
	etcdctl = buildEtcdctl(t)
	server = filepath.Join(filepath.Dir(etcdctl), "revkv-etcd")
	cmd := exec.Command("go", "build", "-o", server, "github.com/revkv/revkv/etcd/cmd/revkv-etcd")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build revkv-etcd: %v\n%s", err, out)
	}
	return etcdctl, server
}

// buildEtcdctl returns the path of etcdctl v3.7.3, in a temporary
// directory; it skips the test unless REVKV_ETCDCTL is set.
func buildEtcdctl(t *testing.T) string {
	if os.Getenv("REVKV_ETCDCTL") == "" {
		t.Skip("builds etcdctl v3.7.3 from the module proxy: run with REVKV_ETCDCTL=1")
	}
	etcdctl, err := etcdctlbuild.Build(t.TempDir())
	if err != nil {
		t.Skipf("cannot build etcdctl v3.7.3 from the module proxy (no network?): %v", err)
	}
	return etcdctl
}

// ctl runs etcdctl against one endpoint.
type ctl struct {
	t        *testing.T
	bin      string
	endpoint string
}

func (c ctl) cmd(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, c.bin, append([]string{"--endpoints=" + c.endpoint, "--dial-timeout=5s", "--command-timeout=10s"}, args...)...)
	return cmd
}

// run runs etcdctl and returns its standard output; it fails the test if
// etcdctl fails.
func (c ctl) run(stdin string, args ...string) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := c.cmd(ctx, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		c.t.Fatalf("etcdctl %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

// expect runs etcdctl and checks its output against a regular expression
// (anchored at both ends, (?s) so that . matches newlines).
func (c ctl) expect(want string, args ...string) string {
	c.t.Helper()
	return c.expectIn("", want, args...)
}

func (c ctl) expectIn(stdin, want string, args ...string) string {
	c.t.Helper()
	out := c.run(stdin, args...)
	if !regexp.MustCompile(`(?s)^` + want + `$`).MatchString(out) {
		c.t.Errorf("etcdctl %s:\n got %q\nwant %q", strings.Join(args, " "), out, want)
	}
	return out
}

// stream starts a long-running etcdctl (watch, lock, elect) and returns its
// output lines as they come; the process is killed when the test ends.
func (c ctl) stream(args ...string) <-chan string {
	c.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := c.cmd(ctx, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		s := bufio.NewScanner(out)
		for s.Scan() {
			lines <- s.Text()
		}
		io.Copy(io.Discard, out)
	}()
	c.t.Cleanup(func() {
		cancel()
		cmd.Wait()
	})
	return lines
}

func next(t *testing.T, lines <-chan string, want string) {
	t.Helper()
	select {
	case got, ok := <-lines:
		if !ok {
			t.Fatalf("stream ended waiting for %q", want)
		}
		if !regexp.MustCompile(`^` + want + `$`).MatchString(got) {
			t.Fatalf("got line %q, want %q", got, want)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("no line %q after 15 s", want)
	}
}

func startServer(t *testing.T, bin string) string {
	addr := freeAddr(t)
	startProcess(t, bin, true, "-dir", t.TempDir(), "-listen", addr)
	return addr
}

// freeAddr returns a loopback address nothing listens on now.
func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startProcess starts revkv-etcd with args and waits until it listens on
// the address of its -listen or -listen-client-urls flag. When the test
// ends it is interrupted (a graceful shutdown); if clean, its exit status
// must say that went well.
func startProcess(t *testing.T, bin string, clean bool, args ...string) {
	var addr string
	for i, a := range args[:len(args)-1] {
		if a == "-listen" || a == "--listen-client-urls" {
			addr = strings.TrimPrefix(args[i+1], "http://")
		}
	}
	cmd := exec.Command(bin, args...)
	var logs strings.Builder
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if t.Failed() && os.Getenv("REVKV_ETCDCTL_DUMP") != "" {
			// Its goroutines, to stderr (logged below), for a hang.
			cmd.Process.Signal(syscall.SIGQUIT)
		}
		cmd.Process.Signal(os.Interrupt)
		var err error
		select {
		case err = <-exited:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-exited
			err = errors.New("no exit 20 s after SIGINT (killed)")
			clean = true // a hang is a failure even where an exit status is not
		}
		switch {
		case err != nil && clean:
			t.Errorf("revkv-etcd %s: %v\n%s", strings.Join(args, " "), err, logs.String())
		case t.Failed():
			t.Logf("revkv-etcd %s: exit %v\n%s", strings.Join(args, " "), err, logs.String())
		}
	})
	for begin := time.Now(); time.Since(begin) < 10*time.Second; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
	}
	t.Fatalf("revkv-etcd did not listen on %s:\n%s", addr, logs.String())
}

func TestEtcdctl(t *testing.T) {
	etcdctl, server := build(t)
	c := ctl{t: t, bin: etcdctl, endpoint: startServer(t, server)}

	t.Run("put/get/del", func(t *testing.T) {
		c := ctl{t: t, bin: c.bin, endpoint: c.endpoint}
		c.expect("OK\n", "put", "k1", "v1")
		c.expect("OK\nk1\nv1\n", "put", "k1", "v2", "--prev-kv")
		c.expect("OK\n", "put", "k2", "v3")
		c.expect("OK\n", "put", "k3", "v4")
		c.expect("k1\nv2\n", "get", "k1")
		c.expect("k1\n\nk2\n\nk3\n\n", "get", "k", "--prefix", "--keys-only")
		c.expect("v2\nv3\nv4\n", "get", "k", "--prefix", "--print-value-only")
		c.expect("k3\nv4\nk2\nv3\nk1\nv2\n", "get", "k", "--prefix", "--sort-by=MODIFY", "--order=DESCEND")
		c.expect("k2\nv3\n", "get", "k2", "--from-key", "--limit=1")
		c.expect("k1\nv2\n", "get", "k1", "--consistency=s")
		// The first put of k1 was at revision 2 (1 is the empty store).
		c.expect("k1\nv1\n", "get", "k1", "--rev=2")
		var resp struct {
			Header struct{ Revision int64 } `json:"header"`
			Kvs    []struct {
				Key            []byte `json:"key"`
				CreateRevision int64  `json:"create_revision"`
				ModRevision    int64  `json:"mod_revision"`
				Version        int64  `json:"version"`
			} `json:"kvs"`
			Count int64 `json:"count"`
		}
		if err := json.Unmarshal([]byte(c.run("", "get", "k1", "-w", "json")), &resp); err != nil {
			t.Fatal(err)
		}
		if resp.Header.Revision != 5 || resp.Count != 1 || string(resp.Kvs[0].Key) != "k1" || resp.Kvs[0].CreateRevision != 2 || resp.Kvs[0].ModRevision != 3 || resp.Kvs[0].Version != 2 {
			t.Errorf("get -w json: %+v", resp)
		}
		c.expect(`(?s).*"Count" : 3\n.*`, "get", "k", "--prefix", "--count-only", "--write-out=fields")
		c.expect("1\nk1\nv2\n", "del", "k1", "--prev-kv")
		c.expect("2\n", "del", "k", "--prefix")
		c.expect("", "get", "k", "--prefix")
		c.expect("OK\n", "put", "z1", "1")
		c.expect("1\n", "del", "z", "--from-key")
	})

	t.Run("txn", func(t *testing.T) {
		c := ctl{t: t, bin: c.bin, endpoint: c.endpoint}
		c.expect("OK\n", "put", "t", "1")
		// compares, blank line, success ops, blank line, failure ops.
		c.expectIn("value(\"t\") = \"1\"\n\nput t 2\nget t\n\nput t 9\n\n", "compares:\nsuccess requests \\(get, put, del\\):\nfailure requests \\(get, put, del\\):\nSUCCESS\n\nOK\n\nt\n2\n", "txn", "-i")
		c.expectIn("value(\"t\") = \"1\"\nmod(\"t\") > \"0\"\n\nput t 3\n\ndel t\n\n", "FAILURE\n\n1\n", "txn")
		c.expectIn("version(\"t\") = \"0\"\ncreate(\"t\") = \"0\"\n\nput t new\n\n\n", "SUCCESS\n\nOK\n", "txn")
	})

	t.Run("watch", func(t *testing.T) {
		c := ctl{t: t, bin: c.bin, endpoint: c.endpoint}
		// From the next revision on, so that the watch sees the puts
		// below however late etcdctl starts.
		var resp struct {
			Header struct{ Revision int64 } `json:"header"`
		}
		if err := json.Unmarshal([]byte(c.run("", "get", "w", "-w", "json")), &resp); err != nil {
			t.Fatal(err)
		}
		lines := c.stream("watch", "w", "--prefix", "--prev-kv", fmt.Sprintf("--rev=%d", resp.Header.Revision+1))
		c.run("", "put", "w1", "a")
		next(t, lines, "PUT")
		next(t, lines, "w1")
		next(t, lines, "a")
		c.run("", "put", "w1", "b")
		next(t, lines, "PUT")
		next(t, lines, "w1")
		next(t, lines, "a") // prev kv
		next(t, lines, "w1")
		next(t, lines, "b")
		c.run("", "del", "w1")
		next(t, lines, "DELETE")
		next(t, lines, "w1")
		next(t, lines, "b") // prev kv
		next(t, lines, "w1")
		// From a past revision: the history, in order.
		out := c.stream("watch", "w1", "--rev=1")
		next(t, out, "PUT")
		next(t, out, "w1")
	})

	t.Run("lease", func(t *testing.T) {
		c := ctl{t: t, bin: c.bin, endpoint: c.endpoint}
		out := c.expect(`lease [0-9a-f]+ granted with TTL\(60s\)\n`, "lease", "grant", "60")
		id := strings.Fields(out)[1]
		c.expect("OK\n", "put", "leased", "v", "--lease="+id)
		// On a loaded machine the seconds between grant and timetolive
		// are several.
		c.expect(`lease `+id+` granted with TTL\(60s\), remaining\((5[0-9]|60)s\), attached keys\(\[leased\]\)\n`, "lease", "timetolive", id, "--keys")
		c.expect(`lease `+id+` keepalived with TTL\(60\)\n`, "lease", "keep-alive", "--once", id)
		// The streaming keep-alive renews until it is stopped.
		ka := c.stream("lease", "keep-alive", id)
		next(t, ka, `lease `+id+` keepalived with TTL\(60\)`)
		c.expect(`(?s)found 1 leases\n`+id+`\n`, "lease", "list")
		c.expect(`lease `+id+` revoked\n`, "lease", "revoke", id)
		c.expect("", "get", "leased")
		c.expect(`lease `+id+` already expired\n`, "lease", "timetolive", id)
	})

	t.Run("compaction", func(t *testing.T) {
		c := ctl{t: t, bin: c.bin, endpoint: c.endpoint}
		var resp struct {
			Header struct{ Revision int64 } `json:"header"`
		}
		if err := json.Unmarshal([]byte(c.run("", "get", "x", "-w", "json")), &resp); err != nil {
			t.Fatal(err)
		}
		rev := resp.Header.Revision
		c.expect(fmt.Sprintf("compacted revision %d\n", rev-1), "compaction", fmt.Sprint(rev-1))
		c.expect(fmt.Sprintf("compacted revision %d\n", rev), "compaction", "--physical", fmt.Sprint(rev))
		out, err := c.cmd(context.Background(), "get", "k1", "--rev=2").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "required revision has been compacted") {
			t.Errorf("get below the compacted revision: %v %s", err, out)
		}
	})

	t.Run("endpoint", func(t *testing.T) {
		c := ctl{t: t, bin: c.bin, endpoint: c.endpoint}
		c.expect(regexp.QuoteMeta(c.endpoint)+` is healthy: successfully committed proposal: took = .*\n`, "endpoint", "health")
		c.expect(regexp.QuoteMeta(c.endpoint)+`, [0-9a-f]+, 3\.7\.3, .*\n`, "endpoint", "status")
		c.expect(regexp.QuoteMeta(c.endpoint)+`, [0-9]+, [0-9]+\n`, "endpoint", "hashkv")
		c.expect(`(?s).*"version":"3.7.3".*`, "endpoint", "status", "-w", "json")
	})

	t.Run("snapshot", func(t *testing.T) {
		c := ctl{t: t, bin: c.bin, endpoint: c.endpoint}
		file := filepath.Join(t.TempDir(), "snap.db")
		c.expect(`(?s).*Snapshot saved at `+regexp.QuoteMeta(file)+`\n.*`, "snapshot", "save", file)
		if st, err := os.Stat(file); err != nil || st.Size() == 0 {
			t.Fatalf("snapshot file: %v", err)
		}
	})

	t.Run("member list", func(t *testing.T) {
		c := ctl{t: t, bin: c.bin, endpoint: c.endpoint}
		c.expect(`[0-9a-f]+, started, [^,]+, [^,]*, http://`+regexp.QuoteMeta(c.endpoint)+`, false\n`, "member", "list")
	})

	t.Run("lock", func(t *testing.T) {
		c := ctl{t: t, bin: c.bin, endpoint: c.endpoint}
		// The command runs while the lock is held.
		c.expect("locked\n", "lock", "mylock", "echo", "locked")
		// Held by one etcdctl (it prints the lock key and holds on),
		// another waits: with a timeout it gives up.
		held := c.stream("lock", "mylock")
		next(t, held, "mylock/[0-9a-f]+")
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		out, err := c.cmd(ctx, "lock", "mylock", "echo", "no").CombinedOutput()
		if err == nil || strings.Contains(string(out), "no\n") {
			t.Errorf("second lock while held: %v %q", err, out)
		}
	})

	t.Run("elect", func(t *testing.T) {
		c := ctl{t: t, bin: c.bin, endpoint: c.endpoint}
		leader := c.stream("elect", "myelection", "p1")
		next(t, leader, "myelection/[0-9a-f]+")
		next(t, leader, "p1")
		obs := c.stream("elect", "-l", "myelection")
		next(t, obs, "myelection/[0-9a-f]+")
		next(t, obs, "p1")
	})
}
