//! Cross-checks the MQTT 5 codec (feature `v5`) against `mqttbytes` 0.6 v5
//! in both directions, by role: every packet a client sends is encoded by
//! the client and decoded by `mqttbytes` (CONNECT, PUBLISH, SUBSCRIBE,
//! UNSUBSCRIBE, the four acks, PINGREQ, DISCONNECT); every packet a broker
//! sends is encoded by `mqttbytes` and decoded by the client (CONNACK,
//! PUBLISH, the four acks, SUBACK, UNSUBACK, PINGRESP, DISCONNECT). Both
//! sides are compared field by field, properties included.
#![cfg(feature = "v5")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers

use bytes::{Bytes, BytesMut};
use edgemq_client::codec::{self, Connect, Properties, Publish, QoS, Will};
use edgemq_client::v5::codec::{self as c5, ConnectProperties, Packet, Property};
use edgemq_client::v5::ReasonCode;
use mqttbytes::v5 as mb;

fn mb_qos(q: QoS) -> mqttbytes::QoS {
    match q {
        QoS::AtMostOnce => mqttbytes::QoS::AtMostOnce,
        QoS::AtLeastOnce => mqttbytes::QoS::AtLeastOnce,
        QoS::ExactlyOnce => mqttbytes::QoS::ExactlyOnce,
    }
}

fn mb_read(bytes: &[u8]) -> mb::Packet {
    let mut b = BytesMut::from(bytes);
    let p = mb::read(&mut b, 1 << 20).unwrap_or_else(|e| panic!("mqttbytes rejects {bytes:02x?}: {e:?}"));
    assert!(b.is_empty(), "mqttbytes left bytes over");
    p
}

/// User properties and content type in wire format, as `publish_with`
/// stores them.
fn wire_props(content_type: Option<&str>, users: &[(&str, &str)]) -> Vec<u8> {
    let mut v = Vec::new();
    if let Some(ct) = content_type {
        v.push(0x03);
        v.extend_from_slice(&(ct.len() as u16).to_be_bytes());
        v.extend_from_slice(ct.as_bytes());
    }
    for (k, val) in users {
        v.push(0x26);
        for x in [k, val] {
            v.extend_from_slice(&(x.len() as u16).to_be_bytes());
            v.extend_from_slice(x.as_bytes());
        }
    }
    v
}

/// CONNECT vectors: property sets (none, all, extremes) × login × will ×
/// clean session.
fn connect_vectors() -> Vec<(Connect<'static>, ConnectProperties)> {
    let mut v = Vec::new();
    for props in [
        ConnectProperties::default(),
        ConnectProperties {
            session_expiry: 3600,
            receive_maximum: 4,
            maximum_packet_size: 256,
            topic_alias_maximum: 8,
        },
        ConnectProperties {
            session_expiry: u32::MAX,
            receive_maximum: 65535,
            maximum_packet_size: 0,
            topic_alias_maximum: 0,
        },
    ] {
        for login in [None, Some(("dev", "secret"))] {
            for will in
                [None, Some(Will { topic: "dev/1/status", payload: b"offline", qos: QoS::AtLeastOnce, retain: true })]
            {
                for clean in [false, true] {
                    let c = Connect {
                        client_id: "sensor-42",
                        keep_alive: 30,
                        clean_session: clean,
                        username: login.map(|l| l.0),
                        password: login.map(|l: (&'static str, &'static str)| l.1.as_bytes()),
                        will,
                    };
                    v.push((c, props));
                }
            }
        }
    }
    v
}

#[test]
fn client_connect_decodes_with_mqttbytes() {
    let vectors = connect_vectors();
    assert_eq!(vectors.len(), 24);
    for (c, props) in vectors {
        let mut buf = [0u8; 256];
        let len = c5::encode_connect(&c, &props, &mut buf).unwrap();
        let mb::Packet::Connect(m) = mb_read(&buf[..len]) else { panic!("not CONNECT") };
        assert_eq!(m.protocol, mqttbytes::Protocol::V5);
        assert_eq!((m.client_id.as_str(), m.keep_alive, m.clean_session), ("sensor-42", 30, c.clean_session));
        let login = c.username.zip(c.password);
        assert_eq!(m.login.map(|l| (l.username, l.password.into_bytes())), login.map(|l| (l.0.into(), l.1.to_vec())));
        let w = m.last_will.map(|w| (w.topic, w.message.to_vec(), w.qos, w.retain));
        assert_eq!(w, c.will.map(|w| (w.topic.to_string(), w.payload.to_vec(), mb_qos(w.qos), w.retain)));
        let nz32 = |v: u32| (v != 0).then_some(v);
        let nz16 = |v: u16| (v != 0).then_some(v);
        let got =
            m.properties.map(|p| (p.session_expiry_interval, p.receive_maximum, p.max_packet_size, p.topic_alias_max));
        let want = (
            nz32(props.session_expiry),
            nz16(props.receive_maximum),
            nz32(props.maximum_packet_size),
            nz16(props.topic_alias_maximum),
        );
        if props == ConnectProperties::default() {
            assert_eq!(got, None);
        } else {
            assert_eq!(got, Some(want));
        }
    }
}

