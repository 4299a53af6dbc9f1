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
