//! A QoS 2 routing cut short by a power cut: the retransmission reaches
//! only the subscribers without a copy (exactly once, [MQTT-4.3.3]).

use std::time::Instant;

use super::super::tests::{drain, gone, msg, open_store, persistent, stored_router, sub, sub_shared};
use super::*;
use crate::protocol::QoS;
use crate::router::{ConnHandle, ConnectRequest, RouterMsg};
use crate::store::record::message_crc;

/// The log of a broker that lost power while routing a QoS 2 message of
/// `p` (session 1, packet identifier 7) on `t` to `s1` and `s2`: after
/// `s1`'s entry and before `s2`'s and `p`'s `In2`. Returns the sessions'
/// keys (p, s1, s2).
fn cut_inside_a_routing(dir: &std::path::Path) -> (SessionKey, SessionKey, SessionKey) {
    let (mut r, j) = stored_router(dir);
    let p = persistent(&mut r, "p", 1);
    let s1 = persistent(&mut r, "s1", 2);
    let s2 = persistent(&mut r, "s2", 3);
    sub(&mut r, s1.key, "t", QoS::ExactlyOnce);
    sub(&mut r, s2.key, "t", QoS::ExactlyOnce);
    drop(r);
    // What routing appends, up to the cut (see `Router::publish_exactly_once`).
    let m = crate::store::StoredMessage::from_message(
        &Message { origin: p.key, ..msg("t", QoS::ExactlyOnce, false, b"m") },
        Instant::now(),
        std::time::SystemTime::now(),
    );
    j.append(&Record::Msg { mid: 900, msg: m });
    j.append(&Record::Routing { key: p.key, pkid: 7, mid: 900, crc: message_crc("t", b"m"), got: Vec::new() });
    j.append(&Record::Enq {
        key: s1.key,
        seq: 1,
        mid: 900,
        qos: QoS::ExactlyOnce,
        retain: false,
        sub_ids: Vec::new(),
        shared: None,
    });
    j.close();
    (p.key, s1.key, s2.key)
}

/// The publisher retransmits packet identifier 7 with `payload`; returns
/// what each subscriber is then given.
fn retransmit(dir: &std::path::Path, payload: &'static [u8]) -> (Vec<String>, Vec<String>) {
    let (mut r, j) = stored_router(dir);
    let p = persistent(&mut r, "p", 1);
    let s1 = persistent(&mut r, "s1", 2);
    let s2 = persistent(&mut r, "s2", 3);
    assert!(p.session.lock().inbound_qos2_received(7), "the cut left no In2");
    r.handle(
        RouterMsg::Publish(Message { origin: p.key, ..msg("t", QoS::ExactlyOnce, false, payload) }),
        Instant::now(),
    );
    let names = |v: Vec<(String, QoS, bool)>| v.into_iter().map(|d| d.0).collect::<Vec<_>>();
    let got = (names(drain(&s1.session)), names(drain(&s2.session)));
    j.close();
    got
}

#[test]
fn replay_finds_a_routing_without_its_publishers_in2() {
    let dir = tempfile::tempdir().unwrap();
    let (p, s1, _) = cut_inside_a_routing(dir.path());
    let (_j, m) = open_store(dir.path());
    let i = &m.interrupted[&(p, 7)];
    assert_eq!((i.mid, i.crc, i.got.clone()), (900, message_crc("t", b"m"), vec![(s1, None)]));
}

#[test]
fn the_retransmission_of_an_interrupted_routing_reaches_only_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let (p, _, _) = cut_inside_a_routing(dir.path());
    // s1 has its copy from the log; s2 gets the retransmission; s1 not twice.
    assert_eq!(retransmit(dir.path(), b"m"), (vec!["m".to_string()], vec!["m".to_string()]));
    let (_j, m) = open_store(dir.path());
    assert!(m.interrupted.is_empty(), "the retransmission ends the routing");
    assert!(m.sessions[&p].in2.contains(&7));
}

