//! Hand-encoded MQTT 3.1.1, client side: only what the load generator
//! sends and receives, written straight into a `BytesMut` (no per-packet
//! allocation), and a frame splitter that works on a byte slice.

use std::sync::OnceLock;
use std::time::Instant;

use bytes::{BufMut, BytesMut};

use crate::Error;

pub const CONNACK: u8 = 0x20;
pub const PUBLISH: u8 = 0x30;
pub const PUBACK: u8 = 0x40;
pub const PUBREC: u8 = 0x50;
pub const PUBREL: u8 = 0x62;
pub const PUBCOMP: u8 = 0x70;
pub const SUBACK: u8 = 0x90;
pub const PINGRESP: u8 = 0xD0;

/// Bytes at the start of every benchmark payload: publisher id (u32),
/// sequence number (u64), send time in ns since [`epoch`] (u64), big endian.
pub const PAYLOAD_HEADER: usize = 20;

/// Keep-alive the load generator announces (it never sends PINGREQ: runs
/// are bounded well below this).
pub const KEEP_ALIVE_SECS: u16 = 300;

/// The process-wide time origin of payload timestamps.
pub fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Nanoseconds since [`epoch`].
pub fn now_nanos() -> u64 {
    epoch().elapsed().as_nanos() as u64
}

fn put_varint(buf: &mut BytesMut, mut len: usize) {
    loop {
        let mut b = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            b |= 0x80;
        }
        buf.put_u8(b);
        if len == 0 {
            return;
        }
    }
}

fn put_str(buf: &mut BytesMut, s: &str) {
    buf.put_u16(s.len() as u16);
    buf.put_slice(s.as_bytes());
}

/// CONNECT, MQTT 3.1.1, clean session, no will, no credentials.
pub fn connect(buf: &mut BytesMut, client_id: &str) {
    connect_session(buf, client_id, true);
}

/// CONNECT, MQTT 3.1.1, clean session or persistent, no will, no credentials.
pub fn connect_session(buf: &mut BytesMut, client_id: &str, clean: bool) {
    buf.put_u8(0x10);
    put_varint(buf, 10 + 2 + client_id.len());
    put_str(buf, "MQTT");
    buf.put_u8(4);
    buf.put_u8(if clean { 0x02 } else { 0x00 });
    buf.put_u16(KEEP_ALIVE_SECS);
    put_str(buf, client_id);
}

/// CONNECT, MQTT 5, Clean Start or not, with a Session Expiry Interval
/// (seconds; 0 ends the session with the connection), no will, no
/// credentials.
pub fn connect_v5(buf: &mut BytesMut, client_id: &str, clean_start: bool, session_expiry: u32) {
    // Properties: Session Expiry Interval (0x11, four bytes).
    let props = if session_expiry > 0 { 5 } else { 0 };
    buf.put_u8(0x10);
    put_varint(buf, 10 + 1 + props + 2 + client_id.len());
    put_str(buf, "MQTT");
    buf.put_u8(5);
    buf.put_u8(if clean_start { 0x02 } else { 0x00 });
    buf.put_u16(KEEP_ALIVE_SECS);
    put_varint(buf, props);
    if session_expiry > 0 {
        buf.put_u8(0x11);
        buf.put_u32(session_expiry);
    }
    put_str(buf, client_id);
}

/// CONNECT, MQTT 3.1.1, clean session, with a user name and password.
pub fn connect_login(buf: &mut BytesMut, client_id: &str, user: &str, password: &[u8]) {
    buf.put_u8(0x10);
    put_varint(buf, 10 + 2 + client_id.len() + 2 + user.len() + 2 + password.len());
    put_str(buf, "MQTT");
    buf.put_u8(4);
    buf.put_u8(0xC2);
    buf.put_u16(KEEP_ALIVE_SECS);
    put_str(buf, client_id);
    put_str(buf, user);
    buf.put_u16(password.len() as u16);
    buf.put_slice(password);
}

