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

	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/persist"
	"github.com/revkv/revkv/persist/filelog"
	"github.com/revkv/revkv/snapshot"
)

// toolCommands registers the commands that work on a data directory or a
// file rather than through a store's API.
func toolCommands() {
	add(&command{name: "stat", args: "DIR", summary: "revision, keys, files and sizes, explained",
		about: "Describe the store in DIR: its revisions and keys, and each log segment and\n" +
			"snapshot with its size on disk and before compression. Changes no file.",
		minArgs: 1, maxArgs: 1, globals: takesOutput, run: func(_ context.Context, e *env) error { return stat(e, e.args[0]) }})
	add(&command{name: "verify", args: "DIR", summary: "check every checksum; exit 1 naming any damage",
		about: "Read every segment and snapshot in DIR and check every checksum. Exit status 1,\n" +
			"naming each damaged file and offset, if there is damage; 'revkv salvage' then\n" +
			"copies what is readable. Changes no file.",
		minArgs: 1, maxArgs: 1, globals: takesOutput, run: func(_ context.Context, e *env) error { return verify(e, e.args[0]) }})
	add(&command{name: "dump", args: "DIR", summary: "the log, one batch per line",
		about: "Print every batch of DIR's log, in order, one per line: file@offset, revision,\n" +
			"and its puts and deletes. Changes no file.",
		minArgs: 1, maxArgs: 1, globals: takesOutput, run: func(_ context.Context, e *env) error { return dump(e, e.args[0]) }})
	add(&command{name: "salvage", args: "DIR NEWDIR", summary: "a new store from what is readable of a damaged one",
		about: "Make a new store in NEWDIR from what of DIR reads back whole: the newest\n" +
			"snapshot whose checksums hold, and the log after it up to the log's first\n" +
			"damage. Say what was left behind. DIR is not changed; NEWDIR must not exist\n" +
			"or be empty.",
		minArgs: 2, maxArgs: 2, globals: takesOutput, run: func(_ context.Context, e *env) error { return salvage(e, e.args[0], e.args[1]) }})
	add(&command{name: "snapshot", args: "save FILE [--dir D] | status FILE | restore FILE --dir D", summary: "save, describe or restore a snapshot",
		about: "save writes a snapshot of the store to FILE (through a temporary file, renamed\n" +
			"into place); status describes FILE and checks its checksums; restore makes a\n" +
			"new data directory D from FILE.",
		minArgs: 2, maxArgs: 2, globals: takesStore | takesOutput, run: snapshotCommand})
	add(&command{name: "bench", args: "[--writers N] [--readers N] [--watchers N] [--duration T] ...", summary: "a load generator",
		about: "Run writers, readers and watchers on a store for a while and print throughput\n" +
			"and latency percentiles. The store is in a temporary directory unless --dir or\n" +
			"--mem; --dir must be new or empty unless --force (bench writes many keys).",
		globals: takesStore | takesOutput, run: runBench,
		flags: func(fs *flag.FlagSet, o *opts) { o.bench.register(fs, o) }})
}

// fileStat is one file in stat's report.
type fileStat struct {
	Name     string  `json:"name"`
	Size     int64   `json:"size"`
	Raw      int64   `json:"raw_bytes,omitempty"`
	Ratio    float64 `json:"compression_ratio,omitempty"`
	Batches  int     `json:"batches,omitempty"`
	FirstRev int64   `json:"first_revision,omitempty"`
	LastRev  int64   `json:"last_revision,omitempty"`
	Rev      int64   `json:"revision,omitempty"`
	Keys     uint64  `json:"keys,omitempty"`
	Damage   string  `json:"damage,omitempty"`
}