#[test]
fn another_message_under_the_same_packet_identifier_goes_to_everyone() {
    // A publisher that lost its own state reuses the identifier for another
    // message: that one is new for every subscriber.
    let dir = tempfile::tempdir().unwrap();
    cut_inside_a_routing(dir.path());
    let (s1, s2) = retransmit(dir.path(), b"other");
    assert_eq!(s1, vec!["m".to_string(), "other".to_string()]);
    assert_eq!(s2, vec!["other".to_string()]);
}

#[test]
fn an_interrupted_routing_outlives_the_snapshots_and_compactions_before_the_retransmission() {
    let dir = tempfile::tempdir().unwrap();
    let (p, s1, _) = cut_inside_a_routing(dir.path());
    for _ in 0..2 {
        // Each start takes a snapshot; this one has the old segments deleted.
        let (mut r, j) = stored_router(dir.path());
        assert_eq!(r.durable.as_ref().unwrap().resume.interrupted()[&(p, 7)].got, vec![(s1, None)]);
        r.snapshot(Instant::now());
        let mut durable = j.durable();
        while *durable.borrow_and_update() < j.appended() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        r.maintain_store(Instant::now());
        j.close();
    }
    assert_eq!(retransmit(dir.path(), b"m"), (vec!["m".to_string()], vec!["m".to_string()]));
}

#[test]
fn a_publisher_that_starts_clean_leaves_nothing_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    cut_inside_a_routing(dir.path());
    {
        let (mut r, j) = stored_router(dir.path());
        let c = r.connect(
            ConnectRequest {
                user: None,
                check_owner: false,
                client_id: "p".into(),
                clean_start: true,
                expiry: None,
                conn: ConnHandle::new(9),
            },
            Instant::now(),
        );
        drop(c);
        r.snapshot(Instant::now());
        j.close();
    }
    let (_j, m) = open_store(dir.path());
    assert!(m.interrupted.is_empty());
}

/// A queued entry moving to another member of its shared group names the
/// same message body, so replay can tell a copy that a cut left with both
/// members from another message (`Model::drop_shared_copies`).
#[test]
fn a_shared_entry_moved_to_another_member_keeps_its_body_id() {
    let dir = tempfile::tempdir().unwrap();
    let (a_key, b_key, c_key) = {
        let (mut r, j) = stored_router(dir.path());
        let a = persistent(&mut r, "a", 1);
        let b = persistent(&mut r, "b", 2);
        sub_shared(&mut r, a.key, "$share/g/t");
        sub_shared(&mut r, b.key, "$share/g/t");
        gone(&mut r, b.key, 2, None);
        let c = persistent(&mut r, "c", 3);
        sub(&mut r, c.key, "u", QoS::AtLeastOnce);
        // To a, the only member online; another message after it; then a
        // leaves and b takes it.
        r.publish(msg("t", QoS::AtLeastOnce, false, b"m"));
        r.publish(msg("u", QoS::AtLeastOnce, false, b"n"));
        assert_eq!(a.session.lock().queued(), 1);
        gone(&mut r, a.key, 1, None);
        assert_eq!((a.session.lock().queued(), b.session.lock().queued()), (0, 1));
        j.close();
        (a.key, b.key, c.key)
    };
    let (_j, m) = open_store(dir.path());
    assert!(m.sessions[&a_key].queue.is_empty());
    let mid = |k: SessionKey| m.sessions[&k].queue.iter().map(|(_, e)| e.mid).collect::<Vec<_>>();
    let (b_mid, c_mid) = (mid(b_key), mid(c_key));
    assert_eq!((b_mid.len(), c_mid.len()), (1, 1));
    assert!(b_mid[0] < c_mid[0], "the moved entry names the body it had, not a new one");
    assert_eq!(&m.msgs.get(b_mid[0]).unwrap().payload[..], b"m");
}
