//! Upgrades keep what an earlier release stored: each checked-in data
//! directory `tests/data/upgrade-<version>/` was written by that
//! release's binary (`tests/data/make-upgrade-fixture.sh`, which holds the
//! scenario: three offline sessions, 3.1.1 and MQTT 5, with 24 and 3 and
//! 20 queued messages, and a retained message) and stopped cleanly. This
//! build starts on a copy of each (the checked-in files are never
//! modified), the sessions are present [MQTT-3.2.2-2], and every queued
//! message is delivered once, in order [MQTT-4.6.0-6], at the QoS of the
//! subscription [MQTT-3.8.4-8]; the store's format across releases at the
//! record level is `broker/tests/store_format.rs`.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// The checked-in data directories, oldest release first.
fn fixtures() -> Vec<PathBuf> {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() && p.file_name().unwrap().to_string_lossy().starts_with("upgrade-"))
        .collect();
    dirs.sort();
    dirs
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

/// Resumes `id`'s session and takes `n` messages (acknowledged), then
/// checks nothing else was queued.
async fn resume(b: &TestBroker, proto: Proto, id: &str, n: usize) -> Vec<(String, u8, String)> {
    let (mut c, present) = Raw::connect(b.addr, &ConnectOpts::new(proto, id).clean(false)).await;
    assert!(present, "{id}: the session survived the upgrade");
    let mut got = Vec::new();
    for _ in 0..n {
        let p = c.receive_acked().await;
        assert!(!p.retain, "{id}: delivered on its subscription [MQTT-3.3.1-9]");
        got.push((p.topic, p.qos, String::from_utf8(p.payload).unwrap()));
    }
    c.expect_silence(&format!("{id}: nothing more was queued")).await;
    got
}

#[tokio::test]
async fn every_queued_message_of_an_earlier_release_is_delivered() {
    let dirs = fixtures();
    assert!(!dirs.is_empty(), "tests/data/upgrade-* is checked in");
    let telemetry: Vec<(String, u8, String)> =
        (0..20).map(|i| (format!("fleet/{}/telemetry", i % 4), 1, format!("t-{i:02}"))).collect();
    let alarms = |qos| (0..3).map(move |i| (format!("fleet/{i}/alarm"), qos, format!("a-{i}")));
    for dir in dirs {
        println!("data directory of {}", dir.display());
        let tmp = tempfile::tempdir().unwrap();
        copy_dir(&dir, tmp.path());
        let b = TestBroker::start_with(|c| c.data_dir = tmp.path().to_owned()).await;
        let a = resume(&b, Proto::V311, "dev-a", 24).await;
        // The retained message too, published while it was away.
        let config = ("fleet/config".to_owned(), 1, "v1".to_owned());
        let want: Vec<_> = telemetry.iter().cloned().chain(alarms(1)).chain([config]).collect();
        assert_eq!(a, want, "dev-a (fleet/# at QoS 1): everything, in order");
        let want: Vec<_> = alarms(2).collect();
        assert_eq!(resume(&b, Proto::V311, "dev-b", 3).await, want, "dev-b (fleet/+/alarm at QoS 2)");
        assert_eq!(resume(&b, Proto::V5, "dev-c", 20).await, telemetry, "dev-c (MQTT 5, fleet/+/telemetry)");
        let mut r = Raw::v311(b.addr, "reader").await;
        r.subscribe(1, &[("fleet/config", 1)]).await;
        let p = r.receive_acked().await;
        assert_eq!((p.topic.as_str(), p.retain, p.payload.as_slice()), ("fleet/config", true, &b"v1"[..]));
        b.shutdown().await;
    }
}
