#!/usr/bin/env bash
# Restart with a backlog: peak RSS and time to listening of the release
# broker restarting on a store holding N queued 64-byte QoS 1 messages for
# one offline persistent session.
#
#   benches/restart.sh N [DIR]     (build first: cargo build --release -p edgemq -p edgemq-benches)
#
# The store is filled once by edgemq-fillstore (through the store API) and
# copied for each run, so every run restarts on the same log.
set -euo pipefail
n=${1:?usage: restart.sh N [DIR]}
dir=${2:-$(mktemp -d)}
bin=${EDGEMQ:-target/release/edgemq}
fill=${FILLSTORE:-target/release/edgemq-fillstore}
if [ ! -d "$dir/filled" ]; then
    "$fill" "$dir/filled" "$n"
fi
rm -rf "$dir/run"
cp -r "$dir/filled" "$dir/run"
echo "log: $(du -sh "$dir/run" | cut -f1)"
start=$(date +%s.%N)
# -p 0 picks a free port; the start-up line is printed once listening.
/usr/bin/time -v "$bin" -p 0 --data-dir "$dir/run" >"$dir/out" 2>"$dir/err" &
pid=$!
until grep -q . "$dir/out" 2>/dev/null; do
    if ! kill -0 $pid 2>/dev/null; then cat "$dir/err"; exit 1; fi
    sleep 0.05
done
listening=$(date +%s.%N)
# Let the start-up snapshot finish, then stop the broker.
sleep "${SETTLE:-2}"
pkill -INT -P $pid || true
wait $pid || true
echo "time to listening: $(echo "$listening - $start" | bc) s"
grep -E 'Maximum resident|Elapsed' "$dir/err"
