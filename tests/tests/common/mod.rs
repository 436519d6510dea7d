//! Shared helpers for the end-to-end tests: an in-process broker on
//! 127.0.0.1:0, a byte-level MQTT client for the edge cases client
//! libraries hide, and small wrappers around rumqttc event loops.
//!
//! Every wait here is bounded (`TIMEOUT`), so a broken broker makes a test
//! fail instead of hang.

#![allow(dead_code)] // each test binary uses a different subset

pub mod bridge;
mod http;
mod packets;
mod raw;
mod rumq;

#[allow(unused_imports)] // only the HTTP and browser tests use it
pub use http::*;
pub use packets::*;
#[allow(unused_imports)] // not every test binary uses the raw client
pub use raw::*;
#[allow(unused_imports)] // not every test binary uses rumqttc
pub use rumq::*;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

/// Upper bound for any single wait on the broker.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait when checking that something does NOT arrive.
pub const QUIET: Duration = Duration::from_millis(300);

/// Awaits `fut`, panicking with `what` if it takes longer than `TIMEOUT`.
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(TIMEOUT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {TIMEOUT:?} waiting for {what}"),
    }
}

// ---------------------------------------------------------------------------
// Broker
// ---------------------------------------------------------------------------

/// A broker running in this process, with its own temporary data directory.
pub struct TestBroker {
    pub broker: edgemq::Broker,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl TestBroker {
    pub async fn start() -> TestBroker {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut edgemq::Config)) -> TestBroker {
        Self::start_with_authenticator(std::sync::Arc::new(edgemq::auth::NoEnhancedAuth), tweak).await
    }

    /// A broker with the enhanced authentication methods of `authenticator`.
    pub async fn start_with_authenticator(
        authenticator: std::sync::Arc<dyn edgemq::auth::Authenticator>,
        tweak: impl FnOnce(&mut edgemq::Config),
    ) -> TestBroker {
        Self::start_with_seams(edgemq::server::Seams { authenticator, ..Default::default() }, tweak).await
    }

    /// A broker on the given seams (a slow or failing disk, say).
    pub async fn start_with_seams(seams: edgemq::server::Seams, tweak: impl FnOnce(&mut edgemq::Config)) -> TestBroker {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = edgemq::Config {
            listeners: vec![edgemq::config::ListenerConfig::tcp("127.0.0.1:0".parse().expect("addr"))],
            data_dir: dir.path().to_owned(),
            ..edgemq::Config::default()
        };
        tweak(&mut cfg);
        let start = edgemq::Broker::start_with_seams(cfg, seams);
        let broker = within("broker start", start).await.expect("broker starts");
        let addr = broker.local_addrs()[0];
        TestBroker { broker, addr, _dir: dir }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub async fn shutdown(self) {
        within("broker shutdown", self.broker.shutdown()).await;
    }
}
