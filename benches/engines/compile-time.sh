#!/usr/bin/env bash
# Clean release build time (REPS runs, median printed) and dependency count of
# each candidate on its own, in a throw-away crate that depends only on it.
set -euo pipefail
REPS=${REPS:-3}
T=${CARGO_TARGET_DIR:-/work/target-engines}
for dep in 'redb = "=4.6.0"' 'fjall = "=3.1.13"' 'crc32fast = "=1.5.5"'; do
  name=${dep%% *}
  C=/tmp/engine-bench-ct-$name
  rm -rf "$C"; mkdir -p "$C/src"
  printf '[package]\nname = "ct-%s"\nversion = "0.0.0"\nedition = "2021"\n[workspace]\n[dependencies]\n%s\n' "$name" "$dep" > "$C/Cargo.toml"
  echo 'fn main() {}' > "$C/src/main.rs"
  (cd "$C" && cargo generate-lockfile -q)
  times=()
  for r in $(seq "$REPS"); do
    rm -rf "$T/clean-$name"
    s=$(date +%s.%N)
    (cd "$C" && CARGO_TARGET_DIR="$T/clean-$name" cargo build --release -q)
    times+=("$(echo "$(date +%s.%N) - $s" | bc)")
  done
  rm -rf "$T/clean-$name"
  deps=$(cd "$C" && cargo tree -e normal --prefix none | sort -u | grep -vc '^ct-')
  lines=$(cd "$C" && cargo tree | wc -l)
  med=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (REPS + 1) / 2 ))p")
  echo "dep=$name clean_build_s_median=$med runs=${times[*]} unique_crates=$deps cargo_tree_lines=$lines"
  rm -rf "$C"
done