/// User properties of the PUBLISH vectors.
const USERS: [(&str, &str); 2] = [("sensor", "bme280"), ("unit", "°C")];

/// A PUBLISH vector: QoS, Message Expiry, Topic Alias, content type, user
/// properties, topic (empty only with an alias).
type PubVector =
    (QoS, Option<u32>, Option<u16>, Option<&'static str>, &'static [(&'static str, &'static str)], &'static str);

fn publish_vectors() -> Vec<PubVector> {
    let mut v = Vec::new();
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        for (expiry, alias, ct, users) in [
            (None, None, None, &USERS[..0]),
            (Some(60), None, Some("application/json"), &USERS[..]),
            (Some(60), None, Some("application/json"), &USERS[..0]),
            (None, Some(3), None, &USERS[..1]),
            (Some(1), Some(65535), Some("text/plain"), &USERS[..]),
            (Some(1), Some(65535), None, &USERS[..]),
        ] {
            for topic in ["sensors/42/temperature", ""] {
                if !topic.is_empty() || alias.is_some() {
                    v.push((qos, expiry, alias, ct, users, topic));
                }
            }
        }
    }
    v
}

#[test]
fn client_publish_decodes_with_mqttbytes() {
    for (qos, expiry, alias, ct, users, topic) in publish_vectors() {
        let raw = wire_props(ct, users);
        let p = Publish {
            dup: qos != QoS::AtMostOnce,
            qos,
            retain: true,
            topic: topic.into(),
            pid: (qos != QoS::AtMostOnce).then_some(0x1234),
            payload: b"{\"t\":21.5}",
            properties: Properties(&raw),
        };
        let mut buf = [0u8; 256];
        let len = c5::encode_publish(&p, expiry, alias, &mut buf).unwrap();
        let plen = raw.len() + if expiry.is_some() { 5 } else { 0 } + if alias.is_some() { 3 } else { 0 };
        assert_eq!(len, c5::publish_len(qos, topic.len(), plen, p.payload.len()));
        let mb::Packet::Publish(m) = mb_read(&buf[..len]) else { panic!("not PUBLISH") };
        assert_eq!((m.dup, m.qos, m.retain, m.topic.as_str()), (p.dup, mb_qos(qos), true, topic));
        assert_eq!(m.pkid, p.pid.unwrap_or(0));
        assert_eq!(&m.payload[..], p.payload);
        let mp = m.properties.unwrap_or_else(|| {
            assert!(plen == 0);
            mb::PublishProperties {
                payload_format_indicator: None,
                message_expiry_interval: None,
                topic_alias: None,
                response_topic: None,
                correlation_data: None,
                user_properties: vec![],
                subscription_identifiers: vec![],
                content_type: None,
            }
        });
        assert_eq!(mp.message_expiry_interval, expiry);
        assert_eq!(mp.topic_alias, alias);
        assert_eq!(mp.content_type.as_deref(), ct);
        let u: Vec<(&str, &str)> = mp.user_properties.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        assert_eq!(u, users);
    }
}

