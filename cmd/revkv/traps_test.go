package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/persist/filelog"
)

// TestMain lets a test run this binary as the revkv command in a child
// process (a real stdout pipe, a real terminal): REVKV_TEST_MAIN=1.
func TestMain(m *testing.M) {
	if os.Getenv("REVKV_TEST_MAIN") == "1" {
		main()
	}
	os.Exit(m.Run())
}

// revkvCmd is the revkv command in a child process.
func revkvCmd(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), "REVKV_TEST_MAIN=1")
	return cmd
}

// TestTxnAllOrNothing: a txn whose later line is wrong applies nothing,
// piped or in the shell; "end" closes a one-shot txn as in the shell.
func TestTxnAllOrNothing(t *testing.T) {
	dir := t.TempDir()
	mustCLI(t, "", "put", "--dir", dir, "a", "0")
	for _, input := range []string{
		"put a 1\nput '' 2\n",
		"put a 1\nfrobnicate\n",
		"put a 1\nput b \"\\q\"\n",
	} {
		code, _, errOut := cli(t, input, "txn", "--dir", dir)
		if code == 0 || !strings.Contains(errOut, "nothing applied") {
			t.Errorf("txn %.40q: exit %d, %s", input, code, errOut)
		}
		code, _, errOut = cli(t, "txn\n"+input+"end\n", "--dir", dir)
		if code == 0 {
			t.Errorf("shell txn %.40q: exit 0, %s", input, errOut)
		}
	}
	// A value over the limit, refused before anything is applied.
	code, _, errOut := cli(t, "put a 1\nput b "+strings.Repeat("v", 16<<20+1)+"\n", "txn", "--dir", dir)
	if code != 1 || !strings.Contains(errOut, "txn op 2 (put): value of 16777217 bytes, limit 16777216: key or value too large; nothing applied") {
		t.Errorf("txn with a value over the limit: exit %d, %s", code, errOut)
	}
	if out := mustCLI(t, "", "get", "--dir", dir, "a"); out != "a\t0\n" {
		t.Fatalf("a failed txn applied its first line: %q", out)
	}
	if out := mustCLI(t, "put a 1\nend\nput ignored x\n", "txn", "--dir", dir); out != "OK revision 3 (1 op)\n" {
		t.Fatalf("txn ending in 'end': %q", out)
	}
	if out := mustCLI(t, "put a 2\nabort\n", "txn", "--dir", dir); !strings.Contains(out, "nothing applied") {
		t.Fatalf("txn abort: %q", out)
	}
	if out := mustCLI(t, "", "rev", "--dir", dir); out != "revision 3 (compacted -1)\n" {
		t.Fatalf("after the txns: %q", out)
	}
}

