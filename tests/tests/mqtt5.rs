//! MQTT 5 basics: rumqttc v5 publish/subscribe with properties, reason
//! codes (SUBACK, UNSUBACK, CONNACK), session expiry, Message Expiry, No
//! Local, and DISCONNECT 0x8B on broker shutdown. Normative references use
//! the MQTT 5.0 numbering.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use rumqttc::v5::mqttbytes::v5::PublishProperties;
use rumqttc::v5::mqttbytes::QoS;

/// User properties pass through in order, duplicates included
/// [MQTT-3.3.2-17]/[MQTT-3.3.2-18]; the other application properties
/// (Payload Format Indicator, Content Type, Response Topic, Correlation
/// Data) are forwarded unaltered [MQTT-3.3.2-4], [MQTT-3.3.2-20], 3.3.2.3.5,
/// 3.3.2.3.6; at every QoS.
#[tokio::test]
async fn v5_properties_pass_through_in_order() {
    let b = TestBroker::start().await;
    let mut sub = V5Client::simple(b.addr, "v5-props-sub").await;
    assert_eq!(sub.subscribe("v5p/#", QoS::ExactlyOnce).await, vec![2]);
    let publisher = V5Client::simple(b.addr, "v5-props-pub").await;
    let user = vec![
        ("zeta".to_string(), "1".to_string()),
        ("alpha".to_string(), "2".to_string()),
        ("zeta".to_string(), "3".to_string()),
        ("ключ".to_string(), "значение".to_string()),
    ];
    for (i, qos) in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce].into_iter().enumerate() {
        let props = PublishProperties {
            payload_format_indicator: Some(1),
            content_type: Some("text/plain".into()),
            response_topic: Some("v5p/reply".into()),
            correlation_data: Some(Bytes::from_static(b"\x00\x01corr")),
            user_properties: user.clone(),
            ..PublishProperties::default()
        };
        publisher
            .client
            .publish_with_properties(format!("v5p/{i}"), qos, false, format!("payload {i}"), props)
            .await
            .expect("publish");
        let p = sub.next_publish().await;
        assert_eq!(
            (&p.topic[..], &p.payload[..], p.qos),
            (format!("v5p/{i}").as_bytes(), format!("payload {i}").as_bytes(), qos)
        );
        let got = p.properties.expect("properties forwarded");
        assert_eq!(got.user_properties, user, "user properties in order [MQTT-3.3.2-18]");
        assert_eq!(got.payload_format_indicator, Some(1), "[MQTT-3.3.2-4]");
        assert_eq!(got.content_type.as_deref(), Some("text/plain"), "[MQTT-3.3.2-20]");
        assert_eq!(got.response_topic.as_deref(), Some("v5p/reply"));
        assert_eq!(got.correlation_data.as_deref(), Some(&b"\x00\x01corr"[..]));
    }
    drop(publisher);
    drop(sub);
    b.shutdown().await;
}

/// User properties from a v5 publisher are dropped for a 3.1.1 subscriber
/// (it has no properties) but the message itself arrives.
#[tokio::test]
async fn v5_publish_to_v311_subscriber() {
    let b = TestBroker::start().await;
    let mut old = Raw::v311(b.addr, "old-sub").await;
    old.subscribe(1, &[("mix/t", 2)]).await;
    let mut p = Raw::v5(b.addr, "v5-pub").await;
    let props = user_prop("k", "v");
    p.send(&publish_packet_props(true, "mix/t", 1, false, false, 1, &props, b"to 3.1.1")).await;
    assert_eq!(p.expect_kind(PUBACK, "PUBACK").await.pid(), 1);
    let m = old.receive_acked().await;
    assert_eq!((&m.payload[..], m.qos), (&b"to 3.1.1"[..], 1));
    b.shutdown().await;
}

