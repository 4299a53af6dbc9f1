package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBinaryRoundTrip: every byte of a key or value survives each way in
// and out: --hex, JSON (base64), the shell's escapes, stdin and --file.
func TestBinaryRoundTrip(t *testing.T) {
	dir := t.TempDir()
	key := []byte("bin\x01\xff")
	value := []byte("a\tb\nc\x00\xfe\"")
	mustCLI(t, "", "put", "--dir", dir, "--hex", hex.EncodeToString(key), hex.EncodeToString(value))

	var res struct {
		KVs []struct {
			Key   []byte `json:"key"`
			Value []byte `json:"value"`
		} `json:"kvs"`
	}
	out := mustCLI(t, "", "get", "--dir", dir, "--hex", hex.EncodeToString(key), "-o", "json")
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.KVs) != 1 || !bytes.Equal(res.KVs[0].Key, key) || !bytes.Equal(res.KVs[0].Value, value) {
		t.Fatalf("json get: %s", out)
	}
	if out := mustCLI(t, "", "get", "--dir", dir, "--hex", "62696e", "--prefix"); out != hex.EncodeToString(key)+"\t"+hex.EncodeToString(value)+"\n" {
		t.Fatalf("hex get: %q", out)
	}
	// Text output quotes both fields, so a tab or newline in them cannot
	// pass for the separators; the shell reads the quoted forms back.
	text := mustCLI(t, "", "get", "--dir", dir, "bin", "--prefix")
	want := `"bin\x01\xff"` + "\t" + `"a\tb\nc\x00\xfe\""` + "\n"
	if text != want {
		t.Fatalf("text get: %q, want %q", text, want)
	}
	fields := strings.Split(strings.TrimSuffix(text, "\n"), "\t")
	script := "put " + fields[0] + " " + fields[1] + "\nput \"a\\x00b\" v\nget 'a\\x00b'\n"
	code, sout, serr := cli(t, script, "--dir", dir)
	if code != 0 {
		t.Fatalf("shell: %d %s %s", code, sout, serr)
	}
	if out := mustCLI(t, "", "get", "--dir", dir, "--hex", hex.EncodeToString(key), "-o", "json"); !strings.Contains(out, `"version":2`) {
		t.Fatalf("the quoted key did not name the same key: %s", out)
	}
	if out := mustCLI(t, "", "get", "--dir", dir, "--hex", hex.EncodeToString([]byte("a\x00b"))); out != "610062\t76\n" {
		t.Fatalf("shell escape \\x00: %q", out)
	}

	// A value from stdin ("-") and from a file: any bytes, beyond what
	// an argument list takes (200 KB).
	big := bytes.Repeat([]byte("\x00\xffxyz\n"), 40_000)
	mustCLI(t, string(big), "put", "--dir", dir, "stdin", "-")
	file := filepath.Join(t.TempDir(), "value")
	if err := os.WriteFile(file, big[:1000], 0o644); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, "", "put", "--dir", dir, "file", "--file", file)
	for k, want := range map[string][]byte{"stdin": big, "file": big[:1000]} {
		var res struct {
			KVs []struct {
				Value []byte `json:"value"`
			} `json:"kvs"`
		}
		if err := json.Unmarshal([]byte(mustCLI(t, "", "get", "--dir", dir, k, "-o", "json")), &res); err != nil {
			t.Fatal(err)
		}
		if len(res.KVs) != 1 || !bytes.Equal(res.KVs[0].Value, want) {
			t.Fatalf("value of %s differs (%d bytes)", k, len(res.KVs))
		}
	}
	if code, _, errOut := cli(t, "", "put", "--dir", dir, "k", "v", "--file", file); code != 2 || !strings.Contains(errOut, "VALUE and --file") {
		t.Fatalf("value and --file: %d %s", code, errOut)
	}
	if code, _, errOut := cli(t, "", "put", "--dir", dir, "--hex", "zz", "v"); code != 2 || !strings.Contains(errOut, `KEY "zz" is not hexadecimal`) {
		t.Fatalf("bad hex: %d %s", code, errOut)
	}
}

// TestBinaryOutput: watch events and dump quote or encode keys and values.
func TestBinaryOutput(t *testing.T) {
	dir := t.TempDir()
	mustCLI(t, `put "k=1" "a b"`+"\n"+`put k2 ""`+"\n", "--dir", dir)
	out := mustCLI(t, "", "dump", dir)
	if !strings.Contains(out, ` put "k=1"="a b"`) || !strings.Contains(out, ` put k2=""`) {
		t.Fatalf("dump: %s", out)
	}
	var batch struct {
		Changes []struct {
			Key   []byte `json:"key"`
			Value []byte `json:"value"`
		} `json:"changes"`
	}
	line := strings.SplitN(mustCLI(t, "", "dump", dir, "-o", "json"), "\n", 2)[0]
	if err := json.Unmarshal([]byte(line), &batch); err != nil || string(batch.Changes[0].Key) != "k=1" || string(batch.Changes[0].Value) != "a b" {
		t.Fatalf("dump json: %s (%v)", line, err)
	}
	code, sout, _ := cli(t, "watch k --prefix\nput k \"\\x00\"\n", "--mem")
	if code != 0 || !strings.Contains(sout, `watch 1: PUT k="\x00" (revision 2, version 1)`) {
		t.Fatalf("shell watch: %s", sout)
	}
}

