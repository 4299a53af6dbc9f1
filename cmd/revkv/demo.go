package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
)

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
# Keys and values are bytes: text output quotes what would be ambiguous,
# JSON output holds them in base64.
put "bin\x00key" "two\nlines"
get "" --prefix
get "bin\x00key" -o json
# Compaction drops history below a revision; reads there fail.
compact 3
get greeting --rev 2
hash
`

// demo runs demoScript on a store in a temporary directory, then closes
// and reopens it to show that the writes were durable. The directory is
// removed however the demo ends (an interrupt, or a closed stdout).
func demo(ctx context.Context, stdout, stderr io.Writer) error {
	dir, err := os.MkdirTemp("", "revkv-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	g := newGlobal()
	g.dir.v = dir
	script := func(text string) error {
		s, err := openStore(g.spec(false, nil))
		if err != nil {
			return err
		}
		if text == "" {
			fmt.Fprintf(stdout, "\n# Closed and opened again: recovered at revision %d.\n", s.Rev())
			text = "get \"\" --prefix\n"
		}
		_, err = runShell(ctx, g, s, pipeSource{bufio.NewReader(strings.NewReader(text))}, stdout, stderr, true)
		if cerr := s.Close(); err == nil {
			err = cerr
		}
		return err
	}
	fmt.Fprintf(stdout, "A revkv store in %s (sync on every write).\n", dir)
	if err := script(demoScript); err != nil {
		return err
	}
	if err := script(""); err != nil {
		return err
	}
	return writeErr(stdout)
}
