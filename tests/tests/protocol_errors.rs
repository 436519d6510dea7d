//! Protocol errors and edge cases sent as raw bytes. Each bad client must
//! be dealt with (closed, or refused with the right CONNACK) without
//! disturbing a well-behaved client connected at the same time.

mod common;

use common::*;

/// Starts a broker and a bystander, opens a raw connection, runs `bad` on
/// it, expects the broker to close it, checks the bystander still works,
/// and returns the packets received before the close.
async fn expect_bad_closes(what: &str, bad: impl AsyncFnOnce(&mut Raw)) -> Vec<Pkt> {
    let b = TestBroker::start().await;
    let seen = expect_bad_closes_on(&b, what, bad).await;
    b.shutdown().await;
    seen
}

async fn expect_bad_closes_on(b: &TestBroker, what: &str, bad: impl AsyncFnOnce(&mut Raw)) -> Vec<Pkt> {
    let mut by = Bystander::new(b.addr, "bystander").await;
    let mut c = Raw::open(b.addr).await;
    bad(&mut c).await;
    let seen = c.expect_closed(what).await;
    by.check(what).await;
    seen
}

/// Connects (3.1.1) then sends `bytes`.
async fn after_connect_v311(what: &str, bytes: Vec<u8>) -> Vec<Pkt> {
    expect_bad_closes(what, async move |c: &mut Raw| {
        c.send(&connect_packet(&ConnectOpts::new(Proto::V311, "bad-client"))).await;
        assert_eq!(c.expect("CONNACK").await.connack(), (false, 0));
        c.send(&bytes).await;
    })
    .await
}

/// Connects (5.0) then sends `bytes`; returns the packets seen after CONNACK.
async fn after_connect_v5(what: &str, bytes: Vec<u8>) -> Vec<Pkt> {
    expect_bad_closes(what, async move |c: &mut Raw| {
        c.v5 = true;
        c.send(&connect_packet(&ConnectOpts::new(Proto::V5, "bad-client"))).await;
        assert_eq!(c.expect("CONNACK").await.connack(), (false, 0));
        c.send(&bytes).await;
    })
    .await
}

// ---------------------------------------------------------------------------
// CONNECT
// ---------------------------------------------------------------------------

/// [MQTT-3.1.0-1]: the first packet must be CONNECT.
#[tokio::test]
async fn first_packet_not_connect() {
    for (name, first) in [
        ("PINGREQ", pingreq_packet()),
        ("PUBLISH", publish_packet(false, "a", 0, false, false, 0, b"x")),
        ("SUBSCRIBE", subscribe_packet(false, 1, &[("a", 0)])),
    ] {
        let seen = expect_bad_closes(&format!("{name} before CONNECT"), async |c: &mut Raw| c.send(&first).await).await;
        assert!(seen.is_empty(), "{name} before CONNECT must get no reply [MQTT-3.1.0-1], got {seen:?}");
    }
}

/// [MQTT-3.1.0-2]: a second CONNECT is a protocol violation.
#[tokio::test]
async fn second_connect_closes() {
    let seen = after_connect_v311("second CONNECT", connect_packet(&ConnectOpts::new(Proto::V311, "bad-client"))).await;
    assert!(seen.is_empty(), "no second CONNACK [MQTT-3.1.0-2], got {seen:?}");
}

/// [MQTT-3.1.2-3]: the reserved CONNECT flag must be 0.
#[tokio::test]
async fn connect_reserved_flag_set() {
    let mut p = connect_packet(&ConnectOpts::new(Proto::V311, "reserved"));
    // Fixed header (2) + "MQTT" (6) + level (1) => flags at index 9.
    assert_eq!(p[9], 0x02);
    p[9] |= 0x01;
    let seen = expect_bad_closes("reserved flag", async move |c: &mut Raw| c.send(&p).await).await;
    assert!(seen.iter().all(|p| p.kind == CONNACK && p.body[1] != 0), "must not be accepted: {seen:?}");
}

/// [MQTT-3.1.2-13]: will flag 0 requires will QoS 0 (and [MQTT-3.1.2-15] will retain 0).
#[tokio::test]
async fn connect_will_qos_without_will_flag() {
    let mut p = connect_packet(&ConnectOpts::new(Proto::V311, "willqos"));
    p[9] |= 0x08; // will QoS 1, will flag 0
    let seen = expect_bad_closes("will QoS without will flag", async move |c: &mut Raw| c.send(&p).await).await;
    assert!(seen.iter().all(|p| p.kind == CONNACK && p.body[1] != 0), "must not be accepted: {seen:?}");
}

