//! MQTT 3.1.1 wire codec: zero-copy decoding of every packet type and
//! encoding into caller-provided buffers.
//!
//! This module owns the byte format and nothing else: no state, no I/O, no
//! time. Decoded packets borrow from the input buffer. Decoding never panics
//! on any input; malformed bytes yield a [`DecodeError`].
//!
//! The client core only needs to decode what a broker sends (CONNACK, PUBLISH,
//! the acks, SUBACK, UNSUBACK, PINGRESP); [`decode_inbound`] is that subset and
//! keeps firmware small. [`decode`] handles all fourteen packet types and is
//! what tests, fuzzing and tools use.

use core::fmt;

use crate::topic::valid_topic_bytes;
pub use crate::topic::{is_utf8, valid_topic_filter, valid_topic_name, Topic};

/// Quality of service level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum QoS {
    /// At most once.
    AtMostOnce = 0,
    /// At least once.
    AtLeastOnce = 1,
    /// Exactly once.
    ExactlyOnce = 2,
}

impl QoS {
    /// Parses the two QoS bits; `3` is invalid.
    pub fn from_u8(v: u8) -> Option<QoS> {
        match v {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }
}

/// Why a byte sequence is not a valid MQTT 3.1.1 packet. The peer is at fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Packet type 0 or 15, or a type not valid in this direction.
    InvalidPacketType,
    /// Reserved fixed-header flags have the wrong value.
    InvalidFlags,
    /// The remaining-length varint is longer than four bytes.
    InvalidRemainingLength,
    /// A field runs past the end of the packet, or bytes are left over.
    InvalidLength,
    /// A string is not valid UTF-8 (or contains U+0000).
    InvalidUtf8,
    /// QoS value 3.
    InvalidQoS,
    /// Packet identifier 0 where one is required.
    ZeroPacketId,
    /// CONNECT with an unknown protocol name or level.
    InvalidProtocol,
    /// Reserved bits set, or inconsistent CONNECT flags.
    InvalidConnectFlags,
    /// PUBLISH topic name empty or containing wildcards.
    InvalidTopic,
    /// SUBSCRIBE / UNSUBSCRIBE / SUBACK with no entries, or a bad return code.
    InvalidPayload,
    /// MQTT 5: unknown property identifier or malformed property value.
    InvalidProperty,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            DecodeError::InvalidPacketType => "invalid packet type",
            DecodeError::InvalidFlags => "invalid fixed header flags",
            DecodeError::InvalidRemainingLength => "invalid remaining length",
            DecodeError::InvalidLength => "field length inconsistent with packet length",
            DecodeError::InvalidUtf8 => "string is not valid UTF-8",
            DecodeError::InvalidQoS => "invalid QoS",
            DecodeError::ZeroPacketId => "packet identifier is zero",
            DecodeError::InvalidProtocol => "unsupported protocol name or level",
            DecodeError::InvalidConnectFlags => "invalid CONNECT flags",
            DecodeError::InvalidTopic => "invalid topic name",
            DecodeError::InvalidPayload => "invalid packet payload",
            DecodeError::InvalidProperty => "invalid MQTT 5 property",
        };
        f.write_str(s)
    }
}

/// The output buffer is too small for the packet. The caller is at fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferTooSmall;

impl fmt::Display for BufferTooSmall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("buffer too small for packet")
    }
}

/// Last will message carried by CONNECT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Will<'a> {
    /// Topic the will is published to.
    pub topic: &'a str,
    /// Will payload.
    pub payload: &'a [u8],
    /// Will QoS.
    pub qos: QoS,
    /// Will retain flag.
    pub retain: bool,
}

/// CONNECT packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Connect<'a> {
    /// Client identifier (may be empty only with clean session).
    pub client_id: &'a str,
    /// Keep-alive interval in seconds, 0 disables.
    pub keep_alive: u16,
    /// Clean session flag.
    pub clean_session: bool,
    /// Optional user name.
    pub username: Option<&'a str>,
    /// Optional password (only valid with a user name).
    pub password: Option<&'a [u8]>,
    /// Optional last will.
    pub will: Option<Will<'a>>,
}

/// PUBLISH packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Publish<'a> {
    /// Duplicate delivery flag.
    pub dup: bool,
    /// QoS level.
    pub qos: QoS,
    /// Retain flag.
    pub retain: bool,
    /// Topic name (no wildcards).
    pub topic: Topic<'a>,
    /// Packet identifier; `Some` exactly when QoS > 0.
    pub pid: Option<u16>,
    /// Application payload.
    pub payload: &'a [u8],
    /// MQTT 5 properties (always empty in MQTT 3.1.1).
    pub properties: Properties<'a>,
}

