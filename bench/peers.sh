#!/usr/bin/env bash
# bench/peers.sh — run the bench scenarios against Arena and against NATS on
# this machine, and print each pair side by side (arena bench compare).
#
#   bench/peers.sh [SCENARIO ...]       default: fanout rooms durable conns resume
#
# Arena runs as a spawned local node (arena bench --spawn); NATS runs as a
# nats-server on loopback with a WebSocket listener, driven by nats.go over
# WebSocket (arena bench --driver nats), so both pay for the same transport.
# nats-server is installed from Debian (apt-get) when missing.
#
# Environment:
#   ARENA       arena binary (default: built from ./cmd/arena into a temp dir)
#   OUT         directory for the JSON results and plots (default: ./bench-results)
#   ARGS        extra flags for every run (e.g. "--duration 30s --warmup 5s")
#   SERVER_CPU  CPUs for the server under test, BENCH_CPU CPUs for the harness
#               (default with 2+ CPUs: server on 1, harness on 0; set both empty
#               to not pin)
#   <SCENARIO>_ARGS  flags for one scenario, e.g. FANOUT_ARGS="--subs 1000 --rate 5000"
#
# geo is not run: it needs a multi-region deployment. resume runs with
# --how cut on both sides (the harness can restart only a node it spawned,
# and core NATS has no resume: its misses there are expected).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(fanout rooms durable conns resume)
OUT="${OUT:-$PWD/bench-results}"
ARGS="${ARGS:-}"
if [ "$(nproc)" -ge 2 ]; then
	SERVER_CPU="${SERVER_CPU-1}"
	BENCH_CPU="${BENCH_CPU-0}"
else
	SERVER_CPU="${SERVER_CPU-}"
	BENCH_CPU="${BENCH_CPU-}"
fi

FANOUT_ARGS="${FANOUT_ARGS:---subs 100 --rate 1000}"
ROOMS_ARGS="${ROOMS_ARGS:---rooms 50 --members 5 --rate 5}"
DURABLE_ARGS="${DURABLE_ARGS:---rooms 10 --rate 2000}"
CONNS_ARGS="${CONNS_ARGS:---conns 5000 --hold 3s}"
RESUME_ARGS="${RESUME_ARGS:---clients 500 --rooms 5 --rate 50}"

work="$(mktemp -d)"
nats_pid=""
cleanup() {
	if [ -n "$nats_pid" ]; then kill "$nats_pid" 2>/dev/null || true; wait "$nats_pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

# 1. nats-server, from Debian if missing.
if ! command -v nats-server >/dev/null; then
	echo "peers: installing nats-server (apt-get)" >&2
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	$sudo apt-get update -qq
	$sudo apt-get install -y -qq nats-server
fi

# 2. The arena binary.
if [ -z "${ARENA:-}" ]; then
	ARENA="$work/arena"
	echo "peers: building arena" >&2
	(cd "$repo" && go build -o "$ARENA" ./cmd/arena)
fi

# 3. NATS on loopback, free ports, JetStream for the durable scenario.
cat >"$work/nats.conf" <<CONF
listen: 127.0.0.1:-1
jetstream { store_dir: "$work/jetstream" }
websocket { listen: "127.0.0.1:-1", no_tls: true }
CONF
nats-server -c "$work/nats.conf" >"$work/nats.log" 2>&1 &
nats_pid=$!
nats_url=""
for _ in $(seq 300); do
	nats_url="$(sed -n 's/.*Listening for websocket clients on \(ws:\/\/[^ ]*\).*/\1/p' "$work/nats.log" | head -1)"
	[ -n "$nats_url" ] && break
	kill -0 "$nats_pid" 2>/dev/null || { cat "$work/nats.log" >&2; echo "peers: nats-server exited" >&2; exit 1; }
	sleep 0.1
done
[ -n "$nats_url" ] || { cat "$work/nats.log" >&2; echo "peers: nats-server did not start" >&2; exit 1; }
echo "peers: nats-server $(nats-server --version | awk '{print $2}') pid $nats_pid at $nats_url" >&2

mkdir -p "$OUT"
pin_arena=() pin_nats=()
[ -n "$SERVER_CPU" ] && pin_arena+=(--server-cpu "$SERVER_CPU") && pin_nats+=(--server-cpu "$SERVER_CPU")
[ -n "$BENCH_CPU" ] && pin_arena+=(--bench-cpu "$BENCH_CPU") && pin_nats+=(--bench-cpu "$BENCH_CPU")

# 4. Each scenario against both; a run that raised alarms (exit 1) still
# wrote its result, so carry on.
for s in "${scenarios[@]}"; do
	var="$(echo "$s" | tr '[:lower:]' '[:upper:]')_ARGS"
	sargs="${!var:-}"
	extra=()
	[ "$s" = resume ] && extra=(--how cut)
	echo "== $s: arena" >&2
	# shellcheck disable=SC2086
	"$ARENA" bench "$s" --spawn "${pin_arena[@]}" "${extra[@]}" $sargs $ARGS \
		--json "$OUT/arena-$s.json" --plot "$OUT/arena-$s.svg" || echo "peers: arena $s exited with $?" >&2
	echo "== $s: nats" >&2
	# shellcheck disable=SC2086
	"$ARENA" bench "$s" --driver nats --url "$nats_url" --server-pid "$nats_pid" "${pin_nats[@]}" "${extra[@]}" $sargs $ARGS \
		--json "$OUT/nats-$s.json" --plot "$OUT/nats-$s.svg" || echo "peers: nats $s exited with $?" >&2
	if [ -f "$OUT/arena-$s.json" ] && [ -f "$OUT/nats-$s.json" ]; then
		echo
		echo "==================== $s: A = arena, B = nats ===================="
		"$ARENA" bench compare "$OUT/arena-$s.json" "$OUT/nats-$s.json" --plot "$OUT/compare-$s.svg"
	fi
done
echo >&2
echo "peers: results in $OUT" >&2
