// Command revkv-etcd serves etcd's v3 API on a revkv store: a single-member
// etcd that etcdctl, clientv3 and other etcd clients use unchanged.
//
//	revkv-etcd -dir /var/lib/app -listen 127.0.0.1:2379
//	revkv-etcd -listen unix:///run/app/etcd.sock   # in memory
//
// With -dir the store is persisted there (revkv's file log); without it,
// the store lives in memory and is gone when the command exits. With
// -cert-file and -key-file it serves TLS, and with -trusted-ca-file also
// requires client certificates. SIGINT or
// SIGTERM stop it gracefully: no new requests are taken, watch streams are
// ended, requests in flight finish (for up to -shutdown-timeout), and the
// store is closed, every acknowledged write durable.
//
// With -initial-cluster it is one member of a replicated cluster (package
// cluster), started with etcd's flags:
//
//	revkv-etcd --name m1 --data-dir /var/lib/m1 \
//	  --listen-client-urls http://10.0.0.1:2379 --listen-peer-urls http://10.0.0.1:2380 \
//	  --initial-cluster m1=http://10.0.0.1:2380,m2=http://10.0.0.2:2380,m3=http://10.0.0.3:2380
//
// --initial-cluster-state existing starts a member added with
// etcdctl member add; --data-dir then holds the member's raft log.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/revkv/revkv"
	"github.com/revkv/revkv/engine"
	"github.com/revkv/revkv/etcd/server"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "revkv-etcd:", err)
		os.Exit(1)
	}
}

// config is the command line.
type config struct {
	dir, listen, name, advertise, logLevel string
	shutdownTimeout                        time.Duration
	progressInterval                       time.Duration
	quota                                  int64
	certFile, keyFile, trustedCAFile       string
	cluster                                clusterFlags
}

// clusterFlags are etcd's cluster flags; without --initial-cluster the
// command is a single member.
type clusterFlags struct {
	listenPeer, advertisePeer string // URL lists
	initial, state, token     string
	tick                      time.Duration
	electionTicks             int
	strictReconfig            bool
}

func parse(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("revkv-etcd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.dir, "dir", "", "directory to persist the store in (empty: in memory); a member of a cluster keeps its raft log there")
	fs.StringVar(&c.dir, "data-dir", "", "etcd's name for -dir")
	fs.StringVar(&c.listen, "listen", "127.0.0.1:2379", "address to serve on: host:port, or unix:///path/to/socket")
	fs.Func("listen-client-urls", "etcd's spelling of -listen: one URL, http://host:port or unix:///path", func(v string) error {
		addr, err := urlAddr(v)
		c.listen = addr
		return err
	})
	fs.StringVar(&c.cluster.listenPeer, "listen-peer-urls", "http://localhost:2380", "with -initial-cluster: URL to serve the other members on")
	fs.StringVar(&c.cluster.advertisePeer, "initial-advertise-peer-urls", "", "with -initial-cluster: this member's peer URLs, comma-separated (default: its entry in -initial-cluster)")
	fs.StringVar(&c.cluster.initial, "initial-cluster", "", "the cluster's members, name=peerURL,... (empty: a single member, not replicated)")
	fs.StringVar(&c.cluster.state, "initial-cluster-state", "new", "new (bootstrap the cluster) or existing (join it, after MemberAdd)")
	fs.StringVar(&c.cluster.token, "initial-cluster-token", "etcd-cluster", "the cluster's token: member and cluster IDs derive from it")
	fs.DurationVar(&c.cluster.tick, "heartbeat-interval", 100*time.Millisecond, "with -initial-cluster: the raft tick (etcd's heartbeat interval)")
	fs.IntVar(&c.cluster.electionTicks, "election-ticks", 10, "with -initial-cluster: the election timeout in ticks")
	fs.BoolVar(&c.cluster.strictReconfig, "strict-reconfig-check", true, "refuse membership changes that could lose the quorum, as etcd")
	fs.StringVar(&c.name, "name", "default", "member name (IDs are derived from it)")
	fs.StringVar(&c.advertise, "advertise-client-urls", "", "comma-separated client URLs reported by MemberList (default: from -listen)")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 10*time.Second, "how long requests in flight may take to finish at shutdown")
	fs.DurationVar(&c.progressInterval, "watch-progress-notify-interval", 10*time.Minute, "how often idle watches that ask for it get a progress notification")
	fs.StringVar(&c.certFile, "cert-file", "", "TLS certificate to serve with (with -key-file)")
	fs.StringVar(&c.keyFile, "key-file", "", "TLS key of -cert-file")
	fs.StringVar(&c.trustedCAFile, "trusted-ca-file", "", "with TLS, require client certificates signed by this CA")
	fs.Int64Var(&c.quota, "quota-backend-bytes", 0, "storage quota: writes past it raise the NOSPACE alarm (0: 2 GiB, as etcd; -1: none)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if (c.certFile == "") != (c.keyFile == "") || c.trustedCAFile != "" && c.certFile == "" {
		return c, errors.New("-cert-file and -key-file go together, and -trusted-ca-file needs them")
	}
	if c.cluster.state != "new" && c.cluster.state != "existing" {
		return c, fmt.Errorf("-initial-cluster-state %q: want new or existing", c.cluster.state)
	}
	if c.cluster.tick <= 0 || c.cluster.electionTicks < 2 {
		return c, errors.New("-heartbeat-interval must be above 0 and -election-ticks at least 2")
	}
	return c, nil
}

