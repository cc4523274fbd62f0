#!/usr/bin/env bash
# Apache Kafka and skiffd side by side, measured with Kafka's own tools.
#
# Runs one broker after the other on 127.0.0.1 (free ports), each alone on
# the machine while measured:
#   Apache Kafka 4.x  a single KRaft node from Maven Central jars
#                     (benches/kafka-compare/pom.xml), -Xms1g -Xmx1g as its
#                     start script, default settings (no fsync before acks)
#   skiffd            the release build, --fsync always, Kafka listener on
# and against each:
#   ProducerPerformance  100 B and 1 KiB records, acks=all, one partition;
#                        then 8 partitions and 4 producers at once
#   ConsumerPerformance  reads back each one-partition topic
#   EndToEndLatency      100 B and 1 KiB, acks=all, one partition
# then prints a table: messages/s, MB/s, end-to-end p50/p99 (ms), and each
# broker's peak resident memory (VmHWM of /proc/PID/status).
#
# Not part of CI. Usage:
#   benches/kafka-compare.sh [all|kafka|skiff]   (default all)
#   benches/kafka-compare.sh serve-kafka         a Kafka node until Ctrl-C
# Record counts: KC_RECORDS_SMALL (100 B, default 500000),
# KC_RECORDS_LARGE (1 KiB, default 200000), KC_E2E_RECORDS (default 5000).
# Everything lives in target/kafka-compare/ (jars, Maven repository, data, logs).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
BENCH_NAME=kafka-compare
. benches/lib.sh
out=$root/target/kafka-compare
lib=$out/lib
records_small=${KC_RECORDS_SMALL:-500000}
records_large=${KC_RECORDS_LARGE:-200000}
e2e_records=${KC_E2E_RECORDS:-5000}
# Bound on any one tool run (ProducerPerformance of the biggest case takes
# well under a minute on a 2-core machine).
step_timeout_s=${KC_STEP_TIMEOUT_S:-600}
# Bound on a broker coming up.
start_timeout_s=60
what=${1:-all}
# Figures per broker: results-kafka.tsv, results-skiff.tsv (a run of one
# half keeps the other's last figures for the table).
results=
broker_pid=

cleanup() {
    stop_pid "$broker_pid"
}
trap cleanup EXIT

peak_rss_mb() {
    awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"
}

install_kafka() {
    local sum
    sum=$(sha256sum benches/kafka-compare/pom.xml | cut -d' ' -f1)
    if [[ -f $out/lib.stamp && $(cat "$out/lib.stamp") == "$sum" ]]; then
        return 0
    fi
    echo "kafka-compare: fetching Apache Kafka jars (Maven)"
    rm -rf "$lib"
    mvn -q -B -Dmaven.repo.local="$out/m2" -f benches/kafka-compare/pom.xml \
        dependency:copy-dependencies -DoutputDirectory="$lib"
    echo "$sum" >"$out/lib.stamp"
}

java_tool() {
    timeout "$step_timeout_s" java -Dlog4j2.configurationFile="$root/benches/kafka-compare/log4j2.properties" \
        -cp "$lib/*" "$@"
}

start_kafka() {
    local dir=$out/run/kafka
    rm -rf "$dir"
    mkdir -p "$dir/data"
    port=$(free_port)
    local controller_port
    controller_port=$(free_port)
    cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
num.partitions=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
EOF
    local cluster_id
    cluster_id=$(java_tool kafka.tools.StorageTool random-uuid 2>/dev/null)
    java_tool kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/server.properties" --standalone \
        >"$dir/format.log" 2>&1 || die "storage format failed; see $dir/format.log"
    java -Xms1g -Xmx1g -Dlog4j2.configurationFile="$root/benches/kafka-compare/log4j2.properties" \
        -cp "$lib/*" kafka.Kafka "$dir/server.properties" >"$dir/kafka.log" 2>&1 &
    broker_pid=$!
    wait_port "$port" "$broker_pid" "$dir/kafka.log" "$start_timeout_s"
    bootstrap=127.0.0.1:$port
    echo "kafka-compare: Apache Kafka $(basename "$lib"/kafka_2.13-*.jar .jar | sed 's/kafka_2.13-//') on $bootstrap (pid $broker_pid)"
}