/// The property section of an MQTT 5 packet, as raw wire bytes (without
/// its length prefix), checked when decoded. Empty for MQTT 3.1.1; with the
/// `v5` feature it can be iterated and queried.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Properties<'a>(pub &'a [u8]);

impl Properties<'_> {
    /// No properties.
    pub const NONE: Properties<'static> = Properties(&[]);

    /// True if there are no properties.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The topic filters of a decoded SUBSCRIBE (already validated).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubscribeTopics<'a> {
    raw: &'a [u8],
    with_qos: bool,
}

impl<'a> Iterator for SubscribeTopics<'a> {
    type Item = (&'a str, QoS);
    fn next(&mut self) -> Option<Self::Item> {
        let mut r = Reader { buf: self.raw };
        let topic = r.string().ok()?;
        let qos = if self.with_qos { QoS::from_u8(r.u8().ok()?)? } else { QoS::AtMostOnce };
        self.raw = r.buf;
        Some((topic, qos))
    }
}

/// One MQTT 3.1.1 control packet, borrowing from the decode buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packet<'a> {
    /// CONNECT.
    Connect(Connect<'a>),
    /// CONNACK.
    ConnAck {
        /// Session present flag.
        session_present: bool,
        /// Return code, 0 = accepted.
        code: u8,
    },
    /// PUBLISH.
    Publish(Publish<'a>),
    /// PUBACK.
    PubAck(u16),
    /// PUBREC.
    PubRec(u16),
    /// PUBREL.
    PubRel(u16),
    /// PUBCOMP.
    PubComp(u16),
    /// SUBSCRIBE: filters with requested QoS.
    Subscribe {
        /// Packet identifier.
        pid: u16,
        /// Topic filters.
        topics: SubscribeTopics<'a>,
    },
    /// SUBACK: one return code per filter (0..=2 or 0x80 failure).
    SubAck {
        /// Packet identifier.
        pid: u16,
        /// Return codes.
        codes: &'a [u8],
    },
    /// UNSUBSCRIBE (the iterator yields QoS 0 for every filter).
    Unsubscribe {
        /// Packet identifier.
        pid: u16,
        /// Topic filters.
        topics: SubscribeTopics<'a>,
    },
    /// UNSUBACK.
    UnsubAck(u16),
    /// PINGREQ.
    PingReq,
    /// PINGRESP.
    PingResp,
    /// DISCONNECT.
    Disconnect,
}

#[derive(Clone, Debug)]
pub(crate) struct Reader<'a> {
    pub(crate) buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.buf.len() {
            return Err(DecodeError::InvalidLength);
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }
    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    pub(crate) fn pid(&mut self) -> Result<u16, DecodeError> {
        match self.u16()? {
            0 => Err(DecodeError::ZeroPacketId),
            p => Ok(p),
        }
    }
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u16()? as usize;
        self.take(n)
    }
    pub(crate) fn string(&mut self) -> Result<&'a str, DecodeError> {
        let b = self.bytes()?;
        let s = core::str::from_utf8(b).map_err(|_| DecodeError::InvalidUtf8)?;
        // Not `contains`: that links `memchr`, which costs firmware flash.
        #[allow(clippy::manual_contains)]
        if b.iter().any(|&c| c == 0) {
            return Err(DecodeError::InvalidUtf8);
        }
        Ok(s)
    }
    pub(crate) fn end(&self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::InvalidLength)
        }
    }
}

/// Parses the fixed header. Returns `Ok(None)` if more bytes are needed,
/// otherwise `(first byte, header length, remaining length)`.
pub fn parse_header(buf: &[u8]) -> Result<Option<(u8, usize, usize)>, DecodeError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let mut len: usize = 0;
    for i in 0..4 {
        let Some(&b) = buf.get(1 + i) else {
            return Ok(None);
        };
        len |= ((b & 0x7f) as usize) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(Some((first, 2 + i, len)));
        }
    }
    Err(DecodeError::InvalidRemainingLength)
}

/// Decodes one packet of any type from the start of `buf`.
///
/// Returns `Ok(None)` when `buf` holds only part of a packet, otherwise the
/// packet and the number of bytes it occupied.
pub fn decode(buf: &[u8]) -> Result<Option<(Packet<'_>, usize)>, DecodeError> {
    decode_impl::<true>(buf)
}

/// Like [`decode`] but accepts only packets a broker sends to a client
/// (CONNECT, SUBSCRIBE, UNSUBSCRIBE, PINGREQ and DISCONNECT are rejected with
/// [`DecodeError::InvalidPacketType`]).
pub fn decode_inbound(buf: &[u8]) -> Result<Option<(Packet<'_>, usize)>, DecodeError> {
    decode_impl::<false>(buf)
}

