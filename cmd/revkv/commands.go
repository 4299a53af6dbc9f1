package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/kv"
	"github.com/revkv/revkv/persist/filelog"
)

// global holds the flags every command takes.
type global struct {
	dir    string
	mem    bool
	output string
}

func newGlobal() *global { return &global{dir: "revkv.data", output: "text"} }

func (g *global) register(fs *flag.FlagSet) {
	fs.StringVar(&g.dir, "dir", g.dir, "data directory")
	fs.BoolVar(&g.mem, "mem", g.mem, "use a store in memory, gone on exit")
	fs.StringVar(&g.output, "o", g.output, "output: text or json")
}

func (g *global) parse(args []string) ([]string, error) {
	fs := newFlagSet("revkv")
	g.register(fs)
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("%w: %w", errUsage, err)
	}
	return fs.Args(), g.check()
}

func (g *global) check() error {
	if g.output != "text" && g.output != "json" {
		return fmt.Errorf("%w: -o %q: want text or json", errUsage, g.output)
	}
	return nil
}

func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// parseInterleaved parses flags wherever they are among the positional
// arguments (revkv get KEY --rev 3), which package flag alone does not.
// Everything after "--" is positional.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos, tail []string
	for i, a := range args {
		if a == "--" {
			args, tail = args[:i], args[i+1:]
			break
		}
	}
	for {
		if err := fs.Parse(args); err != nil {
			return nil, fmt.Errorf("%w: %w", errUsage, err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return append(pos, tail...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// open opens the store the global flags name. A read-only open of a
// directory changes no file and fails if there is no store there.
func (g *global) open(readOnly bool) (*engine.Store, error) {
	if g.mem {
		return engine.Open(nil, engine.Options{})
	}
	if readOnly {
		if _, err := os.Stat(g.dir); err != nil {
			return nil, fmt.Errorf("no store at %s: %w", g.dir, err)
		}
	}
	l, err := filelog.Open(g.dir, filelog.Options{ReadOnly: readOnly})
	if err != nil {
		return nil, err
	}
	return engine.Open(l, engine.Options{})
}

// opts are the flags of the store commands.
type opts struct {
	prefix, keysOnly, count bool
	rev, limit, lease, from int64
	end                     string
}

// env is what a store command runs with.
type env struct {
	s    *engine.Store
	in   io.Reader
	out  io.Writer
	json bool
	args []string
	o    opts
	sh   *shellState // nil outside the shell
}

// emit writes v as a JSON line, or text as it is.
func (e *env) emit(v any, format string, args ...any) error {
	if e.json {
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

type command struct {
	usage, summary   string
	minArgs, maxArgs int
	readOnly         bool
	flags            func(fs *flag.FlagSet, o *opts)
	run              func(ctx context.Context, e *env) error
}

var commandOrder = []string{"put", "get", "del", "txn", "watch", "compact", "hash", "rev"}

var commands map[string]*command

func init() {
	commands = map[string]*command{
		"put": {usage: "put KEY VALUE [--lease N]", summary: "set a key", minArgs: 2, maxArgs: 2,
			flags: func(fs *flag.FlagSet, o *opts) { fs.Int64Var(&o.lease, "lease", 0, "lease ID") },
			run:   cmdPut},
		"get": {usage: "get KEY [--prefix|--end E] [--rev R] [--limit N] [--keys-only] [--count]", summary: "read keys",
			minArgs: 1, maxArgs: 1, readOnly: true, flags: rangeFlags, run: cmdGet},
		"del": {usage: "del KEY [--prefix|--end E]", summary: "delete keys", minArgs: 1, maxArgs: 1,
			flags: func(fs *flag.FlagSet, o *opts) {
				fs.BoolVar(&o.prefix, "prefix", false, "every key with KEY as prefix")
				fs.StringVar(&o.end, "end", "", "every key in [KEY, E)")
			}, run: cmdDel},
		"txn": {usage: "txn", summary: "apply 'put K V' and 'del K' lines as one revision", run: cmdTxn},
		"watch": {usage: "watch KEY [--prefix|--end E] [--from REV]", summary: "print changes (the shell: after each command)",
			minArgs: 1, maxArgs: 1, readOnly: true,
			flags: func(fs *flag.FlagSet, o *opts) {
				fs.BoolVar(&o.prefix, "prefix", false, "every key with KEY as prefix")
				fs.StringVar(&o.end, "end", "", "every key in [KEY, E)")
				fs.Int64Var(&o.from, "from", 0, "first revision (0: the next one)")
			}, run: cmdWatch},
		"compact": {usage: "compact REV", summary: "drop history below REV", minArgs: 1, maxArgs: 1, run: cmdCompact},
		"hash": {usage: "hash [--rev R]", summary: "hash of the history up to R", readOnly: true,
			flags: func(fs *flag.FlagSet, o *opts) { fs.Int64Var(&o.rev, "rev", 0, "revision (0: current)") },
			run:   cmdHash},
		"rev": {usage: "rev", summary: "current and compacted revision", readOnly: true, run: cmdRev},
	}
}

func rangeFlags(fs *flag.FlagSet, o *opts) {
	fs.BoolVar(&o.prefix, "prefix", false, "every key with KEY as prefix")
	fs.StringVar(&o.end, "end", "", "every key in [KEY, E)")
	fs.Int64Var(&o.rev, "rev", 0, "read at revision R (0: current)")
	fs.Int64Var(&o.limit, "limit", 0, "at most N keys")
	fs.BoolVar(&o.keysOnly, "keys-only", false, "keys without values")
	fs.BoolVar(&o.count, "count", false, "only the number of keys")
}

// parseCommand parses a command's arguments (global flags allowed among
// them) into an env.
func (g *global) parseCommand(name string, c *command, args []string) (*env, error) {
	fs := newFlagSet(name)
	g.register(fs)
	e := &env{}
	if c.flags != nil {
		c.flags(fs, &e.o)
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return nil, err
	}
	if err := g.check(); err != nil {
		return nil, err
	}
	if len(pos) < c.minArgs || len(pos) > c.maxArgs {
		return nil, fmt.Errorf("%w: %s", errUsage, c.usage)
	}
	if e.o.prefix && e.o.end != "" {
		return nil, fmt.Errorf("%w: --prefix and --end together", errUsage)
	}
	e.args, e.json = pos, g.output == "json"
	return e, nil
}

// keyRange turns KEY and the range flags into the engine's key and end.
func (e *env) keyRange() (key, end []byte) {
	key = []byte(e.args[0])
	switch {
	case e.o.prefix:
		return key, prefixEnd(key)
	case e.o.end != "":
		return key, []byte(e.o.end)
	}
	return key, nil
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

type jsonKV struct {
	Key            string `json:"key"`
	Value          string `json:"value,omitempty"`
	CreateRevision int64  `json:"create_revision"`
	ModRevision    int64  `json:"mod_revision"`
	Version        int64  `json:"version"`
	Lease          int64  `json:"lease,omitempty"`
}

func toJSON(k kv.KeyValue) jsonKV {
	return jsonKV{Key: string(k.Key), Value: string(k.Value), CreateRevision: k.CreateRevision,
		ModRevision: k.ModRevision, Version: k.Version, Lease: k.Lease}
}

func cmdPut(_ context.Context, e *env) error {
	rev, err := e.s.PutLease([]byte(e.args[0]), []byte(e.args[1]), e.o.lease)
	if err != nil {
		return err
	}
	return e.emit(map[string]int64{"revision": rev}, "OK revision %d\n", rev)
}

func cmdGet(_ context.Context, e *env) error {
	key, end := e.keyRange()
	res, err := e.s.RangeWithOptions(key, end, engine.RangeOptions{Rev: e.o.rev, Limit: e.o.limit,
		CountOnly: e.o.count, KeysOnly: e.o.keysOnly, TotalCount: true})
	if err != nil {
		return err
	}
	if e.o.count {
		return e.emit(map[string]int64{"count": res.Count, "revision": res.Rev}, "%d\n", res.Count)
	}
	if e.json {
		out := struct {
			KVs      []jsonKV `json:"kvs"`
			Count    int64    `json:"count"`
			Revision int64    `json:"revision"`
		}{KVs: []jsonKV{}, Count: res.Count, Revision: res.Rev}
		for _, k := range res.KVs {
			out.KVs = append(out.KVs, toJSON(k))
		}
		return e.emit(out, "")
	}
	for _, k := range res.KVs {
		if e.o.keysOnly {
			fmt.Fprintf(e.out, "%s\n", k.Key)
		} else {
			fmt.Fprintf(e.out, "%s\t%s\n", k.Key, k.Value)
		}
	}
	return nil
}

func cmdDel(_ context.Context, e *env) error {
	key, end := e.keyRange()
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

func parseTxnOp(line string) (txnOp, error) {
	f, err := splitArgs(line)
	if err != nil {
		return txnOp{}, err
	}
	switch {
	case len(f) == 3 && f[0] == "put":
		return txnOp{key: []byte(f[1]), value: []byte(f[2])}, nil
	case len(f) == 2 && (f[0] == "del" || f[0] == "delete"):
		return txnOp{del: true, key: []byte(f[1])}, nil
	}
	return txnOp{}, fmt.Errorf("%w: txn line %q: want 'put KEY VALUE' or 'del KEY'", errUsage, line)
}

// applyTxn applies ops as one revision.
func applyTxn(e *env, ops []txnOp) error {
	if len(ops) == 0 {
		return fmt.Errorf("%w: empty txn", errUsage)
	}
	id, err := e.s.TxnBegin()
	if err != nil {
		return err
	}
	var rev int64
	for _, op := range ops {
		if op.del {
			_, rev, err = e.s.TxnDeleteRange(id, op.key, nil)
		} else {
			rev, err = e.s.TxnPut(id, op.key, op.value)
		}
		if err != nil {
			// Ops so far are applied (the engine's txns do not roll back);
			// say so rather than pretend otherwise.
			return errors.Join(fmt.Errorf("txn stopped at %q: %w", op.key, err), e.s.TxnEnd(id))
		}
	}
	if err := e.s.TxnEnd(id); err != nil {
		return err
	}
	return e.emit(map[string]int64{"revision": rev, "ops": int64(len(ops))}, "OK revision %d (%d ops)\n", rev, len(ops))
}

func cmdTxn(_ context.Context, e *env) error {
	var ops []txnOp
	sc := bufio.NewScanner(e.in)
	sc.Buffer(nil, kv.MaxValueSize+kv.MaxKeySize+64)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		op, err := parseTxnOp(line)
		if err != nil {
			return err
		}
		ops = append(ops, op)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return applyTxn(e, ops)
}

func cmdCompact(_ context.Context, e *env) error {
	rev, err := strconv.ParseInt(e.args[0], 10, 64)
	if err != nil {
		return fmt.Errorf("%w: compact: revision %q", errUsage, e.args[0])
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