func TestSplitArgs(t *testing.T) {
	for _, tc := range []struct {
		line string
		want []string
	}{
		{`put a b`, []string{"put", "a", "b"}},
		{`put "a b" 'c d'`, []string{"put", "a b", "c d"}},
		{`put "a\x00b" "\xff\n\t\"\\"`, []string{"put", "a\x00b", "\xff\n\t\"\\"}},
		{`put 'a\x00'`, []string{"put", `a\x00`}},
		{`put a\ b a\x41 "\u00e9"`, []string{"put", "a b", "aA", "é"}},
		{`put ""`, []string{"put", ""}},
		{"put \xff\xfe", []string{"put", "\xff\xfe"}},
	} {
		got, err := splitArgs(tc.line)
		if err != nil || strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("splitArgs(%q) = %q, %v; want %q", tc.line, got, err, tc.want)
		}
	}
	for _, bad := range []string{`put "a`, `put 'a`, `put a\`, `put "\q"`} {
		if _, err := splitArgs(bad); err == nil {
			t.Errorf("splitArgs(%q) took it", bad)
		}
	}
	// Whatever text output quotes, the shell reads back.
	for _, b := range []string{"", "a\x00", "\"x", "a b=c", "\xff", "tab\there", `back\slash`, "é"} {
		q := quoteIfNeeded([]byte(b), true)
		got, err := splitArgs("x " + q)
		if err != nil || len(got) != 2 || got[1] != b {
			t.Errorf("%q printed as %s reads back as %q, %v", b, q, got, err)
		}
	}
}

// TestLongLines: a shell line longer than 16 MiB (a value at the limit)
// works; a line over the bound is dropped with an error, and the lines
// after it run.
func TestLongLines(t *testing.T) {
	value := strings.Repeat("v", 16<<20)
	code, out, errOut := cli(t, "put k "+value+"\nget k --count\n", "--mem")
	if code != 0 || !strings.Contains(out, "OK revision 2\n1\n") {
		t.Fatalf("a 16 MiB line: exit %d, %.200s %s", code, out, errOut)
	}
	defer func(old int) { maxLine = old }(maxLine)
	maxLine = 100
	code, out, errOut = cli(t, "put a "+strings.Repeat("x", 300)+"\nput b 1\n", "--mem")
	if code != 1 || !strings.Contains(errOut, "error: line 1: line too long: over 100 bytes; dropped") || !strings.Contains(out, "OK revision 2\n") {
		t.Fatalf("an over-long line: exit %d, %q %q", code, out, errOut)
	}
}

// TestParseArgs: flags among arguments, as typed, in every spelling.
func TestParseArgs(t *testing.T) {
	for _, tc := range []struct {
		args []string
		pos  string // positional arguments, joined by |
		o    opts
		err  string
	}{
		{args: []string{"k", "--rev", "3", "--prefix"}, pos: "k", o: opts{rev: 3, prefix: true}},
		{args: []string{"-rev=3", "k", "--prefix=false"}, pos: "k", o: opts{rev: 3}},
		{args: []string{"k", "--end", ""}, pos: "k", o: opts{end: optString{set: true}}},
		{args: []string{"k", "--end="}, pos: "k", o: opts{end: optString{set: true}}},
		{args: []string{"-1", "-", "-.5"}, pos: "-1|-|-.5"},
		{args: []string{"a", "--", "--rev", "-x"}, pos: "a|--rev|-x"},
		{args: []string{"--rev"}, err: "flag --rev needs a value"},
		{args: []string{"--rev=x"}, err: `--rev "x": want an integer`},
		{args: []string{"-rev", "x"}, err: `-rev "x": want an integer`},
		{args: []string{"--nope=1"}, err: "unknown flag --nope"},
	} {
		fs := newFlagSet("t")
		var o opts
		commands["get"].flags(fs, &o)
		pos, err := parseArgs(fs, tc.args, true)
		switch {
		case tc.err != "":
			if err == nil || err.Error() != tc.err {
				t.Errorf("%q: error %v, want %q", tc.args, err, tc.err)
			}
		case err != nil || strings.Join(pos, "|") != tc.pos || o != tc.o:
			t.Errorf("%q: %q %+v %v; want %q %+v", tc.args, pos, o, err, tc.pos, tc.o)
		}
	}
}
