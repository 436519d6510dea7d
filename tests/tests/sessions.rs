//! Sessions: takeover, keep-alive, wills, persistent sessions (offline
//! queueing, session present, clean session, redelivery with DUP, PUBREL
//! resend), inbound QoS 2 exactly-once, and offline queue limits.

mod common;

use std::time::Duration;

use common::*;
use edgemq::config::QueueFullPolicy;

async fn watcher(b: &TestBroker, name: &str, filter: &str) -> Raw {
    let mut w = Raw::v311(b.addr, name).await;
    assert_eq!(w.subscribe(1, &[(filter, 2)]).await, vec![2]);
    w
}

fn persistent(id: &str) -> ConnectOpts {
    ConnectOpts::new(Proto::V311, id).clean(false)
}

// ---------------------------------------------------------------------------
// Takeover, keep-alive, wills
// ---------------------------------------------------------------------------

/// A second CONNECT with the same client id closes the first connection
/// [MQTT-3.1.4-2]; the old connection did not DISCONNECT, so its will is
/// published.
#[tokio::test]
async fn session_takeover_closes_old_connection() {
    let b = TestBroker::start().await;
    let mut w = watcher(&b, "takeover-watch", "will/takeover").await;
    let (mut old, _) =
        Raw::connect(b.addr, &ConnectOpts::new(Proto::V311, "same-id").will("will/takeover", b"old gone", 1, false))
            .await;
    let (mut new, sp) = Raw::connect(b.addr, &ConnectOpts::new(Proto::V311, "same-id")).await;
    assert!(!sp, "clean session => session present 0 [MQTT-3.2.2-1]");
    let before_close = old.expect_closed("takeover [MQTT-3.1.4-2]").await;
    assert!(before_close.is_empty(), "3.1.1 has no DISCONNECT from the server; got {before_close:?}");
    let will = w.receive_acked().await;
    assert_eq!((will.topic.as_str(), &will.payload[..]), ("will/takeover", &b"old gone"[..]));
    // The new connection works.
    new.subscribe(1, &[("takeover/t", 1)]).await;
    new.publish("takeover/t", 1, false, 2, b"x").await;
    assert_eq!(new.receive_acked().await.payload, b"x");
    b.shutdown().await;
}

/// MQTT 5: the taken-over connection gets DISCONNECT with reason 0x8E
/// (Session taken over) before the close.
#[tokio::test]
async fn v5_session_takeover_sends_disconnect_0x8e() {
    let b = TestBroker::start().await;
    let mut old = Raw::v5(b.addr, "v5-same").await;
    let _new = Raw::v5(b.addr, "v5-same").await;
    let seen = old.expect_closed("v5 takeover").await;
    assert_eq!(seen.len(), 1, "exactly one DISCONNECT before the close, got {seen:?}");
    assert_eq!((seen[0].kind, seen[0].reason()), (DISCONNECT, 0x8E), "Session taken over (5.0 section 3.14.2.1)");
    b.shutdown().await;
}

/// A client that stops sending is disconnected after 1.5x its keep-alive
/// [MQTT-3.1.2-24] and its will is published [MQTT-3.1.2-8].
#[tokio::test]
async fn keep_alive_expiry_fires_will() {
    let b = TestBroker::start().await;
    let mut w = watcher(&b, "ka-watch", "will/ka").await;
    let (mut silent, _) = Raw::connect(
        b.addr,
        &ConnectOpts::new(Proto::V311, "ka-silent").keep_alive(1).will("will/ka", b"timed out", 1, false),
    )
    .await;
    // Keep-alive 1 s => closed after 1.5 s; allow 3 s.
    let will = tokio::time::timeout(Duration::from_secs(3), w.receive_acked())
        .await
        .expect("will published within 3 s of a 1 s keep-alive going silent [MQTT-3.1.2-24]");
    assert_eq!((will.topic.as_str(), &will.payload[..]), ("will/ka", &b"timed out"[..]));
    assert!(silent.expect_closed("keep-alive expiry").await.is_empty());
    b.shutdown().await;
}

/// PINGREQ keeps a connection alive past 1.5x the keep-alive [MQTT-3.12.4-1].
#[tokio::test]
async fn pingreq_keeps_connection_alive() {
    let b = TestBroker::start().await;
    let (mut c, _) = Raw::connect(b.addr, &ConnectOpts::new(Proto::V311, "pinger").keep_alive(1)).await;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        c.send(&pingreq_packet()).await;
        let p = c.expect("PINGRESP").await;
        assert_eq!((p.kind, p.flags, p.body.len()), (PINGRESP, 0, 0), "[MQTT-3.12.4-1]");
    }
    b.shutdown().await;
}

