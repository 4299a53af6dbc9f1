package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/protobuf/proto"

	"github.com/revkv/revkv/kv"
	"github.com/revkv/revkv/watch"
)

// The cancel reasons etcd's watch layer gives for a refused watch.
var (
	errWatchRangeEmpty = errors.New("mvcc: watcher range is empty")
	errWatchDuplicate  = errors.New("mvcc: duplicate watch ID provided on the WatchStream")
)

// invalidWatchID is clientv3.InvalidWatchID: the ID of a refused watch and
// of a progress response that covers every watch of a stream.
const invalidWatchID = -1

// watchServer is etcd's Watch service.
type watchServer struct {
	pb.UnimplementedWatchServer
	s *Server
}

// Watch serves one watch stream: one revkv Watcher holds its watches. The
// stream's goroutine sends every response (created, events, progress,
// canceled), so a watch's created response always goes before its
// events; a second goroutine receives requests. A slow client holds up
// only its own stream: the Watcher buffers nothing unbounded and the
// store's writers never wait for it.
func (w *watchServer) Watch(stream pb.Watch_WatchServer) error {
	s := w.s
	if s.requiresLeader(stream.Context()) && !s.hasLeader() {
		return rpctypes.ErrGRPCNoLeader
	}
	stop, ok := s.track()
	if !ok {
		return rpctypes.ErrGRPCStopped
	}
	defer s.untrack(stop)
	ws := &watchStream{
		s:       s,
		stream:  stream,
		w:       s.b.NewWatcher(),
		reqs:    make(chan *pb.WatchRequest, 16),
		recvErr: make(chan error, 1),
		stopc:   stop,
		done:    make(chan struct{}),
		byPkg:   map[int64]*streamWatch{},
		byID:    map[int64]*streamWatch{},
	}
	defer ws.w.Close()
	defer close(ws.done)
	go ws.recvLoop()
	err := ws.sendLoop()
	s.log.Debug("watch stream ended", "watches", len(ws.byID), "err", err)
	return err
}

// streamWatch is one watch of a stream.
type streamWatch struct {
	id       int64 // etcd's watch ID, as the client knows it
	pkgID    int64 // the revkv Watcher's ID: unique for the stream's life
	fragment bool
	progress bool
	// idle: no event was sent since the last progress tick.
	idle bool
}

// watchStream is the state of one Watch call. Only the sending goroutine
// (sendLoop) touches the maps and IDs.
type watchStream struct {
	s      *Server
	stream pb.Watch_WatchServer
	w      *watch.Watcher

	reqs    chan *pb.WatchRequest
	recvErr chan error
	stopc   chan struct{} // closed by Server.Close
	done    chan struct{} // closed when Watch returns

	byPkg  map[int64]*streamWatch
	byID   map[int64]*streamWatch
	nextID int64 // next automatic etcd watch ID (etcd's start at 0)
	lastPk int64 // last revkv Watcher ID given

	// Progress asked for and not yet sent: by the client (one response
	// with the invalid watch ID) or by the progress ticker (one response
	// per idle watch that asked for notifications).
	clientProgress, tickProgress bool
}

// recvLoop hands the client's requests to sendLoop until the stream ends.
// A client that closes its sending side keeps its watches (as in etcd).
func (ws *watchStream) recvLoop() {
	for {
		req, err := ws.stream.Recv()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				ws.recvErr <- err
			}
			return
		}
		select {
		case ws.reqs <- req:
		case <-ws.done:
			return
		}
	}
}

func (ws *watchStream) sendLoop() error {
	ctx := ws.stream.Context()
	tick := time.NewTicker(ws.s.opts.ProgressInterval)
	defer tick.Stop()
	var leaderc <-chan time.Time // nil unless the client requires a leader
	if ws.s.requiresLeader(ctx) {
		lt := time.NewTicker(leaderCheck)
		defer lt.Stop()
		leaderc = lt.C
	}
	noLeader := 0
	for {
		var err error
		select {
		case <-leaderc:
			if noLeader = noLeader + 1; ws.s.hasLeader() {
				noLeader = 0
			}
			if noLeader >= leaderChecks {
				return rpctypes.ErrGRPCNoLeader
			}
		case req := <-ws.reqs:
			err = ws.handle(req)
		case r, ok := <-ws.w.Chan():
			if !ok {
				return rpctypes.ErrGRPCStopped
			}
			err = ws.deliver(r)
		case <-tick.C:
			ws.tick()
		case err = <-ws.recvErr:
			if ctx.Err() != nil {
				return streamEnd(ctx)
			}
			return err
		case <-ctx.Done():
			return streamEnd(ctx)
		case <-ws.stopc:
			return rpctypes.ErrGRPCStopped
		}
		if err != nil {
			return err
		}
	}
}