// urlAddr returns the address a client URL names: host:port of an http
// URL, or the unix:// URL itself (listen takes it).
func urlAddr(v string) (string, error) {
	if strings.Contains(v, ",") {
		return "", errors.New("one URL only")
	}
	if strings.HasPrefix(v, "unix:") {
		return v, nil
	}
	u, err := url.Parse(v)
	if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return "", fmt.Errorf("%q is not http://host:port or unix:///path", v)
	}
	return u.Host, nil
}

// tlsOption returns the gRPC option that serves TLS as the flags ask, or
// nil without TLS.
func tlsOption(c config) (grpc.ServerOption, error) {
	if c.certFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return nil, fmt.Errorf("TLS: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if c.trustedCAFile != "" {
		pem, err := os.ReadFile(c.trustedCAFile)
		if err != nil {
			return nil, fmt.Errorf("TLS: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("TLS: no certificate in %s", c.trustedCAFile)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return grpc.Creds(credentials.NewTLS(cfg)), nil
}

// listen opens the listener for an address: "unix://" and "unix:" name a
// socket path, anything else is a TCP host:port.
func listen(addr string) (net.Listener, error) {
	if path, ok := strings.CutPrefix(addr, "unix://"); ok {
		return listenUnix(path)
	}
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		return listenUnix(path)
	}
	return net.Listen("tcp", addr)
}

// listenUnix listens on a socket path. A socket file left by a process
// that died (no one answers on it) is removed first; a live one is an
// error, as is any other file.
func listenUnix(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode().Type() == os.ModeSocket {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("listen %s: a server is already serving there", path)
		}
		os.Remove(path)
	}
	return net.Listen("unix", path)
}

// run serves until ctx is done, then shuts down gracefully. If ready is
// not nil, it receives the listening address once the server serves.
func run(ctx context.Context, args []string, stderr io.Writer, ready chan<- string) error {
	c, err := parse(args, stderr)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	creds, err := tlsOption(c)
	if err != nil {
		return err
	}
	if c.cluster.initial != "" {
		return runMember(ctx, c, log, creds, ready)
	}
	db, err := revkv.Open(c.dir, revkv.Options{Engine: engineOptions(log)})
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	lis, err := listen(c.listen)
	if err != nil {
		db.Close()
		return err
	}
	urls := clientURLs(c.advertise, lis, creds != nil)
	srv, g, served := serve(c, server.DB(db), urls, lis, creds, log)
	log.Info("serving etcd v3 API", "addr", lis.Addr().String(), "dir", c.dir, "name", c.name, "version", server.Version, "rev", db.Rev())
	if ready != nil {
		ready <- lis.Addr().String()
	}

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err = <-served:
		log.Error("serve failed", "err", err)
	}
	shutdown(g, srv, c.shutdownTimeout, log)
	if cerr := db.Close(); cerr != nil {
		log.Error("close store", "err", cerr)
		err = errors.Join(err, cerr)
	} else {
		log.Info("stopped", "rev", db.Rev())
	}
	return err
}

// shutdown stops taking requests, ends watch streams, lets requests in
// flight finish for up to timeout, then cuts what is left.
func shutdown(g *grpc.Server, srv *server.Server, timeout time.Duration, log *slog.Logger) {
	srv.Close()
	done := make(chan struct{})
	go func() {
		g.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(timeout):
		log.Warn("requests still running at the shutdown timeout; stopping them")
		g.Stop()
		<-done
	}
}

// clientURLs returns the advertised client URLs: the flag's, or one made
// from the listener.
func clientURLs(flagValue string, lis net.Listener, tls bool) []string {
	if flagValue != "" {
		return strings.Split(flagValue, ",")
	}
	if lis.Addr().Network() == "unix" {
		return []string{"unix://" + lis.Addr().String()}
	}
	if tls {
		return []string{"https://" + lis.Addr().String()}
	}
	return []string{"http://" + lis.Addr().String()}
}

// logUnary logs each unary call at debug level, and failed ones at info.
func logUnary(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		if err != nil {
			log.Info("request failed", "method", info.FullMethod, "took", time.Since(start), "err", err)
		} else if log.Enabled(ctx, slog.LevelDebug) {
			log.Debug("request", "method", info.FullMethod, "took", time.Since(start))
		}
		return resp, err
	}
}

// engineOptions gives the store the command's logger.
func engineOptions(log *slog.Logger) engine.Options { return engine.Options{Logger: log} }

// serve serves etcd's API on b at lis (with creds, if not nil): it returns
// the Server, the gRPC server, and a channel that gets Serve's result.
func serve(c config, b server.Backend, urls []string, lis net.Listener, creds grpc.ServerOption, log *slog.Logger) (*server.Server, *grpc.Server, <-chan error) {
	srv := server.New(b, server.Options{
		Name:              c.name,
		ClientURLs:        urls,
		ProgressInterval:  c.progressInterval,
		QuotaBackendBytes: c.quota,
		Logger:            log,
	})
	opts := append(srv.GRPCOptions(), grpc.ChainUnaryInterceptor(logUnary(log)))
	if creds != nil {
		opts = append(opts, creds)
	}
	g := grpc.NewServer(opts...)
	srv.Register(g)
	healthpb.RegisterHealthServer(g, health.NewServer())
	served := make(chan error, 1)
	go func() { served <- g.Serve(lis) }()
	return srv, g, served
}
