#!/usr/bin/env bash
# Work queues side by side: RabbitMQ, NATS JetStream and skiffd, the same
# load against each, one broker at a time alone on the machine.
#
#   RabbitMQ        Debian's rabbitmq-server: a durable quorum queue,
#                   persistent messages, publisher confirms, manual acks,
#                   prefetch (basic.qos) per worker
#   NATS JetStream  Debian's nats-server -js: a work-queue stream with file
#                   storage, a durable pull consumer with explicit acks
#   skiffd          the release build, --fsync always, `skiff bench queue`
#
# The load: QC_RECORDS records of 100 bytes published (each confirmed),
# then QC_WORKERS workers (each its own connection) take and acknowledge
# every record; every QC_NACK_EVERYth record is nacked once (redelivered at
# once) and timed until it comes back. RabbitMQ and NATS are driven by
# benches/queue-compare (lapin, async-nats; its own cargo project, outside
# the workspace's build), skiff by `skiff bench queue`.
#
# Not part of CI. Installs rabbitmq-server and nats-server with apt-get if
# missing (as root, or with sudo). Usage:
#   benches/queue-compare.sh [all|rabbitmq|nats|skiff]   (default all)
# Settings: QC_RECORDS (default 200000), QC_WORKERS (4), QC_PREFETCH
# (records in flight per worker: prefetch, pull batch, receive size; 100),
# QC_NACK_EVERY (1000). Everything lives in target/queue-compare/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
BENCH_NAME=queue-compare
. benches/lib.sh
out=$root/target/queue-compare
records=${QC_RECORDS:-200000}
workers=${QC_WORKERS:-4}
prefetch=${QC_PREFETCH:-100}
nack_every=${QC_NACK_EVERY:-1000}
size=100
# Bound on a broker coming up (RabbitMQ takes several seconds).
start_timeout_s=90
# Bound on one measured run.
run_timeout_s=${QC_RUN_TIMEOUT_S:-900}
what=${1:-all}
broker_pid=
epmd_started=

stop_broker() {
    stop_pid "$broker_pid"
    broker_pid=
}

