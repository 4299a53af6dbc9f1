package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/revkv/revkv/kv"
)

// global holds the flags that choose the store and the output.
type global struct {
	dir    optString
	mem    bool
	output string
	hex    bool
}

func newGlobal() *global {
	return &global{dir: optString{v: "revkv.data"}, output: "text"}
}

// Which global flags a command takes.
const (
	takesStore  = 1 << iota // --dir, --mem
	takesOutput             // -o, --hex
)

func (g *global) register(fs *flag.FlagSet, which int) {
	if which&takesStore != 0 {
		fs.Var(&g.dir, "dir", "the data directory `D` (default revkv.data)")
		fs.BoolVar(&g.mem, "mem", g.mem, "a store in memory, gone on exit")
	}
	if which&takesOutput != 0 {
		fs.StringVar(&g.output, "o", g.output, "output `FORMAT`: text, or json (keys and values in base64, as etcdctl)")
		fs.BoolVar(&g.hex, "hex", g.hex, "keys and values in hexadecimal, in arguments and in text output")
	}
}

func (g *global) check() error {
	if g.output != "text" && g.output != "json" {
		return usagef("-o %q: want text or json", g.output)
	}
	if g.mem && g.dir.set {
		return usagef("--mem and --dir together: choose one store")
	}
	return nil
}

// optString is a string flag that knows whether it was given, so that
// --end "" (every key from KEY on) differs from no --end.
type optString struct {
	v   string
	set bool
}

func (o *optString) String() string {
	if o == nil {
		return ""
	}
	return o.v
}

func (o *optString) Set(s string) error { o.v, o.set = s, true; return nil }

// parseArgs parses flags among the positional arguments (revkv get KEY
// --rev 3), which package flag alone does not, and names a bad flag as it
// was typed (--rev, not -rev). With interleave false it stops at the first
// positional argument (the command name). "--" ends the flags; "-" and
// negative numbers (compact -1) are positional. -h and --help return
// flag.ErrHelp.
func parseArgs(fs *flag.FlagSet, args []string, interleave bool) ([]string, error) {
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(pos, args[i+1:]...), nil
		}
		if !isFlag(a) {
			if !interleave {
				return append(pos, args[i:]...), nil
			}
			pos = append(pos, a)
			continue
		}
		typed, value, hasValue := strings.Cut(a, "=")
		name := strings.TrimPrefix(strings.TrimPrefix(typed, "-"), "-")
		if name == "h" || name == "help" {
			return nil, flag.ErrHelp
		}
		f := fs.Lookup(name)
		if f == nil {
			return nil, usagef("unknown flag %s", typed)
		}
		switch {
		case hasValue:
		case isBoolFlag(f):
			value = "true"
		case i+1 < len(args):
			i++
			value = args[i]
		default:
			return nil, usagef("flag %s needs a value", typed)
		}
		if err := f.Value.Set(value); err != nil {
			return nil, usagef("%s %q: want %s", typed, value, wants(f))
		}
	}
	return pos, nil
}

// isFlag reports whether a looks like a flag: a dash and a letter.
func isFlag(a string) bool {
	if len(a) < 2 || a[0] != '-' {
		return false
	}
	c := strings.TrimLeft(a, "-")
	return c != "" && (c[0] < '0' || c[0] > '9') && c[0] != '.'
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// wants says what a flag's value must look like.
func wants(f *flag.Flag) string {
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return "a value"
	}
	switch g.Get().(type) {
	case int, int64, uint, uint64:
		return "an integer"
	case time.Duration:
		return "a duration such as 5s or 500ms"
	case bool:
		return "true or false"
	}
	return "a value"
}

func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// dispatch runs one command line.
func dispatch(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	g := newGlobal()
	fs := newFlagSet("revkv")
	g.register(fs, takesStore|takesOutput)
	rest, err := parseArgs(fs, args, false)
	if errors.Is(err, flag.ErrHelp) {
		return writeHelp(stdout)
	}
	if err != nil {
		return err
	}
	if err := g.check(); err != nil {
		return err
	}
	if len(rest) == 0 {
		return shell(ctx, g, stdin, stdout, stderr)
	}
	name, rest := rest[0], rest[1:]
	c, ok := commands[name]
	if !ok {
		return usagef("unknown command %q", name)
	}
	e, err := parseCommand(c, g, rest)
	if errors.Is(err, flag.ErrHelp) {
		return commandHelp(stdout, c)
	}
	if err != nil {
		return inCommand(name, err)
	}
	e.in, e.out, e.errOut = stdin, stdout, stderr
	e.progress = newProgress(stderr)
	if sw, ok := stdout.(*stickyWriter); ok {
		e.stdoutTerm = isTerminal(sw.w)
	}
	if c.store == noStore {
		return inCommand(name, c.run(ctx, e))
	}
	s, err := openStore(g.spec(c.store == readOnly, e.progress))
	if err != nil {
		return err
	}
	e.s = s
	err = c.run(ctx, e)
	if cerr := s.Close(); cerr != nil && !errors.Is(cerr, kv.ErrClosed) {
		err = errors.Join(err, cerr)
	}
	return inCommand(name, err)
}