/// SUBACK reason codes: granted QoS per filter, 0x8F (Topic Filter invalid)
/// for a malformed filter [MQTT-4.7.1-1]/[MQTT-4.7.1-2 in 3.1.1 terms]:
/// `#` not last, `+` sharing a level. Raw bytes because rumqttc refuses to
/// send such filters. UNSUBACK: 0x00 Success, 0x11 No subscription existed.
#[tokio::test]
async fn v5_suback_and_unsuback_reason_codes() {
    let b = TestBroker::start().await;
    let mut c = Raw::v5(b.addr, "v5-codes").await;
    let codes = c.subscribe(7, &[("ok/+", 1), ("bad/#/x", 1), ("bad+", 0), ("ok/#", 2), ("a/b#", 0)]).await;
    assert_eq!(codes, vec![1, 0x8F, 0x8F, 2, 0x8F], "SUBACK reason codes, one per filter in order [MQTT-3.9.3-1]");
    // The connection stays usable and valid filters work.
    c.publish("ok/x", 1, false, 8, b"works").await;
    let m = c.receive_acked().await;
    assert_eq!(
        (&m.payload[..], m.qos),
        (&b"works"[..], 1),
        "one copy at max QoS of ok/+ (1) and ok/# (2), capped by publish QoS 1"
    );

    c.send(&unsubscribe_packet(true, 9, &["ok/+", "never/subscribed", "ok/#"])).await;
    let ack = c.expect_kind(UNSUBACK, "UNSUBACK").await;
    assert_eq!(ack.pid(), 9);
    assert_eq!(ack.ack_codes(true), vec![0x00, 0x11, 0x00], "UNSUBACK reason codes (5.0 3.11.3)");
    c.publish("ok/x", 1, false, 10, b"gone").await;
    c.expect_silence("no delivery after UNSUBSCRIBE").await;
    b.shutdown().await;
}

/// A v5 client with an empty client id gets one assigned in the CONNACK
/// (Assigned Client Identifier, 0x12) [MQTT-3.2.2-16].
#[tokio::test]
async fn v5_assigned_client_identifier() {
    let b = TestBroker::start().await;
    let mut c = Raw::open(b.addr).await;
    c.send(&connect_packet(&ConnectOpts::new(Proto::V5, ""))).await;
    let ack = c.expect("CONNACK").await;
    assert_eq!(ack.connack(), (false, 0));
    let assigned = props_list(&ack.connack_props()).into_iter().find_map(|(id, v)| match v {
        Prop::Str(s) if id == 0x12 => Some(s),
        _ => None,
    });
    let assigned = assigned.expect("Assigned Client Identifier in CONNACK [MQTT-3.2.2-16]");
    assert!(!assigned.is_empty());
    b.shutdown().await;
}

/// Clean Start 0 with a Session Expiry Interval: the session (and its
/// queued QoS 1 messages) survive a disconnect; session present 1
/// [MQTT-3.2.2-3 in 5.0: 3.2.2.1.1]. Clean Start 1 discards it [MQTT-3.1.2-4].
#[tokio::test]
async fn v5_session_resume_and_clean_start() {
    let b = TestBroker::start().await;
    let opts = ConnectOpts::new(Proto::V5, "v5-persist").clean(false).props(session_expiry(300));
    let (mut s, sp) = Raw::connect(b.addr, &opts).await;
    assert!(!sp);
    s.subscribe(1, &[("v5s/t", 1)]).await;
    s.disconnect().await;
    let mut p = Raw::v5(b.addr, "v5-persist-pub").await;
    for i in 0..5u16 {
        p.publish("v5s/t", 1, false, i + 1, format!("{i}").as_bytes()).await;
    }
    let (mut s, sp) = Raw::connect(b.addr, &opts).await;
    assert!(sp, "session present 1 on resume");
    for i in 0..5u16 {
        assert_eq!(s.receive_acked().await.payload, format!("{i}").into_bytes(), "queued in order");
    }
    s.disconnect().await;
    let (mut s, sp) =
        Raw::connect(b.addr, &ConnectOpts::new(Proto::V5, "v5-persist").clean(true).props(session_expiry(300))).await;
    assert!(!sp, "Clean Start 1 => session present 0 [MQTT-3.2.2-2]");
    p.publish("v5s/t", 1, false, 9, b"after clean start").await;
    s.expect_silence("Clean Start 1 discarded the subscription [MQTT-3.1.2-4]").await;
    b.shutdown().await;
}

/// A v5 session with Session Expiry Interval 0 (the default) ends at
/// disconnect, even with Clean Start 0 [MQTT-3.1.2-23 in 5.0: 3.1.2.11.2];
/// so does one whose DISCONNECT sets the interval to 0, replacing the 300
/// of CONNECT (5.0 3.14.2.2.2).
#[tokio::test]
async fn v5_session_expiry_zero_ends_at_disconnect() {
    let b = TestBroker::start().await;
    let mut p = Raw::v5(b.addr, "v5z-pub").await;
    let mut dx = vec![0x00, 5];
    dx.extend(session_expiry(0));
    let cases = [
        (Vec::new(), disconnect_packet(), "expiry 0 at CONNECT"),
        (session_expiry(300), packet(0xE0, &dx), "expiry 0 at DISCONNECT"),
    ];
    for (i, (props, disconnect, what)) in cases.into_iter().enumerate() {
        let opts = ConnectOpts::new(Proto::V5, "v5-noexp").clean(false).props(props);
        let (mut s, _) = Raw::connect(b.addr, &opts).await;
        s.subscribe(1, &[("v5z/t", 1)]).await;
        s.send(&disconnect).await;
        assert!(s.expect_closed(what).await.is_empty());
        p.publish("v5z/t", 1, false, i as u16 + 1, b"x").await;
        let (mut s, sp) = Raw::connect(b.addr, &opts).await;
        assert!(!sp, "{what}: the session must not survive the disconnect");
        s.expect_silence("no queued message for an expired session").await;
        s.disconnect().await;
    }
    b.shutdown().await;
}

