package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// cli runs the command line and returns its exit status and output.
func cli(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func mustCLI(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	code, out, errOut := cli(t, stdin, args...)
	if code != 0 {
		t.Fatalf("revkv %v: exit %d\nstdout: %s\nstderr: %s", args, code, out, errOut)
	}
	return out
}

// TestShell drives the shell through piped stdin, in memory.
func TestShell(t *testing.T) {
	script := `
put greeting hello
put greeting "hello, world"
get greeting
get greeting --rev 2
watch greet --prefix
txn
put greeting hi
put greet2 "x y"
end
get greet --prefix --keys-only
get greet --prefix --count
del greet2
compact 3
get greeting --rev 2
rev
history
!1
`
	code, out, errOut := cli(t, script, "--mem")
	if code != 1 { // the read below the compacted revision failed
		t.Fatalf("exit %d, want 1 (one command failed)\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	for _, want := range []string{
		"OK revision 2\n",
		"OK revision 3\n",
		"greeting\thello, world\n",
		"greeting\thello\n",
		"watch 1 from revision 4\n",
		"OK revision 4 (2 ops)\n",
		"watch 1: PUT greet2=\"x y\" (revision 4, version 1)\n",
		"watch 1: PUT greeting=hi (revision 4, version 3)\n",
		"greet2\ngreeting\n",
		"2\n",
		"deleted 1, revision 5\n",
		"watch 1: DELETE greet2 (revision 5)\n",
		"compacted to 3\n",
		"revision 5 (compacted 3)\n",
		"put greeting hello\nOK revision 6\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errOut, "error: revision 2, compacted 3: required revision has been compacted") {
		t.Errorf("stderr: %s", errOut)
	}
	if strings.Contains(out+errOut, "goroutine ") || strings.Contains(out+errOut, "panic") {
		t.Fatal("a stack trace in the output")
	}
}

// TestScriptForms: the exact forms the README and scripts use.
func TestScriptForms(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	mustCLI(t, "", "put", "--dir", dir, "k", "v1")
	mustCLI(t, "", "put", "--dir", dir, "k", "v2")
	if out := mustCLI(t, "", "get", "--dir", dir, "k"); out != "k\tv2\n" {
		t.Fatalf("get: %q", out)
	}
	if out := mustCLI(t, "", "get", "k", "--dir", dir, "--rev", "2"); out != "k\tv1\n" {
		t.Fatalf("get at revision 2: %q", out)
	}
	var res struct {
		KVs []struct {
			Key     string `json:"key"`
			Version int64  `json:"version"`
		} `json:"kvs"`
		Revision int64 `json:"revision"`
	}
	if err := json.Unmarshal([]byte(mustCLI(t, "", "get", "--dir", dir, "k", "-o", "json")), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.KVs) != 1 || res.KVs[0].Version != 2 || res.Revision != 3 {
		t.Fatalf("json get: %+v", res)
	}
	mustCLI(t, "put a 1\nput b 2\ndel k\n", "txn", "--dir", dir)
	if out := mustCLI(t, "", "get", "--dir", dir, "", "--prefix"); out != "a\t1\nb\t2\n" {
		t.Fatalf("after txn: %q", out)
	}
	if out := mustCLI(t, "", "verify", dir); !strings.Contains(out, "ok") {
		t.Fatalf("verify: %q", out)
	}
	if out := mustCLI(t, "", "stat", dir); !strings.Contains(out, "revision          4 (") || !strings.Contains(out, "keys              2 live\n") {
		t.Fatalf("stat: %s", out)
	}
	if out := mustCLI(t, "", "dump", dir); strings.Count(out, "\n") != 3 || !strings.Contains(out, " del k\n") {
		t.Fatalf("dump: %s", out)
	}

	for _, args := range [][]string{
		{"frobnicate"},
		{"put", "--dir", dir, "only-a-key"},
		{"get", "--dir", dir, "k", "--prefix", "--end", "z"},
		{"compact", "--dir", dir, "x"},
		{"-o", "yaml", "rev"},
	} {
		if code, _, errOut := cli(t, "", args...); code != 2 || !strings.Contains(errOut, "(see 'revkv help") {
			t.Errorf("revkv %v: exit %d, %q; want a usage error", args, code, errOut)
		}
	}
	for _, args := range [][]string{{"--help"}, {"help"}} {
		if code, out, _ := cli(t, "", args...); code != 0 || !strings.Contains(out, "directory tools:") {
			t.Errorf("revkv %v: exit %d, %q", args, code, out)
		}
	}
	if code, _, errOut := cli(t, "", "get", "--dir", filepath.Join(dir, "nothing"), "k"); code != 1 || !strings.Contains(errOut, "no store") {
		t.Errorf("get on a missing directory: %d %q", code, errOut)
	}
}

// TestVerifyDamage: a flipped byte makes verify exit 1 naming the file and
// the offset.
func TestVerifyDamage(t *testing.T) {
	dir := t.TempDir()
	for i := range 20 {
		mustCLI(t, "", "put", "--dir", dir, "key", strings.Repeat("v", i))
	}
	seg := filepath.Join(dir, "00000000000000000001.log")
	data, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x40
	if err := os.WriteFile(seg, data, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := cli(t, "", "verify", dir)
	if code != 1 {
		t.Fatalf("verify of a damaged directory: exit %d\n%s%s", code, out, errOut)
	}
	if !regexp.MustCompile(`00000000000000000001\.log at offset \d+: frame (header )?checksum`).MatchString(errOut) {
		t.Fatalf("verify does not name the damage: %s", errOut)
	}
	if code, _, errOut := cli(t, "", "get", "--dir", dir, "key"); code != 1 || !strings.Contains(errOut, "00000000000000000001.log") {
		t.Fatalf("get on the damaged directory: exit %d, %s", code, errOut)
	}
}

// TestVerifyIsADryOpen: damage that only the open finds (the newest
// segment gone) makes verify exit 1 with the open's own message; stat on
// an empty directory creates nothing there.
func TestVerifyIsADryOpen(t *testing.T) {
	dir := t.TempDir()
	for i := range 5 {
		mustCLI(t, "", "put", "--dir", dir, "key", strings.Repeat("v", i))
	}
	if err := os.Remove(filepath.Join(dir, "00000000000000000001.log")); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := cli(t, "", "verify", dir)
	_, _, getErr := cli(t, "", "get", "--dir", dir, "key")
	want := "00000000000000000001.log at offset 0: missing: the manifest lists it"
	if code != 1 || !strings.Contains(errOut, want) || !strings.Contains(getErr, want) {
		t.Fatalf("verify without the newest segment: exit %d\n%s%s\nget says %s", code, out, errOut, getErr)
	}

	empty := t.TempDir()
	cli(t, "", "stat", empty)
	if names, _ := os.ReadDir(empty); len(names) != 0 {
		t.Fatalf("stat created %v", names)
	}
}

// TestSnapshotSaveStatusRestore: save a snapshot of a store, describe it,
// restore it into a new directory, and read the data back there.
func TestSnapshotSaveStatusRestore(t *testing.T) {
	tmp := t.TempDir()
	dir, file, restored := filepath.Join(tmp, "a"), filepath.Join(tmp, "snap"), filepath.Join(tmp, "b")
	mustCLI(t, "put x 1\nput y 2\nput x 3\ncompact 3\n", "--dir", dir)
	if out := mustCLI(t, "", "snapshot", "save", file, "--dir", dir); !strings.Contains(out, "at revision 4") {
		t.Fatalf("save: %s", out)
	}
	hash := mustCLI(t, "", "hash", "--dir", dir)
	out := mustCLI(t, "", "snapshot", "status", file)
	for _, want := range []string{"revision          4\n", "compacted         3\n", "keys              2\n"} {
		if !strings.Contains(out, want) {
			t.Fatalf("status lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "hash              "+strings.Fields(hash)[1]+"\n") {
		t.Fatalf("status hash differs from the store's %q:\n%s", hash, out)
	}
	mustCLI(t, "", "snapshot", "restore", file, "--dir", restored)
	if got := mustCLI(t, "", "hash", "--dir", restored); got != hash {
		t.Fatalf("restored hash %q, want %q", got, hash)
	}
	if out := mustCLI(t, "", "get", "--dir", restored, "x"); out != "x\t3\n" {
		t.Fatalf("restored read: %q", out)
	}
	mustCLI(t, "", "put", "--dir", restored, "z", "after")
	if code, _, _ := cli(t, "", "snapshot", "restore", file, "--dir", restored); code == 0 {
		t.Fatal("restore into a directory holding a store succeeded")
	}
	data, _ := os.ReadFile(file)
	data[len(data)/2] ^= 1
	os.WriteFile(file, data, 0o644)
	if code, _, errOut := cli(t, "", "snapshot", "status", file); code != 1 || !strings.Contains(errOut, "corrupt") {
		t.Fatalf("status of a damaged snapshot: %d %s", code, errOut)
	}
}

func TestWatchCommand(t *testing.T) {
	dir := t.TempDir()
	mustCLI(t, "put a/1 x\nput b y\nput a/2 z\ndel a/1\n", "--dir", dir)
	ctx, cancel := context.WithCancel(context.Background())
	var out lockedBuffer
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"watch", "--dir", dir, "a/", "--prefix", "--from", "1"}, strings.NewReader(""), &out, &out)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(out.String(), "\n") < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("watch: exit %d: %s", code, out.String())
	}
	want := "PUT a/1=x (revision 2, version 1)\nPUT a/2=z (revision 4, version 1)\nDELETE a/1 (revision 5)\n"
	// (events also print under --hex and -o json: TestBinaryOutput)
	if out.String() != want {
		t.Fatalf("watch printed:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestBench(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "--mem", "--duration", "200ms", "--watchers", "2", "--keys", "100"},
		{"bench", "--duration", "200ms", "--sync", "none", "--writers", "2", "--readers", "1", "-o", "json"},
	} {
		code, out, errOut := cli(t, "", args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut)
		}
		if !strings.Contains(out, "writes") || !strings.Contains(errOut, "revkv bench:") {
			t.Fatalf("%v: %s\n%s", args, out, errOut)
		}
	}
	if code, _, _ := cli(t, "", "bench", "--sync", "sometimes"); code != 2 {
		t.Fatalf("bad --sync: exit %d", code)
	}
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestDemo: the README's first command runs and shows the store surviving
// a reopen.
func TestDemo(t *testing.T) {
	out := mustCLI(t, "", "demo")
	for _, want := range []string{"greeting\thello\n", "watch 1: PUT greeting=hi", "error: revision 2, compacted 3", "recovered at revision 5", "visits\t1\n"} {
		if !strings.Contains(out, want) {
			t.Fatalf("demo output lacks %q:\n%s", want, out)
		}
	}
}
