//! Tests of decoding and encoding, including each guard around `mqttbytes`.

use super::super::decode::{decode, Decoded};
use super::*;

const MAX: usize = 1 << 20;

fn dec(bytes: &[u8], version: Option<Version>) -> Result<Decoded, DecodeError> {
    let mut buf = BytesMut::from(bytes);
    decode(&mut buf, version, MAX)
}

fn packet(bytes: &[u8], version: Option<Version>) -> Packet {
    match dec(bytes, version) {
        Ok(Decoded::Packet(p, n)) => {
            assert_eq!(n, bytes.len());
            p
        }
        other => panic!("expected a packet, got {other:?}"),
    }
}

fn connect_bytes(name: &[u8], level: u8, flags: u8, id: &str) -> Vec<u8> {
    let mut body = vec![0, name.len() as u8];
    body.extend_from_slice(name);
    body.extend_from_slice(&[level, flags, 0, 60]);
    if level == 5 {
        body.push(0);
    }
    body.extend_from_slice(&[0, id.len() as u8]);
    body.extend_from_slice(id.as_bytes());
    let mut out = vec![0x10, body.len() as u8];
    out.extend(body);
    out
}

#[test]
fn connect_all_three_levels() {
    for (name, level, version) in
        [(&b"MQIsdp"[..], 3, Version::V31), (&b"MQTT"[..], 4, Version::V311), (&b"MQTT"[..], 5, Version::V5)]
    {
        let Packet::Connect(c) = packet(&connect_bytes(name, level, 0x02, "dev1"), None) else { panic!() };
        assert_eq!(c.version, version);
        assert_eq!(c.client_id, "dev1");
        assert!(c.clean_start);
        assert_eq!(c.keep_alive, 60);
    }
}

#[test]
fn connect_of_a_mosquitto_bridge() {
    // Mosquitto's `try_private`: the 3.1/3.1.1 level with bit 0x80.
    for (name, level, version) in [(&b"MQIsdp"[..], 0x83, Version::V31), (&b"MQTT"[..], 0x84, Version::V311)] {
        let Packet::Connect(c) = packet(&connect_bytes(name, level, 0x02, "gw.cloud"), None) else { panic!() };
        assert_eq!((c.version, c.bridge, c.client_id.as_str()), (version, true, "gw.cloud"));
    }
    let Packet::Connect(c) = packet(&connect_bytes(b"MQTT", 4, 0x02, "a"), None) else { panic!() };
    assert!(!c.bridge);
    // No such thing for MQTT 5, nor for other levels.
    assert_eq!(dec(&connect_bytes(b"MQTT", 0x85, 0x02, "a"), None), Err(DecodeError::UnsupportedVersion(0x85)));
    assert_eq!(dec(&connect_bytes(b"MQTT", 0x83, 0x02, "a"), None), Err(DecodeError::UnsupportedVersion(0x83)));
}

#[test]
fn connect_rules() {
    // [MQTT-3.1.2-2] unsupported level is reported so a CONNACK can be sent.
    assert_eq!(dec(&connect_bytes(b"MQTT", 6, 0x02, "a"), None), Err(DecodeError::UnsupportedVersion(6)));
    // [MQTT-3.1.2-1] unknown protocol name.
    assert!(matches!(dec(&connect_bytes(b"MQTX", 4, 0x02, "a"), None), Err(DecodeError::Protocol(_))));
    // [MQTT-3.1.2-3] reserved flag.
    assert!(matches!(dec(&connect_bytes(b"MQTT", 4, 0x03, "a"), None), Err(DecodeError::Malformed(_))));
    // [MQTT-3.1.2-11] will QoS without will flag.
    assert!(matches!(dec(&connect_bytes(b"MQTT", 4, 0x0A, "a"), None), Err(DecodeError::Malformed(_))));
    // [MQTT-3.1.2-22] password without user name.
    assert!(matches!(dec(&connect_bytes(b"MQTT", 4, 0x42, "a"), None), Err(DecodeError::Malformed(_))));
    // [MQTT-3.1.0-1] first packet must be CONNECT.
    assert!(matches!(dec(&[0xC0, 0], None), Err(DecodeError::Protocol(_))));
    // [MQTT-3.1.0-2] a second CONNECT.
    let again = connect_bytes(b"MQTT", 4, 0x02, "a");
    assert!(matches!(dec(&again, Some(Version::V311)), Err(DecodeError::Protocol(_))));
}

