#!/usr/bin/env bash
# A local Aoba cluster for development and tests (issue 14, docs/cluster.md):
# PostgreSQL 15 and nats-server from Debian's packages (installed if missing), then N
# Aoba nodes on loopback, each on its own address 127.0.0.K. Everything it starts is
# stopped by pid when it ends: after DURATION seconds, on Ctrl-C, or on SIGTERM.
#
#   deploy/local-cluster.sh [N] [DURATION_S]      (defaults: 3 nodes, 600 s)
#
# Environment: AOBA_BIN (default: target/release/aoba, built if missing), AOBA_PORT
# (WebSocket port of every node, default 5280), AOBA_JWT_SECRET (default: a dev secret),
# AOBA_SHARDS (default 1). It prints one line per node, "node nK ws://127.0.0.K:PORT/xmpp
# admin http://127.0.0.1:ADMIN_PORT", the PostgreSQL and NATS addresses, "pids PG NATS N1 N2 ...",
# then "cluster ready".
set -euo pipefail
N=${1:-3}
DURATION=${2:-600}
PORT=${AOBA_PORT:-5280}
SECRET=${AOBA_JWT_SECRET:-local-cluster-dev-secret-0123456789}
SHARDS=${AOBA_SHARDS:-1}
cd "$(dirname "$0")/.."
BIN=${AOBA_BIN:-target/release/aoba}
if [ ! -x "$BIN" ]; then cargo build --release --bin aoba; fi

need() { # package, command to check
    if ! eval "$2" >/dev/null 2>&1; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null
    fi
}
need postgresql-15 "test -x /usr/lib/postgresql/15/bin/postgres"
need nats-server "command -v nats-server"
PGBIN=/usr/lib/postgresql/15/bin

T=$(mktemp -d /tmp/aoba-cluster.XXXXXX)
chmod 755 "$T"
PIDS=()
cleanup() {
    trap - EXIT INT TERM
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
    done
    rm -rf "$T"
    echo "cluster stopped"
}
trap cleanup EXIT
trap "cleanup; exit 0" INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# PostgreSQL refuses to run as root: it runs as the postgres user, in $T/pg.
PGPORT=$(free_port)
mkdir -p "$T/pg" "$T/sock"
AS=()
if [ "$(id -u)" = 0 ]; then chown postgres "$T/pg" "$T/sock"; AS=(runuser -u postgres --); fi
"${AS[@]}" "$PGBIN/initdb" -D "$T/pg/data" -U postgres -A trust -E UTF8 --locale=C --no-sync --no-instructions >/dev/null
"${AS[@]}" "$PGBIN/postgres" -D "$T/pg/data" -p "$PGPORT" -k "$T/sock" -c listen_addresses=127.0.0.1 \
    -c max_connections=200 >"$T/postgres.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 300); do
    "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PGPORT" && break
    sleep 0.1
done
"$PGBIN/psql" -q -h 127.0.0.1 -p "$PGPORT" -U postgres -c 'CREATE DATABASE aoba' >/dev/null
PG="host=127.0.0.1 port=$PGPORT user=postgres dbname=aoba"

NATSPORT=$(free_port)
NATSMON=$(free_port)
nats-server -a 127.0.0.1 -p "$NATSPORT" -m "$NATSMON" -l "$T/nats.log" &
PIDS+=($!)
for _ in $(seq 1 100); do grep -q "Server is ready" "$T/nats.log" 2>/dev/null && break; sleep 0.1; done

for k in $(seq 1 "$N"); do
    mkdir -p "$T/n$k"
    ADMIN=$(free_port)
    # AOBA_REDIRECT=1: a client landing on a node that is not its user's home is sent to
    # the home (RFC 7395 see-other-uri) instead of being relayed.
    : >"$T/n$k/aoba.toml"
    if [ -n "${AOBA_REDIRECT:-}" ]; then
        printf '[cluster]\nredirect = true\nadvertise_url = "ws://127.0.0.%s:%s/xmpp"\n' "$k" "$PORT" >"$T/n$k/aoba.toml"
    fi
    "$BIN" serve --config "$T/n$k/aoba.toml" --listen "127.0.0.$k:$PORT" --admin-listen "127.0.0.1:$ADMIN" \
        --shards "$SHARDS" --data-dir "$T/n$k" --jwt-secret "$SECRET" \
        --postgres "$PG" --node "n$k" --nats "nats://127.0.0.1:$NATSPORT" \
        >"$T/n$k/stdout.log" 2>"$T/n$k/stderr.log" &
    PIDS+=($!)
    for _ in $(seq 1 300); do grep -q "aoba ready" "$T/n$k/stdout.log" && break; sleep 0.1; done
    if ! grep -q "aoba ready" "$T/n$k/stdout.log"; then
        echo "node n$k did not start:" >&2; cat "$T/n$k/stderr.log" >&2; exit 1
    fi
    echo "node n$k ws://127.0.0.$k:$PORT/xmpp admin http://127.0.0.1:$ADMIN"
done
echo "postgres $PG"
echo "nats nats://127.0.0.1:$NATSPORT monitor http://127.0.0.1:$NATSMON"
echo "pids ${PIDS[*]}"
echo "cluster ready"
END=$((SECONDS + DURATION))
# PostgreSQL and nats-server must live; a node may die (failover runs kill one): it is
# reported once and the others go on.
GONE=" "
while [ $SECONDS -lt $END ]; do
    for p in "${PIDS[@]:0:2}"; do
        kill -0 "$p" 2>/dev/null || { echo "a process of the cluster ended (pid $p)" >&2; exit 1; }
    done
    for p in "${PIDS[@]:2}"; do
        if ! kill -0 "$p" 2>/dev/null && [[ "$GONE" != *" $p "* ]]; then
            echo "node process $p ended" >&2
            GONE="$GONE$p "
        fi
    done
    sleep 1
done