/// Message Expiry Interval: a queued message whose interval passed is not
/// delivered [MQTT-3.3.2-5]; one still valid is delivered with the interval
/// reduced by the time it waited [MQTT-3.3.2-6].
#[tokio::test]
async fn v5_message_expiry() {
    let b = TestBroker::start().await;
    let opts = ConnectOpts::new(Proto::V5, "v5-mexp").clean(false).props(session_expiry(300));
    let (mut s, _) = Raw::connect(b.addr, &opts).await;
    s.subscribe(1, &[("mexp/t", 1)]).await;
    s.disconnect().await;
    let mut p = Raw::v5(b.addr, "mexp-pub").await;
    let expiry = |secs: u32| {
        let mut v = vec![0x02];
        v.extend(secs.to_be_bytes());
        v
    };
    for (i, props) in [expiry(1), expiry(100), vec![]].iter().enumerate() {
        p.send(&publish_packet_props(true, "mexp/t", 1, false, false, i as u16 + 1, props, format!("m{i}").as_bytes()))
            .await;
        assert_eq!(p.expect_kind(PUBACK, "PUBACK").await.pid(), i as u16 + 1);
    }
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (mut s, sp) = Raw::connect(b.addr, &opts).await;
    assert!(sp);
    let m = s.receive_acked().await;
    assert_eq!(m.payload, b"m1", "the message with a 1 s expiry must have expired [MQTT-3.3.2-5]");
    let left = int_prop(&m.props, 0x02).expect("Message Expiry Interval forwarded [MQTT-3.3.2-6]");
    assert!((1..=98).contains(&left), "expiry 100 after waiting 2.1 s must be reduced: got {left} [MQTT-3.3.2-6]");
    let m = s.receive_acked().await;
    assert_eq!(m.payload, b"m2");
    assert_eq!(int_prop(&m.props, 0x02), None, "no expiry set => none forwarded");
    s.expect_silence("nothing else queued").await;
    b.shutdown().await;
}

/// No Local (subscription option bit 2): the client's own messages are not
/// sent back to it [MQTT-3.8.3-3]; other clients' messages are.
#[tokio::test]
async fn v5_no_local() {
    let b = TestBroker::start().await;
    let mut me = Raw::v5(b.addr, "nl-me").await;
    assert_eq!(me.subscribe(1, &[("nl/t", 0x04 | 1)]).await, vec![1]);
    let mut other = Raw::v5(b.addr, "nl-other").await;
    other.subscribe(1, &[("nl/t", 1)]).await;
    me.publish("nl/t", 1, false, 2, b"mine").await;
    assert_eq!(other.receive_acked().await.payload, b"mine");
    other.publish("nl/t", 1, false, 3, b"theirs").await;
    let m = me.receive_acked().await;
    assert_eq!(m.payload, b"theirs", "own message delivered despite No Local [MQTT-3.8.3-3]");
    assert_eq!(other.receive_acked().await.payload, b"theirs", "without No Local a client gets its own message");
    b.shutdown().await;
}

/// Graceful shutdown: v5 clients get DISCONNECT 0x8B (Server shutting
/// down) before the close; 3.1.1 clients are just closed.
#[tokio::test]
async fn v5_shutdown_sends_disconnect_0x8b() {
    let b = TestBroker::start().await;
    let mut v5 = Raw::v5(b.addr, "shut-v5").await;
    let mut v3 = Raw::v311(b.addr, "shut-v3").await;
    b.shutdown().await;
    let seen = v5.expect_closed("shutdown").await;
    assert!(
        seen.len() == 1 && seen[0].kind == DISCONNECT && seen[0].reason() == 0x8B,
        "expected DISCONNECT 0x8B, got {seen:?}"
    );
    assert!(v3.expect_closed("shutdown").await.is_empty(), "3.1.1 has no server DISCONNECT");
}

