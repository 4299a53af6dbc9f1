package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/kv"
)

// opts are the flags of every command (each registers the ones it takes).
type opts struct {
	prefix, fromKey, keysOnly, count, force bool
	rev, limit, lease, from                 int64
	end                                     optString
	file                                    string
	bench                                   benchConfig
}

// env is what a command runs with.
type env struct {
	g        *global
	s        *engine.Store // nil for commands that open no store
	in       io.Reader
	out      io.Writer
	errOut   io.Writer
	args     []string
	o        opts
	sh       *shellState // nil outside the shell
	progress *progress
	// stdoutTerm: stdout is a terminal (so output shows progress itself).
	stdoutTerm bool
}

func (e *env) json() bool { return e.g.output == "json" }

// emit writes v as a JSON line, or the formatted text.
func (e *env) emit(v any, format string, args ...any) error {
	if e.json() {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(e.out, "%s\n", b)
		return err
	}
	_, err := fmt.Fprintf(e.out, format, args...)
	return err
}

// storeUse is whether a command opens the store --dir or --mem names.
type storeUse int

const (
	noStore storeUse = iota
	readOnly
	readWrite
)

type command struct {
	name, args, summary, about string
	minArgs, maxArgs           int // maxArgs -1: any number
	store                      storeUse
	globals                    int  // takesStore, takesOutput
	inShell                    bool // also a shell command
	flags                      func(fs *flag.FlagSet, o *opts)
	run                        func(ctx context.Context, e *env) error
}

func (c *command) usage() string {
	u := c.name
	if c.args != "" {
		u += " " + c.args
	}
	return u
}

var commands = map[string]*command{}

// commandGroups orders the commands in 'revkv help'.
var commandGroups = []struct {
	title string
	names []string
}{
	{"store commands (also in the shell)", []string{"put", "get", "del", "txn", "watch", "compact", "hash", "rev"}},
	{"directory tools", []string{"stat", "verify", "dump", "salvage", "snapshot", "bench"}},
	{"other", []string{"demo", "help", "version"}},
}

func add(c *command) { commands[c.name] = c }

func rangeFlags(fs *flag.FlagSet, o *opts) {
	fs.BoolVar(&o.prefix, "prefix", false, "every key that starts with KEY")
	fs.Var(&o.end, "end", "every key in [KEY, `E`); --end \"\" every key from KEY on")
	fs.BoolVar(&o.fromKey, "from-key", false, "every key from KEY on (as --end \"\")")
}

