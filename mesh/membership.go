package mesh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/rs/zerolog"
)

// knownAddrTTL is how long a dead node's address is still re-joined.
const knownAddrTTL = 24 * time.Hour

// nodeEntry is a live member's decoded metadata.
type nodeEntry struct {
	meta nodeMeta
	addr netip.AddrPort
}

// knownAddr is a mesh address seen in membership, kept after its node dies
// so the node can be re-joined once reachable again (partition heal) and so
// WAN emulation still knows the address's region.
type knownAddr struct {
	id     NodeID
	region string
	left   bool      // the node left gracefully: do not re-join it
	seen   time.Time // last membership event about it
}

// delegate adapts the Mesh to memberlist's callbacks, which memberlist
// calls synchronously while holding its own locks: they only update the
// tables and signal the watcher, and never call back into memberlist.
type delegate struct{ m *Mesh }

var (
	_ memberlist.Delegate      = delegate{}
	_ memberlist.EventDelegate = delegate{}
)

// NodeMeta encodes this node's metadata for gossip.
func (d delegate) NodeMeta(limit int) []byte {
	b := appendMeta(nil, d.m.localMeta())
	if len(b) > limit {
		// Unreachable: Config limits the fields to fit. Gossip an empty
		// meta rather than let memberlist panic.
		return nil
	}
	return b
}

// NotifyMsg is unused: frames go over QUIC, not gossip.
func (delegate) NotifyMsg([]byte) {}

// GetBroadcasts is unused.
func (delegate) GetBroadcasts(int, int) [][]byte { return nil }

// LocalState is unused.
func (delegate) LocalState(bool) []byte { return nil }

// MergeRemoteState is unused.
func (delegate) MergeRemoteState([]byte, bool) {}

// NotifyJoin records a node that became alive.
func (d delegate) NotifyJoin(n *memberlist.Node) { d.m.nodeUp(n) }

// NotifyUpdate records a live node's new metadata.
func (d delegate) NotifyUpdate(n *memberlist.Node) { d.m.nodeUp(n) }

// NotifyLeave records a node that died or left.
func (d delegate) NotifyLeave(n *memberlist.Node) { d.m.nodeDown(n) }

func (m *Mesh) localMeta() nodeMeta {
	return nodeMeta{Load: m.load.Load(), Region: m.cfg.Region, ClientURL: m.cfg.ClientURL, Waiting: !m.HasJoined()}
}

func nodeAddrPort(n *memberlist.Node) netip.AddrPort {
	a, _ := netip.AddrFromSlice(n.Addr)
	return netip.AddrPortFrom(a.Unmap(), n.Port)
}

// nodeUp records a live node. A node whose metadata does not decode is not
// an Arena node of this version: it stays out of Members and is counted.
func (m *Mesh) nodeUp(n *memberlist.Node) {
	id := NodeID(n.Name)
	meta, err := decodeMeta(n.Meta)
	if err != nil {
		m.metrics.badMeta.Inc()
		m.log.Warn().Err(err).Str("peer", n.Name).Msg("ignoring node with bad metadata")
		m.nodeDown(n)
		return
	}
	addr := nodeAddrPort(n)
	m.tableMu.Lock()
	m.nodes[id] = nodeEntry{meta: meta, addr: addr}
	k := m.known[addr]
	if k == nil || k.region != meta.Region {
		m.known[addr] = &knownAddr{id: id, region: meta.Region, seen: time.Now()}
		m.publishRegionsLocked()
	} else {
		*k = knownAddr{id: id, region: meta.Region, seen: time.Now()}
	}
	if id != m.id {
		// Created here, not by the watcher, so Send works as soon as
		// Members lists the node.
		if p := m.peerFor(id); p != nil {
			p.setMember(addr)
		}
	}
	m.tableMu.Unlock()
	m.signalChange()
}

