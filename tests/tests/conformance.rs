//! Gaps an independent conformance run found, each checked against the
//! specification: strings with U+0000, CONNECT payloads longer than their
//! flags say, the client's Maximum Packet Size on CONNACK, MQTT 3.1's DUP
//! on a resent PUBREL. A bystander is served throughout.

mod common;

use common::*;

/// Connects with `proto`, sends `bytes`, expects the close; returns what
/// came before it. The bystander must be unharmed.
async fn closes_after_connect(b: &TestBroker, by: &mut Bystander, proto: Proto, what: &str, bytes: &[u8]) -> Vec<Pkt> {
    let (mut c, _) = Raw::connect(b.addr, &ConnectOpts::new(proto, &format!("bad-{proto:?}"))).await;
    c.send(bytes).await;
    let seen = c.expect_closed(what).await;
    by.check(what).await;
    seen
}

/// What a closed connection saw: nothing (3.1.1) or DISCONNECT 0x81
/// Malformed Packet (5).
fn assert_malformed(seen: &[Pkt], proto: Proto, what: &str) {
    if proto == Proto::V5 {
        assert_v5_disconnect(seen, 0x81, what);
    } else {
        assert!(seen.is_empty(), "{what}: expected a bare close, got {seen:?}");
    }
}

/// A string with U+0000 closes the connection [MQTT-1.5.3-2]
/// [MQTT-1.5.4-2] [MQTT-4.7.3-2]: in a topic filter (not a SUBACK failure
/// code), in UNSUBSCRIBE, in a v5 PUBLISH topic (0x81 Malformed, not 0x90),
/// in a v5 user property.
#[tokio::test]
async fn u0000_in_any_string_closes_the_connection() {
    let b = TestBroker::start().await;
    let mut by = Bystander::new(b.addr, "u0000-bystander").await;
    for proto in [Proto::V311, Proto::V5] {
        let v5 = proto == Proto::V5;
        let cases = [
            ("U+0000 in a SUBSCRIBE filter", subscribe_packet(v5, 1, &[("ok", 0), ("a\0b", 1)])),
            ("U+0000 in an UNSUBSCRIBE filter", unsubscribe_packet(v5, 1, &["a\0b"])),
            ("U+0000 in a PUBLISH topic", publish_packet(v5, "a\0b", 1, false, false, 1, b"x")),
        ];
        for (what, bytes) in cases {
            let seen = closes_after_connect(&b, &mut by, proto, what, &bytes).await;
            assert_malformed(&seen, proto, &format!("{proto:?} {what}"));
        }
    }
    let props = user_prop("k\0", "v");
    let bytes = publish_packet_props(true, "u/t", 1, false, false, 1, &props, b"x");
    let seen = closes_after_connect(&b, &mut by, Proto::V5, "U+0000 in a user property", &bytes).await;
    assert_malformed(&seen, Proto::V5, "U+0000 in a user property");
    b.shutdown().await;
}

/// A user name (or client id) with U+0000: CONNECT is malformed, closed
/// without CONNACK [MQTT-1.5.3-2] (once it was accepted).
#[tokio::test]
async fn u0000_in_user_name_or_client_id_refuses_connect() {
    let b = TestBroker::start().await;
    let mut by = Bystander::new(b.addr, "u0000-connect-bystander").await;
    for proto in [Proto::V31, Proto::V311, Proto::V5] {
        for opts in [ConnectOpts::new(proto, "named").username("us\0er"), ConnectOpts::new(proto, "id\0x")] {
            let mut c = Raw::open(b.addr).await;
            c.send(&connect_packet(&opts)).await;
            let seen = c.expect_closed("CONNECT with U+0000").await;
            assert!(
                seen.iter().all(|p| p.kind != CONNACK || p.connack().1 != 0),
                "{proto:?}: CONNECT with U+0000 accepted: {seen:?}"
            );
        }
        by.check(&format!("{proto:?} CONNECT with U+0000")).await;
    }
    b.shutdown().await;
}

