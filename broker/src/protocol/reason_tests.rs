//! Tests of the reason code tables: each code round-trips, every other
//! byte is an [`UnknownReason`], the 3.1/3.1.1 numbering of CONNACK and
//! SUBACK, and what an unknown byte from a peer decodes to.

use bytes::BytesMut;

use super::super::decode::{decode, Decoded};
use super::super::*;

/// Every byte: the table's codes decode to themselves, the rest to an
/// [`UnknownReason`] naming the packet; `is_error` is "0x80 or above".
fn check_table<R>(all: &[R], packet: &'static str, len: usize)
where
    R: Reason + Into<u8>,
{
    assert_eq!(all.len(), len, "{packet}: the size of the 5.0 table");
    assert_eq!((all[0], R::SUCCESS.code(), R::from_peer(0)), (R::SUCCESS, 0, R::SUCCESS));
    for r in all {
        assert_eq!(R::try_from(r.code()), Ok(*r), "{packet} {r}");
        assert_eq!((*r).into(), r.code());
        assert_eq!(r.is_error(), r.code() >= 0x80, "{packet} {r}");
    }
    let known = (0..=255u8).filter(|b| all.iter().any(|r| r.code() == *b));
    assert_eq!(known.count(), len, "{packet}: codes are distinct");
    for b in (0..=255u8).filter(|b| !all.iter().any(|r| r.code() == *b)) {
        assert_eq!(R::try_from(b), Err(UnknownReason { packet, code: b }), "{packet} {b:#x}");
    }
}

#[test]
fn every_table_round_trips() {
    // 5.0 sections 3.2.2.2, 3.4.2.1, 3.6.2.1, 3.9.3, 3.11.3, 3.14.2.1.
    check_table(ConnectReason::ALL, "CONNACK", 22);
    check_table(PubAckReason::ALL, "PUBACK", 9);
    check_table(PubRelReason::ALL, "PUBREL", 2);
    check_table(SubAckReason::ALL, "SUBACK", 12);
    check_table(UnsubAckReason::ALL, "UNSUBACK", 7);
    check_table(DisconnectReason::ALL, "DISCONNECT", 29);
    // AUTH (3.15.2.1) has no lenient reading, so it is not a `Reason`.
    for r in AuthReason::ALL {
        assert_eq!(AuthReason::try_from(r.code()), Ok(*r));
    }
    assert_eq!(AuthReason::ALL.len(), 3);
    assert!((0..=255u8).filter(|b| AuthReason::try_from(*b).is_ok()).eq([0x00, 0x18, 0x19]));
}

#[test]
fn a_code_outside_its_table_is_refused() {
    // The same byte means different things, or nothing, per packet.
    assert_eq!(DisconnectReason::try_from(0x86), Err(UnknownReason { packet: "DISCONNECT", code: 0x86 }));
    assert_eq!(SubAckReason::try_from(0x8E), Err(UnknownReason { packet: "SUBACK", code: 0x8E }));
    assert_eq!(ConnectReason::try_from(0x01), Err(UnknownReason { packet: "CONNACK", code: 0x01 }));
    assert_eq!(SubAckReason::try_from(0x01), Ok(SubAckReason::GrantedQos1));
    assert_eq!(UnknownReason { packet: "SUBACK", code: 0x8E }.to_string(), "0x8e is not a SUBACK reason code");
}

#[test]
fn display_names_the_code_and_its_hex() {
    assert_eq!(ConnectReason::NotAuthorized.to_string(), "not authorized (0x87)");
    assert_eq!(DisconnectReason::SessionTakenOver.to_string(), "session taken over by another connection (0x8e)");
    assert_eq!(SubAckReason::GrantedQos2.to_string(), "granted QoS 2 (0x02)");
    assert_eq!(PubRelReason::PacketIdentifierNotFound.text(), "packet identifier not found");
}

#[test]
fn connack_return_codes_of_3_1_1() {
    // 3.1.1 section 3.2.2.3, Table 3.1: 0 accepted, 1 to 5 refused.
    let expected = [
        (ConnectReason::Success, 0x00),
        (ConnectReason::UnsupportedProtocolVersion, 0x01),
        (ConnectReason::ClientIdentifierNotValid, 0x02),
        (ConnectReason::ServerUnavailable, 0x03),
        (ConnectReason::BadUserNameOrPassword, 0x04),
        (ConnectReason::NotAuthorized, 0x05),
    ];
    for (r, code) in expected {
        assert_eq!(r.v311_code(), code, "{r}");
        assert_eq!(ConnectReason::from_v311(code), r);
    }
    // Refusals 3.1.1 has no code for are 0x03 Server unavailable (e.g.
    // CONNACK 0x97 Quota exceeded at `max_sessions`).
    for r in ConnectReason::ALL.iter().filter(|r| !expected.iter().any(|(e, _)| e == *r)) {
        assert_eq!(r.v311_code(), 0x03, "{r}");
    }
    assert_eq!(ConnectReason::from_v311(0x06), ConnectReason::UnspecifiedError);
}

#[test]
fn suback_return_codes_of_3_1_1() {
    // 3.1.1 section 3.9.3: 0x00, 0x01, 0x02 granted, 0x80 failure [MQTT-3.9.3-2].
    for r in SubAckReason::ALL {
        assert_eq!(r.v311_code(), if r.is_error() { 0x80 } else { r.code() }, "{r}");
    }
    for q in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        assert_eq!(SubAckReason::granted(q).code(), q as u8);
    }
    let suback = |codes| Packet::SubAck(SubAck { pkid: 1, codes, reason_string: None });
    let codes = vec![SubAckReason::GrantedQos1, SubAckReason::NotAuthorized, SubAckReason::TopicFilterInvalid];
    let mut buf = BytesMut::new();
    encode(&suback(codes.clone()), Version::V311, &mut buf).unwrap();
    assert_eq!(&buf[..], &[0x90, 5, 0, 1, 0x01, 0x80, 0x80]);
    buf.clear();
    encode(&suback(codes), Version::V5, &mut buf).unwrap();
    assert_eq!(&buf[..], &[0x90, 6, 0, 1, 0, 0x01, 0x87, 0x8F]);
}

