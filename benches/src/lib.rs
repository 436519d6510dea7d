//! The edgemq load generator as a library: a lean MQTT 3.1.1 client
//! (hand-encoded packets, pipelined publishers, batched writes) and the
//! benchmark scenarios, each producing one [`Report`] line.
//!
//! The `edgemq-loadgen` binary is a thin command line over this crate; the
//! smoke test (`tests/smoke.rs`) runs every scenario at a tiny size against
//! an in-process broker. See `benches/README.md`.

pub mod authburst;
pub mod backlog;
pub mod client;
pub mod fleet;
pub mod metrics;
pub mod procfs;
pub mod scenario;
pub mod soak;
mod soak_tasks;
pub mod stall;
pub mod track;
pub mod wire;

use std::fmt;
use std::net::SocketAddr;

pub use authburst::{authburst, AuthburstOpts};
pub use backlog::{backlog, BacklogOpts};
pub use fleet::{fleet, storm, FleetOpts, StormOpts};
pub use scenario::{
    conns, fanin, fanout, latency, startup, ConnsOpts, FaninOpts, FanoutOpts, LatencyOpts, StartupOpts,
};
pub use soak::{soak, SoakOpts};
pub use stall::{stall, StallOpts};

/// Why a scenario failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("timed out {0}")]
    Timeout(String),
    #[error("connection refused: CONNACK return code {0}")]
    Refused(u8),
    #[error("connection closed by the broker")]
    Closed,
    #[error("{0}")]
    Other(String),
}

/// The broker under test.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub addr: SocketAddr,
    /// The broker's process id, for memory figures (`/proc/PID/status`).
    pub pid: Option<u32>,
}

/// The result of one scenario run: ordered `key=value` fields, printed as
/// one line starting with `RESULT`.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub fields: Vec<(&'static str, String)>,
}

impl Report {
    pub fn new(scenario: &str) -> Report {
        Report { fields: vec![("scenario", scenario.to_owned())] }
    }

    pub fn add(&mut self, key: &'static str, value: impl fmt::Display) -> &mut Report {
        self.fields.push((key, value.to_string()));
        self
    }

    /// Adds a floating-point figure with `decimals` decimals.
    pub fn addf(&mut self, key: &'static str, value: f64, decimals: usize) -> &mut Report {
        self.fields.push((key, format!("{value:.decimals$}")));
        self
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| *k == key).map(|(_, v)| v.as_str())
    }

    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.get(key)?.parse().ok()
    }

    pub fn get_f64(&self, key: &str) -> Option<f64> {
        self.get(key)?.parse().ok()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RESULT")?;
        for (k, v) in &self.fields {
            write!(f, " {k}={v}")?;
        }
        Ok(())
    }
}
