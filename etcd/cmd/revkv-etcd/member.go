package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"

	"github.com/revkv/revkv/etcd/cluster"
	"github.com/revkv/revkv/etcd/member"
	"github.com/revkv/revkv/persist"
)

// parseInitialCluster reads etcd's --initial-cluster: name=URL pairs,
// comma-separated, a name repeated for each of its URLs; members keep the
// order of their first appearance.
func parseInitialCluster(v string) ([]member.Peer, error) {
	var peers []member.Peer
	for pair := range strings.SplitSeq(v, ",") {
		name, u, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok || name == "" || u == "" {
			return nil, fmt.Errorf("-initial-cluster: %q is not name=URL", pair)
		}
		if _, err := peerAddr(u); err != nil {
			return nil, fmt.Errorf("-initial-cluster: %w", err)
		}
		i := slices.IndexFunc(peers, func(p member.Peer) bool { return p.Name == name })
		if i < 0 {
			peers = append(peers, member.Peer{Name: name})
			i = len(peers) - 1
		}
		peers[i].PeerURLs = append(peers[i].PeerURLs, u)
	}
	return peers, nil
}

// peerAddr returns the host:port of a peer URL (http only: the peer
// transport does not do TLS).
func peerAddr(u string) (string, error) {
	addr, err := urlAddr(u)
	if err != nil || !strings.HasPrefix(u, "http://") {
		return "", fmt.Errorf("peer URL %q is not http://host:port", u)
	}
	return addr, nil
}

// memberConfig is the cluster.Config the flags ask for, without the peer
// listener; it also returns the address to listen for peers on.
func memberConfig(c config, log *slog.Logger) (cluster.Config, string, error) {
	f := c.cluster
	peers, err := parseInitialCluster(f.initial)
	if err != nil {
		return cluster.Config{}, "", err
	}
	i := slices.IndexFunc(peers, func(p member.Peer) bool { return p.Name == c.name })
	if i < 0 {
		return cluster.Config{}, "", fmt.Errorf("-name %q is not in -initial-cluster", c.name)
	}
	advertise := peers[i].PeerURLs
	if f.advertisePeer != "" {
		advertise = strings.Split(f.advertisePeer, ",")
		if !sameURLs(advertise, peers[i].PeerURLs) {
			return cluster.Config{}, "", fmt.Errorf("-initial-advertise-peer-urls %v and -initial-cluster's %s=%v differ", advertise, c.name, peers[i].PeerURLs)
		}
	}
	if strings.Contains(f.listenPeer, ",") {
		return cluster.Config{}, "", errors.New("-listen-peer-urls: one URL only")
	}
	listenAddr, err := peerAddr(f.listenPeer)
	if err != nil {
		return cluster.Config{}, "", fmt.Errorf("-listen-peer-urls: %w", err)
	}
	cfg := cluster.Config{
		Name:           c.name,
		ClusterToken:   f.token,
		PeerURLs:       advertise,
		InitialCluster: peers,
		Join:           f.state == "existing",
		TickInterval:   f.tick,
		ElectionTicks:  f.electionTicks,
		Logger:         log,

		DisableStrictReconfigCheck: !f.strictReconfig,
	}
	if c.dir != "" {
		cfg.FS, cfg.Dir = persist.OS, c.dir
	}
	return cfg, listenAddr, nil
}

func sameURLs(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// runMember serves as one member of a cluster until ctx is done, then
// stops gracefully (requests in flight finish, up to the shutdown
// timeout) and closes the member.
func runMember(ctx context.Context, c config, log *slog.Logger, creds grpc.ServerOption, ready chan<- string) error {
	cfg, peerListen, err := memberConfig(c, log)
	if err != nil {
		return err
	}
	if cfg.FS == nil {
		log.Warn("no -data-dir: the raft log is in memory, and this member cannot restart")
	}
	lis, err := listen(c.listen)
	if err != nil {
		return err
	}
	if cfg.PeerListener, err = net.Listen("tcp", peerListen); err != nil {
		lis.Close()
		return err
	}
	cfg.ClientURLs = clientURLs(c.advertise, lis, creds != nil)
	n, err := cluster.Start(cfg)
	if err != nil {
		lis.Close()
		return err
	}
	srv, g, served := serve(c, n, cfg.ClientURLs, lis, creds, log)
	log.Info("serving etcd v3 API as a cluster member", "addr", lis.Addr().String(), "peer-addr", peerListen,
		"name", c.name, "id", fmt.Sprintf("%x", n.ID()), "dir", c.dir, "state", c.cluster.state)
	if ready != nil {
		ready <- lis.Addr().String()
	}
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case <-n.Removed():
		// As etcd does, stay up a little (a few election timeouts): the
		// others may still need this member's vote or acknowledgement to
		// commit its removal (a leader removing itself from two voters).
		grace := 3 * time.Duration(cfg.ElectionTicks) * cfg.TickInterval
		log.Warn("removed from the cluster: shutting down", "after", grace)
		select {
		case <-ctx.Done():
		case <-time.After(grace):
		}
	case <-n.Failed():
		err = fmt.Errorf("member failed: %w", n.Err())
		log.Error("member failed: shutting down", "err", n.Err())
	case err = <-served:
		log.Error("serve failed", "err", err)
	}
	shutdown(g, srv, c.shutdownTimeout, log)
	stopCtx, cancel := context.WithTimeout(context.Background(), c.shutdownTimeout)
	defer cancel()
	if cerr := n.Stop(stopCtx); cerr != nil {
		log.Error("close member", "err", cerr)
		err = errors.Join(err, cerr)
	} else {
		log.Info("stopped")
	}
	return err
}