// parseCommand parses a command's arguments, global flags among them.
func parseCommand(c *command, g *global, args []string) (*env, error) {
	fs := newFlagSet(c.name)
	g.register(fs, c.globals)
	e := &env{g: g}
	if c.flags != nil {
		c.flags(fs, &e.o)
	}
	pos, err := parseArgs(fs, args, true)
	if err != nil {
		return nil, err
	}
	if err := g.check(); err != nil {
		return nil, err
	}
	if len(pos) < c.minArgs || (c.maxArgs >= 0 && len(pos) > c.maxArgs) {
		return nil, usagef("usage: revkv %s", c.usage())
	}
	if n := countTrue(e.o.prefix, e.o.end.set, e.o.fromKey); n > 1 {
		return nil, usagef("--prefix, --end and --from-key choose a range three ways: give one")
	}
	e.args = pos
	return e, nil
}

func countTrue(bs ...bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// writeHelp prints the list of commands.
func writeHelp(w io.Writer) error {
	fmt.Fprint(w, `revkv: an MVCC key-value store (github.com/revkv/revkv)

  revkv demo                  a short tour on a temporary store
  revkv [--dir D | --mem]     the shell ('help' there lists its commands)
  revkv COMMAND [ARGS]        one command; 'revkv help COMMAND' for its flags

`)
	for _, group := range commandGroups {
		fmt.Fprintf(w, "%s:\n", group.title)
		for _, name := range group.names {
			c := commands[name]
			fmt.Fprintf(w, "  %-34s %s\n", trimUsage(c.usage(), 34), c.summary)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprint(w, `The data directory is ./revkv.data unless --dir or --mem says otherwise.
Keys and values are bytes: -o json prints them in base64, --hex in
hexadecimal; text output quotes (Go-style) any that would be ambiguous.
`)
	return nil
}

// trimUsage shortens a usage line to fit a column.
func trimUsage(u string, width int) string {
	if len(u) <= width {
		return u
	}
	if i := strings.Index(u, " ["); i > 0 && i+6 <= width {
		return u[:i] + " [...]"
	}
	return u[:width-3] + "..."
}

// commandHelp prints c's usage, what it does and its flags.
func commandHelp(w io.Writer, c *command) error {
	fmt.Fprintf(w, "usage: revkv %s\n\n%s\n", c.usage(), c.about)
	fs := newFlagSet(c.name)
	var o opts
	if c.flags != nil {
		c.flags(fs, &o)
	}
	printFlags(w, "flags", fs)
	gfs := newFlagSet(c.name)
	newGlobal().register(gfs, c.globals)
	printFlags(w, "global flags", gfs)
	return nil
}

func printFlags(w io.Writer, title string, fs *flag.FlagSet) {
	var lines [][2]string
	fs.VisitAll(func(f *flag.Flag) {
		arg, usage := flag.UnquoteUsage(f)
		dashes := "--"
		if len(f.Name) == 1 {
			dashes = "-"
		}
		name := dashes + f.Name
		if !isBoolFlag(f) {
			name += " " + arg
		}
		lines = append(lines, [2]string{name, usage})
	})
	if len(lines) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%s:\n", title)
	for _, l := range lines {
		fmt.Fprintf(w, "  %-18s %s\n", l[0], l[1])
	}
}

func cmdHelp(_ context.Context, e *env) error {
	if len(e.args) == 0 {
		return writeHelp(e.out)
	}
	c, ok := commands[e.args[0]]
	if !ok {
		return usagef("no command %q", e.args[0])
	}
	return commandHelp(e.out, c)
}

func cmdVersion(_ context.Context, e *env) error {
	commit := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				commit = " (commit " + s.Value[:12] + ")"
			}
		}
	}
	formats := "writes log segment format 2, snapshot format 2 and manifest format 1; reads segments 1-2, snapshots 1-2, manifest 1 (see CHANGELOG.md)"
	return e.emit(map[string]any{"version": version, "go": runtime.Version(), "formats": formats},
		"revkv %s%s, %s, %s/%s\n%s\n", version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH, formats)
}

// valueArg is the value a put was given: the argument itself; "-" reads
// stdin; --file reads a file. The limit is the engine's, checked before
// reading more than it.
func (e *env) valueArg(arg string, given bool) ([]byte, error) {
	switch {
	case e.o.file != "" && given:
		return nil, usagef("a VALUE and --file together: give one")
	case e.o.file != "":
		f, err := os.Open(e.o.file)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return readValue(f, "--file "+e.o.file)
	case !given:
		return nil, usagef("usage: revkv put KEY VALUE (or - for stdin, or --file F)")
	case arg == "-" && e.sh == nil:
		return readValue(e.in, "stdin")
	}
	return e.bytesArg(arg, "VALUE")
}

func readValue(r io.Reader, from string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, kv.MaxValueSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > kv.MaxValueSize {
		return nil, &explained{msg: fmt.Sprintf("the value from %s is over the limit of %d bytes (16 MiB)", from, kv.MaxValueSize), err: kv.ErrTooLarge}
	}
	return b, nil
}

// sortedNames lists the commands in name order.
func sortedNames() []string {
	var names []string
	for n := range commands {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
