#!/usr/bin/env bash
# Flamegraph of the Aoba release server under a loadtest scenario.
#
# Usage: flamegraphs/record.sh SCENARIO [LOADTEST ARGS...]
#   SCENARIO   chat | muc | login | hold (what aoba-loadtest runs)
#   ARGS       replace the default load (chat: --sessions 1000 --rate 16000 --duration 10;
#              muc: --rooms 1 --occupants 1000 --senders 10 --rate 100 --duration 10)
# Example: flamegraphs/record.sh chat --sessions 1000 --rate 8000 --duration 10
#
# The server runs with one shard pinned to CPU $SERVER_CPU (throttles off), the load generator
# on CPU $CLIENT_CPU. `perf record -e cpu-clock` samples the server only, and only while the
# load is on (it starts after the login phase). Writes flamegraphs/SCENARIO.svg and prints
# where the time goes; the folded stacks, loadtest JSON/log and perf.data stay in /tmp/aoba-flame.*
#
# Environment: CALL_GRAPH [dwarf] (or fp: Rust release code has no frame pointers, so fp
#   stacks stop at the first Rust frame), FREQ [999] Hz, PERF_DELAY [computed] seconds from
#   the start of the load generator to the start of sampling, PERF_SECONDS [duration - 1],
#   SERVER_CPU [0], CLIENT_CPU [1], PORT [18400], OUT_DIR [flamegraphs/],
#   BUILD [1] (0: use existing binaries), CARGO_TARGET_DIR [repo/target], AOBA_BIN, LOADTEST_BIN,
#   PERF [perf], TRANSPORT [ws] (wss or tls: a self-signed certificate is made with openssl,
#   the server listens with TLS on PORT+1 (wss) and PORT+2 (direct TLS), and the graph is
#   SCENARIO-TRANSPORT.svg). inferno is installed into flamegraphs/.tools if it is not on PATH.
set -euo pipefail

usage() { sed -n '4,7p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ $# -ge 1 ] || usage
SCENARIO=$1
shift
case $SCENARIO in chat | muc | login | hold) ;; *) usage ;; esac

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
AOBA_BIN=${AOBA_BIN:-$TARGET/release/aoba}
LOADTEST_BIN=${LOADTEST_BIN:-$TARGET/release/aoba-loadtest}
BUILD=${BUILD:-1}
CALL_GRAPH=${CALL_GRAPH:-dwarf}
FREQ=${FREQ:-999}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PORT=${PORT:-18400}
OUT_DIR=${OUT_DIR:-$HERE}
PERF=${PERF:-perf}
TRANSPORT=${TRANSPORT:-ws}
case $TRANSPORT in ws) NAME=$SCENARIO ;; wss | tls) NAME=$SCENARIO-$TRANSPORT ;; *) usage ;; esac
SECRET=record-secret
WORK=$(mktemp -d /tmp/aoba-flame.XXXXXX)

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

command -v "$PERF" >/dev/null || die "perf not found (Debian: apt-get install linux-perf)"

# ------------------------------------------------------------------ the load
if [ $# -eq 0 ]; then
  case $SCENARIO in
    chat) set -- --sessions 1000 --rate 16000 --duration 10 ;;
    muc) set -- --rooms 1 --occupants 1000 --senders 10 --rate 100 --duration 10 ;;
    login) set -- --sessions 5000 --rate 5000 ;;
    hold) set -- --sessions 10000 --duration 10 ;;
  esac
fi
# What the delay before sampling depends on: sessions, login rate, duration.
sessions=100 login_rate=1000 duration=10 rooms=10 occupants=10
prev=""
for a in "$@"; do
  case $prev in
    --sessions) sessions=$a ;; --login-rate) login_rate=$a ;; --duration) duration=$a ;;
    --rooms) rooms=$a ;; --occupants) occupants=$a ;; --rate) [ "$SCENARIO" = login ] && login_rate=$a ;;
  esac
  prev=$a
done
[ "$SCENARIO" = muc ] && sessions=$(( rooms * occupants > sessions ? rooms * occupants : sessions ))
# login phase (+ 1 s settle, + joins for muc) before the measured window
login_s=$(awk -v n="$sessions" -v r="$login_rate" 'BEGIN { printf "%d", n / r + 0.999 }')
case $SCENARIO in
  chat) def_delay=$(( login_s + 2 )) def_secs=$(awk -v d="$duration" 'BEGIN { printf "%d", (d > 2 ? d - 1 : 1) }') ;;
  muc) def_delay=$(( login_s + 5 )) def_secs=$(awk -v d="$duration" 'BEGIN { printf "%d", (d > 2 ? d - 1 : 1) }') ;;
  login) def_delay=0 def_secs=$(( login_s + 1 )) ;;
  hold) def_delay=0 def_secs=$(( login_s + ${duration%.*} )) ;;
