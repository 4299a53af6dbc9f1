package compare

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
)

// The rss workload measures each engine's resident memory in a process of
// its own: a process's RSS never comes back down to what a fresh one
// holds, so an engine measured after others would pay for their peaks.
// The runner starts its own executable again with childEnv set; ChildMain,
// called first thing in main (and in TestMain), runs the measurement there
// and exits.

const childEnv = "REVKV_COMPARE_CHILD"

// childReady says ChildMain was called in this process: its executable
// can serve as a child.
var childReady atomic.Bool

// childRequest is what the parent asks a child to measure.
type childRequest struct {
	Engine string  `json:"engine"`
	Scale  float64 `json:"scale"`
}

// ChildMain makes this executable able to measure one engine in a process
// of its own (the rss workload). Call it first in main and in TestMain: in
// a process the runner started as a child, it measures, prints the result
// and exits; in any other, it returns at once.
func ChildMain() {
	childReady.Store(true)
	req := os.Getenv(childEnv)
	if req == "" {
		return
	}
	res, err := runChild(req)
	if err != nil {
		fmt.Fprintln(os.Stderr, "compare child:", err)
		os.Exit(1)
	}
	json.NewEncoder(os.Stdout).Encode(res)
	os.Exit(0)
}

// engineByName returns the engine of that name among every engine the
// runner knows.
func engineByName(name string) (Engine, error) {
	for _, e := range append(DefaultEngines(), RevkvFile{}) {
		if e.Name() == name {
			return e, nil
		}
	}
	return nil, fmt.Errorf("no engine %q", name)
}

// runChild loads 1M keys (times the scale) into a fresh store of the
// engine and reports the growth of the process's RSS per key: as it stands
// after the load (rss-B/key, what the process shows, with whatever the
// garbage collector has not returned to the OS), and after a collection
// that returns free memory to the OS (rss-freed-B/key).
func runChild(raw string) (Result, error) {
	var req childRequest
	if err := json.Unmarshal([]byte(raw), &req); err != nil {
		return Result{}, err
	}
	e, err := engineByName(req.Engine)
	if err != nil {
		return Result{}, err
	}
	n := scaled(1_000_000, req.Scale)
	makeKeys(n)
	dir, err := os.MkdirTemp("", "revkv-compare-rss-")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(dir)
	debug.FreeOSMemory()
	before, err := vmRSS()
	if err != nil {
		return Result{}, err
	}
	s, err := e.Open(dir)
	if err != nil {
		return Result{}, err
	}
	res, err := measure(n, func() error { return load(s, n) })
	if err != nil {
		return Result{}, err
	}
	after, err := vmRSS()
	if err != nil {
		return Result{}, err
	}
	debug.FreeOSMemory()
	freed, err := vmRSS()
	if err != nil {
		return Result{}, err
	}
	runtime.KeepAlive(s)
	res.Extra = map[string]float64{
		"rss-B/key":       float64(after-min(before, after)) / float64(n),
		"rss-freed-B/key": float64(freed-min(before, freed)) / float64(n),
	}
	return res, s.Close()
}

// vmRSS returns the process's resident set size, from /proc/self/status.
func vmRSS() (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("VmRSS line %q: %v", sc.Text(), err)
		}
		return kb << 10, nil
	}
	return 0, errors.Join(ErrUnsupported, errors.New("no VmRSS in /proc/self/status"), sc.Err())
}

// inChild runs the rss measurement of engine e in a new process of this
// executable.
func inChild(e Engine, scale float64) (Result, error) {
	if !childReady.Load() {
		return Result{}, fmt.Errorf("%w: the executable does not call compare.ChildMain", ErrUnsupported)
	}
	if _, err := vmRSS(); err != nil {
		return Result{}, err
	}
	exe, err := os.Executable()
	if err != nil {
		return Result{}, fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	req, _ := json.Marshal(childRequest{Engine: e.Name(), Scale: scale})
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childEnv+"="+string(req))
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return Result{}, fmt.Errorf("child for %s: %v: %s", e.Name(), err, errOut.String())
	}
	var res Result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		return Result{}, fmt.Errorf("child for %s: %v in %q", e.Name(), err, out.String())
	}
	return res, nil
}