// TestTraps: each trap a new user met, and the messages that leaked
// internals.
func TestTraps(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "d")
	mustCLI(t, "put a 1\nput b 2\nput c 3\n", "--dir", dir)
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr string // a regular expression
	}{
		{"--mem --dir", []string{"put", "--mem", "--dir", dir, "k", "v"}, 2, `^revkv: put: --mem and --dir together: choose one store \(see 'revkv help put'\)\n$`},
		{"watch --mem", []string{"watch", "--mem", "k"}, 2, `--mem would wait forever`},
		{"flag as typed", []string{"get", "--dir", dir, "a", "--rev", "x"}, 2, `^revkv: get: --rev "x": want an integer`},
		{"single dash as typed", []string{"get", "--dir", dir, "a", "-limit=y"}, 2, `-limit "y": want an integer`},
		{"unknown flag", []string{"get", "--dir", dir, "a", "--frob"}, 2, `unknown flag --frob`},
		{"one prefix", []string{"put", "--dir", dir, "", "v"}, 1, `^revkv: key is empty\n$`},
		{"missing dir", []string{"get", "--dir", filepath.Join(tmp, "nosuchdir"), "k"}, 1, `^revkv: no store at \S+nosuchdir: no such directory`},
		{"stat missing dir", []string{"stat", filepath.Join(tmp, "nosuchdir")}, 1, `^revkv: no store at \S+nosuchdir: no such directory`},
		{"not a dir", []string{"put", "--dir", filepath.Join(dir, "00000000000000000001.log"), "k", "v"}, 1, `is not a directory\n$`},
		{"compact -1", []string{"compact", "--dir", dir, "-1"}, 2, `REV -1: revisions are 0 or more`},
		{"bench watchers", []string{"bench", "--mem", "--watchers", "100000", "--keys", "10"}, 2, `--watchers 100000 is more than --keys 10`},
		{"bench dir", []string{"bench", "--dir", dir, "--duration", "10ms"}, 2, `is not empty: bench would write thousands of keys`},
		{"version flag", []string{"version", "--frob"}, 2, `^revkv: version: unknown flag --frob`},
		{"unknown command", []string{"frob"}, 2, `^revkv: unknown command "frob" \(see 'revkv help'\)`},
	} {
		code, _, errOut := cli(t, "", tc.args...)
		if code != tc.code || !regexp.MustCompile(tc.stderr).MatchString(errOut) {
			t.Errorf("%s: revkv %q: exit %d, stderr %q; want %d, %s", tc.name, tc.args, code, errOut, tc.code, tc.stderr)
		}
		if strings.Contains(errOut, "revkv: revkv") || strings.Contains(errOut, "revkv/") {
			t.Errorf("%s: a repeated prefix: %q", tc.name, errOut)
		}
	}

	// --limit says that more keys exist, on stderr.
	code, out, errOut := cli(t, "", "get", "--dir", dir, "a", "--prefix", "--limit", "1")
	if code != 0 || out != "a\t1\n" || errOut != "" {
		t.Fatalf("--limit on one key: %d %q %q", code, out, errOut)
	}
	code, out, errOut = cli(t, "", "get", "--dir", dir, "", "--from-key", "--limit", "1")
	if code != 0 || out != "a\t1\n" || errOut != "(2 more keys not shown: --limit 1)\n" {
		t.Fatalf("--limit: %d %q %q", code, out, errOut)
	}
	if out := mustCLI(t, "", "get", "--dir", dir, "", "--from-key", "--limit", "1", "-o", "json"); !strings.Contains(out, `"count":3,"more":true`) {
		t.Fatalf("--limit json: %s", out)
	}
	// --end "" is every key from KEY on, as in etcd.
	if out := mustCLI(t, "", "get", "--dir", dir, "b", "--end", ""); out != "b\t2\nc\t3\n" {
		t.Fatalf(`--end "": %q`, out)
	}
	if out := mustCLI(t, "", "get", "--dir", dir, "b", "--end=c", "--keys-only"); out != "b\n" {
		t.Fatalf(`--end=c: %q`, out)
	}
	// bench --force runs on a store that holds keys.
	if code, _, errOut := cli(t, "", "bench", "--dir", dir, "--force", "--duration", "50ms", "--keys", "10", "--writers", "1", "--readers", "0", "--sync", "none"); code != 0 {
		t.Fatalf("bench --force: %d %s", code, errOut)
	}

	// A store another open has: "in use", not "locked by another user".
	l, err := filelog.Open(dir, filelog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	code, _, errOut = cli(t, "", "put", "--dir", dir, "k", "v")
	l.Close()
	if code != 1 || !strings.Contains(errOut, "is in use by another process") {
		t.Fatalf("a locked store: %d %q", code, errOut)
	}
}

// TestHelp: every command has its own help, both ways, and the shell's
// help lists every shell command.
func TestHelp(t *testing.T) {
	for name := range commands {
		for _, args := range [][]string{{"help", name}, {name, "--help"}, {name, "-h"}} {
			code, out, errOut := cli(t, "", args...)
			if code != 0 || !strings.HasPrefix(out, "usage: revkv "+name) || errOut != "" {
				t.Errorf("revkv %q: exit %d, %q %q", args, code, out, errOut)
			}
		}
	}
	out := mustCLI(t, "help\nhelp get\n", "--mem")
	for _, want := range []string{"put KEY VALUE", "history", "!N", "abort", "unwatch ID", "watches", "exit", "usage: revkv get KEY"} {
		if !strings.Contains(out, want) {
			t.Errorf("shell help lacks %q:\n%s", want, out)
		}
	}
	if out := mustCLI(t, "", "version"); !strings.HasPrefix(out, "revkv "+version) {
		t.Fatalf("version: %q", out)
	}
}