esac
PERF_DELAY=${PERF_DELAY:-$def_delay}
PERF_SECONDS=${PERF_SECONDS:-$def_secs}

# ------------------------------------------------------------------ tools
find_inferno() {
  local d
  for d in "$HERE/.tools/bin" "$HOME/.cargo/bin"; do
    [ -x "$d/inferno-flamegraph" ] && [ -x "$d/inferno-collapse-perf" ] && { echo "$d"; return 0; }
  done
  command -v inferno-flamegraph >/dev/null && command -v inferno-collapse-perf >/dev/null &&
    { dirname "$(command -v inferno-flamegraph)"; return 0; }
  return 1
}
if ! INFERNO=$(find_inferno); then
  log "installing inferno into $HERE/.tools (cargo install)"
  nice -n 10 cargo install --locked --root "$HERE/.tools" inferno >"$WORK/inferno-install.log" 2>&1 ||
    die "cargo install inferno failed, see $WORK/inferno-install.log"
  INFERNO=$HERE/.tools/bin
fi
if [ "$BUILD" = 1 ]; then
  log "building release (line tables on, see [profile.release] in Cargo.toml)"
  CARGO_TARGET_DIR=$TARGET nice -n 10 cargo build --release --workspace --manifest-path "$REPO/Cargo.toml" \
    >"$WORK/build.log" 2>&1 || die "build failed, see $WORK/build.log"
fi
[ -x "$AOBA_BIN" ] && [ -x "$LOADTEST_BIN" ] || die "missing $AOBA_BIN or $LOADTEST_BIN"

# ------------------------------------------------------------------ server
SERVER=""
PERF_PID=""
LT_PID=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [ -n "$PERF_PID" ] && kill -INT "$PERF_PID" 2>/dev/null && wait "$PERF_PID" 2>/dev/null
  [ -n "$LT_PID" ] && kill -TERM "$LT_PID" 2>/dev/null && wait "$LT_PID" 2>/dev/null
  if [ -n "$SERVER" ]; then
    kill -TERM "$SERVER" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$SERVER" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER" 2>/dev/null || true
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then die "127.0.0.1:$PORT is busy (set PORT)"; fi
mkdir -p "$WORK/data"
printf '[limits]\nmax_stanzas_per_sec = 1000000\nstanza_burst = 1000000\n' >"$WORK/aoba.toml"
TLS_ARGS=()
LT_ARGS=(--url "ws://127.0.0.1:$PORT/xmpp" --auth jwt-cookie)
if [ "$TRANSPORT" != ws ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost -addext basicConstraints=critical,CA:FALSE \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" >/dev/null 2>&1 || die "openssl req failed"
  printf '[tls]\ncertificates = [{ cert_file = "%s", key_file = "%s" }]\n[c2s]\nlisten_direct_tls = "127.0.0.1:%s"\n' \
    "$WORK/cert.pem" "$WORK/key.pem" $((PORT + 2)) >>"$WORK/aoba.toml"
  TLS_ARGS=(--listen-tls "127.0.0.1:$((PORT + 1))")
  case $TRANSPORT in
    wss) LT_ARGS=(--transport wss --url "wss://127.0.0.1:$((PORT + 1))/xmpp" --auth jwt-cookie --ca "$WORK/cert.pem") ;;
    tls) LT_ARGS=(--transport tls --url "tls://127.0.0.1:$((PORT + 2))" --ca "$WORK/cert.pem") ;;
  esac
fi
taskset -c "$SERVER_CPU" "$AOBA_BIN" serve --config "$WORK/aoba.toml" --listen "127.0.0.1:$PORT" \
  "${TLS_ARGS[@]}" --shards 1 --jwt-secret "$SECRET" --data-dir "$WORK/data" >"$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  kill -0 "$SERVER" 2>/dev/null || die "server exited, see $WORK/server.log"
  sleep 0.1
done
log "aoba pid $SERVER on 127.0.0.1:$PORT (CPU $SERVER_CPU); load: $SCENARIO $*"

# ------------------------------------------------------------------ load + sampling
mkdir -p "$OUT_DIR"
taskset -c "$CLIENT_CPU" "$LOADTEST_BIN" "$SCENARIO" "${LT_ARGS[@]}" \
  --jwt-secret "$SECRET" --server-pid "$SERVER" --no-progress --json "$WORK/$SCENARIO.json" "$@" \
  >"$WORK/loadtest.log" 2>&1 &
