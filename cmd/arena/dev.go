package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/arena-mesh/arena/mesh"
)

// devRegion is one emulated region of `arena dev`.
type devRegion struct {
	name string
	port int // offset from the base port
}

var devRegions = []devRegion{{"eu", 0}, {"us", 1}, {"ap", 2}}

// devDelays are the one-way delays between the emulated regions: roughly
// Europe–US east, US–Asia, Europe–Asia.
var devDelays = map[[2]string]time.Duration{
	{"eu", "us"}: 40 * time.Millisecond,
	{"us", "ap"}: 80 * time.Millisecond,
	{"eu", "ap"}: 120 * time.Millisecond,
}

// runDev runs the embedded local mesh: three nodes in three emulated
// regions in one process, on loopback, with dev access and the WAN delays
// above injected under QUIC. Rooms named "us:…" and "ap:…" live in those
// regions, everything else in eu.
func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("arena dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	host := fs.String("host", "127.0.0.1", "loopback address to listen on")
	basePort := fs.Int("port", 8080, "client port of the first region; the others use the next ports")
	data := fs.String("data", "./data/dev", "data directory; each node uses a subdirectory")
	logLevel := fs.String("log-level", "warn", "zerolog level")
	hotIdle := fs.Duration("hot-idle", 0, "early delivery: how long after its last publish a room delivers before the fsync (0: off; see hot_idle)")
	syncInterval := fs.Duration("wal-sync-interval", 0, "least time between two WAL fsyncs of a node (0: sync at once; see wal.sync_interval)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}

	wan := mesh.NewWAN(1)
	for pair, d := range devDelays {
		wan.SetBoth(pair[0], pair[1], mesh.Link{Delay: d})
	}
	var nodes []*node
	defer func() {
		for i := len(nodes) - 1; i >= 0; i-- {
			if err := nodes[i].stop(5 * time.Second); err != nil {
				fmt.Fprintf(stderr, "stop %s: %v\n", nodes[i].cfg.NodeID, err)
			}
		}
	}()
	var seed string
	for _, r := range devRegions {
		cfg := Config{
			NodeID: r.name + "-1",
			Region: r.name,
			Listen: net.JoinHostPort(*host, strconv.Itoa(*basePort+r.port)),
			Mesh:   net.JoinHostPort(*host, "0"),
			Data:   filepath.Join(*data, r.name),
			Dev:    true,
			Web:    true,
			// A demo page served by one region fails over to the others:
			// their WebSocket is cross-origin.
			Auth:          AuthConfig{AllowedOrigins: []string{*host + ":*", "localhost:*"}},
			LogLevel:      *logLevel,
			HotIdle:       *hotIdle,
			WAL:           WALConfig{SyncInterval: *syncInterval},
			DefaultRegion: "eu",
			Placement: []PlacementRule{
				{Prefix: "eu:", Region: "eu"},
				{Prefix: "us:", Region: "us"},
				{Prefix: "ap:", Region: "ap"},
			},
		}
		if seed != "" {
			cfg.Join = []string{seed}
		}
		if err := cfg.Validate(); err != nil {
			return fmt.Errorf("config of %s: %w", cfg.NodeID, err)
		}
		logger, err := newLogger(stderr, cfg.LogLevel, cfg.NodeID)
		if err != nil {
			return err
		}
		n, err := startNode(ctx, cfg, logger, nodeExtras{wan: wan, timing: mesh.LocalTiming()})
		if err != nil {
			return fmt.Errorf("start %s: %w", cfg.NodeID, err)
		}
		nodes = append(nodes, n)
		if seed == "" {
			seed = n.mesh.Addr()
		}
	}
	if err := waitMeshed(ctx, nodes); err != nil {
		return err
	}

	fmt.Fprintln(stdout, "arena dev: three regions on loopback, dev access (no token needed)")
	for _, n := range nodes {
		fmt.Fprintf(stdout, "  %-3s %s   ws: %s/v1/ws\n", n.cfg.Region, n.url, "ws"+n.url[len("http"):])
	}
	fmt.Fprintln(stdout, "one-way delays: eu-us 40ms, us-ap 80ms, eu-ap 120ms; rooms us:* and ap:* live in those regions, the rest in eu")
	bench := "arena bench geo --home eu"
	for _, n := range nodes {
		bench += fmt.Sprintf(" --url %s --region %s", "ws"+n.url[len("http"):], n.cfg.Region)
	}
	for pair, d := range devDelays {
		bench += fmt.Sprintf(" --floor %s-%s=%s", pair[0], pair[1], d)
	}
	fmt.Fprintln(stdout, "measure it:", bench)
	fmt.Fprintln(stdout, "Ctrl-C stops")
	select {
	case <-ctx.Done():
		return nil
	case err := <-firstServeErr(ctx, nodes):
		return fmt.Errorf("client listener failed: %w", err)
	}
}

// waitMeshed waits until every node sees all the others.
func waitMeshed(ctx context.Context, nodes []*node) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		all := true
		for _, n := range nodes {
			if len(n.mesh.Members()) < len(nodes) {
				all = false
			}
		}
		if all {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.New("the dev nodes did not see each other within 30s")
		case <-tick.C:
		}
	}
}

// firstServeErr yields the first client-listener failure of any node. Its
// goroutines end when ctx does (the caller's return) or their node stops.
func firstServeErr(ctx context.Context, nodes []*node) <-chan error {
	out := make(chan error, len(nodes))
	for _, n := range nodes {
		go func(n *node) {
			select {
			case <-n.serveDone:
				out <- n.serveErr
			case <-ctx.Done():
			}
		}(n)
	}
	return out
}
