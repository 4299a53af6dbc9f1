package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/kv"
	"github.com/revkv/revkv/watch"
)

// shellState is what the shell keeps between lines.
type shellState struct {
	history []string
	watches []*shellWatch
	nextID  int
	txn     []txnOp
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

// shell runs commands from stdin, one per line, on one store. With a
// terminal it prompts; piped, it runs the lines and exits 1 if any failed.
func shell(ctx context.Context, g *global, stdin io.Reader, stdout, stderr io.Writer) error {
	s, err := g.open(false)
	if err != nil {
		return err
	}
	defer s.Close()
	interactive := isTerminal(stdin)
	where := g.dir
	if g.mem {
		where = "memory"
	}
	if interactive {
		fmt.Fprintf(stdout, "revkv shell on %s at revision %d; 'help' for commands, 'exit' to leave\n", where, s.Rev())
	}
	failed, err := runShell(ctx, g, s, stdin, stdout, stderr, interactive, false)
	if err != nil {
		return err
	}
	if failed && !interactive {
		return exitError{code: 1}
	}
	return nil
}

// runShell runs lines from stdin on s until the input ends or "exit". It
// prompts if interactive, echoes each line if echo (the demo), and
// reports whether any line failed.
func runShell(ctx context.Context, g *global, s *engine.Store, stdin io.Reader, stdout, stderr io.Writer, interactive, echo bool) (failed bool, err error) {
	sh := &shellState{}
	sc := bufio.NewScanner(stdin)
	sc.Buffer(nil, kv.MaxValueSize+kv.MaxKeySize+64)
	for {
		if interactive {
			if sh.inTxn {
				fmt.Fprint(stdout, "txn> ")
			} else {
				fmt.Fprint(stdout, "revkv> ")
			}
		}
		if ctx.Err() != nil || !sc.Scan() {
			break
		}
		line := strings.TrimSpace(sc.Text())
		if echo {
			if strings.HasPrefix(line, "#") {
				fmt.Fprintf(stdout, "\n%s\n", line)
				continue
			}
			if line != "" {
				prompt := "revkv> "
				if sh.inTxn {
					prompt = "txn> "
				}
				fmt.Fprintf(stdout, "%s%s\n", prompt, line)
			}
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if line == "exit" || line == "quit" {
			break
		}
		if strings.HasPrefix(line, "!") { // !N or !!: run a line of the history again
			again, err := sh.recall(line)
			if err != nil {
				fmt.Fprintf(stderr, "error: %v\n", err)
				failed = true
				continue
			}
			line = again
			fmt.Fprintln(stdout, line)
		}
		sh.history = append(sh.history, line)
		if err := sh.exec(ctx, g, s, line, stdout); err != nil {
			errOut := stderr
			if echo {
				errOut = stdout // the demo reads as one transcript
			}
			fmt.Fprintf(errOut, "error: %v\n", err)
			failed = true
		}
		sh.poll(s, stdout, stderr)
	}
	if err := sc.Err(); err != nil {
		return failed, err
	}
	if sh.inTxn {
		fmt.Fprintln(stderr, "error: input ended inside a txn; nothing applied")
		failed = true
	}
	return failed, nil
}

func (sh *shellState) recall(line string) (string, error) {
	if len(sh.history) == 0 {
		return "", fmt.Errorf("no history")
	}
	if line == "!!" {
		return sh.history[len(sh.history)-1], nil
	}
	n, err := strconv.Atoi(line[1:])
	if err != nil || n < 1 || n > len(sh.history) {
		return "", fmt.Errorf("%s: no such line in the history (1..%d)", line, len(sh.history))
	}
	return sh.history[n-1], nil
}

// exec runs one line of the shell.
func (sh *shellState) exec(ctx context.Context, g *global, s *engine.Store, line string, out io.Writer) error {
	if sh.inTxn {
		switch line {
		case "end", "commit":
			ops := sh.txn
			sh.txn, sh.inTxn = nil, false
			return applyTxn(&env{s: s, out: out, json: g.output == "json"}, ops)
		case "abort":
			sh.txn, sh.inTxn = nil, false
			fmt.Fprintln(out, "txn aborted; nothing applied")
			return nil
		}
		op, err := parseTxnOp(line)
		if err != nil {
			return err
		}
		sh.txn = append(sh.txn, op)
		return nil
	}
	args, err := splitArgs(line)
	if err != nil {
		return err
	}
	switch args[0] {
	case "help":
		return help(out)
	case "history":
		for i, h := range sh.history {
			fmt.Fprintf(out, "%4d  %s\n", i+1, h)
		}
		return nil
	case "txn":
		sh.inTxn = true
		fmt.Fprintln(out, "txn: 'put KEY VALUE' and 'del KEY' lines, then 'end' to apply them as one revision ('abort' to drop them)")
		return nil
	case "unwatch":
		if len(args) != 2 {
			return fmt.Errorf("%w: unwatch ID", errUsage)
		}
		for i, w := range sh.watches {
			if strconv.Itoa(w.id) == args[1] {
				sh.watches = append(sh.watches[:i], sh.watches[i+1:]...)
				return nil
			}
		}
		return fmt.Errorf("no watch %s", args[1])
	}
	c, ok := commands[args[0]]
	if !ok {
		return fmt.Errorf("unknown command %q ('help' lists them)", args[0])
	}
	lg := *g // flags in a line (-o json) last for that line
	e, err := lg.parseCommand(args[0], c, args[1:])
	if err != nil {
		return err
	}
	e.s, e.out, e.sh = s, out, sh
	e.in = strings.NewReader("")
	return c.run(ctx, e)
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

// poll prints what each watch has not printed yet.
func (sh *shellState) poll(s *engine.Store, out, stderr io.Writer) {
	v, err := s.View()
	if err != nil {
		return
	}
	kept := sh.watches[:0]
	for _, w := range sh.watches {
		ok := true
		for ev, err := range v.Events(w.next) {
			if err != nil {
				fmt.Fprintf(stderr, "error: watch %d ends: %v\n", w.id, err)
				ok = false
				break
			}
			if w.matches(ev.KV.Key) {
				fmt.Fprintf(out, "watch %d: %s\n", w.id, formatEvent(ev))
			}
		}
		if ok {
			w.next = max(w.next, v.Rev()+1)
			kept = append(kept, w)
		}
	}
	sh.watches = kept
}

func formatEvent(ev kv.Event) string {
	if ev.Type == kv.Delete {
		return fmt.Sprintf("DELETE %s (revision %d)", ev.KV.Key, ev.KV.ModRevision)
	}
	return fmt.Sprintf("PUT %s=%s (revision %d, version %d)", ev.KV.Key, ev.KV.Value, ev.KV.ModRevision, ev.KV.Version)
}

// cmdWatch prints changes to the keys: in the shell after each command;
// on its own, as they come, from --from, until interrupted.
func cmdWatch(ctx context.Context, e *env) error {
	key, end := e.keyRange()
	if e.sh != nil {
		return e.sh.addWatch(e, key, end, e.o.from)
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
				return resp.Err
			}
			for _, ev := range resp.Events {
				if e.json {
					j := struct {
						Type string `json:"type"`
						KV   jsonKV `json:"kv"`
					}{Type: ev.Type.String(), KV: toJSON(ev.KV)}
					e.emit(j, "")
				} else {
					fmt.Fprintln(e.out, formatEvent(ev))
				}
			}
		}
	}
}

func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// splitArgs splits a line into words: spaces separate, "double" and
// 'single' quotes group, and a backslash escapes the next character
// outside single quotes.
func splitArgs(line string) ([]string, error) {
	var args []string
	var cur strings.Builder
	inWord := false
	var quote rune
	escaped := false
	for _, r := range line {
		switch {
		case escaped:
			cur.WriteRune(r)
			escaped = false
		case r == '\\' && quote != '\'':
			escaped, inWord = true, true
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				args = append(args, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 || escaped {
		return nil, fmt.Errorf("%w: unterminated quote or escape in %q", errUsage, line)
	}
	if inWord {
		args = append(args, cur.String())
	}
	if len(args) == 0 {
		return nil, fmt.Errorf("%w: empty line", errUsage)
	}
	return args, nil
}

// demoScript is what 'revkv demo' runs.
const demoScript = `# Every write makes a new revision; old revisions stay readable.
put greeting hello
put greeting "hello, world"
get greeting
get greeting --rev 2
# A watch from the next revision; its events print after each command.
watch greeting
# A txn: its writes share one revision.
txn
put greeting hi
put visits 1
end
get "" --prefix -o json
# Compaction drops history below a revision; reads there fail.
compact 3
get greeting --rev 2
hash
`

// demo runs demoScript on a store in a temporary directory, then closes
// and reopens it to show that the writes were durable.
func demo(ctx context.Context, stdout, stderr io.Writer) error {
	dir, err := os.MkdirTemp("", "revkv-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	g := newGlobal()
	g.dir = dir
	s, err := g.open(false)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "A revkv store in %s (sync on every write).\n", dir)
	if _, err := runShell(ctx, g, s, strings.NewReader(demoScript), stdout, stderr, false, true); err != nil {
		s.Close()
		return err
	}
	if err := s.Close(); err != nil {
		return err
	}
	s, err = g.open(false)
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Fprintf(stdout, "\n# Closed and opened again: recovered at revision %d.\n", s.Rev())
	_, err = runShell(ctx, g, s, strings.NewReader("get \"\" --prefix\n"), stdout, stderr, false, true)
	return err
}
