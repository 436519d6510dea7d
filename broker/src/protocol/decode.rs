//! Framing and decoding of the packets a server receives.
//!
//! Order of checks for each frame: remaining-length encoding, the size limit
//! (on the whole packet, from the fixed header alone, before the body is
//! buffered), the fixed-header flags, which packet types are allowed in the
//! current state, MQTT 5 property sections; only then is `mqttbytes` asked
//! to read CONNECT, PUBLISH, SUBSCRIBE and 3.1.1 UNSUBSCRIBE bodies.

use bytes::{Buf, Bytes, BytesMut};
use mqttbytes::{v4, v5, FixedHeader};

use super::props::{self, read_varint, Section};
use super::topic::{valid_name, valid_string};
use super::*;

/// What one call to [`decode`] produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A whole packet, and its size on the wire.
    Packet(Packet, usize),
    /// More bytes are needed; `frame_len` is the whole frame's size if the
    /// fixed header is already known (so the caller can reserve it).
    Incomplete { frame_len: Option<usize> },
}

/// Decodes the next packet from `buf`, consuming its bytes only when a whole
/// packet is there. `version` is `None` before CONNECT. `max_packet_size`
/// bounds the whole packet, fixed header included.
pub fn decode(buf: &mut BytesMut, version: Option<Version>, max_packet_size: usize) -> Result<Decoded, DecodeError> {
    if buf.len() < 2 {
        return Ok(Decoded::Incomplete { frame_len: None });
    }
    let Some((remaining, len_len)) = read_varint(&buf[1..])? else {
        return Ok(Decoded::Incomplete { frame_len: None });
    };
    let total = 1 + len_len + remaining as usize;
    if total > max_packet_size {
        return Err(DecodeError::TooLarge { size: total, max: max_packet_size });
    }
    if buf.len() < total {
        return Ok(Decoded::Incomplete { frame_len: Some(total) });
    }
    // A PUBLISH (its payload) or CONNECT (will payload, password) keeps
    // parts of its frame for as long as the message lives, so it gets its
    // own copy instead of sharing the read buffer: a retained or queued
    // message then pins its own bytes, not a whole read chunk (up to
    // 64 KiB), and the read buffer is reused in place. Other packets are
    // parsed into owned values at once.
    let frame = if matches!(buf[0] >> 4, 1 | 3) {
        let frame = Bytes::copy_from_slice(&buf[..total]);
        buf.advance(total);
        frame
    } else {
        buf.split_to(total).freeze()
    };
    let header = FixedHeader::new(frame[0], len_len, remaining as usize);
    let packet = decode_frame(frame, header, 1 + len_len, version)?;
    Ok(Decoded::Packet(packet, total))
}

fn malformed<T>(why: &'static str) -> Result<T, DecodeError> {
    Err(DecodeError::Malformed(why))
}

fn decode_frame(
    frame: Bytes,
    header: FixedHeader,
    hlen: usize,
    version: Option<Version>,
) -> Result<Packet, DecodeError> {
    let ptype = frame[0] >> 4;
    let flags = frame[0] & 0x0F;
    let Some(version) = version else {
        if ptype != 1 {
            // [MQTT-3.1.0-1] the first packet from the client must be CONNECT.
            return Err(DecodeError::Protocol("first packet is not CONNECT"));
        }
        if flags != 0 {
            return malformed("reserved flags set in CONNECT");
        }
        return decode_connect(frame, hlen).map(|c| Packet::Connect(Box::new(c)));
    };
    // [MQTT-2.2.2-2] fixed flags; [MQTT-3.6.1-1], [MQTT-3.8.1-1], [MQTT-3.10.1-1].
    let expected_flags = match ptype {
        3 => flags,
        // MQTT 3.1 (section 3.6 of 3.1) sets DUP on a resent PUBREL,
        // SUBSCRIBE or UNSUBSCRIBE, whose QoS is 1.
        6 | 8 | 10 if version == Version::V31 && flags == 0b1010 => flags,
        6 | 8 | 10 => 0b0010,
        _ => 0,
    };
    if flags != expected_flags {
        return malformed("invalid fixed header flags");
    }
    let body = &frame[hlen..];
    let v5 = version.is_v5();
    match ptype {
        // [MQTT-3.1.0-2] a second CONNECT is a protocol violation.
        1 => Err(DecodeError::Protocol("second CONNECT")),
        3 => decode_publish(&frame, header, hlen, v5).map(Packet::Publish),
        4 => decode_ack(body, v5).map(Packet::PubAck),
        5 => decode_ack(body, v5).map(Packet::PubRec),
        6 => decode_ack(body, v5).map(Packet::PubRel),
        7 => decode_ack(body, v5).map(Packet::PubComp),
        8 => decode_subscribe(&frame, header, hlen, v5).map(Packet::Subscribe),
        10 => decode_unsubscribe(&frame, header, hlen, v5).map(Packet::Unsubscribe),
        12 if body.is_empty() => Ok(Packet::PingReq),
        12 => malformed("PINGREQ with a body"),
        14 if !v5 && body.is_empty() => Ok(Packet::Disconnect(Disconnect::default())),
        14 if !v5 => malformed("DISCONNECT with a body"),
        14 => decode_disconnect(body),
        15 if v5 => decode_auth(body),
        2 | 9 | 11 | 13 => Err(DecodeError::Protocol("packet type sent only by servers")),
        _ => malformed("reserved packet type"),
    }
}