#[test]
fn incomplete_and_size_limit() {
    assert_eq!(dec(&[0x30], Some(Version::V311)), Ok(Decoded::Incomplete { frame_len: None }));
    assert_eq!(dec(&[0x30, 10, 0], Some(Version::V311)), Ok(Decoded::Incomplete { frame_len: Some(12) }));
    // The limit applies to the whole packet, known from the header alone.
    let mut buf = BytesMut::from(&[0x30, 0xFF, 0x7F][..]);
    assert_eq!(decode(&mut buf, Some(Version::V311), 16_000), Err(DecodeError::TooLarge { size: 16_386, max: 16_000 }));
    // A packet exactly at the limit passes; one byte over fails.
    let p = [0x30, 5, 0, 1, b'a', b'x', b'y'];
    assert!(matches!(decode(&mut BytesMut::from(&p[..]), Some(Version::V311), 7), Ok(Decoded::Packet(..))));
    assert!(decode(&mut BytesMut::from(&p[..]), Some(Version::V311), 6).is_err());
    // Remaining length of five bytes is malformed.
    assert!(dec(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], Some(Version::V311)).is_err());
}

#[test]
fn publish_flags_and_topic() {
    let Packet::Publish(p) = packet(&[0x33, 7, 0, 1, b'a', 0, 9, b'h', b'i'], Some(Version::V311)) else { panic!() };
    assert_eq!((p.qos, p.retain, p.pkid, &p.topic[..], &p.payload[..]), (QoS::AtLeastOnce, true, 9, "a", &b"hi"[..]));
    // [MQTT-3.3.1-4] QoS 3.
    assert!(dec(&[0x36, 5, 0, 1, b'a', 0, 1], Some(Version::V311)).is_err());
    // [MQTT-3.3.1-2] DUP at QoS 0.
    assert!(dec(&[0x38, 3, 0, 1, b'a'], Some(Version::V311)).is_err());
    // [MQTT-3.3.2-2] wildcard in a topic name.
    assert_eq!(dec(&[0x30, 3, 0, 1, b'#'], Some(Version::V311)), Err(DecodeError::TopicName));
    // [MQTT-2.3.1-1] packet identifier 0.
    assert!(dec(&[0x32, 5, 0, 1, b'a', 0, 0], Some(Version::V311)).is_err());
    // [MQTT-1.5.3-2] U+0000 in a topic.
    assert!(dec(&[0x30, 4, 0, 2, b'a', 0], Some(Version::V311)).is_err());
}

#[test]
fn a_publish_payload_does_not_share_the_read_buffer() {
    // Two PUBLISH packets in one read: the first message's payload is its
    // own copy, so keeping it (retained, queued) pins nothing else.
    let one = [0x30, 5, 0, 1, b'a', b'h', b'i'];
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&one);
    buf.extend_from_slice(&one);
    let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.capacity();
    let Ok(Decoded::Packet(Packet::Publish(p), 7)) = decode(&mut buf, Some(Version::V311), MAX) else { panic!() };
    assert_eq!(&p.payload[..], b"hi");
    assert!(!range.contains(&(p.payload.as_ptr() as usize)), "payload points into the read buffer");
    assert_eq!(buf.len(), 7, "the second packet is still buffered");
}

#[test]
fn v5_publish_properties_guarded() {
    // User property passes through.
    let ok = [0x30, 12, 0, 1, b'a', 7, 38, 0, 1, b'k', 0, 1, b'v', b'!'];
    let Packet::Publish(p) = packet(&ok, Some(Version::V5)) else { panic!() };
    assert_eq!(p.props.unwrap().user_properties, vec![("k".to_owned(), "v".to_owned())]);
    assert_eq!(&p.payload[..], b"!");
    // Property running past its declared length.
    assert!(dec(&[0x30, 9, 0, 1, b'a', 2, 2, 0, 0, 0, 1], Some(Version::V5)).is_err());
    // Duplicate payload format indicator.
    assert!(dec(&[0x30, 8, 0, 1, b'a', 4, 1, 0, 1, 0], Some(Version::V5)).is_err());
    // Topic alias 0.
    assert_eq!(dec(&[0x30, 7, 0, 1, b'a', 3, 35, 0, 0], Some(Version::V5)), Err(DecodeError::TopicAliasZero));
    // [MQTT-3.3.4-6] subscription identifier from a client.
    assert!(dec(&[0x30, 6, 0, 1, b'a', 2, 11, 1], Some(Version::V5)).is_err());
}