fn decode_impl<const ALL: bool>(buf: &[u8]) -> Result<Option<(Packet<'_>, usize)>, DecodeError> {
    let Some((first, hlen, rlen)) = parse_header(buf)? else {
        return Ok(None);
    };
    let total = hlen + rlen;
    if buf.len() < total {
        return Ok(None);
    }
    let body = &buf[hlen..total];
    let flags = first & 0x0f;
    let ptype = first >> 4;
    let expected_flags = match ptype {
        3 => flags,
        6 | 8 | 10 => 0b0010,
        _ => 0,
    };
    if flags != expected_flags {
        return Err(DecodeError::InvalidFlags);
    }
    let mut r = Reader { buf: body };
    let packet = match ptype {
        2 => {
            let ack_flags = r.u8()?;
            let code = r.u8()?;
            if ack_flags & 0xfe != 0 {
                return Err(DecodeError::InvalidFlags);
            }
            Packet::ConnAck { session_present: ack_flags & 1 != 0, code }
        }
        3 => Packet::Publish(decode_publish(flags, &mut r)?),
        4 => Packet::PubAck(r.pid()?),
        5 => Packet::PubRec(r.pid()?),
        6 => Packet::PubRel(r.pid()?),
        7 => Packet::PubComp(r.pid()?),
        9 => {
            let pid = r.pid()?;
            let codes = r.take(r.buf.len())?;
            if codes.is_empty() || codes.iter().any(|&c| c > 2 && c != 0x80) {
                return Err(DecodeError::InvalidPayload);
            }
            Packet::SubAck { pid, codes }
        }
        11 => Packet::UnsubAck(r.pid()?),
        13 => Packet::PingResp,
        1 if ALL => Packet::Connect(decode_connect(&mut r)?),
        8 | 10 if ALL => {
            let pid = r.pid()?;
            let raw = r.buf;
            let with_qos = ptype == 8;
            if raw.is_empty() {
                return Err(DecodeError::InvalidPayload);
            }
            // Validate every entry now so the iterator cannot fail later.
            while !r.buf.is_empty() {
                r.string()?;
                if with_qos {
                    let q = r.u8()?;
                    if q > 2 {
                        return Err(DecodeError::InvalidQoS);
                    }
                }
            }
            let topics = SubscribeTopics { raw, with_qos };
            if with_qos {
                Packet::Subscribe { pid, topics }
            } else {
                Packet::Unsubscribe { pid, topics }
            }
        }
        12 if ALL => Packet::PingReq,
        14 if ALL => Packet::Disconnect,
        _ => return Err(DecodeError::InvalidPacketType),
    };
    r.end()?;
    Ok(Some((packet, total)))
}

fn decode_publish<'a>(flags: u8, r: &mut Reader<'a>) -> Result<Publish<'a>, DecodeError> {
    let qos = QoS::from_u8((flags >> 1) & 3).ok_or(DecodeError::InvalidQoS)?;
    let dup = flags & 0b1000 != 0;
    if dup && qos == QoS::AtMostOnce {
        return Err(DecodeError::InvalidFlags);
    }
    let topic = r.bytes()?;
    if !valid_topic_bytes(topic) || !is_utf8(topic) {
        return Err(DecodeError::InvalidTopic);
    }
    let topic = Topic(topic);
    let pid = if qos == QoS::AtMostOnce { None } else { Some(r.pid()?) };
    let payload = r.take(r.buf.len())?;
    Ok(Publish { dup, qos, retain: flags & 1 != 0, topic, pid, payload, properties: Properties::NONE })
}

fn decode_connect<'a>(r: &mut Reader<'a>) -> Result<Connect<'a>, DecodeError> {
    if r.string()? != "MQTT" || r.u8()? != 4 {
        return Err(DecodeError::InvalidProtocol);
    }
    let f = r.u8()?;
    let keep_alive = r.u16()?;
    let will_flag = f & 0x04 != 0;
    let will_qos = (f >> 3) & 3;
    let will_retain = f & 0x20 != 0;
    if f & 1 != 0 || (!will_flag && (will_qos != 0 || will_retain)) || (f & 0x80 == 0 && f & 0x40 != 0) {
        return Err(DecodeError::InvalidConnectFlags);
    }
    let client_id = r.string()?;
    let will = if will_flag {
        let topic = r.string()?;
        let payload = r.bytes()?;
        Some(Will { topic, payload, qos: QoS::from_u8(will_qos).ok_or(DecodeError::InvalidQoS)?, retain: will_retain })
    } else {
        None
    };
    let username = if f & 0x80 != 0 { Some(r.string()?) } else { None };
    let password = if f & 0x40 != 0 { Some(r.bytes()?) } else { None };
    Ok(Connect { client_id, keep_alive, clean_session: f & 0x02 != 0, username, password, will })
}