// TestWatchCompacted: a watch that compaction overtakes says the
// compacted revision and how to watch again.
func TestWatchCompacted(t *testing.T) {
	code, _, errOut := cli(t, "put k 1\nput k 2\ncompact 2\nwatch k --from 1\nput k 3\n", "--mem")
	if code != 1 || errOut != "error: watch 1 ends: its next revision 1 was compacted (the store is compacted to 2); watch again with --from 3\n" {
		t.Fatalf("shell watch below the compacted revision: exit %d, %q", code, errOut)
	}
	dir := t.TempDir()
	mustCLI(t, "put k 1\nput k 2\nput k 3\ncompact 3\n", "--dir", dir)
	code, _, errOut = cli(t, "", "watch", "--dir", dir, "k", "--from", "2")
	if code != 1 || errOut != "revkv: watch ended: the revisions it needed are compacted (the store is compacted to 3); watch again with --from 4\n" {
		t.Fatalf("watch below the compacted revision: %d %q", code, errOut)
	}
}

// TestDemoClosedStdout: revkv demo | head -1 leaves no temporary
// directory behind (a closed pipe ends the demo, not the process).
func TestDemoClosedStdout(t *testing.T) {
	tmp := t.TempDir()
	cmd := revkvCmd(t, "demo")
	cmd.Env = append(cmd.Env, "TMPDIR="+tmp)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := bufio.NewReader(stdout).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	stdout.Close()
	err = cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) && !ee.Exited() {
		t.Fatalf("the demo was killed (%v) instead of ending", err)
	}
	entries, _ := os.ReadDir(tmp)
	if len(entries) != 0 {
		t.Fatalf("the demo left %v behind", entries[0].Name())
	}
}

// TestSalvage: a damaged segment; salvage copies the store up to the
// damage into a new directory, which opens, and names what it left.
func TestSalvage(t *testing.T) {
	tmp := t.TempDir()
	dir, saved := filepath.Join(tmp, "d"), filepath.Join(tmp, "saved")
	for i := range 40 {
		mustCLI(t, "", "put", "--dir", dir, "key", strings.Repeat("v", i))
	}
	seg := filepath.Join(dir, "00000000000000000001.log")
	data, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)*3/4] ^= 0x40
	if err := os.WriteFile(seg, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := cli(t, "", "get", "--dir", dir, "key"); code != 1 || !strings.Contains(errOut, "revkv salvage") {
		t.Fatalf("open of a damaged store does not point at salvage: %d %s", code, errOut)
	}
	code, out, errOut := cli(t, "", "salvage", dir, saved)
	if code != 0 {
		t.Fatalf("salvage: %d %s %s", code, out, errOut)
	}
	m := regexp.MustCompile(`salvaged \S+ into \S+: a store at revision (\d+), from an empty store and the log after it\nleft behind: the log from 00000000000000000001.log offset \d+ on \(revisions after (\d+)\): frame`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("salvage said: %s", out)
	}
	if m[1] != m[2] || m[1] == "41" || m[1] == "1" {
		t.Fatalf("salvaged revision %s: want some but not all of 41", m[1])
	}
	if out := mustCLI(t, "", "verify", saved); strings.Contains(out, "DAMAGED") {
		t.Fatalf("the salvaged copy is damaged: %s", out)
	}
	if out := mustCLI(t, "", "rev", "--dir", saved); !strings.HasPrefix(out, "revision "+m[1]+" ") {
		t.Fatalf("salvaged store: %s", out)
	}
	if code, _, errOut := cli(t, "", "salvage", dir, saved); code != 2 || !strings.Contains(errOut, "is not empty") {
		t.Fatalf("salvage into a full directory: %d %s", code, errOut)
	}
}

// TestProgress: the progress line shows only after a delay, is rewritten
// in place, and is cleared when done.
func TestProgress(t *testing.T) {
	var buf lockedBuffer
	p := &progress{w: &buf, enabled: true}
	p.update("step %d", 1)
	if buf.String() != "" {
		t.Fatal("progress shown at once")
	}
	p.start = time.Now().Add(-time.Second)
	p.update("step %d", 2)
	p.done()
	if got := buf.String(); got != "\r\x1b[Kstep 2\r\x1b[K" {
		t.Fatalf("progress wrote %q", got)
	}
	if newProgress(&buf).on() {
		t.Fatal("progress on for a stderr that is not a terminal")
	}
}

