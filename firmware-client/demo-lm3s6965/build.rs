//! Puts the board's memory layout on the linker search path as `memory.x`
//! for cortex-m-rt's `link.x`: `memory-lm3s6965.x` (default),
//! `memory-microbit.x` (feature `microbit`) or `memory-mps2-an386.x`
//! (feature `mps2-an386`).
use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_default());
    let layout: &[u8] = if env::var_os("CARGO_FEATURE_MICROBIT").is_some() {
        include_bytes!("memory-microbit.x")
    } else if env::var_os("CARGO_FEATURE_MPS2_AN386").is_some() {
        include_bytes!("memory-mps2-an386.x")
    } else {
        include_bytes!("memory-lm3s6965.x")
    };
    if fs::write(out.join("memory.x"), layout).is_ok() {
        println!("cargo:rustc-link-search={}", out.display());
    }
    for f in ["memory-lm3s6965.x", "memory-microbit.x", "memory-mps2-an386.x"] {
        println!("cargo:rerun-if-changed={f}");
    }
    println!("cargo:rerun-if-env-changed=EDGEMQ_DEMO_N");
    println!("cargo:rerun-if-env-changed=EDGEMQ_DEMO_CLIENT_ID");
    println!("cargo:rerun-if-env-changed=EDGEMQ_DEMO_INTERVAL_MS");
}