/// No will after a DISCONNECT [MQTT-3.1.2-10].
#[tokio::test]
async fn will_not_sent_after_disconnect() {
    let b = TestBroker::start().await;
    let mut w = watcher(&b, "nowill-watch", "will/#").await;
    let (c, _) =
        Raw::connect(b.addr, &ConnectOpts::new(Proto::V311, "polite").will("will/polite", b"should not", 1, false))
            .await;
    c.disconnect().await;
    w.expect_silence("will after DISCONNECT [MQTT-3.1.2-10]").await;
    b.shutdown().await;
}

/// Will QoS and retain are honoured [MQTT-3.1.2-14], [MQTT-3.1.2-17]:
/// published at the will QoS (capped by the subscription) and retained.
#[tokio::test]
async fn will_qos_and_retain_honoured() {
    let b = TestBroker::start().await;
    let mut w2 = watcher(&b, "wq-watch2", "will/q").await;
    let mut w1 = Raw::v311(b.addr, "wq-watch1").await;
    w1.subscribe(1, &[("will/q", 1)]).await;
    let (c, _) =
        Raw::connect(b.addr, &ConnectOpts::new(Proto::V311, "abrupt").will("will/q", b"last words", 2, true)).await;
    drop(c); // abnormal close: no DISCONNECT
    let m = w2.receive_acked().await;
    assert_eq!((&m.payload[..], m.qos), (&b"last words"[..], 2), "will QoS 2 [MQTT-3.1.2-14]");
    assert!(!m.retain, "live forward of the will has RETAIN=0 [MQTT-3.3.1-9]");
    let m = w1.receive_acked().await;
    assert_eq!((&m.payload[..], m.qos), (&b"last words"[..], 1), "capped at the granted QoS 1");
    // [MQTT-3.1.2-17]: will retain 1 => published as a retained message.
    let mut late = Raw::v311(b.addr, "wq-late").await;
    late.subscribe(1, &[("will/q", 2)]).await;
    let m = late.receive_acked().await;
    assert_eq!((&m.payload[..], m.retain, m.qos), (&b"last words"[..], true, 2), "retained will [MQTT-3.1.2-17]");
    b.shutdown().await;
}

/// A protocol error closes the connection and publishes the will
/// [MQTT-3.1.2-8] (4.8: "the Server closes the Network Connection because
/// of a protocol error").
#[tokio::test]
async fn will_on_protocol_error() {
    let b = TestBroker::start().await;
    let mut w = watcher(&b, "perr-watch", "will/perr").await;
    let (mut c, _) =
        Raw::connect(b.addr, &ConnectOpts::new(Proto::V311, "bad-one").will("will/perr", b"protocol error", 0, false))
            .await;
    c.send(&publish_packet(false, "a/+/b", 0, false, false, 0, b"wildcard topic name")).await;
    c.expect_closed("wildcard in topic name [MQTT-3.3.2-2]").await;
    let m = w.receive_acked().await;
    assert_eq!(m.payload, b"protocol error");
    b.shutdown().await;
}

// ---------------------------------------------------------------------------
// Persistent sessions
// ---------------------------------------------------------------------------

/// QoS 1 and 2 messages published while a persistent subscriber is
/// offline are delivered on reconnect, in order, each exactly once; QoS 0
/// ones are not queued (the broker's documented default); session present
/// is 1 [MQTT-3.2.2-2]. Stored messages: [MQTT-3.1.2-5].
#[tokio::test]
async fn offline_messages_delivered_in_order_on_reconnect() {
    const N: usize = 120;
    let b = TestBroker::start().await;
    let (mut s, sp) = Raw::connect(b.addr, &persistent("offline-sub")).await;
    assert!(!sp, "new session => session present 0 [MQTT-3.2.2-3]");
    s.subscribe(1, &[("off/#", 2)]).await;
    s.disconnect().await;

    let mut p = Raw::v311(b.addr, "offline-pub").await;
    let mut expected = Vec::new();
    for i in 0..N {
        let qos = (i % 3) as u8; // 0, 1, 2, ...
        let payload = format!("{i}");
        p.publish(&format!("off/{}", i % 5), qos, false, i as u16 + 1, payload.as_bytes()).await;
        if qos > 0 {
            expected.push((payload, qos));
        }
    }

    let (mut s, sp) = Raw::connect(b.addr, &persistent("offline-sub")).await;
    assert!(sp, "resumed session => session present 1 [MQTT-3.2.2-2]");
    for (payload, qos) in &expected {
        let m = s.receive_acked().await;
        assert_eq!(
            (String::from_utf8_lossy(&m.payload).to_string(), m.qos),
            (payload.clone(), *qos),
            "offline messages must arrive in publish order at their QoS"
        );
        assert!(!m.dup, "never sent before => DUP=0 [MQTT-3.3.1-2]");
    }
    s.expect_silence("no duplicates or QoS 0 messages after the queued ones (QoS 2 exactly once)").await;
    b.shutdown().await;
}

