//! Topic matching: `+` and `#` wildcards, `$` topics, overlapping
//! subscriptions, unsubscribe, and fan-out.

mod common;

use common::*;

const SENTINEL: &str = "zz/end";

/// Collects the topics one subscriber receives until the sentinel.
async fn topics_until_sentinel(s: &mut Raw) -> Vec<String> {
    let mut got = Vec::new();
    loop {
        let m = s.receive_acked().await;
        if m.topic == SENTINEL {
            return got;
        }
        got.push(m.topic);
    }
}

#[tokio::test]
async fn wildcard_and_dollar_matching() {
    // (filter, topics it must match); every other topic in TOPICS must not match.
    let topics = [
        "sport",
        "sport/",
        "sport/tennis/player1",
        "sport/tennis/player1/ranking",
        "sport/tennis/player1/score/wimbledon",
        "sport/tennis/player2",
        "/finance",
        "a//b",
        "Accounts",
        "$SYS/monitor/Clients",
        "$internal/x",
    ];
    let cases: &[(&str, &[&str])] = &[
        // [MQTT-4.7.1-2]: `#` matches the parent level and any number of children.
        (
            "sport/tennis/player1/#",
            &["sport/tennis/player1", "sport/tennis/player1/ranking", "sport/tennis/player1/score/wimbledon"],
        ),
        (
            "sport/#",
            &[
                "sport",
                "sport/",
                "sport/tennis/player1",
                "sport/tennis/player1/ranking",
                "sport/tennis/player1/score/wimbledon",
                "sport/tennis/player2",
            ],
        ),
        // [MQTT-4.7.1-3]: `+` matches exactly one level.
        ("sport/tennis/+", &["sport/tennis/player1", "sport/tennis/player2"]),
        ("sport/+", &["sport/"]),
        ("+/+", &["sport/", "/finance"]),
        ("/+", &["/finance"]),
        ("+", &["sport", "Accounts"]),
        ("a/+/b", &["a//b"]),
        (
            "+/tennis/#",
            &[
                "sport/tennis/player1",
                "sport/tennis/player1/ranking",
                "sport/tennis/player1/score/wimbledon",
                "sport/tennis/player2",
            ],
        ),
        // Topic names are case sensitive (4.7.3).
        ("accounts", &[]),
        ("Accounts", &["Accounts"]),
        // [MQTT-4.7.2-1]: filters starting with a wildcard do not match `$` topics.
        (
            "#",
            &[
                "sport",
                "sport/",
                "sport/tennis/player1",
                "sport/tennis/player1/ranking",
                "sport/tennis/player1/score/wimbledon",
                "sport/tennis/player2",
                "/finance",
                "a//b",
                "Accounts",
            ],
        ),
        ("+/monitor/Clients", &[]),
        ("$SYS/#", &["$SYS/monitor/Clients"]),
        ("$SYS/monitor/+", &["$SYS/monitor/Clients"]),
        ("$internal/x", &["$internal/x"]),
    ];

    // The broker's own $SYS/broker topics off: only the test's topics match.
    let b = TestBroker::start_with(|c| c.sys_interval = 0).await;
    let mut subs = Vec::new();
    for (i, (filter, _)) in cases.iter().enumerate() {
        let mut s = Raw::v311(b.addr, &format!("wc-{i}")).await;
        let codes = s.subscribe(1, &[(filter, 1), (SENTINEL, 1)]).await;
        assert_eq!(codes, vec![1, 1], "filter {filter:?} accepted");
        subs.push(s);
    }
    let mut publ = Raw::v311(b.addr, "wc-pub").await;
    for (i, t) in topics.iter().enumerate() {
        publ.publish(t, 1, false, i as u16 + 1, t.as_bytes()).await;
    }
    publ.publish(SENTINEL, 1, false, 100, b"end").await;
    for ((filter, expected), s) in cases.iter().zip(subs.iter_mut()) {
        let got = topics_until_sentinel(s).await;
        assert_eq!(got, expected.to_vec(), "topics delivered for filter {filter:?}");
    }
    b.shutdown().await;
}

