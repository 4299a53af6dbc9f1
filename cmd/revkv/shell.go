package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/chzyer/readline"
	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/kv"
	"github.com/revkv/revkv/watch"
)

// shellState is what the shell keeps between lines.
type shellState struct {
	g       *global
	s       *engine.Store
	history []string
	watches []*shellWatch
	nextID  int
	txn     []txnOp
	txnBad  int // the txn's first wrong line (its number in the txn), 0 if none
	inTxn   bool
}

// shellWatch is a watch in the shell: its new events are printed after
// each command, so output stays in the order things happened.
type shellWatch struct {
	id       int
	key, end []byte
	next     int64
}

func (w *shellWatch) matches(key []byte) bool {
	if w.end == nil {
		return string(key) == string(w.key)
	}
	return string(key) >= string(w.key) && (len(w.end) == 0 || string(key) < string(w.end))
}

// lineSource is where the shell's lines come from: a terminal, with line
// editing, or a pipe.
type lineSource interface {
	// next returns the next line, errInterrupted if the user canceled
	// the line being typed (Ctrl-C), or io.EOF at the end.
	next(prompt string) (string, error)
	close() error
}

var errInterrupted = errors.New("interrupted")

// pipeSource reads lines of any length (up to maxLine) from a pipe.
type pipeSource struct{ r *bufio.Reader }

func (p pipeSource) next(string) (string, error) { return readLine(p.r) }
func (p pipeSource) close() error                { return nil }

// termSource reads lines from a terminal with readline: arrows move and
// recall, Tab completes, history is kept in a file between runs.
type termSource struct {
	rl      *readline.Instance
	history string // the history file, or ""
}

func newTermSource(stdin io.Reader, stdout, stderr io.Writer) (*termSource, error) {
	in, _ := stdin.(io.ReadCloser)
	history := historyFile()
	privateFile(history)
	rl, err := readline.NewEx(&readline.Config{
		Prompt:            "revkv> ",
		HistoryFile:       history,
		HistoryLimit:      1000,
		HistorySearchFold: true,
		AutoComplete:      completer(),
		InterruptPrompt:   "^C",
		EOFPrompt:         "exit",
		Stdin:             in,
		Stdout:            stdout,
		Stderr:            stderr,
	})
	if err != nil {
		return nil, err
	}
	return &termSource{rl: rl, history: history}, nil
}

// privateFile makes the file name, if any, readable by its owner only,
// creating it if need be: a history holds the keys and values typed,
// which readline would leave readable by everyone (it creates files 0666,
// before the umask, and rewrites them so when it trims them).
func privateFile(name string) {
	if name == "" {
		return
	}
	if f, err := os.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err == nil {
		f.Close()
	}
	os.Chmod(name, 0o600)
}

func (t *termSource) next(prompt string) (string, error) {
	t.rl.SetPrompt(prompt)
	line, err := t.rl.Readline()
	if errors.Is(err, readline.ErrInterrupt) {
		return "", errInterrupted
	}
	return line, err
}

func (t *termSource) close() error {
	err := t.rl.Close()
	privateFile(t.history)
	return err
}

// historyFile is where the shell keeps its history: $REVKV_HISTORY, or
// .revkv_history in the home directory; "" (no file) if neither.
func historyFile() string {
	if f, ok := os.LookupEnv("REVKV_HISTORY"); ok {
		return f
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".revkv_history")
}

// shellOnly are the shell's own commands, for help and completion.
var shellOnly = []struct{ name, about string }{
	{"txn", "start a txn: then 'put K V' and 'del K' lines, 'end' to apply them as one revision"},
	{"end", "apply the txn's lines as one revision (nothing is applied if one is wrong)"},
	{"abort", "drop the txn's lines; nothing applied"},
	{"watches", "list this shell's watches"},
	{"unwatch ID", "stop watch ID"},
	{"history", "this session's lines, numbered"},
	{"!N, !!", "run line N of the history again, or the last line"},
	{"help [COMMAND]", "this list, or a command's flags"},
	{"exit, quit", "leave the shell (also Ctrl-D); Ctrl-C cancels the line being typed"},
}

func completer() readline.AutoCompleter {
	var items []readline.PrefixCompleterInterface
	var topics []readline.PrefixCompleterInterface
	for _, name := range sortedNames() {
		if c := commands[name]; c.inShell && name != "help" {
			items = append(items, readline.PcItem(name))
			topics = append(topics, readline.PcItem(name))
		}
	}
	items = append(items, readline.PcItem("help", topics...))
	for _, name := range []string{"watches", "unwatch", "history", "exit", "quit"} {
		items = append(items, readline.PcItem(name))
	}
	return readline.NewPrefixCompleter(items...)
}

