//! What the load generator's tests share: an edgemq started in-process on
//! 127.0.0.1:0 with its data in a fresh directory.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers

use edgemq_benches::Target;

/// A broker in this process (so `/proc/self` holds its memory and
/// descriptors), the target to aim at, and its data directory.
pub async fn start_broker() -> (edgemq::Broker, Target, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = edgemq::Config {
        listeners: vec![edgemq::config::ListenerConfig::tcp("127.0.0.1:0".parse().unwrap())],
        data_dir: dir.path().to_owned(),
        ..edgemq::Config::default()
    };
    let broker = edgemq::Broker::start(cfg).await.unwrap();
    let t = Target { addr: broker.local_addrs()[0], pid: Some(std::process::id()) };
    (broker, t, dir)
}