/// With `queue_qos0_messages`, QoS 0 messages are queued too.
#[tokio::test]
async fn offline_qos0_queued_when_configured() {
    let b = TestBroker::start_with(|c| c.queue_qos0_messages = true).await;
    let (mut s, _) = Raw::connect(b.addr, &persistent("q0-sub")).await;
    s.subscribe(1, &[("q0/t", 2)]).await;
    s.disconnect().await;
    let mut p = Raw::v311(b.addr, "q0-pub").await;
    for i in 0..5u16 {
        p.publish("q0/t", 0, false, 0, format!("{i}").as_bytes()).await;
    }
    p.publish("q0/t", 1, false, 9, b"last").await;
    let (mut s, _) = Raw::connect(b.addr, &persistent("q0-sub")).await;
    for i in 0..5u16 {
        let m = s.receive_acked().await;
        assert_eq!((m.payload, m.qos), (format!("{i}").into_bytes(), 0));
    }
    assert_eq!(s.receive_acked().await.payload, b"last");
    b.shutdown().await;
}

/// Clean session 1 discards the previous session [MQTT-3.1.2-6]: session
/// present 0 [MQTT-3.2.2-1], no subscriptions, no queued messages; and the
/// session is also gone when the client next connects with clean session 0.
#[tokio::test]
async fn clean_session_discards_state() {
    let b = TestBroker::start().await;
    let (mut s, _) = Raw::connect(b.addr, &persistent("cs-sub")).await;
    s.subscribe(1, &[("cs/t", 1)]).await;
    s.disconnect().await;
    let mut p = Raw::v311(b.addr, "cs-pub").await;
    p.publish("cs/t", 1, false, 1, b"queued").await;

    let (mut s, sp) = Raw::connect(b.addr, &ConnectOpts::new(Proto::V311, "cs-sub")).await;
    assert!(!sp, "clean session => session present 0 [MQTT-3.2.2-1]");
    s.expect_silence("queued message of the discarded session [MQTT-3.1.2-6]").await;
    p.publish("cs/t", 1, false, 2, b"after clean").await;
    s.expect_silence("subscription of the discarded session [MQTT-3.1.2-6]").await;
    s.disconnect().await;

    // [MQTT-3.1.2-6]: state of a clean session is not reused later.
    let (mut s, sp) = Raw::connect(b.addr, &persistent("cs-sub")).await;
    assert!(!sp, "session after a clean session is new [MQTT-3.2.2-3]");
    p.publish("cs/t", 1, false, 3, b"later").await;
    s.expect_silence("no subscription survives a clean session").await;
    b.shutdown().await;
}

/// An unacknowledged QoS 1 message is resent with DUP=1 and the same
/// packet id when the session resumes [MQTT-4.4.0-1], [MQTT-3.3.1-1].
#[tokio::test]
async fn unacked_qos1_redelivered_with_dup() {
    let b = TestBroker::start().await;
    let (mut s, _) = Raw::connect(b.addr, &persistent("dup1-sub")).await;
    s.subscribe(1, &[("dup1/t", 1)]).await;
    let mut p = Raw::v311(b.addr, "dup1-pub").await;
    p.publish("dup1/t", 1, false, 1, b"first").await;
    p.publish("dup1/t", 1, false, 2, b"second").await;
    let m1 = s.expect_publish().await;
    let m2 = s.expect_publish().await;
    assert_eq!((&m1.payload[..], m1.dup), (&b"first"[..], false));
    assert_eq!((&m2.payload[..], m2.dup), (&b"second"[..], false));
    s.send(&ack_packet(PUBACK, m2.pid)).await; // ack only the second
    s.disconnect().await;

    let (mut s, sp) = Raw::connect(b.addr, &persistent("dup1-sub")).await;
    assert!(sp, "[MQTT-3.2.2-2]");
    let r = s.expect_publish().await;
    assert_eq!(&r.payload[..], b"first");
    assert!(r.dup, "redelivery must have DUP=1 [MQTT-4.4.0-1]/[MQTT-3.3.1-1]");
    assert_eq!(r.pid, m1.pid, "redelivery keeps the packet id [MQTT-4.4.0-1]");
    assert_eq!(r.qos, 1);
    s.send(&ack_packet(PUBACK, r.pid)).await;
    s.expect_silence("acknowledged message must not come back").await;
    s.disconnect().await;

    // Acknowledged now: not redelivered again.
    let (mut s, _) = Raw::connect(b.addr, &persistent("dup1-sub")).await;
    s.expect_silence("acknowledged message redelivered").await;
    b.shutdown().await;
}