func init() {
	add(&command{name: "put", args: "KEY VALUE", summary: "set a key (VALUE - reads stdin)",
		about: "Set KEY to VALUE in a new revision and print the revision. VALUE \"-\" reads the\n" +
			"value from stdin (outside the shell), --file from a file: both take any bytes,\n" +
			"up to 16 MiB.",
		minArgs: 1, maxArgs: 2, store: readWrite, globals: takesStore | takesOutput, inShell: true,
		flags: func(fs *flag.FlagSet, o *opts) {
			fs.Int64Var(&o.lease, "lease", 0, "record lease `ID` on the key")
			fs.StringVar(&o.file, "file", "", "read the value from file `F`")
		}, run: cmdPut})
	add(&command{name: "get", args: "KEY [--prefix | --end E | --from-key] [--rev R] [--limit N]", summary: "read keys",
		about: "Print KEY's value, or every key of a range with its value, at the current\n" +
			"revision or at --rev R. Text output is KEY<TAB>VALUE per line.",
		minArgs: 1, maxArgs: 1, store: readOnly, globals: takesStore | takesOutput, inShell: true,
		flags: func(fs *flag.FlagSet, o *opts) {
			rangeFlags(fs, o)
			fs.Int64Var(&o.rev, "rev", 0, "read at revision `R` (0: the current one)")
			fs.Int64Var(&o.limit, "limit", 0, "at most `N` keys (stderr says how many more there are)")
			fs.BoolVar(&o.keysOnly, "keys-only", false, "keys without values")
			fs.BoolVar(&o.count, "count", false, "only the number of keys")
		}, run: cmdGet})
	add(&command{name: "del", args: "KEY [--prefix | --end E | --from-key]", summary: "delete keys",
		about:   "Delete KEY, or every key of a range, in a new revision.",
		minArgs: 1, maxArgs: 1, store: readWrite, globals: takesStore | takesOutput, inShell: true,
		flags: rangeFlags, run: cmdDel})
	add(&command{name: "txn", summary: "apply put and del lines as one revision",
		about: "Read lines from stdin, 'put KEY VALUE' or 'del KEY', up to the end of the input\n" +
			"or a line 'end', and apply them together as one revision. Nothing is applied\n" +
			"unless every line is right. Words are quoted as in the shell (\"a\\x00b\").",
		store: readWrite, globals: takesStore | takesOutput, inShell: true, run: cmdTxn})
	add(&command{name: "watch", args: "KEY [--prefix | --end E | --from-key] [--from REV]", summary: "print changes as they happen",
		about: "Print every change to KEY (or a range) from revision --from on, as it happens,\n" +
			"until interrupted. Another process writes to the store meanwhile; a store in\n" +
			"memory (--mem) has no other writer, so watch there in the shell instead. In the\n" +
			"shell, a watch prints its events after each command.",
		minArgs: 1, maxArgs: 1, store: readOnly, globals: takesStore | takesOutput, inShell: true,
		flags: func(fs *flag.FlagSet, o *opts) {
			rangeFlags(fs, o)
			fs.Int64Var(&o.from, "from", 0, "first revision `REV` (0: the next one)")
		}, run: cmdWatch})
	add(&command{name: "compact", args: "REV", summary: "drop the history below REV",
		about:   "Drop every version that is not live at revision REV: reads below REV fail from then on.",
		minArgs: 1, maxArgs: 1, store: readWrite, globals: takesStore | takesOutput, inShell: true, run: cmdCompact})
	add(&command{name: "hash", args: "[--rev R]", summary: "hash of the history up to R",
		about: "Print the hash of the store's history up to revision R; equal stores have equal hashes.",
		store: readOnly, globals: takesStore | takesOutput, inShell: true,
		flags: func(fs *flag.FlagSet, o *opts) { fs.Int64Var(&o.rev, "rev", 0, "revision `R` (0: the current one)") },
		run:   cmdHash})
	add(&command{name: "rev", summary: "current and compacted revision", about: "Print the current and the compacted revision.",
		store: readOnly, globals: takesStore | takesOutput, inShell: true, run: cmdRev})
	add(&command{name: "help", args: "[COMMAND]", summary: "this list, or a command's flags",
		about: "Print the commands, or one command's usage and flags.", maxArgs: 1, inShell: true, run: cmdHelp})
	add(&command{name: "version", summary: "revkv's version and the file formats it reads",
		about:   "Print revkv's version, the Go version it was built with and the file format\nversions it reads.",
		globals: takesOutput, run: cmdVersion})
	add(&command{name: "demo", summary: "a short tour on a temporary store",
		about: "Run a short script on a store in a temporary directory, close it and open it\nagain. The directory is removed at the end, whatever happens.",
		run:   func(ctx context.Context, e *env) error { return demo(ctx, e.out, e.errOut) }})
	toolCommands()
}

func cmdPut(_ context.Context, e *env) error {
	key, err := e.bytesArg(e.args[0], "KEY")
	if err != nil {
		return err
	}
	value, err := e.valueArg(argOr(e.args, 1), len(e.args) > 1)
	if err != nil {
		return err
	}
	rev, err := e.s.PutLease(key, value, e.o.lease)
	if err != nil {
		return err
	}
	return e.emit(map[string]int64{"revision": rev}, "OK revision %d\n", rev)
}

func argOr(args []string, i int) string {
	if i < len(args) {
		return args[i]
	}
	return ""
}

// keyRange turns KEY and the range flags into the engine's key and end:
// end nil is the key alone, empty every key from key on.
func (e *env) keyRange() (key, end []byte, err error) {
	if key, err = e.bytesArg(e.args[0], "KEY"); err != nil {
		return nil, nil, err
	}
	switch {
	case e.o.prefix:
		return key, prefixEnd(key), nil
	case e.o.fromKey:
		return key, []byte{}, nil
	case e.o.end.set:
		if end, err = e.bytesArg(e.o.end.v, "--end"); err != nil {
			return nil, nil, err
		}
		if end == nil {
			end = []byte{}
		}
		return key, end, nil
	}
	return key, nil, nil
}