func shellHelp(w io.Writer) error {
	fmt.Fprint(w, "store commands ('help COMMAND' for its flags):\n")
	for _, name := range commandGroups[0].names {
		c := commands[name]
		fmt.Fprintf(w, "  %-34s %s\n", trimUsage(c.usage(), 34), c.summary)
	}
	fmt.Fprint(w, "\nshell commands:\n")
	for _, c := range shellOnly {
		fmt.Fprintf(w, "  %-34s %s\n", c.name, c.about)
	}
	fmt.Fprint(w, `
A watch prints its events after each command. Up and down recall earlier
lines (kept in ~/.revkv_history, or $REVKV_HISTORY); Tab completes a command.
Quoting: "double quotes" take Go escapes (\x00 \n \t \" \\), 'single quotes'
none; -o json or --hex on a line apply to that line.
`)
	return nil
}

// shell runs commands from stdin, one per line, on one store. On a
// terminal it prompts and edits lines; piped, it runs the lines and exits
// 1 if any failed.
func shell(ctx context.Context, g *global, stdin io.Reader, stdout, stderr io.Writer) error {
	s, err := openStore(g.spec(false, newProgress(stderr)))
	if err != nil {
		return err
	}
	defer s.Close()
	var src lineSource = pipeSource{bufio.NewReaderSize(stdin, 1<<16)}
	interactive := isTerminal(stdin)
	if interactive {
		t, err := newTermSource(stdin, stdout, stderr)
		if err != nil {
			return err
		}
		defer t.close()
		src = t
		where := g.dir.v
		if g.mem {
			where = "memory (gone on exit)"
		}
		fmt.Fprintf(stdout, "revkv shell on %s at revision %d; 'help' for commands, Ctrl-D to leave\n", where, s.Rev())
		// While a line is edited, Ctrl-C is a key (the terminal is raw);
		// while a command runs, it is SIGINT, which must not end the
		// shell and lose a store in memory: commands in the shell are
		// short, so the shell ignores it.
		ctx = context.WithoutCancel(ctx)
	}
	failed, err := runShell(ctx, g, s, src, stdout, stderr, false)
	if err != nil {
		return err
	}
	if failed && !interactive {
		return exitError{code: 1}
	}
	return nil
}

