//! The README's embassy example is the one CI builds: its `Cargo.toml`
//! dependencies, `.cargo/config.toml` and `src/main.rs` appear in
//! `README.md` verbatim, each as a fenced code block.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers

use std::path::Path;

fn read(rel: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The fenced code blocks of `md` tagged `lang`.
fn blocks(md: &str, lang: &str) -> Vec<String> {
    let fence = format!("```{lang}\n");
    md.split(fence.as_str()).skip(1).map(|b| b.split("```\n").next().unwrap_or("").to_string()).collect()
}

#[test]
fn readme_shows_the_embassy_example_ci_builds() {
    let readme = read("README.md");
    let main = read("example-embassy/src/main.rs");
    assert!(blocks(&readme, "rust").contains(&main), "README.md does not show example-embassy/src/main.rs as it is");
    let toml = blocks(&readme, "toml");
    let config = read("example-embassy/.cargo/config.toml");
    assert!(toml.contains(&config), "README.md does not show example-embassy/.cargo/config.toml as it is");
    let manifest = read("example-embassy/Cargo.toml");
    let deps = manifest.split_once("[dependencies]\n").map(|x| x.1).unwrap();
    let deps = format!("[dependencies]\n{}", deps.split("\n[").next().unwrap().trim_end());
    assert!(
        toml.iter().any(|b| b.trim_end() == deps),
        "README.md does not show the [dependencies] of example-embassy/Cargo.toml as they are:\n{deps}"
    );
}