/// Overlapping subscriptions of one client: one copy, at the maximum QoS
/// of the matching subscriptions (capped by the publish QoS) [MQTT-3.3.5-1].
#[tokio::test]
async fn overlapping_subscriptions_deliver_one_copy_at_max_qos() {
    let b = TestBroker::start().await;
    let mut s = Raw::v311(b.addr, "ov-sub").await;
    let codes = s.subscribe(1, &[("ov/#", 0), ("ov/+/x", 2), ("ov/a/x", 1), ("#", 0), (SENTINEL, 0)]).await;
    assert_eq!(codes, vec![0, 2, 1, 0, 0]);
    let mut publ = Raw::v311(b.addr, "ov-pub").await;
    let sends = [("ov/a/x", 2u8, 2u8), ("ov/b/x", 1, 1), ("ov/a/x", 1, 1), ("ov/c", 2, 0), ("ov/a/x", 0, 0)];
    for (i, (topic, pq, _)) in sends.iter().enumerate() {
        publ.publish(topic, *pq, false, i as u16 + 1, format!("m{i}").as_bytes()).await;
    }
    publ.publish(SENTINEL, 0, false, 0, b"end").await;
    for (i, (topic, pq, want)) in sends.iter().enumerate() {
        let m = s.receive_acked().await;
        assert_eq!(m.topic, *topic);
        assert_eq!(m.payload, format!("m{i}").as_bytes(), "exactly one copy per message [MQTT-3.3.5-1]");
        assert_eq!(m.qos, *want, "{topic} published at QoS {pq}: delivered QoS must be the max granted [MQTT-3.3.5-1]");
    }
    let end = s.receive_acked().await;
    assert_eq!(end.topic, SENTINEL, "duplicate copy delivered for an overlapping subscription [MQTT-3.3.5-1]");
    b.shutdown().await;
}

/// Re-subscribing replaces the subscription's QoS [MQTT-3.8.4-3];
/// UNSUBSCRIBE is acknowledged with the same packet id [MQTT-3.10.4-4],
/// [MQTT-3.11.2-1] and stops delivery [MQTT-3.10.4-2].
#[tokio::test]
async fn resubscribe_and_unsubscribe() {
    let b = TestBroker::start().await;
    let mut s = Raw::v311(b.addr, "unsub-sub").await;
    let mut publ = Raw::v311(b.addr, "unsub-pub").await;
    s.subscribe(1, &[("u/t", 2), (SENTINEL, 0)]).await;
    publ.publish("u/t", 2, false, 1, b"one").await;
    assert_eq!(s.receive_acked().await.qos, 2);
    assert_eq!(s.subscribe(2, &[("u/t", 1)]).await, vec![1]);
    publ.publish("u/t", 2, false, 2, b"two").await;
    let m = s.receive_acked().await;
    assert_eq!((&m.payload[..], m.qos), (&b"two"[..], 1), "re-subscription replaced QoS [MQTT-3.8.4-3]");

    s.send(&unsubscribe_packet(false, 77, &["u/t"])).await;
    let ack = s.expect_kind(UNSUBACK, "UNSUBACK").await;
    assert_eq!((ack.pid(), ack.flags, ack.body.len()), (77, 0, 2), "UNSUBACK [MQTT-3.10.4-4]");
    publ.publish("u/t", 1, false, 3, b"three").await;
    publ.publish(SENTINEL, 0, false, 0, b"end").await;
    assert_eq!(s.receive_acked().await.topic, SENTINEL, "no delivery after UNSUBSCRIBE [MQTT-3.10.4-2]");

    // Unsubscribing a filter that was never subscribed still gets UNSUBACK [MQTT-3.10.4-5].
    s.send(&unsubscribe_packet(false, 78, &["never/subscribed"])).await;
    assert_eq!(s.expect_kind(UNSUBACK, "UNSUBACK").await.pid(), 78, "[MQTT-3.10.4-5]");
    b.shutdown().await;
}

/// Many subscribers on one topic each receive every message; a publisher
/// subscribed to its own topic receives its own message (no No Local in 3.1.1).
#[tokio::test]
async fn fan_out_and_self_delivery() {
    let b = TestBroker::start().await;
    let mut subs = Vec::new();
    for i in 0..20 {
        let mut s = Raw::v311(b.addr, &format!("fan-{i}")).await;
        s.subscribe(1, &[("fan/t", 1)]).await;
        subs.push(s);
    }
    subs[0].publish("fan/t", 0, false, 0, b"hello all").await;
    for s in subs.iter_mut() {
        assert_eq!(s.receive_acked().await.payload, b"hello all");
    }
    b.shutdown().await;
}

/// SUBSCRIBE with several filters gets one return code per filter, in
/// order [MQTT-3.8.4-5], [MQTT-3.9.3-1]; the SUBACK has the same packet id
/// [MQTT-3.8.4-2].
#[tokio::test]
async fn suback_codes_per_filter() {
    let b = TestBroker::start().await;
    let mut s = Raw::v311(b.addr, "multi-sub").await;
    s.send(&subscribe_packet(false, 4242, &[("m/a", 2), ("m/b", 0), ("m/+/c", 1)])).await;
    let ack = s.expect_kind(SUBACK, "SUBACK").await;
    assert_eq!(ack.pid(), 4242, "[MQTT-3.8.4-2]");
    assert_eq!(ack.ack_codes(false), vec![2, 0, 1], "[MQTT-3.8.4-5]/[MQTT-3.9.3-1]");
    b.shutdown().await;
}