#[test]
fn v5_disconnect_lengths() {
    // Remaining length 0: normal disconnection (mqttbytes rejects this).
    assert_eq!(packet(&[0xE0, 0], Some(Version::V5)), Packet::Disconnect(Disconnect::default()));
    // Remaining length 1: reason only, and the stream stays in sync.
    let mut buf = BytesMut::from(&[0xE0, 1, 0x04, 0xC0, 0][..]);
    let Ok(Decoded::Packet(Packet::Disconnect(d), 3)) = decode(&mut buf, Some(Version::V5), MAX) else { panic!() };
    assert_eq!(d.reason, DisconnectReason::DisconnectWithWill);
    assert!(matches!(decode(&mut buf, Some(Version::V5), MAX), Ok(Decoded::Packet(Packet::PingReq, 2))));
    // With a session expiry property.
    let Packet::Disconnect(d) = packet(&[0xE0, 7, 0, 5, 17, 0, 0, 0, 30], Some(Version::V5)) else { panic!() };
    assert_eq!(d.session_expiry_interval, Some(30));
    // 3.1.1 DISCONNECT must be empty.
    assert!(dec(&[0xE0, 1, 0], Some(Version::V311)).is_err());
}

#[test]
fn auth_packet_is_known_for_v5_only() {
    let p = packet(&[0xF0, 6, 0x18, 4, 21, 0, 1, b'x'], Some(Version::V5));
    assert_eq!(
        p,
        Packet::Auth(Auth { reason: AuthReason::ContinueAuthentication, method: Some("x".into()), data: None })
    );
    assert!(dec(&[0xF0, 0], Some(Version::V311)).is_err());
}

#[test]
fn subscribe_rules() {
    let Packet::Subscribe(s) = packet(&[0x82, 6, 0, 1, 0, 1, b'#', 1], Some(Version::V311)) else { panic!() };
    assert_eq!(s.filters[0].filter, "#");
    assert_eq!(s.filters[0].options.qos, QoS::AtLeastOnce);
    // [MQTT-3.8.1-1] flags must be 0010.
    assert!(dec(&[0x80, 6, 0, 1, 0, 1, b'#', 1], Some(Version::V311)).is_err());
    // [MQTT-3.8.3-3] no filters.
    assert!(dec(&[0x82, 2, 0, 1], Some(Version::V311)).is_err());
    // [MQTT-3.8.3-4] reserved option bits.
    assert!(dec(&[0x82, 6, 0, 1, 0, 1, b'#', 0x05], Some(Version::V311)).is_err());
    // v5 options: no local, retain as published, retain handling 2.
    let Packet::Subscribe(s) = packet(&[0x82, 7, 0, 1, 0, 0, 1, b'#', 0x2E], Some(Version::V5)) else { panic!() };
    let o = s.filters[0].options;
    assert!(o.no_local && o.retain_as_published && o.retain_handling == RetainHandling::Never);
    // Retain handling 3 is malformed.
    assert!(dec(&[0x82, 7, 0, 1, 0, 0, 1, b'#', 0x30], Some(Version::V5)).is_err());
}

#[test]
fn unsubscribe_both_versions() {
    let Packet::Unsubscribe(u) = packet(&[0xA2, 5, 0, 7, 0, 1, b'a'], Some(Version::V311)) else { panic!() };
    assert_eq!((u.pkid, u.filters), (7, vec!["a".to_owned()]));
    let Packet::Unsubscribe(u) = packet(&[0xA2, 6, 0, 7, 0, 0, 1, b'a'], Some(Version::V5)) else { panic!() };
    assert_eq!((u.pkid, u.filters), (7, vec!["a".to_owned()]));
    // [MQTT-3.10.3-2] no filters.
    assert!(dec(&[0xA2, 3, 0, 7, 0], Some(Version::V5)).is_err());
}

