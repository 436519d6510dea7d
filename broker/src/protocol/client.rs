//! The client side of the wire protocol, for the bridge (`bridge/link.rs`):
//! encoding of what a client sends (CONNECT, SUBSCRIBE, PUBLISH, the
//! acknowledgements, PINGREQ, DISCONNECT) and decoding of what a server
//! sends (CONNACK, SUBACK, PUBLISH, acknowledgements, PINGRESP,
//! DISCONNECT). PUBLISH and the acknowledgements share the server side's
//! code (and its guards around `mqttbytes`); the rest is small and written
//! here.

use bytes::{BufMut, BytesMut};
use mqttbytes::FixedHeader;

use super::decode::{as_u32, decode_ack, decode_disconnect, decode_publish};
use super::encode::{encode_ack, encode_publish, reason_and_props, write_varint};
use super::props::{self, read_varint};
use super::*;

/// The CONNECT a bridge sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConnect {
    pub version: Version,
    /// Protocol level | 0x80 (3.1.1 only): Mosquitto's `try_private`.
    pub bridge: bool,
    pub client_id: String,
    pub clean_start: bool,
    pub keep_alive: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    /// MQTT 5: Session Expiry Interval (seconds; `u32::MAX` never).
    pub session_expiry: u32,
    /// MQTT 5: the Receive Maximum and Maximum Packet Size we accept.
    pub receive_maximum: u16,
    pub maximum_packet_size: u32,
    pub will: Option<ClientWill>,
}

/// A will a client's CONNECT carries (no properties).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientWill {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: QoS,
    pub retain: bool,
}

/// What a client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientPacket {
    Connect(ClientConnect),
    Subscribe(Subscribe),
    Publish(Publish),
    PubAck(Ack<PubAckReason>),
    PubRec(Ack<PubRecReason>),
    PubRel(Ack<PubRelReason>),
    PubComp(Ack<PubCompReason>),
    PingReq,
    Disconnect(DisconnectReason),
}

fn put_str(out: &mut BytesMut, s: &[u8]) -> Result<(), EncodeError> {
    if s.len() > usize::from(u16::MAX) {
        return Err(EncodeError::StringTooLong(s.len()));
    }
    out.put_u16(s.len() as u16);
    out.put_slice(s);
    Ok(())
}

/// Appends `packet`, encoded for `version`, to `buf`; on error nothing.
pub fn encode_client(packet: &ClientPacket, version: Version, buf: &mut BytesMut) -> Result<(), EncodeError> {
    let start = buf.len();
    let r = encode_inner(packet, version, buf);
    if r.is_err() {
        buf.truncate(start);
    }
    r
}

fn frame(byte1: u8, body: &[u8], buf: &mut BytesMut) {
    buf.put_u8(byte1);
    write_varint(buf, body.len());
    buf.put_slice(body);
}

fn encode_inner(packet: &ClientPacket, version: Version, buf: &mut BytesMut) -> Result<(), EncodeError> {
    let v5 = version.is_v5();
    match packet {
        ClientPacket::Connect(c) => {
            let mut b = BytesMut::new();
            let (name, level): (&[u8], u8) = match c.version {
                Version::V31 => (b"MQIsdp", 3),
                Version::V311 => (b"MQTT", 4),
                Version::V5 => (b"MQTT", 5),
            };
            put_str(&mut b, name)?;
            b.put_u8(if c.bridge && !c.version.is_v5() { level | 0x80 } else { level });
            let will = c.will.as_ref().map_or(0, |w| 0x04 | (w.qos as u8) << 3 | u8::from(w.retain) << 5);
            let flags = u8::from(c.username.is_some()) << 7
                | u8::from(c.password.is_some()) << 6
                | will
                | u8::from(c.clean_start) << 1;
            b.put_u8(flags);
            b.put_u16(c.keep_alive);
            if c.version.is_v5() {
                let mut p = BytesMut::new();
                if c.session_expiry > 0 {
                    p.put_u8(0x11);
                    p.put_u32(c.session_expiry);
                }
                p.put_u8(0x21);
                p.put_u16(c.receive_maximum.max(1));
                p.put_u8(0x27);
                p.put_u32(c.maximum_packet_size.max(1));
                write_varint(&mut b, p.len());
                b.put_slice(&p);
            }
            put_str(&mut b, c.client_id.as_bytes())?;
            if let Some(w) = &c.will {
                if c.version.is_v5() {
                    // No will properties.
                    b.put_u8(0);
                }
                put_str(&mut b, w.topic.as_bytes())?;
                put_str(&mut b, &w.payload)?;
            }
            if let Some(u) = &c.username {
                put_str(&mut b, u.as_bytes())?;
            }
            if let Some(p) = &c.password {
                put_str(&mut b, p.as_bytes())?;
            }
            frame(0x10, &b, buf);
        }
        ClientPacket::Subscribe(s) => {
            let mut b = BytesMut::new();
            b.put_u16(s.pkid);
            if v5 {
                b.put_u8(0);
            }
            for f in &s.filters {
                put_str(&mut b, f.filter.as_bytes())?;
                let o = f.options;
                let opts = if v5 {
                    o.qos as u8
                        | u8::from(o.no_local) << 2
                        | u8::from(o.retain_as_published) << 3
                        | (o.retain_handling as u8) << 4
                } else {
                    o.qos as u8
                };
                b.put_u8(opts);
            }
            frame(0x82, &b, buf);
        }
        ClientPacket::Publish(p) => encode_publish(p.clone(), v5, buf)?,
        ClientPacket::PubAck(a) => encode_ack(0x40, a, v5, buf)?,
        ClientPacket::PubRec(a) => encode_ack(0x50, a, v5, buf)?,
        ClientPacket::PubRel(a) => encode_ack(0x62, a, v5, buf)?,
        ClientPacket::PubComp(a) => encode_ack(0x70, a, v5, buf)?,
        ClientPacket::PingReq => buf.put_slice(&[0xC0, 0]),
        ClientPacket::Disconnect(reason) if v5 => reason_and_props(0xE0, reason.code(), &[], buf),
        ClientPacket::Disconnect(_) => buf.put_slice(&[0xE0, 0]),
    }
    Ok(())
}

