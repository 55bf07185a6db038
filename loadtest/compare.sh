#!/usr/bin/env bash
# Side-by-side capacity comparison: Aoba vs Prosody vs ejabberd, same machine, same client.
#
# Usage: loadtest/compare.sh            (env vars below; QUICK=1 for a run of a few minutes)
#
# For every round, for every scenario, each server in turn (A B C A B C ...): start it fresh
# on loopback (empty state, accounts created), pin it to core $SERVER_CPU (all threads), run
# aoba-loadtest pinned to core $CLIENT_CPU, stop the server. Prints one table (medians over
# rounds, ratios Aoba/peer) and writes every JSON, CSV, log and the table (table.md) to $OUT.
#
# Needs: Debian (apt-get) for the peers, python3, taskset, timeout, and the peer scripts
# prosody.sh / ejabberd.sh from ../shared/peers beside the repository (PEERS=DIR to override).
#
# Environment (defaults in brackets; QUICK=1 lowers the sizes, see below):
#   ROUNDS [2]                 rounds of A B C
#   SERVERS ["aoba prosody ejabberd"]   SCENARIOS ["login hold chat muc"]
#   LOGIN_SESSIONS [5000]  LOGIN_RATE [20000]   logins offered per second
#   HOLD_SESSIONS [10000]  HOLD_SECONDS [10]   HOLD_LOGIN_RATE [2000]
#   CHAT_SESSIONS [1000]   CHAT_SECONDS [10]   CHAT_RATES_AOBA / _PROSODY / _EJABBERD
#                          (comma lists of msg/s; each server steps up its list until a
#                           step is not held: p99 > P99_BOUND_MS, a loss, an error after
#                           login, or more than 1 % failed logins)
#   MUC_ROOMS [50]  MUC_OCCUPANTS [20]  MUC_SECONDS [10]  MUC_RATES_PROSODY / _EJABBERD
#                          (groupchat msgs/s offered in total; deliveries = rate x occupants)
#   AOBA_MUC [0]               1 = measure Aoba's MUC too (issue 3), with MUC_RATES_AOBA;
#                              0 = a "pending issue 3" placeholder row
#   P99_BOUND_MS [100]   MAM [0] (1 = archive on, in Aoba and the peers)   SEED [1]
#   SERVER_CPU [0]  CLIENT_CPU [1]   AOBA_PORT [18300]
#   OUT [/tmp/aoba-compare-DATE]   run directory
#   AOBA_SRC [the repo]  BUILD [1]  (0 = use existing binaries)  CARGO_TARGET_DIR [AOBA_SRC/target]
#   AOBA_BIN, LOADTEST_BIN     explicit binaries (default CARGO_TARGET_DIR/release/...)
#   TABLE_ONLY [0]             1 = only rebuild the table from the JSON already in $OUT
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
case "${1:-}" in
  "") ;;
  -h | --help) usage; exit 0 ;;
  *) usage >&2; echo "compare.sh takes no arguments, only environment variables" >&2; exit 2 ;;
esac

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
PEERS=${PEERS:-$(dirname "$0")/../../shared/peers}