/// PINGREQ.
pub fn pingreq(buf: &mut BytesMut) {
    buf.put_u8(0xC0);
    buf.put_u8(0);
}

/// SUBSCRIBE with one filter (MQTT 3.1.1).
pub fn subscribe(buf: &mut BytesMut, pkid: u16, filter: &str, qos: u8) {
    subscribe_v(buf, pkid, filter, qos, false);
}

/// SUBSCRIBE with one filter; `v5` adds the (empty) properties.
pub fn subscribe_v(buf: &mut BytesMut, pkid: u16, filter: &str, qos: u8, v5: bool) {
    buf.put_u8(0x82);
    put_varint(buf, 2 + usize::from(v5) + 2 + filter.len() + 1);
    buf.put_u16(pkid);
    if v5 {
        buf.put_u8(0);
    }
    put_str(buf, filter);
    buf.put_u8(qos);
}

/// PUBACK, PUBREC, PUBREL or PUBCOMP (`kind` is the first byte).
pub fn ack(buf: &mut BytesMut, kind: u8, pkid: u16) {
    buf.put_u8(kind);
    buf.put_u8(2);
    buf.put_u16(pkid);
}

pub fn disconnect(buf: &mut BytesMut) {
    buf.put_slice(&[0xE0, 0]);
}

/// The payload size actually used for a requested `size`.
pub fn payload_len(size: usize) -> usize {
    size.max(PAYLOAD_HEADER)
}

/// What a benchmark payload starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub publisher: u32,
    pub seq: u64,
    /// Send time, ns since [`epoch`].
    pub ts: u64,
}

/// PUBLISH whose payload is the benchmark header followed by zeros up to
/// `size` bytes (at least [`PAYLOAD_HEADER`]).
pub fn publish(buf: &mut BytesMut, topic: &str, qos: u8, pkid: u16, stamp: Stamp, size: usize) {
    publish_flags(buf, topic, qos << 1, pkid, stamp, size, false);
}

/// [`publish`] with the fixed header's flags given whole (`qos << 1`, DUP
/// 0x08, RETAIN 0x01); `v5` adds the (empty) properties.
pub fn publish_flags(buf: &mut BytesMut, topic: &str, flags: u8, pkid: u16, stamp: Stamp, size: usize, v5: bool) {
    let qos = (flags >> 1) & 3;
    let plen = payload_len(size);
    let id_len = if qos > 0 { 2 } else { 0 };
    buf.put_u8(PUBLISH | (flags & 0x0F));
    put_varint(buf, 2 + topic.len() + id_len + usize::from(v5) + plen);
    put_str(buf, topic);
    if qos > 0 {
        buf.put_u16(pkid);
    }
    if v5 {
        buf.put_u8(0);
    }
    buf.put_u32(stamp.publisher);
    buf.put_u64(stamp.seq);
    buf.put_u64(stamp.ts);
    buf.put_bytes(0, plen - PAYLOAD_HEADER);
}

/// A retained QoS 1 PUBLISH with an empty payload (MQTT 3.1.1): deletes
/// the topic's retained message.
pub fn delete_retained(buf: &mut BytesMut, topic: &str, pkid: u16) {
    buf.put_u8(PUBLISH | 0x03);
    put_varint(buf, 2 + topic.len() + 2);
    put_str(buf, topic);
    buf.put_u16(pkid);
}

/// One frame found at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// The first byte (type and flags).
    pub header: u8,
    /// Where the body starts.
    pub body: usize,
    /// Whole frame length.
    pub len: usize,
}

/// Splits the next frame off `buf`, if it is complete.
pub fn next_frame(buf: &[u8]) -> Result<Option<Frame>, Error> {
    let mut len = 0usize;
    let mut shift = 0;
    for i in 1..5 {
        let Some(&b) = buf.get(i) else {
            return Ok(None);
        };
        len |= usize::from(b & 0x7F) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            let total = i + 1 + len;
            if buf.len() < total {
                return Ok(None);
            }
            return Ok(Some(Frame { header: buf[0], body: i + 1, len: total }));
        }
    }
    Err(Error::Protocol("malformed remaining length".into()))
}

