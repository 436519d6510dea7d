//! The durability gate's rules, one test each, driving the machine without
//! sockets: the router's progress and the durable position are fed by hand.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::LogPosition;
use crate::protocol::{Ack, DisconnectReason, Packet, QoS, Version};
use crate::session::machine::tests::{cfg, connect_packet, publish, subscribe, Client, Harness};
use crate::session::{Close, MachineConfig};
use crate::store::Lsn;

/// A log whose position the test moves.
#[derive(Debug, Default)]
struct Log(AtomicU64);

impl LogPosition for Log {
    fn appended(&self) -> Lsn {
        self.0.load(Ordering::Relaxed)
    }
}

fn gated(log: &Arc<Log>) -> MachineConfig {
    MachineConfig { log: Some(log.clone()), ..cfg() }
}

fn client(h: &mut Harness, log: &Arc<Log>, version: Version, id: &str) -> Client {
    let (c, sent, closed) = h.client_with(gated(log), connect_packet(version, id, true));
    assert!(matches!(sent.first(), Some(Packet::ConnAck(_))) && closed.is_none(), "CONNACK is never held");
    c
}

fn kinds(sent: &[Packet]) -> Vec<&'static str> {
    sent.iter()
        .map(|p| match p {
            Packet::PubAck(_) => "PUBACK",
            Packet::PubRec(_) => "PUBREC",
            Packet::PubComp(_) => "PUBCOMP",
            Packet::SubAck(_) => "SUBACK",
            Packet::Publish(_) => "PUBLISH",
            Packet::PubRel(_) => "PUBREL",
            _ => "other",
        })
        .collect()
}

/// Rule 1: a PUBACK leaves once the router processed the PUBLISH it
/// answers and the log is durable past the router's position then.
#[test]
fn puback_waits_for_the_router_and_the_disk() {
    let (mut h, log) = (Harness::new(), Arc::new(Log::default()));
    let mut c = client(&mut h, &log, Version::V311, "p");
    log.0.store(10, Ordering::Relaxed);
    let (sent, _) = h.feed(&mut c, publish("t", QoS::AtLeastOnce, 1, b"x"));
    assert!(sent.is_empty(), "held: not yet processed, not durable");
    assert!(c.m.gate_waiting());
    c.m.handle_durable(100);
    assert!(h.run(&mut c).0.is_empty(), "durable, but the router has not processed it");
    c.m.handle_processed(1, 120);
    assert!(h.run(&mut c).0.is_empty(), "processed, but its records (to 120) are not durable");
    c.m.handle_durable(120);
    assert_eq!(h.run(&mut c).0, vec![Packet::PubAck(Ack::ok(1))]);
    assert!(!c.m.gate_waiting());
}

/// Rule 1: an acknowledgement with no router message behind it (PUBCOMP)
/// still waits for every record appended before it (the released QoS 2
/// state), and acknowledgements leave in the order they were made.
#[test]
fn acknowledgements_wait_for_earlier_records_and_keep_their_order() {
    let (mut h, log) = (Harness::new(), Arc::new(Log::default()));
    let mut c = client(&mut h, &log, Version::V311, "q2");
    log.0.store(5, Ordering::Relaxed);
    h.feed(&mut c, publish("t", QoS::ExactlyOnce, 7, b"x"));
    c.m.handle_processed(1, 5);
    c.m.handle_durable(5);
    assert_eq!(kinds(&h.run(&mut c).0), ["PUBREC"]);
    log.0.store(9, Ordering::Relaxed);
    h.feed(&mut c, publish("t", QoS::AtLeastOnce, 8, b"y"));
    log.0.store(11, Ordering::Relaxed);
    let (sent, _) = h.feed(&mut c, Packet::PubRel(Ack::ok(7)));
    assert!(sent.is_empty());
    c.m.handle_durable(11);
    assert!(h.run(&mut c).0.is_empty(), "the PUBACK before the PUBCOMP waits for the router; so does the PUBCOMP");
    c.m.handle_processed(2, 9);
    assert_eq!(kinds(&h.run(&mut c).0), ["PUBACK", "PUBCOMP"]);
}