func stat(e *env, dir string) error {
	if err := checkDir(dir, true); err != nil {
		return err
	}
	files, err := filelog.Inspect(persist.OS, dir)
	if err != nil {
		return openError(dir, err)
	}
	s, err := openStore(storeSpec{dir: dir, readOnly: true, progress: e.progress})
	if err != nil {
		return err
	}
	defer s.Close()
	res, err := s.RangeWithOptions(nil, []byte{}, engine.RangeOptions{CountOnly: true})
	if err != nil {
		return err
	}
	out := struct {
		Dir        string     `json:"dir"`
		Rev        int64      `json:"revision"`
		CompactRev int64      `json:"compact_revision"`
		Index      uint64     `json:"consistent_index"`
		Keys       int64      `json:"keys"`
		Revisions  int64      `json:"revisions"`
		Segments   []fileStat `json:"segments"`
		Snapshots  []fileStat `json:"snapshots"`
	}{Dir: dir, Rev: s.Rev(), CompactRev: s.CompactRev(), Index: s.ConsistentIndex(), Keys: res.Count,
		Revisions: s.Rev() - max(s.CompactRev(), 1) + 1, Segments: []fileStat{}, Snapshots: []fileStat{}}
	for _, f := range files {
		fs := fileStat{Name: f.Name, Size: f.Size}
		if f.Err != nil {
			fs.Damage = message(f.Err)
		}
		switch {
		case f.Segment != nil:
			fs.Raw, fs.Batches, fs.FirstRev, fs.LastRev = f.Segment.RawBytes, f.Segment.Batches, f.Segment.FirstRev, f.Segment.LastRev
			out.Segments = append(out.Segments, fs)
		default:
			if f.Snapshot != nil {
				fs.Raw, fs.Rev, fs.Keys = int64(f.Snapshot.BodySize), f.Snapshot.Rev, f.Snapshot.Keys
			}
			out.Snapshots = append(out.Snapshots, fs)
		}
	}
	for _, group := range [][]fileStat{out.Segments, out.Snapshots} {
		for i := range group {
			if group[i].Size > 0 {
				group[i].Ratio = float64(group[i].Raw) / float64(group[i].Size)
			}
		}
	}
	if e.json() {
		return e.emit(out, "")
	}
	w := e.out
	fmt.Fprintf(w, "directory         %s\n", out.Dir)
	fmt.Fprintf(w, "revision          %d (the last write's)\n", out.Rev)
	fmt.Fprintf(w, "compacted         %d (reads below this revision fail; -1: never compacted)\n", out.CompactRev)
	fmt.Fprintf(w, "consistent index  %d (the last applied entry of a consensus log; 0: none)\n", out.Index)
	fmt.Fprintf(w, "keys              %d live\n", out.Keys)
	fmt.Fprintf(w, "revisions         %d readable (from %d to %d)\n", out.Revisions, max(out.CompactRev, 1), out.Rev)
	for _, group := range []struct {
		what  string
		files []fileStat
	}{{"segments", out.Segments}, {"snapshots", out.Snapshots}} {
		var size, raw int64
		for _, f := range group.files {
			size += f.Size
			raw += f.Raw
		}
		fmt.Fprintf(w, "%-17s %d, %s on disk, %s uncompressed%s\n", group.what, len(group.files), byteCount(size), byteCount(raw), ratioNote(raw, size))
		for _, f := range group.files {
			fmt.Fprintf(w, "  %-28s %10s  x%-5.2f", f.Name, byteCount(f.Size), f.Ratio)
			if group.what == "segments" {
				fmt.Fprintf(w, "  %d batches, revisions %d..%d", f.Batches, f.FirstRev, f.LastRev)
			} else {
				fmt.Fprintf(w, "  revision %d, %d keys", f.Rev, f.Keys)
			}
			if f.Damage != "" {
				fmt.Fprintf(w, "  DAMAGED: %s", f.Damage)
			}
			fmt.Fprintln(w)
		}
	}
	fmt.Fprintln(w, "(xN: bytes before compression per byte on disk; a segment is 'log' batches,\n a snapshot the whole state at its revision; the newest two are kept)")
	return nil
}

// ratioNote explains the compression of raw bytes into size on disk.
func ratioNote(raw, size int64) string {
	switch {
	case size == 0 || raw == 0:
		return ""
	case raw >= size:
		return fmt.Sprintf(" (compressed %.1fx)", float64(raw)/float64(size))
	}
	return " (file headers outweigh the data: too little to compress)"
}

