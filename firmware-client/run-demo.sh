#!/usr/bin/env bash
# One command to see the demo firmware publish to edgemq:
#   firmware-client/run-demo.sh            # builds and starts edgemq
#   firmware-client/run-demo.sh --mosquitto  # uses mosquitto instead
# Builds the broker and the LM3S6965 demo firmware, starts the broker on a
# free port, subscribes to sensors/# with mosquitto_sub (if installed), and
# runs the firmware in QEMU with UART0 wired to the broker over TCP. QEMU
# exits when the firmware has had every reading acknowledged.
# Env: EDGEMQ_BIN (use this broker binary, skip building), EDGEMQ_DEMO_N,
# EDGEMQ_DEMO_INTERVAL_MS, EDGEMQ_DEMO_CLIENT_ID (firmware parameters).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
use_mosquitto=0
[ "${1:-}" = "--mosquitto" ] && use_mosquitto=1

echo "== building the demo firmware (thumbv7m-none-eabi)"
demo_target="$target/demo-lm3s6965"
(cd "$here/demo-lm3s6965" && CARGO_TARGET_DIR="$demo_target" cargo build --release --bin demo)
elf="$demo_target/thumbv7m-none-eabi/release/demo"

data=$(mktemp -d)
log="$data/broker.log"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$data"
}
trap cleanup EXIT

if [ "$use_mosquitto" = 1 ]; then
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$port" > "$data/mosquitto.conf"
    mosquitto -c "$data/mosquitto.conf" > "$log" 2>&1 &
    pids+=($!)
    sleep 0.5
else
    broker=${EDGEMQ_BIN:-}
    if [ -z "$broker" ]; then
        echo "== building edgemq"
        (cd "$root" && cargo build --release -p edgemq)
        broker="$target/release/edgemq"
    fi
    echo "== starting $broker"
    "$broker" --port 0 --bind 127.0.0.1 --data-dir "$data/edgemq" > "$log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do grep -q "listening on" "$log" && break; sleep 0.1; done
    port=$(sed -n 's/.*listening on [^m]*mqtt:\/\/[^ ,;]*:\([0-9]*\).*/\1/p' "$log" | head -1)
    [ -n "$port" ] || { echo "edgemq did not report its port:"; cat "$log"; exit 1; }
fi
echo "== broker listening on 127.0.0.1:$port"

if command -v mosquitto_sub >/dev/null; then
    mosquitto_sub -h 127.0.0.1 -p "$port" -t 'sensors/#' -q 1 -v > >(sed -u 's/^/subscriber: /') &
    pids+=($!)
    sleep 0.3
fi

echo "== running the firmware in QEMU (lm3s6965evb)"
status=0
timeout 120 qemu-system-arm -cpu cortex-m3 -machine lm3s6965evb -nographic -monitor none \
    -semihosting-config enable=on,target=native \
    -serial "tcp:127.0.0.1:$port" -kernel "$elf" > >(sed -u 's/^/firmware:   /') || status=$?
sleep 0.5
if [ "$status" = 0 ]; then
    echo "== demo finished: every reading was acknowledged by the broker"
else
    echo "== demo FAILED (exit $status)"
fi
exit "$status"
