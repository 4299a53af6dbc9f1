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

// dirCommand runs the tools that work on a data directory or a file.
func dirCommand(ctx context.Context, name string, g *global, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet(name)
	g.register(fs)
	var b benchConfig
	if name == "bench" {
		b.register(fs)
	}
	pos, err := parseInterleaved(fs, args)
	if errors.Is(err, flag.ErrHelp) && name == "bench" {
		fmt.Fprintln(stdout, "usage: revkv bench [flags]: a load generator (in a temporary directory unless --dir or --mem)")
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return nil
	}
	if err != nil {
		return err
	}
	if err := g.check(); err != nil {
		return err
	}
	e := &env{out: stdout, json: g.output == "json", args: pos}
	dirTools := map[string]func(dir string) error{
		"stat":   func(dir string) error { return stat(e, dir) },
		"verify": func(dir string) error { return verify(e, dir, stderr) },
		"dump":   func(dir string) error { return dump(e, dir) },
	}
	switch name {
	case "stat", "verify", "dump":
		if len(pos) != 1 {
			return fmt.Errorf("%w: %s DIR", errUsage, name)
		}
		return dirTools[name](pos[0])
	case "snapshot":
		if len(pos) != 2 {
			return fmt.Errorf("%w: snapshot save FILE | status FILE | restore FILE --dir D", errUsage)
		}
		return snapshotCommand(e, g, pos[0], pos[1])
	case "bench":
		if len(pos) != 0 {
			return fmt.Errorf("%w: bench takes flags only", errUsage)
		}
		return runBench(ctx, e, g, b, stderr)
	}
	return fmt.Errorf("%w: unknown command %q", errUsage, name)
}

func stat(e *env, dir string) error {
	files, err := filelog.Inspect(persist.OS, dir)
	if err != nil {
		return err
	}
	l, err := filelog.Open(dir, filelog.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	s, err := engine.Open(l, engine.Options{})
	if err != nil {
		return err
	}
	defer s.Close()
	res, err := s.RangeWithOptions(nil, []byte{}, engine.RangeOptions{CountOnly: true})
	if err != nil {
		return err
	}
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
			fs.Damage = f.Err.Error()
		}
		switch {
		case f.Segment != nil:
			fs.Raw, fs.Batches, fs.FirstRev, fs.LastRev = f.Segment.RawBytes, f.Segment.Batches, f.Segment.FirstRev, f.Segment.LastRev
			if f.Size > 0 {
				fs.Ratio = float64(fs.Raw) / float64(f.Size)
			}
			out.Segments = append(out.Segments, fs)
		default:
			if f.Snapshot != nil {
				fs.Raw, fs.Rev, fs.Keys = int64(f.Snapshot.BodySize), f.Snapshot.Rev, f.Snapshot.Keys
				fs.Ratio = float64(fs.Raw) / float64(max(f.Size, 1))
			}
			out.Snapshots = append(out.Snapshots, fs)
		}
	}
	if e.json {
		return e.emit(out, "")
	}
	w := e.out
	fmt.Fprintf(w, "directory         %s\n", out.Dir)
	fmt.Fprintf(w, "revision          %d\n", out.Rev)
	fmt.Fprintf(w, "compacted         %d\n", out.CompactRev)
	fmt.Fprintf(w, "consistent index  %d\n", out.Index)
	fmt.Fprintf(w, "keys              %d\n", out.Keys)
	fmt.Fprintf(w, "revisions         %d retained\n", out.Revisions)
	for _, group := range []struct {
		what  string
		files []fileStat
	}{{"segments", out.Segments}, {"snapshots", out.Snapshots}} {
		var size, raw int64
		for _, f := range group.files {
			size += f.Size
			raw += f.Raw
		}
		fmt.Fprintf(w, "%-17s %d, %d bytes (%d uncompressed, ratio %.2f)\n", group.what, len(group.files), size, raw, float64(raw)/float64(max(size, 1)))
		for _, f := range group.files {
			fmt.Fprintf(w, "  %-30s %10d bytes  ratio %5.2f", f.Name, f.Size, f.Ratio)
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
	return nil
}

// verify checks every checksum of every file; exit status 1 if any file
// is damaged, naming each with the offset.
func verify(e *env, dir string, stderr io.Writer) error {
	files, err := filelog.Inspect(persist.OS, dir)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("%s holds no segment or snapshot", dir)
	}
	damaged := 0
	for _, f := range files {
		status := "ok"
		if f.Err != nil {
			damaged++
			status = "DAMAGED: " + f.Err.Error()
			fmt.Fprintf(stderr, "revkv: %s\n", f.Err)
		} else if f.Segment != nil && f.Segment.TornAt >= 0 {
			status = fmt.Sprintf("ok (torn tail at offset %d: an unfinished write, cut on the next open)", f.Segment.TornAt)
		}
		e.emit(map[string]any{"file": filepath.Join(dir, f.Name), "ok": f.Err == nil, "status": status},
			"%-32s %s\n", f.Name, status)
	}
	if damaged > 0 {
		fmt.Fprintf(stderr, "revkv: %d of %d files damaged\n", damaged, len(files))
		return exitError{code: 1}
	}
	return nil
}

