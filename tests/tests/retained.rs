//! Retained messages: set, replace, delete by empty payload, RETAIN flag on
//! delivery at subscribe time versus live forwarding, wildcard subscribe to
//! many retained topics, and MQTT 5 Retain As Published.

mod common;

use std::collections::BTreeSet;

use common::*;

#[tokio::test]
async fn set_replace_delete() {
    let b = TestBroker::start().await;
    let mut publ = Raw::v311(b.addr, "ret-pub").await;

    // Set.
    publ.publish("ret/a", 1, true, 1, b"v1").await;
    let mut s1 = Raw::v311(b.addr, "ret-s1").await;
    assert_eq!(s1.subscribe(1, &[("ret/a", 1)]).await, vec![1]);
    let m = s1.receive_acked().await;
    // [MQTT-3.3.1-6]: a new subscription gets the retained message;
    // [MQTT-3.3.1-8]: sent because of a new subscription => RETAIN=1.
    assert_eq!((m.topic.as_str(), &m.payload[..], m.retain, m.qos), ("ret/a", &b"v1"[..], true, 1));
    s1.expect_silence("only one retained message per topic").await;

    // Replace. [MQTT-3.3.1-5]: the new retained message replaces the old one.
    publ.publish("ret/a", 1, true, 2, b"v2").await;
    let live = s1.receive_acked().await;
    // [MQTT-3.3.1-9]: forwarded to an established subscription => RETAIN=0.
    assert_eq!((&live.payload[..], live.retain), (&b"v2"[..], false), "live forward of a retained publish");
    let mut s2 = Raw::v311(b.addr, "ret-s2").await;
    s2.subscribe(1, &[("ret/a", 1)]).await;
    let m = s2.receive_acked().await;
    assert_eq!((&m.payload[..], m.retain), (&b"v2"[..], true), "replaced retained message");
    s2.expect_silence("old retained value must be gone").await;

    // A non-retained publish does not touch the retained message [MQTT-3.3.1-12].
    publ.publish("ret/a", 1, false, 3, b"not retained").await;
    assert_eq!(s1.receive_acked().await.payload, b"not retained");
    assert_eq!(s2.receive_acked().await.payload, b"not retained");
    let mut s3 = Raw::v311(b.addr, "ret-s3").await;
    s3.subscribe(1, &[("ret/a", 0)]).await;
    let m = s3.receive_acked().await;
    assert_eq!((&m.payload[..], m.retain), (&b"v2"[..], true), "[MQTT-3.3.1-12]");
    assert_eq!(m.qos, 0, "retained message delivered at the granted QoS");

    // Delete. [MQTT-3.3.1-10]: the empty retained publish is forwarded as
    // normal and removes the retained message; [MQTT-3.3.1-11]: it is not
    // itself stored.
    publ.publish("ret/a", 1, true, 4, b"").await;
    let gone = s1.receive_acked().await;
    assert_eq!((gone.payload.len(), gone.retain), (0, false), "empty retained publish forwarded live");
    let mut s4 = Raw::v311(b.addr, "ret-s4").await;
    s4.subscribe(1, &[("ret/a", 1), ("ret/#", 1)]).await;
    s4.expect_silence("retained message deleted [MQTT-3.3.1-10]/[MQTT-3.3.1-11]").await;

    b.shutdown().await;
}

/// A retained message published at QoS 0 is still retained
/// [MQTT-3.3.1-7 discards the old one and stores this one].
#[tokio::test]
async fn qos0_retained_message_is_stored() {
    let b = TestBroker::start().await;
    let mut publ = Raw::v311(b.addr, "ret0-pub").await;
    publ.publish("ret0/t", 1, true, 1, b"old").await;
    publ.publish("ret0/t", 0, true, 0, b"new").await;
    // Round-trip a PINGREQ so the QoS 0 publish has surely been processed.
    publ.send(&pingreq_packet()).await;
    assert_eq!(publ.expect("PINGRESP").await.kind, PINGRESP);
    let mut s = Raw::v311(b.addr, "ret0-sub").await;
    s.subscribe(1, &[("ret0/t", 2)]).await;
    let m = s.receive_acked().await;
    assert_eq!((&m.payload[..], m.retain, m.qos), (&b"new"[..], true, 0));
    b.shutdown().await;
}

/// Subscribing with wildcards delivers every matching retained message,
/// each once, with RETAIN=1.
#[tokio::test]
async fn wildcard_subscribe_to_many_retained_topics() {
    const TOPICS: usize = 200;
    let b = TestBroker::start().await;
    let mut publ = Raw::v311(b.addr, "many-pub").await;
    for i in 0..TOPICS {
        publ.publish(&format!("many/{}/dev{i}/state", i % 7), 1, true, (i + 1) as u16, format!("s{i}").as_bytes())
            .await;
    }
    // Not matched by the filters below.
    publ.publish("many/x/other", 1, true, 999, b"other").await;
    publ.publish("elsewhere/dev/state", 1, true, 998, b"else").await;

    for (n, filter) in ["many/#", "many/+/+/state", "+/+/+/state"].into_iter().enumerate() {
        let mut s = Raw::v311(b.addr, &format!("many-sub-{n}")).await;
        s.subscribe(1, &[(filter, 1)]).await;
        let mut got = BTreeSet::new();
        let expected = if filter == "many/#" { TOPICS + 1 } else { TOPICS };
        for _ in 0..expected {
            let m = s.receive_acked().await;
            assert!(m.retain, "retained delivery on subscribe has RETAIN=1 [MQTT-3.3.1-8]: {m:?}");
            assert!(got.insert(m.topic.clone()), "retained message for {} delivered twice", m.topic);
        }
        s.expect_silence(&format!("exactly {expected} retained messages for {filter}")).await;
        for i in 0..TOPICS {
            assert!(got.contains(&format!("many/{}/dev{i}/state", i % 7)), "{filter} missed dev{i}");
        }
        s.disconnect().await;
    }
    b.shutdown().await;
}