fn read_u16(buf: &[u8], at: usize) -> Result<u16, DecodeError> {
    match buf.get(at..at + 2) {
        Some(b) => Ok(u16::from_be_bytes([b[0], b[1]])),
        None => malformed("packet ends early"),
    }
}

/// Skips a length-prefixed string or binary field at `at`; returns the offset after it.
fn skip_field(buf: &[u8], at: usize) -> Result<usize, DecodeError> {
    let end = at + 2 + usize::from(read_u16(buf, at)?);
    if end > buf.len() {
        return malformed("string runs past the packet");
    }
    Ok(end)
}

fn read_str(buf: &[u8], at: usize) -> Result<(String, usize), DecodeError> {
    let end = skip_field(buf, at)?;
    match std::str::from_utf8(&buf[at + 2..end]) {
        Ok(s) if valid_string(s.as_bytes()) => Ok((s.to_owned(), end)),
        _ => malformed("invalid UTF-8 string"),
    }
}

fn map_err(e: mqttbytes::Error) -> DecodeError {
    use mqttbytes::Error as E;
    match e {
        E::PacketIdZero => DecodeError::Protocol("packet identifier 0"),
        E::TopicNotUtf8 => DecodeError::Malformed("invalid UTF-8 string"),
        E::InvalidQoS(_) => DecodeError::Malformed("invalid QoS"),
        _ => DecodeError::Malformed("invalid packet body"),
    }
}

