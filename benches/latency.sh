#!/usr/bin/env bash
# benches/latency.sh: issue #18's latency comparison. Not part of CI.
#
# Builds release, then runs RUNS alternating rounds of the modes below, at
# RATE msg/s of SIZE-byte messages, 1 producer, 1 consumer, 1 partition,
# for DURATION seconds:
#   echo    skiff bench e2e --echo: the same bench against an in-process
#           echo of skiff's framing (no broker): the floor the bench and
#           loopback set
#   never   skiffd --fsync never  (fresh broker per run), skiff bench e2e
#           --metrics (the broker's stage breakdown is printed too)
#   always  skiffd --fsync always (fresh broker per run), the same
#   fsync   skiff bench fsync: the bare append+fdatasync loop, FSYNC_SIZE
#           bytes at FSYNC_RATE syncs/s, in BENCH_DIR (the filesystem the
#           brokers' data directories are on)
#   prezero the same loop overwriting bytes it zeroed and synced first
#           (skiff bench fsync --prezero): what skiffd --fsync always
#           pays per sync inside its runway; not a target
#   nats    Debian's nats-server -js, file-backed stream, driven by
#           benches/nats-e2e at the same rate and size
# CPU steal is measured over every run; a run with more than STEAL_MAX_PCT
# percent is discarded and repeated, at most RETRIES_MAX times per run.
# Prints per mode the median and spread (min-max) of p50/p99/p99.9, then
# the issue's targets, computed from the fsync loop's medians, as met or
# missed.
#
# Knobs (environment): RUNS (5), DURATION (6), RATE (50000), SIZE (100),
# FSYNC_SIZE (2500), FSYNC_RATE (2000), PACING_TICK_US (100, the e2e
# producer's shortest pacing sleep), STEAL_MAX_PCT (5), RETRIES_MAX (3),
# MODES ("echo never always fsync prezero nats"), CARGO_TARGET_DIR (target), BENCH_DIR
# (a fresh temp dir, deleted at exit; a BENCH_DIR you give is kept, only
# what the script wrote in it is removed). Needs jq; installs nats-server
# with apt-get if missing.
set -euo pipefail

RUNS=${RUNS:-5}
DURATION=${DURATION:-6}
RATE=${RATE:-50000}
SIZE=${SIZE:-100}
FSYNC_SIZE=${FSYNC_SIZE:-2500}
FSYNC_RATE=${FSYNC_RATE:-2000}
STEAL_MAX_PCT=${STEAL_MAX_PCT:-5}
RETRIES_MAX=${RETRIES_MAX:-3}
PACING_TICK_US=${PACING_TICK_US:-100}
MODES=${MODES:-echo never always fsync prezero nats}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BENCH_NAME=latency.sh
. "$ROOT/benches/lib.sh"
command -v jq >/dev/null || die "needs jq"
if [ -n "${BENCH_DIR:-}" ]; then
    OWN_DIR=
    mkdir -p "$BENCH_DIR"
else
    BENCH_DIR=$(mktemp -d "${TMPDIR:-/tmp}/skiff-latency.XXXXXX")
    OWN_DIR=1
fi
WORK=$BENCH_DIR/latency
mkdir -p "$WORK/results"

# The one server running (a run's skiffd or nats-server), if any: only it
# is stopped at exit, never a PID already stopped and perhaps reused.
SERVER_PID=
cleanup() {
    stop_pid "$SERVER_PID"
    if [ -n "$OWN_DIR" ]; then rm -rf "$BENCH_DIR"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

echo "$BENCH_NAME: building release" >&2
(cd "$ROOT" && cargo build --release -q -p skiff-broker -p skiff-cli)
SKIFFD=$TARGET/release/skiffd
SKIFF=$TARGET/release/skiff
case " $MODES " in
*" nats "*)
    need nats-server nats-server
    NATS_SERVER=$(PATH=$PATH:/usr/sbin command -v nats-server)
    cargo build -q --release --manifest-path "$ROOT/benches/nats-e2e/Cargo.toml" \
        --target-dir "$TARGET/nats-e2e"
    NATS_E2E=$TARGET/nats-e2e/release/nats-e2e
    ;;
esac

