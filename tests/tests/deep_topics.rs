//! Topics and filters of tens of thousands of levels: one such packet
//! once overflowed the broker's stack and took every client down. Beyond
//! `max_topic_levels` they are refused; within it (raised to the protocol
//! maximum) the subscription and retained trees walk them without
//! recursion. A bystander is served throughout.

mod common;

use common::*;

/// 65,535 `/`: 65,536 empty levels, a legal 3.1.1 filter and topic name.
fn deep() -> String {
    "/".repeat(65_535)
}

/// The one-packet crash: an anonymous 3.1.1 client subscribes to a filter
/// of 65,536 empty levels and disconnects. With the default limit (128
/// levels) the filter is refused with the SUBACK failure code, and the
/// same for MQTT 5 (0x8F Topic Filter invalid) and for a shared one.
#[tokio::test]
async fn a_subscribe_of_65536_levels_is_refused_and_harms_no_one() {
    let b = TestBroker::start().await;
    let mut by = Bystander::new(b.addr, "deep-sub-bystander").await;
    let deep = deep();
    let mut v3 = Raw::v311(b.addr, "deep-sub-v3").await;
    assert_eq!(v3.subscribe(1, &[(&deep, 1)]).await, vec![0x80], "3.1.1 failure code [MQTT-3.9.3-2]");
    v3.disconnect().await;
    by.check("3.1.1 SUBSCRIBE of 65,536 levels").await;
    let mut v5 = Raw::v5(b.addr, "deep-sub-v5").await;
    let shared = format!("$share/g/{}", &deep[..65_000]);
    assert_eq!(v5.subscribe(1, &[(&deep, 1), ("ok/+", 1), (&shared, 1)]).await, vec![0x8F, 1, 0x8F]);
    v5.disconnect().await;
    by.check("v5 SUBSCRIBE of 65,536 levels").await;
    // Exactly 128 levels are within the default limit, 129 are not.
    let mut c = Raw::v5(b.addr, "deep-sub-limit").await;
    let (at, over) = ("/".repeat(127), "/".repeat(128));
    assert_eq!(c.subscribe(1, &[(&at, 0), (&over, 0)]).await, vec![0, 0x8F]);
    c.disconnect().await;
    b.shutdown().await;
}

/// A PUBLISH (retained or not) to a topic beyond the limit is not routed
/// and not retained: MQTT 5 QoS 1/2 get PUBACK/PUBREC 0x90 Topic Name
/// invalid, MQTT 5 QoS 0 DISCONNECT 0x90, MQTT 3.1.1 (which has no way to
/// refuse a message) a closed connection. A will beyond it refuses CONNECT.
#[tokio::test]
async fn a_publish_or_will_of_65536_levels_is_refused() {
    let b = TestBroker::start().await;
    let mut by = Bystander::new(b.addr, "deep-pub-bystander").await;
    let deep = deep();
    let mut all = Raw::v5(b.addr, "deep-pub-all").await;
    assert_eq!(all.subscribe(1, &[("#", 1)]).await, vec![1]);

    let mut v5 = Raw::v5(b.addr, "deep-pub-v5").await;
    v5.send(&publish_packet(true, &deep, 1, true, false, 7, b"r")).await;
    let ack = v5.expect_kind(PUBACK, "PUBACK").await;
    assert_eq!((ack.pid(), ack.body[2]), (7, 0x90), "PUBACK 0x90 Topic Name invalid");
    v5.send(&publish_packet(true, &deep, 2, false, false, 8, b"x")).await;
    let rec = v5.expect_kind(PUBREC, "PUBREC").await;
    assert_eq!((rec.pid(), rec.body[2]), (8, 0x90), "PUBREC 0x90 Topic Name invalid");
    v5.send(&publish_packet(true, &deep, 0, false, false, 0, b"x")).await;
    let seen = v5.expect_closed("v5 QoS 0 PUBLISH of 65,536 levels").await;
    assert_v5_disconnect(&seen, 0x90, "v5 QoS 0 PUBLISH of 65,536 levels");
    by.check("v5 PUBLISH of 65,536 levels").await;

    let mut v3 = Raw::v311(b.addr, "deep-pub-v3").await;
    v3.send(&publish_packet(false, &deep, 1, true, false, 1, b"r")).await;
    let seen = v3.expect_closed("3.1.1 PUBLISH of 65,536 levels").await;
    assert!(seen.is_empty(), "no PUBACK for a refused message: {seen:?}");
    by.check("3.1.1 PUBLISH of 65,536 levels").await;

    // A will: MQTT 5 CONNACK 0x90; 3.1.1 closed without CONNACK.
    let o = ConnectOpts::new(Proto::V5, "deep-will-v5").will(&deep, b"w", 1, true);
    let mut c = Raw::open(b.addr).await;
    c.send(&connect_packet(&o)).await;
    assert_refused(&c.expect_closed("v5 will of 65,536 levels").await, 0x90, "v5 will of 65,536 levels");
    let o = ConnectOpts::new(Proto::V311, "deep-will-v3").will(&deep, b"w", 1, true);
    let mut c = Raw::open(b.addr).await;
    c.send(&connect_packet(&o)).await;
    assert!(c.expect_closed("3.1.1 will of 65,536 levels").await.is_empty());
    by.check("wills of 65,536 levels").await;

    // Nothing of it was routed or retained: `#` sees only the bystander.
    only_bystander(&mut all, "a refused message was routed").await;
    let mut late = Raw::v5(b.addr, "deep-pub-late").await;
    assert_eq!(late.subscribe(1, &[("#", 1)]).await, vec![1]);
    only_bystander(&mut late, "a refused message was retained").await;
    b.shutdown().await;
}