fn decode_connect(frame: Bytes, hlen: usize) -> Result<Connect, DecodeError> {
    let body = &frame[hlen..];
    let name_end = skip_field(body, 0)?;
    let name = &body[2..name_end];
    let level = *body.get(name_end).ok_or(DecodeError::Malformed("CONNECT ends early"))?;
    // Mosquitto's bridges (`try_private`) set bit 0x80 of a 3.1/3.1.1 level.
    let bridge = matches!((name, level), (b"MQIsdp", 0x83) | (b"MQTT", 0x84));
    let version = match (name, level & if bridge { 0x7F } else { 0xFF }) {
        (b"MQIsdp", 3) => Version::V31,
        (b"MQTT", 4) => Version::V311,
        (b"MQTT", 5) => Version::V5,
        (b"MQTT" | b"MQIsdp", other) => return Err(DecodeError::UnsupportedVersion(other)),
        // [MQTT-3.1.2-1] not MQTT: close without CONNACK.
        _ => return Err(DecodeError::Protocol("unknown protocol name")),
    };
    let flags = *body.get(name_end + 1).ok_or(DecodeError::Malformed("CONNECT ends early"))?;
    if flags & 0x01 != 0 {
        // [MQTT-3.1.2-3] the reserved flag must be 0.
        return malformed("reserved CONNECT flag set");
    }
    let will = flags & 0x04 != 0;
    let will_qos = (flags >> 3) & 0x03;
    if will_qos == 3 {
        // [MQTT-3.1.2-14]
        return malformed("will QoS 3");
    }
    if !will && (will_qos != 0 || flags & 0x20 != 0) {
        // [MQTT-3.1.2-11], [MQTT-3.1.2-13], [MQTT-3.1.2-15]
        return malformed("will QoS or retain set without a will");
    }
    if version != Version::V5 && flags & 0x40 != 0 && flags & 0x80 == 0 {
        // [MQTT-3.1.2-22] password without user name (3.1.1).
        return malformed("password flag without user name flag");
    }
    let after_keepalive = name_end + 4;
    check_connect_layout(body, after_keepalive, flags, version.is_v5())?;
    let connect = match version {
        Version::V5 => {
            let props_len = props::validate(body.get(after_keepalive..).unwrap_or(&[]), Section::Connect)?;
            let id_at = after_keepalive + props_len;
            let after_id = skip_field(body, id_at)?;
            if will {
                props::validate(body.get(after_id..).unwrap_or(&[]), Section::Will)?;
            }
            let header = FixedHeader::new(frame[0], hlen - 1, body.len());
            from_v5_connect(v5::Connect::read(header, frame).map_err(map_err)?)?
        }
        Version::V311 => {
            let header = FixedHeader::new(frame[0], hlen - 1, body.len());
            let frame = if bridge {
                // mqttbytes knows level 4 only.
                let mut plain = BytesMut::from(&frame[..]);
                plain[hlen + name_end] = 4;
                plain.freeze()
            } else {
                frame
            };
            from_v4_connect(v4::Connect::read(header, frame).map_err(map_err)?, version)?
        }
        Version::V31 => {
            // mqttbytes knows only "MQTT"/4: present 3.1's header in that form.
            let rest = &body[name_end + 1..];
            let mut rewritten = BytesMut::with_capacity(frame.len());
            rewritten.extend_from_slice(&[frame[0]]);
            let remaining = 7 + rest.len();
            encode::write_varint(&mut rewritten, remaining);
            let new_hlen = rewritten.len();
            rewritten.extend_from_slice(&[0, 4, b'M', b'Q', b'T', b'T', 4]);
            rewritten.extend_from_slice(rest);
            let header = FixedHeader::new(rewritten[0], new_hlen - 1, remaining);
            from_v4_connect(v4::Connect::read(header, rewritten.freeze()).map_err(map_err)?, version)?
        }
    };
    let strings =
        [Some(connect.client_id.as_str()), connect.username.as_deref(), connect.will.as_ref().map(|w| &*w.topic)];
    if strings.into_iter().flatten().any(|s| !valid_string(s.as_bytes())) {
        // [MQTT-1.5.3-2], [MQTT-1.5.4-2]: U+0000 in the client identifier,
        // user name or will topic.
        return malformed("string contains U+0000");
    }
    if let Some(w) = &connect.will {
        if !valid_name(&w.topic) {
            // [MQTT-3.1.3-10] the will topic must be a valid topic name.
            return Err(DecodeError::TopicName);
        }
    }
    Ok(Connect { bridge, ..connect })
}

/// Walks CONNECT's payload by its flags: exactly the fields they announce,
/// nothing after them. A user name or password the flags do not announce
/// is a malformed packet [MQTT-3.1.4-1] (`mqttbytes` ignores such bytes).
fn check_connect_layout(body: &[u8], after_keepalive: usize, flags: u8, v5: bool) -> Result<(), DecodeError> {
    let mut at = after_keepalive;
    if v5 {
        at += props::validate(body.get(at..).unwrap_or(&[]), Section::Connect)?;
    }
    at = skip_field(body, at)?; // client identifier
    if flags & 0x04 != 0 {
        if v5 {
            at += props::validate(body.get(at..).unwrap_or(&[]), Section::Will)?;
        }
        at = skip_field(body, at)?; // will topic
        at = skip_field(body, at)?; // will payload
    }
    for flag in [0x80, 0x40] {
        // user name, password
        if flags & flag != 0 {
            at = skip_field(body, at)?;
        }
    }
    if at != body.len() {
        return malformed("bytes after the fields CONNECT's flags announce");
    }
    Ok(())
}

fn from_v4_connect(c: v4::Connect, version: Version) -> Result<Connect, DecodeError> {
    let will = c.last_will.map(|w| Will {
        topic: w.topic,
        payload: w.message,
        qos: qos(w.qos),
        retain: w.retain,
        delay_interval: 0,
        props: None,
    });
    let (username, password) = match c.login {
        Some(l) => (Some(l.username), (!l.password.is_empty()).then(|| Bytes::from(l.password))),
        None => (None, None),
    };
    Ok(Connect {
        version,
        client_id: c.client_id,
        clean_start: c.clean_session,
        keep_alive: c.keep_alive,
        will,
        username: username.filter(|u| !u.is_empty()),
        password,
        session_expiry_interval: None,
        receive_maximum: None,
        maximum_packet_size: None,
        topic_alias_maximum: None,
        request_response_information: false,
        request_problem_information: true,
        authentication_method: None,
        authentication_data: None,
        user_properties: Vec::new(),
        bridge: false,
    })
}