// runShell runs lines from src on s until the input ends or "exit". It
// echoes each line if echo (the demo), and reports whether any line
// failed.
func runShell(ctx context.Context, g *global, s *engine.Store, src lineSource, stdout, stderr io.Writer, echo bool) (failed bool, err error) {
	sh := &shellState{g: g, s: s}
	errOut := stderr
	if echo {
		errOut = stdout // the demo reads as one transcript
	}
	comment := false // the last line echoed was a comment
	for n := 1; ctx.Err() == nil; n++ {
		if err := writeErr(stdout); err != nil {
			return failed, err
		}
		prompt := "revkv> "
		if sh.inTxn {
			prompt = "txn> "
		}
		line, err := src.next(prompt)
		switch {
		case err == io.EOF:
			return sh.finish(failed, errOut), nil
		case errors.Is(err, errInterrupted):
			continue
		case errors.Is(err, errLineTooLong):
			fmt.Fprintf(errOut, "error: line %d: %s\n", n, message(err))
			failed = true
			continue
		case err != nil:
			return failed, err
		}
		line = strings.TrimSpace(line)
		if echo {
			if strings.HasPrefix(line, "#") {
				if !comment {
					fmt.Fprintln(stdout)
				}
				fmt.Fprintln(stdout, line)
				comment = true
				continue
			}
			comment = false
			if line != "" {
				fmt.Fprintf(stdout, "%s%s\n", prompt, line)
			}
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if line == "exit" || line == "quit" {
			return sh.finish(failed, errOut), nil
		}
		if strings.HasPrefix(line, "!") { // !N or !!: run a line of the history again
			again, err := sh.recall(line)
			if err != nil {
				fmt.Fprintf(errOut, "error: %v\n", err)
				failed = true
				continue
			}
			line = again
			fmt.Fprintln(stdout, line)
		}
		sh.history = append(sh.history, line)
		if err := sh.exec(ctx, line, stdout, errOut); err != nil {
			fmt.Fprintf(errOut, "error: %s\n", shellMessage(err))
			failed = true
		}
		if !sh.poll(stdout, errOut) {
			failed = true
		}
	}
	return failed, nil
}

// finish reports a txn the input left open.
func (sh *shellState) finish(failed bool, errOut io.Writer) bool {
	if sh.inTxn {
		fmt.Fprintln(errOut, "error: the input ended inside a txn; nothing applied")
		return true
	}
	return failed
}

// shellMessage is err for the shell: a usage error names the help to read.
func shellMessage(err error) string {
	var ue *usageError
	if errors.As(err, &ue) && ue.cmd != "" {
		return fmt.Sprintf("%s: %s ('help %s' for its usage)", ue.cmd, ue.msg, ue.cmd)
	}
	return message(err)
}

func (sh *shellState) recall(line string) (string, error) {
	if len(sh.history) == 0 {
		return "", fmt.Errorf("no history yet")
	}
	if line == "!!" {
		return sh.history[len(sh.history)-1], nil
	}
	n, err := strconv.Atoi(line[1:])
	if err != nil || n < 1 || n > len(sh.history) {
		return "", fmt.Errorf("%s: no such line in the history (1..%d; 'history' lists them)", line, len(sh.history))
	}
	return sh.history[n-1], nil
}

// exec runs one line of the shell.
func (sh *shellState) exec(ctx context.Context, line string, out, errOut io.Writer) error {
	if sh.inTxn {
		return sh.txnLine(line, out)
	}
	args, err := splitArgs(line)
	if err != nil {
		return err
	}
	switch args[0] {
	case "help":
		if len(args) == 1 {
			return shellHelp(out)
		}
		if c, ok := commands[args[1]]; ok && c.inShell {
			return commandHelp(out, c)
		}
		return usagef("no shell command %q ('help' lists them)", args[1])
	case "history":
		for i, h := range sh.history {
			fmt.Fprintf(out, "%4d  %s\n", i+1, h)
		}
		return nil
	case "txn":
		sh.inTxn = true
		fmt.Fprintln(out, "txn: 'put KEY VALUE' and 'del KEY' lines, then 'end' to apply them as one revision ('abort' to drop them)")
		return nil
	case "end", "commit", "abort":
		return usagef("%s: no txn is open ('txn' starts one)", args[0])
	case "watches":
		for _, w := range sh.watches {
			fmt.Fprintf(out, "watch %d: %s from revision %d\n", w.id, describeRange(w.key, w.end), w.next)
		}
		return nil
	case "unwatch":
		return sh.unwatch(args, out)
	}
	c, ok := commands[args[0]]
	if !ok || !c.inShell {
		return usagef("unknown command %q ('help' lists them)", args[0])
	}
	lg := *sh.g // flags in a line (-o json) last for that line
	lg.dir.set, lg.mem = false, false
	e, err := parseCommand(c, &lg, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return commandHelp(out, c)
	}
	if err != nil {
		return inCommand(c.name, err)
	}
	if lg.mem || lg.dir.set {
		return inCommand(c.name, usagef("--dir and --mem choose the shell's store when it starts; this shell is on one store"))
	}
	e.s, e.out, e.errOut, e.sh = sh.s, out, errOut, sh
	e.in = strings.NewReader("")
	return inCommand(c.name, c.run(ctx, e))
}

func (sh *shellState) txnLine(line string, out io.Writer) error {
	e := &env{g: sh.g, s: sh.s, out: out}
	switch line {
	case "end", "commit":
		ops, bad := sh.txn, sh.txnBad
		sh.txn, sh.txnBad, sh.inTxn = nil, 0, false
		if bad > 0 {
			return fmt.Errorf("txn not applied: its line %d was wrong; nothing applied", bad)
		}
		return applyTxn(e, ops)
	case "abort":
		sh.txn, sh.txnBad, sh.inTxn = nil, 0, false
		fmt.Fprintln(out, "txn aborted; nothing applied")
		return nil
	}
	op, err := e.parseTxnOp(line)
	if err != nil {
		// A script must not apply the lines around a wrong one: the txn
		// now applies nothing.
		if sh.txnBad == 0 {
			sh.txnBad = len(sh.txn) + 1
		}
		return fmt.Errorf("%w (this txn will apply nothing: 'abort', then start again)", err)
	}
	sh.txn = append(sh.txn, op)
	return nil
}

func (sh *shellState) unwatch(args []string, out io.Writer) error {
	if len(args) != 2 {
		return usagef("usage: unwatch ID ('watches' lists them)")
	}
	for i, w := range sh.watches {
		if strconv.Itoa(w.id) == args[1] {
			sh.watches = append(sh.watches[:i], sh.watches[i+1:]...)
			fmt.Fprintf(out, "watch %d stopped\n", w.id)
			return nil
		}
	}
	return fmt.Errorf("no watch %s ('watches' lists them)", args[1])
}

func describeRange(key, end []byte) string {
	q := func(b []byte) string { return quoteIfNeeded(b, true) }
	switch {
	case end == nil:
		return q(key)
	case len(end) == 0:
		return "keys from " + q(key)
	}
	return fmt.Sprintf("keys in [%s, %s)", q(key), q(end))
}

func (sh *shellState) addWatch(e *env, key, end []byte, from int64) error {
	sh.nextID++
	w := &shellWatch{id: sh.nextID, key: key, end: end, next: from}
	if from <= 0 {
		w.next = e.s.Rev() + 1
	}
	sh.watches = append(sh.watches, w)
	return e.emit(map[string]any{"watch": w.id, "from": w.next}, "watch %d from revision %d\n", w.id, w.next)
}

// poll prints what each watch has not printed yet. It reports false if a
// watch ended with an error.
func (sh *shellState) poll(out, errOut io.Writer) (ok bool) {
	v, err := sh.s.View()
	if err != nil {
		return true // a closed store: the command that closed it said so
	}
	e := &env{g: sh.g, out: out}
	kept := sh.watches[:0]
	ok = true
	for _, w := range sh.watches {
		live := true
		for ev, err := range v.Events(w.next) {
			if err != nil {
				fmt.Fprintf(errOut, "error: watch %d ends: %s\n", w.id, compactedMessage(err, w.next, v.CompactRev()))
				live, ok = false, false
				break
			}
			if w.matches(ev.KV.Key) {
				fmt.Fprintf(out, "watch %d: %s\n", w.id, e.formatEvent(ev))
			}
		}
		if live {
			w.next = max(w.next, v.Rev()+1)
			kept = append(kept, w)
		}
	}
	sh.watches = kept
	return ok
}

// compactedMessage explains a watch that compaction overtook.
func compactedMessage(err error, next, compactRev int64) string {
	if errors.Is(err, kv.ErrCompacted) {
		return fmt.Sprintf("its next revision %d was compacted (the store is compacted to %d); watch again with --from %d", next, compactRev, compactRev+1)
	}
	return message(err)
}

func (e *env) formatEvent(ev kv.Event) string {
	if ev.Type == kv.Delete {
		return fmt.Sprintf("DELETE %s (revision %d)", e.word(ev.KV.Key), ev.KV.ModRevision)
	}
	return fmt.Sprintf("PUT %s=%s (revision %d, version %d)", e.word(ev.KV.Key), e.word(ev.KV.Value), ev.KV.ModRevision, ev.KV.Version)
}

// cmdWatch prints changes to the keys: in the shell after each command;
// on its own, as they come, from --from, until interrupted.
func cmdWatch(ctx context.Context, e *env) error {
	key, end, err := e.keyRange()
	if err != nil {
		return err
	}
	if e.sh != nil {
		return e.sh.addWatch(e, key, end, e.o.from)
	}
	if e.g.mem {
		return usagef("--mem would wait forever: a store in memory is new and has no other writer; in the shell ('revkv --mem', then 'watch KEY') its events print after each command")
	}
	ws := watch.New(e.s, watch.Options{})
	defer ws.Close()
	w := ws.NewWatcher()
	defer w.Close()
	if _, err := w.WatchRange(watch.Request{Key: key, End: end, StartRev: e.o.from}); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case resp, ok := <-w.Chan():
			if !ok {
				return nil
			}
			if resp.Err != nil {
				if errors.Is(resp.Err, kv.ErrCompacted) {
					return &explained{msg: fmt.Sprintf("watch ended: the revisions it needed are compacted (the store is compacted to %d); watch again with --from %d", resp.CompactRevision, resp.CompactRevision+1), err: resp.Err}
				}
				return resp.Err
			}
			for _, ev := range resp.Events {
				if e.json() {
					j := struct {
						Type string `json:"type"`
						KV   jsonKV `json:"kv"`
					}{Type: ev.Type.String(), KV: toJSON(ev.KV)}
					e.emit(j, "")
				} else {
					fmt.Fprintln(e.out, e.formatEvent(ev))
				}
			}
			if err := writeErr(e.out); err != nil {
				return err
			}
		}
	}
}
