#!/usr/bin/env bash
# Writes tests/data/upgrade-<version>/: the data directory of a release
# binary holding persistent sessions with queued messages, for
# tests/tests/upgrade.rs (a later binary must start on it and deliver
# every queued message). Run it with the release being fixed, before the
# store format or the data directory changes, and keep the old
# directories:
#
#   cargo build --release -p edgemq
#   bash tests/data/make-upgrade-fixture.sh [path/to/edgemq]
#
# Needs mosquitto_sub and mosquitto_pub (Debian: mosquitto-clients). The
# scenario is fixed (the test knows it): three offline sessions,
#   dev-a  3.1.1, clean session off, fleet/#          QoS 1
#   dev-b  3.1.1, clean session off, fleet/+/alarm    QoS 2
#   dev-c  MQTT 5, session expiry 0xFFFFFFFF (never), fleet/+/telemetry QoS 1
# then 20 QoS 1 messages "t-00".."t-19" on fleet/<i%4>/telemetry, 3 QoS 2
# messages "a-0".."a-2" on fleet/<i>/alarm, and a retained "v1" on
# fleet/config (QoS 1), published by 3.1.1 clients; then a clean stop.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${1:-target/release/edgemq}
version=$("$bin" --version | awk '{print $2}')
out="tests/data/upgrade-$version"
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT

"$bin" -p 0 --bind 127.0.0.1 --data-dir "$work/data" >"$work/log" 2>&1 &
pid=$!
for _ in $(seq 100); do
    grep -q 'listening on' "$work/log" && break
    sleep 0.1
done
port=$(sed -n 's/.*mqtt:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/log" | head -1)
[ -n "$port" ] || { cat "$work/log"; exit 1; }
sub() { mosquitto_sub -h 127.0.0.1 -p "$port" -E -W 10 "$@"; }
sub -i dev-a -c -q 1 -t 'fleet/#'
sub -i dev-b -c -q 2 -t 'fleet/+/alarm'
sub -i dev-c -V 5 -x 4294967295 -q 1 -t 'fleet/+/telemetry'
for i in $(seq 0 19); do
    mosquitto_pub -h 127.0.0.1 -p "$port" -i pub -q 1 -t "fleet/$((i % 4))/telemetry" -m "$(printf 't-%02d' "$i")"
done
for i in 0 1 2; do
    mosquitto_pub -h 127.0.0.1 -p "$port" -i pub -q 2 -t "fleet/$i/alarm" -m "a-$i"
done
mosquitto_pub -h 127.0.0.1 -p "$port" -i pub -q 1 -r -t fleet/config -m v1
kill -TERM "$pid"
wait "$pid"
# The spill directory holds only scratch files (a restart starts it anew).
rm -rf "$out"
mkdir -p "$out"
cp -r "$work/data/store" "$out/"
echo "$("$bin" --version), commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- broker || echo ' with changes')" >"$out/WRITTEN_BY"
echo "wrote $out ($(du -sk "$out" | cut -f1) KiB) from $("$bin" --version)"
