package filelog_test

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/persist/filelog"
)

// killOpts make a killed writer meet rotation, snapshots and compaction
// snapshots often.
var killOpts = filelog.Options{SegmentSize: 4 << 10, SnapshotRevs: 64}

// TestMain runs this test binary as a writer process when
// REVKV_REVIEW_WRITER names a directory (for TestReviewKillWriters).
func TestMain(m *testing.M) {
	if dir := os.Getenv("REVKV_REVIEW_WRITER"); dir != "" {
		killWriter(dir)
		return
	}
	os.Exit(m.Run())
}

// killWriter opens the store in dir and has 4 goroutines put unique keys
// (and one compact now and then), printing "ack <key>" once each Put has
// returned; it runs until killed.
func killWriter(dir string) {
	opts := killOpts
	l, err := filelog.Open(dir, opts)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	s, err := engine.Open(l, engine.Options{})
	if err != nil {
		fmt.Println("error", strings.ReplaceAll(err.Error(), "\n", " "))
		os.Exit(2)
	}
	round := os.Getenv("REVKV_REVIEW_ROUND")
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				key := fmt.Sprintf("r%s-w%d-%06d", round, g, i)
				rev, err := s.Put([]byte(key), []byte("v"+key))
				if err != nil {
					fmt.Println("error", err)
					os.Exit(2)
				}
				mu.Lock()
				os.Stdout.WriteString("ack " + key + "\n") // one write: a line is whole or absent
				mu.Unlock()
				if g == 0 && i%97 == 96 {
					if err := s.Compact(rev - 20); err != nil {
						fmt.Println("error", err)
						os.Exit(2)
					}
				}
			}
		}()
	}
	wg.Wait()
}

// TestReviewKillWriters runs writer processes on one directory and kills
// each (SIGKILL) after a random time, sometimes while it recovers from
// the kill before: every Put a writer saw acknowledged must be in the
// store, a read-only open (what verify does) must see the same, and
// nothing may stop an open. REVKV_KILL_ROUNDS sets the rounds (default 6).
func TestReviewKillWriters(t *testing.T) {
	if testing.Short() {
		t.Skip("runs processes")
	}
	rounds := 6
	if n, err := strconv.Atoi(os.Getenv("REVKV_KILL_ROUNDS")); err == nil {
		rounds = n
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11))
	var acked []string
	earlyKills := 0
	for round := range rounds {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), "REVKV_REVIEW_WRITER="+dir, fmt.Sprint("REVKV_REVIEW_ROUND=", round))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan []string)
		go func() {
			var got []string
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				got = append(got, sc.Text())
			}
			lines <- got
		}()
		// A kill within the first few milliseconds lands in the open's
		// recovery of the kill before.
		delay := time.Duration(rng.IntN(250)) * time.Millisecond
		if round%3 == 2 {
			delay = time.Duration(rng.IntN(8)) * time.Millisecond
		}
		time.Sleep(delay)
		cmd.Process.Kill()
		got := <-lines
		cmd.Wait()
		if len(got) == 0 {
			earlyKills++
		}
		for _, line := range got {
			key, ok := strings.CutPrefix(line, "ack ")
			if !ok {
				t.Fatalf("round %d: writer said %q", round, line)
			}
			acked = append(acked, key)
		}
		if err := checkAcked(dir, acked, false); err != nil {
			t.Fatalf("round %d (killed after %v): %v", round, delay, err)
		}
	}
	if err := checkAcked(dir, acked, true); err != nil {
		t.Fatalf("after %d rounds: %v", rounds, err)
	}
	t.Logf("%d kill rounds (%d before the first ack), %d acknowledged puts, all there", rounds, earlyKills, len(acked))
}

// checkAcked opens dir read-only (and, if write, read-write) and checks
// that every key in acked has its value.
func checkAcked(dir string, acked []string, write bool) error {
	for _, ro := range []bool{true, !write} {
		opts := killOpts
		opts.ReadOnly = ro
		l, err := filelog.Open(dir, opts)
		if err != nil {
			return err
		}
		s, err := engine.Open(l, engine.Options{})
		if err != nil {
			return fmt.Errorf("open (read-only %v): %w", ro, err)
		}
		for _, key := range acked {
			kvs, _, err := s.Range([]byte(key), nil, 0, 0)
			if err != nil || len(kvs) != 1 || string(kvs[0].Value) != "v"+key {
				s.Close()
				return fmt.Errorf("read-only %v: acknowledged %s: %v %v", ro, key, kvs, err)
			}
		}
		if err := s.Close(); err != nil {
			return err
		}
		if ro && !write {
			break
		}
	}
	return nil
}
