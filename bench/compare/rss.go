package compare

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// The rss workload measures each engine's resident memory in a process of
// its own: a process's RSS never comes back down to what a fresh one
// holds, so an engine measured after others would pay for their peaks.

// rssLoad loads 1M keys (times the scale) into env's store, new in a
// process of its own, and reports the growth of the process's RSS per key:
// as it stands after the load (rss-B/key, what the process shows, with
// whatever the garbage collector has not returned to the OS), and after a
// collection that returns free memory to the OS (rss-freed-B/key).
func rssLoad(env *Env) (Result, error) {
	n := scaled(1_000_000, env.Scale)
	debug.FreeOSMemory()
	before, err := vmRSS()
	if err != nil {
		return Result{}, err
	}
	res, err := measure(n, func() error { return load(env.Store, n) })
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
	res.Extra = map[string]float64{
		"rss-B/key":       float64(after-min(before, after)) / float64(n),
		"rss-freed-B/key": float64(freed-min(before, freed)) / float64(n),
	}
	return res, nil
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