QUICK=${QUICK:-0}
q() { if [ "$QUICK" = 1 ]; then echo "$2"; else echo "$1"; fi; } # q FULL QUICK
ROUNDS=${ROUNDS:-$(q 2 1)}
SERVERS=${SERVERS:-aoba prosody ejabberd}
SCENARIOS=${SCENARIOS:-login hold chat muc}
LOGIN_SESSIONS=${LOGIN_SESSIONS:-$(q 5000 500)}
LOGIN_RATE=${LOGIN_RATE:-20000}
HOLD_SESSIONS=${HOLD_SESSIONS:-$(q 10000 2000)}
HOLD_SECONDS=${HOLD_SECONDS:-$(q 10 3)}
HOLD_LOGIN_RATE=${HOLD_LOGIN_RATE:-2000}
CHAT_SESSIONS=${CHAT_SESSIONS:-1000}
CHAT_SECONDS=${CHAT_SECONDS:-$(q 10 4)}
CHAT_RATES_AOBA=${CHAT_RATES_AOBA:-$(q 4000,8000,16000,24000,32000,40000,48000 8000,16000)}
CHAT_RATES_PROSODY=${CHAT_RATES_PROSODY:-$(q 250,500,1000,2000 500,1000)}
CHAT_RATES_EJABBERD=${CHAT_RATES_EJABBERD:-$(q 1000,2000,4000,8000 2000,4000)}
MUC_ROOMS=${MUC_ROOMS:-50}
MUC_OCCUPANTS=${MUC_OCCUPANTS:-20}
MUC_SECONDS=${MUC_SECONDS:-$(q 10 4)}
MUC_RATES_AOBA=${MUC_RATES_AOBA:-$(q 1000,2000,4000,8000 2000)}
MUC_RATES_PROSODY=${MUC_RATES_PROSODY:-$(q 25,50,100 50)}
MUC_RATES_EJABBERD=${MUC_RATES_EJABBERD:-$(q 200,400,800,1600 400,800)}
AOBA_MUC=${AOBA_MUC:-0}
P99_BOUND_MS=${P99_BOUND_MS:-100}
MAM=${MAM:-0}
SEED=${SEED:-1}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
AOBA_PORT=${AOBA_PORT:-18300}
OUT=${OUT:-/tmp/aoba-compare-$(date +%Y%m%d-%H%M%S)}
AOBA_SRC=${AOBA_SRC:-$REPO}
BUILD=${BUILD:-1}
TARGET=${CARGO_TARGET_DIR:-$AOBA_SRC/target}
AOBA_BIN=${AOBA_BIN:-$TARGET/release/aoba}
LOADTEST_BIN=${LOADTEST_BIN:-$TARGET/release/aoba-loadtest}
JWT_SECRET=compare-secret
PASSWORD=pass # what prosody.sh / ejabberd.sh adduser set
export MAM    # read by the peer scripts

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- checks and setup
case " $SERVERS " in *" prosody "* | *" ejabberd "*)
  [ -x "$PEERS/prosody.sh" ] && [ -x "$PEERS/ejabberd.sh" ] ||
    die "peer scripts not found: expected $PEERS/prosody.sh and $PEERS/ejabberd.sh (the repository's ../shared/peers; set PEERS=DIR)"
  PEERS=$(cd "$PEERS" && pwd) ;;
esac
for t in python3 taskset timeout; do command -v "$t" >/dev/null || die "$t is required"; done
[ "$(nproc)" -gt "$(( SERVER_CPU > CLIENT_CPU ? SERVER_CPU : CLIENT_CPU ))" ] ||
  die "need CPUs $SERVER_CPU and $CLIENT_CPU (nproc = $(nproc))"

mkdir -p "$OUT/logs" "$OUT/state"
OUT=$(cd "$OUT" && pwd)
PEER_STATE=$OUT/state/peers # RUN_DIR of the peer scripts: their data, configs, logs
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