#[test]
fn acks_and_server_only_packets() {
    assert_eq!(packet(&[0x40, 2, 0, 5], Some(Version::V311)), Packet::PubAck(Ack::ok(5)));
    assert_eq!(packet(&[0x62, 2, 0, 5], Some(Version::V311)), Packet::PubRel(Ack::ok(5)));
    // [MQTT-3.6.1-1] PUBREL flags.
    assert!(dec(&[0x60, 2, 0, 5], Some(Version::V311)).is_err());
    assert_eq!(
        packet(&[0x50, 3, 0, 5, 0x10], Some(Version::V5)),
        Packet::PubRec(Ack::new(5, PubRecReason::NoMatchingSubscribers))
    );
    assert!(matches!(dec(&[0x20, 2, 0, 0], Some(Version::V311)), Err(DecodeError::Protocol(_))));
    assert!(dec(&[0x00, 0], Some(Version::V311)).is_err());
}

#[test]
fn encode_acks_and_connack() {
    let mut buf = BytesMut::new();
    encode(&Packet::PubAck(Ack::ok(3)), Version::V311, &mut buf).unwrap();
    encode(
        &Packet::ConnAck(Box::new(ConnAck { session_present: true, ..ConnAck::default() })),
        Version::V311,
        &mut buf,
    )
    .unwrap();
    encode(&Packet::ConnAck(Box::new(ConnAck { session_present: true, ..ConnAck::default() })), Version::V31, &mut buf)
        .unwrap();
    encode(
        &Packet::SubAck(SubAck {
            pkid: 1,
            codes: vec![SubAckReason::GrantedQos0, SubAckReason::UnspecifiedError],
            reason_string: None,
        }),
        Version::V311,
        &mut buf,
    )
    .unwrap();
    assert_eq!(&buf[..], &[0x40, 2, 0, 3, 0x20, 2, 1, 0, 0x20, 2, 0, 0, 0x90, 4, 0, 1, 0, 0x80]);
    buf.clear();
    encode(
        &Packet::Disconnect(Disconnect { reason: DisconnectReason::SessionTakenOver, ..Disconnect::default() }),
        Version::V5,
        &mut buf,
    )
    .unwrap();
    assert_eq!(&buf[..], &[0xE0, 1, 0x8E]);
    assert!(encode(&Packet::Disconnect(Disconnect::default()), Version::V311, &mut buf).is_err());
}

#[test]
fn encode_refuses_overlong_strings_instead_of_truncating() {
    let mut buf = BytesMut::new();
    let p = Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: "t".repeat(70_000),
        pkid: 0,
        payload: Bytes::new(),
        props: None,
    };
    assert_eq!(encode(&Packet::Publish(p), Version::V311, &mut buf), Err(EncodeError::StringTooLong(70_000)));
    assert!(buf.is_empty());
}

#[test]
fn publish_round_trips_through_our_decoder() {
    for version in [Version::V311, Version::V5] {
        let props = version.is_v5().then(|| {
            Box::new(PublishProps {
                user_properties: vec![("a".into(), "1".into()), ("a".into(), "2".into())],
                correlation_data: Some(Bytes::from_static(b"c")),
                ..PublishProps::default()
            })
        });
        let p = Publish {
            dup: true,
            qos: QoS::ExactlyOnce,
            retain: true,
            topic: "x/y".into(),
            pkid: 77,
            payload: Bytes::from_static(b"payload"),
            props,
        };
        let mut buf = BytesMut::new();
        encode(&Packet::Publish(p.clone()), version, &mut buf).unwrap();
        assert_eq!(packet(&buf, Some(version)), Packet::Publish(p));
    }
}