/// Shutdown closes every connection, also those the router does not know
/// and the deadline wheel would wake only much later: one that has not
/// sent CONNECT (connect timeout an hour) and a 3.1.1 client without
/// keep-alive. (They are woken through the broker's list of connections,
/// `server/stopping.rs`; the grace period, 5 s, is shorter than the wait
/// here, so a connection left to its own deadline would be open.)
#[tokio::test]
async fn shutdown_closes_connections_without_session_or_deadline() {
    let b = TestBroker::start_with(|c| c.connect_timeout_secs = 3600).await;
    let mut silent = Raw::open(b.addr).await;
    let mut v3 =
        Raw::connect(b.addr, &ConnectOpts { keep_alive: 0, ..ConnectOpts::new(Proto::V311, "shut-ka0") }).await.0;
    b.shutdown().await;
    assert!(silent.expect_closed("shutdown before CONNECT").await.is_empty());
    assert!(v3.expect_closed("shutdown, keep-alive 0").await.is_empty());
}

/// rumqttc v5 with a persistent session: messages published while it is
/// offline arrive after it reconnects.
#[tokio::test]
async fn v5_rumqttc_persistent_session() {
    let b = TestBroker::start().await;
    let opts = || {
        let mut o = V5Client::options(b.addr, "rq5-persist");
        o.set_clean_start(false);
        o.set_session_expiry_interval(Some(300));
        o
    };
    let mut s = V5Client::connect(opts()).await;
    s.subscribe("rq5/t", QoS::AtLeastOnce).await;
    s.client.disconnect().await.expect("disconnect");
    drop(s);
    // Messages published while the session is offline or still closing
    // are queued or delivered after the resume either way.
    let mut p = Raw::v5(b.addr, "rq5-pub").await;
    for i in 0..10u16 {
        p.publish("rq5/t", 1, false, i + 1, format!("{i}").as_bytes()).await;
    }
    let mut s = V5Client::connect(opts()).await;
    for i in 0..10u16 {
        let m = s.next_publish().await;
        assert_eq!(&m.payload[..], format!("{i}").as_bytes());
    }
    drop(s);
    b.shutdown().await;
}

/// Subscription Identifiers are returned with matching messages
/// [MQTT-3.3.4-3]; with overlapping subscriptions the one copy carries the
/// identifiers of every matching subscription [MQTT-3.3.4-5 is for
/// separate copies; 3.3.4: "it will include all Subscription Identifiers"].
#[tokio::test]
async fn v5_subscription_identifiers() {
    let b = TestBroker::start().await;
    let mut s = Raw::v5(b.addr, "sid-sub").await;
    let mut subscribe = async |pid: u16, id: u8, filter: &str| {
        s.send(&subscribe_packet_props(true, pid, &[0x0B, id], &[(filter, 1)])).await;
        let ack = s.expect_kind(SUBACK, "SUBACK").await;
        assert_eq!(ack.ack_codes(true), vec![1]);
    };
    subscribe(1, 7, "sid/+").await;
    subscribe(2, 9, "sid/#").await;
    let mut p = Raw::v5(b.addr, "sid-pub").await;
    p.publish("sid/x", 1, false, 1, b"both").await;
    p.publish("sid/x/y", 1, false, 2, b"hash only").await;
    let m = s.receive_acked().await;
    assert_eq!(m.payload, b"both");
    let mut ids: Vec<u32> = props_list(&m.props)
        .into_iter()
        .filter(|(id, _)| *id == 0x0B)
        .map(|(_, v)| match v {
            Prop::Int(n) => n,
            other => panic!("{other:?}"),
        })
        .collect();
    ids.sort();
    assert_eq!(ids, vec![7, 9], "one copy carrying both Subscription Identifiers");
    let m = s.receive_acked().await;
    assert_eq!(m.payload, b"hash only");
    assert_eq!(int_prop(&m.props, 0x0B), Some(9), "[MQTT-3.3.4-3]");
    s.expect_silence("one copy per message [MQTT-3.3.5-1]").await;
    b.shutdown().await;
}

/// Retain Handling (subscription options bits 4-5): 0 sends retained
/// messages on every SUBSCRIBE, 1 only for a new subscription, 2 never
/// (5.0 3.8.3.1) [MQTT-3.3.1-9 .. -11 in 5.0 numbering].
#[tokio::test]
async fn v5_retain_handling() {
    let b = TestBroker::start().await;
    let mut p = Raw::v5(b.addr, "rh-pub").await;
    p.publish("rh/t", 1, true, 1, b"kept").await;
    let mut s = Raw::v5(b.addr, "rh-sub").await;
    // 2: never.
    s.subscribe(1, &[("rh/t", 0x20 | 1)]).await;
    s.expect_silence("Retain Handling 2 must not send retained messages").await;
    // 1: only if the subscription is new; it exists now.
    s.subscribe(2, &[("rh/t", 0x10 | 1)]).await;
    s.expect_silence("Retain Handling 1 on an existing subscription").await;
    // 1 on a new subscription: sent.
    s.subscribe(3, &[("rh/#", 0x10 | 1)]).await;
    assert_eq!(s.receive_acked().await.payload, b"kept", "Retain Handling 1, new subscription");
    // 0: sent on every SUBSCRIBE.
    s.subscribe(4, &[("rh/t", 1)]).await;
    assert_eq!(s.receive_acked().await.payload, b"kept", "Retain Handling 0");
    s.expect_silence("nothing else").await;
    b.shutdown().await;
}

