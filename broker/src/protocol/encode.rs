//! Encoding of the packets a server sends.
//!
//! `mqttbytes` writes CONNACK and PUBLISH (the packets with content); the
//! fixed-size acknowledgements, SUBACK, UNSUBACK, PINGRESP, and the MQTT 5
//! DISCONNECT and AUTH are written here. Every string is length-checked
//! first, because `mqttbytes` silently truncates strings over 65,535 bytes.

use bytes::{BufMut, BytesMut};
use mqttbytes::{v4, v5};

use super::*;

/// Writes a variable byte integer (remaining length, property length).
pub(crate) fn write_varint(buf: &mut BytesMut, mut value: usize) {
    loop {
        let mut byte = (value % 128) as u8;
        value /= 128;
        if value > 0 {
            byte |= 0x80;
        }
        buf.put_u8(byte);
        if value == 0 {
            break;
        }
    }
}

fn check_str(s: &str) -> Result<(), EncodeError> {
    check_str_len(s.len())
}

/// A string or binary field holds at most 65,535 bytes.
fn check_str_len(len: usize) -> Result<(), EncodeError> {
    if len > usize::from(u16::MAX) {
        return Err(EncodeError::StringTooLong(len));
    }
    Ok(())
}

fn check_props(p: &PublishProps) -> Result<(), EncodeError> {
    for (k, v) in &p.user_properties {
        check_str(k)?;
        check_str(v)?;
    }
    if let Some(s) = &p.response_topic {
        check_str(s)?;
    }
    if let Some(s) = &p.content_type {
        check_str(s)?;
    }
    if let Some(d) = &p.correlation_data {
        if d.len() > usize::from(u16::MAX) {
            return Err(EncodeError::StringTooLong(d.len()));
        }
    }
    Ok(())
}

/// An upper bound of a PUBLISH's encoded size (never below it), computed
/// without encoding: a client's Maximum Packet Size is checked against it
/// first, and the packet is encoded for an exact answer only near the limit.
pub fn publish_size_bound(p: &Publish, v5: bool) -> usize {
    let mut props = 0;
    if v5 {
        // Property length (at most 4 bytes), then every property present,
        // each with its identifier, the fixed-size ones as if all were set.
        props = 4 + 2 + 5 + 3;
        if let Some(pp) = &p.props {
            props += pp.response_topic.as_ref().map_or(0, |s| 3 + s.len())
                + pp.correlation_data.as_ref().map_or(0, |d| 3 + d.len())
                + pp.user_properties.iter().map(|(k, v)| 5 + k.len() + v.len()).sum::<usize>()
                + pp.subscription_identifiers.len() * 5
                + pp.content_type.as_ref().map_or(0, |s| 3 + s.len());
        }
    }
    // Fixed header (type, remaining length of at most 4 bytes), topic with
    // its length, packet identifier, properties, payload.
    1 + 4 + 2 + p.topic.len() + 2 + props + p.payload.len()
}

/// A 3.1/3.1.1 PUBLISH written from the shared message.
fn encode_forward(f: &Forward, buf: &mut BytesMut) -> Result<(), EncodeError> {
    let topic = f.msg.topic.as_bytes();
    check_str_len(topic.len())?;
    let qos = f.qos as u8;
    let len = 2 + topic.len() + if qos > 0 { 2 } else { 0 } + f.msg.payload.len();
    if len > 268_435_455 {
        return Err(EncodeError::PacketTooLong);
    }
    buf.reserve(5 + len);
    buf.put_u8(0x30 | u8::from(f.dup) << 3 | qos << 1 | u8::from(f.retain));
    write_varint(buf, len);
    buf.put_u16(topic.len() as u16);
    buf.put_slice(topic);
    if qos > 0 {
        buf.put_u16(f.pkid);
    }
    buf.put_slice(&f.msg.payload);
    Ok(())
}

/// Like [`encode`], taking the packet by value: a PUBLISH's topic is moved
/// into the codec instead of copied (one allocation less per delivery).
pub fn encode_owned(packet: Packet, version: Version, buf: &mut BytesMut) -> Result<(), EncodeError> {
    match packet {
        Packet::Publish(p) => {
            let start = buf.len();
            let result = encode_publish(p, version.is_v5(), buf);
            if result.is_err() {
                buf.truncate(start);
            }
            result
        }
        other => encode(&other, version, buf),
    }
}

/// Appends `packet`, encoded for `version`, to `buf`. On error nothing is
/// appended.
pub fn encode(packet: &Packet, version: Version, buf: &mut BytesMut) -> Result<(), EncodeError> {
    let start = buf.len();
    let result = encode_inner(packet, version, buf);
    if result.is_err() {
        buf.truncate(start);
    }
    result
}

