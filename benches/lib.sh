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