// prefixEnd is the end of the range of keys with prefix p: p with its
// last byte below 0xff incremented, or every key (non-nil empty) if none.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return []byte{}
}

// jsonKV is a KeyValue in JSON: key and value are []byte, which
// encoding/json writes in base64 (so do etcdctl's JSON outputs).
type jsonKV struct {
	Key            []byte `json:"key"`
	Value          []byte `json:"value,omitempty"`
	CreateRevision int64  `json:"create_revision"`
	ModRevision    int64  `json:"mod_revision"`
	Version        int64  `json:"version"`
	Lease          int64  `json:"lease,omitempty"`
}

func toJSON(k kv.KeyValue) jsonKV {
	return jsonKV{Key: k.Key, Value: k.Value, CreateRevision: k.CreateRevision,
		ModRevision: k.ModRevision, Version: k.Version, Lease: k.Lease}
}

func cmdGet(_ context.Context, e *env) error {
	key, end, err := e.keyRange()
	if err != nil {
		return err
	}
	res, err := e.s.RangeWithOptions(key, end, engine.RangeOptions{Rev: e.o.rev, Limit: e.o.limit,
		CountOnly: e.o.count, KeysOnly: e.o.keysOnly, TotalCount: true})
	if err != nil {
		return err
	}
	if e.o.count {
		return e.emit(map[string]int64{"count": res.Count, "revision": res.Rev}, "%d\n", res.Count)
	}
	more := res.Count - int64(len(res.KVs))
	if e.json() {
		out := struct {
			KVs      []jsonKV `json:"kvs"`
			Count    int64    `json:"count"`
			More     bool     `json:"more"`
			Revision int64    `json:"revision"`
		}{KVs: []jsonKV{}, Count: res.Count, More: more > 0, Revision: res.Rev}
		for _, k := range res.KVs {
			out.KVs = append(out.KVs, toJSON(k))
		}
		return e.emit(out, "")
	}
	bw := bufio.NewWriter(e.out)
	for _, k := range res.KVs {
		if e.o.keysOnly {
			fmt.Fprintf(bw, "%s\n", e.field(k.Key))
		} else {
			fmt.Fprintf(bw, "%s\t%s\n", e.field(k.Key), e.field(k.Value))
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if more > 0 {
		// On stderr, so that stdout stays the keys alone.
		fmt.Fprintf(e.errOut, "(%d more %s not shown: --limit %d)\n", more, plural(more, "key", "keys"), e.o.limit)
	}
	return nil
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func cmdDel(_ context.Context, e *env) error {
	key, end, err := e.keyRange()
	if err != nil {
		return err
	}
	n, rev, err := e.s.DeleteRange(key, end)
	if err != nil {
		return err
	}
	return e.emit(map[string]int64{"deleted": n, "revision": rev}, "deleted %d, revision %d\n", n, rev)
}

// txnOp is one line of a txn: put K V or del K.
type txnOp struct {
	del        bool
	key, value []byte
}

// parseTxnOp parses a txn line, keys and values as the flags say (--hex).
func (e *env) parseTxnOp(line string) (txnOp, error) {
	f, err := splitArgs(line)
	if err != nil {
		return txnOp{}, err
	}
	var op txnOp
	switch {
	case len(f) == 3 && f[0] == "put":
		if op.value, err = e.bytesArg(f[2], "VALUE"); err != nil {
			return op, err
		}
	case len(f) == 2 && (f[0] == "del" || f[0] == "delete"):
		op.del = true
	default:
		return op, usagef("txn line %q: want 'put KEY VALUE', 'del KEY' or 'end'", shorten(line))
	}
	op.key, err = e.bytesArg(f[1], "KEY")
	return op, err
}

// checkOps refuses ops the engine would refuse, before the txn begins:
// whether an op refused halfway leaves the ones before it applied is the
// engine's rule (on an engine without abort, it does), and a txn's lines
// are all or nothing either way.
func checkOps(ops []txnOp) error {
	if len(ops) == 0 {
		return usagef("empty txn: nothing to apply")
	}
	var size int64
	for i, op := range ops {
		var err error
		switch {
		case len(op.key) == 0:
			err = kv.ErrEmptyKey
		case len(op.key) > kv.MaxKeySize:
			err = fmt.Errorf("key of %d bytes, limit %d: %w", len(op.key), kv.MaxKeySize, kv.ErrTooLarge)
		case len(op.value) > kv.MaxValueSize:
			err = fmt.Errorf("value of %d bytes, limit %d: %w", len(op.value), kv.MaxValueSize, kv.ErrTooLarge)
		}
		if err != nil {
			return fmt.Errorf("txn op %d (%s): %w; nothing applied", i+1, opName(op), err)
		}
		size += int64(len(op.key) + len(op.value))
	}
	if size > kv.MaxBatchSize {
		return fmt.Errorf("txn of %d bytes, limit %d: %w; nothing applied", size, kv.MaxBatchSize, kv.ErrTooLarge)
	}
	return nil
}

func opName(op txnOp) string {
	if op.del {
		return "del"
	}
	return "put"
}

// applyTxn applies ops as one revision, if every one is acceptable.
func applyTxn(e *env, ops []txnOp) error {
	if err := checkOps(ops); err != nil {
		return err
	}
	before := e.s.Rev()
	id, err := e.s.TxnBegin()
	if err != nil {
		return err
	}
	var rev int64
	for i, op := range ops {
		if op.del {
			_, rev, err = e.s.TxnDeleteRange(id, op.key, nil)
		} else {
			rev, err = e.s.TxnPut(id, op.key, op.value)
		}
		if err != nil {
			// checkOps rules out what it can. What is left (a store that
			// stopped) ends the txn; whether the ops before the failed one
			// were applied is the engine's rule, so the revision says.
			endErr := e.s.TxnEnd(id)
			applied := "nothing applied"
			if now := e.s.Rev(); now != before {
				applied = fmt.Sprintf("the ops before it applied at revision %d", now)
			}
			return errors.Join(fmt.Errorf("txn stopped at op %d of %d (%s), %s: %w", i+1, len(ops), opName(op), applied, err), endErr)
		}
	}
	if err := e.s.TxnEnd(id); err != nil {
		return err
	}
	return e.emit(map[string]int64{"revision": rev, "ops": int64(len(ops))},
		"OK revision %d (%d %s)\n", rev, len(ops), plural(int64(len(ops)), "op", "ops"))
}

// cmdTxn reads a txn's lines from stdin, up to its end or "end".
func cmdTxn(_ context.Context, e *env) error {
	var ops []txnOp
	r := bufio.NewReader(e.in)
	for n := 1; ; n++ {
		line, err := readLine(r)
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("txn line %d: %w; nothing applied", n, err)
		}
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if line == "end" || line == "commit" {
			break
		}
		if line == "abort" {
			return e.emit(map[string]any{"aborted": true}, "txn aborted; nothing applied\n")
		}
		op, err := e.parseTxnOp(line)
		if err != nil {
			return fmt.Errorf("txn line %d: %w; nothing applied", n, err)
		}
		ops = append(ops, op)
	}
	return applyTxn(e, ops)
}

func cmdCompact(_ context.Context, e *env) error {
	rev, err := strconv.ParseInt(e.args[0], 10, 64)
	if err != nil {
		return usagef("REV %q: want a revision number", e.args[0])
	}
	if rev < 0 {
		return usagef("REV %d: revisions are 0 or more", rev)
	}
	if err := e.s.Compact(rev); err != nil {
		return err
	}
	return e.emit(map[string]int64{"compacted": rev}, "compacted to %d\n", rev)
}

func cmdHash(_ context.Context, e *env) error {
	h, err := e.s.HashByRev(e.o.rev)
	if err != nil {
		return err
	}
	return e.emit(map[string]any{"hash": h.Hash, "revision": h.Rev, "compact_revision": h.CompactRev},
		"hash %08x at revision %d (compacted %d)\n", h.Hash, h.Rev, h.CompactRev)
}

func cmdRev(_ context.Context, e *env) error {
	return e.emit(map[string]int64{"revision": e.s.Rev(), "compact_revision": e.s.CompactRev()},
		"revision %d (compacted %d)\n", e.s.Rev(), e.s.CompactRev())
}