fn from_v5_connect(c: v5::Connect) -> Result<Connect, DecodeError> {
    let will = c.last_will.map(|w| {
        let (delay, props) = match w.properties {
            Some(p) => (
                p.delay_interval.unwrap_or(0),
                Some(Box::new(PublishProps {
                    payload_format_indicator: p.payload_format_indicator,
                    message_expiry_interval: p.message_expiry_interval,
                    topic_alias: None,
                    response_topic: p.response_topic,
                    correlation_data: p.correlation_data,
                    user_properties: p.user_properties,
                    subscription_identifiers: Vec::new(),
                    content_type: p.content_type,
                })),
            ),
            None => (0, None),
        };
        Will { topic: w.topic, payload: w.message, qos: qos(w.qos), retain: w.retain, delay_interval: delay, props }
    });
    let p = c.properties.unwrap_or(v5::ConnectProperties {
        session_expiry_interval: None,
        receive_maximum: None,
        max_packet_size: None,
        topic_alias_max: None,
        request_response_info: None,
        request_problem_info: None,
        user_properties: Vec::new(),
        authentication_method: None,
        authentication_data: None,
    });
    let (username, password) = match c.login {
        Some(l) => (Some(l.username), (!l.password.is_empty()).then(|| Bytes::from(l.password))),
        None => (None, None),
    };
    Ok(Connect {
        version: Version::V5,
        client_id: c.client_id,
        clean_start: c.clean_session,
        keep_alive: c.keep_alive,
        will,
        username: username.filter(|u| !u.is_empty()),
        password,
        session_expiry_interval: p.session_expiry_interval,
        receive_maximum: p.receive_maximum,
        maximum_packet_size: p.max_packet_size,
        topic_alias_maximum: p.topic_alias_max,
        request_response_information: p.request_response_info == Some(1),
        request_problem_information: p.request_problem_info != Some(0),
        authentication_method: p.authentication_method,
        authentication_data: p.authentication_data,
        user_properties: p.user_properties,
        bridge: false,
    })
}

fn qos(q: mqttbytes::QoS) -> QoS {
    match q {
        mqttbytes::QoS::AtMostOnce => QoS::AtMostOnce,
        mqttbytes::QoS::AtLeastOnce => QoS::AtLeastOnce,
        mqttbytes::QoS::ExactlyOnce => QoS::ExactlyOnce,
    }
}

pub(super) fn decode_publish(
    frame: &Bytes,
    header: FixedHeader,
    hlen: usize,
    v5: bool,
) -> Result<Publish, DecodeError> {
    let flags = frame[0] & 0x0F;
    let q = (flags >> 1) & 0x03;
    if q == 3 {
        // [MQTT-3.3.1-4]
        return malformed("PUBLISH with QoS 3");
    }
    if q == 0 && flags & 0x08 != 0 {
        // [MQTT-3.3.1-2] DUP must be 0 at QoS 0.
        return malformed("DUP set on a QoS 0 PUBLISH");
    }
    let body = &frame[hlen..];
    let topic_end = skip_field(body, 0)?;
    let props_at = topic_end + if q > 0 { 2 } else { 0 };
    if props_at > body.len() {
        return malformed("PUBLISH ends early");
    }
    let publish = if v5 {
        props::validate(&body[props_at..], Section::Publish)?;
        let p = v5::Publish::read(header, frame.clone()).map_err(map_err)?;
        let props = match p.properties {
            Some(pp) if !pp.subscription_identifiers.is_empty() => {
                // [MQTT-3.3.4-6] a client must not send a Subscription Identifier.
                return Err(DecodeError::Protocol("subscription identifier in a client PUBLISH"));
            }
            Some(pp) => Some(Box::new(PublishProps {
                payload_format_indicator: pp.payload_format_indicator,
                message_expiry_interval: pp.message_expiry_interval,
                topic_alias: pp.topic_alias,
                response_topic: pp.response_topic,
                correlation_data: pp.correlation_data,
                user_properties: pp.user_properties,
                subscription_identifiers: Vec::new(),
                content_type: pp.content_type,
            })),
            None => None,
        };
        Publish {
            dup: p.dup,
            qos: qos(p.qos),
            retain: p.retain,
            topic: p.topic,
            pkid: p.pkid,
            payload: p.payload,
            props,
        }
    } else {
        let p = v4::Publish::read(header, frame.clone()).map_err(map_err)?;
        Publish {
            dup: p.dup,
            qos: qos(p.qos),
            retain: p.retain,
            topic: p.topic,
            pkid: p.pkid,
            payload: p.payload,
            props: None,
        }
    };
    if !valid_string(publish.topic.as_bytes()) {
        // [MQTT-1.5.4-2], [MQTT-4.7.3-2]: malformed (0x81), not a topic
        // the server refuses (0x90).
        return malformed("topic name contains U+0000");
    }
    let aliased = publish.topic.is_empty() && publish.props.as_ref().is_some_and(|p| p.topic_alias.is_some());
    if !aliased && !valid_name(&publish.topic) {
        // [MQTT-3.3.2-2] no wildcards in a topic name; [MQTT-4.7.3-1] not empty.
        return Err(DecodeError::TopicName);
    }
    Ok(publish)
}