#[test]
fn publish_size_bound_is_never_below_the_encoded_size() {
    let props = PublishProps {
        payload_format_indicator: Some(1),
        message_expiry_interval: Some(70_000),
        topic_alias: Some(3),
        response_topic: Some("reply/to".into()),
        correlation_data: Some(Bytes::from_static(b"corr")),
        user_properties: vec![("k".into(), "v".into()), ("key2".into(), "x".repeat(300))],
        subscription_identifiers: vec![1, 300, 268_435_455],
        content_type: Some("text/plain".into()),
    };
    for payload in [0, 1, 127, 128, 16_383, 16_384, 2_097_152] {
        for (qos, pkid) in [(QoS::AtMostOnce, 0), (QoS::AtLeastOnce, 7), (QoS::ExactlyOnce, 65_535)] {
            for props in [None, Some(Box::default()), Some(Box::new(props.clone()))] {
                for version in [Version::V311, Version::V5] {
                    let p = Publish {
                        dup: false,
                        qos,
                        retain: false,
                        topic: "a/b".repeat(40),
                        pkid,
                        payload: Bytes::from(vec![7u8; payload]),
                        props: props.clone(),
                    };
                    let mut buf = BytesMut::new();
                    encode(&Packet::Publish(p.clone()), version, &mut buf).expect("encodes");
                    assert!(publish_size_bound(&p, version.is_v5()) >= buf.len(), "{payload} {qos:?} {version:?}");
                }
            }
        }
    }
}

#[test]
fn v5_acks_carry_reason_strings_a_client_library_reads() {
    use mqttbytes::v5 as m;
    let mut buf = BytesMut::new();
    let mut suback = Packet::SubAck(SubAck {
        pkid: 7,
        codes: vec![SubAckReason::GrantedQos1, SubAckReason::TopicFilterInvalid],
        reason_string: None,
    });
    assert!(suback.explain());
    encode(&suback, Version::V5, &mut buf).unwrap();
    let mut unsuback =
        Packet::UnsubAck(UnsubAck { pkid: 8, codes: vec![UnsubAckReason::NoSubscriptionExisted], reason_string: None });
    assert!(unsuback.explain());
    encode(&unsuback, Version::V5, &mut buf).unwrap();
    let mut pubrel = Packet::PubRel(Ack::new(9, PubRelReason::PacketIdentifierNotFound));
    assert!(pubrel.explain());
    encode(&pubrel, Version::V5, &mut buf).unwrap();
    let mut fine = Packet::PubAck(Ack::ok(10));
    assert!(!fine.explain(), "no Reason String on success");
    encode(&fine, Version::V5, &mut buf).unwrap();
    match m::read(&mut buf, 1 << 20).unwrap() {
        m::Packet::SubAck(s) => {
            assert_eq!(s.pkid, 7);
            assert_eq!(s.properties.and_then(|p| p.reason_string).as_deref(), Some("topic filter invalid"));
        }
        other => panic!("{other:?}"),
    }
    match m::read(&mut buf, 1 << 20).unwrap() {
        m::Packet::UnsubAck(u) => {
            assert_eq!(u.properties.and_then(|p| p.reason_string).as_deref(), Some("no subscription existed"));
        }
        other => panic!("{other:?}"),
    }
    match m::read(&mut buf, 1 << 20).unwrap() {
        m::Packet::PubRel(r) => {
            assert_eq!(r.pkid, 9);
            assert_eq!(r.properties.and_then(|p| p.reason_string).as_deref(), Some("packet identifier not found"));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(m::read(&mut buf, 1 << 20).unwrap(), m::Packet::PubAck(a) if a.pkid == 10));
    assert!(buf.is_empty());
}

#[test]
fn forward_encodes_exactly_as_the_publish_it_stands_for() {
    use crate::message::Message;
    for (qos, dup, retain, payload) in [
        (QoS::AtMostOnce, false, false, &b""[..]),
        (QoS::AtLeastOnce, true, false, &b"x"[..]),
        (QoS::ExactlyOnce, false, true, &[7u8; 300][..]),
    ] {
        let msg = Message {
            topic: "a/b/ü".into(),
            payload: Bytes::copy_from_slice(payload),
            qos,
            retain,
            props: None,
            origin: 0,
            received: std::time::Instant::now(),
        };
        let f = Forward { msg: std::sync::Arc::new(msg), qos, retain, dup, pkid: 513 };
        for version in [Version::V31, Version::V311, Version::V5] {
            let (mut a, mut b) = (BytesMut::new(), BytesMut::new());
            encode(&Packet::Forward(f.clone()), version, &mut a).unwrap();
            encode(&Packet::Publish(f.to_publish()), version, &mut b).unwrap();
            assert_eq!(a, b, "{qos:?} {version:?}");
        }
    }
}
