#!/usr/bin/env bash
# The pages clicked through in headless Chromium: starts the service in demo mode on free
# ports over a fresh SQLite file, runs the tests under node's test runner, stops the
# service. Exits non-zero when a test fails or cannot run (nothing is skipped).
#
#   bash tests/browser/run.sh                  # uses target/debug/gophermart, built if absent
#   GOPHERMART_BIN=path bash tests/browser/run.sh
#   SCREENSHOTS=1 bash tests/browser/run.sh    # also rewrites docs/screenshots/*.png
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

if [ ! -x /usr/bin/chromium ]; then
    echo "chromium is not installed; installing it from Debian's packages"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
if [ ! -d "$here/node_modules/playwright-core" ]; then
    (cd "$here" && npm ci --no-audit --no-fund)
fi

bin=${GOPHERMART_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/gophermart}
if [ ! -x "$bin" ]; then
    echo "building $bin"
    (cd "$root" && cargo build --bin gophermart)
fi

free_port() {
    node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"
}

work=$(mktemp -d)
mkdir -p "$here/artifacts"
port=$(free_port)
accrual_port=$(free_port)
fulfilment_port=$(free_port)
while [ "$accrual_port" = "$port" ]; do accrual_port=$(free_port); done
while [ "$fulfilment_port" = "$port" ] || [ "$fulfilment_port" = "$accrual_port" ]; do fulfilment_port=$(free_port); done

export ADMIN_TOKEN="browser-test-admin-token-$(date +%s)"
export SHOP_TOKEN="browser-test-shop-token-$(date +%s)"
export GOPHERMART_URL="http://127.0.0.1:$port"
export ACCRUAL_URL="http://127.0.0.1:$accrual_port"
export FULFILMENT_URL="http://127.0.0.1:$fulfilment_port"

service=""
cleanup() {
    if [ -n "$service" ] && kill -0 "$service" 2>/dev/null; then
        kill "$service" 2>/dev/null || true
        wait "$service" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# Demo mode: no -r, so the accrual and fulfilment emulators run inside the service.
env -u ACCRUAL_SYSTEM_ADDRESS -u FULFILMENT_ADDRESS -u DATABASE_URI -u NATS_URL \
    RUST_LOG="${RUST_LOG:-info}" \
    "$bin" -a "127.0.0.1:$port" -d "sqlite://$work/gophermart.db?mode=rwc" \
    --emulator-address "127.0.0.1:$accrual_port" \
    --fulfilment-emulator-address "127.0.0.1:$fulfilment_port" \
    --bcrypt-cost 4 \
    >"$here/artifacts/service.log" 2>&1 &
service=$!

healthy() {
    node -e "fetch(process.argv[1]).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))" \
        "$GOPHERMART_URL/health"
}

for _ in $(seq 1 100); do
    if healthy; then break; fi
    if ! kill -0 "$service" 2>/dev/null; then
        echo "the service exited; its log:" >&2
        cat "$here/artifacts/service.log" >&2
        exit 1
    fi
    sleep 0.2
done
if ! healthy; then
    echo "the service did not answer /health; its log:" >&2
    cat "$here/artifacts/service.log" >&2
    exit 1
fi

cd "$here"
set +e
# Files run one at a time, in name order: the shopper first, so that the operator then
# has figures and events to show.
node --test --test-concurrency=1 --test-reporter=spec ./*.test.js
status=$?
set -e
if [ "$status" -ne 0 ]; then
    echo "browser tests failed; screenshots and the service log are in $here/artifacts/" >&2
fi
exit "$status"
