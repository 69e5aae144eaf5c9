#!/usr/bin/env bash
# bench/readme.sh — the runs behind README.md's benchmark table, against the
# issue's goals. Each scenario runs against a freshly spawned node (geo:
# against `arena dev`, three emulated regions in one process), with the
# server (for geo: the whole dev mesh) pinned to one core and the harness to
# the other.
#
#   bench/readme.sh [SCENARIO ...]   default: all of them
#
# Results (JSON and SVG latency plots) go to $OUT (default docs/bench).
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${OUT:-$repo/docs/bench}"
mkdir -p "$OUT"
bin="$(mktemp -d)/arena"
(cd "$repo" && go build -o "$bin" ./cmd/arena)
pin=(--server-cpu 1 --bench-cpu 0)
run() { # name scenario flags...
	local name=$1
	shift
	echo "== $name: arena bench $*" >&2
	"$bin" bench "$@" --quiet --json "$OUT/$name.json" --plot "$OUT/$name.svg" | tee "$OUT/$name.txt"
}

# Early delivery (hot_idle, off by default): the spawned node's config is
# bench's own (the publish rate limit lifted) plus hot_idle.
early="$(mktemp -d)/early.yaml"
printf 'limits:\n  publish_rate: 1000000\nhot_idle: 10s\n' >"$early"
# Early delivery with fsync batching (wal.sync_interval): at most one fsync
# every 2 ms, which acks wait for and deliveries do not.
batched="$(mktemp -d)/batched.yaml"
printf 'limits:\n  publish_rate: 1000000\nhot_idle: 10s\nwal:\n  sync_interval: 2ms\n' >"$batched"

# geo NAME DIR [DEV FLAGS]: the geo scenario against `arena dev` with its
# data under DIR.
geo() {
	local name=$1 data
	data="$(mktemp -d -p "$2")"
	shift 2
	"$bin" dev --port 18480 --data "$data" "$@" >"$data/dev.out" 2>"$data/dev.err" &
	dev=$! # global: the EXIT trap may run after this function returns
	trap 'kill $dev 2>/dev/null; wait $dev 2>/dev/null || true' EXIT
	for _ in $(seq 100); do grep -q "measure it" "$data/dev.out" 2>/dev/null && break; sleep 0.2; done
	# arena dev prints the geo command with its URLs and floors; 333 msg/s
	# from each of the three regions is 1,000 msg/s into the room.
	local args
	read -r -a args <<<"$(sed -n 's/^measure it: arena bench geo //p' "$data/dev.out")"
	run "$name" geo "${args[@]}" --rate 333 --subs 5 --duration 10s --server-pid "$dev" "${pin[@]}"
	kill $dev
	wait $dev 2>/dev/null || true
	trap - EXIT
	rm -rf "$data"
}

want=("$@")
[ ${#want[@]} -gt 0 ] || want=(fanout fanout100 fanout100-early rooms rooms-tmpfs rooms-early rooms-batched conns durable durable-16 busy acks acks-10k acks-batched resume presence geo geo-tmpfs geo-early geo-batched durable-long durable-16-long)
# The two-minute runs come last: the gigabytes they write are still being
# written back and deleted for a while after them, which would show in the
# next scenarios' latency tails.
for s in "${want[@]}"; do
	case $s in
	fanout) run fanout fanout --spawn "${pin[@]}" --subs 1000 --rate 1000 --duration 10s ;;
	fanout100) run fanout100 fanout --spawn "${pin[@]}" --subs 1000 --rate 100 --duration 10s ;;
	# The same with early delivery: the fan-out starts before the fsync.
	fanout100-early) run fanout100-early fanout --spawn "${pin[@]}" --server-arg "--config=$early" --subs 1000 --rate 100 --duration 10s ;;
	rooms) run rooms rooms --spawn "${pin[@]}" --rooms 1000 --members 2 --rate 1 --duration 10s ;;
	# The same with the node's data on tmpfs, where fsync costs nothing: the
	# difference is what the disk's fsync costs the rooms tail.
	rooms-tmpfs) TMPDIR=/dev/shm run rooms-tmpfs rooms --spawn "${pin[@]}" --rooms 1000 --members 2 --rate 1 --duration 10s ;;
	# The same on disk with early delivery: no fsync on the delivery path.
	rooms-early) run rooms-early rooms --spawn "${pin[@]}" --server-arg "--config=$early" --rooms 1000 --members 2 --rate 1 --duration 10s ;;
	# Early delivery and fsync batching: fewer fsyncs, so less CPU, none of
	# it on the delivery path.
	rooms-batched) run rooms-batched rooms --spawn "${pin[@]}" --server-arg "--config=$batched" --rooms 1000 --members 2 --rate 1 --duration 10s ;;
	conns) run conns conns --spawn "${pin[@]}" --conns 10000 ;;
	durable) run durable durable --spawn "${pin[@]}" --rooms 1000 --inflight 4 --duration 10s ;;
	# The same with 16 publishes in flight per room: the node then reads
	# several publishes per syscall and writes several acks per writev.
	durable-16) run durable-16 durable --spawn "${pin[@]}" --rooms 1000 --inflight 16 --duration 10s ;;
	# durable for two minutes: a fresh node's first seconds are its fastest,
	# as Pebble's levels and the rooms' remembered keys grow.
	durable-long) run durable-long durable --spawn "${pin[@]}" --rooms 1000 --inflight 4 --duration 120s ;;
	# And with 16 in flight: past about 100 s every room holds its 10,000
	# keys, and each publish then evicts one for the wal to index.
	durable-16-long) run durable-16-long durable --spawn "${pin[@]}" --rooms 1000 --inflight 16 --duration 120s ;;
	# Ten busy rooms: 5,000 msg/s and more each, every publish evicting a
	# key once a room holds 10,000.
	busy) run busy durable --spawn "${pin[@]}" --rooms 10 --publishers 10 --inflight 16 --duration 15s ;;
	# What fsync batching costs the acks: 2,000 msg/s over 1,000 rooms at a
	# fixed rate, without and with wal.sync_interval.
	acks) run acks durable --spawn "${pin[@]}" --rooms 1000 --rate 2000 --duration 10s ;;
	# The highest fixed rate at which ack p99 stays under 10 ms: each of
	# the 1,000 publishers sends alone, one read and one write per message.
	acks-10k) run acks-10k durable --spawn "${pin[@]}" --rooms 1000 --rate 10000 --duration 10s ;;
	acks-batched) run acks-batched durable --spawn "${pin[@]}" --server-arg "--config=$batched" --rooms 1000 --rate 2000 --duration 10s ;;
	resume) run resume resume --spawn "${pin[@]}" --clients 1000 --rooms 10 --rate 100 --how restart ;;
	presence) run presence presence --spawn "${pin[@]}" --watchers 10 --churners 1000 --rate 2000 --duration 10s ;;
	geo) geo geo "${TMPDIR:-/tmp}" ;;
	# geo with the nodes' data on tmpfs: what the mesh adds without the disk.
	geo-tmpfs) geo geo-tmpfs /dev/shm ;;
	# geo on disk with early delivery.
	geo-early) geo geo-early "${TMPDIR:-/tmp}" --hot-idle 10s ;;
	# geo on disk with early delivery and fsync batching.
	geo-batched) geo geo-batched "${TMPDIR:-/tmp}" --hot-idle 10s --wal-sync-interval 2ms ;;
	*) echo "unknown scenario $s" >&2; exit 2 ;;
	esac
done
