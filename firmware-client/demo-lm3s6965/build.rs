//! Puts `memory.x` on the linker search path for cortex-m-rt's `link.x`.
use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_default());
    if fs::write(out.join("memory.x"), include_bytes!("memory.x")).is_ok() {
        println!("cargo:rustc-link-search={}", out.display());
    }
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-env-changed=EDGEMQ_DEMO_N");
    println!("cargo:rerun-if-env-changed=EDGEMQ_DEMO_CLIENT_ID");
    println!("cargo:rerun-if-env-changed=EDGEMQ_DEMO_INTERVAL_MS");
}