/// Shared subscriptions (5.0 4.8.2): each message goes to exactly one
/// member of the group; no retained messages on a shared subscription.
#[tokio::test]
async fn v5_shared_subscription_one_member_each() {
    const N: usize = 40;
    let b = TestBroker::start().await;
    let mut p = Raw::v5(b.addr, "sh-pub").await;
    p.publish("sh/t", 1, true, 500, b"retained").await;
    let mut members = Vec::new();
    for i in 0..2 {
        let mut m = Raw::v5(b.addr, &format!("sh-member-{i}")).await;
        assert_eq!(m.subscribe(1, &[("$share/g/sh/t", 1)]).await, vec![1]);
        members.push(m);
    }
    let mut plain = Raw::v5(b.addr, "sh-plain").await;
    plain.subscribe(1, &[("sh/t", 1)]).await;
    assert!(plain.receive_acked().await.retain, "non-shared subscription gets the retained message");
    for i in 0..N {
        p.publish("sh/t", 1, false, i as u16 + 1, format!("{i}").as_bytes()).await;
    }
    for i in 0..N {
        assert_eq!(plain.receive_acked().await.payload, format!("{i}").into_bytes());
    }
    let mut seen = Vec::new();
    for (_, msg) in collect_from(&mut members, N, true).await {
        assert!(!msg.retain && msg.payload != b"retained", "retained message sent to a shared subscription");
        seen.push(String::from_utf8_lossy(&msg.payload).parse::<usize>().expect("number"));
    }
    for m in members.iter_mut() {
        m.expect_silence("each message to one member only").await;
    }
    seen.sort();
    assert_eq!(seen, (0..N).collect::<Vec<_>>(), "each message to exactly one group member");
    b.shutdown().await;
}

/// Will Delay Interval (5.0 3.1.3.2.2): the will waits; if the client
/// reconnects (same session) before it elapses, it is not sent
/// [MQTT-3.1.3-9]; otherwise it is published after the delay.
#[tokio::test]
async fn v5_will_delay() {
    let b = TestBroker::start().await;
    let mut w = Raw::v311(b.addr, "wd-watch").await;
    w.subscribe(1, &[("wd/#", 1)]).await;
    let will_props = |id: &str, delay: u32| {
        let expiry = if id == "short" { 1 } else { 300 };
        let mut o = ConnectOpts::new(Proto::V5, id).clean(false).props(session_expiry(expiry));
        o = o.will(&format!("wd/{id}"), id.as_bytes(), 1, false);
        (o, delay)
    };
    // connect_packet writes an empty will property list; build the will
    // with a delay by hand.
    let connect_with_delay = |(o, delay): (ConnectOpts, u32)| {
        let mut pk = connect_packet(&o);
        let w = o.will.as_ref().expect("will");
        let mut tail = mqtt_str(&w.topic);
        tail.extend(mqtt_str(&w.payload));
        let at = pk.len() - tail.len() - 1; // the will property length byte
        assert_eq!(pk[at], 0);
        let mut props = vec![5u8, 0x18];
        props.extend(delay.to_be_bytes());
        pk.splice(at..at + 1, props);
        // Fix the remaining length (the packet is short: one byte).
        assert!(pk[1] < 0x80 && pk[1] as usize + 5 < 0x80);
        pk[1] += 5;
        pk
    };
    // 1: reconnect within the delay => no will.
    let mut c = Raw::open(b.addr).await;
    c.send(&connect_with_delay(will_props("back", 2))).await;
    assert_eq!(c.expect("CONNACK").await.connack(), (false, 0));
    drop(c);
    let (_c, sp) =
        Raw::connect(b.addr, &ConnectOpts::new(Proto::V5, "back").clean(false).props(session_expiry(300))).await;
    assert!(sp);
    // 2: no reconnect => will after the delay (1 s), within 3 s.
    let mut c = Raw::open(b.addr).await;
    c.send(&connect_with_delay(will_props("gone", 1))).await;
    assert_eq!(c.expect("CONNACK").await.connack(), (false, 0));
    drop(c);
    let m = tokio::time::timeout(std::time::Duration::from_secs(3), w.receive_acked())
        .await
        .expect("delayed will published within 3 s");
    assert_eq!(
        (m.topic.as_str(), &m.payload[..]),
        ("wd/gone", &b"gone"[..]),
        "the will of the client that came back must not be sent [MQTT-3.1.3-9]"
    );
    // By now the 2 s delay of "back" has passed too: still nothing.
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    w.expect_silence("will of a client that reconnected within its Will Delay [MQTT-3.1.3-9]").await;
    // 3: a Will Delay of 60 s but a session that expires after 1 s: the
    // will goes when the session ends, the earlier of the two (3.1.3.2.2).
    let mut c = Raw::open(b.addr).await;
    c.send(&connect_with_delay(will_props("short", 60))).await;
    assert_eq!(c.expect("CONNACK").await.connack(), (false, 0));
    drop(c);
    let m = tokio::time::timeout(std::time::Duration::from_secs(4), w.receive_acked())
        .await
        .expect("will published when the session ended, before its 60 s delay");
    assert_eq!((m.topic.as_str(), &m.payload[..]), ("wd/short", &b"short"[..]));
    b.shutdown().await;
}