/// A CONNECT whose payload carries a user name and password its flags do
/// not announce is malformed [MQTT-3.1.4-1]: closed without CONNACK 0.
#[tokio::test]
async fn connect_with_unannounced_credentials_is_malformed() {
    let b = TestBroker::start().await;
    let mut by = Bystander::new(b.addr, "trailing-bystander").await;
    for proto in [Proto::V31, Proto::V311, Proto::V5] {
        let mut p = connect_packet(&ConnectOpts::new(proto, "trailing"));
        let extra = [mqtt_str("user"), mqtt_str("secret")].concat();
        // Grow the one-byte remaining length and append the fields.
        assert!(p[1] < 0x80 && usize::from(p[1]) + extra.len() < 0x80);
        p[1] += extra.len() as u8;
        p.extend(&extra);
        let mut c = Raw::open(b.addr).await;
        c.send(&p).await;
        let seen = c.expect_closed("CONNECT with trailing bytes").await;
        assert!(seen.is_empty(), "{proto:?}: CONNECT with unannounced user name accepted: {seen:?}");
        by.check(&format!("{proto:?} CONNECT with trailing bytes")).await;
    }
    b.shutdown().await;
}

/// The client's Maximum Packet Size applies to CONNACK too
/// [MQTT-3.1.2-24]: a CONNACK that fits is shrunk to it (optional
/// properties left out), and a client whose limit no CONNACK fits gets
/// nothing and is closed.
#[tokio::test]
async fn connack_respects_the_clients_maximum_packet_size() {
    let b = TestBroker::start().await;
    let max_packet = |n: u32| [vec![0x27], n.to_be_bytes().to_vec()].concat();
    // The full CONNACK is larger than 20 bytes.
    let mut c = Raw::open(b.addr).await;
    c.send(&connect_packet(&ConnectOpts::new(Proto::V5, "mps-probe"))).await;
    let probe = c.expect("CONNACK").await;
    assert!(probe.body.len() + 2 > 20, "the full CONNACK: {} bytes", probe.body.len() + 2);
    for limit in [20u32, 12] {
        let mut c = Raw::open(b.addr).await;
        c.send(&connect_packet(&ConnectOpts::new(Proto::V5, &format!("mps-{limit}")).props(max_packet(limit)))).await;
        let ack = c.expect("CONNACK").await;
        assert_eq!(ack.connack(), (false, 0));
        assert!(
            ack.body.len() + 2 <= limit as usize,
            "CONNACK of {} bytes to a client allowing {limit}",
            ack.body.len() + 2
        );
        // Maximum Packet Size and Receive Maximum are kept: their absence would mislead.
        let props = ack.connack_props();
        assert!(int_prop(&props, 0x27).is_some(), "{limit}: {props:?}");
        c.send(&pingreq_packet()).await;
        assert_eq!(c.expect("PINGRESP").await.kind, PINGRESP);
    }
    let mut c = Raw::open(b.addr).await;
    c.send(&connect_packet(&ConnectOpts::new(Proto::V5, "mps-2").props(max_packet(2)))).await;
    let seen = c.expect_closed("a Maximum Packet Size no CONNACK fits").await;
    assert!(seen.is_empty(), "nothing may be sent to a client allowing 2 bytes: {seen:?}");
    b.shutdown().await;
}

/// MQTT 3.1 clients set DUP on a resent PUBREL (fixed header 0x6A, 3.1
/// section 3.6): accepted and answered with PUBCOMP, not a close.
#[tokio::test]
async fn mqtt31_pubrel_with_dup_is_accepted() {
    let b = TestBroker::start().await;
    let (mut c, _) = Raw::connect(b.addr, &ConnectOpts::new(Proto::V31, "v31-dup")).await;
    c.send(&publish_packet(false, "v31/dup", 2, false, false, 5, b"x")).await;
    assert_eq!(c.expect_kind(PUBREC, "PUBREC").await.pid(), 5);
    c.send(&packet(0x6A, &[0, 5])).await;
    let comp = c.expect_kind(PUBCOMP, "PUBCOMP").await;
    assert_eq!(comp.pid(), 5);
    // 3.1.1 forbids it [MQTT-3.6.1-1]: there it is still malformed.
    let (mut m, _) = Raw::connect(b.addr, &ConnectOpts::new(Proto::V311, "v311-dup")).await;
    m.send(&packet(0x6A, &[0, 5])).await;
    assert!(m.expect_closed("3.1.1 PUBREL with DUP").await.is_empty());
    b.shutdown().await;
}
