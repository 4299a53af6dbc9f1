package compare

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"time"
)

// Config says what to run.
type Config struct {
	Engines []Engine
	// Only, if not empty, names the workloads to run.
	Only []string
	// Rounds is how many times each workload runs on each engine, the
	// engines' order rotating each round; the median counts. Costly
	// workloads cap it.
	Rounds int
	// Scale multiplies every size (1: the full sizes; tests use tiny ones).
	Scale float64
	// Log, if not nil, gets a line per run.
	Log io.Writer
	// Fresh runs every round in a new process of this executable (which
	// must call ChildMain), so that no round starts with a heap that the
	// rounds before it left warm or cold. Without it, the rounds share
	// this process, but for the workloads that always need one of their
	// own (rss).
	Fresh bool
	// CPUProfile, if not empty, is a path prefix: each round's timed part
	// is profiled to <prefix>.<workload>.<engine>.pprof (the last round's
	// profile stays).
	CPUProfile string
}

// Row is one engine's figures for one workload.
type Row struct {
	Workload    string  `json:"workload"`
	Engine      string  `json:"engine"`
	NsPerOp     float64 `json:"ns_per_op,omitempty"`
	AllocsPerOp float64 `json:"allocs_per_op,omitempty"`
	BytesPerOp  float64 `json:"bytes_per_op,omitempty"`
	// FaultsPerOp is the process's minor page faults per operation: the
	// first touches of memory the timed part grew into.
	FaultsPerOp float64            `json:"faults_per_op,omitempty"`
	Extra       map[string]float64 `json:"extra,omitempty"`
	// Rounds is how many rounds ran; Min and Max are the primary figure's
	// extremes over them (the other figures are the median round's).
	Rounds int     `json:"rounds,omitempty"`
	Min    float64 `json:"min,omitempty"`
	Max    float64 `json:"max,omitempty"`
	// Ratio is etcd's figure over revkv's for the workload's primary
	// figure, on revkv's row; RatioMin and RatioMax are the extremes of
	// the ratio taken round by round (etcd's round r over revkv's).
	Ratio    float64 `json:"etcd_over_revkv,omitempty"`
	RatioMin float64 `json:"ratio_min,omitempty"`
	RatioMax float64 `json:"ratio_max,omitempty"`
	Note     string  `json:"note,omitempty"`
	// Failed says why a round failed (the figures are the other rounds').
	Failed string `json:"failed,omitempty"`
}

// DefaultEngines are the engines of the comparison.
func DefaultEngines() []Engine { return []Engine{Revkv{}, Etcd{}, Buntdb{}, Memdb{}} }

// keysNeeded is how many keys of the table the workloads use at a scale:
// the largest is 1M keys, plus the compaction's stall probe key.
func keysNeeded(scale float64) int { return scaled(1_000_000, scale) + 1 }

// Run runs the workloads and returns a row per workload and engine.
func Run(cfg Config) ([]Row, error) {
	if cfg.Rounds <= 0 {
		cfg.Rounds = 1
	}
	if cfg.Scale <= 0 {
		cfg.Scale = 1
	}
	makeKeys(keysNeeded(cfg.Scale))
	var rows []Row
	for _, w := range Workloads() {
		if len(cfg.Only) > 0 && !slices.Contains(cfg.Only, w.Name) {
			continue
		}
		rs, err := runWorkload(cfg, w)
		if err != nil {
			return rows, fmt.Errorf("%s: %w", w.Name, err)
		}
		rows = append(rows, rs...)
	}
	return rows, nil
}

func runWorkload(cfg Config, w Workload) ([]Row, error) {
	rounds := cfg.Rounds
	if w.MaxRounds > 0 {
		rounds = min(rounds, w.MaxRounds)
	}
	results := map[string][]Result{}
	notes := map[string]string{}
	failed := map[string]string{}
	engines := append(slices.Clip(cfg.Engines), w.Extra...)
	n := len(engines)
	for r := range rounds {
		for i := range n {
			e := engines[(i+r)%n] // rotate, so drift hits every engine alike
			if note, ok := w.NotYet[e.Name()]; ok {
				notes[e.Name()] = "cannot run yet: " + note
				continue
			}
			res, err := runRound(cfg, w, e)
			if errors.Is(err, ErrUnsupported) {
				notes[e.Name()] = "not supported"
				continue
			}
			if err != nil {
				// One engine's failure (a timeout on a loaded machine)
				// costs its round, not the whole run.
				failed[e.Name()] = fmt.Sprintf("round %d failed: %v", r+1, err)
				if cfg.Log != nil {
					fmt.Fprintf(cfg.Log, "%-14s %-9s round %d: %v\n", w.Name, e.Name(), r+1, err)
				}
				continue
			}
			if cfg.Log != nil {
				fmt.Fprintf(cfg.Log, "%-14s %-9s round %d: %d ops in %v\n", w.Name, e.Name(), r+1, res.Ops, res.Elapsed.Round(time.Microsecond))
			}
			results[e.Name()] = append(results[e.Name()], res)
		}
	}
	var rows []Row
	for _, e := range engines {
		row := Row{Workload: w.Name, Engine: e.Name(), Note: notes[e.Name()], Failed: failed[e.Name()]}
		if rs := results[e.Name()]; len(rs) > 0 {
			med := median(rs)
			ops := float64(med.Ops)
			row.NsPerOp = float64(med.Elapsed.Nanoseconds()) / ops
			row.AllocsPerOp = float64(med.Allocs) / ops
			row.BytesPerOp = float64(med.Bytes) / ops
			row.FaultsPerOp = float64(med.Faults) / ops
			row.Extra = med.Extra
			row.Note = ""
			row.Rounds = len(rs)
			row.Min, row.Max = primaryRange(rs, w.Primary)
		}
		if row.Note == "" && len(results[e.Name()]) == 0 && row.Failed != "" {
			row.Note = row.Failed // no round succeeded
		}
		rows = append(rows, row)
	}
	// Engines named only in NotYet (revkv+filelog) get a row too.
	for name, note := range w.NotYet {
		if !slices.ContainsFunc(cfg.Engines, func(e Engine) bool { return e.Name() == name }) {
			rows = append(rows, Row{Workload: w.Name, Engine: name, Note: "cannot run yet: " + note})
		}
	}
	setRatio(rows, w.Primary)
	setRatioRange(rows, results, w.Primary)
	return rows, nil
}