#[test]
fn client_subscribe_unsubscribe_acks_decode_with_mqttbytes() {
    let topics = [("devices/42/cmd", QoS::AtLeastOnce), ("a/+/#", QoS::ExactlyOnce), ("x", QoS::AtMostOnce)];
    let mut buf = [0u8; 128];
    let len = c5::encode_subscribe(77, &topics, &mut buf).unwrap();
    let mb::Packet::Subscribe(m) = mb_read(&buf[..len]) else { panic!("not SUBSCRIBE") };
    assert_eq!(m.pkid, 77);
    let got: Vec<(String, mqttbytes::QoS, bool, bool)> =
        m.filters.iter().map(|f| (f.path.clone(), f.qos, f.nolocal, f.preserve_retain)).collect();
    let want: Vec<_> = topics.iter().map(|(t, q)| (t.to_string(), mb_qos(*q), false, false)).collect();
    assert_eq!(got, want);

    let len = c5::encode_unsubscribe(78, &["devices/42/cmd", "a/+/#"], &mut buf).unwrap();
    let mb::Packet::Unsubscribe(m) = mb_read(&buf[..len]) else { panic!("not UNSUBSCRIBE") };
    assert_eq!((m.pkid, m.filters), (78, vec!["devices/42/cmd".to_string(), "a/+/#".to_string()]));

    // The acks, PINGREQ and DISCONNECT are the 3.1.1 short forms, which are
    // valid MQTT 5 (reason Success / Normal disconnection omitted).
    for pid in [1u16, 0x1234, 65535] {
        for (p, kind) in [
            (codec::Packet::PubAck(pid), 4),
            (codec::Packet::PubRec(pid), 5),
            (codec::Packet::PubRel(pid), 6),
            (codec::Packet::PubComp(pid), 7),
        ] {
            let len = p.encode(&mut buf).unwrap();
            let got = match mb_read(&buf[..len]) {
                mb::Packet::PubAck(a) if kind == 4 => (a.pkid, a.reason as u8),
                mb::Packet::PubRec(a) if kind == 5 => (a.pkid, a.reason as u8),
                mb::Packet::PubRel(a) if kind == 6 => (a.pkid, a.reason as u8),
                mb::Packet::PubComp(a) if kind == 7 => (a.pkid, a.reason as u8),
                other => panic!("{other:?}"),
            };
            assert_eq!(got, (pid, 0));
        }
    }
    let len = codec::Packet::PingReq.encode(&mut buf).unwrap();
    assert_eq!(mb_read(&buf[..len]), mb::Packet::PingReq);
    // DISCONNECT: the client sends the explicit form in MQTT 5, because
    // mqttbytes 0.6 rejects the 2-byte short form [MQTT-3.14.2.1] allows.
    let len = codec::Packet::Disconnect.encode(&mut buf).unwrap();
    assert!(mb::read(&mut BytesMut::from(&buf[..len]), 64).is_err(), "mqttbytes now takes the short form");
    for reason in [ReasonCode::Success, ReasonCode::DisconnectWithWill, ReasonCode::UnspecifiedError] {
        let len = c5::encode_disconnect(reason, &mut buf).unwrap();
        let mb::Packet::Disconnect(d) = mb_read(&buf[..len]) else { panic!("not DISCONNECT") };
        assert_eq!(d.reason_code as u8, reason as u8);
        assert_eq!(d.properties, None);
    }
}

fn mb_write(p: &mb::Packet) -> Vec<u8> {
    let mut b = BytesMut::new();
    match p {
        mb::Packet::ConnAck(x) => x.write(&mut b),
        mb::Packet::Publish(x) => x.write(&mut b),
        mb::Packet::PubAck(x) => x.write(&mut b),
        mb::Packet::PubRec(x) => x.write(&mut b),
        mb::Packet::PubRel(x) => x.write(&mut b),
        mb::Packet::PubComp(x) => x.write(&mut b),
        mb::Packet::SubAck(x) => x.write(&mut b),
        mb::Packet::UnsubAck(x) => x.write(&mut b),
        mb::Packet::PingResp => mb::PingResp.write(&mut b),
        mb::Packet::Disconnect(x) => x.write(&mut b),
        other => panic!("not a broker packet: {other:?}"),
    }
    .unwrap();
    b.to_vec()
}

fn decode_one(bytes: &[u8]) -> Packet<'_> {
    let (p, n) = c5::decode_inbound(bytes).unwrap_or_else(|e| panic!("client rejects {bytes:02x?}: {e:?}")).unwrap();
    assert_eq!(n, bytes.len());
    // Every strict prefix is incomplete, never an error or a packet.
    for k in 0..bytes.len() {
        assert_eq!(c5::decode_inbound(&bytes[..k]), Ok(None), "prefix {k} of {bytes:02x?}");
    }
    p
}

