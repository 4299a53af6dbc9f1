package compare

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

func TestMain(m *testing.M) {
	ChildMain() // the rss workload starts this test binary again
	os.Exit(m.Run())
}

// TestWorkloadsRun runs every workload once on every engine at a tiny
// scale: the harness compiles, every adapter works, and every row of the
// table is filled or says why not.
func TestWorkloadsRun(t *testing.T) {
	rows, err := Run(Config{Engines: DefaultEngines(), Rounds: 1, Scale: 0.005})
	if err != nil {
		t.Fatal(err)
	}
	want := len(Workloads()) * len(DefaultEngines())
	for _, w := range Workloads() {
		want += len(w.Extra) + len(w.NotYet)
	}
	if len(rows) != want {
		t.Fatalf("%d rows, want %d", len(rows), want)
	}
	for _, r := range rows {
		if r.Failed != "" {
			t.Errorf("%s on %s: %s", r.Workload, r.Engine, r.Failed)
		}
		if r.Note == "" && r.NsPerOp <= 0 {
			t.Errorf("%s on %s: no figure and no note", r.Workload, r.Engine)
		}
		if strings.HasPrefix(r.Engine, "revkv") && r.Note == "" && r.Ratio <= 0 && hasEtcd(rows, r.Workload) {
			t.Errorf("%s: no etcd/revkv ratio", r.Workload)
		}
	}
	var buf bytes.Buffer
	Markdown(&buf, rows)
	if !strings.Contains(buf.String(), "| put-seq | revkv |") {
		t.Fatalf("table:\n%s", buf.String())
	}
}

func hasEtcd(rows []Row, w string) bool {
	for _, r := range rows {
		if r.Workload == w && r.Engine == "etcd" && r.Note == "" {
			return true
		}
	}
	return false
}

// TestFreshRounds runs rounds in processes of their own: each engine's
// figures come back from the child, and an engine that does not support
// a workload says so, as it does in one process.
func TestFreshRounds(t *testing.T) {
	cfg := Config{Engines: []Engine{Revkv{}, Etcd{}, Buntdb{}}, Only: []string{"put-seq", "watch-fanout"}, Rounds: 2, Scale: 0.005, Fresh: true}
	rows, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range rows {
		seen[r.Workload+"/"+r.Engine] = true
		switch {
		case r.Failed != "":
			t.Errorf("%s on %s: %s", r.Workload, r.Engine, r.Failed)
		case r.Workload == "watch-fanout" && r.Engine == "buntdb":
			if r.Note != "not supported" {
				t.Errorf("watch-fanout on buntdb: note %q, want not supported", r.Note)
			}
		case r.Note != "" || r.NsPerOp <= 0 || r.Rounds != 2:
			t.Errorf("%s on %s: %+v, want two rounds' figures", r.Workload, r.Engine, r)
		}
	}
	for _, want := range []string{"put-seq/revkv", "put-seq/etcd", "put-seq/revkv+filelog", "watch-fanout/revkv", "watch-fanout/etcd"} {
		if !seen[want] {
			t.Errorf("no row for %s: %v", want, seen)
		}
	}
}