/// Re-subscribing to an existing filter re-sends the retained messages
/// [MQTT-3.8.4-3].
#[tokio::test]
async fn resubscribe_resends_retained() {
    let b = TestBroker::start().await;
    let mut publ = Raw::v311(b.addr, "resub-pub").await;
    publ.publish("resub/t", 1, true, 1, b"kept").await;
    let mut s = Raw::v311(b.addr, "resub-sub").await;
    s.subscribe(1, &[("resub/t", 1)]).await;
    assert_eq!(s.receive_acked().await.payload, b"kept");
    s.subscribe(2, &[("resub/t", 1)]).await;
    let m = s.receive_acked().await;
    assert_eq!((&m.payload[..], m.retain), (&b"kept"[..], true), "[MQTT-3.8.4-3]");
    b.shutdown().await;
}

/// MQTT 5: Retain As Published (subscription option bit 3) keeps RETAIN=1
/// on live forwards [MQTT-3.3.1-13]; without it RETAIN is 0 [MQTT-3.3.1-12
/// in 5.0 numbering].
#[tokio::test]
async fn v5_retain_as_published() {
    let b = TestBroker::start().await;
    let mut rap = Raw::v5(b.addr, "rap-on").await;
    let mut plain = Raw::v5(b.addr, "rap-off").await;
    assert_eq!(rap.subscribe(1, &[("rap/t", 0x08 | 1)]).await, vec![1]);
    assert_eq!(plain.subscribe(1, &[("rap/t", 1)]).await, vec![1]);
    let mut publ = Raw::v5(b.addr, "rap-pub").await;
    publ.publish("rap/t", 1, true, 1, b"r").await;
    let m = rap.receive_acked().await;
    assert!(m.retain, "Retain As Published: RETAIN must be kept [MQTT-3.3.1-13]");
    let m = plain.receive_acked().await;
    assert!(!m.retain, "without Retain As Published RETAIN must be 0 [MQTT-3.3.1-12]");
    b.shutdown().await;
}

/// Retained messages are matched with the same rules as live messages
/// (4.7): `#` includes the parent level [MQTT-4.7.1-2], `+` exactly one
/// level, and wildcards at the start never match `$` topics [MQTT-4.7.2-1].
#[tokio::test]
async fn retained_wildcard_and_dollar_matching() {
    let topics = [
        "sport",
        "sport/",
        "sport/tennis/player1",
        "sport/tennis/player1/ranking",
        "/finance",
        "a//b",
        "$SYS/monitor/Clients",
        "$internal/x",
    ];
    let cases: &[(&str, &[&str])] = &[
        ("sport/#", &["sport", "sport/", "sport/tennis/player1", "sport/tennis/player1/ranking"]),
        ("sport/tennis/player1/#", &["sport/tennis/player1", "sport/tennis/player1/ranking"]),
        ("sport/+", &["sport/"]),
        ("+", &["sport"]),
        ("+/+", &["sport/", "/finance"]),
        ("/+", &["/finance"]),
        ("a/+/b", &["a//b"]),
        ("#", &["sport", "sport/", "sport/tennis/player1", "sport/tennis/player1/ranking", "/finance", "a//b"]),
        ("+/monitor/Clients", &[]),
        ("+/x", &[]),
        ("$SYS/#", &["$SYS/monitor/Clients"]),
        ("$SYS/+/Clients", &["$SYS/monitor/Clients"]),
        ("$internal/+", &["$internal/x"]),
    ];
    // The broker's own $SYS/broker topics off: only the test's topics match.
    let b = TestBroker::start_with(|c| c.sys_interval = 0).await;
    let mut publ = Raw::v311(b.addr, "rwc-pub").await;
    for (i, t) in topics.iter().enumerate() {
        publ.publish(t, 1, true, i as u16 + 1, t.as_bytes()).await;
    }
    for (i, (filter, expected)) in cases.iter().enumerate() {
        let mut s = Raw::v311(b.addr, &format!("rwc-{i}")).await;
        s.subscribe(1, &[(filter, 1)]).await;
        let mut got = BTreeSet::new();
        for _ in 0..expected.len() {
            let m = s.receive_acked().await;
            assert!(m.retain);
            assert_eq!(m.payload, m.topic.as_bytes());
            assert!(got.insert(m.topic), "duplicate retained delivery for {filter:?}");
        }
        s.expect_silence(&format!("retained messages beyond {expected:?} for filter {filter:?} [MQTT-4.7.2-1]")).await;
        let want: BTreeSet<String> = expected.iter().map(|t| t.to_string()).collect();
        assert_eq!(got, want, "retained messages for filter {filter:?}");
        s.disconnect().await;
    }
    b.shutdown().await;
}

/// MQTT 5: a retained message whose Message Expiry Interval has passed is
/// no longer delivered to new subscribers [MQTT-3.3.2-5].
#[tokio::test]
async fn v5_retained_message_expires() {
    let b = TestBroker::start().await;
    let mut publ = Raw::v5(b.addr, "rexp-pub").await;
    publ.send(&publish_packet_props(true, "rexp/t", 1, true, false, 1, &[0x02, 0, 0, 0, 1], b"short-lived")).await;
    assert_eq!(publ.expect_kind(PUBACK, "PUBACK").await.pid(), 1);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let mut s = Raw::v5(b.addr, "rexp-sub").await;
    s.subscribe(1, &[("rexp/t", 1)]).await;
    s.expect_silence("expired retained message delivered [MQTT-3.3.2-5]").await;
    b.shutdown().await;
}