/// A v5 session with a Session Expiry Interval of 1 s is gone 2 s after
/// its connection closed: session present 0, no subscription (5.0 3.1.2.11.2).
#[tokio::test]
async fn v5_session_expires_after_interval() {
    let b = TestBroker::start().await;
    let opts = ConnectOpts::new(Proto::V5, "v5-shortlived").clean(false).props(session_expiry(1));
    let (mut s, _) = Raw::connect(b.addr, &opts).await;
    s.subscribe(1, &[("sexp/t", 1)]).await;
    s.disconnect().await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let mut p = Raw::v5(b.addr, "sexp-pub").await;
    p.publish("sexp/t", 1, false, 1, b"after expiry").await;
    let (mut s, sp) = Raw::connect(b.addr, &opts).await;
    assert!(!sp, "session must have expired after its Session Expiry Interval");
    s.expect_silence("expired session kept its subscription").await;
    b.shutdown().await;
}

/// Resolves broker-assigned Topic Aliases like a client would; panics on
/// an alias it was never told about (5.0 3.3.2.3.4).
struct AliasResolver {
    max: u16,
    map: std::collections::HashMap<u32, String>,
}

impl AliasResolver {
    fn resolve(&mut self, m: &Pub, what: &str) -> String {
        match int_prop(&m.props, 0x23) {
            None => {
                assert!(!m.topic.is_empty(), "{what}: empty topic without a Topic Alias");
                m.topic.clone()
            }
            Some(a) => {
                assert!(
                    a >= 1 && a <= u32::from(self.max),
                    "{what}: Topic Alias {a} outside 1..={} [MQTT-3.1.2-26], [MQTT-3.3.2-8]",
                    self.max
                );
                if m.topic.is_empty() {
                    self.map.get(&a).cloned().unwrap_or_else(|| {
                        panic!(
                            "{what}: Topic Alias {a} used with an empty topic but never established on this connection"
                        )
                    })
                } else {
                    self.map.insert(a, m.topic.clone());
                    m.topic.clone()
                }
            }
        }
    }
}

fn alias_max_prop(max: u16) -> Vec<u8> {
    let mut p = vec![0x22];
    p.extend(max.to_be_bytes());
    p
}

/// Topic Aliases the broker assigns to a client that accepts them (Topic
/// Alias Maximum in CONNECT) never exceed that maximum [MQTT-3.1.2-26] and
/// always resolve to the right topic.
#[tokio::test]
async fn v5_server_topic_aliases_resolve() {
    let b = TestBroker::start().await;
    let (mut s, _) = Raw::connect(b.addr, &ConnectOpts::new(Proto::V5, "alias-client").props(alias_max_prop(2))).await;
    s.subscribe(1, &[("sa/#", 1)]).await;
    let mut p = Raw::v5(b.addr, "alias-pub").await;
    let topics = ["sa/one", "sa/two", "sa/three", "sa/four"];
    let mut sent = Vec::new();
    for round in 0..3 {
        for (i, t) in topics.iter().enumerate() {
            let pid = (round * 10 + i + 1) as u16;
            p.publish(t, 1, false, pid, t.as_bytes()).await;
            sent.push(*t);
        }
    }
    let mut r = AliasResolver { max: 2, map: Default::default() };
    for t in sent {
        let m = s.receive_acked().await;
        assert_eq!(r.resolve(&m, t), t);
        assert_eq!(m.payload, t.as_bytes());
    }
    b.shutdown().await;
}