// verify is a dry run of an open (read-only: the same checks and the same
// messages, nothing changed) plus the checks an open skips (every checksum
// of every file, segments a snapshot covers, older snapshots); exit status
// 1 if anything would stop an open or any file is damaged, naming each
// file with the offset.
func verify(e *env, dir string) error {
	if err := checkDir(dir, true); err != nil {
		return err
	}
	e.progress.now("verifying %s ...", dir)
	files, err := filelog.Inspect(persist.OS, dir)
	e.progress.done()
	if err != nil {
		return openError(dir, err)
	}
	if len(files) == 0 {
		return fmt.Errorf("%s holds no segment or snapshot: no store there", dir)
	}
	problems := 0
	if err := dryOpen(e, dir); err != nil {
		problems++
		fmt.Fprintf(e.errOut, "revkv: open would fail: %s\n", message(err))
		e.emit(map[string]any{"file": dir, "ok": false, "status": "open would fail: " + message(err)},
			"%-32s %s\n", "(open)", "FAILS: "+message(err))
	}
	damaged := 0
	for _, f := range files {
		status := "ok"
		if f.Err != nil {
			damaged++
			status = "DAMAGED: " + message(f.Err)
			fmt.Fprintf(e.errOut, "revkv: %s\n", message(f.Err))
		} else if f.Segment != nil && f.Segment.TornAt >= 0 {
			status = fmt.Sprintf("ok (torn tail at offset %d: an unfinished write, cut on the next open)", f.Segment.TornAt)
		}
		e.emit(map[string]any{"file": filepath.Join(dir, f.Name), "ok": f.Err == nil, "status": status},
			"%-32s %s\n", f.Name, status)
	}
	if problems+damaged > 0 {
		opens := ""
		if problems > 0 {
			opens = ", and the open fails"
		}
		fmt.Fprintf(e.errOut, "revkv: %d of %d files damaged%s; 'revkv salvage %s NEWDIR' copies what is readable\n",
			damaged, len(files), opens, dir)
		return exitError{code: 1}
	}
	return nil
}

// dryOpen recovers the store in dir read-only, as an open would (with its
// progress), and returns the open's error.
func dryOpen(e *env, dir string) error {
	s, err := openStore(storeSpec{dir: dir, readOnly: true, progress: e.progress})
	if err != nil {
		var ex *explained
		if errors.As(err, &ex) {
			err = ex.err // the open's own message, not the advice around it
		}
		return err
	}
	return s.Close()
}

func dump(e *env, dir string) error {
	if err := checkDir(dir, true); err != nil {
		return err
	}
	bw := bufio.NewWriter(e.out)
	defer bw.Flush()
	out := *e
	out.out = bw
	// On a terminal, the lines themselves show the progress.
	showProgress := !e.stdoutTerm
	err := filelog.Dump(persist.OS, dir, func(file string, off int64, b *persist.Batch) error {
		if showProgress {
			e.progress.update("dumping %s: %s, revision %d", dir, file, b.Rev)
		}
		return out.dumpBatch(file, off, b)
	})
	e.progress.done()
	if err != nil {
		return openError(dir, err)
	}
	return bw.Flush()
}

func (e *env) dumpBatch(file string, off int64, b *persist.Batch) error {
	kind := "changes"
	switch {
	case b.Compaction:
		kind = "compact"
	case len(b.Changes) == 0:
		kind = "index"
	}
	if e.json() {
		type change struct {
			Op    string `json:"op"`
			Key   []byte `json:"key"`
			Value []byte `json:"value,omitempty"`
			Lease int64  `json:"lease,omitempty"`
		}
		j := struct {
			File    string   `json:"file"`
			Offset  int64    `json:"offset"`
			Kind    string   `json:"kind"`
			Rev     int64    `json:"revision"`
			Index   uint64   `json:"consistent_index,omitempty"`
			Compact int64    `json:"compact,omitempty"`
			Changes []change `json:"changes,omitempty"`
		}{File: file, Offset: off, Kind: kind, Rev: b.Rev, Index: b.Index, Compact: b.Compact}
		for _, c := range b.Changes {
			op := "put"
			if c.Delete {
				op = "del"
			}
			j.Changes = append(j.Changes, change{Op: op, Key: c.Key, Value: c.Value, Lease: c.Lease})
		}
		return e.emit(j, "")
	}
	fmt.Fprintf(e.out, "%s@%d rev %d", file, off, b.Rev)
	if b.Index > 0 {
		fmt.Fprintf(e.out, " index %d", b.Index)
	}
	switch kind {
	case "compact":
		fmt.Fprintf(e.out, " compact %d", b.Compact)
	case "index":
		fmt.Fprint(e.out, " (index only)")
	}
	for _, c := range b.Changes {
		if c.Delete {
			fmt.Fprintf(e.out, " del %s", e.word(c.Key))
		} else {
			fmt.Fprintf(e.out, " put %s=%s", e.word(c.Key), e.word(c.Value))
		}
	}
	_, err := fmt.Fprintln(e.out)
	return err
}