/// Moves `buf[from..end]` to the start of `buf` with non-overlapping chunk
/// copies (keeps `memmove` out of firmware images; only `memcpy` is used).
pub(crate) fn shift_left(buf: &mut [u8], from: usize, end: usize) {
    if from == 0 || from >= end {
        return;
    }
    let mut dst = 0;
    let mut src = from;
    while src < end {
        let n = (end - src).min(from);
        let (a, b) = buf.split_at_mut(src);
        a[dst..dst + n].copy_from_slice(&b[..n]);
        dst += n;
        src += n;
    }
}

/// Cursor over an output buffer; every write is bounds-checked.
pub(crate) struct Writer<'a> {
    buf: &'a mut [u8],
    pub(crate) pos: usize,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        Writer { buf, pos: 0 }
    }
    pub(crate) fn put(&mut self, data: &[u8]) -> Result<(), BufferTooSmall> {
        let end = self.pos.checked_add(data.len()).ok_or(BufferTooSmall)?;
        self.buf.get_mut(self.pos..end).ok_or(BufferTooSmall)?.copy_from_slice(data);
        self.pos = end;
        Ok(())
    }
    pub(crate) fn u8(&mut self, v: u8) -> Result<(), BufferTooSmall> {
        self.put(&[v])
    }
    pub(crate) fn u16(&mut self, v: u16) -> Result<(), BufferTooSmall> {
        self.put(&v.to_be_bytes())
    }
    pub(crate) fn bytes(&mut self, b: &[u8]) -> Result<(), BufferTooSmall> {
        let n = u16::try_from(b.len()).map_err(|_| BufferTooSmall)?;
        self.u16(n)?;
        self.put(b)
    }
    /// Writes the fixed header for a body of `len` bytes.
    pub(crate) fn header(&mut self, first: u8, mut len: usize) -> Result<(), BufferTooSmall> {
        if len > 268_435_455 {
            return Err(BufferTooSmall);
        }
        self.u8(first)?;
        loop {
            let mut b = (len & 0x7f) as u8;
            len >>= 7;
            if len > 0 {
                b |= 0x80;
            }
            self.u8(b)?;
            if len == 0 {
                return Ok(());
            }
        }
    }
}

