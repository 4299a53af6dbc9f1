//go:build !windows

package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
)

// terminal is the revkv shell in a child process on a pseudo-terminal, as
// a user at a keyboard meets it.
type terminal struct {
	t    *testing.T
	f    *os.File // the pty's controlling side
	mu   sync.Mutex
	out  strings.Builder
	done chan struct{}
}

func startTerminal(t *testing.T, env []string, args ...string) *terminal {
	t.Helper()
	cmd := revkvCmd(t, args...)
	cmd.Env = append(cmd.Env, env...)
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 200})
	if err != nil {
		t.Fatal(err)
	}
	term := &terminal{t: t, f: f, done: make(chan struct{})}
	go func() {
		defer close(term.done)
		buf := make([]byte, 4096)
		for {
			n, err := f.Read(buf)
			term.mu.Lock()
			term.out.Write(buf[:n])
			term.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		f.Close()
	})
	return term
}

func (term *terminal) output() string {
	term.mu.Lock()
	defer term.mu.Unlock()
	return term.out.String()
}

// waitFor waits until the output from offset from on contains s, and
// returns the offset after it.
func (term *terminal) waitFor(from int, s string) int {
	term.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		out := term.output()
		if i := strings.Index(out[from:], s); i >= 0 {
			return from + i + len(s)
		}
		time.Sleep(10 * time.Millisecond)
	}
	term.t.Fatalf("the terminal never showed %q; it shows:\n%q", s, term.output()[from:])
	return 0
}

// typeKeys sends keys as typed, one write per key, so that the line
// editor sees each escape sequence whole.
func (term *terminal) typeKeys(keys ...string) {
	for _, k := range keys {
		if _, err := io.WriteString(term.f, k); err != nil {
			term.t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

const (
	keyUp    = "\x1b[A"
	keyLeft  = "\x1b[D"
	keyBack  = "\x7f"
	keyTab   = "\t"
	keyCtrlC = "\x03"
	keyCtrlD = "\x04"
	keyEnter = "\r"
)

// TestShellTerminal drives the shell on a real terminal: arrows edit and
// recall lines, Tab completes, Ctrl-C cancels a line without leaving,
// Ctrl-D leaves, and the history outlives the shell.
func TestShellTerminal(t *testing.T) {
	history := filepath.Join(t.TempDir(), "history")
	env := []string{"REVKV_HISTORY=" + history}
	term := startTerminal(t, env, "--mem")
	at := term.waitFor(0, "revkv> ")

	term.typeKeys("put key v1", keyEnter)
	at = term.waitFor(at, "OK revision 2")
	// Up recalls the line; backspaces and new text edit it.
	term.typeKeys(keyUp, keyBack, "2", keyEnter)
	at = term.waitFor(at, "OK revision 3")
	// Left moves inside the line: "get ky", Left, "e" is "get key".
	term.typeKeys("get ky", keyLeft, "e", keyEnter)
	at = term.waitFor(at, "key\tv2")
	// Ctrl-C drops the line being typed, and the shell goes on (the
	// in-memory store with it).
	term.typeKeys("put junk x", keyCtrlC)
	term.typeKeys("rev", keyEnter)
	at = term.waitFor(at, "revision 3 (compacted -1)")
	// Tab completes a command.
	term.typeKeys("hist", keyTab, keyEnter)
	at = term.waitFor(at, "3  get key")
	if strings.Contains(term.output(), "unknown command") {
		t.Fatalf("an escape sequence reached the command line:\n%q", term.output())
	}
	term.typeKeys(keyCtrlD)
	select {
	case <-term.done:
	case <-time.After(20 * time.Second):
		t.Fatal("Ctrl-D did not end the shell")
	}
	_ = at

	fi, err := os.Stat(history)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("history file mode %v; want 0600 (it holds what was typed)", fi.Mode())
	}
	data, err := os.ReadFile(history)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"put key v1\n", "put key v2\n", "get key\n"} {
		if !strings.Contains(string(data), want) {
			t.Fatalf("history file lacks %q:\n%s", want, data)
		}
	}
	if strings.Contains(string(data), "junk") {
		t.Fatalf("a canceled line is in the history:\n%s", data)
	}

	// The next shell recalls the last one's lines: history, rev, get key,
	// put key v2.
	term = startTerminal(t, env, "--mem")
	at = term.waitFor(0, "revkv> ")
	term.typeKeys(keyUp, keyUp, keyUp, keyUp, keyEnter)
	term.waitFor(at, "OK revision 2")
}