/// [MQTT-3.1.2-22]: password flag set without the user name flag.
#[tokio::test]
async fn connect_password_without_username() {
    let mut body = mqtt_str("MQTT");
    body.extend([4, 0x40 | 0x02, 0, 60]);
    body.extend(mqtt_str("pw-only"));
    body.extend(mqtt_str("secret"));
    let p = packet(0x10, &body);
    let seen = expect_bad_closes("password without user name", async move |c: &mut Raw| c.send(&p).await).await;
    assert!(seen.iter().all(|p| p.kind == CONNACK && p.body[1] != 0), "must not be accepted: {seen:?}");
}

/// [MQTT-3.1.2-2]: unsupported protocol level => CONNACK 0x01, then close
/// [MQTT-3.2.2-5].
#[tokio::test]
async fn unsupported_protocol_level() {
    for level in [2u8, 6, 0xFF] {
        let mut p = connect_packet(&ConnectOpts::new(Proto::V311, "level"));
        p[8] = level;
        let seen =
            expect_bad_closes(&format!("protocol level {level}"), async move |c: &mut Raw| c.send(&p).await).await;
        assert_eq!(seen.len(), 1, "level {level}: expected one CONNACK then close, got {seen:?}");
        assert_eq!(seen[0].connack(), (false, 0x01), "level {level}: CONNACK 0x01 [MQTT-3.1.2-2]");
    }
}

/// [MQTT-3.1.3-8]: zero-length client id with clean session 0 => CONNACK
/// 0x02 (session present 0 [MQTT-3.2.2-4]) and close [MQTT-3.2.2-5].
#[tokio::test]
async fn empty_client_id_with_persistent_session_refused() {
    let p = connect_packet(&ConnectOpts::new(Proto::V311, "").clean(false));
    let seen = expect_bad_closes("empty client id, clean session 0", async move |c: &mut Raw| c.send(&p).await).await;
    assert_eq!(seen.len(), 1, "expected one CONNACK then close, got {seen:?}");
    assert_eq!(seen[0].connack(), (false, 0x02), "CONNACK identifier rejected [MQTT-3.1.3-8]");
}

/// [MQTT-3.1.3-6]: zero-length client id with clean session 1 is accepted;
/// two such clients are distinct sessions (both keep working).
#[tokio::test]
async fn empty_client_id_with_clean_session_assigned() {
    let b = TestBroker::start().await;
    let (mut a, sp) = Raw::connect(b.addr, &ConnectOpts::new(Proto::V311, "")).await;
    assert!(!sp);
    let (mut c, _) = Raw::connect(b.addr, &ConnectOpts::new(Proto::V311, "")).await;
    a.subscribe(1, &[("anon/t", 1)]).await;
    c.subscribe(1, &[("anon/t", 1)]).await;
    a.publish("anon/t", 1, false, 2, b"hi").await;
    assert_eq!(a.receive_acked().await.payload, b"hi", "first anonymous client not taken over");
    assert_eq!(c.receive_acked().await.payload, b"hi");
    b.shutdown().await;
}

/// MQTT 3.1 (`MQIsdp`, level 3) clients connect and exchange messages.
#[tokio::test]
async fn mqtt31_connect_works() {
    let b = TestBroker::start().await;
    let (mut s, sp) = Raw::connect(b.addr, &ConnectOpts::new(Proto::V31, "v31-sub")).await;
    assert!(!sp);
    let (mut p, _) = Raw::connect(b.addr, &ConnectOpts::new(Proto::V31, "v31-pub")).await;
    assert_eq!(s.subscribe(1, &[("v31/#", 2)]).await, vec![2]);
    for q in 0..3u8 {
        p.publish(&format!("v31/{q}"), q, false, 10 + q as u16, format!("q{q}").as_bytes()).await;
        let m = s.receive_acked().await;
        assert_eq!((m.topic, m.payload, m.qos), (format!("v31/{q}"), format!("q{q}").into_bytes(), q));
    }
    // A 3.1.1 client receives from a 3.1 publisher too.
    let mut modern = Raw::v311(b.addr, "v311-sub").await;
    modern.subscribe(1, &[("v31/x", 1)]).await;
    p.publish("v31/x", 1, false, 20, b"cross").await;
    assert_eq!(modern.receive_acked().await.payload, b"cross");
    b.shutdown().await;
}