// streamEnd is the error a stream whose context ended returns, as etcd's.
func streamEnd(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return rpctypes.ErrGRPCWatchCanceled
	}
	return ctx.Err()
}

func (ws *watchStream) handle(req *pb.WatchRequest) error {
	switch r := req.RequestUnion.(type) {
	case *pb.WatchRequest_CreateRequest:
		if r.CreateRequest != nil {
			return ws.create(r.CreateRequest)
		}
	case *pb.WatchRequest_CancelRequest:
		if r.CancelRequest != nil {
			return ws.cancel(r.CancelRequest.WatchId)
		}
	case *pb.WatchRequest_ProgressRequest:
		if r.ProgressRequest != nil && len(ws.byID) > 0 {
			// etcd answers only a stream that has watches.
			ws.clientProgress = true
			ws.w.RequestProgress()
		}
	}
	return nil
}

// create starts a watch and sends its created response. A start revision
// of 0 is pinned to the revision in that response: the watch delivers
// every event after it.
func (ws *watchStream) create(c *pb.WatchCreateRequest) error {
	key := c.Key
	if len(key) == 0 {
		key = []byte{0}
	}
	if c.StartRevision < 0 {
		return ws.refuse(rpctypes.ErrCompacted)
	}
	end := end(c.RangeEnd)
	if len(end) != 0 && bytes.Compare(key, end) >= 0 {
		return ws.refuse(errWatchRangeEmpty)
	}
	id := c.WatchId
	if id == 0 { // clientv3.AutoWatchID
		for ws.byID[ws.nextID] != nil {
			ws.nextID++
		}
		id = ws.nextID
		ws.nextID++
	} else if ws.byID[id] != nil {
		return ws.refuse(errWatchDuplicate)
	}
	rev := ws.s.b.Rev()
	start := c.StartRevision
	if start == 0 {
		start = rev + 1
	}
	req := watch.Request{Key: key, End: end, StartRev: start, PrevKV: c.PrevKv}
	for _, f := range c.Filters {
		switch f {
		case pb.WatchCreateRequest_NOPUT:
			req.NoPut = true
		case pb.WatchCreateRequest_NODELETE:
			req.NoDelete = true
		}
	}
	ws.lastPk++
	req.ID = ws.lastPk
	if _, err := ws.w.WatchRange(req); err != nil {
		if errors.Is(err, kv.ErrClosed) {
			return rpctypes.ErrGRPCStopped
		}
		return ws.refuse(err)
	}
	sw := &streamWatch{id: id, pkgID: req.ID, fragment: c.Fragment, progress: c.ProgressNotify, idle: true}
	ws.byID[id], ws.byPkg[req.ID] = sw, sw
	return ws.stream.Send(&pb.WatchResponse{Header: ws.s.hdr.at(rev), WatchId: id, Created: true})
}

// refuse answers a watch that was not created, as etcd does: created and
// canceled at once, with the invalid watch ID and the reason.
func (ws *watchStream) refuse(why error) error {
	return ws.stream.Send(&pb.WatchResponse{
		Header:       ws.s.hdr.now(),
		WatchId:      invalidWatchID,
		Created:      true,
		Canceled:     true,
		CancelReason: why.Error(),
	})
}

// cancel ends a watch and sends its canceled response; nothing of it is
// sent after. An unknown ID is ignored, as etcd ignores it.
func (ws *watchStream) cancel(id int64) error {
	sw := ws.byID[id]
	if sw == nil {
		return nil
	}
	ws.forget(sw)
	ws.w.Cancel(sw.pkgID)
	return ws.stream.Send(&pb.WatchResponse{Header: ws.s.hdr.now(), WatchId: id, Canceled: true})
}

