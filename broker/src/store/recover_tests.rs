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
    Record::Session { key, client_id: format!("c{key}"), expiry_secs: None, offline_since_ms: 0, user: None }
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

#[test]
fn bodies_in_a_scratch_file_read_back_across_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = Replay::with_scratch(dir.path().to_owned());
    r.apply(session(1));
    let n = 20_000u64;
    for mid in 1..=n {
        let payload: &'static [u8] = Box::leak(format!("body {mid}").into_bytes().into_boxed_slice());
        r.apply(Record::Msg { mid, msg: msg(payload) });
        r.apply(enq(1, mid, mid));
    }
    // A snapshot in the middle gets its own scratch file.
    r.apply(Record::SnapshotBegin { id: 1 });
    r.apply(Record::Snap(Box::new(session(1))));
    r.apply(Record::Snap(Box::new(Record::Msg { mid: 7, msg: msg(b"body 7") })));
    r.apply(Record::Snap(Box::new(enq(1, 7, 7))));
    let m = r.finish();
    assert_eq!(m.sessions[&1].queue.len(), n as usize, "incomplete snapshot ignored");
    for mid in [1, 2, 9_999, 10_000, n] {
        assert_eq!(m.msgs.get(mid).unwrap().payload, format!("body {mid}").into_bytes());
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "scratch files are unlinked at once");
}

#[test]
fn a_large_backlog_is_streamed_to_scratch_files_not_held_in_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = Replay::with_scratch(dir.path().to_owned());
    r.apply(session(1));
    let n = 300_000u64;
    let body = |mid: u64| StoredMessage { received_ms: mid, ..msg(b"sixty-four bytes, more or less") };
    for mid in 1..=n {
        r.apply(Record::Msg { mid, msg: body(mid) });
        r.apply(enq(1, mid, mid));
        // Delivered from the front while the backlog grows: in flight,
        // acknowledged but the last few, and now and then one discarded.
        if mid % 3 == 0 {
            let seq = mid / 3;
            let pkid = (seq % 100 + 1) as u16;
            if seq % 1000 == 0 {
                r.apply(Record::Pop { key: 1, seq, pkid: 0 });
            } else {
                r.apply(Record::Pop { key: 1, seq, pkid });
                if seq < n / 3 - 10 {
                    r.apply(Record::Ack { key: 1, pkid });
                }
            }
        }
    }
    let m = r.finish();
    let s = &m.sessions[&1];
    assert!(s.queue.spooled_to_file(), "the queue went to a scratch file");
    assert_eq!(s.queue.in_memory(), 0, "the model holds no queue entry");
    assert_eq!(s.queue.len(), (n - n / 3) as usize);
    let mut want = n / 3 + 1;
    for (seq, e) in s.queue.iter() {
        assert_eq!((seq, e.mid), (want, want), "every entry, in order");
        want += 1;
    }
    assert_eq!(want, n + 1);
    // The pops left unacknowledged are in flight, their entries read back.
    let flying: Vec<u64> = s
        .inflight
        .iter()
        .map(|f| match &f.1 {
            Flight::Published { seq, entry } => {
                assert_eq!(*seq, entry.mid);
                *seq
            }
            Flight::Released => panic!("nothing was released"),
        })
        .collect();
    assert_eq!(flying, (n / 3 - 10..n / 3).collect::<Vec<_>>(), "the last pop discarded its entry");
    // Bodies of what left the queue are pruned; the rest read back.
    assert_eq!(m.msgs.len(), s.queue.len() + flying.len());
    assert_eq!(m.msgs.get(n).map(|b| b.received_ms), Some(n));
    assert!(m.msgs.get(5).is_none());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "scratch files are unlinked at once");
}

fn shared_enq(key: u64, seq: u64, mid: u64, group: &str) -> Record {
    Record::Enq { key, seq, mid, qos: QoS::ExactlyOnce, retain: false, sub_ids: vec![], shared: Some(group.into()) }
}

/// A cut between a leaving member's entry moving to another member and
/// its removal leaves both: one copy stays in the group [MQTT-4.8.2].
#[test]
fn a_shared_entry_left_with_two_members_by_a_cut_is_kept_once() {
    let m = replay(vec![
        session(1),
        session(2),
        session(3),
        Record::Msg { mid: 1, msg: msg(b"a") },
        shared_enq(2, 0, 1, "$share/g/t"),
        // Moved to 1 (the body written again under its id), not yet popped at 2.
        Record::Msg { mid: 1, msg: msg(b"a") },
        shared_enq(1, 0, 1, "$share/g/t"),
        // Another group's copy of the same message, and a second message.
        shared_enq(3, 0, 1, "$share/h/t"),
        Record::Msg { mid: 2, msg: msg(b"b") },
        shared_enq(2, 1, 2, "$share/g/t"),
    ]);
    let queued = |k: u64| m.sessions[&k].queue.iter().map(|(_, e)| e.mid).collect::<Vec<_>>();
    assert_eq!((queued(1), queued(2), queued(3)), (vec![1], vec![2], vec![1]));
}

#[test]
fn of_two_copies_of_a_shared_entry_the_one_in_flight_stays() {
    let m = replay(vec![
        session(1),
        session(2),
        Record::Msg { mid: 1, msg: msg(b"a") },
        shared_enq(2, 0, 1, "$share/g/t"),
        shared_enq(1, 0, 1, "$share/g/t"),
        Record::Pop { key: 2, seq: 0, pkid: 5 },
    ]);
    assert!(m.sessions[&1].queue.is_empty());
    assert_eq!(m.sessions[&2].inflight.len(), 1);
}
