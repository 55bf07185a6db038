#!/usr/bin/env bash
# Runs each fuzz target for SECONDS, one after the other (one libFuzzer process at a time),
# on a corpus seeded from the tests, and prints executions, exec/s, corpus size and
# crashes per target. Bounded in time: every run stops by itself after SECONDS (a hard
# `timeout` backs that up), plus one build at the start.
#
#   fuzz/run.sh SECONDS [TARGET...]     targets: websocket http stanza jid ftw framer (default: all)
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`) and python3. Builds with the stable
# toolchain through RUSTC_BOOTSTRAP=1 (cargo-fuzz passes -Zsanitizer=address). Set
# FUZZ_SANITIZER=none to build without AddressSanitizer (about 2x faster, and the Rust
# parsers have no unsafe code of their own). Logs: fuzz/logs/<target>.log; crashing
# inputs: fuzz/artifacts/<target>/; grown corpora: fuzz/corpus/<target>/.
set -uo pipefail

secs=${1:-}
if ! [[ "$secs" =~ ^[0-9]+$ ]] || [ "$secs" -eq 0 ]; then
    echo "usage: $0 SECONDS [TARGET...]" >&2
    exit 2
fi
shift
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(websocket http stanza jid ftw framer)

cd "$(dirname "$0")"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "cargo-fuzz not found: cargo install cargo-fuzz" >&2
    exit 2
fi
export RUSTC_BOOTSTRAP=1
san=${FUZZ_SANITIZER:-address}

python3 seeds.py || exit 1
echo "building (sanitizer: $san)..." >&2
# Built once, then the binaries are run directly: `cargo fuzz run` would rebuild whenever
# src/ changed meanwhile, and the build would eat into the time budget.
cargo fuzz build -s "$san" >logs.build 2>&1 || { cat logs.build >&2; exit 1; }
rm -f logs.build
bin=target/$(rustc -vV | sed -n 's/^host: //p')/release

declare -A max_len=([websocket]=8192 [http]=4096 [stanza]=8192 [jid]=4096 [ftw]=4096)
mkdir -p logs
date -u +"# %Y-%m-%dT%H:%M:%SZ  $0 $secs ${targets[*]}  (sanitizer: $san, $(rustc --version))"
printf '%-10s %12s %8s %8s %8s  %s\n' target executions exec/s corpus crashes artifacts
failed=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    marker=$(mktemp)
    dict=
    [ -f "dict/$t.dict" ] && dict="-dict=dict/$t.dict"
    # -max_total_time stops libFuzzer; `timeout` is the backstop (SIGINT first, then KILL).
    timeout --signal=INT --kill-after=30 $((secs + 120)) \
        "$bin/$t" -artifact_prefix="artifacts/$t/" -max_total_time="$secs" \
        -print_final_stats=1 $dict -max_len="${max_len[$t]:-4096}" -timeout=10 \
        -rss_limit_mb=2048 "corpus/$t" "seeds/$t" >"logs/$t.log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "logs/$t.log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "logs/$t.log" | tail -1)
    if [ -z "$execs" ]; then
        # Stopped by a crash: take the last status line (#N ... exec/s: R).
        last=$(grep -E '^#[0-9]+' "logs/$t.log" | tail -1)
        execs=$(sed -E 's/^#([0-9]+).*/\1/' <<<"$last")
        rate=$(sed -nE 's/.*exec\/s: ([0-9]+).*/\1/p' <<<"$last")
    fi
    corpus=$(find "corpus/$t" -type f | wc -l)
    new=$(find "artifacts/$t" -type f -newer "$marker" | sort)
    crashes=$(grep -c . <<<"$new")
    rm -f "$marker"
    printf '%-10s %12s %8s %8s %8s  %s\n' "$t" "${execs:-?}" "${rate:-?}" "$corpus" "$crashes" \
        "$(tr '\n' ' ' <<<"$new")"
    if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then
        failed=1
        grep -E 'panicked at|ERROR: libFuzzer|SUMMARY' "logs/$t.log" | head -5 | sed 's/^/    /'
    fi
done
exit $failed