// nodeDown records a node that died or left. Its peer is removed by the
// watcher, outside memberlist's locks, since closing a connection waits.
func (m *Mesh) nodeDown(n *memberlist.Node) {
	id := NodeID(n.Name)
	addr := nodeAddrPort(n)
	m.tableMu.Lock()
	delete(m.nodes, id)
	if k := m.known[addr]; k != nil {
		k.left = n.State == memberlist.StateLeft
		k.seen = time.Now()
	}
	if p := (*m.peers.Load())[id]; p != nil {
		// Now, not in the watcher: the node may come back before the
		// watcher runs, and setMember must know it was declared dead.
		p.markDead(time.Now())
	}
	m.tableMu.Unlock()
	m.signalChange()
}

// publishRegionsLocked rebuilds the address → region map WAN emulation
// reads on every packet.
func (m *Mesh) publishRegionsLocked() {
	r := make(map[netip.AddrPort]string, len(m.known))
	for a, k := range m.known {
		r[a] = k.region
	}
	m.regions.Store(&r)
}

func (m *Mesh) regionOf(a netip.AddrPort) (string, bool) {
	r, ok := (*m.regions.Load())[a]
	return r, ok
}

func (m *Mesh) signalChange() {
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

// Members returns the live members (alive or suspect), self included,
// sorted by ID.
func (m *Mesh) Members() []Member {
	states := make(map[string]memberlist.NodeStateType)
	for _, n := range m.list.Members() {
		states[n.Name] = n.State
	}
	m.tableMu.Lock()
	out := make([]Member, 0, len(m.nodes))
	for id, e := range m.nodes {
		st, ok := states[string(id)]
		if !ok {
			continue
		}
		mb := Member{ID: id, Region: e.meta.Region, ClientURL: e.meta.ClientURL, Addr: e.addr, Load: e.meta.Load, State: StateAlive}
		if st == memberlist.StateSuspect {
			mb.State = StateSuspect
		}
		out = append(out, mb)
	}
	m.tableMu.Unlock()
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(string(a.ID), string(b.ID)) })
	return out
}

// watch follows membership changes: it removes the peers of nodes that
// left or died (after DeadPeerGrace) and reports the new member list to
// OnChange. Changes that arrive while it works are coalesced into one
// more pass.
func (m *Mesh) watch() {
	defer m.wg.Done()
	grace := time.NewTimer(time.Hour)
	grace.Stop()
	defer grace.Stop()
	for {
		report := false
		select {
		case <-m.changed:
			report = true
		case <-grace.C:
		case <-m.ctx.Done():
			return
		}
		if next := m.removeGonePeers(time.Now()); next > 0 {
			grace.Reset(next)
		}
		if report && m.cfg.OnChange != nil {
			m.cfg.OnChange(m.Members())
		}
	}
}

// removeGonePeers removes the peers of nodes membership no longer lists:
// at once if the node left gracefully, after DeadPeerGrace if it was
// declared dead. It returns when to call it again (0: no grace pending).
// Peers that connected before membership listed them are left to their
// connection.
func (m *Mesh) removeGonePeers(now time.Time) time.Duration {
	var gone []*peer
	var next time.Duration
	grace := m.cfg.Timing.DeadPeerGrace
	m.tableMu.Lock()
	for id, p := range *m.peers.Load() {
		if _, ok := m.nodes[id]; ok {
			continue
		}
		p.mu.Lock()
		member, addr := p.member, p.addr
		p.markDeadLocked(now) // normally done by nodeDown already
		left := grace - now.Sub(p.dead)
		p.mu.Unlock()
		if !member {
			continue
		}
		if k := m.known[addr]; (k != nil && k.left) || left <= 0 {
			m.unlinkPeer(p)
			gone = append(gone, p)
			continue
		}
		if next == 0 || left < next {
			next = left
		}
	}
	m.tableMu.Unlock()
	for _, p := range gone {
		m.log.Debug().Str("peer", string(p.id)).Msg("peer gone")
		p.remove()
	}
	return next
}