install_peers() {
  local need=()
  case " $SERVERS " in *" prosody "*)
    command -v prosody >/dev/null || need+=(prosody)
    dpkg -s lua-dbi-sqlite3 >/dev/null 2>&1 || need+=(lua-dbi-sqlite3)
    command -v sqlite3 >/dev/null || need+=(sqlite3) ;;
  esac
  case " $SERVERS " in *" ejabberd "*)
    [ -x /usr/sbin/ejabberdctl ] || need+=(ejabberd) ;;
  esac
  command -v bc >/dev/null || need+=(bc) # the peer scripts time themselves with bc
  if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]} (policy-rc.d keeps the packages' own daemons from starting)"
    apt-get -o DPkg::Lock::Timeout=600 update >"$OUT/logs/apt.log" 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y "${need[@]}" >>"$OUT/logs/apt.log" 2>&1 ||
      die "apt-get install ${need[*]} failed, see $OUT/logs/apt.log"
  fi
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ---------------------------------------------------------------- servers
CUR=""  # server running now (only one at a time)
PID=""  # its process id (ejabberd: beam.smp)

aoba_start() {
  local d=$OUT/state/aoba
  rm -rf "$d" && mkdir -p "$d/data"
  cat >"$d/aoba.toml" <<EOF
# compare.sh: one shard, throttles off
[limits]
max_stanzas_per_sec = 1000000
stanza_burst = 1000000
max_sessions_per_user = 100000
# Archive like the peers: on only with MAM=1 (every 1:1 message is then stored twice).
[mam]
enabled = $([ "$MAM" = 1 ] && echo true || echo false)
EOF
  if port_open "$AOBA_PORT"; then die "127.0.0.1:$AOBA_PORT is busy (set AOBA_PORT)"; fi
  taskset -c "$SERVER_CPU" "$AOBA_BIN" serve --config "$d/aoba.toml" --listen "127.0.0.1:$AOBA_PORT" \
    --shards 1 --jwt-secret "$JWT_SECRET" --data-dir "$d/data" >>"$OUT/logs/aoba-server.log" 2>&1 &
  PID=$!
  local i
  for i in $(seq 1 100); do
    port_open "$AOBA_PORT" && return 0
    kill -0 "$PID" 2>/dev/null || die "aoba exited at start, see $OUT/logs/aoba-server.log"
    sleep 0.1
  done
  die "aoba did not open 127.0.0.1:$AOBA_PORT in 10 s"
}

aoba_stop() {
  [ -n "$PID" ] || return 0
  kill -TERM "$PID" 2>/dev/null || true
  local i
  for i in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$PID" 2>/dev/null && kill -KILL "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
}

peer() { RUN_DIR=$PEER_STATE "$PEERS/$1.sh" "${@:2}" >>"$OUT/logs/$1-server.log" 2>&1; }

peer_start() { # peer_start NAME ACCOUNTS
  local s=$1 ports
  case $s in prosody) ports="15222 15280" ;; ejabberd) ports="15322 15380 15390" ;; esac
  local p
  for p in $ports; do
    if port_open "$p"; then die "127.0.0.1:$p is busy: another $s is running (stop it first)"; fi
  done
  peer "$s" reset || true # stops our own instance if any and wipes its data
  peer "$s" start || die "$s did not start, see $OUT/logs/$s-server.log and $PEER_STATE/$s/log"
  PID=$(RUN_DIR=$PEER_STATE "$PEERS/$s.sh" pid)
  taskset -acp "$SERVER_CPU" "$PID" >/dev/null
  peer "$s" adduser "$2" || die "$s adduser $2 failed, see $OUT/logs/$s-server.log"
}

start_server() { # start_server NAME ACCOUNTS
  CUR=$1
  case $1 in
    aoba) aoba_start ;;
    prosody | ejabberd) peer_start "$1" "$2" ;;
    *) die "unknown server $1" ;;
  esac
  log "$1 started (pid $PID, pinned to CPU $SERVER_CPU)"
  sleep 1 # let its start-up work finish before anything is measured
}

