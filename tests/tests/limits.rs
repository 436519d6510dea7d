//! Limits and what the broker says when one is reached: a session queue
//! that overflows while its MQTT 5 client is connected (DISCONNECT 0x97),
//! and per-listener limits from `[[listener]]` tables (connections, packet
//! size, keep-alive, anonymous clients). Normative references use the
//! MQTT 5.0 numbering unless they say 3.1.1.

mod common;

use common::*;

// ---------------------------------------------------------------------------
// Queue full
// ---------------------------------------------------------------------------

/// A broker whose sessions queue 3 messages behind a window of 1.
async fn small_queues(disconnect_on_queue_full: bool) -> TestBroker {
    TestBroker::start_with(|c| {
        c.max_queued_messages = 3;
        c.max_inflight_messages = 1;
        c.disconnect_on_queue_full = disconnect_on_queue_full;
    })
    .await
}

/// Connects a persistent subscriber to `qf/t` (QoS 1), publishes "0" and
/// waits until it is in flight (not acknowledged), then publishes "1".."3"
/// (the queue is then full) and "4" (one too many). Returns the
/// subscriber, its CONNECT options and the in-flight packet id.
async fn overflow(b: &TestBroker, proto: Proto, id: &str) -> (Raw, ConnectOpts, u16) {
    let mut opts = ConnectOpts::new(proto, id).clean(false);
    if proto == Proto::V5 {
        opts = opts.props(session_expiry(300));
    }
    let (mut sub, _) = Raw::connect(b.addr, &opts).await;
    sub.subscribe(1, &[("qf/t", 1)]).await;
    let mut publisher = Raw::v311(b.addr, &format!("{id}-pub")).await;
    publisher.publish("qf/t", 1, false, 1, b"0").await;
    let first = sub.expect_publish().await;
    assert_eq!(first.payload, b"0");
    for i in 1..=4u16 {
        publisher.publish("qf/t", 1, false, i + 1, format!("{i}").as_bytes()).await;
    }
    (sub, opts, first.pid)
}

/// Reads the three queued messages, acknowledging each: "1", "2", "3" (the
/// fourth was dropped).
async fn expect_queued_three(sub: &mut Raw) {
    for want in ["1", "2", "3"] {
        assert_eq!(sub.receive_acked().await.payload, want.as_bytes());
    }
    sub.expect_silence("the message that overflowed the queue was dropped").await;
}

/// A message that overflows the queue of a connected MQTT 5 client: the
/// broker sends DISCONNECT with reason 0x97 Quota exceeded, one of the
/// DISCONNECT reason codes [MQTT-3.14.2-1], with a reason string, and closes
/// the connection ([MQTT-4.13.2-1]: a reason of 0x80 or more closes it).
/// The session state is kept, its Session Expiry Interval being above 0
/// [MQTT-3.1.2-23]: on reconnect the unacknowledged PUBLISH is resent with
/// DUP [MQTT-4.4.0-1] and the queued messages follow in order.
#[tokio::test]
async fn v5_queue_overflow_disconnects_with_0x97_and_keeps_the_session() {
    let b = small_queues(true).await;
    let (mut sub, opts, pid) = overflow(&b, Proto::V5, "qf5").await;
    let seen = sub.expect_closed("queue overflow").await;
    let last = seen.last().expect("a DISCONNECT before the close");
    assert_eq!((last.kind, last.reason()), (DISCONNECT, 0x97), "DISCONNECT 0x97 Quota exceeded, got {seen:?}");
    assert!(
        props_list(&last.reason_props()).iter().any(|(id, _)| *id == 0x1F),
        "DISCONNECT carries a Reason String: {last:?}"
    );
    let (mut sub, present) = Raw::connect(b.addr, &opts).await;
    assert!(present, "session present after the 0x97 disconnect [MQTT-3.1.2-23]");
    let again = sub.expect_publish().await;
    assert_eq!((&again.payload[..], again.pid, again.dup), (&b"0"[..], pid, true), "[MQTT-4.4.0-1]");
    sub.send(&ack_packet(PUBACK, pid)).await;
    expect_queued_three(&mut sub).await;
    let stats = within("shutdown", b.broker.shutdown()).await;
    assert_eq!(stats.dropped_queue_full, 1);
}

/// MQTT 3.1.1 has no DISCONNECT from the server: a 3.1.1 client whose
/// queue overflows keeps its connection; the message is dropped and counted.
#[tokio::test]
async fn v311_queue_overflow_drops_without_disconnecting() {
    let b = small_queues(true).await;
    let (mut sub, _, pid) = overflow(&b, Proto::V311, "qf311").await;
    sub.expect_silence("a 3.1.1 client is not disconnected for a full queue").await;
    sub.send(&ack_packet(PUBACK, pid)).await;
    expect_queued_three(&mut sub).await;
    let stats = within("shutdown", b.broker.shutdown()).await;
    assert_eq!(stats.dropped_queue_full, 1);
}

/// `disconnect_on_queue_full = false`: MQTT 5 clients are treated like
/// 3.1.1 ones (drop and count).
#[tokio::test]
async fn v5_queue_overflow_without_disconnect_when_turned_off() {
    let b = small_queues(false).await;
    let (mut sub, _, pid) = overflow(&b, Proto::V5, "qf5-off").await;
    sub.expect_silence("disconnect_on_queue_full = false").await;
    sub.send(&ack_packet(PUBACK, pid)).await;
    expect_queued_three(&mut sub).await;
    let stats = within("shutdown", b.broker.shutdown()).await;
    assert_eq!(stats.dropped_queue_full, 1);
}
