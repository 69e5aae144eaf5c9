// Package bench is Arena's load harness, run as `arena bench SCENARIO
// [flags]`. It talks to a deployment only as a client would, through the
// public Go SDK (package client) and the wire codec (package protocol),
// and imports no server package, so what it measures is what users get.
// The same scenarios run against a peer system through another Driver
// (NATS over its WebSocket listener), and `arena bench compare A.json
// B.json` sets two runs side by side.
//
// # Method
//
// Every publisher follows a fixed-rate schedule (Pacer): message n is due
// at start + (n-1)/rate. It writes into the message its stream id, n, the
// due time and the actual send time, read from the harness's monotonic
// clock (Clock). Receivers live in the same process and read the same
// clock on arrival, so the difference is exact: no clock synchronization
// is involved, even across the edges of a mesh.
//
// Latency is measured from the due time, not from the moment the message
// was actually sent. This is the coordinated-omission correction: when
// the target stalls, a publisher that waited for it (its in-flight window
// was full, or the connection was gone) sends late, and a harness that
// measured from the actual send would record one slow message and then
// fast ones, hiding the stall from every percentile but the highest. A
// schedule does not slide, so each message delayed by the stall carries
// the delay it really suffered, and the tail shows what a user sending at
// that rate saw. It has the same effect as HdrHistogram's
// RecordCorrectedValue with the schedule's interval, but it is exact for
// any number of receivers and publishers and needs no assumption about
// what was missed. The latency from the actual send is kept as well
// ("delivery from send"): the gap between the two is how much of the
// latency was queueing before the send, in the target's back-pressure or
// in a saturated harness. Closed-loop runs (durable with --rate 0) have no
// schedule; their latency is from the actual send and grows with the
// in-flight window: read their throughput, not their latency.
//
// Latencies go into HDR histograms (1 µs to 10 min, 3 significant
// digits). Latencies of messages due during the warmup are not recorded;
// their delivery is still checked.
//
// Every delivery is checked by a Tracker keyed by (stream, n) from the
// payload: a second delivery is a duplicate (after the SDK's own dedup by
// position), a message acknowledged to its publisher and never delivered
// to a subscriber that expected it is lost, and a message delivered
// behind a later one is out of order (by the room's sequence number when
// the driver reports it, by n otherwise). Any of these is printed loudly
// ("!! LOST 3 messages") and makes the run exit with an error.
//
// Resources: with --spawn (or --server-pid for a local server) the
// server's resident memory comes from /proc and its CPU time from its
// CPU-time clock (to the nanosecond; /proc counts 10 ms ticks, which a
// short, light run rounds to 0); the harness's own
// CPU time (getrusage) is printed next to it, so a saturated harness (its
// CPU use near its cores) is visible rather than read as a slow server; at
// 90% of its CPUs or more a note says so.
// --server-cpu and --bench-cpu pin the two to separate CPUs. The harness
// raises its open-file limit to the hard limit and spreads its
// connections to a loopback target over 127.0.0.1, 127.0.0.2, ...
// (--source-ips), so tens of thousands of connections do not run out of
// ephemeral ports.
//
// # Scenarios
//
//   - fanout: S subscribers in one room, one publisher at R msg/s.
//     Reports delivery latency (to every subscriber), publish and
//     delivery rates, and loss/dup/order.
//   - rooms: N rooms of M members; each member subscribes to its room
//     and publishes at r msg/s. Same figures, with N*M*M*r deliveries/s.
//   - conns: C idle subscribed connections: connect rate, connect
//     latency (from the intended start with --connect-rate), server memory
//     per connection (RSS after the ramp and --hold, minus RSS before),
//     then one probe message per room must reach every connection.
//   - durable: publishers in K rooms with acknowledged (durable) publishes:
//     ack throughput and ack latency percentiles, at a fixed --rate or
//     closed loop.
//   - geo: one publisher and S subscribers per region, one room: latency
//     for every pair of regions. Needs the edges of a multi-region
//     deployment (--url per region with --region labels).
//   - resume: K subscribed clients drop at once, by restarting the
//     spawned node (--how restart) or by cutting every client socket (--how
//     cut), while publishers go on: time until every client is live again
//     (has received a message sent after the drop), per-client recovery
//     percentiles, and messages missed and duplicated, which must be 0.
//   - presence: W watchers subscribed with presence and C churners, each
//     its own user, that subscribe (with presence) and unsubscribe as fast
//     as they can or at --rate subscribes+unsubscribes per second in all,
//     over --rooms rooms. Reports the churn achieved (joins+leaves/s), the
//     server's CPU, the joins and leaves watchers received per second,
//     and the latency from a churner's subscribe ack to a watcher seeing
//     its join (it includes the wait for the server's coalescing
//     interval). Each watcher keeps the room's members from the joins and
//     leaves it got; once the churners stopped, every view must equal the
//     room's presence (which must be its watchers) and go on doing so for
//     --settle, and a churner's joins and leaves must alternate: anything
//     else is an alarm. Arena only (NATS has no presence).
//
// # Concurrency
//
// Main runs one scenario at a time. Within a run each publisher schedule
// runs on its own goroutine; drivers call receivers from one goroutine
// per subscription; counters are atomic; latency recorders are sharded
// and locked; trackers belong to their subscription's goroutine and are
// read only after the connections are closed.
//
// # Example
//
//	arena bench fanout --spawn --subs 1000 --rate 2000 --json a.json --plot a.svg
//	arena bench fanout --driver nats --url ws://127.0.0.1:4223 --server-pid $(pidof nats-server) --subs 1000 --rate 2000 --json b.json
//	arena bench compare a.json b.json
//	arena bench presence --spawn --watchers 10 --churners 1000 --rate 2000
package bench