/// Connection dropped (no DISCONNECT) works the same way.
#[tokio::test]
async fn unacked_qos1_redelivered_after_abrupt_close() {
    let b = TestBroker::start().await;
    let (mut s, _) = Raw::connect(b.addr, &persistent("dup1b-sub")).await;
    s.subscribe(1, &[("dup1b/t", 1)]).await;
    let mut p = Raw::v311(b.addr, "dup1b-pub").await;
    p.publish("dup1b/t", 1, false, 1, b"m").await;
    let m = s.expect_publish().await;
    drop(s); // no DISCONNECT; whether the broker sees the close or a takeover first, the session resumes
    let (mut s, sp) = Raw::connect(b.addr, &persistent("dup1b-sub")).await;
    assert!(sp);
    let r = s.expect_publish().await;
    assert_eq!((&r.payload[..], r.dup, r.pid), (&b"m"[..], true, m.pid), "[MQTT-4.4.0-1]");
    b.shutdown().await;
}

/// QoS 2 outbound: a PUBLISH not yet PUBREC'd is resent with DUP=1; once
/// PUBREC'd, the PUBREL (not the PUBLISH) is resent on resume
/// [MQTT-4.4.0-1]; the message is delivered once.
#[tokio::test]
async fn qos2_resume_resends_publish_then_pubrel() {
    let b = TestBroker::start().await;
    let (mut s, _) = Raw::connect(b.addr, &persistent("q2r-sub")).await;
    s.subscribe(1, &[("q2r/t", 2)]).await;
    let mut p = Raw::v311(b.addr, "q2r-pub").await;
    p.publish("q2r/t", 2, false, 1, b"exactly once").await;

    // 1: receive but do not PUBREC.
    let m = s.expect_publish().await;
    assert_eq!((m.qos, m.dup), (2, false));
    s.disconnect().await;
    let (mut s, _) = Raw::connect(b.addr, &persistent("q2r-sub")).await;
    let r = s.expect_publish().await;
    assert_eq!((&r.payload[..], r.dup, r.pid, r.qos), (&b"exactly once"[..], true, m.pid, 2), "[MQTT-4.4.0-1]");

    // 2: PUBREC, receive PUBREL, do not PUBCOMP.
    s.send(&ack_packet(PUBREC, r.pid)).await;
    let rel = s.expect_kind(PUBREL, "PUBREL").await;
    assert_eq!((rel.pid(), rel.flags), (r.pid, 0b0010), "[MQTT-3.6.1-1]");
    s.disconnect().await;
    let (mut s, sp) = Raw::connect(b.addr, &persistent("q2r-sub")).await;
    assert!(sp);
    let again = s.expect("PUBREL resent on resume").await;
    assert_eq!(
        (again.kind, again.flags, again.pid()),
        (PUBREL, 0b0010, r.pid),
        "after PUBREC the broker must resend PUBREL, not PUBLISH [MQTT-4.4.0-1]"
    );
    s.send(&ack_packet(PUBCOMP, r.pid)).await;
    s.expect_silence("QoS 2 flow complete").await;
    b.shutdown().await;
}

