package router

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the router's Prometheus collectors. They always exist (so the
// hot path needs no nil checks) and are registered only with a Registerer.
type metrics struct {
	rooms      prometheus.Gauge
	publishes  prometheus.Counter
	duplicates prometheus.Counter
	// keyLookups counts misses in memory looked up in the wal's key index.
	keyLookups    prometheus.Counter
	catchups      prometheus.Counter
	notifications prometheus.Counter
	forwarded     prometheus.Counter
	peerDrops     prometheus.Counter
	badPeerFrames prometheus.Counter
	repairs       prometheus.Counter
	peerMsgsSent  prometheus.Counter
	viewChanges   prometheus.Counter
	// uncleanRestarts counts rooms restarted in a new epoch because their
	// sequence may have gone on beyond the wal (see restartHot).
	uncleanRestarts prometheus.Counter
	// hotRooms counts the rooms marked hot (early delivery): the rooms
	// that would restart in a new epoch after an unclean stop now.
	hotRooms prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		rooms: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "arena_router_rooms",
			Help: "Rooms held in memory by the router.",
		}),
		publishes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "arena_router_publishes_total",
			Help: "Messages sequenced and handed to the wal.",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "arena_router_duplicates_total",
			Help: "Publishes answered as duplicates of an idempotency key.",
		}),
		keyLookups: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "arena_router_key_lookups_total",
			Help: "Idempotency keys missing from a room's memory that were looked up in the wal's key index.",
		}),
		catchups: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "arena_router_catchups_total",
			Help: "Subscription pulls served from the wal because the cursor fell behind the ring.",
		}),
		notifications: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "arena_router_fanout_notifications_total",
			Help: "Sink notifications sent to subscriptions on new messages.",
		}),
		forwarded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "arena_router_forwarded_publishes_total",
			Help: "Publishes forwarded to the room's home on another node.",
		}),
		peerDrops: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "arena_router_peer_frames_dropped_total",
			Help: "Fan-out frames to peers dropped (queue full or send failed); receivers repair the gap.",
		}),
		badPeerFrames: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "arena_router_bad_peer_frames_total",
			Help: "Peer frames that did not decode.",
		}),
		repairs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "arena_router_gap_repairs_total",
			Help: "Fetches a replica sent to its home to fill a gap in the pushed messages.",
		}),
		peerMsgsSent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "arena_router_peer_msgs_sent_total",
			Help: "Message frames queued to peers for fan-out: by a home to the interested nodes of its region and one relay per other region, by a relay to the interested nodes of its region.",
		}),
		viewChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "arena_router_membership_changes_total",
			Help: "Membership changes the router applied (a node joined, left, or changed its region or addresses); load updates only refresh the member list and are not counted.",
		}),
		uncleanRestarts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "arena_router_rooms_restarted_unclean_total",
			Help: "Rooms restarted in a new epoch from the wal because their sequence may have gone on beyond it: delivering before the fsync at an unclean stop, or handed to another node and not handed back.",
		}),
		hotRooms: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "arena_router_rooms_hot",
			Help: "Rooms delivering before the fsync (early delivery, hot_idle): those that would restart in a new epoch after an unclean stop now.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.rooms, m.publishes, m.duplicates, m.keyLookups, m.catchups, m.notifications, m.forwarded, m.peerDrops, m.badPeerFrames, m.repairs, m.peerMsgsSent, m.viewChanges, m.uncleanRestarts, m.hotRooms} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register router metrics: %w", err)
		}
	}
	return m, nil
}