LT_PID=$!
sleep "$PERF_DELAY"
kill -0 "$LT_PID" 2>/dev/null || die "the load generator ended before sampling started, see $WORK/loadtest.log"
case $CALL_GRAPH in
  dwarf) cg=(--call-graph dwarf,16384) ;;
  fp) cg=(-g) ;;
  *) die "CALL_GRAPH must be dwarf or fp" ;;
esac
log "perf record -e cpu-clock -F $FREQ ${cg[*]} for $PERF_SECONDS s (after $PERF_DELAY s)"
"$PERF" record -e cpu-clock -F "$FREQ" "${cg[@]}" -p "$SERVER" -o "$WORK/perf.data" -- sleep "$PERF_SECONDS" \
  >"$WORK/perf.log" 2>&1 &
PERF_PID=$!
wait "$PERF_PID" || die "perf record failed, see $WORK/perf.log"
PERF_PID=""
wait "$LT_PID" || die "aoba-loadtest failed, see $WORK/loadtest.log"
LT_PID=""
sed -n '/^== /,$p' "$WORK/loadtest.log" >&2

# ------------------------------------------------------------------ flamegraph
title="aoba $SCENARIO over $TRANSPORT: $*  (1 shard, perf cpu-clock ${FREQ} Hz, $CALL_GRAPH)"
"$PERF" script -i "$WORK/perf.data" 2>/dev/null | "$INFERNO/inferno-collapse-perf" --all >"$WORK/$NAME.folded"
"$INFERNO/inferno-flamegraph" --title "$title" --countname "ns of CPU" --width 1600 --minwidth 0.2 \
  <"$WORK/$NAME.folded" >"$OUT_DIR/$NAME.svg"
cp "$WORK/loadtest.log" "$WORK/$SCENARIO.log"

# Where the time goes, from the folded stacks (weights are ns of cpu-clock).
summarize() {
  python3 - "$1" <<'PY'
import collections, sys
SUB = "  of which loopback receive processing for the client (softirq)"
tot = 0
cat = collections.Counter()
fn = collections.Counter()
USER = ["aoba::net::conn::Conn::process_ws", "aoba::net::websocket::parse_frame",
        "aoba::xmpp::stream::Stream::on_element", "aoba::xml::stanza::Stanza::parse",
        "xmlparser::Tokenizer::parse_next_impl", "aoba::xmpp::jid::Jid::parse",
        "aoba::xmpp::router::route", "aoba::xmpp::router::stamp", "aoba::xmpp::router::deliver",
        "aoba::net::outbound::ConnCtl::push", "poll<aoba::net::outbound::writer",
        "aoba::shard::drain_loop", "monoio::driver::uring::UringInner::tick"]
for line in open(sys.argv[1]):
    stack, n = line.rsplit(" ", 1)
    n = int(n)
    tot += n
    fr = stack.split(";")
    s = set(fr)
    if "entry_SYSCALL_64_after_hwframe_[k]" in s:
        if "io_write_[k]" in s or "io_send_[k]" in s or "io_sendmsg_[k]" in s:
            cat["kernel, syscall: send/write (TCP transmit)"] += n
            if "net_rx_action_[k]" in s:
                cat[SUB] += n
        elif "io_recv_[k]" in s or "io_read_[k]" in s or "io_recvmsg_[k]" in s:
            cat["kernel, syscall: recv/read"] += n
        elif any(f.startswith(("schedule", "io_cqring_wait")) for f in s):
            cat["kernel, syscall: waiting/sleeping in io_uring_enter"] += n
        else:
            cat["kernel, syscall: other io_uring work (submit, poll arm, completions)"] += n
    elif "asm_sysvec_reschedule_ipi_[k]" in s:
        cat["kernel, reschedule IPIs (io_uring task_work notification)"] += n
    elif any(f.endswith("_[k]") for f in fr):
        cat["kernel, other (timer irq, page faults, vdso)"] += n
    else:
        cat["user space"] += n
    for u in USER:
        if any(f.startswith(u) for f in s):
            fn[u] += n
print(f"sampled server CPU: {tot / 1e6:.0f} ms")
for k in sorted((k for k in cat if k != SUB), key=lambda k: -cat[k]):
    print(f"{100 * cat[k] / tot:5.1f}%  {k}")
    if "send/write" in k and cat[SUB]:
        print(f"{100 * cat[SUB] / tot:5.1f}%  {SUB}")
print("inclusive, user functions (also counted where an IPI interrupted them):")
for u in USER:
    if fn[u]:
        print(f"{100 * fn[u] / tot:5.1f}%  {u}")
PY
}
summarize "$WORK/$NAME.folded" | tee "$WORK/$NAME.summary.txt" >&2
log "wrote $OUT_DIR/$NAME.svg; folded stacks, summary, loadtest log and JSON, perf.data in $WORK"
