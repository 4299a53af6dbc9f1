// Command revkv pokes at a revkv store: an interactive shell with line
// editing, scriptable commands for the same operations, and tools to
// inspect, check, salvage and measure a data directory.
//
//	revkv demo                           a short tour on a temporary store
//	revkv [--dir D | --mem]              the shell (or commands piped on stdin)
//	revkv put [--dir D] KEY VALUE        one command, then exit (VALUE "-": stdin)
//	revkv get [--dir D] KEY [--prefix | --end E | --from-key] [--rev R] [--limit N]
//	revkv help COMMAND                   a command's flags and arguments
//	revkv stat DIR | verify DIR | dump DIR | salvage DIR NEWDIR
//	revkv snapshot save FILE [--dir D] | status FILE | restore FILE --dir D
//	revkv bench [--writers N] [--readers N] [--watchers N] [--duration D] ...
//	revkv version
//
// The data directory defaults to ./revkv.data; --mem uses a store in
// memory that disappears on exit. Keys and values are bytes: -o json
// prints them in base64 (as etcdctl does), --hex reads and prints them in
// hexadecimal, and text output quotes, Go-style, any that holds a tab, a
// newline or another byte that would make it ambiguous. Errors go to
// stderr, one line each; the exit status is 0 on success, 1 on failure
// (verify: damage found) and 2 on a usage error.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"syscall"
)

// version is this release of revkv (see CHANGELOG.md).
const version = "0.1.0"

func main() {
	// A closed stdout (revkv demo | head -1) must end the command through
	// its deferred clean-up (the demo's temporary directory), not kill the
	// process: with SIGPIPE caught, a write to the closed pipe returns an
	// error instead.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run runs the command line args and returns the exit status.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	out := &stickyWriter{w: stdout}
	err := dispatch(ctx, args, stdin, out, stderr)
	if err == nil {
		err = out.err
	}
	return report(err, stderr)
}

// report prints err as one line on stderr and returns the exit status.
func report(err error, stderr io.Writer) int {
	var ee exitError
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	case errors.Is(err, syscall.EPIPE):
		return 1 // stdout was closed: nobody is reading the message either
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "revkv: %s\n", ue.line())
		return 2
	default:
		fmt.Fprintf(stderr, "revkv: %s\n", message(err))
		return 1
	}
}

// libPrefix matches the package prefixes of the library's error messages
// ("revkv: ", "revkv/filelog: "): right for a program that wraps them, but
// repeated noise on a command line that already starts with "revkv: ".
var libPrefix = regexp.MustCompile(`revkv(/[a-z]+)*: `)

// message is err's text without the library's package prefixes.
func message(err error) string {
	return libPrefix.ReplaceAllString(err.Error(), "")
}

// errUsage marks errors in how the command was called (exit status 2).
var errUsage = errors.New("usage")

// usageError is an error in how a command was called: its text, and the
// command whose help explains the right way ("" for revkv itself).
type usageError struct {
	cmd, msg string
}

func (e *usageError) Error() string { return e.msg }
func (e *usageError) Is(target error) bool {
	return target == errUsage
}

// line is the one line printed for e: the mistake and where help is.
func (e *usageError) line() string {
	if e.cmd == "" {
		return e.msg + " (see 'revkv help')"
	}
	return fmt.Sprintf("%s: %s (see 'revkv help %s')", e.cmd, e.msg, e.cmd)
}

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// inCommand names cmd in err if it is a usage error that names none yet.
func inCommand(cmd string, err error) error {
	var ue *usageError
	if errors.As(err, &ue) && ue.cmd == "" {
		return &usageError{cmd: cmd, msg: message(err)}
	}
	return err
}

// exitError carries an exit status of its own (verify's 1, with its
// report already written).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// explained is an error with a message for the user in place of err's
// own, which it still wraps for errors.Is.
type explained struct {
	msg string
	err error
}

func (e *explained) Error() string { return e.msg }
func (e *explained) Unwrap() error { return e.err }

// stickyWriter remembers the first write error (a closed pipe) and drops
// what follows, so that output loops need not check every write.
type stickyWriter struct {
	w   io.Writer
	err error
}

func (s *stickyWriter) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.w.Write(p)
	s.err = err
	return n, err
}

// writeErr returns the first error writing to w, if w remembers one.
func writeErr(w io.Writer) error {
	if s, ok := w.(*stickyWriter); ok {
		return s.err
	}
	return nil
}