stop_server() {
  [ -n "$CUR" ] || return 0
  case $CUR in
    aoba) aoba_stop ;;
    *) peer "$CUR" stop || true ;;
  esac
  CUR="" PID=""
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_server
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- load
url() {
  case $1 in
    aoba) echo "ws://127.0.0.1:$AOBA_PORT/xmpp" ;;
    prosody) echo "ws://127.0.0.1:15280/xmpp-websocket" ;;
    ejabberd) echo "ws://127.0.0.1:15380/websocket" ;;
  esac
}
auth() {
  case $1 in
    aoba) echo "--auth jwt-cookie --jwt-secret $JWT_SECRET" ;;
    *) echo "--auth plain --password $PASSWORD" ;;
  esac
}
rates() { # rates SCENARIO SERVER -> the comma list
  local v
  v=$(echo "${1}_RATES_${2}" | tr '[:lower:]' '[:upper:]')
  echo "${!v:-}"
}
accounts() {
  case $1 in
    login) echo "$LOGIN_SESSIONS" ;; hold) echo "$HOLD_SESSIONS" ;; chat) echo "$CHAT_SESSIONS" ;;
    muc) echo $(( MUC_ROOMS * MUC_OCCUPANTS )) ;;
  esac
}
# Worst case wall time of one loadtest run (one step), as a hard bound (it bounds itself too).
bound_s() {
  case $1 in
    login) echo $(( 120 + LOGIN_SESSIONS / 20 )) ;;
    hold) echo $(( 180 + HOLD_SESSIONS / 20 + ${HOLD_SECONDS%.*} )) ;;
    chat) echo $(( 120 + CHAT_SESSIONS / 20 + ${CHAT_SECONDS%.*} )) ;;
    muc) echo $(( 180 + MUC_ROOMS * MUC_OCCUPANTS / 10 + ${MUC_SECONDS%.*} )) ;;
  esac
}

lt() { # lt TAG BOUND_S ARGS... : one aoba-loadtest run, pinned, bounded, logged
  local tag=$1 bound=$2
  shift 2
  echo "taskset -c $CLIENT_CPU aoba-loadtest $*" >>"$OUT/commands.txt"
  if ! timeout -k 10 "$bound" taskset -c "$CLIENT_CPU" "$LOADTEST_BIN" "$@" >"$OUT/logs/$tag.log" 2>&1; then
    log "  aoba-loadtest failed or timed out for $tag (see $OUT/logs/$tag.log)"
  fi
  grep -E '^(sessions|login failures|delivered/s|server cpu)' "$OUT/logs/$tag.log" | sed 's/^/    /' >&2 || true
}

# Exit 0 if the step in JSON file $1 held: p99 <= bound, nothing lost, no error after login,
# and at most 1 % of the logins failed (those are reported, but do not stop the stepping).
held() {
  python3 - "$1" "$P99_BOUND_MS" <<'PY'
import json, sys
try:
    r = json.load(open(sys.argv[1]))
except (OSError, ValueError):
    sys.exit(1)
failed = r["login"]["failed"]
ok = (r["latency_ms"]["p99"] <= float(sys.argv[2]) and r["lost"] == 0
      and r["errors"] - failed == 0 and failed <= 0.01 * r["sessions"] and r["delivered"] > 0)
sys.exit(0 if ok else 1)
PY
}

run_one() { # run_one ROUND SCENARIO SERVER
  local r=$1 sc=$2 s=$3 tag="r$1-$2-$3" rate
  # shellcheck disable=SC2207
  local common=(--url "$(url "$s")" --server-pid "$PID" --seed "$SEED" --no-progress --timeout 60 $(auth "$s"))
  log "round $r $sc $s $(rates "$sc" "$s")"
  case $sc in
    login) lt "$tag" "$(bound_s login)" login --sessions "$LOGIN_SESSIONS" --rate "$LOGIN_RATE" \
      --json "$OUT/$tag.json" "${common[@]}" ;;
    hold) lt "$tag" "$(bound_s hold)" hold --sessions "$HOLD_SESSIONS" --login-rate "$HOLD_LOGIN_RATE" \
      --duration "$HOLD_SECONDS" --json "$OUT/$tag.json" "${common[@]}" ;;
    chat | muc)
      # Step the server's rates up on the same server; stop at the first step not held.
      for rate in $(rates "$sc" "$s" | tr ',' ' '); do
        local load=(--sessions "$CHAT_SESSIONS" --duration "$CHAT_SECONDS")
        [ "$sc" = muc ] && load=(--rooms "$MUC_ROOMS" --occupants "$MUC_OCCUPANTS" --duration "$MUC_SECONDS")
        lt "$tag-$rate" "$(bound_s "$sc")" "$sc" --rate "$rate" "${load[@]}" --json "$OUT/$tag-$rate.json" "${common[@]}"
        held "$OUT/$tag-$rate.json" || { log "  $rate/s not held: stepping stops"; break; }
        sleep 2 # let the server settle
      done ;;
  esac
}

