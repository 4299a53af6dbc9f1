package member

import (
	"testing"

	"github.com/revkv/revkv/persist/memfs"
)

// TestSyncsPerPut counts the fsyncs a put costs the cluster (3 members on
// raftstore, one put at a time), and pins the count: a change that adds a
// sync to the write path shows here.
func TestSyncsPerPut(t *testing.T) {
	fss := map[uint64]*memfs.FS{}
	c := newTestCluster(t, 3, func(cfg *Config) {
		if fss[cfg.ID] == nil {
			fss[cfg.ID] = memfs.New(memfs.Options{})
		}
		cfg.Storage, cfg.FS, cfg.Dir = nil, fss[cfg.ID], "/m"
	})
	lead := c.leader()
	c.mustPut(lead, "warm", "up")
	syncs := func() (n int64) {
		for _, fs := range fss {
			n += fs.Syncs()
		}
		return n
	}
	const puts = 100
	before := syncs()
	c.putMany(lead, "k", puts)
	per := float64(syncs()-before) / puts
	t.Logf("%.2f fsyncs per put on 3 members", per)
	if per > maxSyncsPerPut {
		t.Fatalf("%.2f fsyncs per put, at most %v expected", per, maxSyncsPerPut)
	}
}

// 3: each member syncs the put's entry once; the commit index that follows
// is not synced on its own (it was 6 when it was).
const maxSyncsPerPut = 3
