//! The client side checked against the server side of the same module:
//! what the bridge encodes, the server decodes, and the other way round.

use super::*;
use crate::protocol::{decode, encode, Decoded};

fn to_server(p: &ClientPacket, v: Version, connected: bool) -> Packet {
    let mut buf = BytesMut::new();
    encode_client(p, v, &mut buf).unwrap();
    match decode(&mut buf, connected.then_some(v), 1 << 20).unwrap() {
        Decoded::Packet(p, _) => p,
        other => panic!("{other:?}"),
    }
}

fn to_client(p: &Packet, v: Version) -> ServerPacket {
    let mut buf = BytesMut::new();
    encode(p, v, &mut buf).unwrap();
    let out = decode_server(&mut buf, v, 1 << 20).unwrap().unwrap();
    assert!(buf.is_empty());
    out
}

fn connect(v: Version, bridge: bool) -> ClientConnect {
    ClientConnect {
        version: v,
        bridge,
        client_id: "gw.cloud".into(),
        clean_start: false,
        keep_alive: 30,
        username: Some("gw".into()),
        password: Some("pw".into()),
        session_expiry: u32::MAX,
        receive_maximum: 100,
        maximum_packet_size: 65536,
        will: None,
    }
}

/// The bridge's will (its state `0`, retained, for the remote's
/// notification topic) as the server reads it, 3.1.1 and 5.
#[test]
fn a_will_as_the_server_reads_it() {
    for v in [Version::V311, Version::V5] {
        let will = ClientWill {
            topic: "$SYS/broker/connection/gw/state".into(),
            payload: b"0".to_vec(),
            qos: QoS::AtLeastOnce,
            retain: true,
        };
        let c = ClientConnect { will: Some(will), ..connect(v, false) };
        let Packet::Connect(c) = to_server(&c.into(), v, false) else { panic!() };
        let w = c.will.unwrap();
        assert_eq!(
            (w.topic.as_str(), &w.payload[..], w.qos, w.retain),
            ("$SYS/broker/connection/gw/state", &b"0"[..], QoS::AtLeastOnce, true)
        );
        assert_eq!((c.username.as_deref(), c.password.as_deref()), (Some("gw"), Some(&b"pw"[..])), "after the will");
    }
}

#[test]
fn connect_as_the_server_reads_it() {
    for (v, bridge) in [(Version::V311, true), (Version::V311, false), (Version::V5, true)] {
        let Packet::Connect(c) = to_server(&ClientConnect::into(connect(v, bridge)), v, false) else { panic!() };
        assert_eq!(c.version, v);
        // The 0x80 bit exists for 3.1.1 only.
        assert_eq!(c.bridge, bridge && !v.is_v5());
        assert_eq!((c.client_id.as_str(), c.clean_start, c.keep_alive), ("gw.cloud", false, 30));
        assert_eq!((c.username.as_deref(), c.password.as_deref()), (Some("gw"), Some(&b"pw"[..])));
        if v.is_v5() {
            assert_eq!(
                (c.session_expiry_interval, c.receive_maximum, c.maximum_packet_size),
                (Some(u32::MAX), Some(100), Some(65536))
            );
        }
    }
}

impl From<ClientConnect> for ClientPacket {
    fn from(c: ClientConnect) -> ClientPacket {
        ClientPacket::Connect(c)
    }
}

#[test]
fn subscribe_carries_no_local_and_retain_as_published() {
    let options = SubOptions {
        qos: QoS::AtLeastOnce,
        no_local: true,
        retain_as_published: true,
        retain_handling: RetainHandling::OnSubscribe,
    };
    let s = Subscribe {
        pkid: 7,
        filters: vec![SubscribeFilter { filter: "cmd/#".into(), options }],
        subscription_identifier: None,
        user_properties: Vec::new(),
    };
    let Packet::Subscribe(got) = to_server(&ClientPacket::Subscribe(s.clone()), Version::V5, true) else { panic!() };
    assert_eq!(got.filters, s.filters);
    let Packet::Subscribe(got) = to_server(&ClientPacket::Subscribe(s), Version::V311, true) else { panic!() };
    assert_eq!((got.pkid, got.filters[0].options.qos), (7, QoS::AtLeastOnce));
}

#[test]
fn server_packets_decode() {
    for v in [Version::V311, Version::V5] {
        let mut ack = ConnAck { session_present: true, ..ConnAck::default() };
        ack.props.receive_maximum = Some(20);
        ack.props.maximum_packet_size = Some(1000);
        let ServerPacket::ConnAck(c) = to_client(&Packet::ConnAck(Box::new(ack)), v) else { panic!() };
        assert!(c.session_present && c.code == ConnectReason::Success);
        if v.is_v5() {
            assert_eq!((c.props.receive_maximum, c.props.maximum_packet_size), (Some(20), Some(1000)));
        }
        let refused = ConnAck { code: ConnectReason::NotAuthorized, ..ConnAck::default() };
        let ServerPacket::ConnAck(c) = to_client(&Packet::ConnAck(Box::new(refused)), v) else { panic!() };
        assert_eq!(c.code, ConnectReason::NotAuthorized, "3.1.1's return code 5 maps to 0x87");
        // 3.1.1 has one failure code, 0x80: read back as MQTT 5's 0x80.
        let codes = vec![SubAckReason::GrantedQos1, SubAckReason::NotAuthorized];
        let read =
            if v.is_v5() { codes.clone() } else { vec![SubAckReason::GrantedQos1, SubAckReason::UnspecifiedError] };
        let sa = SubAck { pkid: 3, codes, reason_string: None };
        assert_eq!(to_client(&Packet::SubAck(sa), v), ServerPacket::SubAck { pkid: 3, codes: read });
        let p = Publish {
            dup: true,
            qos: QoS::ExactlyOnce,
            retain: true,
            topic: "a/b".into(),
            pkid: 9,
            payload: "x".into(),
            props: None,
        };
        assert_eq!(to_client(&Packet::Publish(p.clone()), v), ServerPacket::Publish(p));
        let ServerPacket::PubAck(a) = to_client(&Packet::PubAck(Ack::new(5, PubAckReason::QuotaExceeded)), v) else {
            panic!()
        };
        assert_eq!(
            (a.pkid, a.reason),
            (5, if v.is_v5() { PubAckReason::QuotaExceeded } else { PubAckReason::Success })
        );
        assert_eq!(to_client(&Packet::PingResp, v), ServerPacket::PingResp);
    }
}

#[test]
fn acks_and_publish_from_the_client() {
    for v in [Version::V311, Version::V5] {
        let p = Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: "s/1".into(),
            pkid: 1,
            payload: "42".into(),
            props: None,
        };
        assert_eq!(to_server(&ClientPacket::Publish(p.clone()), v, true), Packet::Publish(p));
        assert_eq!(to_server(&ClientPacket::PubRel(Ack::ok(4)), v, true), Packet::PubRel(Ack::ok(4)));
        assert_eq!(to_server(&ClientPacket::PingReq, v, true), Packet::PingReq);
        assert!(matches!(
            to_server(&ClientPacket::Disconnect(DisconnectReason::NormalDisconnection), v, true),
            Packet::Disconnect(_)
        ));
    }
}

#[test]
fn incomplete_and_oversized_frames() {
    let mut buf = BytesMut::from(&[0x30u8, 10, 0][..]);
    assert_eq!(decode_server(&mut buf, Version::V311, 100), Ok(None));
    let mut buf = BytesMut::from(&[0x30u8, 0x80, 0x01][..]);
    assert!(matches!(decode_server(&mut buf, Version::V311, 100), Err(DecodeError::TooLarge { .. })));
}