#[test]
fn connack_encodes_per_version() {
    let refused = Packet::ConnAck(Box::new(ConnAck { code: ConnectReason::QuotaExceeded, ..ConnAck::default() }));
    let mut buf = BytesMut::new();
    encode(&refused, Version::V311, &mut buf).unwrap();
    assert_eq!(&buf[..], &[0x20, 2, 0, 0x03]);
    // Every 5.0 code goes out as itself (mqttbytes has an enum of its own).
    for r in ConnectReason::ALL {
        buf.clear();
        let p = Packet::ConnAck(Box::new(ConnAck { code: *r, ..ConnAck::default() }));
        encode(&p, Version::V5, &mut buf).unwrap();
        assert_eq!(buf[3], r.code(), "{r}");
    }
}

fn decode_v5(bytes: &[u8]) -> Result<Packet, DecodeError> {
    let mut buf = BytesMut::from(bytes);
    match decode(&mut buf, Some(Version::V5), 1 << 20)? {
        Decoded::Packet(p, _) => Ok(p),
        other => panic!("expected a packet, got {other:?}"),
    }
}

#[test]
fn unknown_reason_from_a_client() {
    // A client MUST use a code of the packet's table ([MQTT-3.4.2-1],
    // [MQTT-3.5.2-1], [MQTT-3.6.2-1], [MQTT-3.7.2-1], [MQTT-3.14.2-1]).
    // The broker has always read a byte outside it leniently, keeping only
    // its class: below 0x80 a success, 0x80 and above a failure.
    let puback = |code| decode_v5(&[0x40, 3, 0, 5, code]);
    assert_eq!(puback(0x10), Ok(Packet::PubAck(Ack::new(5, PubAckReason::NoMatchingSubscribers))));
    assert_eq!(puback(0x05), Ok(Packet::PubAck(Ack::ok(5))));
    assert_eq!(puback(0x8E), Ok(Packet::PubAck(Ack::new(5, PubAckReason::UnspecifiedError))));
    assert_eq!(decode_v5(&[0x50, 3, 0, 5, 0xFF]), Ok(Packet::PubRec(Ack::new(5, PubRecReason::UnspecifiedError))));
    // PUBREL/PUBCOMP have no unspecified error: 0x92 is their one failure.
    assert_eq!(
        decode_v5(&[0x62, 3, 0, 5, 0x80]),
        Ok(Packet::PubRel(Ack::new(5, PubRelReason::PacketIdentifierNotFound)))
    );
    assert_eq!(decode_v5(&[0x70, 3, 0, 5, 0x01]), Ok(Packet::PubComp(Ack::ok(5))));
    // DISCONNECT: an unknown success-class byte is a normal disconnection
    // (the will is discarded, as for 0x00 [MQTT-3.14.4-3]); the session
    // machine keeps the will only for 0x04.
    let disconnect = |code| match decode_v5(&[0xE0, 1, code]) {
        Ok(Packet::Disconnect(d)) => d.reason,
        other => panic!("{other:?}"),
    };
    assert_eq!(disconnect(0x04), DisconnectReason::DisconnectWithWill);
    assert_eq!(disconnect(0x05), DisconnectReason::NormalDisconnection);
    assert_eq!(disconnect(0x86), DisconnectReason::UnspecifiedError);
    // AUTH is stricter: a code outside its table is a malformed packet.
    assert!(matches!(decode_v5(&[0xF0, 1, 0x01]), Err(DecodeError::Malformed(_))));
    assert_eq!(
        decode_v5(&[0xF0, 1, 0x19]),
        Ok(Packet::Auth(Auth { reason: AuthReason::ReAuthenticate, ..Auth::default() }))
    );
}

#[test]
fn decode_errors_have_disconnect_reasons() {
    assert_eq!(DecodeError::Malformed("x").disconnect_reason(), DisconnectReason::MalformedPacket);
    assert_eq!(DecodeError::TooLarge { size: 2, max: 1 }.disconnect_reason(), DisconnectReason::PacketTooLarge);
    assert_eq!(DecodeError::TopicAliasZero.disconnect_reason(), DisconnectReason::TopicAliasInvalid);
    // 0x84 is a CONNACK code only.
    assert_eq!(DecodeError::UnsupportedVersion(6).disconnect_reason(), DisconnectReason::ProtocolError);
}
