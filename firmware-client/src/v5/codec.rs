//! MQTT 5 wire codec: encoders for what a client sends (CONNECT, PUBLISH,
//! SUBSCRIBE, UNSUBSCRIBE; the acks, PINGREQ and DISCONNECT have the same
//! short form as in 3.1.1 and use [`crate::codec`]), and a zero-copy decoder
//! for what a broker sends (CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL,
//! PUBCOMP, SUBACK, UNSUBACK, PINGRESP, DISCONNECT).
//!
//! In a `v5` build the client also speaks MQTT 3.1.1 through these
//! functions (their `_as` forms take the protocol as a flag, leaving out
//! property sections for 3.1.1), so such a firmware links one codec, not
//! two.
//!
//! Properties are checked when decoded (known identifier, value of the right
//! type, UTF-8 strings) and kept as raw bytes in [`Properties`]; iterate them
//! with [`Properties::iter`]. Decoding never panics.

use crate::codec::{parse_header, BufferTooSmall, Connect, DecodeError, Properties, Publish, QoS, Reader, Writer};
use crate::topic::{is_utf8, valid_topic_bytes, Topic};
use crate::v5::ReasonCode;

/// Property identifiers used by the client.
pub(crate) mod id {
    pub const MESSAGE_EXPIRY: u8 = 0x02;
    pub const CONTENT_TYPE: u8 = 0x03;
    pub const SESSION_EXPIRY: u8 = 0x11;
    pub const ASSIGNED_CLIENT_ID: u8 = 0x12;
    pub const SERVER_KEEP_ALIVE: u8 = 0x13;
    pub const RECEIVE_MAXIMUM: u8 = 0x21;
    pub const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
    pub const TOPIC_ALIAS: u8 = 0x23;
    pub const USER_PROPERTY: u8 = 0x26;
    pub const MAXIMUM_PACKET_SIZE: u8 = 0x27;
}

/// One decoded property: its identifier and value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Property<'a> {
    /// Byte-valued (payload format, maximum QoS, the "available" flags, ...).
    Byte(u8, u8),
    /// Two-byte integer (receive maximum, topic alias (maximum), server keep alive).
    U16(u8, u16),
    /// Four-byte integer (expiry intervals, maximum packet size, will delay).
    U32(u8, u32),
    /// Variable byte integer (subscription identifier).
    VarInt(u8, u32),
    /// UTF-8 string (checked) or binary data (correlation data, auth data).
    Bytes(u8, &'a [u8]),
    /// User property: name and value (UTF-8, checked).
    Pair(&'a [u8], &'a [u8]),
}

/// Iterator over [`Properties`].
#[derive(Clone, Debug)]
pub struct PropertyIter<'a> {
    r: Reader<'a>,
}

impl<'a> Iterator for PropertyIter<'a> {
    type Item = Property<'a>;
    fn next(&mut self) -> Option<Property<'a>> {
        next_property(&mut self.r).ok().flatten()
    }
}

