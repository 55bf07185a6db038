#!/usr/bin/env bash
# Issue 14's cost of crossing nodes, measured on this machine: for each setup, a chat load
# (aoba-loadtest chat) and, over its sending window, the CPU time of every server process
# summed (Aoba nodes, nats-server, PostgreSQL with its backends), latency p50/p99, and the
# NATS messages per chat message.
#
#   fjall-1   one node on fjall, no cluster (the embedded default)
#   pg-1      one cluster node on PostgreSQL (nats-server running, idle)
#   c3-same   three nodes; sender and recipient homed on the same node, each connected
#             to its home
#   c3-cross  three nodes; sender and recipient homed on different nodes, each connected
#             to its home (one bus hop per message)
#   c3-relay  as c3-cross, but every client connects to a node that is not its home
#             (proxy mode: landing → home → home → landing)
#   c3-redirect as c3-relay, with cluster.redirect on: every client is sent to its home
#             (RFC 7395 see-other-uri) at login and follows it; the login time includes
#             both connections
#   c3-muc    three nodes, 10 rooms of 9 occupants spread over the three nodes (each on
#             its home), MUC_RATE groupchat messages/s (default 100): NATS messages per
#             groupchat message (its room crosses once per node with occupants)
#
# Rounds are interleaved (setup order repeated ROUNDS times) and medians reported, as the
# machine is shared. Every process it starts is stopped by pid; each run is bounded.
#
# Then FAILOVER_RUNS (default 3) times, on a fresh three-node cluster: `aoba-loadtest
# failover`, the time from a node's kill -9 to the first delivery to a user homed there.
#
#   loadtest/cluster.sh [ROUNDS] [RATE] [DURATION_S]     (defaults 3, 1000, 10)
set -euo pipefail
ROUNDS=${1:-3}
RATE=${2:-1000}
DUR=${3:-10}
SESSIONS=${SESSIONS:-300}
SETUPS=${SETUPS:-"fjall-1 pg-1 c3-same c3-cross c3-relay c3-redirect c3-muc"}
MUC_RATE=${MUC_RATE:-100}
cd "$(dirname "$0")/.."
cargo build -q --release --bin aoba
cargo build -q --release -p aoba-loadtest
BIN=$PWD/target/release/aoba
LT=$PWD/target/release/aoba-loadtest
OUT=${OUT:-/tmp/aoba-cluster-measure}
rm -rf "$OUT"
mkdir -p "$OUT"
SECRET=measure-secret-0123456789abcdef

STOP=()
stop_all() {
    for p in "${STOP[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${STOP[@]}"; do
        for _ in $(seq 1 200); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
    done
    STOP=()
}
trap stop_all EXIT INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
varz() { python3 -c "import json,urllib.request; print(json.load(urllib.request.urlopen('$1/varz'))['in_msgs'])"; }