/// Reads until `c` is quiet; every message must be the bystander's.
async fn only_bystander(c: &mut Raw, what: &str) {
    while let Recv::Packet(pk) = c.recv_within(QUIET).await {
        let m = pk.publish(c.v5);
        assert!(m.topic.starts_with("bystander/"), "{what}: {} bytes of topic", m.topic.len());
        c.send(&ack_packet(PUBACK, m.pid)).await;
    }
}

/// With the limit raised to the protocol's maximum, 65,535 levels go
/// through every walk: subscribe, match, retain, deliver retained on
/// subscribe, unsubscribe, a clean session's end, clearing the retained
/// message.
#[tokio::test]
async fn the_trees_walk_65535_levels_without_recursion() {
    let b = TestBroker::start_with(|c| c.max_topic_levels = u16::MAX).await;
    let mut by = Bystander::new(b.addr, "deep-walk-bystander").await;
    let topic = "/".repeat(65_534);
    let wild = format!("{}#", "/".repeat(65_533));
    let mut s = Raw::v311(b.addr, "deep-walk-sub").await;
    assert_eq!(s.subscribe(1, &[(&topic, 1), (&wild, 1)]).await, vec![1, 1]);
    let mut p = Raw::v311(b.addr, "deep-walk-pub").await;
    p.publish(&topic, 1, true, 1, b"deep").await;
    // Overlapping filters: one copy per matching filter, or one in all.
    let m = s.receive_acked().await;
    assert_eq!((m.topic.len(), &m.payload[..]), (65_534, &b"deep"[..]));
    while let Recv::Packet(pk) = s.recv_within(QUIET).await {
        assert_eq!(pk.publish(false).payload, b"deep");
        s.send(&ack_packet(PUBACK, pk.publish(false).pid)).await;
    }
    // A new subscriber gets the retained message through the `#` walk.
    let mut late = Raw::v311(b.addr, "deep-walk-late").await;
    assert_eq!(late.subscribe(1, &[("#", 1)]).await, vec![1]);
    let m = late.receive_acked().await;
    assert!(m.retain && m.topic.len() == 65_534);
    late.disconnect().await;
    s.send(&unsubscribe_packet(false, 2, &[&topic])).await;
    s.expect_kind(UNSUBACK, "UNSUBACK").await;
    // The clean session ends: its other deep filter leaves the tree.
    s.disconnect().await;
    p.publish(&topic, 1, true, 2, b"").await;
    by.check("65,535 levels through every walk").await;
    let mut empty = Raw::v311(b.addr, "deep-walk-empty").await;
    assert_eq!(empty.subscribe(1, &[("#", 1)]).await, vec![1]);
    assert!(matches!(empty.recv_within(QUIET).await, Recv::TimedOut), "the retained message was cleared");
    b.shutdown().await;
}