impl<'a> Properties<'a> {
    /// The properties in wire order.
    pub fn iter(&self) -> PropertyIter<'a> {
        PropertyIter { r: Reader { buf: self.0 } }
    }

    fn find_bytes(&self, want: u8) -> Option<&'a [u8]> {
        self.iter().find_map(|p| match p {
            Property::Bytes(i, b) if i == want => Some(b),
            _ => None,
        })
    }

    /// Content Type, if present.
    pub fn content_type(&self) -> Option<&'a str> {
        core::str::from_utf8(self.find_bytes(id::CONTENT_TYPE)?).ok()
    }

    /// Message Expiry Interval in seconds, if present.
    pub fn message_expiry(&self) -> Option<u32> {
        self.iter().find_map(|p| match p {
            Property::U32(id::MESSAGE_EXPIRY, v) => Some(v),
            _ => None,
        })
    }

    /// User properties, in order.
    pub fn user_properties(&self) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.iter().filter_map(|p| match p {
            Property::Pair(k, v) => Some((core::str::from_utf8(k).ok()?, core::str::from_utf8(v).ok()?)),
            _ => None,
        })
    }

    /// Reason String, if present.
    pub fn reason_string(&self) -> Option<&'a str> {
        core::str::from_utf8(self.find_bytes(0x1f)?).ok()
    }
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u32, DecodeError> {
        let mut v: u32 = 0;
        for i in 0..4 {
            let b = self.u8()?;
            v |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError::InvalidProperty)
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn utf8(&mut self) -> Result<&'a [u8], DecodeError> {
        let b = self.bytes()?;
        #[allow(clippy::manual_contains)]
        if !is_utf8(b) || b.iter().any(|&c| c == 0) {
            return Err(DecodeError::InvalidUtf8);
        }
        Ok(b)
    }

    /// The property section: its length and the raw bytes, all checked.
    fn properties(&mut self) -> Result<Properties<'a>, DecodeError> {
        let n = self.varint()? as usize;
        let raw = self.take(n)?;
        let mut r = Reader { buf: raw };
        while next_property(&mut r)?.is_some() {}
        Ok(Properties(raw))
    }
}

fn next_property<'a>(r: &mut Reader<'a>) -> Result<Option<Property<'a>>, DecodeError> {
    if r.buf.is_empty() {
        return Ok(None);
    }
    let i = r.u8()?;
    Ok(Some(match i {
        0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2a => Property::Byte(i, r.u8()?),
        0x13 | 0x21 | 0x22 | 0x23 => Property::U16(i, r.u16()?),
        0x02 | 0x11 | 0x18 | 0x27 => Property::U32(i, r.u32()?),
        0x0b => Property::VarInt(i, r.varint()?),
        0x03 | 0x08 | 0x12 | 0x15 | 0x1a | 0x1c | 0x1f => Property::Bytes(i, r.utf8()?),
        0x09 | 0x16 => Property::Bytes(i, r.bytes()?),
        0x26 => Property::Pair(r.utf8()?, r.utf8()?),
        _ => return Err(DecodeError::InvalidProperty),
    }))
}

/// PUBACK, PUBREC, PUBREL or PUBCOMP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ack<'a> {
    /// Packet identifier.
    pub pid: u16,
    /// Reason code (`Success` when the short form omits it).
    pub reason: ReasonCode,
    /// Properties (reason string, user properties).
    pub properties: Properties<'a>,
}