/// Inbound QoS 2 (method B of 4.3.3): a PUBLISH resent with DUP=1 before
/// the PUBREL must not be delivered twice [MQTT-4.3.3-2]; after PUBCOMP the
/// packet id may be reused for a new message.
#[tokio::test]
async fn inbound_qos2_duplicate_routed_once() {
    let b = TestBroker::start().await;
    let mut s = Raw::v311(b.addr, "in2-sub").await;
    s.subscribe(1, &[("in2/t", 1), ("in2/end", 1)]).await;
    let mut p = Raw::v311(b.addr, "in2-pub").await;
    p.send(&publish_packet(false, "in2/t", 2, false, false, 7, b"once")).await;
    assert_eq!(p.expect_kind(PUBREC, "PUBREC").await.pid(), 7, "[MQTT-4.3.3-2]");
    p.send(&publish_packet(false, "in2/t", 2, false, true, 7, b"once")).await;
    assert_eq!(p.expect_kind(PUBREC, "PUBREC for the duplicate").await.pid(), 7);
    p.send(&ack_packet(PUBREL, 7)).await;
    let c = p.expect_kind(PUBCOMP, "PUBCOMP").await;
    assert_eq!((c.pid(), c.flags), (7, 0), "[MQTT-4.3.3-2]");
    // Same packet id, new message after PUBCOMP.
    p.publish("in2/t", 2, false, 7, b"new message").await;
    p.publish("in2/end", 1, false, 8, b"end").await;
    let got: Vec<Vec<u8>> =
        vec![s.receive_acked().await.payload, s.receive_acked().await.payload, s.receive_acked().await.payload];
    assert_eq!(
        got,
        vec![b"once".to_vec(), b"new message".to_vec(), b"end".to_vec()],
        "QoS 2 duplicate routed twice [MQTT-4.3.3-2]"
    );
    b.shutdown().await;
}

// ---------------------------------------------------------------------------
// Queue limits
// ---------------------------------------------------------------------------

async fn queue_limit_case(
    policy: QueueFullPolicy,
    expected: usize,
    tweak: impl FnOnce(&mut edgemq::Config),
) -> Vec<String> {
    let b = TestBroker::start_with(|c| {
        c.queue_full_policy = policy;
        tweak(c);
    })
    .await;
    let (mut s, _) = Raw::connect(b.addr, &persistent("ql-sub")).await;
    s.subscribe(1, &[("ql/t", 1)]).await;
    s.disconnect().await;
    let mut p = Raw::v311(b.addr, "ql-pub").await;
    for i in 0..50u16 {
        p.publish("ql/t", 1, false, i + 1, format!("{i:04}").as_bytes()).await;
    }
    let (mut s, sp) = Raw::connect(b.addr, &persistent("ql-sub")).await;
    assert!(sp);
    // Wait up to the full timeout while fewer than `expected` have come
    // (a loaded machine must not make the count short), then briefly for
    // any surplus.
    let mut got = Vec::new();
    loop {
        let wait = if got.len() < expected { TIMEOUT } else { QUIET };
        match s.recv_within(wait).await {
            Recv::Packet(pk) if pk.kind == PUBLISH => {
                let m = pk.publish(false);
                s.send(&ack_packet(PUBACK, m.pid)).await;
                got.push(String::from_utf8_lossy(&m.payload).to_string());
            }
            Recv::TimedOut => break,
            other => panic!("unexpected {other:?}"),
        }
        assert!(got.len() <= 50);
    }
    b.shutdown().await;
    got
}

fn numbered(r: std::ops::Range<u16>) -> Vec<String> {
    r.map(|i| format!("{i:04}")).collect()
}

#[tokio::test]
async fn queue_limit_drop_new_keeps_first_messages() {
    let got = queue_limit_case(QueueFullPolicy::DropNew, 10, |c| c.max_queued_messages = 10).await;
    assert_eq!(got, numbered(0..10), "max_queued_messages = 10, drop new");
}

#[tokio::test]
async fn queue_limit_drop_oldest_keeps_last_messages() {
    let got = queue_limit_case(QueueFullPolicy::DropOldest, 10, |c| c.max_queued_messages = 10).await;
    assert_eq!(got, numbered(40..50), "max_queued_messages = 10, drop oldest");
}

#[tokio::test]
async fn queue_byte_limit_drop_new() {
    // `Config::max_queued_bytes` is documented as "Payload bytes queued per
    // session". Payloads are 4 bytes: 40 bytes hold 10 messages.
    let got = queue_limit_case(QueueFullPolicy::DropNew, 10, |c| c.max_queued_bytes = 40).await;
    assert_eq!(
        got,
        numbered(0..10),
        "max_queued_bytes = 40 (documented as payload bytes) with 4-byte payloads on a 4-byte topic, drop new"
    );
}