// primaryOf returns a result's primary figure.
func primaryOf(r Result, name string) float64 {
	if name == "" || name == "ns/op" {
		return float64(r.Elapsed.Nanoseconds()) / float64(r.Ops)
	}
	return r.Extra[name]
}

// primaryRange returns the smallest and largest primary figure of rs.
func primaryRange(rs []Result, name string) (lo, hi float64) {
	for i, r := range rs {
		v := primaryOf(r, name)
		if i == 0 || v < lo {
			lo = v
		}
		if i == 0 || v > hi {
			hi = v
		}
	}
	return lo, hi
}

// setRatioRange sets the extremes of the round-by-round ratio of etcd's
// primary figure over revkv's on revkv's rows.
func setRatioRange(rows []Row, results map[string][]Result, name string) {
	etcd := results["etcd"]
	for i := range rows {
		r := &rows[i]
		rs := results[r.Engine]
		if !strings.HasPrefix(r.Engine, "revkv") || len(rs) == 0 || len(rs) != len(etcd) {
			continue
		}
		first := true
		for k := range rs {
			a, b := primaryOf(etcd[k], name), primaryOf(rs[k], name)
			if a <= 0 || b <= 0 {
				continue
			}
			q := a / b
			if first || q < r.RatioMin {
				r.RatioMin = q
			}
			if first || q > r.RatioMax {
				r.RatioMax = q
			}
			first = false
		}
	}
}

// runRound runs one round of w on e, in this process or in a new one.
func runRound(cfg Config, w Workload, e Engine) (Result, error) {
	if cfg.Fresh || w.OwnProcess {
		return inChild(w, e, cfg)
	}
	return runOnce(cfg, w, e)
}

// runOnce runs one round of w on a new store of e, in this process.
func runOnce(cfg Config, w Workload, e Engine) (Result, error) {
	dir, err := os.MkdirTemp("", "revkv-compare-")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(dir)
	s, err := e.Open(dir)
	if err != nil {
		return Result{}, err
	}
	env := &Env{Engine: e, Store: s, Dir: dir, Scale: cfg.Scale}
	if cfg.CPUProfile != "" {
		profilePath = fmt.Sprintf("%s.%s.%s.pprof", cfg.CPUProfile, w.Name, e.Name())
		defer func() { profilePath = "" }()
	}
	res, err := w.Run(env)
	if env.Store != nil {
		if cerr := env.Store.Close(); err == nil {
			err = cerr
		}
	}
	return res, err
}

// median returns the result with the median time.
func median(rs []Result) Result {
	s := slices.Clone(rs)
	sort.Slice(s, func(i, j int) bool {
		return s[i].Elapsed.Seconds()/float64(s[i].Ops) < s[j].Elapsed.Seconds()/float64(s[j].Ops)
	})
	return s[len(s)/2]
}

func primary(r Row, name string) float64 {
	if name == "" || name == "ns/op" {
		return r.NsPerOp
	}
	return r.Extra[name]
}

func setRatio(rows []Row, name string) {
	var etcd *Row
	for i := range rows {
		if rows[i].Engine == "etcd" {
			etcd = &rows[i]
		}
	}
	if etcd == nil {
		return
	}
	for i := range rows {
		r := &rows[i]
		if !strings.HasPrefix(r.Engine, "revkv") {
			continue
		}
		if a, b := primary(*etcd, name), primary(*r, name); a > 0 && b > 0 {
			r.Ratio = a / b
		}
	}
}

// Markdown writes rows as a markdown table.
func Markdown(w io.Writer, rows []Row) {
	fmt.Fprintln(w, "| workload | engine | ns/op | allocs/op | B/op | faults/op | other | etcd/revkv |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---|---:|")
	for _, r := range rows {
		if r.Note != "" {
			fmt.Fprintf(w, "| %s | %s | | | | | %s | |\n", r.Workload, r.Engine, r.Note)
			continue
		}
		ratio := ""
		if r.Ratio > 0 {
			ratio = fmt.Sprintf("%.2fx", r.Ratio)
			if r.Rounds > 1 && r.RatioMax > 0 {
				ratio += fmt.Sprintf(" [%.2f-%.2f]", r.RatioMin, r.RatioMax)
			}
		}
		other := extra(r.Extra)
		if r.Failed != "" {
			other = strings.TrimPrefix(other+"; "+r.Failed, "; ")
		}
		fmt.Fprintf(w, "| %s | %s | %s | %.1f | %.0f | %.3g | %s | %s |\n",
			r.Workload, r.Engine, ns(r.NsPerOp), r.AllocsPerOp, r.BytesPerOp, r.FaultsPerOp, other, ratio)
	}
}

func ns(v float64) string {
	switch {
	case v >= 1e9:
		return fmt.Sprintf("%.2f s", v/1e9)
	case v >= 1e6:
		return fmt.Sprintf("%.2f ms", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.1f µs", v/1e3)
	}
	return fmt.Sprintf("%.0f ns", v)
}

func extra(m map[string]float64) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%s %.4g", k, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}
