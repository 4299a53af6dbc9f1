// Command compare runs revkv and the stores it is compared with (etcd's
// mvcc on bbolt, buntdb, go-memdb) through the same workloads, side by side
// in one run, and prints a markdown table (or JSON) of each engine's cost
// per operation and etcd's time over revkv's.
//
// Every round of every engine runs in a new process (-fresh, the default),
// so none starts with a heap an earlier round left warm or cold.
//
// From the bench directory:
//
//	go run ./cmd/compare [-only put-seq,range-1] [-engines revkv,etcd] [-n rounds] [-fresh=false] [-json]
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/revkv/revkv/bench/compare"
)

func main() {
	compare.ChildMain() // rounds run in processes of their own
	only := flag.String("only", "", "comma-separated workloads to run (default: all)")
	rounds := flag.Int("n", 3, "rounds per workload and engine, alternating engines; the median counts")
	asJSON := flag.Bool("json", false, "print JSON rows instead of a markdown table")
	scale := flag.Float64("scale", 1, "multiply every workload's size (for quick runs)")
	quiet := flag.Bool("q", false, "no progress lines on stderr")
	engines := flag.String("engines", "", "comma-separated engines to run (default: all; revkv+filelog runs where a workload adds it)")
	fresh := flag.Bool("fresh", true, "run every round in a new process (false: rounds share this one, but for rss)")
	cpuProfile := flag.String("cpuprofile", "", "profile each round's timed part to <prefix>.<workload>.<engine>.pprof")
	flag.Parse()

	cfg := compare.Config{Engines: compare.DefaultEngines(), Rounds: *rounds, Scale: *scale, Fresh: *fresh, CPUProfile: *cpuProfile}
	if *engines != "" {
		cfg.Engines = nil
		for _, name := range strings.Split(*engines, ",") {
			i := slices.IndexFunc(compare.DefaultEngines(), func(e compare.Engine) bool { return e.Name() == name })
			if i < 0 {
				fmt.Fprintf(os.Stderr, "compare: unknown engine %q\n", name)
				os.Exit(2)
			}
			cfg.Engines = append(cfg.Engines, compare.DefaultEngines()[i])
		}
	}
	if *only != "" {
		cfg.Only = strings.Split(*only, ",")
		known := map[string]bool{}
		for _, w := range compare.Workloads() {
			known[w.Name] = true
		}
		for _, name := range cfg.Only {
			if !known[name] {
				fmt.Fprintf(os.Stderr, "compare: unknown workload %q\n", name)
				os.Exit(2)
			}
		}
	}
	if !*quiet {
		cfg.Log = os.Stderr
	}
	start := time.Now()
	rows, err := compare.Run(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(1)
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rows)
		return
	}
	compare.Markdown(os.Stdout, rows)
	fmt.Fprintf(os.Stderr, "compare: %v\n", time.Since(start).Round(time.Second))
}