// TestSalvageFromSnapshot: with snapshots, salvage starts from the newest
// sound one and replays the log after it up to the damage; every key it
// brings back has the value it had.
func TestSalvageFromSnapshot(t *testing.T) {
	tmp := t.TempDir()
	dir, saved := filepath.Join(tmp, "d"), filepath.Join(tmp, "saved")
	l, err := filelog.Open(dir, filelog.Options{SnapshotRevs: 15})
	if err != nil {
		t.Fatal(err)
	}
	s, err := engine.Open(l, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 60 {
		if _, err := s.Put([]byte(fmt.Sprintf("key%02d", i)), []byte(fmt.Sprint("v", i))); err != nil {
			t.Fatal(err)
		}
		if i == 29 { // wait for the snapshotter to write one
			for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				if snaps, _ := filepath.Glob(filepath.Join(dir, "*.snap")); len(snaps) > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("no snapshot after 30 revisions with SnapshotRevs 15")
				}
			}
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The log after the last snapshot is in the newest segments (each
	// snapshot starts a new one); damage the newest that has batches.
	segs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	var seg string
	var data []byte
	for i := len(segs) - 1; i >= 0 && seg == ""; i-- {
		b, err := os.ReadFile(segs[i])
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > 200 {
			seg, data = segs[i], b
		}
	}
	if seg == "" {
		t.Fatalf("no segment with batches in %v", segs)
	}
	data[len(data)-40] ^= 0x40 // in the last batches, after every snapshot
	if err := os.WriteFile(seg, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out := mustCLI(t, "", "salvage", dir, saved)
	m := regexp.MustCompile(`a store at revision (\d+), from snapshot snap-\d+\.snap \(revision (\d+)\)`).FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "left behind: the log from "+filepath.Base(seg)) {
		t.Fatalf("salvage said: %s", out)
	}
	rev, _ := strconv.Atoi(m[1])
	snapRev, _ := strconv.Atoi(m[2])
	if rev <= snapRev || rev >= 61 {
		t.Fatalf("salvaged revision %d from a snapshot at %d: want the log after it, and not all of it", rev, snapRev)
	}
	got := mustCLI(t, "", "get", "--dir", saved, "key", "--prefix")
	var want strings.Builder
	for i := range rev - 1 {
		fmt.Fprintf(&want, "key%02d\tv%d\n", i, i)
	}
	if got != want.String() {
		t.Fatalf("salvaged keys:\n%s\nwant:\n%s", got, want.String())
	}
}

// TestSalvageDamagedManifest: with its manifest flipped or deleted, a store
// refuses to open, but salvage reads every segment without it and brings
// back every revision, saying it read the log without the manifest.
func TestSalvageDamagedManifest(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(t *testing.T, man string)
	}{
		{"flipped", func(t *testing.T, man string) {
			b, err := os.ReadFile(man)
			if err != nil {
				t.Fatal(err)
			}
			b[20] ^= 0x40
			if err := os.WriteFile(man, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{"missing", func(t *testing.T, man string) {
			if err := os.Remove(man); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			dir, saved := filepath.Join(tmp, "d"), filepath.Join(tmp, "saved")
			for i := range 40 {
				mustCLI(t, "", "put", "--dir", dir, "key", strings.Repeat("v", i))
			}
			tc.edit(t, filepath.Join(dir, "MANIFEST"))
			if code, _, errOut := cli(t, "", "get", "--dir", dir, "key"); code != 1 || !strings.Contains(errOut, "MANIFEST") {
				t.Fatalf("open with a %s manifest: %d %s", tc.name, code, errOut)
			}
			code, out, errOut := cli(t, "", "salvage", dir, saved)
			if code != 0 {
				t.Fatalf("salvage: %d %s %s", code, out, errOut)
			}
			if !strings.Contains(out, "a store at revision 41, from an empty store") || !strings.Contains(out, "left behind: the manifest: ") {
				t.Fatalf("salvage said: %s", out)
			}
			if out := mustCLI(t, "", "verify", saved); strings.Contains(out, "DAMAGED") {
				t.Fatalf("the salvaged copy is damaged: %s", out)
			}
			if got := mustCLI(t, "", "get", "--dir", saved, "key"); got != "key\t"+strings.Repeat("v", 39)+"\n" {
				t.Fatalf("salvaged value %q", got)
			}
		})
	}
}