fn encode_inner(packet: &Packet, version: Version, buf: &mut BytesMut) -> Result<(), EncodeError> {
    let v5 = version.is_v5();
    match packet {
        Packet::ConnAck(c) if v5 => encode_connack_v5(c, buf),
        Packet::ConnAck(c) => {
            let code = match c.code.v311_code() {
                0x00 => v4::ConnectReturnCode::Success,
                0x01 => v4::ConnectReturnCode::RefusedProtocolVersion,
                0x02 => v4::ConnectReturnCode::BadClientId,
                0x04 => v4::ConnectReturnCode::BadUserNamePassword,
                0x05 => v4::ConnectReturnCode::NotAuthorized,
                _ => v4::ConnectReturnCode::ServiceUnavailable,
            };
            // MQTT 3.1 has no session present flag.
            let present = c.session_present && version == Version::V311;
            v4::ConnAck::new(code, present).write(buf).map_err(EncodeError::Codec)?;
            Ok(())
        }
        Packet::Publish(p) => encode_publish(p.clone(), v5, buf),
        Packet::Forward(f) if !v5 => encode_forward(f, buf),
        Packet::Forward(f) => encode_publish(f.to_publish(), v5, buf),
        Packet::PubAck(a) => encode_ack(0x40, a, v5, buf),
        Packet::PubRec(a) => encode_ack(0x50, a, v5, buf),
        Packet::PubRel(a) => encode_ack(0x62, a, v5, buf),
        Packet::PubComp(a) => encode_ack(0x70, a, v5, buf),
        Packet::SubAck(s) => {
            let props = reason_string_prop(s.reason_string.filter(|_| v5));
            buf.put_u8(0x90);
            let plen = if v5 { varint_len(props.len()) + props.len() } else { 0 };
            write_varint(buf, 2 + plen + s.codes.len());
            buf.put_u16(s.pkid);
            if v5 {
                write_varint(buf, props.len());
                buf.put_slice(&props);
            }
            buf.extend(s.codes.iter().map(|c| if v5 { c.code() } else { c.v311_code() }));
            Ok(())
        }
        Packet::UnsubAck(u) => {
            buf.put_u8(0xB0);
            if v5 {
                let props = reason_string_prop(u.reason_string);
                write_varint(buf, 2 + varint_len(props.len()) + props.len() + u.codes.len());
                buf.put_u16(u.pkid);
                write_varint(buf, props.len());
                buf.put_slice(&props);
                buf.extend(u.codes.iter().map(|c| c.code()));
            } else {
                buf.put_u8(2);
                buf.put_u16(u.pkid);
            }
            Ok(())
        }
        Packet::PingResp => {
            buf.put_slice(&[0xD0, 0]);
            Ok(())
        }
        // Only MQTT 5 servers send DISCONNECT and AUTH.
        Packet::Disconnect(d) if v5 => {
            let mut props = BytesMut::new();
            if let Some(s) = &d.reason_string {
                check_str(s)?;
                props.put_u8(31);
                props.put_u16(s.len() as u16);
                props.put_slice(s.as_bytes());
            }
            reason_and_props(0xE0, d.reason.code(), &props, buf);
            Ok(())
        }
        Packet::Auth(a) if v5 => {
            let mut props = BytesMut::new();
            if let Some(m) = &a.method {
                check_str(m)?;
                props.put_u8(21);
                props.put_u16(m.len() as u16);
                props.put_slice(m.as_bytes());
            }
            if let Some(d) = &a.data {
                check_str_len(d.len())?;
                props.put_u8(22);
                props.put_u16(d.len() as u16);
                props.put_slice(d);
            }
            reason_and_props(0xF0, a.reason.code(), &props, buf);
            Ok(())
        }
        _ => Err(EncodeError::NotServerPacket),
    }
}

pub(super) fn reason_and_props(byte1: u8, reason: u8, props: &[u8], buf: &mut BytesMut) {
    buf.put_u8(byte1);
    if props.is_empty() {
        buf.put_slice(&[1, reason]);
        return;
    }
    let mut plen = BytesMut::new();
    write_varint(&mut plen, props.len());
    write_varint(buf, 1 + plen.len() + props.len());
    buf.put_u8(reason);
    buf.put_slice(&plen);
    buf.put_slice(props);
}

pub(super) fn encode_ack<R: Reason>(byte1: u8, a: &Ack<R>, v5: bool, buf: &mut BytesMut) -> Result<(), EncodeError> {
    buf.put_u8(byte1);
    if v5 && a.reason_string.is_some() {
        let props = reason_string_prop(a.reason_string);
        write_varint(buf, 3 + varint_len(props.len()) + props.len());
        buf.put_u16(a.pkid);
        buf.put_u8(a.reason.code());
        write_varint(buf, props.len());
        buf.put_slice(&props);
    } else if v5 && a.reason != R::SUCCESS {
        buf.put_u8(3);
        buf.put_u16(a.pkid);
        buf.put_u8(a.reason.code());
    } else {
        buf.put_u8(2);
        buf.put_u16(a.pkid);
    }
    Ok(())
}

/// The Reason String property (0x1F), or nothing. Our texts are short
/// constants, far below the 65,535-byte string limit.
fn reason_string_prop(text: Option<&str>) -> Vec<u8> {
    let Some(t) = text else { return Vec::new() };
    let mut out = Vec::with_capacity(3 + t.len());
    out.push(31);
    out.extend_from_slice(&(t.len() as u16).to_be_bytes());
    out.extend_from_slice(t.as_bytes());
    out
}

