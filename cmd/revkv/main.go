// Command revkv pokes at a revkv store: an interactive shell, scriptable
// commands for the same operations, and tools to inspect, check and
// measure a data directory.
//
//	revkv demo                           a short tour on a temporary store
//	revkv [--dir D | --mem]              shell (reads commands from stdin)
//	revkv put [--dir D] KEY VALUE        one command, then exit
//	revkv get [--dir D] KEY [--prefix] [--rev R] [--limit N] [--keys-only] [--count]
//	revkv del [--dir D] KEY [--prefix | --end E]
//	revkv txn [--dir D]                  ops from stdin: put K V / del K
//	revkv watch [--dir D] KEY [--prefix] [--from REV]
//	revkv compact [--dir D] REV
//	revkv hash [--dir D] [--rev R]
//	revkv rev [--dir D]
//	revkv stat DIR | verify DIR | dump DIR
//	revkv snapshot save FILE [--dir D] | status FILE | restore FILE --dir D
//	revkv bench [--writers N] [--readers N] [--watchers N] [--duration D] ...
//
// The data directory defaults to ./revkv.data; --mem uses a store in
// memory that disappears on exit. Every command takes -o json for JSON
// output. Errors go to stderr; the exit status is 0 on success, 1 on
// failure (verify: damage found) and 2 on a usage error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/revkv/revkv/kv"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// errUsage marks errors in how the command was called (exit status 2).
var errUsage = errors.New("usage")

// exitError carries an exit status of its own (verify's 1 with output
// already written).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// run runs the command line args and returns the exit status.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	err := dispatch(ctx, args, stdin, stdout, stderr)
	var ee exitError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		help(stdout)
		return 0
	case errors.As(err, &ee):
		return ee.code
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "revkv: %v\n", err)
		fmt.Fprintln(stderr, "run 'revkv help' for the commands")
		return 2
	default:
		fmt.Fprintf(stderr, "revkv: %v\n", err)
		return 1
	}
}

func dispatch(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	// Global flags may come before the command: revkv --mem, revkv --dir D.
	g := newGlobal()
	rest, err := g.parse(args)
	if err != nil {
		return err
	}
	if len(rest) == 0 {
		return shell(ctx, g, stdin, stdout, stderr)
	}
	name, rest := rest[0], rest[1:]
	switch name {
	case "help", "-h", "--help":
		return help(stdout)
	case "demo":
		return demo(ctx, stdout, stderr)
	case "stat", "verify", "dump", "snapshot", "bench":
		return dirCommand(ctx, name, g, rest, stdin, stdout, stderr)
	}
	c, ok := commands[name]
	if !ok {
		return fmt.Errorf("%w: unknown command %q", errUsage, name)
	}
	env, err := g.parseCommand(name, c, rest)
	if err != nil {
		return err
	}
	s, err := g.open(c.readOnly)
	if err != nil {
		return err
	}
	env.s, env.in, env.out = s, stdin, stdout
	err = c.run(ctx, env)
	if cerr := s.Close(); !errors.Is(cerr, kv.ErrClosed) {
		err = errors.Join(err, cerr)
	}
	return err
}

func help(w io.Writer) error {
	fmt.Fprint(w, `revkv: an MVCC key-value store (https://github.com/revkv/revkv)

  revkv demo                         a short tour on a temporary store
  revkv [--dir D | --mem]            an interactive shell (or commands piped on stdin)
  revkv COMMAND [--dir D | --mem] ARGS [-o json]

store commands (also in the shell):
`)
	for _, name := range commandOrder {
		c := commands[name]
		fmt.Fprintf(w, "  %-44s %s\n", c.usage, c.summary)
	}
	fmt.Fprint(w, `
directory tools:
  stat DIR                                     revision, keys, segments and snapshots, sizes
  verify DIR                                   a dry-run open plus every checksum; exit 1 on damage
  dump DIR                                     the log, one batch per line
  snapshot save FILE [--dir D]                 write a snapshot of the store
  snapshot status FILE                         describe and check a snapshot
  snapshot restore FILE --dir D                make a new data directory from a snapshot
  bench [--writers N --readers N --watchers N --duration T --sync P ...]
                                               a load generator; see 'revkv bench -h'

The data directory is ./revkv.data unless --dir or --mem says otherwise.
`)
	return nil
}
