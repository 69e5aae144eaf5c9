package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"

	"github.com/arena-mesh/arena/edge"
	"github.com/arena-mesh/arena/edge/auth"
	"github.com/arena-mesh/arena/mesh"
	"github.com/arena-mesh/arena/router"
	"github.com/arena-mesh/arena/wal"
)

// node is one running Arena node: every package wired together, in the
// order DESIGN.md gives. `arena serve` runs one; `arena dev` runs three in
// one process.
type node struct {
	cfg    Config
	logger zerolog.Logger
	url    string // the client-facing URL, http://host:port

	log  *wal.Log
	mesh *mesh.Mesh
	rt   *router.Router
	edge *edge.Server
	srv  *http.Server

	serveDone chan struct{} // closed when the HTTP server stops serving
	serveErr  error         // why it stopped; read after serveDone

	mqttDone chan struct{} // closed when the MQTT listener stopped; nil without MQTT

	stopLoad context.CancelFunc // stops gossipLoad
	loadDone chan struct{}      // closed when gossipLoad returned
}

// loadInterval is how often a node gossips its load (client connections),
// shown by GET /v1/cluster and the dashboard.
const loadInterval = 2 * time.Second

// nodeExtras are what `arena dev` adds to a node beyond its Config.
type nodeExtras struct {
	wan    *mesh.WAN   // emulated WAN shared by the dev nodes; nil: none
	timing mesh.Timing // failure detection; zero: memberlist's LAN defaults
}

// startNode starts a node from a validated cfg. Start order is bottom-up:
// the client listener (its address is gossiped), the mesh, the WAL
// (recovering every room), the router, the authenticator, the edge, and
// last the HTTP server. On error everything started is stopped again.
func startNode(ctx context.Context, cfg Config, logger zerolog.Logger, extras nodeExtras) (_ *node, err error) {
	n := &node{cfg: cfg, logger: logger, serveDone: make(chan struct{})}
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen for clients on %s: %w", cfg.Listen, err)
	}
	undo = append(undo, func() { ln.Close() })
	n.url = "http://" + ln.Addr().String()

	clusterKey, err := cfg.ClusterKeyBytes()
	if err != nil {
		return nil, err
	}
	wan := extras.wan
	if wan == nil && len(cfg.Latency) > 0 {
		// Emulated geography between separate processes: the config's
		// one-way delay from this region to each other region.
		wan = mesh.NewWAN(1)
		for from, row := range cfg.Latency {
			for to, d := range row {
				wan.Set(from, to, mesh.Link{Delay: d})
			}
		}
	}
	// The mesh delivers frames from the moment it starts, before the
	// router exists: the hooks hold them off until Bind.
	var hooks router.MeshHooks
	n.mesh, err = mesh.New(ctx, mesh.Config{
		NodeID:          mesh.NodeID(cfg.NodeID),
		Region:          cfg.Region,
		ClientURL:       n.url,
		Bind:            cfg.Mesh,
		Join:            cfg.Join,
		BootstrapExpect: cfg.BootstrapExpect,
		ClusterKey:      clusterKey,
		WAN:             wan,
		Timing:          extras.timing,
		Handler:         hooks.Handler,
		OnChange:        hooks.OnChange,
		Logger:          logger,
		Registerer:      reg,
	})
	if err != nil {
		return nil, fmt.Errorf("start mesh on %s: %w", cfg.Mesh, err)
	}
	undo = append(undo, func() { n.mesh.Close() })

	if err := os.MkdirAll(cfg.Data, 0o750); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	n.log, err = wal.Open(wal.Config{
		Dir:          filepath.Join(cfg.Data, "wal"),
		Logger:       logger,
		Registerer:   reg,
		Retention:    wal.Retention{MaxCount: cfg.WAL.RetentionCount, MaxAge: cfg.WAL.RetentionAge},
		DedupWindow:  cfg.WAL.DedupWindow,
		SyncInterval: cfg.WAL.SyncInterval,
		MemTableSize: int64(cfg.WAL.MemTableMB) << 20,
	})
	if err != nil {
		return nil, fmt.Errorf("open wal: %w", err)
	}
	undo = append(undo, func() { n.log.Close() })

	rules := make([]router.PlacementRule, len(cfg.Placement))
	for i, p := range cfg.Placement {
		rules[i] = router.PlacementRule{Prefix: p.Prefix, Region: p.Region}
	}
	n.rt, err = router.New(router.Config{
		NodeID:        cfg.NodeID,
		Log:           n.log,
		Mesh:          n.mesh,
		Placement:     router.Placement{Rules: rules, DefaultRegion: cfg.DefaultRegion},
		Logger:        logger,
		Registerer:    reg,
		RingSize:      cfg.RingSize,
		DedupWindow:   cfg.WAL.DedupWindow,
		DedupMemory:   cfg.DedupMemory,
		PresenceGrace: cfg.PresenceGrace,
		HotIdle:       cfg.HotIdle,
	})
	if err != nil {
		return nil, fmt.Errorf("start router: %w", err)
	}
	undo = append(undo, func() { n.rt.Close() })
	hooks.Bind(n.rt)
	n.rt.MembersChanged(n.mesh.Members())

	authCfg, err := cfg.AuthenticatorConfig()
	if err != nil {
		return nil, err
	}
	authn, err := auth.New(authCfg)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}

	n.edge, err = edge.New(edge.Config{
		NodeID:         cfg.NodeID,
		Region:         cfg.Region,
		Router:         n.rt,
		Auth:           authn,
		Logger:         logger,
		Registerer:     reg,
		MaxDataBytes:   cfg.Limits.MaxDataBytes,
		PublishRate:    cfg.Limits.PublishRate,
		PublishBurst:   cfg.Limits.PublishBurst,
		SendQueue:      cfg.Limits.SendQueue,
		AllowedOrigins: cfg.Auth.AllowedOrigins,
		Web:            cfg.Web,
		Edges:          n.edges,
		Ready:          n.mesh.HasJoined, // joined, with bootstrap_expect members
		Gatherer:       reg,
	})
	if err != nil {
		return nil, fmt.Errorf("start edge: %w", err)
	}
	undo = append(undo, func() { n.edge.Close() })

	if cfg.MQTTListen != "" {
		mln, err := net.Listen("tcp", cfg.MQTTListen)
		if err != nil {
			return nil, fmt.Errorf("listen for MQTT clients on %s: %w", cfg.MQTTListen, err)
		}
		n.mqttDone = make(chan struct{})
		go func() {
			defer close(n.mqttDone)
			// ServeMQTT returns nil once Drain or Close closed mln.
			if err := n.edge.ServeMQTT(mln); err != nil {
				logger.Error().Err(err).Msg("mqtt listener failed")
			}
		}()
		logger.Info().Str("addr", mln.Addr().String()).Msg("mqtt listening")
	}

	loadCtx, stopLoad := context.WithCancel(context.Background())
	n.stopLoad, n.loadDone = stopLoad, make(chan struct{})
	go n.gossipLoad(loadCtx)

	handler := n.edge.Handler()
	if cfg.Dev {
		// Profiling for local investigation only: dev access is loopback-only.
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.Handle("/", handler)
		handler = mux
	}
	n.srv = &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		n.serveErr = n.srv.Serve(ln)
		close(n.serveDone)
	}()
	logger.Info().
		Str("addr", ln.Addr().String()).
		Str("mesh", n.mesh.Addr()).
		Str("region", cfg.Region).
		Str("data", cfg.Data).
		Bool("dev", cfg.Dev).
		Msg("listening")
	return n, nil
}