/// An acknowledgement; a reason byte not in the packet's table is taken
/// leniently ([`Reason::from_peer`]).
pub(super) fn decode_ack<R: Reason>(body: &[u8], v5: bool) -> Result<Ack<R>, DecodeError> {
    let pkid = read_u16(body, 0)?;
    if pkid == 0 {
        return Err(DecodeError::Protocol("packet identifier 0"));
    }
    if !v5 {
        if body.len() != 2 {
            return malformed("acknowledgement of the wrong length");
        }
        return Ok(Ack::ok(pkid));
    }
    let reason = R::from_peer(body.get(2).copied().unwrap_or(0));
    if body.len() > 3 && 3 + props::validate(&body[3..], Section::Ack)? != body.len() {
        return malformed("bytes after the properties");
    }
    Ok(Ack::new(pkid, reason))
}

/// Checks the subscription options bytes that `mqttbytes` does not check.
fn check_subscribe_payload(body: &[u8], mut at: usize, v5: bool) -> Result<(), DecodeError> {
    if at >= body.len() {
        // [MQTT-3.8.3-3] at least one topic filter.
        return Err(DecodeError::Protocol("SUBSCRIBE without topic filters"));
    }
    while at < body.len() {
        let end = skip_field(body, at)?;
        if !valid_string(&body[at + 2..end]) {
            // [MQTT-4.7.3-2], [MQTT-1.5.3-2]: U+0000 in a filter closes the connection.
            return malformed("topic filter is not valid UTF-8 or contains U+0000");
        }
        at = end;
        let options = *body.get(at).ok_or(DecodeError::Malformed("SUBSCRIBE ends early"))?;
        // [MQTT-3.8.3-4] (3.1.1: upper six bits), [MQTT-3.8.3-5] (5.0: bits 6 and 7).
        let reserved = if v5 { 0xC0 } else { 0xFC };
        if options & reserved != 0 || options & 0x03 == 3 || (v5 && (options >> 4) & 0x03 == 3) {
            return malformed("invalid subscription options");
        }
        at += 1;
    }
    Ok(())
}

fn decode_subscribe(frame: &Bytes, header: FixedHeader, hlen: usize, v5: bool) -> Result<Subscribe, DecodeError> {
    let body = &frame[hlen..];
    if read_u16(body, 0)? == 0 {
        return Err(DecodeError::Protocol("packet identifier 0"));
    }
    if v5 {
        let plen = props::validate(body.get(2..).unwrap_or(&[]), Section::Subscribe)?;
        check_subscribe_payload(body, 2 + plen, true)?;
        let s = v5::Subscribe::read(header, frame.clone()).map_err(map_err)?;
        let (sub_id, user) = match s.properties {
            Some(p) => (p.id.map(|i| i as u32), p.user_properties),
            None => (None, Vec::new()),
        };
        let filters = s
            .filters
            .into_iter()
            .map(|f| SubscribeFilter {
                filter: f.path,
                options: SubOptions {
                    qos: qos(f.qos),
                    no_local: f.nolocal,
                    retain_as_published: f.preserve_retain,
                    retain_handling: match f.retain_forward_rule {
                        v5::RetainForwardRule::OnEverySubscribe => RetainHandling::OnSubscribe,
                        v5::RetainForwardRule::OnNewSubscribe => RetainHandling::OnNewSubscribe,
                        v5::RetainForwardRule::Never => RetainHandling::Never,
                    },
                },
            })
            .collect();
        Ok(Subscribe { pkid: s.pkid, filters, subscription_identifier: sub_id, user_properties: user })
    } else {
        check_subscribe_payload(body, 2, false)?;
        let s = v4::Subscribe::read(header, frame.clone()).map_err(map_err)?;
        let filters = s
            .filters
            .into_iter()
            .map(|f| SubscribeFilter {
                filter: f.path,
                options: SubOptions { qos: qos(f.qos), ..SubOptions::default() },
            })
            .collect();
        Ok(Subscribe { pkid: s.pkid, filters, subscription_identifier: None, user_properties: Vec::new() })
    }
}