func dump(e *env, dir string) error {
	bw := bufio.NewWriter(e.out)
	defer bw.Flush()
	e.out = bw
	return filelog.Dump(persist.OS, dir, func(file string, off int64, b *persist.Batch) error {
		kind := "changes"
		switch {
		case b.Compaction:
			kind = "compact"
		case len(b.Changes) == 0:
			kind = "index"
		}
		if e.json {
			type change struct {
				Op    string `json:"op"`
				Key   string `json:"key"`
				Value string `json:"value,omitempty"`
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
				j.Changes = append(j.Changes, change{Op: op, Key: string(c.Key), Value: string(c.Value), Lease: c.Lease})
			}
			return e.emit(j, "")
		}
		fmt.Fprintf(bw, "%s@%d rev %d", file, off, b.Rev)
		if b.Index > 0 {
			fmt.Fprintf(bw, " index %d", b.Index)
		}
		switch kind {
		case "compact":
			fmt.Fprintf(bw, " compact %d", b.Compact)
		case "index":
			fmt.Fprint(bw, " (index only)")
		}
		for _, c := range b.Changes {
			if c.Delete {
				fmt.Fprintf(bw, " del %q", c.Key)
			} else {
				fmt.Fprintf(bw, " put %q=%q", c.Key, c.Value)
			}
		}
		_, err := fmt.Fprintln(bw)
		return err
	})
}

func snapshotCommand(e *env, g *global, verb, file string) error {
	switch verb {
	case "save":
		s, err := g.open(true)
		if err != nil {
			return err
		}
		defer s.Close()
		sn, err := s.Snapshot()
		if err != nil {
			return err
		}
		defer sn.Close()
		n, err := writeFileAtomic(file, sn)
		if err != nil {
			return err
		}
		return e.emit(map[string]any{"file": file, "bytes": n, "revision": sn.Rev()},
			"saved %s: %d bytes at revision %d\n", file, n, sn.Rev())
	case "status":
		f, err := os.Open(file)
		if err != nil {
			return err
		}
		defer f.Close()
		st, err := snapshot.ReadStatus(bufio.NewReaderSize(f, 1<<20))
		if err != nil {
			return err
		}
		if e.json {
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
		fmt.Fprintf(e.out, "size              %d bytes (%d uncompressed, ratio %.2f)\n", st.Size, st.BodySize, float64(st.BodySize)/float64(max(st.Size, 1)))
		return nil
	case "restore":
		if g.mem {
			return fmt.Errorf("%w: snapshot restore needs --dir", errUsage)
		}
		f, err := os.Open(file)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := filelog.LoadSnapshot(persist.OS, g.dir, bufio.NewReaderSize(f, 1<<20)); err != nil {
			return err
		}
		s, err := g.open(false)
		if err != nil {
			return err
		}
		rev := s.Rev()
		if err := s.Close(); err != nil {
			return err
		}
		return e.emit(map[string]any{"dir": g.dir, "revision": rev}, "restored %s into %s at revision %d\n", file, g.dir, rev)
	}
	return fmt.Errorf("%w: snapshot save FILE | status FILE | restore FILE --dir D", errUsage)
}

// writeFileAtomic writes w's output to name through a synced temporary
// file, renamed into place.
func writeFileAtomic(name string, w io.WriterTo) (int64, error) {
	tmp := name + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return 0, err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
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