// gossipLoad publishes the node's client connection count in its mesh
// metadata until ctx ends.
func (n *node) gossipLoad(ctx context.Context) {
	defer close(n.loadDone)
	tick := time.NewTicker(loadInterval)
	defer tick.Stop()
	last := -1
	for {
		if c := n.edge.Connections(); c != last {
			n.mesh.SetLoad(uint32(c))
			last = c
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// handoffTimeout is the budget for handing rooms over on shutdown: at
// least 30 s, since a node with many rooms moves them a frame each (8 at
// a time).
func handoffTimeout(drain time.Duration) time.Duration {
	return max(3*drain, 30*time.Second)
}

// edges lists the client URLs of live nodes, this node's region first,
// for /v1/edges and reconnect frames.
func (n *node) edges() []edge.Edge {
	members := n.mesh.Members()
	out := make([]edge.Edge, 0, len(members))
	for _, m := range members {
		if m.ClientURL == "" {
			continue
		}
		out = append(out, edge.Edge{Node: string(m.ID), Region: m.Region, URL: m.ClientURL})
	}
	sort.SliceStable(out, func(i, j int) bool {
		return out[i].Region == n.cfg.Region && out[j].Region != n.cfg.Region
	})
	return out
}

// stop drains and stops the node (STYLE.md's order): stop accepting and
// send every client a reconnect frame, shut HTTP down, hand the rooms homed
// here over to their next homes (same epoch: clients resume with no reset),
// leave the gossip group, stop the router, close QUIC, and close the WAL
// last so every acknowledged message is on disk. timeout bounds the client
// drain and, separately, the handoff; closing runs regardless.
func (n *node) stop(timeout time.Duration) error {
	// Fresh contexts: the caller's is usually already done (a signal).
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var errs []error
	if err := n.edge.Drain(ctx); err != nil {
		n.logger.Warn().Err(err).Msg("drain incomplete")
	}
	if err := n.srv.Shutdown(ctx); err != nil {
		n.logger.Warn().Err(err).Msg("http shutdown incomplete")
	}
	hctx, hcancel := context.WithTimeout(context.Background(), handoffTimeout(timeout))
	defer hcancel()
	if err := n.rt.Handoff(hctx); err != nil {
		// Rooms not handed over restart on their new homes with a new
		// epoch; their clients get a reset. Nothing acked is lost here.
		n.logger.Warn().Err(err).Msg("handoff incomplete")
	}
	n.stopLoad()
	<-n.loadDone
	if err := n.mesh.Leave(hctx); err != nil {
		n.logger.Warn().Err(err).Msg("leave mesh")
	}
	if err := n.edge.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close edge: %w", err))
	}
	if n.mqttDone != nil {
		<-n.mqttDone
	}
	if err := n.rt.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close router: %w", err))
	}
	if err := n.mesh.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close mesh: %w", err))
	}
	if err := n.log.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close wal: %w", err))
	}
	select {
	case <-n.serveDone:
		if err := n.serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, fmt.Errorf("serve clients: %w", err))
		}
	case <-ctx.Done():
	}
	return errors.Join(errs...)
}
