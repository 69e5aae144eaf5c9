package main

import (
	"context"
	"fmt"
	"io"

	"github.com/rs/zerolog"
)

// runServe runs one node until ctx ends (SIGINT or SIGTERM), then drains
// it (see node.stop).
func runServe(ctx context.Context, args, env []string, stderr io.Writer) error {
	cfg, err := LoadConfig(args, env, stderr)
	if err != nil {
		return err
	}
	logger, err := newLogger(stderr, cfg.LogLevel, cfg.NodeID)
	if err != nil {
		return err
	}
	n, err := startNode(ctx, cfg, logger, nodeExtras{})
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		logger.Info().Msg("draining")
	case <-n.serveDone:
		logger.Error().Err(n.serveErr).Msg("client listener failed")
	}
	err = n.stop(cfg.DrainTimeout)
	logger.Info().Msg("stopped")
	return err
}

// newLogger is the process's zerolog logger: JSON lines on w, with the
// node id on every line.
func newLogger(w io.Writer, level, nodeID string) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil {
		return zerolog.Nop(), fmt.Errorf("log level %q: %w", level, err)
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Str("node", nodeID).Logger(), nil
}
