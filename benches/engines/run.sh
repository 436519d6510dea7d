#!/usr/bin/env bash
# Runs the whole engine benchmark: REPS repetitions of every measurement
# (engines interleaved inside each repetition), then one strace run per
# engine/mode to count fsync-family syscalls, then prints the median table.
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target-engines}
cargo build --release
B=$CARGO_TARGET_DIR/release/edgemq-engine-bench
REPS=${REPS:-3}
ENGINES=${ENGINES:-"seglog redb fjall redb-16m fjall-small"}
N_BATCH=${N_BATCH:-200000}
N_ALWAYS=${N_ALWAYS:-5000}
N_QUEUED=${N_QUEUED:-1000000}
D=/tmp/engine-bench-$$
trap 'rm -rf "$D" "$D".*' EXIT
mkdir -p results
OUT=results/raw.txt
: > "$OUT"
$B crashtest "$D-crash" 100 2>/dev/null | tee -a "$OUT"
for rep in $(seq "$REPS"); do
  for e in $ENGINES; do
    echo "== rep $rep $e" >&2
    $B fsync-probe "$D" | sed "s/^/rep=$rep engine=$e /" >> "$OUT"
    rm -rf "$D"; $B throughput "$e" batch "$N_BATCH" "$D" | sed "s/^/rep=$rep /" >> "$OUT"
    rm -rf "$D"; $B throughput "$e" always "$N_ALWAYS" "$D" | sed "s/^/rep=$rep /" >> "$OUT"
    rm -rf "$D"; $B throughput "$e" never "$N_BATCH" "$D" | sed "s/^/rep=$rep /" >> "$OUT"
    for c in crash close; do
      rm -rf "$D"
      $B fill "$e" "$N_QUEUED" "$D" "$c" | sed "s/^/rep=$rep /" >> "$OUT"
      $B recover "$e" "$N_QUEUED" "$D" 2>/dev/null | sed "s/^/rep=$rep after=$c /" >> "$OUT"
    done
  done
done
# fsync-family syscalls actually issued (incl. engine background threads), one run each
if command -v strace >/dev/null; then
  for e in $ENGINES; do
    for m in "batch $N_BATCH" "always $N_ALWAYS"; do
      rm -rf "$D"
      strace -f -qq --seccomp-bpf -c -e trace=fsync,fdatasync,sync_file_range,msync \
        -o "results/strace-$e-${m%% *}.txt" $B throughput "$e" $m "$D" > /dev/null
    done
    rm -rf "$D"
    strace -f -qq --seccomp-bpf -c -e trace=fsync,fdatasync,sync_file_range,msync \
      -o "results/strace-$e-fill.txt" $B fill "$e" "$N_QUEUED" "$D" close > /dev/null
  done
fi
rm -rf "$D"
python3 summarize.py "$OUT" | tee results/table.md