# ---------------------------------------------------------------- main
make_table() { # the table from the JSON in $OUT, medians over rounds
python3 - "$OUT" "$P99_BOUND_MS" "$AOBA_MUC" >"$OUT/table.md" <<'PY'
import glob, json, os, re, statistics, sys

out, bound, aoba_muc = sys.argv[1], float(sys.argv[2]), sys.argv[3] == "1"
runs = {}  # (scenario, server) -> per round: a report (login, hold) or its steps (chat, muc)
steps = {}
for f in sorted(glob.glob(os.path.join(out, "r*-*.json"))):
    m = re.match(r"r(\d+)-([a-z]+)-([a-z]+)(?:-([0-9.]+))?\.json$", os.path.basename(f))
    if not m:
        continue
    try:
        rep = json.load(open(f))
    except ValueError:
        continue
    if isinstance(rep, list):  # `aoba-loadtest capacity --json`: all steps in one file
        steps[(m[2], m[3], int(m[1]))] = rep
    elif m[4] is None:
        runs.setdefault((m[2], m[3]), []).append(rep)
    else:
        steps.setdefault((m[2], m[3], int(m[1])), []).append(rep)
for (sc, s, rnd), L in sorted(steps.items()):
    runs.setdefault((sc, s), []).append(sorted(L, key=lambda r: r["offered_rate"]))
servers = ["aoba", "prosody", "ejabberd"]
names = {"aoba": "Aoba", "prosody": "Prosody", "ejabberd": "ejabberd"}

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None

def ok(step):  # the same rule as held() in the script
    failed = step["login"]["failed"]
    return (step["latency_ms"]["p99"] <= bound and step["lost"] == 0 and step["errors"] - failed == 0
            and failed <= 0.01 * step["sessions"] and step["delivered"] > 0)

def fig(sc, s, get):
    return med([get(r) for r in runs.get((sc, s), [])])

def pick(sc, s):
    """Chat/MUC: per round, the highest offered rate held (0 if none). The lower median of
    these over rounds is the rate reported (an offered rate that was really run); the other
    figures are medians over the rounds' steps at that rate. Returns (rate, steps, mark)."""
    rounds = runs.get((sc, s), [])
    if not rounds:
        return None, [], ""
    best = [max([st["offered_rate"] for st in L if ok(st)], default=0.0) for L in rounds]
    rate = statistics.median_low(best)
    mark = ""
    if rate == 0.0:
        rate = min(st["offered_rate"] for L in rounds for st in L)
        mark = "none held, at the lowest rate: "
    elif all(len(L) == sum(ok(st) for st in L) for L in rounds):
        mark = "≥ "  # every rate of every round held: the list (or the client) was the limit
    at = [st for L in rounds for st in L if st["offered_rate"] == rate]
    return rate, at, mark

def fmt(v, unit=""):
    if v is None:
        return "–"
    if abs(v) >= 100:
        return f"{v:,.0f}{unit}"
    return f"{v:.3g}{unit}"

def ratio(a, b):
    if a is None or b is None or b == 0:
        return "–"
    x = a / b
    return f"{x:,.0f}×" if x >= 100 else f"{x:.3g}×"

rows = []
def row(label, vals, note=""):
    rows.append((label, vals, note))

# login
row("logins/s achieved (higher is better)",
    {s: fig("login", s, lambda r: r["login"]["per_sec"]) for s in servers})
row("logins per server-core-second", {s: fig("login", s, lambda r: r["per_server_core_sec"]) for s in servers})
row("login latency p99, ms (lower is better)", {s: fig("login", s, lambda r: r["login"]["latency_ms"]["p99"]) for s in servers})
def failed_logins(s):
    f = a = 0
    for (sc, srv), L in runs.items():
        if srv != s:
            continue
        for r in L:
            for x in (r if isinstance(r, list) else [r]):
                f += x["login"]["failed"]
                a += x["login"]["attempted"]
    return f"{f:,} of {a:,}" if a else "–"
row("failed logins, all runs (failures do not count as held sessions)", {s: failed_logins(s) for s in servers})
row("bytes per idle session (fresh server; lower is better)",
    {s: fig("hold", s, lambda r: r.get("bytes_per_session")) for s in servers})
notes = {}
for sc, what in (("chat", "msg"), ("muc", "deliveries")):
    label = "chat" if sc == "chat" else "MUC"
    hi, pc, p99, cl = {}, {}, {}, {}
    for s in servers:
        if sc == "muc" and s == "aoba" and not aoba_muc:
            hi[s] = pc[s] = p99[s] = cl[s] = "pending issue 3"
            continue
        rate, at, mark = pick(sc, s)
        if rate is None:
            hi[s] = pc[s] = p99[s] = cl[s] = None
            continue
        hi[s] = (med([st["delivered_per_sec"] for st in at]), mark)
        pc[s] = med([st.get("per_server_core_sec") for st in at])
        p99[s] = med([st["latency_ms"]["p99"] for st in at])
        cl[s] = med([st["client_cpu_s"] / st["server_cpu_s"] if st.get("server_cpu_s") else None for st in at])
    row(f"{label}: highest rate held, {what}/s (p99 ≤ {bound:g} ms, 0 lost)", hi)
    row(f"{label}: {what} per server-core-second at that rate", pc)
    row(f"{label}: p99 ms at that rate (lower is better)", p99)
    row(f"{label}: client CPU s / server CPU s at that rate", cl)

def cell(v):
    if isinstance(v, str):
        return v
    if isinstance(v, tuple):
        val, mark = v
        return (mark + fmt(val)).strip() if val else mark.strip() or "–"
    return fmt(v)

def num(v):
    if isinstance(v, tuple):
        return v[0] or None
    return v if isinstance(v, (int, float)) else None

print("| figure | Aoba | Prosody | ejabberd | Aoba/Prosody | Aoba/ejabberd |")
print("|---|---:|---:|---:|---:|---:|")
for label, vals, _ in rows:
    a = num(vals["aoba"])
    print(f"| {label} | {cell(vals['aoba'])} | {cell(vals['prosody'])} | {cell(vals['ejabberd'])} "
          f"| {ratio(a, num(vals['prosody']))} | {ratio(a, num(vals['ejabberd']))} |")
if not aoba_muc:
    print("| Aoba MUC: pending issue 3 | | | | | |")
rounds = max((len(v) for v in runs.values()), default=0)
print()
print(f"{rounds} round(s); medians over rounds. Chat and MUC: each server steps up its own list of "
      f"offered rates until a step is not held (p99 > {bound:g} ms, a loss, an error after login, or over "
      "1 % failed logins); the rate shown is the lower median over rounds of each round's highest "
      "rate held, and the other rows are medians over the rounds' steps at that rate. "
      "\"≥\": every rate of the list held in every round, so the list (or the load generator) was "
      "the limit. \"none held\": even the lowest rate failed.")

# details: every step, median per offered rate
print("\n<details><summary>every step (medians over rounds per offered rate)</summary>\n")
print("| scenario | server | offered/s | rounds | delivered/s | p50 ms | p99 ms | lost | errors (of which failed logins) | per server-core-s | server CPU s | client CPU s |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for sc in ("chat", "muc"):
    for s in servers:
        by = {}
        for steps in runs.get((sc, s), []):
            for st in steps:
                by.setdefault(st["offered_rate"], []).append(st)
        for rate in sorted(by):
            L = by[rate]
            g = lambda k: med([x.get(k) for x in L])
            errs = ", ".join(f"{x['errors']} ({x['login']['failed']})" for x in L)
            print(f"| {sc} | {names[s]} | {fmt(rate)} | {len(L)} | {fmt(g('delivered_per_sec'))} | "
                  f"{fmt(med([x['latency_ms']['p50'] for x in L]))} | {fmt(med([x['latency_ms']['p99'] for x in L]))} | "
                  f"{fmt(g('lost'))} | {errs} | {fmt(g('per_server_core_sec'))} | "
                  f"{fmt(g('server_cpu_s'))} | {fmt(g('client_cpu_s'))} |")
print()
for sc in ("login", "hold"):
    for s in servers:
        for i, r in enumerate(runs.get((sc, s), []), 1):
            extra = (f"logins/s {fmt(r['login']['per_sec'])}, failed {r['login']['failed']}"
                     if sc == "login" else
                     f"held {r.get('held_sessions')}, bytes/session {fmt(r.get('bytes_per_session'))}")
            print(f"- {sc} {names[s]} round {i}: {r['sessions']} sessions, {extra}, "
                  f"server CPU {fmt(r.get('server_cpu_s'))} s, client CPU {fmt(r.get('client_cpu_s'))} s")
print("\n</details>")
PY

{
  echo
  echo '```'
  cat "$OUT/meta.txt"
  echo '```'
} >>"$OUT/table.md"
# the one table on stdout
sed -n '/^| figure/,/^$/p' "$OUT/table.md"
cat "$OUT/meta.txt"
}

if [ "${TABLE_ONLY:-0}" = 1 ]; then # only rebuild the table of an existing run dir
  make_table
  exit 0
fi
[ "$AOBA_MUC" = 1 ] || MUC_RATES_AOBA="" # no MUC in Aoba yet (issue 3)
case " $SERVERS " in *" prosody "* | *" ejabberd "*) install_peers ;; esac
if [ "$BUILD" = 1 ]; then
  log "building Aoba and aoba-loadtest (release) in $AOBA_SRC, target $TARGET"
  CARGO_TARGET_DIR=$TARGET nice -n 10 cargo build --release --workspace --manifest-path "$AOBA_SRC/Cargo.toml" \
    >"$OUT/logs/build.log" 2>&1 || die "build failed, see $OUT/logs/build.log"
