#!/usr/bin/env bash
# Measures the client's flash and RAM cost: `arm-none-eabi-size` of the demo
# firmware (client included) and of the baseline firmware (same board code,
# no client), for thumbv7em, thumbv7m and thumbv6m (micro:bit board code) at
# opt-level "z" and "s", for the
# MQTT 3.1.1 demo and the MQTT 5 demo (feature `v5`, rows marked `v5`).
# Prints a Markdown table (flash is text + data, static RAM data + bss);
# the difference is the client's own cost.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
base=${CARGO_TARGET_DIR:-$root/target}/demo-footprint
cd "$here/demo-lm3s6965"
echo "| target | opt-level | demo flash | baseline flash | client flash | demo RAM | baseline RAM | client static RAM |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
for v in 3.1.1 v5; do
    feat=()
    label=""
    if [ "$v" = v5 ]; then feat=(--features v5); label=" v5"; fi
    for t in thumbv7em-none-eabihf thumbv7m-none-eabi thumbv6m-none-eabi; do
        board=()
        # Cortex-M0: the micro:bit board code (LM3S6965 is a Cortex-M3).
        if [ "$t" = thumbv6m-none-eabi ]; then board=(--features microbit); fi
        for o in z s; do
            CARGO_PROFILE_RELEASE_OPT_LEVEL=$o CARGO_TARGET_DIR="$base-$o-$v" \
                cargo build -q --release --target "$t" --bins "${feat[@]}" "${board[@]}"
            dir="$base-$o-$v/$t/release"
            read -r dt dd db _ < <(arm-none-eabi-size "$dir/demo" | tail -1)
            read -r bt bd bb _ < <(arm-none-eabi-size "$dir/baseline" | tail -1)
            echo "| $t$label | $o | $((dt + dd)) | $((bt + bd)) | $((dt + dd - bt - bd)) | $((dd + db)) | $((bd + bb)) | $((dd + db - bd - bb)) |"
        done
    done
done