// ---------------------------------------------------------------------------
// Malformed packets after CONNECT (3.1.1)
// ---------------------------------------------------------------------------

/// Remaining length longer than 4 bytes (2.2.3) is malformed.
#[tokio::test]
async fn bad_remaining_length() {
    after_connect_v311("5-byte remaining length", vec![0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]).await;
}

/// [MQTT-3.3.1-4]: a PUBLISH must not have both QoS bits set.
#[tokio::test]
async fn publish_qos3() {
    let mut p = publish_packet(false, "q3/t", 1, false, false, 1, b"x");
    p[0] |= 0x06;
    after_connect_v311("QoS 3 PUBLISH", p).await;
}

/// [MQTT-3.3.2-2]: topic names must not contain wildcards.
#[tokio::test]
async fn publish_wildcard_topic() {
    after_connect_v311("'+' in topic name", publish_packet(false, "a/+/b", 1, false, false, 1, b"x")).await;
    after_connect_v311("'#' in topic name", publish_packet(false, "a/#", 0, false, false, 0, b"x")).await;
}

/// [MQTT-1.5.3-1]: ill-formed UTF-8 in a topic; [MQTT-1.5.3-2]: U+0000.
#[tokio::test]
async fn publish_bad_utf8_topic() {
    let mut body = vec![0, 3, b'a', 0xFF, b'b'];
    body.extend(b"x");
    after_connect_v311("ill-formed UTF-8 topic", packet(0x30, &body)).await;
    let mut body = vec![0, 3, b'a', 0x00, b'b'];
    body.extend(b"x");
    after_connect_v311("U+0000 in topic", packet(0x30, &body)).await;
}

/// [MQTT-3.8.1-1]: SUBSCRIBE fixed-header flags must be 0b0010.
#[tokio::test]
async fn subscribe_wrong_flags() {
    let mut p = subscribe_packet(false, 1, &[("x/y", 1)]);
    p[0] = 0x80;
    let seen = after_connect_v311("SUBSCRIBE flags 0000", p).await;
    assert!(seen.is_empty(), "no SUBACK for a malformed SUBSCRIBE, got {seen:?}");
}

/// [MQTT-3.8.3-3]: SUBSCRIBE with no topic filter.
#[tokio::test]
async fn subscribe_without_filters() {
    after_connect_v311("SUBSCRIBE with no filters", packet(0x82, &[0, 1])).await;
}

/// [MQTT-3-8.3-4]: requested QoS 3 / reserved bits set in SUBSCRIBE.
#[tokio::test]
async fn subscribe_qos3() {
    after_connect_v311("SUBSCRIBE QoS 3", subscribe_packet(false, 1, &[("x/y", 3)])).await;
}

/// [MQTT-3.10.1-1]: UNSUBSCRIBE fixed-header flags must be 0b0010.
#[tokio::test]
async fn unsubscribe_wrong_flags() {
    let mut p = unsubscribe_packet(false, 1, &["x/y"]);
    p[0] = 0xA0;
    after_connect_v311("UNSUBSCRIBE flags 0000", p).await;
}

/// [MQTT-3.6.1-1]: PUBREL fixed-header flags must be 0b0010.
#[tokio::test]
async fn pubrel_wrong_flags() {
    after_connect_v311("PUBREL flags 0000", packet(0x60, &[0, 1])).await;
}