fn users(p: &Properties<'_>) -> Vec<(String, String)> {
    p.user_properties().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn ups() -> Vec<(String, String)> {
    vec![("k".into(), "v".into()), ("k".into(), "second".into())]
}

#[test]
fn mqttbytes_connack_decodes_with_client() {
    for (code, present) in [
        (mb::ConnectReturnCode::Success, true),
        (mb::ConnectReturnCode::Success, false),
        (mb::ConnectReturnCode::NotAuthorized, false),
        (mb::ConnectReturnCode::ServerBusy, false),
    ] {
        for with_props in [false, true] {
            let mut a = mb::ConnAck::new(code, present);
            if with_props {
                let mut p = mb::ConnAckProperties::new();
                p.session_expiry_interval = Some(120);
                p.receive_max = Some(5);
                p.max_qos = Some(1);
                p.retain_available = Some(0);
                p.max_packet_size = Some(1024);
                p.assigned_client_identifier = Some("auto-1234".into());
                p.topic_alias_max = Some(10);
                p.reason_string = Some("welcome".into());
                p.user_properties = ups();
                p.wildcard_subscription_available = Some(1);
                p.subscription_identifiers_available = Some(0);
                p.shared_subscription_available = Some(1);
                p.server_keep_alive = Some(45);
                p.response_information = Some("resp".into());
                p.server_reference = Some("other:1883".into());
                p.authentication_method = Some("none".into());
                p.authentication_data = Some(Bytes::from_static(&[1, 2, 3]));
                a.properties = Some(p);
            }
            let bytes = mb_write(&mb::Packet::ConnAck(a));
            let Packet::ConnAck { session_present, reason, properties } = decode_one(&bytes) else { panic!() };
            assert_eq!((session_present, reason), (present, ReasonCode::from(code as u8)));
            if !with_props {
                assert!(properties.is_empty());
                continue;
            }
            let ps: Vec<Property<'_>> = properties.iter().collect();
            for want in [
                Property::U32(0x11, 120),
                Property::U16(0x21, 5),
                Property::Byte(0x24, 1),
                Property::U32(0x27, 1024),
                Property::Bytes(0x12, b"auto-1234"),
                Property::U16(0x22, 10),
                Property::U16(0x13, 45),
                Property::Bytes(0x1f, b"welcome"),
                Property::Bytes(0x16, &[1, 2, 3]),
            ] {
                assert!(ps.contains(&want), "{want:?} missing from {ps:?}");
            }
            assert_eq!(properties.reason_string(), Some("welcome"));
            assert_eq!(users(&properties), ups());
        }
    }
}

#[test]
fn mqttbytes_publish_decodes_with_client() {
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        for with_props in [false, true] {
            let mut m = mb::Publish::new("sensors/42/t", mb_qos(qos), b"21.5".to_vec());
            m.retain = qos == QoS::AtLeastOnce;
            m.dup = qos == QoS::ExactlyOnce;
            m.pkid = if qos == QoS::AtMostOnce { 0 } else { 9 };
            if with_props {
                m.properties = Some(mb::PublishProperties {
                    payload_format_indicator: Some(1),
                    message_expiry_interval: Some(30),
                    topic_alias: Some(2),
                    response_topic: Some("reply/42".into()),
                    correlation_data: Some(Bytes::from_static(b"\x00\xffid")),
                    user_properties: ups(),
                    subscription_identifiers: vec![1, 300],
                    content_type: Some("text/plain".into()),
                });
            }
            let bytes = mb_write(&mb::Packet::Publish(m));
            let Packet::Publish(p) = decode_one(&bytes) else { panic!() };
            assert_eq!((p.qos, p.retain, p.dup), (qos, qos == QoS::AtLeastOnce, qos == QoS::ExactlyOnce));
            assert_eq!(
                (p.topic, p.payload, p.pid),
                ("sensors/42/t".into(), &b"21.5"[..], (qos != QoS::AtMostOnce).then_some(9))
            );
            if !with_props {
                assert!(p.properties.is_empty());
                continue;
            }
            let pr = p.properties;
            assert_eq!(pr.message_expiry(), Some(30));
            assert_eq!(c5::topic_alias(&pr), Some(2));
            assert_eq!(pr.content_type(), Some("text/plain"));
            assert_eq!(users(&pr), ups());
            let ps: Vec<Property<'_>> = pr.iter().collect();
            for want in [
                Property::Byte(0x01, 1),
                Property::Bytes(0x08, b"reply/42"),
                Property::Bytes(0x09, b"\x00\xffid"),
                Property::VarInt(0x0b, 1),
                Property::VarInt(0x0b, 300),
            ] {
                assert!(ps.contains(&want), "{want:?} missing from {ps:?}");
            }
        }
    }
}