/// Many connections racing with one client id: each CONNECT takes over the
/// previous connection [MQTT-3.1.4-2], so exactly one stays usable.
#[tokio::test]
async fn concurrent_takeovers_leave_one_connection() {
    const N: usize = 12;
    let b = TestBroker::start().await;
    let mut tasks = Vec::new();
    for _ in 0..N {
        let addr = b.addr;
        tasks.push(tokio::spawn(async move {
            let mut c = Raw::open(addr).await;
            c.send(&connect_packet(&persistent("racer"))).await;
            c
        }));
    }
    let mut conns = Vec::new();
    for t in tasks {
        conns.push(within("racer", t).await.expect("racer task"));
    }
    // Every connection sees its CONNACK (accepted), and then either is
    // closed (taken over) or stays open.
    let mut open = 0;
    for c in conns.iter_mut() {
        match c.recv_within(TIMEOUT).await {
            Recv::Packet(p) => assert_eq!(p.connack().1, 0, "CONNACK accepted"),
            other => panic!("no CONNACK: {other:?}"),
        }
    }
    // The last takeover is complete once a fresh PINGREQ round trip works
    // on the survivor; taken-over connections get closed.
    for c in conns.iter_mut() {
        c.send(&pingreq_packet()).await;
    }
    for c in conns.iter_mut() {
        match c.recv_within(TIMEOUT).await {
            Recv::Packet(p) if p.kind == PINGRESP => {
                // Closed right after, if it was taken over meanwhile.
                match c.recv_within(QUIET).await {
                    Recv::TimedOut => open += 1,
                    Recv::Closed => {}
                    other => panic!("{other:?}"),
                }
            }
            Recv::Closed => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(open, 1, "exactly one of {N} racing connections with one client id must survive [MQTT-3.1.4-2]");
    b.shutdown().await;
}

/// `session_expiry_secs` discards a disconnected 3.1.1 persistent session
/// after that many seconds.
#[tokio::test]
async fn configured_session_expiry_for_v311() {
    let b = TestBroker::start_with(|c| c.session_expiry_secs = 1).await;
    let (mut s, _) = Raw::connect(b.addr, &persistent("exp-sub")).await;
    s.subscribe(1, &[("exp/t", 1)]).await;
    s.disconnect().await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let mut p = Raw::v311(b.addr, "exp-pub").await;
    p.publish("exp/t", 1, false, 1, b"after expiry").await;
    let (mut s, sp) = Raw::connect(b.addr, &persistent("exp-sub")).await;
    assert!(!sp, "session must be gone after session_expiry_secs");
    s.expect_silence("expired session's subscription").await;
    b.shutdown().await;
}

/// MQTT 5 will properties (user properties, content type) are published
/// with the will, user properties in order (5.0 3.1.3.2).
#[tokio::test]
async fn v5_will_properties_passed_through() {
    let b = TestBroker::start().await;
    let mut w = Raw::v5(b.addr, "wp-watch").await;
    w.subscribe(1, &[("will/props", 1)]).await;
    // CONNECT with a will carrying properties, built by hand.
    let mut will_props = user_prop("first", "1");
    will_props.extend(user_prop("second", "2"));
    will_props.push(0x03);
    will_props.extend(mqtt_str("text/plain"));
    let mut body = mqtt_str("MQTT");
    body.extend([5, 0x02 | 0x04 | 0x08, 0, 60, 0]); // clean start, will QoS 1, no CONNECT properties
    body.extend(mqtt_str("wp-client"));
    body.extend(varint(will_props.len()));
    body.extend(&will_props);
    body.extend(mqtt_str("will/props"));
    body.extend(mqtt_str("bye"));
    let mut c = Raw::open(b.addr).await;
    c.send(&packet(0x10, &body)).await;
    assert_eq!(c.expect("CONNACK").await.connack(), (false, 0));
    drop(c);
    let m = w.receive_acked().await;
    assert_eq!((m.topic.as_str(), &m.payload[..], m.qos), ("will/props", &b"bye"[..], 1));
    assert_eq!(
        user_props(&m.props),
        vec![("first".to_string(), "1".to_string()), ("second".to_string(), "2".to_string())],
        "will user properties in order"
    );
    let ct = props_list(&m.props).into_iter().find(|(id, _)| *id == 0x03).map(|(_, v)| v);
    assert_eq!(ct, Some(Prop::Str("text/plain".into())), "will Content Type");
    b.shutdown().await;
}