# run_skiff FSYNC DIR: a fresh skiffd with --fsync FSYNC, one e2e run.
run_skiff() {
    local fsync=$1 dir=$2
    mkdir -p "$dir/data"
    "$SKIFFD" --data-dir "$dir/data" --listen 127.0.0.1:0 --fsync "$fsync" \
        --metrics-listen 127.0.0.1:0 >"$dir/stdout" 2>"$dir/stderr" &
    SERVER_PID=$!
    local addr metrics
    addr=$(skiffd_addr "$dir")
    metrics=$(skiffd_addr "$dir" metrics)
    "$SKIFF" --broker "$addr" bench e2e --topic e --rate "$RATE" --duration "$DURATION" \
        --size "$SIZE" --pacing-tick-us "$PACING_TICK_US" --metrics "$metrics" --json
    stop_pid "$SERVER_PID"
    SERVER_PID=
}

# run_nats DIR: a fresh nats-server -js, one nats-e2e run.
run_nats() {
    local dir=$1 port
    mkdir -p "$dir"
    port=$(free_port)
    "$NATS_SERVER" -js -a 127.0.0.1 -p "$port" -sd "$dir/store" >"$dir/server.log" 2>&1 &
    SERVER_PID=$!
    wait_port "$port" "$SERVER_PID" "$dir/server.log"
    "$NATS_E2E" "nats://127.0.0.1:$port" "$RATE" "$DURATION" "$SIZE"
    stop_pid "$SERVER_PID"
    SERVER_PID=
}

# run_mode MODE DIR: one run of MODE, its JSON summary on stdout.
run_mode() {
    case $1 in
    never | always) run_skiff "$1" "$2" ;;
    echo)
        "$SKIFF" bench e2e --echo --topic e --rate "$RATE" --duration "$DURATION" \
            --size "$SIZE" --pacing-tick-us "$PACING_TICK_US" --json
        ;;
    fsync | prezero)
        local prezero=()
        [ "$1" = prezero ] && prezero=(--prezero)
        mkdir -p "$2"
        "$SKIFF" bench fsync --dir "$2" --size "$FSYNC_SIZE" --rate "$FSYNC_RATE" \
            --duration "$DURATION" "${prezero[@]}" --json
        ;;
    nats) run_nats "$2" ;;
    *) die "unknown mode $1 (echo, never, always, fsync, prezero or nats)" ;;
    esac
}

# measured MODE RUN: runs MODE until a run has at most STEAL_MAX_PCT steal
# (at most RETRIES_MAX repeats); appends its summary, with "steal_pct",
# to results/MODE.
measured() {
    local mode=$1 run=$2 try before after steal out
    for try in $(seq 0 "$RETRIES_MAX"); do
        out=$WORK/$mode-$run-$try
        before=$(cpu_ticks)
        run_mode "$mode" "$out" >"$out.json"
        after=$(cpu_ticks)
        steal=$(steal_pct "$before" "$after")
        rm -rf "$out"
        if [ "$steal" -le "$STEAL_MAX_PCT" ]; then
            jq -c --argjson s "$steal" '. + {steal_pct: $s}' "$out.json" >>"$WORK/results/$mode"
            echo "$BENCH_NAME: $mode run $run: p50 $(jq .latency_ms.p50 "$out.json")" \
                "p99 $(jq .latency_ms.p99 "$out.json") p99.9 $(jq .latency_ms.p99_9 "$out.json") ms," \
                "steal $steal%" >&2
            return 0
        fi
        echo "$BENCH_NAME: $mode run $run discarded: steal $steal% > $STEAL_MAX_PCT%" >&2
    done
    echo "$BENCH_NAME: $mode run $run: steal above $STEAL_MAX_PCT% in $((RETRIES_MAX + 1)) tries; left out" >&2
}

echo "$BENCH_NAME: $RUNS rounds of: $MODES; load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for run in $(seq "$RUNS"); do
    for mode in $MODES; do
        measured "$mode" "$run"
    done
done

# stat MODE JQ WHICH: median, min or max of a field over MODE's kept runs.
stat() {
    local file=$WORK/results/$1
    [ -s "$file" ] || { echo "-"; return; }
    case $3 in
    median) jq -r "$2" "$file" | median ;;
    min) jq -r "$2" "$file" | sort -g | head -1 ;;
    max) jq -r "$2" "$file" | sort -g | tail -1 ;;
    esac
}
spread() { echo "$(stat "$1" "$2" median) ($(stat "$1" "$2" min)-$(stat "$1" "$2" max))"; }

