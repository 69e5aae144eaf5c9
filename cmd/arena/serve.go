package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"

	"github.com/arena-mesh/arena/edge"
	"github.com/arena-mesh/arena/edge/auth"
	"github.com/arena-mesh/arena/router"
	"github.com/arena-mesh/arena/wal"
)

// runServe runs one node until ctx ends (SIGINT or SIGTERM), then drains.
//
// Start order is bottom-up: the WAL (recovering every room), the router on
// top of it, the authenticator, the edge, and finally the client listener.
// Stop order is the reverse, with the drain first: the edge stops accepting
// and tells every client to reconnect elsewhere, the HTTP server shuts down,
// the router stops, and the WAL is closed last so every acknowledged
// message is on disk.
func runServe(ctx context.Context, args, env []string, stderr io.Writer) error {
	cfg, err := LoadConfig(args, env, stderr)
	if err != nil {
		return err
	}
	level, err := zerolog.ParseLevel(cfg.LogLevel)
	if err != nil {
		return fmt.Errorf("log level %q: %w", cfg.LogLevel, err)
	}
	logger := zerolog.New(stderr).Level(level).With().Timestamp().Str("node", cfg.NodeID).Logger()
	if len(cfg.Join) > 0 {
		return errors.New("--join: this build runs single nodes only; the multi-node mesh is not wired in yet")
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)

	if err := os.MkdirAll(cfg.Data, 0o750); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	log, err := wal.Open(wal.Config{
		Dir:         filepath.Join(cfg.Data, "wal"),
		Logger:      logger.With().Str("component", "wal").Logger(),
		Registerer:  reg,
		Retention:   wal.Retention{MaxCount: cfg.WAL.RetentionCount, MaxAge: cfg.WAL.RetentionAge},
		DedupWindow: cfg.WAL.DedupWindow,
	})
	if err != nil {
		return fmt.Errorf("open wal: %w", err)
	}
	defer func() {
		if err := log.Close(); err != nil {
			logger.Error().Err(err).Msg("close wal")
		}
	}()

	rt, err := router.New(router.Config{
		NodeID:      cfg.NodeID,
		Log:         log,
		Logger:      logger.With().Str("component", "router").Logger(),
		Registerer:  reg,
		RingSize:    cfg.RingSize,
		DedupWindow: cfg.WAL.DedupWindow,
	})
	if err != nil {
		return fmt.Errorf("start router: %w", err)
	}
	defer rt.Close()

	authCfg, err := cfg.AuthenticatorConfig()
	if err != nil {
		return err
	}
	authn, err := auth.New(authCfg)
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen for clients: %w", err)
	}
	selfURL := "http://" + ln.Addr().String()
	ed, err := edge.New(edge.Config{
		NodeID:         cfg.NodeID,
		Region:         cfg.Region,
		Router:         rt,
		Auth:           authn,
		Logger:         logger.With().Str("component", "edge").Logger(),
		Registerer:     reg,
		MaxDataBytes:   cfg.Limits.MaxDataBytes,
		PublishRate:    cfg.Limits.PublishRate,
		PublishBurst:   cfg.Limits.PublishBurst,
		SendQueue:      cfg.Limits.SendQueue,
		AllowedOrigins: cfg.Auth.AllowedOrigins,
		Edges: func() []edge.Edge {
			return []edge.Edge{{Node: cfg.NodeID, Region: cfg.Region, URL: selfURL}}
		},
		Gatherer: reg,
	})
	if err != nil {
		ln.Close()
		return fmt.Errorf("start edge: %w", err)
	}
	defer ed.Close()

	srv := &http.Server{
		Handler:           ed.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	logger.Info().
		Str("addr", ln.Addr().String()).
		Str("region", cfg.Region).
		Str("data", cfg.Data).
		Bool("dev", cfg.Dev).
		Msg("listening")

	select {
	case <-ctx.Done():
		logger.Info().Msg("draining")
	case err := <-serveErr:
		return fmt.Errorf("serve clients: %w", err)
	}

	// A fresh context: the signal context is already done.
	drainCtx, cancel := context.WithTimeout(context.Background(), cfg.DrainTimeout)
	defer cancel()
	if err := ed.Drain(drainCtx); err != nil {
		logger.Warn().Err(err).Msg("drain incomplete")
	}
	if err := srv.Shutdown(drainCtx); err != nil {
		logger.Warn().Err(err).Msg("http shutdown incomplete")
	}
	logger.Info().Msg("stopped")
	return nil
}