fn decode_unsubscribe(frame: &Bytes, header: FixedHeader, hlen: usize, v5: bool) -> Result<Unsubscribe, DecodeError> {
    let body = &frame[hlen..];
    let pkid = read_u16(body, 0)?;
    if pkid == 0 {
        return Err(DecodeError::Protocol("packet identifier 0"));
    }
    let (mut at, user_properties) = if v5 {
        // Decoded here: mqttbytes' v5 UNSUBSCRIBE prints `dbg!` output.
        let plen = props::validate(&body[2..], Section::Unsubscribe)?;
        let users =
            props::entries(&body[2..2 + plen]).into_iter().filter_map(|(_, v)| props::user_property(v)).collect();
        (2 + plen, users)
    } else {
        (2, Vec::new())
    };
    if at >= body.len() {
        // [MQTT-3.10.3-2] at least one topic filter.
        return Err(DecodeError::Protocol("UNSUBSCRIBE without topic filters"));
    }
    let filters = if v5 {
        let mut filters = Vec::new();
        while at < body.len() {
            let (f, next) = read_str(body, at)?;
            filters.push(f);
            at = next;
        }
        filters
    } else {
        let topics = v4::Unsubscribe::read(header, frame.clone()).map_err(map_err)?.topics;
        if topics.iter().any(|t| !valid_string(t.as_bytes())) {
            // [MQTT-4.7.3-2], [MQTT-1.5.3-2]
            return malformed("topic filter contains U+0000");
        }
        topics
    };
    Ok(Unsubscribe { pkid, filters, user_properties })
}

/// Reason code and property section of DISCONNECT and AUTH (MQTT 5).
fn reason_and_props(body: &[u8], section: Section) -> Result<(u8, Vec<props::Entry<'_>>), DecodeError> {
    let Some(&reason) = body.first() else {
        return Ok((0, Vec::new()));
    };
    if body.len() == 1 {
        return Ok((reason, Vec::new()));
    }
    let plen = props::validate(&body[1..], section)?;
    if 1 + plen != body.len() {
        return malformed("bytes after the properties");
    }
    Ok((reason, props::entries(&body[1..])))
}

pub(super) fn as_u32(v: &[u8]) -> u32 {
    v.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b))
}

pub(super) fn decode_disconnect(body: &[u8]) -> Result<Packet, DecodeError> {
    let (reason, entries) = reason_and_props(body, Section::Disconnect)?;
    // A byte not in the table is taken leniently (`Reason::from_peer`).
    let mut d = Disconnect { reason: DisconnectReason::from_peer(reason), ..Disconnect::default() };
    for (id, v) in entries {
        match id {
            17 => d.session_expiry_interval = Some(as_u32(v)),
            31 => d.reason_string = Some(String::from_utf8_lossy(v).into_owned()),
            _ => {}
        }
    }
    Ok(Packet::Disconnect(d))
}

fn decode_auth(body: &[u8]) -> Result<Packet, DecodeError> {
    let (reason, entries) = reason_and_props(body, Section::Auth)?;
    let Ok(reason) = AuthReason::try_from(reason) else {
        return malformed("invalid AUTH reason code");
    };
    let mut a = Auth { reason, ..Auth::default() };
    for (id, v) in entries {
        match id {
            21 => a.method = Some(String::from_utf8_lossy(v).into_owned()),
            22 => a.data = Some(Bytes::copy_from_slice(v)),
            _ => {}
        }
    }
    Ok(Packet::Auth(a))
}
