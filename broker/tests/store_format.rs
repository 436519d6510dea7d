//! The on-disk format across releases: checked-in data directories
//! (`tests/data/store-v0`, the headerless segments as written before the
//! segment header existed, `tests/data/store-v1`, the first format with
//! the header, and `tests/data/store-v2`, the current format, which adds
//! the `Routing` record) written from one small scenario ([`scenario`]: sessions,
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
        Record::Session {
            key: 1,
            client_id: "gw-a".into(),
            expiry_secs: Some(86_400),
            offline_since_ms: 0,
            user: None,
        },
        Record::Sub { key: 1, filter: "sensors/#".into(), options: opts(QoS::ExactlyOnce), id: Some(7) },
        Record::Session { key: 2, client_id: "gw-b".into(), expiry_secs: None, offline_since_ms: 0, user: None },
        Record::Sub { key: 2, filter: "sensors/+/temp".into(), options: opts(QoS::AtLeastOnce), id: None },
        Record::Session { key: 3, client_id: "gone".into(), expiry_secs: Some(10), offline_since_ms: 0, user: None },
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
        Record::Session {
            key: 2,
            client_id: "gw-b".into(),
            expiry_secs: None,
            offline_since_ms: 1_700_000_100_000,
            user: None,
        },
    ]
}

/// The scenario as the current format writes it: and a QoS 2 routing of
/// gw-b (packet id 9, message 4) that a cut interrupted after gw-a's entry
/// (the record as a snapshot writes it).
fn scenario_v2() -> Vec<Record> {
    let mut v = scenario();
    v.push(Record::Routing { key: 2, pkid: 9, mid: 4, crc: 0x1234_5678, got: vec![(1, None)] });
    v
}

fn assert_interrupted(m: &edgemq::store::Model) {
    let i = &m.interrupted[&(2, 9)];
    assert_eq!((m.interrupted.len(), i.mid, i.crc, i.got.clone()), (1, 4, 0x1234_5678, vec![(1, None)]));
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
    for r in scenario_v2() {
        journal.append(&r);
    }
    journal.close();
    let _ = std::fs::remove_dir_all(root.join("spill"));
}

/// A copy of the checked-in directory `name` in a fresh temporary one.
fn copy_of(name: &str) -> tempfile::TempDir {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data").join(name).join("store");
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("store")).unwrap();
    for e in std::fs::read_dir(&from).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, tmp.path().join("store").join(p.file_name().unwrap())).unwrap();
    }
    tmp
}

fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.clone(), std::fs::read(p).unwrap()))
        .collect();
    out.sort();
    out
}

/// Asserts the state of the scenario; with `restored`, as the broker
/// snapshots it after a start (online-since times are then the start's).
fn assert_scenario(m: &edgemq::store::Model, restored: bool) {
    use edgemq::store::recover::{Entry, Flight};
    let mut keys: Vec<_> = m.sessions.keys().copied().collect();
    keys.sort();
    assert_eq!(keys, [1, 2], "session 3 ended");
    let a = &m.sessions[&1];
    assert_eq!((a.client_id.as_str(), a.expiry_secs), ("gw-a", Some(86_400)));
    assert_eq!(a.subs.iter().collect::<Vec<_>>(), [(&"sensors/#".to_owned(), &(opts(QoS::ExactlyOnce), Some(7)))]);
    let q: Vec<_> = a.queue.iter().collect();
    assert_eq!(q, [(3, Entry::new(4, QoS::AtLeastOnce, false, vec![], None))]);
    let published = Flight::Published { seq: 2, entry: Entry::new(3, QoS::ExactlyOnce, false, vec![], None) };
    assert_eq!(a.inflight, [(11, Flight::Released), (12, published)]);
    assert!(a.in2.is_empty());
    let b = &m.sessions[&2];
    assert_eq!((b.client_id.as_str(), b.expiry_secs), ("gw-b", None));
    if !restored {
        assert_eq!((a.offline_since_ms, b.offline_since_ms), (0, 1_700_000_100_000));
    }
    assert_eq!(b.subs.iter().collect::<Vec<_>>(), [(&"sensors/+/temp".to_owned(), &(opts(QoS::AtLeastOnce), None))]);
    let q: Vec<_> = b.queue.iter().map(|(seq, e)| (seq, e.mid, e.qos)).collect();
    assert_eq!(q, [(0, 1, QoS::AtLeastOnce), (1, 2, QoS::AtLeastOnce), (2, 4, QoS::AtLeastOnce)]);
    assert!(b.inflight.is_empty());
    assert_eq!(b.in2.iter().copied().collect::<Vec<_>>(), [5], "PUBREL still owed for packet 5");
    let mut retained: Vec<_> = m.retained.values().cloned().collect();
    if restored {
        retained.iter_mut().for_each(|r| r.received_ms = 1_700_000_000_000);
    }
    retained.sort_by(|x, y| x.topic.cmp(&y.topic));
    assert_eq!(retained, [msg("status/gw-a", b"online", QoS::AtLeastOnce, true)]);
    let mut mids: Vec<_> = m.msgs.keys().collect();
    mids.sort();
    assert_eq!(mids, [1, 2, 3, 4]);
    let mut first = m.msgs.get(1).unwrap();
    if restored {
        // Times go through the restored `Instant`s: within a second.
        assert!(first.received_ms.abs_diff(1_700_000_000_000) < 1000);
        first.received_ms = 1_700_000_000_000;
    }
    assert_eq!(first, msg("sensors/a/temp", b"20.0", QoS::AtLeastOnce, false));
    let with_props = m.msgs.get(2).unwrap();
    assert_eq!((with_props.payload.as_ref(), with_props.qos), (&b"21.5"[..], QoS::ExactlyOnce));
    let props = with_props.props.unwrap();
    assert_eq!((props.content_type.as_deref(), props.message_expiry_interval), (Some("text/plain"), Some(3600)));
    assert_eq!(m.msgs.get(3).unwrap().topic, "sensors/a/hum");
    assert_eq!(m.msgs.get(4).unwrap().payload, Bytes::from_static(b"19.0"));
}