/// A packet larger than `max_packet_size` closes the connection; one just
/// under the limit is fine.
#[tokio::test]
async fn oversize_packet() {
    const MAX: usize = 1024;
    let b = TestBroker::start_with(|c| c.max_packet_size = MAX).await;
    // Exactly MAX bytes on the wire (fixed header included) is accepted.
    let mut ok = Raw::v311(b.addr, "fits").await;
    ok.subscribe(1, &[("big/t", 0)]).await;
    let overhead = publish_packet(false, "big/t", 0, false, false, 0, b"").len() + 1; // +1: 2-byte remaining length
    let fits = vec![b'f'; MAX - overhead];
    let pk = publish_packet(false, "big/t", 0, false, false, 0, &fits);
    assert_eq!(pk.len(), MAX);
    ok.send(&pk).await;
    assert_eq!(ok.expect_publish().await.payload, fits, "a packet of exactly max_packet_size is accepted");

    let big = publish_packet(false, "big/t", 0, false, false, 0, &vec![b'x'; 4 * MAX]);
    let seen = expect_bad_closes_on(&b, "oversize PUBLISH", async move |c: &mut Raw| {
        c.send(&connect_packet(&ConnectOpts::new(Proto::V311, "too-big"))).await;
        assert_eq!(c.expect("CONNACK").await.connack(), (false, 0));
        c.send(&big).await;
    })
    .await;
    assert!(seen.is_empty(), "oversize message must not be delivered back: {seen:?}");
    ok.expect_silence("oversize message must not be routed").await;
    b.shutdown().await;
}

/// MQTT 5: oversize => DISCONNECT 0x95 (Packet too large) before the close.
#[tokio::test]
async fn v5_oversize_packet_disconnect_0x95() {
    let b = TestBroker::start_with(|c| c.max_packet_size = 512).await;
    let big = publish_packet(true, "big/t", 0, false, false, 0, &[0u8; 2048]);
    let seen = expect_bad_closes_on(&b, "v5 oversize", async move |c: &mut Raw| {
        c.v5 = true;
        c.send(&connect_packet(&ConnectOpts::new(Proto::V5, "too-big"))).await;
        assert_eq!(c.expect("CONNACK").await.connack(), (false, 0));
        c.send(&big).await;
    })
    .await;
    assert_v5_disconnect(&seen, 0x95, "v5 oversize packet");
    b.shutdown().await;
}

// ---------------------------------------------------------------------------
// MQTT 5 specifics
// ---------------------------------------------------------------------------

/// v5 DISCONNECT with remaining length 0 and 1 (reason 0x00) are both
/// normal disconnects (5.0 3.14.2.1: the reason code may be omitted): the
/// preceding PUBLISH in the same write is routed, the connection closes,
/// and the will is not published [MQTT-3.14.4-3]. DISCONNECT 0x04 (with
/// will) does publish the will. A byte not in DISCONNECT's table (0x05; a
/// client must not send it [MQTT-3.14.2-1]) is read by its class, as a
/// normal disconnection.
#[tokio::test]
async fn v5_disconnect_lengths() {
    let b = TestBroker::start().await;
    let mut w = Raw::v311(b.addr, "dc-watch").await;
    w.subscribe(1, &[("dc/#", 1)]).await;
    let cases: [(&str, Vec<u8>, bool); 5] = [
        ("len 0", vec![0xE0, 0x00], false),
        ("len 1, 0x00", vec![0xE0, 0x01, 0x00], false),
        ("len 2, 0x00 no props", vec![0xE0, 0x02, 0x00, 0x00], false),
        ("len 1, 0x04", vec![0xE0, 0x01, 0x04], true),
        ("len 1, 0x05 unknown", vec![0xE0, 0x01, 0x05], false),
    ];
    for (i, (name, disc, will_expected)) in cases.into_iter().enumerate() {
        let id = format!("dc-{i}");
        let (mut c, _) =
            Raw::connect(b.addr, &ConnectOpts::new(Proto::V5, &id).will("dc/will", name.as_bytes(), 1, false)).await;
        let mut bytes = publish_packet(true, "dc/msg", 0, false, false, 0, name.as_bytes());
        bytes.extend(&disc);
        c.send(&bytes).await;
        let seen = c.expect_closed(&format!("DISCONNECT {name}")).await;
        assert!(seen.is_empty(), "DISCONNECT {name}: broker replied {seen:?}");
        let m = w.receive_acked().await;
        assert_eq!((m.topic.as_str(), &m.payload[..]), ("dc/msg", name.as_bytes()), "PUBLISH before DISCONNECT {name}");
        if will_expected {
            let m = w.receive_acked().await;
            assert_eq!(
                (m.topic.as_str(), &m.payload[..]),
                ("dc/will", name.as_bytes()),
                "DISCONNECT 0x04 sends the will"
            );
        } else {
            w.expect_silence(&format!("no will after DISCONNECT {name} [MQTT-3.14.4-3]")).await;
        }
    }
    b.shutdown().await;
}