echo
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) CPUs"
printf '%-8s | %4s | %-22s | %-22s | %-22s | %s\n' mode runs "p50 ms med (min-max)" \
    "p99 ms med (min-max)" "p99.9 ms med (min-max)" "steal % max"
for mode in $MODES; do
    kept=0
    [ -s "$WORK/results/$mode" ] && kept=$(wc -l <"$WORK/results/$mode")
    printf '%-8s | %4s | %-22s | %-22s | %-22s | %s\n' "$mode" "$kept" \
        "$(spread "$mode" .latency_ms.p50)" "$(spread "$mode" .latency_ms.p99)" \
        "$(spread "$mode" .latency_ms.p99_9)" "$(stat "$mode" .steal_pct max)"
done
for mode in echo never always; do
    [ -s "$WORK/results/$mode" ] || continue
    echo "skiff $mode, medians: send delay p50 $(stat $mode .send_delay_ms.p50 median)" \
        "p99.9 $(stat $mode .send_delay_ms.p99_9 median) ms; broker stages p50/p99 ms:" \
        "$(for s in produce_queue produce_commit fetch_wake fetch_read; do
            printf '%s %s/%s ' "$s" "$(stat $mode ".broker_stages_ms.$s.p50 // \"-\"" median)" \
                "$(stat $mode ".broker_stages_ms.$s.p99 // \"-\"" median)"
        done)"
done

# target LABEL MEASURED LIMIT [FLOOR]: one line, met when MEASURED <= LIMIT;
# FLOOR is the same figure from the echo (the bench and loopback with no
# broker): a target below it is out of the broker's reach in this run.
target() {
    local verdict
    if [ "$2" = "-" ] || [ "$3" = "-" ]; then
        verdict="not measured"
    else
        verdict=$(awk -v m="$2" -v l="$3" 'BEGIN { print (m <= l) ? "met" : "missed" }')
    fi
    if [ -n "${4:-}" ] && [ "$4" != "-" ]; then
        verdict="$verdict (echo floor $4$(awk -v f="$4" -v l="$3" \
            'BEGIN { if (f > l) print ": the target is below it" }'))"
    fi
    printf '  %-44s %10s <= %-10s %s\n' "$1" "$2" "$3" "$verdict"
}
plus() { [ "$1" = "-" ] && echo "-" || awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a + b }'; }
twice() { [ "$1" = "-" ] && echo "-" || awk -v a="$1" 'BEGIN { printf "%.3f", 2 * a }'; }

echo
echo "issue #18 targets (ms; fsync loop medians: p50 $(stat fsync .latency_ms.p50 median)," \
    "p99 $(stat fsync .latency_ms.p99 median), p99.9 $(stat fsync .latency_ms.p99_9 median)):"
slow=$(stat fsync .syncs_per_s min)
if [ "$slow" != "-" ] && awk -v s="$slow" -v r="$FSYNC_RATE" 'BEGIN { exit !(s < 0.95 * r) }'; then
    echo "  note: a loop run held only $slow of $FSYNC_RATE syncs/s (the disk fell behind), so"
    echo "  its latencies include that backlog and the 'always' targets below are not meaningful"
fi
target "always p50 <= loop p50 + 0.25" "$(stat always .latency_ms.p50 median)" \
    "$(plus "$(stat fsync .latency_ms.p50 median)" 0.25)"
target "always p99 <= loop p99 + 0.6" "$(stat always .latency_ms.p99 median)" \
    "$(plus "$(stat fsync .latency_ms.p99 median)" 0.6)"
target "always p99.9 <= loop p99.9 + 1.5" "$(stat always .latency_ms.p99_9 median)" \
    "$(plus "$(stat fsync .latency_ms.p99_9 median)" 1.5)"
target "never p50 <= 0.15" "$(stat never .latency_ms.p50 median)" 0.15 \
    "$(stat echo .latency_ms.p50 median)"
target "never p99 <= 0.5" "$(stat never .latency_ms.p99 median)" 0.5 \
    "$(stat echo .latency_ms.p99 median)"
target "never p99.9 <= 2" "$(stat never .latency_ms.p99_9 median)" 2 \
    "$(stat echo .latency_ms.p99_9 median)"
for mode in never always; do
    target "$mode worst kept p99 <= 2x median p99" "$(stat $mode .latency_ms.p99 max)" \
        "$(twice "$(stat $mode .latency_ms.p99 median)")"
done