/// Opens a copy of `name`, checks that reading it changes nothing and
/// that it holds `records` records, and returns the recovered state.
fn read_unchanged(name: &str, records: usize) -> edgemq::store::Model {
    let tmp = copy_of(name);
    let before = files(&tmp.path().join("store"));
    let (journal, model, rec) = edgemq::store::open(&store_cfg(tmp.path())).unwrap();
    journal.close();
    assert_eq!((rec.records, rec.headerless_segments, rec.truncated_bytes), (records as u64, 0, 0));
    assert!(rec.losses.is_empty() && rec.moved_aside.is_empty());
    assert_eq!((model.max_key, model.max_mid), (3, 4));
    assert_scenario(&model, false);
    let after = files(&tmp.path().join("store"));
    if name == "store-v2" {
        assert_eq!(after, before, "reading changes nothing");
    } else {
        // Records of an older format are only read: the log goes on in a
        // segment of the current one, which replaces an older one that
        // holds nothing but its header.
        let header = edgemq::store::segment::HEADER_LEN;
        let kept: Vec<_> = before.iter().filter(|f| f.1.len() > header).cloned().collect();
        assert_eq!(after[..kept.len()], kept[..], "the older segments' records are left unchanged");
        let new = &after[kept.len()..];
        assert_eq!(new.len(), 1);
        assert_eq!((new[0].1.len(), new[0].1[8]), (header, edgemq::store::segment::FORMAT as u8));
    }
    model
}

#[test]
fn the_current_format_is_read_exactly_and_left_unchanged() {
    let model = read_unchanged("store-v2", scenario_v2().len());
    assert_interrupted(&model);
}

#[test]
fn format_1_is_read_exactly_and_left_unchanged() {
    let model = read_unchanged("store-v1", scenario().len());
    assert!(model.interrupted.is_empty());
}

/// The headerless format of the releases before the header is read, and
/// the snapshot the broker takes at start migrates it: once that is
/// durable, the old segments are deleted and the state is the same.
#[test]
fn the_headerless_format_is_read_and_migrated_by_the_start_snapshot() {
    use edgemq::session::state::QueueLimits;
    use std::time::{Duration, Instant, SystemTime};
    let tmp = copy_of("store-v0");
    let cfg = store_cfg(tmp.path());
    let (journal, model, rec) = edgemq::store::open(&cfg).unwrap();
    assert_eq!((rec.records, rec.headerless_segments, rec.truncated_bytes), (scenario().len() as u64, 3, 0));
    assert!(rec.losses.is_empty());
    assert_eq!((model.max_key, model.max_mid), (3, 4));
    assert_scenario(&model, false);
    // What the broker does at start: restore, snapshot, and once the
    // snapshot is durable, delete the segments before it.
    let journal = Arc::new(journal);
    let limits = QueueLimits { max_messages: 1000, max_bytes: 1 << 20, ..QueueLimits::default() };
    let mut router = edgemq::router::Router::new(limits);
    let now = Instant::now();
    router.enable_persistence(journal.clone(), model, (now, SystemTime::now()));
    let mut durable = journal.durable();
    let deadline = Instant::now() + Duration::from_secs(10);
    while *durable.borrow_and_update() < journal.appended() {
        assert!(Instant::now() < deadline, "the snapshot never became durable");
        std::thread::sleep(Duration::from_millis(1));
    }
    router.maintain_store(now);
    journal.close();
    drop(router);
    let (journal, model, rec) = edgemq::store::open(&cfg).unwrap();
    journal.close();
    assert_eq!((rec.headerless_segments, rec.truncated_bytes), (0, 0), "migrated: {rec:?}");
    assert_scenario(&model, true);
}