/// A PUBLISH dropped because it exceeds the client's Maximum Packet Size
/// [MQTT-3.1.2-25] must not leave behind a Topic Alias the client never
/// saw: the next message on that topic must carry the topic name.
#[tokio::test]
async fn v5_dropped_oversize_publish_does_not_establish_alias() {
    let b = TestBroker::start().await;
    let mut props = alias_max_prop(5);
    props.push(0x27);
    props.extend(200u32.to_be_bytes());
    let (mut s, _) = Raw::connect(b.addr, &ConnectOpts::new(Proto::V5, "alias-small").props(props)).await;
    s.subscribe(1, &[("sb/#", 1)]).await;
    let mut p = Raw::v5(b.addr, "alias-small-pub").await;
    p.publish("sb/topic", 1, false, 1, &[b'x'; 500]).await; // too large for the client: dropped
    p.publish("sb/topic", 1, false, 2, b"small").await;
    let m = s.receive_acked().await;
    assert_eq!(m.payload, b"small", "the oversize message must be dropped [MQTT-3.1.2-25]");
    let mut r = AliasResolver { max: 5, map: Default::default() };
    assert_eq!(r.resolve(&m, "first delivered message"), "sb/topic");
    b.shutdown().await;
}

/// Topic Alias mappings end with the network connection (5.0 3.3.2.3.4):
/// after a persistent session resumes, resent and new messages do not
/// rely on aliases from the previous connection.
#[tokio::test]
async fn v5_topic_aliases_do_not_survive_reconnect() {
    let b = TestBroker::start().await;
    let mut props = alias_max_prop(5);
    props.extend(session_expiry(300));
    let opts = ConnectOpts::new(Proto::V5, "alias-persist").clean(false).props(props);
    let (mut s, _) = Raw::connect(b.addr, &opts).await;
    s.subscribe(1, &[("sc/#", 1)]).await;
    let mut p = Raw::v5(b.addr, "alias-persist-pub").await;
    p.publish("sc/a", 1, false, 1, b"1").await;
    p.publish("sc/a", 1, false, 2, b"2").await;
    let mut r = AliasResolver { max: 5, map: Default::default() };
    let m1 = s.receive_acked().await;
    assert_eq!(r.resolve(&m1, "first"), "sc/a");
    let m2 = s.expect_publish().await; // not acknowledged: resent on resume
    assert_eq!(r.resolve(&m2, "second"), "sc/a");
    s.disconnect().await;
    p.publish("sc/a", 1, false, 3, b"3").await;
    let (mut s, sp) = Raw::connect(b.addr, &opts).await;
    assert!(sp);
    let mut r = AliasResolver { max: 5, map: Default::default() }; // new connection: no aliases
    for want in [&b"2"[..], b"3"] {
        let m = s.receive_acked().await;
        assert_eq!(m.payload, want);
        assert_eq!(r.resolve(&m, "after reconnect"), "sc/a");
    }
    b.shutdown().await;
}

/// Request Response Information 1 (0x19) in CONNECT gets the configured
/// Response Information (0x1A) in CONNACK (5.0 3.2.2.3.15); with the
/// request absent or 0 the server must not send it [MQTT-3.1.2-28].
#[tokio::test]
async fn v5_response_information_when_requested() {
    let b = TestBroker::start_with(|c| c.response_information = Some("replies/".into())).await;
    for (props, want) in [(vec![0x19, 1], Some("replies/rri")), (vec![0x19, 0], None), (Vec::new(), None)] {
        let mut c = Raw::open(b.addr).await;
        c.send(&connect_packet(&ConnectOpts::new(Proto::V5, "rri").props(props.clone()))).await;
        let ack = c.expect("CONNACK").await;
        let info = props_list(&ack.connack_props()).into_iter().find_map(|(id, v)| match v {
            Prop::Str(s) if id == 0x1A => Some(s),
            _ => None,
        });
        assert_eq!(info.as_deref(), want, "CONNECT properties {props:?}");
        c.disconnect().await;
    }
    b.shutdown().await;
}

/// An MQTT 5 client silent for 1.5 times its keep-alive is disconnected
/// [MQTT-3.1.2-22], with DISCONNECT 0x8D Keep Alive timeout first.
#[tokio::test]
async fn v5_keep_alive_timeout_disconnect_0x8d() {
    let b = TestBroker::start().await;
    let (mut c, _) = Raw::connect(b.addr, &ConnectOpts::new(Proto::V5, "ka5").keep_alive(1)).await;
    assert_v5_disconnect(&c.expect_closed("keep-alive expiry").await, 0x8D, "[MQTT-3.1.2-22]");
    b.shutdown().await;
}

