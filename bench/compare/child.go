package compare

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync/atomic"
)

// A round can run in a process of its own: the runner starts its own
// executable again with childEnv set, and ChildMain, called first thing in
// main (and in TestMain), runs the round there, prints its result and
// exits. In one process, a round starts with whatever heap the rounds
// before it left, mapped and warm or handed back to the OS and cold; on a
// machine where a first touch of a page is dear, that moves an engine's
// figure by tens of percent from round to round.

const childEnv = "REVKV_COMPARE_CHILD"

// childReady says ChildMain was called in this process: its executable
// can serve as a child.
var childReady atomic.Bool

// childRequest is the round the parent asks a child to run.
type childRequest struct {
	Workload string  `json:"workload"`
	Engine   string  `json:"engine"`
	Scale    float64 `json:"scale"`
	Profile  string  `json:"profile,omitempty"` // Config.CPUProfile
}

// childReply is what the child prints: the round's result, or why it
// failed.
type childReply struct {
	Result      Result `json:"result"`
	Err         string `json:"err,omitempty"`
	Unsupported bool   `json:"unsupported,omitempty"`
}

// ChildMain makes this executable able to run a round in a process of its
// own. Call it first in main and in TestMain: in a process the runner
// started as a child, it runs the round, prints the result and exits; in
// any other, it returns at once.
func ChildMain() {
	childReady.Store(true)
	raw := os.Getenv(childEnv)
	if raw == "" {
		return
	}
	var reply childReply
	res, err := runChild(raw)
	if err != nil {
		reply.Err = err.Error()
		reply.Unsupported = errors.Is(err, ErrUnsupported)
	}
	reply.Result = res
	if err := json.NewEncoder(os.Stdout).Encode(reply); err != nil {
		fmt.Fprintln(os.Stderr, "compare child:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// runChild runs the round raw asks for, in this process.
func runChild(raw string) (Result, error) {
	var req childRequest
	if err := json.Unmarshal([]byte(raw), &req); err != nil {
		return Result{}, err
	}
	e, err := engineByName(req.Engine)
	if err != nil {
		return Result{}, err
	}
	w, err := workloadByName(req.Workload)
	if err != nil {
		return Result{}, err
	}
	cfg := Config{Scale: req.Scale, CPUProfile: req.Profile}
	makeKeys(keysNeeded(cfg.Scale))
	return runOnce(cfg, w, e)
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

// workloadByName returns the workload of that name.
func workloadByName(name string) (Workload, error) {
	for _, w := range Workloads() {
		if w.Name == name {
			return w, nil
		}
	}
	return Workload{}, fmt.Errorf("no workload %q", name)
}

// inChild runs one round of workload w on engine e in a new process of
// this executable. An ErrUnsupported in the child is one here too.
func inChild(w Workload, e Engine, cfg Config) (Result, error) {
	if !childReady.Load() {
		return Result{}, fmt.Errorf("%w: the executable does not call compare.ChildMain", ErrUnsupported)
	}
	exe, err := os.Executable()
	if err != nil {
		return Result{}, fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	req, _ := json.Marshal(childRequest{Workload: w.Name, Engine: e.Name(), Scale: cfg.Scale, Profile: cfg.CPUProfile})
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childEnv+"="+string(req))
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return Result{}, fmt.Errorf("child for %s on %s: %v: %s", w.Name, e.Name(), err, errOut.String())
	}
	var reply childReply
	if err := json.Unmarshal(out.Bytes(), &reply); err != nil {
		return Result{}, fmt.Errorf("child for %s on %s: %v in %q", w.Name, e.Name(), err, out.String())
	}
	switch {
	case reply.Unsupported:
		return Result{}, fmt.Errorf("%w: %s", ErrUnsupported, reply.Err)
	case reply.Err != "":
		return reply.Result, errors.New(reply.Err)
	}
	return reply.Result, nil
}
