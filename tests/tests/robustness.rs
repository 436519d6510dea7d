//! Odd but possible inputs that reach deep into the broker (topic filter
//! parsing, shared-subscription names, long identifiers, random bytes):
//! the broker answers them per the specification and keeps serving a
//! well-behaved bystander.

mod common;

use common::*;

/// Invalid filters get SUBACK 0x8F (v5) / 0x80 (3.1.1) per filter
/// [MQTT-4.7.1-1], [MQTT-4.7.1-2], [MQTT-4.7.3-1], 5.0 4.8.2 for `$share`;
/// valid odd ones are granted. The broker keeps serving.
#[tokio::test]
async fn odd_topic_filters() {
    let b = TestBroker::start().await;
    let mut by = Bystander::new(b.addr, "filters-bystander").await;
    let cases: &[(&str, bool)] = &[
        ("#", true),
        ("+", true),
        ("/", true),
        ("+/#", true),
        ("//#", true),
        ("+/+/+", true),
        ("$share/g/t", true),
        ("$share/g/#", true),
        ("", false),
        ("a/#/b", false),
        ("a#", false),
        ("#/", false),
        ("a/b+", false),
        ("+a", false),
        ("$share/", false),
        ("$share/g", false),
        ("$share/g/", false),
        ("$share//t", false),
        ("$share/g+/t", false),
        ("$share/#/t", false),
    ];
    let mut v5 = Raw::v5(b.addr, "filters-v5").await;
    let mut v3 = Raw::v311(b.addr, "filters-v3").await;
    for (i, (filter, valid)) in cases.iter().enumerate() {
        let codes = v5.subscribe(i as u16 + 1, &[(filter, 1)]).await;
        assert_eq!(codes, vec![if *valid { 1 } else { 0x8F }], "v5 SUBSCRIBE {filter:?}");
        // Unsubscribe again so the bystander's traffic does not reach it.
        v5.send(&unsubscribe_packet(true, 1000, &[filter])).await;
        let ack = v5.expect_kind(UNSUBACK, "UNSUBACK").await;
        assert_eq!(ack.ack_codes(true), vec![if *valid { 0x00 } else { 0x11 }], "v5 UNSUBSCRIBE {filter:?}");
        by.check(&format!("v5 SUBSCRIBE {filter:?}")).await;
        if !filter.starts_with("$share") {
            v3.send(&subscribe_packet(false, i as u16 + 1, &[(filter, 1)])).await;
            match v3.recv_within(TIMEOUT).await {
                // [MQTT-3.9.3-2 area]: 0x80 is the 3.1.1 failure code;
                // closing the connection is also allowed [MQTT-4.8.0-1].
                Recv::Packet(p) if p.kind == SUBACK => {
                    assert_eq!(p.ack_codes(false), vec![if *valid { 1 } else { 0x80 }], "3.1.1 SUBSCRIBE {filter:?}");
                    v3.send(&unsubscribe_packet(false, 1000, &[filter])).await;
                    v3.expect_kind(UNSUBACK, "UNSUBACK").await;
                }
                Recv::Closed if !valid => v3 = Raw::v311(b.addr, "filters-v3").await,
                other => panic!("3.1.1 SUBSCRIBE {filter:?}: {other:?}"),
            }
        }
    }
    // Shared and plain subscriptions still route after all that.
    v5.subscribe(100, &[("$share/g/t", 1)]).await;
    v3.subscribe(100, &[("+", 1)]).await;
    let mut p = Raw::v311(b.addr, "filters-pub").await;
    p.publish("t", 1, false, 1, b"routed").await;
    assert_eq!(v5.receive_acked().await.payload, b"routed");
    assert_eq!(v3.receive_acked().await.payload, b"routed");
    by.check("after odd filters").await;
    b.shutdown().await;
}

/// Publishing to an empty topic name is a protocol violation
/// [MQTT-4.7.3-1] (3.1.1: close; 5.0 without a Topic Alias: DISCONNECT 0x82).
#[tokio::test]
async fn empty_topic_name() {
    let b = TestBroker::start().await;
    let mut by = Bystander::new(b.addr, "empty-topic-bystander").await;
    let mut c = Raw::v311(b.addr, "empty-topic").await;
    c.send(&publish_packet(false, "", 0, false, false, 0, b"x")).await;
    c.expect_closed("empty topic name [MQTT-4.7.3-1]").await;
    let mut c = Raw::v5(b.addr, "empty-topic-v5").await;
    c.send(&publish_packet(true, "", 0, false, false, 0, b"x")).await;
    let seen = c.expect_closed("v5 empty topic name").await;
    assert!(
        seen.len() == 1 && seen[0].kind == DISCONNECT && seen[0].reason() >= 0x80,
        "expected a DISCONNECT with an error reason, got {seen:?}"
    );
    by.check("empty topic name").await;
    b.shutdown().await;
}

/// Maximal lengths: a 65535-byte topic and client id are valid UTF-8
/// strings (1.5.3) and work.
#[tokio::test]
async fn maximal_topic_and_client_id() {
    let b = TestBroker::start().await;
    let long_id = "i".repeat(65535);
    let (mut c, _) = Raw::connect(b.addr, &ConnectOpts::new(Proto::V311, &long_id)).await;
    let topic = format!("long/{}", "t".repeat(65535 - 5));
    c.subscribe(1, &[(&topic, 1)]).await;
    c.publish(&topic, 1, false, 2, b"long").await;
    let m = c.receive_acked().await;
    assert_eq!((m.topic.len(), &m.payload[..]), (65535, &b"long"[..]));
    b.shutdown().await;
}

/// Deterministic pseudo-random bytes after a valid CONNECT: whatever the
/// broker makes of them, other clients keep being served and new
/// connections are accepted.
#[tokio::test]
async fn random_bytes_after_connect() {
    let b = TestBroker::start().await;
    let mut by = Bystander::new(b.addr, "fuzz-bystander").await;
    let mut seed: u64 = 0x5EED_1234_ABCD_0001;
    let mut next = move || {
        // xorshift64*
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        seed.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    for round in 0..60 {
        let v5 = round % 2 == 0;
        let proto = if v5 { Proto::V5 } else { Proto::V311 };
        let (mut c, _) = Raw::connect(b.addr, &ConnectOpts::new(proto, &format!("fuzz-{round}"))).await;
        let len = (next() % 64) as usize + 1;
        let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        // Mostly plausible first bytes: real packet types with random flags.
        bytes[0] = ((next() % 15 + 1) as u8) << 4 | (next() % 16) as u8;
        c.send(&bytes).await;
        // Let the broker chew on it, then drop the connection.
        let _ = c.recv_within(std::time::Duration::from_millis(20)).await;
        drop(c);
        if round % 10 == 9 {
            by.check(&format!("random bytes round {round}")).await;
        }
    }
    by.check("random bytes").await;
    let fresh = Raw::v311(b.addr, "after-fuzz").await;
    fresh.disconnect().await;
    b.shutdown().await;
}