/// CONNACK properties of a v5 connection with keep-alive 0: Server Keep
/// Alive (0x13, the client must use it [MQTT-3.2.2-21]), Receive Maximum
/// (0x21), Topic Alias Maximum (0x22), Retain Available (0x25), Maximum
/// Packet Size (0x27), Wildcard, Subscription Identifier and Shared
/// Subscription Available (0x28, 0x29, 0x2A); no Maximum QoS (0x24), as
/// QoS 2 is supported (5.0 3.2.2.3.4).
#[tokio::test]
async fn v5_connack_properties() {
    let b = TestBroker::start_with(|c| {
        c.max_keepalive = 120;
        c.receive_maximum = 50;
        c.topic_alias_maximum = 7;
        c.max_packet_size = 4096;
    })
    .await;
    let mut c = Raw::open(b.addr).await;
    c.send(&connect_packet(&ConnectOpts::new(Proto::V5, "props").keep_alive(0))).await;
    let props = c.expect("CONNACK").await.connack_props();
    let expected = [(0x13, 120), (0x21, 50), (0x22, 7), (0x25, 1), (0x27, 4096), (0x28, 1), (0x29, 1), (0x2A, 1)];
    for (id, value) in expected {
        assert_eq!(int_prop(&props, id), Some(value), "CONNACK property {id:#04x}");
    }
    assert_eq!(int_prop(&props, 0x24), None, "no Maximum QoS: QoS 2 is supported");
    b.shutdown().await;
}

/// Retain As Published (subscription option bit 3): set, a forwarded
/// message keeps its RETAIN flag [MQTT-3.3.1-13]; clear, RETAIN is 0 on
/// live forwards [MQTT-3.3.1-12].
#[tokio::test]
async fn v5_retain_as_published() {
    let b = TestBroker::start().await;
    let mut rap = Raw::v5(b.addr, "rap-on").await;
    rap.subscribe(1, &[("rap/t", 0x08 | 1)]).await;
    let mut plain = Raw::v5(b.addr, "rap-off").await;
    plain.subscribe(1, &[("rap/t", 1)]).await;
    let mut p = Raw::v5(b.addr, "rap-pub").await;
    p.publish("rap/t", 1, true, 1, b"r").await;
    assert!(rap.receive_acked().await.retain, "Retain As Published keeps RETAIN [MQTT-3.3.1-13]");
    assert!(!plain.receive_acked().await.retain, "RETAIN cleared without it [MQTT-3.3.1-12]");
    b.shutdown().await;
}

/// Reason Strings on acknowledgements that report a problem (3.9.2.1.2,
/// 3.11.2.1.2, 3.6.2.2.2), and none when the client set Request Problem
/// Information to 0 [MQTT-3.1.2-29].
#[tokio::test]
async fn v5_reason_strings_on_acks_unless_problem_information_is_off() {
    let b = TestBroker::start().await;
    let mut c = Raw::v5(b.addr, "rs-on").await;
    c.send(&subscribe_packet(true, 1, &[("ok/#", 1), ("bad+", 1)])).await;
    let ack = c.expect_kind(SUBACK, "SUBACK").await;
    assert_eq!(ack.ack_codes(true), vec![1, 0x8F]);
    assert_eq!(ack.reason_string().as_deref(), Some("topic filter invalid"));
    c.send(&unsubscribe_packet(true, 2, &["never/subscribed"])).await;
    let ack = c.expect_kind(UNSUBACK, "UNSUBACK").await;
    assert_eq!(ack.ack_codes(true), vec![0x11]);
    assert_eq!(ack.reason_string().as_deref(), Some("no subscription existed"));
    c.send(&ack_packet(PUBREL, 77)).await;
    let comp = c.expect_kind(PUBCOMP, "PUBCOMP").await;
    assert_eq!((comp.pid(), comp.body[2]), (77, 0x92), "Packet Identifier not found");
    assert_eq!(comp.reason_string().as_deref(), Some("packet identifier not found"));

    // Request Problem Information = 0 (property 0x17).
    let quiet = ConnectOpts::new(Proto::V5, "rs-off").props(vec![0x17, 0]);
    let (mut q, _) = Raw::connect(b.addr, &quiet).await;
    q.send(&subscribe_packet(true, 1, &[("bad+", 1)])).await;
    let ack = q.expect_kind(SUBACK, "SUBACK").await;
    assert_eq!(ack.ack_codes(true), vec![0x8F]);
    assert_eq!(ack.reason_string(), None, "[MQTT-3.1.2-29]");
    b.shutdown().await;
}
