#!/usr/bin/env bash
# Runs N gophermart instances on one PostgreSQL database behind a round-robin proxy.
#
#   ops/cluster.sh [N]            N instances (default 3), the proxy on $PORT (default 8080)
#
# Environment: DATABASE_URI (default postgres://postgres@127.0.0.1:5432/postgres), PORT,
# ACCRUAL_SYSTEM_ADDRESS and FULFILMENT_ADDRESS (unset: the demo emulators run beside the
# instances, on 8081 and 8082, logging to target/cluster/), ADMIN_TOKEN and SHOP_TOKEN
# (unset: generated and printed). Instance k listens on PORT+10+k and logs to
# target/cluster/instance-k.log. Ctrl-C stops them all; `kill -9` of one shows a handover.
set -euo pipefail
cd "$(dirname "$0")/.."

count="${1:-3}"
port="${PORT:-8080}"
export DATABASE_URI="${DATABASE_URI:-postgres://postgres@127.0.0.1:5432/postgres}"
export CLUSTER=true

case "$DATABASE_URI" in
postgres://* | postgresql://*) ;;
*)
    echo "several instances need PostgreSQL; DATABASE_URI is $DATABASE_URI" >&2
    exit 1
    ;;
esac

random_token() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }
export ADMIN_TOKEN="${ADMIN_TOKEN:-$(random_token)}"
export SHOP_TOKEN="${SHOP_TOKEN:-$(random_token)}"

cargo build --release --quiet -p gophermart -p gophermart-bench
mkdir -p target/cluster

pids=()
stop_all() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap stop_all EXIT INT TERM

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Starts `binary` listening on 127.0.0.1:`port`, logging to target/cluster/`log`.log, and
# waits until it listens, or says why it did not start.
start() {
    local name=$1 binary=$2 port=$3 log=target/cluster/$4.log
    "./target/release/$binary" -a "127.0.0.1:$port" >"$log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 100); do
        if listening "$port"; then
            echo "$name on http://127.0.0.1:$port (log: $log)"
            return 0
        fi
        if ! kill -0 "${pids[-1]}" 2>/dev/null; then
            echo "$name did not start; its log:" >&2
            cat "$log" >&2
            exit 1
        fi
        sleep 0.1
    done
    echo "$name does not listen on $port; its log: $log" >&2
    exit 1
}

# Without an accrual system, the demo emulators run as processes of their own, so that
# any instance can be killed without taking them along.
if [ -z "${ACCRUAL_SYSTEM_ADDRESS:-}" ]; then
    start "demo accrual emulator" accrual 8081 accrual
    export ACCRUAL_SYSTEM_ADDRESS=http://127.0.0.1:8081
    if [ -z "${FULFILMENT_ADDRESS:-}" ]; then
        start "demo fulfilment emulator" fulfilment 8082 fulfilment
        export FULFILMENT_ADDRESS=http://127.0.0.1:8082
    fi
fi

targets=()
for k in $(seq 1 "$count"); do
    start "instance $k" gophermart $((port + 10 + k)) "instance-$k"
    targets+=("127.0.0.1:$((port + 10 + k))")
done

echo "ADMIN_TOKEN=$ADMIN_TOKEN"
echo "SHOP_TOKEN=$SHOP_TOKEN"
echo "round-robin over ${#targets[@]} instances on http://127.0.0.1:$port — Ctrl-C stops them all"
to=$(
    IFS=,
    echo "${targets[*]}"
)
./target/release/gophermart-bench proxy --listen "127.0.0.1:$port" --to "$to" &
pids+=($!)
# Instances may be killed and started again (the proxy skips one that refuses); the
# cluster stops with the proxy.
wait "${pids[-1]}"
