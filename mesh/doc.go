// Package mesh is Arena's node-to-node layer: membership (who is in the
// mesh, where, how loaded, who died) by gossip with hashicorp/memberlist,
// and a QUIC transport (quic-go) that moves opaque frames between nodes.
// It knows nothing of rooms and imports no Arena package; the router
// decides what frames mean and where they go.
//
// # One port
//
// A node has one mesh address (PROTOCOL.md --mesh). On it:
//
//   - UDP carries QUIC and memberlist's packets. quic-go's Transport owns
//     the socket and hands over, via ReadNonQUICPacket, every datagram whose
//     first byte has bits 0x80 and 0x40 clear, which no QUIC packet has and
//     every memberlist packet has (a message type 0..13, or, since gossip is
//     always encrypted here, the encryption version 0 or 1). memberlist's
//     labels are never enabled: their marker byte 0xF4 would read as QUIC.
//   - TCP (same port number) carries memberlist's streams (join, push/pull,
//     fallback pings).
//
// # Security
//
// Config.ClusterKey encrypts and authenticates gossip (memberlist's
// AES-GCM keyring) and is the root of QUIC authentication: every node
// derives the same ed25519 cluster CA from it (HKDF-SHA256) and issues
// itself a leaf certificate naming its node ID; both ends of a connection
// verify the other's leaf against the derived CA (mutual TLS 1.3, ALPN
// "arena-mesh/1"), and the dialer also checks the ID it meant to reach. A
// handshake rejected for a foreign or missing certificate is counted in
// arena_mesh_handshake_failures_total. Without a key, the public
// DevClusterKey is used, which New allows only on loopback.
//
// # Connections, lanes and frames
//
// Each pair of nodes shares one long-lived QUIC connection. Only the node
// with the lower ID dials it (redialling with jittered backoff while the
// other is a member), so simultaneous dials never need a tie-break; a newer
// connection from the same peer replaces an older one. The connection's
// idle timeout is about the longest memberlist takes to declare a silent
// node dead (ProbeInterval + ProbeTimeout + 6 x SuspicionMult x
// ProbeInterval: 3.4s with LocalTiming, 25.5s by default), with
// keep-alives four times as often, so a connection cut by a partition
// ends about when membership gives up on the peer. When a peer declared
// dead comes back (healed partition, rejoin) before either end noticed,
// a connection that has heard nothing from it since it was declared dead
// is stale (the peer may have closed its end meanwhile, and retransmission
// timers backed off while every packet was lost): it is dropped before
// Members lists the peer again (arena_mesh_stale_connections_total), and
// the dialer dials afresh at once, cutting any backoff. A node sends on up
// to Lanes (16) unidirectional streams per peer, opened on first use; a
// frame goes on lane FNV-1a(key) mod 16. Each lane has a queue bounded by
// Config.LaneBuffer bytes and one writer goroutine that drains it into a
// single buffered write per batch. Send blocks when its lane's queue is
// full; QUIC flow control (stream windows of 512 KiB, a connection window
// larger than all 16 together) makes a slow receiver fill that queue. So
// frames with one key stay in order on the wire and a slow key stalls only
// the keys sharing its lane, never the connection.
//
// Stream wire format (version 1), each integer an unsigned LEB128 uvarint
// as written by encoding/binary.AppendUvarint, minimal length:
//
//	stream  = header frame*
//	header  = version:byte(0x01) lane:byte(0..15)
//	frame   = n:uvarint payload:byte[n]      n <= MaxFrameSize (1 MiB)
//
// e.g. lane 3 carrying "hi" then an empty frame: 01 03 02 68 69 00. A
// malformed stream (other version, over-long or non-minimal length, end
// inside a frame) is cancelled with QUIC stream error 1 and counted in
// arena_mesh_bad_frames_total; other lanes and the connection go on.
//
// Node metadata (memberlist's Meta, at most 512 bytes, version 1):
//
//	meta    = version:byte(0x01) load:uvarint(<2^32)
//	          rlen:uvarint region:byte[rlen]     1..64 bytes UTF-8
//	          ulen:uvarint clientURL:byte[ulen]  0..400 bytes UTF-8
//	          trailing bytes ignored (later minor versions append fields)
//
// e.g. load 7, region "eu", no URL: 01 07 02 65 75 00. The node ID is
// memberlist's node name and the mesh address (gossip and QUIC alike) is
// memberlist's node address; metadata that does not decode keeps the
// node out of Members (arena_mesh_bad_meta_total).
//
// # Membership
//
// Joined closes once the node has merged the member list of another node:
// a seed of Config.Join, or a node that joined it first. Seeds naming the
// node itself (its advertised or bound address, or a name or loopback
// address resolving to it) are left out, so the same seed list can be
// given to every node of a static cluster: the first one up waits for a
// second rather than counting itself (memberlist answers a join to its
// own address), and a node whose seeds all name itself starts a new mesh.
// With Config.BootstrapExpect, Joined waits further, until the node sees
// that many live members: a cluster started all at once then places each
// room on its usual home instead of on the first nodes up. Nodes gossip
// whether they are still waiting (the metadata's flags), and a node that
// finds one that is not has found a running mesh and joins at once.
//
// Members lists alive and suspect nodes, self included. A node that
// leaves (Leave) disappears from every Members at once and its links are
// torn down; a node that dies is declared dead by memberlist's failure
// detector (Config.Timing), leaves Members then, and its links and queued
// frames go after Timing.DeadPeerGrace, so a false positive under load
// loses nothing. memberlist never probes a dead node again, so every
// RejoinInterval each node re-joins the addresses of dead nodes (and its
// seeds when it sees no one): a healed partition merges again.
//
// # Delivery contract
//
// Frames with the same (peer, key) reach the peer's Handler in Send order
// and at most once: a frame is written to one connection only, and never
// written again. Frames are lost only when the connection fails or the
// peer leaves or dies with them queued or in flight (counted in
// arena_mesh_frames_dropped_total); the router detects such gaps by
// sequence number.
//
// Around a reconnect, this means: frames already written to a connection
// that then fails (or is dropped as stale) are lost, whether the peer read
// them or not, and are not resent on the next connection; frames still
// queued when a lane's connection fails wait in their queue for the next
// connection (a failed batch write drops that batch only). Frames Sent
// after membership lists a revived peer again never go to the connection
// from before its death. A connection the peer tore down during a
// partition without this end noticing eats the frames written to it until
// the stateless reset or idle timeout ends it: this is why a peer's
// revival drops such a connection first. A false positive (the peer
// refutes its death) keeps a connection that heard from the peer
// meanwhile; on a link silent since the death, only frames written in the
// last round trip before the revival can be lost with it. Across a
// reconnect, frames of the old connection still being read may interleave
// with the new one's.
//
// # Concurrency
//
// All Mesh methods are safe for concurrent use. Send does not copy frame:
// the caller must not modify it afterwards (one frame may be shared by
// Sends to many peers). Handler runs on the receiving lane's goroutine,
// concurrently across lanes and peers, and frame is valid only during the
// call. OnChange runs on one goroutine, never concurrently, and may call
// Mesh methods. Close stops and waits for every goroutine the package
// started (memberlist's own goroutines wind down shortly after; their
// logs are muted by then).
//
// # WAN emulation
//
// Config.WAN wraps the UDP socket under QUIC and gossip: each outgoing
// packet is dropped or delayed by the (local region, destination region)
// Link of a shared, mutable WAN matrix, the destination's region coming
// from membership. Delays sit in one timer queue per node (heap, one
// goroutine, one timer) and never reorder packets to one destination; drops
// are seeded and reproducible. A link with Drop 1 also refuses gossip TCP
// dials, which is how tests partition a mesh. TCP is not delayed.
//
// # Example
//
//	m, err := mesh.New(ctx, mesh.Config{
//		NodeID:     "eu-1",
//		Region:     "eu",
//		ClientURL:  "wss://eu-1.example.com/v1/ws",
//		Bind:       "10.0.0.5:7946",
//		Join:       []string{"10.0.0.6:7946"},
//		ClusterKey: key, // 32 bytes, the same on every node
//		Handler: func(from mesh.NodeID, frame []byte) {
//			route(from, bytes.Clone(frame)) // copy: frame is reused
//		},
//		OnChange: func(ms []mesh.Member) { rebalance(ms) },
//	})
//	if err != nil {
//		return err
//	}
//	defer m.Close()
//	<-m.Joined()
//	err = m.Send(ctx, "us-1", "room:lobby", frame) // ordered per room
//	...
//	m.Leave(ctx) // on drain, before Close
package mesh
