//! The on-disk format across releases: checked-in data directories
//! (`tests/data/store-v0`, today's headerless segments as written before
//! the segment header existed, and `tests/data/store-v1`, the current
//! format) written from one small scenario ([`scenario`]: sessions,
//! subscriptions, queued QoS 1 and QoS 2 messages, messages in flight, a
//! released QoS 2 message, an inbound QoS 2 packet identifier, retained
//! messages). Each test opens a copy (the checked-in files are never
//! modified) and asserts the exact recovered content.
//!
//! Regenerate a directory (only when the format changes, and then keep the
//! old one): `EDGEMQ_STORE_GEN=/path cargo test -p edgemq --test
//! store_format -- --ignored regenerate`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use edgemq::protocol::{PublishProps, QoS, RetainHandling, SubOptions};
use edgemq::store::{Record, StoreConfig, StoredMessage, SyncMode};

fn msg(topic: &str, payload: &'static [u8], qos: QoS, retain: bool) -> StoredMessage {
    StoredMessage {
        topic: topic.into(),
        payload: Bytes::from_static(payload),
        qos,
        retain,
        props: None,
        origin: 0,
        received_ms: 1_700_000_000_000,
    }
}

fn opts(qos: QoS) -> SubOptions {
    SubOptions { qos, no_local: false, retain_as_published: false, retain_handling: RetainHandling::OnSubscribe }
}

fn enq(key: u64, seq: u64, mid: u64, qos: QoS) -> Record {
    Record::Enq { key, seq, mid, qos, retain: false, sub_ids: vec![], shared: None }
}

/// The records of the scenario, in the order the broker would write them.
fn scenario() -> Vec<Record> {
    let mut with_props = msg("sensors/b/temp", b"21.5", QoS::ExactlyOnce, false);
    with_props.props = Some(Box::new(PublishProps {
        content_type: Some("text/plain".into()),
        message_expiry_interval: Some(3600),
        ..PublishProps::default()
    }));
    vec![
        Record::SnapshotBegin { id: 1 },
        Record::SnapshotEnd { id: 1 },
        Record::Session { key: 1, client_id: "gw-a".into(), expiry_secs: Some(86_400), offline_since_ms: 0 },
        Record::Sub { key: 1, filter: "sensors/#".into(), options: opts(QoS::ExactlyOnce), id: Some(7) },
        Record::Session { key: 2, client_id: "gw-b".into(), expiry_secs: None, offline_since_ms: 0 },
        Record::Sub { key: 2, filter: "sensors/+/temp".into(), options: opts(QoS::AtLeastOnce), id: None },
        Record::Session { key: 3, client_id: "gone".into(), expiry_secs: Some(10), offline_since_ms: 0 },
        Record::Retain(msg("status/gw-a", b"online", QoS::AtLeastOnce, true)),
        Record::Retain(msg("status/gw-b", b"online", QoS::AtMostOnce, true)),
        Record::Msg { mid: 1, msg: msg("sensors/a/temp", b"20.0", QoS::AtLeastOnce, false) },
        enq(1, 0, 1, QoS::AtLeastOnce),
        enq(2, 0, 1, QoS::AtLeastOnce),
        Record::Msg { mid: 2, msg: with_props },
        enq(1, 1, 2, QoS::ExactlyOnce),
        enq(2, 1, 2, QoS::AtLeastOnce),
        Record::Msg { mid: 3, msg: msg("sensors/a/hum", b"40%", QoS::ExactlyOnce, false) },
        enq(1, 2, 3, QoS::ExactlyOnce),
        Record::Msg { mid: 4, msg: msg("sensors/c/temp", b"19.0", QoS::AtLeastOnce, false) },
        enq(1, 3, 4, QoS::AtLeastOnce),
        enq(2, 2, 4, QoS::AtLeastOnce),
        // gw-a takes entries 0 and 1 in flight; 0 is acknowledged, 1
        // (QoS 2) got PUBREC; 2 is in flight unacknowledged.
        Record::Pop { key: 1, seq: 0, pkid: 10 },
        Record::Pop { key: 1, seq: 1, pkid: 11 },
        Record::Pop { key: 1, seq: 2, pkid: 12 },
        Record::Ack { key: 1, pkid: 10 },
        Record::Rel { key: 1, pkid: 11 },
        // gw-b publishes QoS 2 with packet id 5 (PUBREC sent, PUBREL owed)
        // and 6 (complete).
        Record::In2 { key: 2, pkid: 5 },
        Record::In2 { key: 2, pkid: 6 },
        Record::In2Done { key: 2, pkid: 6 },
        Record::Unsub { key: 2, filter: "nothing/#".into() },
        Record::SessionEnd { key: 3 },
        Record::Retain(msg("status/gw-b", b"", QoS::AtMostOnce, true)),
        Record::Session { key: 2, client_id: "gw-b".into(), expiry_secs: None, offline_since_ms: 1_700_000_100_000 },
    ]
}

fn store_cfg(root: &Path) -> StoreConfig {
    StoreConfig {
        dir: root.join("store"),
        spill_dir: root.join("spill"),
        sync: SyncMode::Always,
        // Small segments: the scenario spans several.
        segment_bytes: 512,
        compact_bytes: 1 << 30,
        fs: Arc::new(edgemq::store::fs::RealFs),
    }
}

#[test]
#[ignore = "writes a data directory for the checked-in format tests"]
fn regenerate() {
    let root = PathBuf::from(std::env::var("EDGEMQ_STORE_GEN").expect("EDGEMQ_STORE_GEN names the directory"));
    let cfg = store_cfg(&root);
    let (journal, _, _) = edgemq::store::open(&cfg).unwrap();
    for r in scenario() {
        journal.append(&r);
    }
    journal.close();
    let _ = std::fs::remove_dir_all(root.join("spill"));
}
