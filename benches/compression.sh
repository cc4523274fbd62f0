#!/usr/bin/env bash
# benches/compression.sh: what batch compression buys, measured end to end
# with `skiff bench` against a real `skiffd --fsync always`. Not part of CI.
#
# Builds release, starts skiffd on a temp dir (--listen 127.0.0.1:0), and for
# each codec (none, lz4, zstd) runs, one run each:
#   skiff bench produce --topic c-CODEC --payload json --size SIZE \
#       --batch BATCH --messages MESSAGES --compression CODEC --json
#   skiff bench consume --topic c-CODEC --json
# and prints one table: messages/s, logical (payload) MB/s, bytes on disk
# per message (the topic's segment bytes / its messages, from
# `topic describe`, and `du` of its directory), payload/disk ratio, and CPU
# per million messages: the broker's (utime+stime from /proc/PID/stat,
# before/after) and the bench process's (`/usr/bin/time -f`). Each bench's
# JSON summary is kept in $BENCH_DIR/results.
#
# Knobs (environment): MESSAGES (1000000), SIZE (500), BATCH (1000),
# CODECS ("none lz4 zstd"), CARGO_TARGET_DIR (target), BENCH_DIR (a fresh
# temp dir, deleted at exit; a BENCH_DIR you give is kept).
set -euo pipefail

MESSAGES=${MESSAGES:-1000000}
SIZE=${SIZE:-500}
BATCH=${BATCH:-1000}
CODECS=${CODECS:-none lz4 zstd}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BENCH_NAME=compression.sh
. "$ROOT/benches/lib.sh"
if [ -n "${BENCH_DIR:-}" ]; then
    OWN_DIR=
    mkdir -p "$BENCH_DIR"
else
    BENCH_DIR=$(mktemp -d "${TMPDIR:-/tmp}/skiff-compression.XXXXXX")
    OWN_DIR=1
fi
command -v jq >/dev/null || { echo "compression.sh needs jq" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "compression.sh needs /usr/bin/time" >&2; exit 1; }

(cd "$ROOT" && cargo build --release -q -p skiff-broker -p skiff-cli)
SKIFFD=$TARGET/release/skiffd
SKIFF=$TARGET/release/skiff

BROKER_PID=
cleanup() {
    stop_pid "$BROKER_PID"
    if [ -n "$OWN_DIR" ]; then rm -rf "$BENCH_DIR"; else rm -rf "$BENCH_DIR/data"; fi
}
trap cleanup EXIT

mkdir -p "$BENCH_DIR/data" "$BENCH_DIR/results"
"$SKIFFD" --data-dir "$BENCH_DIR/data" --listen 127.0.0.1:0 --fsync always \
    >"$BENCH_DIR/stdout" 2>"$BENCH_DIR/stderr" &
BROKER_PID=$!
ADDR=$(skiffd_addr "$BENCH_DIR")

TICKS=$(getconf CLK_TCK)
# broker CPU seconds so far (utime + stime, fields 14 and 15 of stat)
broker_cpu() { awk -v t="$TICKS" '{ printf "%.3f", ($14 + $15) / t }' "/proc/$BROKER_PID/stat"; }

# bench NAME ARGS...: runs `skiff bench ARGS --json`, keeps the summary in
# results/NAME.json and "broker_cpu_s bench_cpu_s" in results/NAME.cpu
bench() {
    local name=$1
    shift
    local before after
    before=$(broker_cpu)
    /usr/bin/time -f "%U %S" -o "$BENCH_DIR/results/$name.time" \
        "$SKIFF" --broker "$ADDR" bench "$@" --json >"$BENCH_DIR/results/$name.json"
    after=$(broker_cpu)
    awk -v b="$before" -v a="$after" '{ printf "%.3f %.3f\n", a - b, $1 + $2 }' \
        "$BENCH_DIR/results/$name.time" >"$BENCH_DIR/results/$name.cpu"
}

row() {
    local name=$1 mode=$2 codec=$3 du_bytes=$4
    local j=$BENCH_DIR/results/$name.json
    read -r bcpu ccpu <"$BENCH_DIR/results/$name.cpu"
    local m
    m=$(jq -r .messages "$j")
    printf '| %-7s | %-4s | %10.0f | %7.1f | %9.1f | %9.1f | %6.2f | %6.2f | %6.2f |\n' \
        "$mode" "$codec" "$(jq -r .msgs_per_s "$j")" "$(jq -r .mb_per_s "$j")" \
        "$(jq -r .disk_bytes_per_message "$j")" "$(awk -v d="$du_bytes" -v m="$m" 'BEGIN { print d / m }')" \
        "$(jq -r '.bytes / .disk_bytes' "$j")" \
        "$(awk -v c="$bcpu" -v m="$m" 'BEGIN { print c * 1e6 / m }')" \
        "$(awk -v c="$ccpu" -v m="$m" 'BEGIN { print c * 1e6 / m }')"
}

# total and steal CPU ticks so far (all CPUs, /proc/stat): steal is time
# this VM's CPUs were ready but the host ran something else.
cpu_ticks() {
    local _cpu user nice sys idle iowait irq softirq steal _rest
    read -r _cpu user nice sys idle iowait irq softirq steal _rest </proc/stat
    echo "$((user + nice + sys + idle + iowait + irq + softirq + steal)) $steal $((idle + iowait))"
}
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
TICKS_BEFORE=$(cpu_ticks)
ROWS=()
for codec in $CODECS; do
    echo "produce + consume, $codec" >&2
    bench "produce-$codec" produce --topic "c-$codec" --payload json --size "$SIZE" \
        --batch "$BATCH" --messages "$MESSAGES" --compression "$codec"
    bench "consume-$codec" consume --topic "c-$codec"
    du_bytes=$(du -sb "$BENCH_DIR/data/topics/c-$codec" | awk '{print $1}')
    ROWS+=("$(row "produce-$codec" produce "$codec" "$du_bytes")")
    ROWS+=("$(row "consume-$codec" consume "$codec" "$du_bytes")")
done

TICKS_AFTER=$(cpu_ticks)
echo
echo "load average before: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "$TICKS_BEFORE $TICKS_AFTER" | awk '{ t = $4 - $1; printf "over the runs: steal %.0f%%, idle %.0f%% of all CPU time\n", 100 * ($5 - $2) / t, 100 * ($6 - $3) / t }'
echo "fsync always, 1 producer, 1 partition, $MESSAGES JSON events of $SIZE bytes, batches of $BATCH"
echo '| mode    | codec |   msgs/s | logical MB/s | disk B/msg | du B/msg | payload/disk | broker CPU s/M msgs | bench CPU s/M msgs |'
echo '|---|---|---|---|---|---|---|---|---|'
for r in "${ROWS[@]}"; do echo "$r"; done