start_skiff() {
    local dir=$out/run/skiff
    rm -rf "$dir"
    mkdir -p "$dir/data"
    echo "kafka-compare: building skiffd and skiff (release)"
    cargo build -q --release -p skiff-broker --bin skiffd -p skiff-cli --bin skiff
    port=$(free_port)
    native_port=$(free_port)
    target/release/skiffd --data-dir "$dir/data" --listen "127.0.0.1:$native_port" \
        --kafka-listen "127.0.0.1:$port" --fsync always >"$dir/skiffd.log" 2>&1 &
    broker_pid=$!
    wait_port "$port" "$broker_pid" "$dir/skiffd.log" "$start_timeout_s"
    bootstrap=127.0.0.1:$port
    echo "kafka-compare: skiffd on $bootstrap (native 127.0.0.1:$native_port, pid $broker_pid)"
}

create_topic() {
    local broker=$1 topic=$2 partitions=$3
    if [[ $broker == kafka ]]; then
        java_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$bootstrap" --create \
            --topic "$topic" --partitions "$partitions" --replication-factor 1 >/dev/null
    else
        target/release/skiff --broker "127.0.0.1:$native_port" topic create "$topic" \
            --partitions "$partitions" >/dev/null 2>&1
    fi
}

record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$results"; }

# failed BROKER CASE WHY: a tool run that failed is reported in the table
# as "failed" and the suite goes on (the other cases still measure).
failed() {
    echo "  $2: FAILED: $3" >&2
    record "$1" "$2" result failed
}