/// v5 acks may omit the reason code and property length (5.0 3.4.2.1):
/// PUBACK of remaining length 2, 3 and 4 keep the stream in sync. A reason
/// byte not in PUBACK's table (0x8E; a client must not send it
/// [MQTT-3.4.2-1]) is read by its class and does not close the connection.
#[tokio::test]
async fn v5_short_acks_keep_stream_in_sync() {
    let b = TestBroker::start().await;
    let mut s = Raw::v5(b.addr, "short-acks").await;
    s.subscribe(1, &[("sa/t", 1)]).await;
    let mut p = Raw::v5(b.addr, "sa-pub").await;
    for (i, tail) in [vec![], vec![0x00], vec![0x00, 0x00], vec![0x8E]].into_iter().enumerate() {
        p.publish("sa/t", 1, false, i as u16 + 1, b"m").await;
        let m = s.expect_publish().await;
        let mut body = m.pid.to_be_bytes().to_vec();
        body.extend(tail);
        let mut bytes = packet(0x40, &body);
        bytes.extend(pingreq_packet());
        s.send(&bytes).await;
        let r = s.expect("PINGRESP").await;
        assert_eq!(r.kind, PINGRESP, "PUBACK {body:02x?} desynchronised the stream or closed it");
    }
    b.shutdown().await;
}

/// A property that appears twice is a Protocol Error: DISCONNECT 0x82
/// (5.0 2.2.2.2: "It is a Protocol Error to include the same property
/// more than once").
#[tokio::test]
async fn v5_duplicate_property() {
    let mut props = vec![0x02, 0, 0, 0, 60];
    props.extend([0x02, 0, 0, 0, 30]); // Message Expiry Interval twice
    let p = publish_packet_props(true, "dp/t", 1, false, false, 1, &props, b"x");
    let seen = after_connect_v5("duplicate property", p).await;
    assert_v5_disconnect(&seen, 0x82, "duplicate Message Expiry Interval");
}

/// Topic Alias 0 is not permitted [MQTT-3.3.2-8].
#[tokio::test]
async fn v5_topic_alias_zero() {
    let p = publish_packet_props(true, "ta/t", 0, false, false, 0, &[0x23, 0, 0], b"x");
    let seen = after_connect_v5("topic alias 0", p).await;
    // 5.0 does not name the reason code for alias 0: 0x94 (Topic Alias
    // invalid, as Mosquitto sends) and 0x82 (Protocol Error) are both accepted.
    assert!(
        seen.len() == 1 && seen[0].kind == DISCONNECT && [0x94, 0x82].contains(&seen[0].reason()),
        "topic alias 0 [MQTT-3.3.2-8]: expected DISCONNECT 0x94 or 0x82 before the close, got {seen:?}"
    );
}

/// Connects a v5 raw client and returns it with the Topic Alias Maximum
/// from its CONNACK (absent = 0, 5.0 3.2.2.3.8).
async fn v5_with_alias_max(b: &TestBroker, id: &str) -> (Raw, u16) {
    let mut c = Raw::open(b.addr).await;
    c.v5 = true;
    c.send(&connect_packet(&ConnectOpts::new(Proto::V5, id))).await;
    let ack = c.expect("CONNACK").await;
    assert_eq!(ack.connack(), (false, 0));
    let max = int_prop(&ack.connack_props(), 0x22).unwrap_or(0);
    (c, max as u16)
}

/// A Topic Alias above the advertised Topic Alias Maximum (none advertised
/// = 0) => DISCONNECT 0x94 (Topic Alias invalid) [MQTT-3.2.2-17].
#[tokio::test]
async fn v5_topic_alias_above_maximum() {
    let b = TestBroker::start().await;
    let mut by = Bystander::new(b.addr, "alias-bystander").await;
    let (mut c, max) = v5_with_alias_max(&b, "alias-over").await;
    if max == u16::MAX {
        println!("Topic Alias Maximum is 65535: no alias is above it");
        return;
    }
    let alias = (max + 1).to_be_bytes();
    c.send(&publish_packet_props(true, "ta/t", 0, false, false, 0, &[0x23, alias[0], alias[1]], b"x")).await;
    let seen = c.expect_closed("alias above maximum").await;
    assert_v5_disconnect(&seen, 0x94, &format!("topic alias {} > Topic Alias Maximum {max} [MQTT-3.2.2-17]", max + 1));
    by.check("alias above maximum").await;
    b.shutdown().await;
}

