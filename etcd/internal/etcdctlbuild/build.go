// Package etcdctlbuild builds etcdctl v3.7.3 from the Go module proxy for
// tests that drive it.
package etcdctlbuild

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ErrUnavailable wraps any failure to fetch or build etcdctl (no network,
// no proxy): callers skip rather than fail.
var ErrUnavailable = errors.New("etcdctlbuild: etcdctl v3.7.3 unavailable")

// Build builds etcdctl v3.7.3 into dir and returns its path. etcdctl's
// go.mod has replace directives, so `go install etcdctl@v3.7.3` refuses
// it; a throwaway module that requires it builds it as a dependency, its
// replaces ignored. The first build takes about 40 s; the Go build cache
// makes later ones take a few seconds.
func Build(dir string) (string, error) {
	mod, err := os.MkdirTemp("", "etcdctlbuild")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(mod)
	if err := os.WriteFile(filepath.Join(mod, "go.mod"), []byte("module etcdctlbuild\n\ngo 1.26.0\n"), 0o644); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "etcdctl")
	for _, args := range [][]string{
		{"get", "go.etcd.io/etcd/etcdctl/v3@v3.7.3"},
		{"build", "-o", bin, "go.etcd.io/etcd/etcdctl/v3"},
	} {
		cmd := exec.Command("go", args...)
		cmd.Dir = mod
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("%w: go %s: %v\n%s", ErrUnavailable, strings.Join(args, " "), err, out)
		}
	}
	return bin, nil
}