/// Encodes CONNECT into `buf`, returning the encoded length.
pub fn encode_connect(c: &Connect<'_>, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
    let mut len = 10 + 2 + c.client_id.len();
    let mut flags = 0u8;
    if c.clean_session {
        flags |= 0x02;
    }
    if let Some(w) = &c.will {
        len += 4 + w.topic.len() + w.payload.len();
        flags |= 0x04 | ((w.qos as u8) << 3);
        if w.retain {
            flags |= 0x20;
        }
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
    w.put(&[0, 4, b'M', b'Q', b'T', b'T', 4, flags])?;
    w.u16(c.keep_alive)?;
    w.bytes(c.client_id.as_bytes())?;
    if let Some(will) = &c.will {
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

/// Encodes PUBLISH into `buf`, returning the encoded length. `p.pid` is
/// written only when `p.qos` is above 0 (0 is written if it is `None`).
pub fn encode_publish(p: &Publish<'_>, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
    let has_pid = p.qos != QoS::AtMostOnce;
    let len = 2 + p.topic.len() + if has_pid { 2 } else { 0 } + p.payload.len();
    let mut first = 0x30 | ((p.qos as u8) << 1);
    if p.dup {
        first |= 0x08;
    }
    if p.retain {
        first |= 0x01;
    }
    let mut w = Writer::new(buf);
    w.header(first, len)?;
    w.bytes(p.topic.as_bytes())?;
    if has_pid {
        w.u16(p.pid.unwrap_or(0))?;
    }
    w.put(p.payload)?;
    Ok(w.pos)
}

/// Encodes a two-byte-body packet (PUBACK, PUBREC, PUBREL, PUBCOMP,
/// UNSUBACK) or a zero-body packet (PINGREQ, PINGRESP, DISCONNECT). `first`
/// is the complete first header byte.
fn encode_short(first: u8, pid: Option<u16>, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
    let mut w = Writer::new(buf);
    match pid {
        Some(p) => {
            w.put(&[first, 2])?;
            w.u16(p)?;
        }
        None => w.put(&[first, 0])?,
    }
    Ok(w.pos)
}

/// Encodes SUBSCRIBE for `topics` into `buf`, returning the encoded length.
pub fn encode_subscribe(pid: u16, topics: &[(&str, QoS)], buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
    let len = 2 + topics.iter().map(|(t, _)| 3 + t.len()).sum::<usize>();
    let mut w = Writer::new(buf);
    w.header(0x82, len)?;
    w.u16(pid)?;
    for (t, q) in topics {
        w.bytes(t.as_bytes())?;
        w.u8(*q as u8)?;
    }
    Ok(w.pos)
}

/// Encodes UNSUBSCRIBE for `topics` into `buf`, returning the encoded length.
pub fn encode_unsubscribe(pid: u16, topics: &[&str], buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
    let len = 2 + topics.iter().map(|t| 2 + t.len()).sum::<usize>();
    let mut w = Writer::new(buf);
    w.header(0xa2, len)?;
    w.u16(pid)?;
    for t in topics {
        w.bytes(t.as_bytes())?;
    }
    Ok(w.pos)
}

impl Packet<'_> {
    /// Encodes any packet into `buf`, returning the encoded length.
    ///
    /// The client core calls the per-type functions directly so firmware does
    /// not link encoders it never uses; this is for tests and tools.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
        match self {
            Packet::Connect(c) => encode_connect(c, buf),
            Packet::ConnAck { session_present, code } => {
                let mut w = Writer::new(buf);
                w.put(&[0x20, 2, u8::from(*session_present), *code])?;
                Ok(w.pos)
            }
            Packet::Publish(p) => encode_publish(p, buf),
            Packet::PubAck(p) => encode_short(0x40, Some(*p), buf),
            Packet::PubRec(p) => encode_short(0x50, Some(*p), buf),
            Packet::PubRel(p) => encode_short(0x62, Some(*p), buf),
            Packet::PubComp(p) => encode_short(0x70, Some(*p), buf),
            Packet::Subscribe { pid, topics } | Packet::Unsubscribe { pid, topics } => {
                let first = if topics.with_qos { 0x82 } else { 0xa2 };
                let mut w = Writer::new(buf);
                w.header(first, 2 + topics.raw.len())?;
                w.u16(*pid)?;
                w.put(topics.raw)?;
                Ok(w.pos)
            }
            Packet::SubAck { pid, codes } => {
                let mut w = Writer::new(buf);
                w.header(0x90, 2 + codes.len())?;
                w.u16(*pid)?;
                w.put(codes)?;
                Ok(w.pos)
            }
            Packet::UnsubAck(p) => encode_short(0xb0, Some(*p), buf),
            Packet::PingReq => encode_short(0xc0, None, buf),
            Packet::PingResp => encode_short(0xd0, None, buf),
            Packet::Disconnect => encode_short(0xe0, None, buf),
        }
    }
}

/// Encodes PUBACK/PUBREC/PUBREL/PUBCOMP; `kind` is the packet type (4..=7).
pub(crate) fn encode_ack(kind: u8, pid: u16, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
    let first = (kind << 4) | if kind == 6 { 0b0010 } else { 0 };
    encode_short(first, Some(pid), buf)
}

/// Encodes PINGREQ.
pub(crate) fn encode_pingreq(buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
    encode_short(0xc0, None, buf)
}

/// Encodes DISCONNECT.
pub(crate) fn encode_disconnect(buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
    encode_short(0xe0, None, buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_publish() {
        let p = Publish {
            dup: true,
            qos: QoS::ExactlyOnce,
            retain: true,
            topic: "a/b".into(),
            pid: Some(7),
            payload: &[1u8; 200],
            properties: Properties::NONE,
        };
        let mut buf = [0u8; 300];
        let n = encode_publish(&p, &mut buf).unwrap();
        let (d, used) = decode(&buf[..n]).unwrap().unwrap();
        assert_eq!(used, n);
        assert_eq!(d, Packet::Publish(p));
        for k in 0..n {
            assert_eq!(decode(&buf[..k]).unwrap(), None);
        }
    }

    #[test]
    fn shift() {
        for from in 0..12 {
            for end in from..12 {
                let mut a: [u8; 12] = core::array::from_fn(|i| i as u8);
                let mut b = a;
                shift_left(&mut a, from, end);
                b.copy_within(from..end, 0);
                assert_eq!(a, b, "{from} {end}");
            }
        }
    }

    #[test]
    fn too_small() {
        let mut buf = [0u8; 3];
        assert_eq!(encode_ack(4, 1, &mut buf), Err(BufferTooSmall));
    }
}