/// An MQTT 5 packet a broker sends to a client, borrowing the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packet<'a> {
    /// CONNACK.
    ConnAck {
        /// Session Present flag.
        session_present: bool,
        /// Connect reason code.
        reason: ReasonCode,
        /// Properties.
        properties: Properties<'a>,
    },
    /// PUBLISH. The topic is empty when the broker sent only a Topic Alias.
    Publish(Publish<'a>),
    /// PUBACK.
    PubAck(Ack<'a>),
    /// PUBREC.
    PubRec(Ack<'a>),
    /// PUBREL.
    PubRel(Ack<'a>),
    /// PUBCOMP.
    PubComp(Ack<'a>),
    /// SUBACK: one reason code per filter.
    SubAck {
        /// Packet identifier.
        pid: u16,
        /// Properties.
        properties: Properties<'a>,
        /// Reason codes (granted QoS 0..=2, or an error code).
        codes: &'a [u8],
    },
    /// UNSUBACK: one reason code per filter.
    UnsubAck {
        /// Packet identifier.
        pid: u16,
        /// Properties.
        properties: Properties<'a>,
        /// Reason codes.
        codes: &'a [u8],
    },
    /// PINGRESP.
    PingResp,
    /// DISCONNECT from the broker.
    Disconnect {
        /// Disconnect reason code.
        reason: ReasonCode,
        /// Properties.
        properties: Properties<'a>,
    },
}

/// Decodes one packet a broker sends from the start of `buf`: `Ok(None)`
/// if incomplete, else the packet and its length. CONNECT, SUBSCRIBE,
/// UNSUBSCRIBE, PINGREQ and AUTH are rejected.
pub fn decode_inbound(buf: &[u8]) -> Result<Option<(Packet<'_>, usize)>, DecodeError> {
    decode_inbound_as(true, buf)
}

/// [`decode_inbound`] for MQTT 5 (`v5`) or MQTT 3.1.1 (no property
/// sections, no UNSUBACK reason codes, no DISCONNECT from the broker, acks
/// of exactly two bytes, CONNACK return code as its raw value).
pub(crate) fn decode_inbound_as(v5: bool, buf: &[u8]) -> Result<Option<(Packet<'_>, usize)>, DecodeError> {
    let Some((first, hlen, rlen)) = parse_header(buf)? else {
        return Ok(None);
    };
    let total = hlen + rlen;
    if buf.len() < total {
        return Ok(None);
    }
    let mut r = Reader { buf: &buf[hlen..total] };
    let flags = first & 0x0f;
    let ptype = first >> 4;
    if !(matches!(ptype, 2..=7 | 9 | 11 | 13) || (v5 && ptype == 14)) {
        return Err(DecodeError::InvalidPacketType);
    }
    if ptype != 3 && flags != if ptype == 6 { 0b0010 } else { 0 } {
        return Err(DecodeError::InvalidFlags);
    }
    let packet = match ptype {
        2 => {
            let ack_flags = r.u8()?;
            if ack_flags & 0xfe != 0 {
                return Err(DecodeError::InvalidFlags);
            }
            let reason = ReasonCode::from(r.u8()?);
            // Leniency: some encoders (mqttbytes 0.6) leave out an empty
            // property section; read that as no properties.
            let properties = if r.buf.is_empty() || !v5 { Properties::NONE } else { r.properties()? };
            Packet::ConnAck { session_present: ack_flags & 1 != 0, reason, properties }
        }
        3 => Packet::Publish(decode_publish(v5, flags, &mut r)?),
        4..=7 => {
            let pid = r.pid()?;
            if !v5 {
                r.end()?;
            }
            let reason = if r.buf.is_empty() { ReasonCode::Success } else { ReasonCode::from(r.u8()?) };
            let properties = if r.buf.is_empty() { Properties::NONE } else { r.properties()? };
            let a = Ack { pid, reason, properties };
            match ptype {
                4 => Packet::PubAck(a),
                5 => Packet::PubRec(a),
                6 => Packet::PubRel(a),
                _ => Packet::PubComp(a),
            }
        }
        9 | 11 => {
            let pid = r.pid()?;
            let properties = if v5 { r.properties()? } else { Properties::NONE };
            let codes = r.take(r.buf.len())?;
            // 3.1.1: SUBACK return codes 0..=2 or 0x80; UNSUBACK has none.
            let bad_v3 = if ptype == 9 { codes.iter().any(|&c| c > 2 && c != 0x80) } else { !codes.is_empty() };
            if (codes.is_empty() && (v5 || ptype == 9)) || (!v5 && bad_v3) {
                return Err(DecodeError::InvalidPayload);
            }
            if ptype == 9 {
                Packet::SubAck { pid, properties, codes }
            } else {
                Packet::UnsubAck { pid, properties, codes }
            }
        }
        13 => Packet::PingResp,
        14 => {
            let reason = if r.buf.is_empty() { ReasonCode::Success } else { ReasonCode::from(r.u8()?) };
            let properties = if r.buf.is_empty() { Properties::NONE } else { r.properties()? };
            Packet::Disconnect { reason, properties }
        }
        _ => return Err(DecodeError::InvalidPacketType),
    };
    r.end()?;
    Ok(Some((packet, total)))
}

fn decode_publish<'a>(v5: bool, flags: u8, r: &mut Reader<'a>) -> Result<Publish<'a>, DecodeError> {
    let qos = QoS::from_u8((flags >> 1) & 3).ok_or(DecodeError::InvalidQoS)?;
    let dup = flags & 0b1000 != 0;
    if dup && qos == QoS::AtMostOnce {
        return Err(DecodeError::InvalidFlags);
    }
    let topic = r.bytes()?;
    let pid = if qos == QoS::AtMostOnce { None } else { Some(r.pid()?) };
    let properties = if v5 { r.properties()? } else { Properties::NONE };
    // An empty topic is allowed only with a Topic Alias (checked by the
    // client against its alias table); an alias of 0 is a protocol error.
    let alias = topic_alias(&properties);
    if alias == Some(0) || (topic.is_empty() && alias.is_none()) {
        return Err(DecodeError::InvalidTopic);
    }
    if !topic.is_empty() && (!valid_topic_bytes(topic) || !is_utf8(topic)) {
        return Err(DecodeError::InvalidTopic);
    }
    let payload = r.take(r.buf.len())?;
    Ok(Publish { dup, qos, retain: flags & 1 != 0, topic: Topic(topic), pid, payload, properties })
}

/// The Topic Alias property of a PUBLISH, if any.
pub fn topic_alias(p: &Properties<'_>) -> Option<u16> {
    p.iter().find_map(|p| match p {
        Property::U16(id::TOPIC_ALIAS, v) => Some(v),
        _ => None,
    })
}

impl Writer<'_> {
    fn varint(&mut self, mut v: usize) -> Result<(), BufferTooSmall> {
        loop {
            let mut b = (v & 0x7f) as u8;
            v >>= 7;
            if v > 0 {
                b |= 0x80;
            }
            self.u8(b)?;
            if v == 0 {
                return Ok(());
            }
        }
    }

    fn prop_u16(&mut self, id: u8, v: u16) -> Result<(), BufferTooSmall> {
        self.u8(id)?;
        self.u16(v)
    }

    fn prop_u32(&mut self, id: u8, v: u32) -> Result<(), BufferTooSmall> {
        self.u8(id)?;
        self.put(&v.to_be_bytes())
    }
}

/// Bytes of a variable byte integer.
pub(crate) fn varint_len(v: usize) -> usize {
    match v {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// The CONNECT properties the client sends; a field at its protocol
/// default (0, or `u16::MAX` receive maximum) is left out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnectProperties {
    /// Session Expiry Interval (seconds).
    pub session_expiry: u32,
    /// Receive Maximum (0 is not sent).
    pub receive_maximum: u16,
    /// Maximum Packet Size (0 is not sent).
    pub maximum_packet_size: u32,
    /// Topic Alias Maximum.
    pub topic_alias_maximum: u16,
}

impl ConnectProperties {
    fn len(&self) -> usize {
        (if self.session_expiry != 0 { 5 } else { 0 })
            + (if self.receive_maximum != 0 { 3 } else { 0 })
            + (if self.maximum_packet_size != 0 { 5 } else { 0 })
            + (if self.topic_alias_maximum != 0 { 3 } else { 0 })
    }
}

/// Encodes an MQTT 5 CONNECT (protocol level 5) with `props`; the will, if
/// any, has no properties.
pub fn encode_connect(c: &Connect<'_>, props: &ConnectProperties, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
    encode_connect_as(true, c, props, c.client_id.as_bytes(), buf)
}

/// [`encode_connect`] for MQTT 5 or (`!v5`: protocol level 4, no property
/// sections, `props` ignored) MQTT 3.1.1, with the client id as bytes.
pub(crate) fn encode_connect_as(
    v5: bool,
    c: &Connect<'_>,
    props: &ConnectProperties,
    client_id: &[u8],
    buf: &mut [u8],
) -> Result<usize, BufferTooSmall> {
    let plen = if v5 { props.len() } else { 0 };
    let ps = if v5 { varint_len(plen) + plen } else { 0 };
    let mut len = 10 + ps + 2 + client_id.len();
    let mut flags = 0u8;
    if c.clean_session {
        flags |= 0x02;
    }
    if let Some(w) = &c.will {
        len += usize::from(v5) + 4 + w.topic.len() + w.payload.len();
        flags |= 0x04 | ((w.qos as u8) << 3) | if w.retain { 0x20 } else { 0 };
    }
    if let Some(u) = c.username {
        len += 2 + u.len();
        flags |= 0x80;
    }
    if let Some(p) = c.password {
        len += 2 + p.len();
        flags |= 0x40;
    }
    let mut w = Writer::new(buf);
    w.header(0x10, len)?;
    w.put(&[0, 4, b'M', b'Q', b'T', b'T', if v5 { 5 } else { 4 }, flags])?;
    w.u16(c.keep_alive)?;
    if v5 {
        w.connect_props(props, plen)?;
    }
    w.bytes(client_id)?;
    if let Some(will) = &c.will {
        if v5 {
            w.u8(0)?;
        }
        w.bytes(will.topic.as_bytes())?;
        w.bytes(will.payload)?;
    }
    if let Some(u) = c.username {
        w.bytes(u.as_bytes())?;
    }
    if let Some(p) = c.password {
        w.bytes(p)?;
    }
    Ok(w.pos)
}

impl Writer<'_> {
    fn connect_props(&mut self, props: &ConnectProperties, plen: usize) -> Result<(), BufferTooSmall> {
        let w = self;
        w.varint(plen)?;
        if props.session_expiry != 0 {
            w.prop_u32(id::SESSION_EXPIRY, props.session_expiry)?;
        }
        if props.receive_maximum != 0 {
            w.prop_u16(id::RECEIVE_MAXIMUM, props.receive_maximum)?;
        }
        if props.maximum_packet_size != 0 {
            w.prop_u32(id::MAXIMUM_PACKET_SIZE, props.maximum_packet_size)?;
        }
        if props.topic_alias_maximum != 0 {
            w.prop_u16(id::TOPIC_ALIAS_MAXIMUM, props.topic_alias_maximum)?;
        }
        Ok(())
    }
}

/// Length of an MQTT 5 PUBLISH with a `topic_len`-byte topic, `props_len`
/// bytes of properties and a `payload_len`-byte payload.
pub fn publish_len(qos: QoS, topic_len: usize, props_len: usize, payload_len: usize) -> usize {
    let rl =
        2 + topic_len + if qos == QoS::AtMostOnce { 0 } else { 2 } + varint_len(props_len) + props_len + payload_len;
    1 + varint_len(rl) + rl
}

/// Encodes an MQTT 5 PUBLISH. Its properties are, in order: Message Expiry
/// Interval (if `expiry` is set), Topic Alias (if `alias` is set), then the
/// raw `p.properties`. `p.topic` may be empty when `alias` is set.
pub fn encode_publish(
    p: &Publish<'_>,
    expiry: Option<u32>,
    alias: Option<u16>,
    buf: &mut [u8],
) -> Result<usize, BufferTooSmall> {
    encode_publish_as(true, p, expiry, alias, buf)
}

/// [`encode_publish`] for MQTT 5 or (`!v5`: no property section, the
/// other arguments ignored) MQTT 3.1.1.
pub(crate) fn encode_publish_as(
    v5: bool,
    p: &Publish<'_>,
    expiry: Option<u32>,
    alias: Option<u16>,
    buf: &mut [u8],
) -> Result<usize, BufferTooSmall> {
    let has_pid = p.qos != QoS::AtMostOnce;
    let plen = if expiry.is_some() { 5 } else { 0 } + if alias.is_some() { 3 } else { 0 } + p.properties.0.len();
    let ps = if v5 { varint_len(plen) + plen } else { 0 };
    let len = 2 + p.topic.len() + if has_pid { 2 } else { 0 } + ps + p.payload.len();
    let first = 0x30 | ((p.qos as u8) << 1) | if p.dup { 0x08 } else { 0 } | u8::from(p.retain);
    let mut w = Writer::new(buf);
    w.header(first, len)?;
    w.bytes(p.topic.as_bytes())?;
    if has_pid {
        w.u16(p.pid.unwrap_or(0))?;
    }
    if v5 {
        w.varint(plen)?;
        if let Some(e) = expiry {
            w.prop_u32(id::MESSAGE_EXPIRY, e)?;
        }
        if let Some(a) = alias {
            w.prop_u16(id::TOPIC_ALIAS, a)?;
        }
        w.put(p.properties.0)?;
    }
    w.put(p.payload)?;
    Ok(w.pos)
}

/// Encodes an MQTT 5 SUBSCRIBE (no properties; options byte = QoS, so No
/// Local, Retain As Published and Retain Handling are 0).
pub fn encode_subscribe(pid: u16, topics: &[(&str, QoS)], buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
    encode_subscribe_as(true, pid, topics, buf)
}

/// [`encode_subscribe`] for MQTT 5 or (`!v5`) MQTT 3.1.1.
pub(crate) fn encode_subscribe_as(
    v5: bool,
    pid: u16,
    topics: &[(&str, QoS)],
    buf: &mut [u8],
) -> Result<usize, BufferTooSmall> {
    let len = 2 + usize::from(v5) + topics.iter().map(|(t, _)| 3 + t.len()).sum::<usize>();
    let mut w = Writer::new(buf);
    w.header(0x82, len)?;
    w.u16(pid)?;
    if v5 {
        w.u8(0)?;
    }
    for (t, q) in topics {
        w.bytes(t.as_bytes())?;
        w.u8(*q as u8)?;
    }
    Ok(w.pos)
}

/// Encodes an MQTT 5 UNSUBSCRIBE (no properties).
pub fn encode_unsubscribe(pid: u16, topics: &[&str], buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
    encode_unsubscribe_as(true, pid, topics, buf)
}

/// [`encode_unsubscribe`] for MQTT 5 or (`!v5`) MQTT 3.1.1.
pub(crate) fn encode_unsubscribe_as(
    v5: bool,
    pid: u16,
    topics: &[&str],
    buf: &mut [u8],
) -> Result<usize, BufferTooSmall> {
    let len = 2 + usize::from(v5) + topics.iter().map(|t| 2 + t.len()).sum::<usize>();
    let mut w = Writer::new(buf);
    w.header(0xa2, len)?;
    w.u16(pid)?;
    if v5 {
        w.u8(0)?;
    }
    for t in topics {
        w.bytes(t.as_bytes())?;
    }
    Ok(w.pos)
}

/// Encodes an MQTT 5 DISCONNECT with `reason` and an empty property
/// section (the explicit form: some decoders reject the 2-byte short form
/// that [MQTT-3.14.2.1] allows).
pub fn encode_disconnect(reason: ReasonCode, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
    let mut w = Writer::new(buf);
    w.put(&[0xe0, 2, reason as u8, 0])?;
    Ok(w.pos)
}

/// The header (identifier, length) of a Content Type property.
pub(crate) fn content_type_header(len: usize) -> Option<[u8; 3]> {
    let n = u16::try_from(len).ok()?.to_be_bytes();
    Some([id::CONTENT_TYPE, n[0], n[1]])
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::format;
    use std::string::String;
    use std::vec::Vec;

    use super::*;
    use crate::codec::{self, Packet as P3};

    /// The 3.1.1 decoder's view of a packet, for comparison.
    fn v3(p: &P3<'_>) -> String {
        match p {
            P3::ConnAck { session_present, code } => format!("connack {session_present} {code}"),
            P3::Publish(p) => {
                format!("publish {:?} {:?} {} {:?} {:?} {:?}", p.qos, p.dup, p.retain, p.topic, p.pid, p.payload)
            }
            P3::PubAck(x) => format!("ack 4 {x}"),
            P3::PubRec(x) => format!("ack 5 {x}"),
            P3::PubRel(x) => format!("ack 6 {x}"),
            P3::PubComp(x) => format!("ack 7 {x}"),
            P3::SubAck { pid, codes } => format!("suback {pid} {codes:?}"),
            P3::UnsubAck(pid) => format!("unsuback {pid}"),
            P3::PingResp => "pingresp".into(),
            other => format!("{other:?}"),
        }
    }

    /// The shared decoder's view in 3.1.1 mode (CONNACK code as raw byte,
    /// as the client reads it).
    fn shared(p: &Packet<'_>, raw: &[u8]) -> String {
        match p {
            Packet::ConnAck { session_present, .. } => format!("connack {session_present} {}", raw[3]),
            Packet::Publish(p) => {
                format!("publish {:?} {:?} {} {:?} {:?} {:?}", p.qos, p.dup, p.retain, p.topic, p.pid, p.payload)
            }
            Packet::PubAck(a) => format!("ack 4 {}", a.pid),
            Packet::PubRec(a) => format!("ack 5 {}", a.pid),
            Packet::PubRel(a) => format!("ack 6 {}", a.pid),
            Packet::PubComp(a) => format!("ack 7 {}", a.pid),
            Packet::SubAck { pid, codes, .. } => format!("suback {pid} {codes:?}"),
            Packet::UnsubAck { pid, .. } => format!("unsuback {pid}"),
            Packet::PingResp => "pingresp".into(),
            other => format!("{other:?}"),
        }
    }

    /// In 3.1.1 mode the shared decoder (what a `v5` build uses for 3.1.1
    /// brokers) accepts exactly what the 3.1.1 decoder accepts, with the
    /// same result, over seeded mutations of every broker-to-client packet.
    #[test]
    fn v311_mode_agrees_with_the_311_decoder() {
        let seeds: [&[u8]; 11] = [
            &[0x20, 2, 1, 0],
            &[0x20, 2, 0, 5],
            &[0x32, 9, 0, 3, b'a', b'/', b'b', 0x12, 0x34, b'h', b'i'],
            &[0x30, 4, 0, 1, b't', b'x'],
            &[0x40, 2, 0, 1],
            &[0x50, 2, 1, 0],
            &[0x62, 2, 0, 9],
            &[0x70, 2, 0xff, 0xff],
            &[0x90, 4, 0, 7, 1, 0x80],
            &[0xb0, 2, 0, 7],
            &[0xd0, 0],
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut agree = 0;
        for i in 0..50_000 {
            let mut b: Vec<u8> = seeds[i % seeds.len()].to_vec();
            for _ in 0..(rnd() % 3) {
                let at = (rnd() as usize) % b.len();
                match rnd() % 3 {
                    0 => b[at] = rnd() as u8,
                    1 => b.insert(at, rnd() as u8),
                    _ => {
                        b.remove(at);
                        if b.is_empty() {
                            b.push(0);
                        }
                    }
                }
            }
            let a = codec::decode_inbound(&b).map(|o| o.map(|(p, n)| (v3(&p), n)));
            let s = decode_inbound_as(false, &b).map(|o| o.map(|(p, n)| (shared(&p, &b), n)));
            match (&a, &s) {
                (Ok(a), Ok(s)) => assert_eq!(a, s, "{b:02x?}"),
                (Err(_), Err(_)) => {}
                _ => panic!("{b:02x?}: 3.1.1 decoder {a:?}, shared decoder {s:?}"),
            }
            agree += 1;
        }
        assert_eq!(agree, 50_000);
        // Nothing MQTT 5 only gets through in 3.1.1 mode.
        assert!(decode_inbound_as(false, &[0xe0, 0]).is_err());
        assert!(decode_inbound_as(false, &[0x40, 3, 0, 1, 0x10]).is_err());
        assert!(decode_inbound_as(false, &[0xb0, 3, 0, 7, 0]).is_err());
    }
}