/// When the broker advertises a Topic Alias Maximum, a client may set an
/// alias with a topic and then publish with an empty topic and the alias
/// (5.0 3.3.2.3.4); subscribers get the full topic. An empty topic with an
/// alias that was never set is a Protocol Error (0x82).
#[tokio::test]
async fn v5_topic_alias_use() {
    let b = TestBroker::start().await;
    let (mut c, max) = v5_with_alias_max(&b, "alias-user").await;
    if max == 0 {
        println!("no Topic Alias Maximum advertised: aliases from clients are not accepted");
        return;
    }
    let mut s = Raw::v311(b.addr, "alias-sub").await;
    s.subscribe(1, &[("ta/#", 1)]).await;
    c.send(&publish_packet_props(true, "ta/long/topic", 1, false, false, 1, &[0x23, 0, 1], b"set")).await;
    assert_eq!(c.expect_kind(PUBACK, "PUBACK").await.pid(), 1);
    c.send(&publish_packet_props(true, "", 1, false, false, 2, &[0x23, 0, 1], b"use")).await;
    assert_eq!(c.expect_kind(PUBACK, "PUBACK").await.pid(), 2);
    for want in ["set", "use"] {
        let m = s.receive_acked().await;
        assert_eq!((m.topic.as_str(), &m.payload[..]), ("ta/long/topic", want.as_bytes()), "aliased publish");
    }
    // Alias `max` was never set on this connection.
    let a = max.to_be_bytes();
    let unknown = if max == 1 { vec![] } else { vec![0x23, a[0], a[1]] };
    if !unknown.is_empty() {
        c.send(&publish_packet_props(true, "", 0, false, false, 0, &unknown, b"unknown")).await;
        let seen = c.expect_closed("unknown alias").await;
        assert_v5_disconnect(&seen, 0x82, "empty topic with an alias never set");
    }
    s.expect_silence("nothing routed for an unknown alias").await;
    b.shutdown().await;
}

/// v5 malformed packets get DISCONNECT 0x81 before the close.
#[tokio::test]
async fn v5_malformed_disconnect_0x81() {
    let mut p = publish_packet(true, "q3/t", 1, false, false, 1, b"x");
    p[0] |= 0x06;
    let seen = after_connect_v5("v5 QoS 3", p).await;
    assert_v5_disconnect(&seen, 0x81, "QoS 3 PUBLISH [MQTT-3.3.1-4]");

    let mut body = vec![0, 3, b'a', 0xC0, b'b', 0];
    body.extend(b"x");
    let seen = after_connect_v5("v5 ill-formed UTF-8", packet(0x30, &body)).await;
    assert_v5_disconnect(&seen, 0x81, "ill-formed UTF-8 topic [MQTT-1.5.4-1]");

    // Property length beyond the end of the packet.
    let mut body = mqtt_str("m/t");
    body.extend([10, 0x01]);
    let seen = after_connect_v5("v5 property length overrun", packet(0x30, &body)).await;
    assert_v5_disconnect(&seen, 0x81, "property length beyond the packet");
}

/// A connection that never sends CONNECT is closed after
/// `connect_timeout_secs` (3.1.4: "the Server SHOULD close the connection").
#[tokio::test]
async fn silent_connection_closed_after_connect_timeout() {
    let b = TestBroker::start_with(|c| c.connect_timeout_secs = 1).await;
    let seen = expect_bad_closes_on(&b, "no CONNECT within connect_timeout_secs", async |_: &mut Raw| {}).await;
    assert!(seen.is_empty(), "{seen:?}");
    b.shutdown().await;
}

