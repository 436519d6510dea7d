use bytes::Bytes;

use super::*;
use crate::protocol::QoS;

fn msg(p: &'static [u8]) -> StoredMessage {
    StoredMessage {
        topic: "t".into(),
        payload: Bytes::from_static(p),
        qos: QoS::AtLeastOnce,
        retain: false,
        props: None,
        origin: 0,
        received_ms: 1,
    }
}

fn enq(key: u64, seq: u64, mid: u64) -> Record {
    Record::Enq { key, seq, mid, qos: QoS::AtLeastOnce, retain: false, sub_ids: vec![], shared: None }
}

fn session(key: u64) -> Record {
    Record::Session { key, client_id: format!("c{key}"), expiry_secs: None, offline_since_ms: 0 }
}

fn replay(records: Vec<Record>) -> Model {
    let mut r = Replay::default();
    for rec in records {
        r.apply(rec);
    }
    r.finish()
}

#[test]
fn queue_inflight_and_acks() {
    let m = replay(vec![
        session(1),
        Record::Msg { mid: 1, msg: msg(b"a") },
        enq(1, 0, 1),
        Record::Msg { mid: 2, msg: msg(b"b") },
        enq(1, 1, 2),
        Record::Msg { mid: 3, msg: msg(b"c") },
        enq(1, 2, 3),
        Record::Pop { key: 1, seq: 0, pkid: 1 },
        Record::Pop { key: 1, seq: 1, pkid: 2 },
        Record::Ack { key: 1, pkid: 1 },
        Record::Rel { key: 1, pkid: 2 },
        Record::In2 { key: 1, pkid: 9 },
        Record::In2 { key: 1, pkid: 10 },
        Record::In2Done { key: 1, pkid: 9 },
    ]);
    let s = &m.sessions[&1];
    assert_eq!(s.queue.keys().collect::<Vec<_>>(), vec![2]);
    assert_eq!(s.inflight, vec![(2, Flight::Released)]);
    assert_eq!(s.in2.iter().copied().collect::<Vec<_>>(), vec![10]);
    // Bodies of acknowledged messages are pruned.
    assert_eq!(m.msgs.keys().collect::<Vec<_>>(), vec![3]);
}

#[test]
fn session_end_and_subscriptions() {
    let options = SubOptions::default();
    let m = replay(vec![
        session(1),
        Record::Sub { key: 1, filter: "a".into(), options, id: None },
        Record::Sub { key: 1, filter: "b".into(), options, id: Some(3) },
        Record::Unsub { key: 1, filter: "a".into() },
        session(2),
        Record::SessionEnd { key: 2 },
    ]);
    assert_eq!(m.sessions.len(), 1);
    assert_eq!(m.sessions[&1].subs.keys().cloned().collect::<Vec<_>>(), vec!["b".to_owned()]);
    assert_eq!(m.max_key, 2);
}

#[test]
fn replayed_pop_after_snapshot_is_harmless() {
    // The snapshot already shows seq 0 in flight; the connection's Pop for
    // it lands after the snapshot's record of the session.
    let m = replay(vec![
        session(1),
        Record::Msg { mid: 1, msg: msg(b"a") },
        enq(1, 0, 1),
        Record::SnapshotBegin { id: 1 },
        Record::Snap(Box::new(session(1))),
        Record::Snap(Box::new(Record::Msg { mid: 1, msg: msg(b"a") })),
        Record::Snap(Box::new(enq(1, 0, 1))),
        Record::Snap(Box::new(Record::Pop { key: 1, seq: 0, pkid: 5 })),
        Record::Pop { key: 1, seq: 0, pkid: 5 },
        Record::SnapshotEnd { id: 1 },
        Record::Ack { key: 1, pkid: 5 },
    ]);
    let s = &m.sessions[&1];
    assert!(s.queue.is_empty() && s.inflight.is_empty());
}

#[test]
fn incomplete_snapshot_is_ignored_but_other_records_count() {
    let m = replay(vec![
        session(1),
        Record::Msg { mid: 1, msg: msg(b"a") },
        enq(1, 0, 1),
        Record::SnapshotBegin { id: 7 },
        Record::Snap(Box::new(session(1))),
        Record::Pop { key: 1, seq: 0, pkid: 1 },
        // Torn here: no SnapshotEnd.
    ]);
    let s = &m.sessions[&1];
    assert_eq!(s.inflight.len(), 1, "the Pop made during the snapshot still counts");
    assert!(s.queue.is_empty());
}

#[test]
fn completed_snapshot_replaces_older_state() {
    let m = replay(vec![
        session(1),
        session(2),
        Record::Retain(StoredMessage { retain: true, ..msg(b"old") }),
        Record::SnapshotBegin { id: 1 },
        Record::Snap(Box::new(session(2))),
        Record::SnapshotEnd { id: 1 },
    ]);
    // Session 1 and the retained message were not in the snapshot.
    assert_eq!(m.sessions.keys().copied().collect::<Vec<_>>(), vec![2]);
    assert!(m.retained.is_empty());
}
