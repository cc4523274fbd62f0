# benches/lib.sh: what the bench scripts share (sourced, never run):
# starting and stopping brokers, finding free ports, waiting for them to
# listen. Each script sets BENCH_NAME (the prefix of its messages) first.

# die MSG...: the message on stderr, then exit 1.
die() {
    echo "${BENCH_NAME:-bench}: $*" >&2
    exit 1
}

# free_port: a port on 127.0.0.1 free right now.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_port PORT PID LOG [TIMEOUT_S]: waits until 127.0.0.1:PORT accepts a
# connection (default 60 s); dies if PID exits first or time runs out.
wait_port() {
    local port=$1 pid=$2 log=$3 timeout_s=${4:-60}
    for _ in $(seq $((timeout_s * 5))); do
        kill -0 "$pid" 2>/dev/null || die "broker exited while starting; see $log"
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.2
    done
    die "broker not listening on $port after $timeout_s s; see $log"
}

# stop_pid PID: SIGTERM (a graceful stop), SIGKILL after 10 s; waits.
stop_pid() {
    [ -n "$1" ] || return 0
    kill "$1" 2>/dev/null || return 0
    (sleep 10 && kill -9 "$1" 2>/dev/null) &
    local killer=$!
    wait "$1" 2>/dev/null || true
    kill "$killer" 2>/dev/null || true
}

# skiffd_addr DIR [LISTENER]: the address skiffd printed in DIR/stdout as
# "skiffd [LISTENER ]listening on ADDR" (LISTENER: kafka, metrics, or none
# for the native one), waiting up to 10 s; dies with its stderr if none.
skiffd_addr() {
    local dir=$1 prefix="skiffd ${2:+$2 }listening on " addr=
    for _ in $(seq 100); do
        addr=$(sed -n "s/^$prefix//p" "$dir/stdout")
        [ -n "$addr" ] && { echo "$addr"; return 0; }
        sleep 0.1
    done
    echo "skiffd did not print '$prefix'; stderr:" >&2
    cat "$dir/stderr" >&2
    exit 1
}

# median of numbers on stdin
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# "total steal" CPU ticks so far (all CPUs, from /proc/stat). Steal is time
# this VM's CPUs were ready to run but the host ran something else: when it
# is high, latency figures measure the host, not skiff.
cpu_ticks() {
    local _cpu user nice sys idle iowait irq softirq steal _rest
    read -r _cpu user nice sys idle iowait irq softirq steal _rest </proc/stat
    echo "$((user + nice + sys + idle + iowait + irq + softirq + steal)) $steal"
}

# steal_pct BEFORE AFTER: percent of the CPU ticks between two cpu_ticks
# readings that were stolen, rounded.
steal_pct() {
    echo "$1 $2" | awk '{ t = $3 - $1; printf "%.0f", t ? 100 * ($4 - $2) / t : 0 }'
}

# need CMD PKG: installs Debian package PKG with apt-get unless CMD (also
# looked for in /usr/sbin) is already there.
need() {
    local cmd=$1 pkg=$2 sudo=
    command -v "$cmd" >/dev/null 2>&1 || PATH=$PATH:/usr/sbin command -v "$cmd" >/dev/null 2>&1 \
        && return 0
    [[ $(id -u) == 0 ]] || sudo=sudo
    echo "${BENCH_NAME:-bench}: installing $pkg with apt-get" >&2
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "$pkg"
}
