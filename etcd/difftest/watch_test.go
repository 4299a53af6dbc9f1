package difftest

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/metadata"
	"pgregory.net/rapid"
)

type watchSpec struct {
	key           string
	mode          int
	end           string
	start         int64 // relative; 0 is "from now"
	prevKV        bool
	filter        int // 0 none, 1 no puts, 2 no deletes
	createdNotify bool
	fragment      bool
}

func drawWatch(t *rapid.T, cur int64) watchSpec {
	w := watchSpec{}
	op := kvOp{}
	drawRange(t, &op, true)
	w.key, w.mode, w.end = op.key, op.mode, op.end
	w.start = drawRev(t, "start", cur)
	w.prevKV = rapid.Bool().Draw(t, "prevKV")
	w.filter = rapid.IntRange(0, 4).Draw(t, "filter") % 3
	w.createdNotify = rapid.Bool().Draw(t, "createdNotify")
	w.fragment = rapid.IntRange(0, 3).Draw(t, "fragment") == 0
	return w
}

// A watch is one side's half of a watchPair: what it has delivered since
// the last comparison.
type watch struct {
	ctx    context.Context
	start  int64 // the side's own start revision, 0 for "from now"
	cancel context.CancelFunc
	ch     clientv3.WatchChan
	lines  []string
	done   bool
}

type watchPair struct {
	spec  watchSpec
	sides [2]*watch
}

func (w *watchPair) close() {
	for _, s := range w.sides {
		if s != nil {
			s.cancel()
		}
	}
}

func (p *pair) watch(t *rapid.T, spec watchSpec) {
	if !*strict && spec.start != 0 && spec.start == p.compacted {
		// Known difference (etcd/README.md): a watch from exactly the
		// compacted revision gets every change of that revision from
		// revkv, and only each key's last one from etcd, whose
		// compaction drops the changes a txn superseded.
		spec.start++
	}
	wp := &watchPair{spec: spec}
	p.watches = append(p.watches, wp)
	p.do(t, fmt.Sprintf("Watch(%+v) as W%d", spec, len(p.watches)-1), func(s *side, _ context.Context) string {
		key, opts := rangeOpts(s, spec.key, spec.mode, spec.end)
		if spec.start != 0 {
			opts = append(opts, clientv3.WithRev(s.abs(spec.start)))
		}
		if spec.prevKV {
			opts = append(opts, clientv3.WithPrevKV())
		}
		switch spec.filter {
		case 1:
			opts = append(opts, clientv3.WithFilterPut())
		case 2:
			opts = append(opts, clientv3.WithFilterDelete())
		}
		if spec.createdNotify {
			opts = append(opts, clientv3.WithCreatedNotify())
		}
		if spec.fragment {
			opts = append(opts, clientv3.WithFragment())
		}
		// Each watch gets its own gRPC stream (clientv3 keys streams
		// by the context's metadata): etcd answers RequestProgress only
		// when every watch of the stream has caught up and none starts
		// in the future, so a shared stream would let one watch starve
		// the others of progress notifications.
		ctx, cancel := context.WithCancel(context.Background())
		ctx = metadata.AppendToOutgoingContext(ctx, "difftest-watch", fmt.Sprint(len(p.watches)))
		w := &watch{ctx: ctx, start: s.abs(spec.start), cancel: cancel, ch: s.c.Watch(ctx, key, opts...)}
		if s == p.sides[0] {
			wp.sides[0] = w
		} else {
			wp.sides[1] = w
		}
		if !spec.createdNotify {
			return "watching"
		}
		// The created response comes first, before any event.
		select {
		case r, ok := <-w.ch:
			if !ok {
				w.done = true
				return "closed before created"
			}
			return fmt.Sprint(s.watchResp(w, r))
		case <-time.After(rpcTimeout):
			w.done = true
			return "no created response"
		}
	})
}

// watchResp renders one response (created, canceled or events) as lines,
// one per event: how a server groups events into responses is not part of
// the API (etcd itself batches differently while catching up).
func (s *side) watchResp(w *watch, r clientv3.WatchResponse) []string {
	var out []string
	if r.Created {
		out = append(out, "created "+s.header(r.Header))
	}
	for _, ev := range r.Events {
		out = append(out, s.event(ev))
	}
	if r.Canceled {
		w.done = true
		out = append(out, fmt.Sprintf("canceled compact=%s err=%v", s.rev(r.CompactRevision), r.Err()))
	} else if r.CompactRevision != 0 {
		out = append(out, "compact="+s.rev(r.CompactRevision))
	}
	return out
}

// sync makes every open watch on both sides deliver all it owes up to the
// current revision, by asking for a progress notification (which etcd
// sends only once the watch has caught up), and compares what each watch
// delivered since the last sync. A watch that starts after the current
// revision is left for a later sync: etcd sends it no progress until
// then.
func (p *pair) sync(t *rapid.T) {
	p.do(t, "SyncWatches()", func(s *side, ctx context.Context) string {
		i := 0
		if s != p.sides[0] {
			i = 1
		}
		r, err := s.c.Get(ctx, "a")
		if err != nil {
			return errText(err)
		}
		now := r.Header.Revision
		out := ""
		for n, wp := range p.watches {
			w := wp.sides[i]
			if w.start > now {
				out += fmt.Sprintf("\n    W%d: starts later", n)
				continue
			}
			out += fmt.Sprintf("\n    W%d: %v", n, drain(s, w, now))
		}
		return out
	})
}

// drain reads w until a progress notification at or past rev, or until
// the watch ends; it returns what w delivered since the last drain.
func drain(s *side, w *watch, rev int64) []string {
	timeout := time.After(5 * time.Second)
	// etcd drops a progress request that arrives while the watch is
	// still catching up, so ask again until one is answered.
	retry := time.NewTicker(50 * time.Millisecond)
	defer retry.Stop()
	s.c.RequestProgress(w.ctx)
	for !w.done {
		select {
		case <-retry.C:
			s.c.RequestProgress(w.ctx)
		case r, ok := <-w.ch:
			if !ok {
				w.lines = append(w.lines, "closed")
				w.done = true
				break
			}
			if r.IsProgressNotify() {
				if r.Header.Revision >= rev {
					lines := w.lines
					w.lines = nil
					return lines
				}
				continue
			}
			w.lines = append(w.lines, s.watchResp(w, r)...)
		case <-timeout:
			w.lines = append(w.lines, fmt.Sprintf("no progress notification at %s after 5 s", s.rev(rev)))
			w.done = true
		}
	}
	lines := w.lines
	w.lines = nil
	return lines
}

func (p *pair) cancelWatch(t *rapid.T, n int) {
	p.sync(t)
	p.do(t, fmt.Sprintf("CancelWatch(W%d)", n), func(s *side, _ context.Context) string {
		i := 0
		if s != p.sides[0] {
			i = 1
		}
		w := p.watches[n].sides[i]
		if w.done {
			return "already done"
		}
		w.cancel()
		for r := range w.ch {
			if len(r.Events) > 0 {
				return "events after cancel"
			}
		}
		w.done = true
		return "canceled"
	})
}