/// Several bad clients in a row against one broker, with a bystander that
/// must keep receiving throughout. (Connect timeout 1 s: the HTTP request
/// reads as an incomplete packet, which only the timeout ends.)
#[tokio::test]
async fn many_bad_clients_one_bystander() {
    let b = TestBroker::start_with(|c| c.connect_timeout_secs = 1).await;
    let mut by = Bystander::new(b.addr, "steady").await;
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"GET / HTTP/1.1\r\n\r\n".to_vec()),
        ("truncated CONNECT then close", connect_packet(&ConnectOpts::new(Proto::V311, "t"))[..8].to_vec()),
        ("remaining length overflow", vec![0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]),
        ("CONNECT with wrong protocol name", {
            let mut p = connect_packet(&ConnectOpts::new(Proto::V311, "n"));
            p[4] = b'X';
            p
        }),
        ("reserved packet type 0", vec![0x00, 0x00]),
        ("reserved packet type 15", vec![0xF0, 0x00]),
    ];
    for (name, bytes) in bad {
        let mut c = Raw::open(b.addr).await;
        c.send(&bytes).await;
        if name.starts_with("truncated") {
            drop(c);
        } else {
            let seen = c.expect_closed(name).await;
            assert!(seen.iter().all(|p| p.kind == CONNACK && p.body[1] != 0), "{name}: {seen:?}");
        }
        by.check(name).await;
    }
    b.shutdown().await;
}

/// A client must not send a Subscription Identifier in PUBLISH
/// [MQTT-3.3.4-6]; a Subscription Identifier of 0 in SUBSCRIBE is a
/// Protocol Error (5.0 3.8.2.1.2). Both: DISCONNECT 0x82.
#[tokio::test]
async fn v5_subscription_identifier_misuse() {
    let p = publish_packet_props(true, "sid/t", 0, false, false, 0, &[0x0B, 5], b"x");
    let seen = after_connect_v5("Subscription Identifier in a client PUBLISH", p).await;
    assert_v5_disconnect(&seen, 0x82, "Subscription Identifier in PUBLISH from a client [MQTT-3.3.4-6]");
    let s = subscribe_packet_props(true, 1, &[0x0B, 0], &[("sid/t", 0)]);
    let seen = after_connect_v5("Subscription Identifier 0", s).await;
    assert!(
        seen.len() == 1 && seen[0].kind == DISCONNECT && [0x81, 0x82].contains(&seen[0].reason()),
        "Subscription Identifier 0: expected DISCONNECT 0x82 (or 0x81), got {seen:?}"
    );
}

/// CONNECT properties with forbidden values: Receive Maximum 0 and
/// Maximum Packet Size 0 are Protocol Errors (5.0 3.1.2.11.3/3.1.2.11.4):
/// refused with an error CONNACK (>= 0x80) and closed [MQTT-3.2.2-7 (5.0)].
#[tokio::test]
async fn v5_connect_forbidden_property_values() {
    for (name, props) in [("Receive Maximum 0", vec![0x21, 0, 0]), ("Maximum Packet Size 0", vec![0x27, 0, 0, 0, 0])] {
        let p = connect_packet(&ConnectOpts::new(Proto::V5, "bad-props").props(props));
        let seen = expect_bad_closes(name, async move |c: &mut Raw| c.send(&p).await).await;
        assert!(
            seen.iter().all(|p| p.kind == CONNACK && p.body[1] >= 0x80),
            "{name}: expected at most an error CONNACK before the close, got {seen:?}"
        );
    }
}

/// Setting a non-zero Session Expiry Interval on DISCONNECT after
/// connecting with 0 is a Protocol Error [MQTT-3.14.2-2]: DISCONNECT 0x82,
/// and (not a normal disconnect) the will is published.
#[tokio::test]
async fn v5_disconnect_cannot_set_session_expiry_after_zero() {
    let b = TestBroker::start().await;
    let mut w = Raw::v311(b.addr, "sx-watch").await;
    w.subscribe(1, &[("sx/will", 1)]).await;
    let (mut c, _) = Raw::connect(b.addr, &ConnectOpts::new(Proto::V5, "sx").will("sx/will", b"w", 1, false)).await;
    let mut body = vec![0x00, 5, 0x11];
    body.extend(60u32.to_be_bytes());
    c.send(&packet(0xE0, &body)).await;
    let seen = c.expect_closed("DISCONNECT with a new Session Expiry Interval").await;
    assert_v5_disconnect(&seen, 0x82, "[MQTT-3.14.2-2]");
    let m = w.receive_acked().await;
    assert_eq!(m.payload, b"w", "a DISCONNECT rejected as a protocol error is not a normal disconnect: will published");
    b.shutdown().await;
}