// joinLoop joins the seeds (or a node that reached this one meanwhile,
// see joinTargets), retrying until one answers, then re-joins
// known addresses it does not see alive every RejoinInterval: memberlist
// forgets a dead node and never probes it again, so after a partition
// outlasts the suspicion timeout only this merges the two sides again.
//
// Seeds that name this node itself are left out (see otherSeeds): one
// config file listing every node of a static cluster is common, and
// memberlist answers a join to its own address, so such a node would
// "join" at once while every other node is still down, and start rooms
// that live elsewhere. A node whose seeds all name itself starts a new
// mesh, as with no seeds. The first join then waits for
// Config.BootstrapExpect members (firstJoin).
func (m *Mesh) joinLoop() {
	defer m.ctlWG.Done()
	ctx := m.gossipCtx
	if !m.HasJoined() && !m.firstJoin(ctx) {
		return
	}
	for sleepCtx(ctx, m.cfg.RejoinInterval) {
		targets := m.rejoinTargets(time.Now(), m.seeds)
		if len(targets) == 0 {
			continue
		}
		if n, _ := m.list.Join(targets); n > 0 {
			m.metrics.rejoins.Inc()
			m.log.Info().Int("reached", n).Strs("targets", targets).Msg("rejoined peers")
		}
	}
}

// firstJoin joins the seeds, retrying until one answers, waits for
// Config.BootstrapExpect members, and closes Joined. It reports false if
// ctx ended first.
func (m *Mesh) firstJoin(ctx context.Context) bool {
	m.seeds = m.otherSeeds(ctx)
	if ctx.Err() != nil {
		return false
	}
	// With no seed but this node's own addresses, it starts a new mesh.
	merged := len(m.seeds) == 0
	if merged && len(m.cfg.Join) > 0 {
		m.log.Info().Strs("join", m.cfg.Join).Msg("every seed is this node's own address: starting a new mesh")
	}
	backoff := 100 * time.Millisecond
	start, warned := time.Now(), time.Time{}
	for {
		var (
			targets []string
			err     error
		)
		if !merged {
			targets = m.joinTargets(m.seeds)
			var n int
			n, err = m.list.Join(targets)
			// A seed that is this node under a name otherSeeds did
			// not recognise (a load balancer, a DNS alias) answers
			// too: only another member's list counts.
			merged = n > 0 && m.list.NumMembers() > 1
			switch {
			case merged:
				m.log.Info().Int("reached", n).Msg("joined mesh")
			case n > 0 && err == nil:
				err = errors.New("the only node that answered is this one")
			}
		}
		if merged {
			// BootstrapExpect is for a mesh starting up: a node that
			// finds a member serving already joins a running mesh.
			live := len(m.Members())
			if live >= m.cfg.BootstrapExpect || m.peerServing() {
				close(m.joined)
				m.metaChanged() // no longer waiting
				// Report the members once more, now that Joined is
				// closed: one report during the merge may have been
				// the last, and users wait for a list read after
				// Joined.
				m.signalChange()
				return true
			}
			err = fmt.Errorf("%d live members of the %d expected (bootstrap_expect)", live, m.cfg.BootstrapExpect)
			backoff = 100 * time.Millisecond // members arrive by themselves: look often
		}
		// Until it joins, the node is not ready and serves no room: a
		// wrong seed or expected count must not go unnoticed.
		now := time.Now()
		warn := now.Sub(start) >= joinWarnAfter && now.Sub(warned) >= joinWarnAfter
		if warn {
			warned = now
		}
		switch {
		case merged && warn:
			m.log.Warn().Err(err).Strs("members", memberIDs(m.Members())).Dur("waited", now.Sub(start).Round(time.Second)).
				Msg("waiting for the expected members: not ready, serving no room")
		case warn:
			m.log.Warn().Err(err).Strs("targets", targets).Dur("waited", now.Sub(start).Round(time.Second)).
				Msg("cannot join the mesh: not ready, serving no room, still trying")
		case !merged:
			m.log.Debug().Err(err).Dur("backoff", backoff).Msg("join failed")
		}
		if !sleepCtx(ctx, backoff) {
			return false
		}
		if !merged {
			backoff = min(2*backoff, m.cfg.RejoinInterval)
		}
	}
}

