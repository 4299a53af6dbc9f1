package raftstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/revkv/revkv/persist/memfs"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// long says whether to run the long sweeps: RAFTSTORE_LONG=1 (see
// etcd/README.md).
var long = os.Getenv("RAFTSTORE_LONG") != ""

// sweepOpts are store options that make a small workload rotate
// segments, remove them, and replace snapshots; the warnings are counted.
var (
	warnings  = &countingHandler{counts: map[string]int{}}
	sweepOpts = Options{SegmentBytes: 300, Logger: slog.New(warnings)}
)

// countingHandler counts log records by message.
type countingHandler struct {
	mu     sync.Mutex
	counts map[string]int
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *countingHandler) WithGroup(string) slog.Handler            { return h }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	key := r.Message
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "what" {
			what, _, _ := strings.Cut(a.Value.String(), ":")
			key += " (" + what + ")"
		}
		return true
	})
	h.counts[key]++
	return nil
}

// take returns the counts so far and starts again.
func (h *countingHandler) take() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.counts
	h.counts = map[string]int{}
	return c
}

// crashRun runs w on a fresh memfs with fsopts that crashes at its k-th
// file operation (k = 0: never), then crashes it, reopens the store and
// checks it: it holds everything acknowledged (and at most the op that
// failed besides), and takes a new write that survives another reopen.
// It returns whether the crash point was reached.
func crashRun(w *workload, fsopts memfs.Options, k int64) (bool, error) {
	fs, acked, attempted, reached, err := runUntilCrash(w, fsopts, k)
	if !reached || err != nil {
		return reached, err
	}
	return true, checkRecovery(fs, w, acked, attempted)
}

// runUntilCrash runs w on a fresh memfs that crashes at its k-th file
// operation (k = 0: never), and crashes it. It returns how many ops were
// acknowledged and attempted; reached is false if w ended before the
// crash point.
func runUntilCrash(w *workload, fsopts memfs.Options, k int64) (fs *memfs.FS, acked, attempted int, reached bool, err error) {
	fs = memfs.New(fsopts)
	if k > 0 {
		fs.CrashAfter(k)
	}
	s, err := Open(fs, "raft", sweepOpts)
	if err == nil {
		for i, o := range w.ops {
			attempted = i + 1
			if err = o.applyStore(s); err != nil {
				break
			}
			acked = i + 1
		}
		s.Close()
	}
	if k > 0 && err == nil {
		return fs, acked, attempted, false, nil
	}
	if err != nil && !errors.Is(err, memfs.ErrCrashed) {
		return fs, acked, attempted, true, fmt.Errorf("op %d failed with %v, not the crash", attempted, err)
	}
	fs.Crash()
	return fs, acked, attempted, true, nil
}

// checkRecovery opens the store on fs and checks it holds the state after
// the acknowledged ops (or the attempted one), and takes a write.
func checkRecovery(fs *memfs.FS, w *workload, acked, attempted int) error {
	s, err := Open(fs, "raft", sweepOpts)
	if err != nil {
		return fmt.Errorf("reopen after %d ops acknowledged: %w", acked, err)
	}
	m, err := w.matchState(s, acked, attempted)
	if err != nil {
		s.Close()
		return err
	}
	return writeAndReopen(fs, s, m)
}

// writeAndReopen saves one more entry and hard state on the recovered s
// (and on m, the model it matched), closes it, crashes, opens the
// directory again, and compares: recovery left the store whole.
func writeAndReopen(fs *memfs.FS, s *Store, m *raft.MemoryStorage) error {
	last, _ := m.LastIndex()
	o := op{kind: "save", ents: []*raftpb.Entry{ent(last+1, 99, "after")}, hs: hardState(99, 2, last)}
	if err := o.applyStore(s); err != nil {
		s.Close()
		return fmt.Errorf("write after recovery: %w", err)
	}
	o.applyModel(m, false)
	if err := s.Close(); err != nil {
		return fmt.Errorf("close after recovery: %w", err)
	}
	fs.Crash()
	s, err := Open(fs, "raft", sweepOpts)
	if err != nil {
		return fmt.Errorf("second reopen: %w", err)
	}
	defer s.Close()
	if err := sameStorage(s, m, 100, false); err != nil {
		return fmt.Errorf("second reopen: %w", err)
	}
	return nil
}

// TestCrashSweep crashes a workload at every file operation under each
// crash model, and checks each recovery. It asserts its own minimum
// number of crash points, so it cannot silently shrink.
func TestCrashSweep(t *testing.T) {
	seeds, ops, want := 2, 45, 900
	if long {
		seeds, ops, want = 20, 150, 30000
	}
	total := 0
	for _, model := range []memfs.CrashModel{memfs.CrashDrop, memfs.CrashTorn, memfs.CrashGrowFirst} {
		t.Run(model.String(), func(t *testing.T) {
			warnings.take()
			points := 0
			for seed := range uint64(seeds) {
				w := genWorkload(seed, ops)
				if _, err := crashRun(w, memfs.Options{Crash: model, Seed: seed}, 0); err != nil {
					t.Fatalf("seed %d, no crash: %v", seed, err)
				}
				for k := int64(1); ; k++ {
					reached, err := crashRun(w, memfs.Options{Crash: model, Seed: seed*1000 + uint64(k)}, k)
					if err != nil {
						t.Fatalf("seed %d, crash at op %d: %v", seed, k, err)
					}
					if !reached {
						break
					}
					points++
				}
			}
			t.Logf("%d crash points; warnings: %v", points, warnings.take())
			total += points
		})
	}
	if total < want {
		t.Errorf("swept %d crash points, want at least %d", total, want)
	}
	t.Logf("crash points in all: %d", total)
}

// TestCrashDuringRecovery crashes a workload, then crashes the recovery
// (cutting a torn tail, removing leftovers) at each of its file
// operations, and checks the recovery after that.
func TestCrashDuringRecovery(t *testing.T) {
	every := int64(13)
	if long {
		every = 1
	}
	points := 0
	for _, model := range []memfs.CrashModel{memfs.CrashDrop, memfs.CrashTorn, memfs.CrashGrowFirst} {
		w := genWorkload(uint64(model)+100, 40)
		for k := int64(1); ; k += every {
			fs, acked, attempted, reached, err := runUntilCrash(w, memfs.Options{Crash: model, Seed: uint64(k)}, k)
			if err != nil {
				t.Fatalf("%v, crash at op %d: %v", model, k, err)
			}
			if !reached {
				break
			}
			for j := int64(1); ; j++ {
				c := fs.Clone()
				c.CrashAfter(j)
				s, err := Open(c, "raft", sweepOpts)
				if err == nil {
					s.Close()
					break // the recovery ended before the crash point
				}
				if !errors.Is(err, memfs.ErrCrashed) {
					t.Fatalf("%v, crash at op %d, recovery crashed at op %d: %v", model, k, j, err)
				}
				c.Crash()
				if err := checkRecovery(c, w, acked, attempted); err != nil {
					t.Fatalf("%v, crash at op %d, recovery crashed at op %d: %v", model, k, j, err)
				}
				points++
			}
		}
	}
	t.Logf("%d crash points in recoveries", points)
	if points < 100 {
		t.Errorf("swept %d crash points in recoveries, want at least 100", points)
	}
}