/// The packet identifier of an acknowledgement body.
pub fn ack_pkid(body: &[u8]) -> Result<u16, Error> {
    match body {
        [a, b, ..] => Ok(u16::from_be_bytes([*a, *b])),
        _ => Err(Error::Protocol("short acknowledgement".into())),
    }
}

/// What the load generator reads from a received PUBLISH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub qos: u8,
    pub pkid: u16,
    pub publisher: u32,
    pub seq: u64,
    pub ts: u64,
}

/// Parses a PUBLISH frame (`header`, `body`) carrying a benchmark payload.
pub fn parse_publish(header: u8, body: &[u8]) -> Result<Received, Error> {
    parse_publish_v(header, body, false)
}

/// Reads a variable byte integer at `at`: (value, bytes it took).
fn varint_at(body: &[u8], at: usize) -> Option<(usize, usize)> {
    let mut v = 0usize;
    for i in 0..4 {
        let b = *body.get(at + i)?;
        v |= usize::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// [`parse_publish`]; `v5`: the PUBLISH has properties (skipped).
pub fn parse_publish_v(header: u8, body: &[u8], v5: bool) -> Result<Received, Error> {
    let bad = || Error::Protocol("malformed PUBLISH".into());
    let qos = (header >> 1) & 3;
    let tlen = usize::from(u16::from_be_bytes([*body.first().ok_or_else(bad)?, *body.get(1).ok_or_else(bad)?]));
    let mut at = 2 + tlen;
    let mut pkid = 0;
    if qos > 0 {
        pkid = u16::from_be_bytes([*body.get(at).ok_or_else(bad)?, *body.get(at + 1).ok_or_else(bad)?]);
        at += 2;
    }
    if v5 {
        let (len, took) = varint_at(body, at).ok_or_else(bad)?;
        at += took + len;
    }
    let p =
        body.get(at..at + PAYLOAD_HEADER).ok_or_else(|| Error::Protocol("payload without benchmark header".into()))?;
    let word = |r: std::ops::Range<usize>| p[r].iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    Ok(Received { qos, pkid, publisher: word(0..4) as u32, seq: word(4..12), ts: word(12..20) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_round_trip() {
        let mut b = BytesMut::new();
        publish(&mut b, "bench/3", 1, 77, Stamp { publisher: 3, seq: 123456789, ts: 42 }, 64);
        let f = next_frame(&b).unwrap().unwrap();
        assert_eq!(f.len, b.len());
        let r = parse_publish(f.header, &b[f.body..f.len]).unwrap();
        assert_eq!(r, Received { qos: 1, pkid: 77, publisher: 3, seq: 123456789, ts: 42 });
        assert_eq!(f.len - f.body, 2 + 7 + 2 + 64);
    }

    #[test]
    fn publish_v5_round_trip() {
        let mut b = BytesMut::new();
        let stamp = Stamp { publisher: 9, seq: 5, ts: 1 };
        publish_flags(&mut b, "soak/x", 0x08 | (2 << 1) | 1, 300, stamp, 40, true);
        let f = next_frame(&b).unwrap().unwrap();
        assert_eq!(f.header, 0x3D);
        let r = parse_publish_v(f.header, &b[f.body..f.len], true).unwrap();
        assert_eq!(r, Received { qos: 2, pkid: 300, publisher: 9, seq: 5, ts: 1 });
    }

    #[test]
    fn frames_incomplete_and_large() {
        let mut b = BytesMut::new();
        publish(&mut b, "t", 0, 0, Stamp { publisher: 0, seq: 0, ts: 0 }, 300);
        assert!(next_frame(&b[..b.len() - 1]).unwrap().is_none());
        assert!(next_frame(&b[..2]).unwrap().is_none());
        assert_eq!(next_frame(&b).unwrap().unwrap().body, 3);
    }
}