#[test]
fn mqttbytes_acks_decode_with_client() {
    let props = || mb::PubAckProperties { reason_string: Some("quota".into()), user_properties: ups() };
    for pid in [1u16, 0x1234, 65535] {
        for (reason, with_props) in [
            (mb::PubAckReason::Success, false),
            (mb::PubAckReason::NoMatchingSubscribers, false),
            (mb::PubAckReason::QuotaExceeded, true),
            (mb::PubAckReason::NotAuthorized, false),
        ] {
            let a = mb::PubAck { pkid: pid, reason, properties: with_props.then(props) };
            let bytes = mb_write(&mb::Packet::PubAck(a));
            let Packet::PubAck(d) = decode_one(&bytes) else { panic!() };
            assert_eq!((d.pid, d.reason), (pid, ReasonCode::from(reason as u8)));
            assert_eq!(d.properties.reason_string(), with_props.then_some("quota"));
            assert_eq!(users(&d.properties), if with_props { ups() } else { vec![] });
        }
        for reason in [mb::PubRecReason::Success, mb::PubRecReason::UnspecifiedError] {
            let a = mb::PubRec { pkid: pid, reason, properties: None };
            let bytes = mb_write(&mb::Packet::PubRec(a));
            let Packet::PubRec(d) = decode_one(&bytes) else { panic!() };
            assert_eq!((d.pid, d.reason), (pid, ReasonCode::from(reason as u8)));
        }
        for reason in [mb::PubRelReason::Success, mb::PubRelReason::PacketIdentifierNotFound] {
            let a = mb::PubRel { pkid: pid, reason, properties: None };
            let bytes = mb_write(&mb::Packet::PubRel(a));
            let Packet::PubRel(d) = decode_one(&bytes) else { panic!() };
            assert_eq!((d.pid, d.reason), (pid, ReasonCode::from(reason as u8)));
        }
        for reason in [mb::PubCompReason::Success, mb::PubCompReason::PacketIdentifierNotFound] {
            let a = mb::PubComp { pkid: pid, reason, properties: None };
            let bytes = mb_write(&mb::Packet::PubComp(a));
            let Packet::PubComp(d) = decode_one(&bytes) else { panic!() };
            assert_eq!((d.pid, d.reason), (pid, ReasonCode::from(reason as u8)));
        }
    }
    assert_eq!(decode_one(&mb_write(&mb::Packet::PingResp)), Packet::PingResp);
}

#[test]
fn mqttbytes_suback_unsuback_disconnect_decode_with_client() {
    use mb::SubscribeReasonCode as S;
    let codes = vec![S::QoS0, S::QoS1, S::QoS2, S::NotAuthorized, S::WildcardSubscriptionsNotSupported];
    let mut a = mb::SubAck::new(300, codes.clone());
    a.properties = Some(mb::SubAckProperties { reason_string: Some("partly".into()), user_properties: ups() });
    let bytes = mb_write(&mb::Packet::SubAck(a));
    let Packet::SubAck { pid, properties, codes: got } = decode_one(&bytes) else { panic!() };
    assert_eq!(pid, 300);
    assert_eq!(got, codes.iter().map(|c| *c as u8).collect::<Vec<_>>());
    assert_eq!(ReasonCode::from(got[3]), ReasonCode::NotAuthorized);
    assert_eq!(properties.reason_string(), Some("partly"));

    let mut u = mb::UnsubAck::new(301);
    u.reasons = vec![mb::UnsubAckReason::Success, mb::UnsubAckReason::NoSubscriptionExisted];
    let bytes = mb_write(&mb::Packet::UnsubAck(u));
    let Packet::UnsubAck { pid, codes, .. } = decode_one(&bytes) else { panic!() };
    assert_eq!((pid, codes), (301, &[0x00, 0x11][..]));

    for (reason, with_props) in [
        (mb::DisconnectReasonCode::NormalDisconnection, false),
        (mb::DisconnectReasonCode::ServerShuttingDown, false),
        (mb::DisconnectReasonCode::SessionTakenOver, true),
    ] {
        let mut d = mb::Disconnect::new();
        d.reason_code = reason;
        if with_props {
            d.properties = Some(mb::DisconnectProperties {
                session_expiry_interval: None,
                reason_string: Some("bye".into()),
                user_properties: ups(),
                server_reference: Some("b2".into()),
            });
        }
        let bytes = mb_write(&mb::Packet::Disconnect(d));
        let Packet::Disconnect { reason: r, properties } = decode_one(&bytes) else { panic!() };
        assert_eq!(r, ReasonCode::from(reason as u8));
        assert_eq!(properties.reason_string(), with_props.then_some("bye"));
    }
}