func snapshotCommand(_ context.Context, e *env) error {
	verb, file := e.args[0], e.args[1]
	switch verb {
	case "save":
		return snapshotSave(e, file)
	case "status":
		return snapshotStatus(e, file)
	case "restore":
		return snapshotRestore(e, file)
	}
	return usagef("unknown snapshot verb %q: want save, status or restore", verb)
}

func snapshotSave(e *env, file string) error {
	if e.g.mem {
		return usagef("snapshot save --mem: a store in memory is new and empty; save one from --dir")
	}
	s, err := openStore(e.g.spec(true, e.progress))
	if err != nil {
		return err
	}
	defer s.Close()
	sn, err := s.Snapshot()
	if err != nil {
		return err
	}
	defer sn.Close()
	total := sn.Size()
	n, err := writeFileAtomic(file, sn, func(done int64) {
		e.progress.update("saving %s: %s of about %s (%.0f%%)", file, byteCount(done), byteCount(total), percent(done, total))
	})
	e.progress.done()
	if err != nil {
		return err
	}
	return e.emit(map[string]any{"file": file, "bytes": n, "revision": sn.Rev()},
		"saved %s: %d bytes at revision %d\n", file, n, sn.Rev())
}

func snapshotStatus(e *env, file string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := snapshot.ReadStatus(bufio.NewReaderSize(progressReader(e, f, "checking "+file), 1<<20))
	e.progress.done()
	if err != nil {
		return err
	}
	if e.json() {
		return e.emit(map[string]any{"file": file, "revision": st.Rev, "compact_revision": st.CompactRev,
			"consistent_index": st.ConsistentIndex, "keys": st.Keys, "revisions": st.Revisions,
			"events": st.Events, "base": st.Base, "hash": st.Hash, "size": st.Size, "body_size": st.BodySize}, "")
	}
	fmt.Fprintf(e.out, "revision          %d\n", st.Rev)
	fmt.Fprintf(e.out, "compacted         %d\n", st.CompactRev)
	fmt.Fprintf(e.out, "consistent index  %d\n", st.ConsistentIndex)
	fmt.Fprintf(e.out, "keys              %d\n", st.Keys)
	fmt.Fprintf(e.out, "revisions         %d (%d events, %d base entries)\n", st.Revisions, st.Events, st.Base)
	fmt.Fprintf(e.out, "hash              %08x\n", st.Hash)
	fmt.Fprintf(e.out, "size              %d bytes (%d uncompressed, compressed %.1fx)\n", st.Size, st.BodySize, float64(st.BodySize)/float64(max(st.Size, 1)))
	return nil
}

func snapshotRestore(e *env, file string) error {
	if e.g.mem || !e.g.dir.set {
		return usagef("snapshot restore needs --dir D: the new data directory")
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	err = restoreStore(e.g.dir.v, bufio.NewReaderSize(progressReader(e, f, "restoring "+file), 1<<20))
	e.progress.done()
	if err != nil {
		return err
	}
	s, err := openStore(e.g.spec(true, e.progress))
	if err != nil {
		return err
	}
	rev := s.Rev()
	if err := s.Close(); err != nil {
		return err
	}
	return e.emit(map[string]any{"dir": e.g.dir.v, "revision": rev}, "restored %s into %s at revision %d\n", file, e.g.dir.v, rev)
}

// progressReader reports the progress of reading the whole of f.
func progressReader(e *env, f *os.File, what string) io.Reader {
	if !e.progress.on() {
		return f
	}
	var total, done int64
	if fi, err := f.Stat(); err == nil {
		total = fi.Size()
	}
	return &countingReader{r: f, n: func(n int64) {
		done += n
		e.progress.update("%s: %s of %s (%.0f%%)", what, byteCount(done), byteCount(total), percent(done, total))
	}}
}

// writeFileAtomic writes w's output to name through a synced temporary
// file, renamed into place, calling progress with the bytes written.
func writeFileAtomic(name string, w io.WriterTo, progress func(int64)) (int64, error) {
	tmp := name + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return 0, err
	}
	bw := bufio.NewWriterSize(&countingWriter{w: f, n: progress}, 1<<20)
	n, err := w.WriteTo(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	err = errors.Join(err, f.Close())
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		os.Remove(tmp)
		return 0, err
	}
	return n, nil
}

type countingWriter struct {
	w    io.Writer
	done int64
	n    func(int64)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.done += int64(n)
	c.n(c.done)
	return n, err
}