// peerServing reports whether another live member has finished its first
// join (its metadata is not Waiting).
func (m *Mesh) peerServing() bool {
	m.tableMu.Lock()
	defer m.tableMu.Unlock()
	for id, e := range m.nodes {
		if id != m.id && !e.meta.Waiting {
			return true
		}
	}
	return false
}

// joinWarnAfter is how long the first join may fail before the node says
// so at warning level, and how often it says it again.
const joinWarnAfter = 30 * time.Second

// otherSeeds returns the seeds of Config.Join that do not name this node
// (see isSelf).
func (m *Mesh) otherSeeds(ctx context.Context) []string {
	var out []string
	for _, s := range m.cfg.Join {
		if !m.isSelf(ctx, s) {
			out = append(out, s)
		}
	}
	return out
}

// joinTargets lists what the first join tries: the seeds (of otherSeeds),
// then the nodes that reached this one meanwhile (a node whose join named
// this one). A node whose seeds are unreachable thus still joins, through
// a member that found it, merging that member's list as it would a seed's.
func (m *Mesh) joinTargets(seeds []string) []string {
	m.tableMu.Lock()
	defer m.tableMu.Unlock()
	out := slices.Clone(seeds)
	for id, e := range m.nodes {
		if a := e.addr.String(); id != m.LocalID() && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// rejoinTargets lists the addresses to re-join: known nodes that died
// (not those that left), and the seeds (of otherSeeds) when no other
// member is alive.
func (m *Mesh) rejoinTargets(now time.Time, seeds []string) []string {
	m.tableMu.Lock()
	defer m.tableMu.Unlock()
	alive := make(map[netip.AddrPort]bool, len(m.nodes))
	for _, e := range m.nodes {
		alive[e.addr] = true
	}
	var out []string
	expired := false
	for a, k := range m.known {
		switch {
		case now.Sub(k.seen) > knownAddrTTL && !alive[a]:
			delete(m.known, a)
			expired = true
		case k.left || alive[a] || a == m.advertise:
		default:
			out = append(out, a.String())
		}
	}
	if expired {
		m.publishRegionsLocked()
	}
	if len(m.nodes) <= 1 {
		for _, s := range seeds {
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	slices.Sort(out)
	return out
}

// updateLoop re-gossips this node's metadata after SetLoad, coalescing
// bursts, so SetLoad never waits on the network.
func (m *Mesh) updateLoop() {
	defer m.ctlWG.Done()
	for {
		select {
		case <-m.metaDirty:
		case <-m.gossipCtx.Done():
			return
		}
		if err := m.list.UpdateNode(m.cfg.Timing.StreamTimeout); err != nil {
			m.log.Debug().Err(err).Msg("metadata update not confirmed")
		}
	}
}

// memberlistLog turns memberlist's "[LEVEL] memberlist: text" lines into
// zerolog events. Its errors are network trouble a mesh expects (a peer
// down, a partition), so they log as warnings. memberlist's Shutdown does
// not wait for its goroutines, so the mesh mutes this log when it closes:
// nothing logs after Close returns.
type memberlistLog struct{ m *Mesh }

func (w memberlistLog) Write(p []byte) (int, error) {
	line := bytes.TrimSpace(p)
	level := zerolog.DebugLevel
	for _, pl := range memberlistLevels {
		if rest, ok := bytes.CutPrefix(line, pl.prefix); ok {
			level, line = pl.level, rest
			break
		}
	}
	w.m.logMu.RLock()
	defer w.m.logMu.RUnlock()
	if w.m.logMuted {
		return len(p), nil
	}
	if e := w.m.log.WithLevel(level); e != nil {
		e.Bytes("detail", line).Msg("memberlist")
	}
	return len(p), nil
}

var memberlistLevels = []struct {
	prefix []byte
	level  zerolog.Level
}{
	{[]byte("[DEBUG] "), zerolog.DebugLevel},
	{[]byte("[INFO] "), zerolog.InfoLevel},
	{[]byte("[WARN] "), zerolog.WarnLevel},
	{[]byte("[ERR] "), zerolog.WarnLevel},
	{[]byte("[ERROR] "), zerolog.WarnLevel},
}