/// What a server sends, as the bridge sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerPacket {
    /// The CONNACK's code is the MQTT 5 reason code (3.1.1 return codes
    /// are mapped to theirs).
    ConnAck(ConnAck),
    /// The codes are MQTT 5's (a 3.1.1 failure, 0x80, is
    /// [`SubAckReason::UnspecifiedError`]).
    SubAck {
        pkid: u16,
        codes: Vec<SubAckReason>,
    },
    Publish(Publish),
    PubAck(Ack<PubAckReason>),
    PubRec(Ack<PubRecReason>),
    PubRel(Ack<PubRelReason>),
    PubComp(Ack<PubCompReason>),
    PingResp,
    Disconnect(Disconnect),
    /// A packet the bridge does not use (UNSUBACK, AUTH): ignored.
    Other(u8),
}

/// Decodes the next packet a server sent from `buf`, consuming it only
/// when it is whole. `Ok(None)`: more bytes are needed.
pub fn decode_server(buf: &mut BytesMut, version: Version, max: usize) -> Result<Option<ServerPacket>, DecodeError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let Some((remaining, len_len)) = read_varint(&buf[1..])? else { return Ok(None) };
    let total = 1 + len_len + remaining as usize;
    if total > max {
        return Err(DecodeError::TooLarge { size: total, max });
    }
    if buf.len() < total {
        return Ok(None);
    }
    let frame = buf.split_to(total).freeze();
    let hlen = 1 + len_len;
    let body = &frame[hlen..];
    let v5 = version.is_v5();
    let ptype = frame[0] >> 4;
    Ok(Some(match ptype {
        2 => ServerPacket::ConnAck(decode_connack(body, v5)?),
        3 => {
            let header = FixedHeader::new(frame[0], len_len, remaining as usize);
            ServerPacket::Publish(decode_publish(&frame, header, hlen, v5)?)
        }
        4 => ServerPacket::PubAck(decode_ack(body, v5)?),
        5 => ServerPacket::PubRec(decode_ack(body, v5)?),
        6 => ServerPacket::PubRel(decode_ack(body, v5)?),
        7 => ServerPacket::PubComp(decode_ack(body, v5)?),
        9 => {
            let pkid =
                body.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]])).ok_or(DecodeError::Malformed("SUBACK"))?;
            let mut at = 2;
            if v5 {
                let Some((plen, n)) = read_varint(&body[2..])? else { return Err(DecodeError::Malformed("SUBACK")) };
                at += n + plen as usize;
            }
            let codes = body.get(at..).filter(|c| !c.is_empty()).ok_or(DecodeError::Malformed("SUBACK"))?;
            let codes = codes.iter().map(|c| SubAckReason::from_peer(*c)).collect();
            ServerPacket::SubAck { pkid, codes }
        }
        13 => ServerPacket::PingResp,
        14 if !v5 => ServerPacket::Disconnect(Disconnect::default()),
        14 => match decode_disconnect(body)? {
            Packet::Disconnect(d) => ServerPacket::Disconnect(d),
            _ => ServerPacket::Other(14),
        },
        other => ServerPacket::Other(other),
    }))
}

fn decode_connack(body: &[u8], v5: bool) -> Result<ConnAck, DecodeError> {
    let (&[flags, code], rest) = (
        body.get(..2).and_then(|b| <&[u8; 2]>::try_from(b).ok()).ok_or(DecodeError::Malformed("CONNACK"))?,
        &body[2..],
    );
    let code = if v5 { ConnectReason::from_peer(code) } else { ConnectReason::from_v311(code) };
    let mut c = ConnAck { session_present: flags & 1 != 0, code, props: ConnAckProps::default() };
    if !v5 {
        return Ok(c);
    }
    let p = &mut c.props;
    let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
    for (id, v) in props::entries(rest) {
        match id {
            0x11 => p.session_expiry_interval = Some(as_u32(v)),
            0x21 => p.receive_maximum = Some(as_u32(v) as u16).filter(|r| *r > 0),
            0x24 => p.maximum_qos = v.first().copied(),
            0x25 => p.retain_available = v.first().map(|b| *b != 0),
            0x27 => p.maximum_packet_size = Some(as_u32(v)).filter(|m| *m > 0),
            0x12 => p.assigned_client_identifier = Some(text(v)),
            0x22 => p.topic_alias_maximum = Some(as_u32(v) as u16),
            0x1F => p.reason_string = Some(text(v)),
            0x13 => p.server_keep_alive = Some(as_u32(v) as u16),
            _ => {}
        }
    }
    Ok(c)
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