run() { # setup round
    local setup=$1 round=$2 urls pids nodes="" extra="" mon=""
    local log=$OUT/$setup-$round.log
    if [ "$setup" = fjall-1 ]; then
        local port d
        port=$(free_port)
        d=$(mktemp -d)
        "$BIN" serve --listen "127.0.0.1:$port" --shards 1 --data-dir "$d" --jwt-secret "$SECRET" >"$log" 2>&1 &
        STOP+=($!)
        pids=$!
        for _ in $(seq 1 100); do grep -q "aoba ready" "$log" 2>/dev/null && break; sleep 0.1; done
        urls="ws://127.0.0.1:$port/xmpp"
    else
        local n=3
        [ "$setup" = pg-1 ] && n=1
        local redirect=""
        [ "$setup" = c3-redirect ] && redirect=1
        AOBA_BIN=$BIN AOBA_PORT=$(free_port) AOBA_JWT_SECRET=$SECRET AOBA_SHARDS=1 \
            AOBA_REDIRECT=$redirect bash deploy/local-cluster.sh "$n" 600 >"$log" 2>&1 &
        STOP+=($!)
        for _ in $(seq 1 600); do grep -q "cluster ready" "$log" 2>/dev/null && break; sleep 0.1; done
        grep -q "cluster ready" "$log" || { cat "$log"; exit 1; }
        urls=$(grep '^node ' "$log" | awk '{print $3}' | paste -sd,)
        nodes=$(grep '^node ' "$log" | awk '{print $2}' | paste -sd,)
        pids=$(grep '^pids ' "$log" | cut -d' ' -f2- | tr ' ' ',')
        mon=$(grep '^nats ' "$log" | awk '{print $4}')
        # every node routes by every member
        sleep 2
        case $setup in
            c3-cross) extra="--pairing cross" ;;
            c3-relay | c3-redirect) extra="--pairing cross --relayed" ;;
        esac
    fi
    local before=0 after=0
    [ -n "$mon" ] && before=$(varz "$mon")
    local load=(chat --sessions "$SESSIONS" --rate "$RATE")
    if [ "$setup" = c3-muc ]; then
        load=(muc --rooms 10 --occupants 9 --rooms-across-urls --rate "$MUC_RATE")
    fi
    # shellcheck disable=SC2086
    timeout $((DUR + 120)) "$LT" "${load[@]}" --url "$urls" \
        --duration "$DUR" --jwt-secret "$SECRET" --server-pid "$pids" --users-prefix "m${round}" \
        ${nodes:+--cluster-nodes "$nodes"} $extra --json "$OUT/$setup-$round.json" >>"$log" 2>&1
    [ -n "$mon" ] && after=$(varz "$mon")
    echo "$((after - before))" >"$OUT/$setup-$round.bus"
    stop_all
    echo "$setup round $round done" >&2
}

for r in $(seq 1 "$ROUNDS"); do
    for s in $SETUPS; do run "$s" "$r"; done
done

for r in $(seq 1 "${FAILOVER_RUNS:-3}"); do
    log=$OUT/failover-$r.log
    AOBA_BIN=$BIN AOBA_PORT=$(free_port) AOBA_JWT_SECRET=$SECRET AOBA_SHARDS=1 \
        bash deploy/local-cluster.sh 3 600 >"$log" 2>&1 &
    STOP+=($!)
    for _ in $(seq 1 600); do grep -q "cluster ready" "$log" 2>/dev/null && break; sleep 0.1; done
    sleep 2
    urls=$(grep '^node ' "$log" | awk '{print $3}' | paste -sd,)
    victim=$(grep '^pids ' "$log" | awk '{print $NF}')
    timeout 120 "$LT" failover --url "$urls" --cluster-nodes n1,n2,n3 --victim n3 \
        --kill-pid "$victim" --jwt-secret "$SECRET" --users-prefix "f$r" >>"$OUT/failover.txt" 2>&1 || true
    stop_all
done

python3 - "$OUT" "$SETUPS" <<'PY'
import json, statistics, sys, glob, os
out, setups = sys.argv[1], sys.argv[2].split()
print(f"| setup | runs | delivered/s | lost | CPU ms per 1,000 deliveries (all processes) | p50 ms | p99 ms | NATS msgs per message sent | login p50 ms |")
print("|---|---|---|---|---|---|---|---|---|")
base = None
for s in setups:
    rows = []
    for f in sorted(glob.glob(f"{out}/{s}-*.json")):
        j = json.load(open(f))
        bus = int(open(f[:-5] + ".bus").read().strip() or 0)
        d = j.get("delivered") or 0
        sent = j.get("sent") or 0
        cpu = j.get("server_cpu_s")
        rows.append(dict(dps=j.get("delivered_per_sec"), lost=j.get("lost"),
                         cpu=(cpu / d * 1000 * 1000) if cpu and d else None,
                         p50=j["latency_ms"]["p50"], p99=j["latency_ms"]["p99"],
                         bus=bus / sent if sent else None,
                         login=j.get("login", {}).get("latency_ms", {}).get("p50")))
    med = lambda k: statistics.median([r[k] for r in rows if r[k] is not None]) if any(r[k] is not None for r in rows) else float("nan")
    if not rows:
        continue
    print(f"| {s} | {len(rows)} | {med('dps'):.0f} | {sum(r['lost'] or 0 for r in rows)} | {med('cpu'):.1f} | {med('p50'):.2f} | {med('p99'):.2f} | {med('bus'):.3f} | {med('login'):.2f} |")
PY
echo
cat "$OUT/failover.txt" 2>/dev/null || true