func (ws *watchStream) forget(sw *streamWatch) {
	delete(ws.byID, sw.id)
	delete(ws.byPkg, sw.pkgID)
}

// deliver sends what the Watcher produced: events, a compaction that
// ended a watch, or the progress the stream asked for.
func (ws *watchStream) deliver(r watch.Response) error {
	if r.WatchID == invalidWatchID {
		return ws.progressed(r.Revision)
	}
	sw := ws.byPkg[r.WatchID]
	if sw == nil {
		return nil // canceled by the client: its last responses are dropped
	}
	if r.Canceled {
		ws.forget(sw)
		if errors.Is(r.Err, kv.ErrClosed) {
			return rpctypes.ErrGRPCStopped
		}
		// Compacted: etcd's response has the compact revision and no
		// header revision.
		return ws.stream.Send(&pb.WatchResponse{Header: ws.s.hdr.at(0), WatchId: sw.id, Canceled: true, CompactRevision: r.CompactRevision})
	}
	if r.Progress {
		return ws.stream.Send(&pb.WatchResponse{Header: ws.s.hdr.at(r.Revision), WatchId: sw.id})
	}
	if len(r.Events) > 0 {
		sw.idle = false
	}
	resp := &pb.WatchResponse{Header: ws.s.hdr.at(r.Revision), WatchId: sw.id, Events: events(r.Events)}
	if sw.fragment {
		return sendFragments(resp, ws.s.maxMessage(), ws.stream.Send)
	}
	return ws.stream.Send(resp)
}

// progressed sends the progress responses owed once the Watcher says every
// watch has been sent everything up to rev.
func (ws *watchStream) progressed(rev int64) error {
	if ws.clientProgress {
		ws.clientProgress = false
		if err := ws.stream.Send(&pb.WatchResponse{Header: ws.s.hdr.at(rev), WatchId: invalidWatchID}); err != nil {
			return err
		}
	}
	if ws.tickProgress {
		ws.tickProgress = false
		for _, sw := range ws.byID {
			if sw.progress && sw.idle {
				if err := ws.stream.Send(&pb.WatchResponse{Header: ws.s.hdr.at(rev), WatchId: sw.id}); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// tick asks for progress for the watches that want notifications and sent
// no event since the last tick, as etcd's progress ticker does.
func (ws *watchStream) tick() {
	due := false
	for _, sw := range ws.byID {
		if !sw.progress {
			continue
		}
		if sw.idle {
			due = true
		}
		sw.idle = true
	}
	if due {
		ws.tickProgress = true
		ws.w.RequestProgress()
	}
}

func events(evs []kv.Event) []*mvccpb.Event {
	out := make([]*mvccpb.Event, len(evs))
	for i := range evs {
		e := &evs[i]
		pe := &mvccpb.Event{Kv: keyValue(&e.KV)}
		if e.Type == kv.Delete {
			pe.Type = mvccpb.Event_DELETE
		}
		// As etcd, a put that creates its key has no previous value, even
		// when the same revision deleted an earlier one.
		if e.PrevKV != nil && !(e.Type == kv.Put && e.KV.CreateRevision == e.KV.ModRevision) {
			pe.PrevKv = keyValue(e.PrevKV)
		}
		out[i] = pe
	}
	return out
}

// sendFragments sends wr in pieces of fewer than max bytes each (but at
// least one event), all but the last marked Fragment, as etcd splits the
// responses of watches that asked for it.
func sendFragments(wr *pb.WatchResponse, max int, send func(*pb.WatchResponse) error) error {
	if proto.Size(wr) < max || len(wr.Events) < 2 {
		return send(wr)
	}
	evs := wr.Events
	for len(evs) > 0 {
		cur := &pb.WatchResponse{
			Header:          wr.Header,
			WatchId:         wr.WatchId,
			Created:         wr.Created,
			Canceled:        wr.Canceled,
			CompactRevision: wr.CompactRevision,
			CancelReason:    wr.CancelReason,
			Fragment:        true,
		}
		n := 0
		for n < len(evs) {
			cur.Events = evs[:n+1]
			if n > 0 && proto.Size(cur) >= max {
				break
			}
			n++
		}
		cur.Events = evs[:n]
		evs = evs[n:]
		cur.Fragment = len(evs) > 0
		if err := send(cur); err != nil {
			return err
		}
	}
	return nil
}
