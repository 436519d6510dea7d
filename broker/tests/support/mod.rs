//! What the tests that run the `edgemq` binary share: a child killed on
//! drop, signals, the address in the startup line.
#![allow(dead_code, clippy::unwrap_used)] // test code; not every test uses all

use std::process::{Child, Command};

pub const BIN: &str = env!("CARGO_BIN_EXE_edgemq");

/// A running broker, killed (and reaped) when dropped.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends `sig` (`-HUP`, `-TERM`) to `child`.
pub fn signal(child: &Child, sig: &str) {
    assert!(Command::new("kill").args([sig, &child.id().to_string()]).status().unwrap().success());
}

/// The first `mqtt://` address of the startup line.
pub fn mqtt_addr(line: &str) -> String {
    line.split("mqtt://").nth(1).unwrap().split([',', ';']).next().unwrap().to_owned()
}