# produce BROKER CASE TOPIC RECORDS SIZE PRODUCERS: ProducerPerformance,
# PRODUCERS at once splitting RECORDS; aggregate messages/s = all records
# over the slowest producer's time.
produce() {
    local broker=$1 case=$2 topic=$3 n=$4 size=$5 producers=$6
    local each=$((n / producers)) logs=() pids=()
    for i in $(seq "$producers"); do
        local log=$out/run/$broker-$case-producer-$i.log
        logs+=("$log")
        java_tool org.apache.kafka.tools.ProducerPerformance --topic "$topic" --num-records "$each" \
            --record-size "$size" --throughput -1 \
            --producer-props bootstrap.servers="$bootstrap" acks=all linger.ms=5 >"$log" 2>&1 &
        pids+=($!)
    done
    for i in "${!pids[@]}"; do
        if ! wait "${pids[$i]}"; then
            failed "$broker" "produce $case" "ProducerPerformance failed; see ${logs[$i]}"
            return 0
        fi
    done
    # Last line: "N records sent, R records/sec (M MB/sec), ... latency ..."
    local line rate
    # A producer that gave up on records (delivery timeout) sent fewer.
    rate=$(for log in "${logs[@]}"; do tail -n 1 "$log"; done | awk -v each="$each" -v size="$size" '
        { gsub(/[(,]/, " "); n = $1; r = $4; if (r <= 0 || n != each) exit 1; t = n / r; if (t > slowest) slowest = t; total += n }
        END { printf "%.0f\t%.2f", total / slowest, total * size / slowest / 1048576 }') || {
        failed "$broker" "produce $case" "no summary, or not all $each records sent, in ${logs[*]}"
        return 0
    }
    line=$(tail -n 1 "${logs[0]}")
    echo "  produce $case: $rate (msg/s, MB/s); first producer: $line"
    record "$broker" "produce $case" msgs_per_s "$(cut -f1 <<<"$rate")"
    record "$broker" "produce $case" mb_per_s "$(cut -f2 <<<"$rate")"
}

# consume BROKER CASE TOPIC RECORDS: ConsumerPerformance reads the topic
# from the start; the fetch rates leave out the group join.
consume() {
    local broker=$1 case=$2 topic=$3 n=$4
    local log=$out/run/$broker-$case-consumer.log
    java_tool org.apache.kafka.tools.ConsumerPerformance --bootstrap-server "$bootstrap" --topic "$topic" \
        --num-records "$n" --timeout 60000 --group "perf-$case-$RANDOM" >"$log" 2>&1 || {
        failed "$broker" "consume $case" "ConsumerPerformance failed; see $log"
        return 0
    }
    # Header then one CSV line: start, end, MB, MB/s, nMsg, nMsg/s,
    # rebalance ms, fetch ms, fetch MB/s, fetch nMsg/s.
    local csv
    csv=$(grep -E '^[0-9]{4}-' "$log" | tail -n 1) || {
        failed "$broker" "consume $case" "no ConsumerPerformance summary in $log"
        return 0
    }
    local msgs mb
    if [[ $(awk -F', *' '{ print $5 }' <<<"$csv") != "$n" ]]; then
        failed "$broker" "consume $case" "not all $n records consumed; see $log"
        return 0
    fi
    msgs=$(awk -F', *' '{ printf "%.0f", $10 }' <<<"$csv")
    mb=$(awk -F', *' '{ printf "%.2f", $9 }' <<<"$csv")
    echo "  consume $case: $msgs msg/s, $mb MB/s"
    record "$broker" "consume $case" msgs_per_s "$msgs"
    record "$broker" "consume $case" mb_per_s "$mb"
}

# e2e BROKER CASE TOPIC SIZE: EndToEndLatency, one record at a time,
# produced with acks=all and read back by a consumer.
e2e() {
    local broker=$1 case=$2 topic=$3 size=$4
    local log=$out/run/$broker-$case-e2e.log
    # The tool commits its consumer's offsets after measuring: without a
    # group coordinator that last step fails, the figures above it stand.
    local status=0
    java_tool org.apache.kafka.tools.EndToEndLatency "$bootstrap" "$topic" "$e2e_records" all "$size" \
        >"$log" 2>&1 || status=$?
    # "Avg latency: X ms" and "Percentiles: 50th = A, 99th = B, 99.9th = C"
    # (whole milliseconds)
    local avg p50 p99
    avg=$(sed -nE 's/^Avg latency: ([0-9.]+).*/\1/p' "$log" | tail -n 1)
    p50=$(sed -nE 's/.*50th = ([0-9.]+).*/\1/p' "$log" | tail -n 1)
    p99=$(sed -nE 's/.*99th = ([0-9.]+).*/\1/p' "$log" | tail -n 1)
    if [[ -z $avg || -z $p50 || -z $p99 ]]; then
        failed "$broker" "e2e $case" "no EndToEndLatency summary in $log"
        return 0
    fi
    echo "  e2e $case: avg $avg ms, p50 $p50 ms, p99 $p99 ms"
    if ((status != 0)); then
        echo "  e2e $case: the tool exited $status after its summary: $(tail -n 1 "$log")" >&2
    fi
    record "$broker" "e2e $case" avg_ms "$(printf '%.2f' "$avg")"
    record "$broker" "e2e $case" p50_ms "$p50"
    record "$broker" "e2e $case" p99_ms "$p99"
}

run_suite() {
    local broker=$1
    results=$out/results-$broker.tsv
    : >"$results"
    create_topic "$broker" p1-100b 1
    create_topic "$broker" p1-1k 1
    create_topic "$broker" p8-100b 8
    create_topic "$broker" p8-1k 8
    create_topic "$broker" e2e-100b 1
    create_topic "$broker" e2e-1k 1
    produce "$broker" 1p-100B p1-100b "$records_small" 100 1
    produce "$broker" 1p-1KiB p1-1k "$records_large" 1024 1
    produce "$broker" 8p4x-100B p8-100b "$records_small" 100 4
    produce "$broker" 8p4x-1KiB p8-1k "$records_large" 1024 4
    consume "$broker" 1p-100B p1-100b "$records_small"
    consume "$broker" 1p-1KiB p1-1k "$records_large"
    e2e "$broker" 1p-100B e2e-100b 100
    e2e "$broker" 1p-1KiB e2e-1k 1024
    local rss
    rss=$(peak_rss_mb "$broker_pid")
    echo "  peak RSS: $rss MB"
    record "$broker" "broker" peak_rss_mb "$rss"
    stop_pid "$broker_pid"
    broker_pid=
    # The logs stay; the data (about 1 GB per broker) goes.
    rm -rf "$out/run/$broker/data"
}

print_table() {
    echo
    echo "| case | metric | Apache Kafka | skiff (--fsync always) |"
    echo "| --- | --- | ---: | ---: |"
    awk -F'\t' '
        { key = $2 "\t" $3; if (!(key in seen)) { seen[key] = 1; order[++n] = key } v[$1 "\t" key] = $4 }
        END {
            for (i = 1; i <= n; i++) {
                split(order[i], k, "\t")
                k_ = v["kafka\t" order[i]]; s_ = v["skiff\t" order[i]]
                printf "| %s | %s | %s | %s |\n", k[1], k[2], (k_ == "" ? "-" : k_), (s_ == "" ? "-" : s_)
            }
        }' "$out"/results-*.tsv
}

mkdir -p "$out/run"
install_kafka
case $what in
serve-kafka)
    start_kafka
    echo "kafka-compare: serving until Ctrl-C"
    wait "$broker_pid"
    ;;
all | kafka | skiff)
    if [[ $what != skiff ]]; then
        start_kafka
        run_suite kafka
    fi
    if [[ $what != kafka ]]; then
        start_skiff
        run_suite skiff
    fi
    print_table | tee "$out/table.md"
    ;;
*) die "unknown mode $what (all, kafka, skiff or serve-kafka)" ;;
esac