/// Rule 2: an outgoing QoS 2 PUBLISH waits until its packet identifier is
/// durable; a QoS 1 one behind it keeps its place.
#[test]
fn qos2_delivery_waits_for_its_record_and_later_ones_keep_order() {
    let (mut h, log) = (Harness::new(), Arc::new(Log::default()));
    let mut s = client(&mut h, &log, Version::V311, "sub");
    // As for a persistent session (the harness's router has no store).
    s.m.set_session_recorded(true);
    h.feed(&mut s, subscribe("d/#", QoS::ExactlyOnce));
    s.m.handle_processed(1, 0);
    assert_eq!(kinds(&h.run(&mut s).0), ["SUBACK"]);
    let mut p = client(&mut h, &log, Version::V311, "pub");
    log.0.store(30, Ordering::Relaxed);
    h.feed(&mut p, publish("d/2", QoS::ExactlyOnce, 1, b"two"));
    h.feed(&mut p, publish("d/1", QoS::AtLeastOnce, 2, b"one"));
    assert!(h.run(&mut s).0.is_empty(), "the QoS 2 PUBLISH waits for position 30; the QoS 1 one behind it");
    s.m.handle_durable(30);
    let sent = h.run(&mut s).0;
    let topics: Vec<_> = sent
        .iter()
        .map(|p| match p {
            Packet::Publish(p) => (p.topic.as_str(), p.qos),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(topics, [("d/2", QoS::ExactlyOnce), ("d/1", QoS::AtLeastOnce)]);
}

/// Rule 3: while a SUBACK is held no delivery leaves (retained messages
/// follow their SUBACK).
#[test]
fn deliveries_wait_behind_a_held_suback() {
    let (mut h, log) = (Harness::new(), Arc::new(Log::default()));
    let mut p = client(&mut h, &log, Version::V311, "retainer");
    let retained = match publish("r/t", QoS::AtMostOnce, 0, b"kept") {
        Packet::Publish(mut x) => {
            x.retain = true;
            Packet::Publish(x)
        }
        _ => unreachable!(),
    };
    h.feed(&mut p, retained);
    let mut s = client(&mut h, &log, Version::V311, "late");
    let (sent, _) = h.feed(&mut s, subscribe("r/#", QoS::AtMostOnce));
    assert!(sent.is_empty(), "neither the SUBACK nor the retained message");
    s.m.handle_processed(1, 0);
    assert_eq!(kinds(&h.run(&mut s).0), ["SUBACK", "PUBLISH"]);
}

/// Receive Maximum counts inbound QoS 1 whose PUBACK is held, not only
/// QoS 2 (MQTT 5.0 section 3.3.4) [MQTT-3.3.4-7], [MQTT-3.3.4-8]: the
/// test configuration's Receive Maximum is 3.
#[test]
fn held_pubacks_count_against_receive_maximum() {
    let (mut h, log) = (Harness::new(), Arc::new(Log::default()));
    let mut c = client(&mut h, &log, Version::V5, "eager");
    for pkid in 1..=3 {
        let (sent, closed) = h.feed(&mut c, publish("t", QoS::AtLeastOnce, pkid, b"x"));
        assert!(sent.is_empty() && closed.is_none(), "{pkid} of 3 unacknowledged is allowed");
    }
    let (sent, closed) = h.feed(&mut c, publish("t", QoS::AtLeastOnce, 4, b"x"));
    assert_eq!(closed, Some(Close::Error(DisconnectReason::ReceiveMaximumExceeded)));
    assert!(matches!(sent.last(), Some(Packet::Disconnect(d)) if d.reason == DisconnectReason::ReceiveMaximumExceeded));
    // Once acknowledged, the count falls again (a fresh client).
    let mut c = client(&mut h, &log, Version::V5, "patient");
    for pkid in 1..=6 {
        let (_, closed) = h.feed(&mut c, publish("t", QoS::AtLeastOnce, pkid, b"x"));
        assert!(closed.is_none());
        c.m.handle_processed(u64::from(pkid), 0);
        assert_eq!(kinds(&h.run(&mut c).0), ["PUBACK"]);
    }
}

/// Without a store nothing is held.
#[test]
fn without_a_store_nothing_waits() {
    let mut h = Harness::new();
    let (mut c, _, _) = h.client(connect_packet(Version::V311, "plain", true));
    let (sent, _) = h.feed(&mut c, publish("t", QoS::AtLeastOnce, 1, b"x"));
    assert_eq!(sent, vec![Packet::PubAck(Ack::ok(1))]);
    assert!(!c.m.gate_waiting());
}

/// An acknowledgement with nothing to wait for leaves at once: a SUBACK of
/// only refused filters (no router message), with the log durable that far.
#[test]
fn an_acknowledgement_with_nothing_to_wait_for_leaves_at_once() {
    let (mut h, log) = (Harness::new(), Arc::new(Log::default()));
    let mut c = client(&mut h, &log, Version::V311, "nothing");
    log.0.store(4, Ordering::Relaxed);
    c.m.handle_durable(4);
    let (sent, _) = h.feed(&mut c, subscribe("a/#/b", QoS::AtMostOnce));
    assert_eq!(kinds(&sent), ["SUBACK"]);
    assert!(!c.m.gate_waiting());
}

/// Rule 2 applies to recorded sessions only: a clean session's QoS 2
/// PUBLISH and PUBREL have no record to wait for and go at once.
#[test]
fn a_clean_sessions_qos2_packets_do_not_wait_for_the_disk() {
    let (mut h, log) = (Harness::new(), Arc::new(Log::default()));
    let mut s = client(&mut h, &log, Version::V311, "clean-sub");
    h.feed(&mut s, subscribe("c/#", QoS::ExactlyOnce));
    s.m.handle_processed(1, 0);
    assert_eq!(kinds(&h.run(&mut s).0), ["SUBACK"]);
    let mut p = client(&mut h, &log, Version::V311, "clean-pub");
    log.0.store(50, Ordering::Relaxed);
    h.feed(&mut p, publish("c/t", QoS::ExactlyOnce, 1, b"x"));
    let sent = h.run(&mut s).0;
    assert_eq!(kinds(&sent), ["PUBLISH"], "not held for position 50");
    let Packet::Publish(d) = &sent[0] else { unreachable!() };
    let (sent, _) = h.feed(&mut s, Packet::PubRec(Ack::ok(d.pkid)));
    assert_eq!(kinds(&sent), ["PUBREL"]);
}

/// Rule 4: a CONNACK whose session's end is not durable yet waits for it,
/// and every packet waits behind it (a PINGRESP, a SUBACK): the client
/// hears of its new session only once a power cut cannot undo the end of
/// the old one [MQTT-3.2.2-2], and nothing before the CONNACK [MQTT-3.2.0-1].
#[test]
fn connack_waits_for_the_old_sessions_end_and_everything_waits_behind_it() {
    let (mut h, log) = (Harness::new(), Arc::new(Log::default()));
    h.connack_after = 40;
    log.0.store(40, Ordering::Relaxed);
    let (mut c, sent, closed) = h.client_with(gated(&log), connect_packet(Version::V5, "ended", true));
    assert!(sent.is_empty() && closed.is_none(), "CONNACK held: {sent:?}");
    assert!(c.m.gate_waiting(), "the driver must watch the log");
    assert!(h.feed(&mut c, Packet::PingReq).0.is_empty(), "PINGRESP behind the CONNACK");
    log.0.store(45, Ordering::Relaxed);
    h.feed(&mut c, subscribe("s/#", QoS::AtLeastOnce));
    c.m.handle_processed(1, 45);
    c.m.handle_durable(39);
    assert!(h.run(&mut c).0.is_empty(), "not durable past the end yet");
    c.m.handle_durable(40);
    let sent = h.run(&mut c).0;
    assert!(matches!(sent.first(), Some(Packet::ConnAck(a)) if !a.session_present), "{sent:?}");
    assert!(matches!(sent.get(1), Some(Packet::PingResp)), "{sent:?}");
    assert_eq!(sent.len(), 2, "the SUBACK still waits for its own records (to 45)");
    c.m.handle_durable(45);
    assert_eq!(kinds(&h.run(&mut c).0), ["SUBACK"]);
    assert!(!c.m.gate_waiting());
}

/// Rule 4: a connection closed while its CONNACK is held (taken over by a
/// newer connection) sends the CONNACK before its DISCONNECT
/// [MQTT-3.2.0-1]: the newer connection's CONNACK is the one that counts.
#[test]
fn a_held_connack_goes_before_the_disconnect_of_a_takeover() {
    let (mut h, log) = (Harness::new(), Arc::new(Log::default()));
    h.connack_after = 7;
    log.0.store(7, Ordering::Relaxed);
    let (mut c, sent, _) = h.client_with(gated(&log), connect_packet(Version::V5, "taken", true));
    assert!(sent.is_empty());
    c.m.closed_by_router(DisconnectReason::SessionTakenOver);
    let (sent, closed) = h.run(&mut c);
    assert!(matches!(sent.first(), Some(Packet::ConnAck(_))), "{sent:?}");
    assert!(
        matches!(sent.get(1), Some(Packet::Disconnect(d)) if d.reason == DisconnectReason::SessionTakenOver),
        "{sent:?}"
    );
    assert_eq!(closed, Some(Close::TakenOver));
}