fi
[ -x "$AOBA_BIN" ] && [ -x "$LOADTEST_BIN" ] || die "missing $AOBA_BIN or $LOADTEST_BIN (BUILD=1 builds them)"

{
  echo "date: $(date -Is)"
  echo "command: $(env | grep -E '^(QUICK|ROUNDS|SERVERS|SCENARIOS|(LOGIN|HOLD|CHAT|MUC)_[A-Z_]+|AOBA_MUC|P99_BOUND_MS|MAM|SEED|SERVER_CPU|CLIENT_CPU)=' | sort | tr '\n' ' ')loadtest/compare.sh"
  echo "aoba: $(git -C "$AOBA_SRC" rev-parse --short HEAD 2>/dev/null || cat "$AOBA_SRC/.git-rev" 2>/dev/null || echo unknown)"
  echo "prosody: $(dpkg-query -W -f='${Version}' prosody 2>/dev/null || echo -)"
  echo "ejabberd: $(dpkg-query -W -f='${Version}' ejabberd 2>/dev/null || echo -)"
  echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(free -h | awk '/^Mem:/{print $2}') RAM, Linux $(uname -r)"
  echo "pinning: servers taskset CPU $SERVER_CPU (all threads; Aoba --shards 1), load generator taskset CPU $CLIENT_CPU"
} >"$OUT/meta.txt"
log "run dir $OUT"

for r in $(seq 1 "$ROUNDS"); do
  for sc in $SCENARIOS; do
    for s in $SERVERS; do
      if [ "$sc" = muc ] && [ -z "$(rates muc "$s")" ]; then continue; fi
      start_server "$s" "$(accounts "$sc")"
      run_one "$r" "$sc" "$s"
      stop_server
    done
  done
done

make_table
log "done: $OUT/table.md, JSON in $OUT/r*.json, logs in $OUT/logs"