fn varint_len(n: usize) -> usize {
    match n {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

fn mqtt_qos(q: QoS) -> mqttbytes::QoS {
    match q {
        QoS::AtMostOnce => mqttbytes::QoS::AtMostOnce,
        QoS::AtLeastOnce => mqttbytes::QoS::AtLeastOnce,
        QoS::ExactlyOnce => mqttbytes::QoS::ExactlyOnce,
    }
}

pub(super) fn encode_publish(p: Publish, v5: bool, buf: &mut BytesMut) -> Result<(), EncodeError> {
    check_str(&p.topic)?;
    if v5 {
        let properties = match p.props {
            Some(pp) => {
                check_props(&pp)?;
                let pp = *pp;
                Some(v5::PublishProperties {
                    payload_format_indicator: pp.payload_format_indicator,
                    message_expiry_interval: pp.message_expiry_interval,
                    topic_alias: pp.topic_alias,
                    response_topic: pp.response_topic,
                    correlation_data: pp.correlation_data,
                    user_properties: pp.user_properties,
                    subscription_identifiers: pp.subscription_identifiers.iter().map(|i| *i as usize).collect(),
                    content_type: pp.content_type,
                })
            }
            None => None,
        };
        let out = v5::Publish {
            dup: p.dup,
            qos: mqtt_qos(p.qos),
            retain: p.retain,
            topic: p.topic,
            pkid: p.pkid,
            properties,
            payload: p.payload,
        };
        out.write(buf).map_err(EncodeError::Codec)?;
    } else {
        let out = v4::Publish {
            dup: p.dup,
            qos: mqtt_qos(p.qos),
            retain: p.retain,
            topic: p.topic,
            pkid: p.pkid,
            payload: p.payload,
        };
        out.write(buf).map_err(EncodeError::Codec)?;
    }
    Ok(())
}

fn flag(b: Option<bool>) -> Option<u8> {
    b.map(u8::from)
}

fn encode_connack_v5(c: &ConnAck, buf: &mut BytesMut) -> Result<(), EncodeError> {
    use v5::ConnectReturnCode as C;
    use ConnectReason as R;
    let code = match c.code {
        R::Success => C::Success,
        R::UnspecifiedError => C::UnspecifiedError,
        R::MalformedPacket => C::MalformedPacket,
        R::ProtocolError => C::ProtocolError,
        R::ImplementationSpecificError => C::ImplementationSpecificError,
        R::UnsupportedProtocolVersion => C::UnsupportedProtocolVersion,
        R::ClientIdentifierNotValid => C::ClientIdentifierNotValid,
        R::BadUserNameOrPassword => C::BadUserNamePassword,
        R::NotAuthorized => C::NotAuthorized,
        R::ServerUnavailable => C::ServerUnavailable,
        R::ServerBusy => C::ServerBusy,
        R::Banned => C::Banned,
        R::BadAuthenticationMethod => C::BadAuthenticationMethod,
        R::TopicNameInvalid => C::TopicNameInvalid,
        R::PacketTooLarge => C::PacketTooLarge,
        R::QuotaExceeded => C::QuotaExceeded,
        R::PayloadFormatInvalid => C::PayloadFormatInvalid,
        R::RetainNotSupported => C::RetainNotSupported,
        R::QosNotSupported => C::QoSNotSupported,
        R::UseAnotherServer => C::UseAnotherServer,
        R::ServerMoved => C::ServerMoved,
        R::ConnectionRateExceeded => C::ConnectionRateExceeded,
    };
    let p = &c.props;
    if let Some(s) = &p.assigned_client_identifier {
        check_str(s)?;
    }
    if let Some(s) = &p.reason_string {
        check_str(s)?;
    }
    if let Some(s) = &p.response_information {
        check_str(s)?;
    }
    if let Some(s) = &p.authentication_method {
        check_str(s)?;
    }
    if let Some(d) = &p.authentication_data {
        check_str_len(d.len())?;
    }
    let properties = v5::ConnAckProperties {
        session_expiry_interval: p.session_expiry_interval,
        receive_max: p.receive_maximum,
        max_qos: p.maximum_qos,
        retain_available: flag(p.retain_available),
        max_packet_size: p.maximum_packet_size,
        assigned_client_identifier: p.assigned_client_identifier.clone(),
        topic_alias_max: p.topic_alias_maximum,
        reason_string: p.reason_string.clone(),
        user_properties: Vec::new(),
        wildcard_subscription_available: flag(p.wildcard_subscription_available),
        subscription_identifiers_available: flag(p.subscription_identifiers_available),
        shared_subscription_available: flag(p.shared_subscription_available),
        server_keep_alive: p.server_keep_alive,
        response_information: p.response_information.clone(),
        server_reference: None,
        authentication_method: p.authentication_method.clone(),
        authentication_data: p.authentication_data.clone(),
    };
    let out = v5::ConnAck { session_present: c.session_present, code, properties: Some(properties) };
    out.write(buf).map_err(EncodeError::Codec)?;
    Ok(())
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