#[test]
fn decoder_rejects_malformed_v5() {
    use codec::DecodeError as E;
    // Unknown property identifier 0x7f in a CONNACK.
    assert_eq!(c5::decode_inbound(&[0x20, 0x05, 0x00, 0x00, 0x02, 0x7f, 0x00]), Err(E::InvalidProperty));
    // Property length runs past the packet.
    assert_eq!(c5::decode_inbound(&[0x20, 0x03, 0x00, 0x00, 0x05]), Err(E::InvalidLength));
    // A string property that is not UTF-8.
    assert_eq!(c5::decode_inbound(&[0x20, 0x07, 0x00, 0x00, 0x04, 0x1f, 0x00, 0x01, 0xff]), Err(E::InvalidUtf8));
    // [MQTT-3.3.2-8]: Topic Alias 0 is not permitted.
    assert_eq!(c5::decode_inbound(&[0x30, 0x07, 0x00, 0x01, b't', 0x03, 0x23, 0x00, 0x00]), Err(E::InvalidTopic));
    // Empty topic without a Topic Alias.
    assert_eq!(c5::decode_inbound(&[0x30, 0x03, 0x00, 0x00, 0x00]), Err(E::InvalidTopic));
    // Client-to-broker packets and AUTH are not accepted from a broker.
    for first in [0x10u8, 0x82, 0xa2, 0xc0, 0xf0] {
        assert_eq!(c5::decode_inbound(&[first, 0x00]), Err(E::InvalidPacketType), "{first:#x}");
    }
}

/// `mqttbytes` encodes what it decoded from the client's bytes back to the
/// same bytes: both encoders agree byte for byte on every packet a client
/// sends with properties (CONNECT with all property, will and login
/// variants, PUBLISH with expiry, alias and one kind of caller property,
/// SUBSCRIBE, UNSUBSCRIBE; the acks and PINGREQ are the 3.1.1 forms checked
/// in `codec_crosscheck.rs`). Not compared, because MQTT 5 allows both
/// forms: a PUBLISH with both a content type and user properties, which the
/// client writes in the caller's order (content type first) and `mqttbytes`
/// in its own (content type last), as the order of properties is free; and
/// DISCONNECT, where `mqttbytes` omits an empty Property Length (and for a
/// normal disconnection the reason code too, MQTT 5 §3.14.2.1 and
/// §3.14.2.2.1), while the client writes both.
#[test]
fn both_encoders_agree_byte_for_byte() {
    let same = |bytes: &[u8]| {
        let m = mb_read(bytes);
        let mut b = BytesMut::new();
        match &m {
            mb::Packet::Connect(x) => x.write(&mut b),
            mb::Packet::Publish(x) => x.write(&mut b),
            mb::Packet::Subscribe(x) => x.write(&mut b),
            mb::Packet::Unsubscribe(x) => x.write(&mut b),
            mb::Packet::Disconnect(x) => x.write(&mut b),
            other => panic!("{other:?}"),
        }
        .unwrap();
        assert_eq!(&b[..], bytes, "mqttbytes encodes {m:?} differently");
    };
    let mut buf = [0u8; 256];
    for (c, props) in connect_vectors() {
        let len = c5::encode_connect(&c, &props, &mut buf).unwrap();
        same(&buf[..len]);
    }
    let mut n = 0;
    for (qos, expiry, alias, ct, users, topic) in publish_vectors() {
        if ct.is_some() && !users.is_empty() {
            continue;
        }
        let raw = wire_props(ct, users);
        let p = Publish {
            dup: qos == QoS::ExactlyOnce,
            qos,
            retain: qos == QoS::AtLeastOnce,
            topic: topic.into(),
            pid: (qos != QoS::AtMostOnce).then_some(0x1234),
            payload: b"{\"t\":21.5}",
            properties: Properties(&raw),
        };
        let len = c5::encode_publish(&p, expiry, alias, &mut buf).unwrap();
        same(&buf[..len]);
        n += 1;
    }
    assert_eq!(n, 3 * 6);
    let len = c5::encode_subscribe(77, &[("devices/42/cmd", QoS::AtLeastOnce), ("a/+/#", QoS::ExactlyOnce)], &mut buf)
        .unwrap();
    same(&buf[..len]);
    let len = c5::encode_unsubscribe(78, &["devices/42/cmd", "a/+/#"], &mut buf).unwrap();
    same(&buf[..len]);
}