cleanup() {
    stop_broker
    if [[ -n $epmd_started ]]; then
        epmd -kill >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT

apt_install() {
    local sudo=
    [[ $(id -u) == 0 ]] || sudo=sudo
    echo "queue-compare: installing $* with apt-get"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "$@"
}

need() {
    local cmd=$1 pkg=$2
    command -v "$cmd" >/dev/null 2>&1 || PATH=$PATH:/usr/sbin command -v "$cmd" >/dev/null 2>&1 \
        || apt_install "$pkg"
}

compare_bin() {
    echo "queue-compare: building benches/queue-compare (release)" >&2
    cargo build -q --release --manifest-path benches/queue-compare/Cargo.toml \
        --target-dir "$out/build"
    echo "$out/build/release/queue-compare"
}

run_rabbitmq() {
    need rabbitmq-server rabbitmq-server
    export PATH=$PATH:/usr/sbin
    local bin dir port dist
    bin=$(compare_bin)
    dir=$out/rabbitmq
    rm -rf "$dir" && mkdir -p "$dir"
    echo "[]." >"$dir/enabled_plugins"
    # Debian's rabbitmq-server, started as root, runs the node as the
    # rabbitmq user: it must own its directories.
    if [[ $(id -u) == 0 ]] && id rabbitmq >/dev/null 2>&1; then
        chown -R rabbitmq:rabbitmq "$dir"
    fi
    port=$(free_port)
    dist=$(free_port)
    pgrep -x epmd >/dev/null || epmd_started=1
    RABBITMQ_NODENAME=skiffqc@localhost RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
        RABBITMQ_NODE_PORT=$port RABBITMQ_DIST_PORT=$dist \
        RABBITMQ_MNESIA_BASE=$dir/mnesia RABBITMQ_LOG_BASE=$dir/log \
        RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins \
        RABBITMQ_FEATURE_FLAGS_FILE=$dir/feature_flags \
        RABBITMQ_PLUGINS_EXPAND_DIR=$dir/plugins-expand \
        RABBITMQ_PID_FILE=$dir/rabbitmq.pid ERL_CRASH_DUMP=$dir/erl_crash.dump \
        rabbitmq-server >"$dir/server.log" 2>&1 &
    broker_pid=$!
    wait_port "$port" "$broker_pid" "$dir/server.log" "$start_timeout_s"
    echo "queue-compare: RabbitMQ $(dpkg-query -W -f='${Version}' rabbitmq-server) on 127.0.0.1:$port"
    timeout "$run_timeout_s" "$bin" rabbitmq "amqp://guest:guest@127.0.0.1:$port/%2f" \
        "$records" "$workers" "$size" "$prefetch" "$nack_every" | tee "$out/result-rabbitmq.json"
    # The node runs as a child of the wrapper (as the rabbitmq user) and
    # outlives a signal to it: stop it by name first.
    rabbitmqctl -n skiffqc@localhost stop >/dev/null 2>&1 || true
    stop_broker
}

run_nats() {
    need nats-server nats-server
    export PATH=$PATH:/usr/sbin
    local bin dir port
    bin=$(compare_bin)
    dir=$out/nats
    rm -rf "$dir" && mkdir -p "$dir"
    port=$(free_port)
    nats-server -js -a 127.0.0.1 -p "$port" -sd "$dir/store" >"$dir/server.log" 2>&1 &
    broker_pid=$!
    wait_port "$port" "$broker_pid" "$dir/server.log" "$start_timeout_s"
    echo "queue-compare: $(nats-server --version) on 127.0.0.1:$port"
    timeout "$run_timeout_s" "$bin" nats "nats://127.0.0.1:$port" \
        "$records" "$workers" "$size" "$prefetch" "$nack_every" | tee "$out/result-nats.json"
    stop_broker
}

run_skiff() {
    local dir port
    echo "queue-compare: building skiffd and skiff (release)"
    cargo build -q --release -p skiff-broker --bin skiffd -p skiff-cli --bin skiff
    dir=$out/skiff
    rm -rf "$dir" && mkdir -p "$dir"
    port=$(free_port)
    target/release/skiffd --data-dir "$dir/data" --listen "127.0.0.1:$port" --fsync always \
        >"$dir/skiffd.log" 2>&1 &
    broker_pid=$!
    wait_port "$port" "$broker_pid" "$dir/skiffd.log" "$start_timeout_s"
    echo "queue-compare: skiffd on 127.0.0.1:$port"
    timeout "$run_timeout_s" target/release/skiff --broker "127.0.0.1:$port" bench queue \
        --topic compare --messages "$records" --workers "$workers" --size "$size" \
        --receive-records "$prefetch" --nack-every "$nack_every" --json \
        | tee "$out/result-skiff.json"
    stop_broker
}

table() {
    python3 - "$out" <<'EOF'
import json, os, sys
out = sys.argv[1]
print(f"{'BROKER':<16} {'PUBLISH/S':>10} {'ACKED/S':>10} {'REDELIVERY P50 MS':>18} {'P99 MS':>8}")
for name in ["rabbitmq", "nats", "skiff"]:
    path = os.path.join(out, f"result-{name}.json")
    if not os.path.exists(path):
        continue
    r = json.load(open(path))
    if name == "skiff":
        run = r["runs"][0]
        pub, acked, red = r["produced_per_s"], run["acked_per_s"], run["redelivery_ms"]
    else:
        pub, acked, red = r["publish_per_s"], r["acked_per_s"], r["redelivery_ms"]
    print(f"{name:<16} {pub:10.0f} {acked:10.0f} {red['p50']:18.2f} {red['p99']:8.2f}")
EOF
}

mkdir -p "$out"
case $what in
    all) run_rabbitmq; run_nats; run_skiff ;;
    rabbitmq) run_rabbitmq ;;
    nats) run_nats ;;
    skiff) run_skiff ;;
    *) die "unknown target $what (all, rabbitmq, nats or skiff)" ;;
esac
table
