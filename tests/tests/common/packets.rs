//! MQTT packet builders and a parser for what the broker sends.

#![allow(dead_code)] // each test binary uses a different subset

// ---------------------------------------------------------------------------
// Packet encoding
// ---------------------------------------------------------------------------

pub const CONNECT: u8 = 1;
pub const CONNACK: u8 = 2;
pub const PUBLISH: u8 = 3;
pub const PUBACK: u8 = 4;
pub const PUBREC: u8 = 5;
pub const PUBREL: u8 = 6;
pub const PUBCOMP: u8 = 7;
pub const SUBSCRIBE: u8 = 8;
pub const SUBACK: u8 = 9;
pub const UNSUBSCRIBE: u8 = 10;
pub const UNSUBACK: u8 = 11;
pub const PINGREQ: u8 = 12;
pub const PINGRESP: u8 = 13;
pub const DISCONNECT: u8 = 14;
pub const AUTH: u8 = 15;

/// Encodes a remaining length as a variable byte integer.
pub fn varint(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            return out;
        }
    }
}

/// A UTF-8 string / binary field with its two-byte length.
pub fn mqtt_str(s: impl AsRef<[u8]>) -> Vec<u8> {
    let s = s.as_ref();
    let mut out = (s.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(s);
    out
}

/// A whole packet: first byte, remaining length, body.
pub fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    out.extend(varint(body.len()));
    out.extend_from_slice(body);
    out
}

/// The protocol level of a raw connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    V31,
    V311,
    V5,
}

/// A will for raw CONNECT packets.
#[derive(Debug, Clone)]
pub struct Will {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: u8,
    pub retain: bool,
}

/// Options of a raw CONNECT.
#[derive(Debug, Clone)]
pub struct ConnectOpts {
    pub proto: Proto,
    pub client_id: String,
    pub clean: bool,
    pub keep_alive: u16,
    pub will: Option<Will>,
    /// v5 only: the CONNECT properties, already encoded (without length).
    pub props: Vec<u8>,
    pub username: Option<String>,
    pub password: Option<Vec<u8>>,
}

impl ConnectOpts {
    pub fn new(proto: Proto, client_id: &str) -> ConnectOpts {
        ConnectOpts {
            proto,
            client_id: client_id.into(),
            clean: true,
            keep_alive: 60,
            will: None,
            props: Vec::new(),
            username: None,
            password: None,
        }
    }
    pub fn clean(mut self, clean: bool) -> Self {
        self.clean = clean;
        self
    }
    pub fn keep_alive(mut self, secs: u16) -> Self {
        self.keep_alive = secs;
        self
    }
    pub fn will(mut self, topic: &str, payload: &[u8], qos: u8, retain: bool) -> Self {
        self.will = Some(Will { topic: topic.into(), payload: payload.into(), qos, retain });
        self
    }
    pub fn props(mut self, props: Vec<u8>) -> Self {
        self.props = props;
        self
    }
    pub fn username(mut self, name: &str) -> Self {
        self.username = Some(name.into());
        self
    }
    pub fn password(mut self, password: &[u8]) -> Self {
        self.password = Some(password.into());
        self
    }
}

pub fn connect_packet(o: &ConnectOpts) -> Vec<u8> {
    let mut body = Vec::new();
    match o.proto {
        Proto::V31 => {
            body.extend(mqtt_str("MQIsdp"));
            body.push(3);
        }
        Proto::V311 => {
            body.extend(mqtt_str("MQTT"));
            body.push(4);
        }
        Proto::V5 => {
            body.extend(mqtt_str("MQTT"));
            body.push(5);
        }
    }
    let mut flags = 0u8;
    if o.clean {
        flags |= 0x02;
    }
    if o.username.is_some() {
        flags |= 0x80;
    }
    if o.password.is_some() {
        flags |= 0x40;
    }
    if let Some(w) = &o.will {
        flags |= 0x04 | (w.qos << 3);
        if w.retain {
            flags |= 0x20;
        }
    }
    body.push(flags);
    body.extend(o.keep_alive.to_be_bytes());
    if o.proto == Proto::V5 {
        body.extend(varint(o.props.len()));
        body.extend(&o.props);
    }
    body.extend(mqtt_str(&o.client_id));
    if let Some(w) = &o.will {
        if o.proto == Proto::V5 {
            body.push(0); // no will properties
        }
        body.extend(mqtt_str(&w.topic));
        body.extend(mqtt_str(&w.payload));
    }
    if let Some(u) = &o.username {
        body.extend(mqtt_str(u));
    }
    if let Some(p) = &o.password {
        body.extend(mqtt_str(p));
    }
    packet(0x10, &body)
}

/// A PUBLISH; `pid` is ignored at QoS 0. `props` is used only if `v5`.
pub fn publish_packet(v5: bool, topic: &str, qos: u8, retain: bool, dup: bool, pid: u16, payload: &[u8]) -> Vec<u8> {
    publish_packet_props(v5, topic, qos, retain, dup, pid, &[], payload)
}

#[allow(clippy::too_many_arguments)]
pub fn publish_packet_props(
    v5: bool,
    topic: &str,
    qos: u8,
    retain: bool,
    dup: bool,
    pid: u16,
    props: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let mut first = 0x30 | (qos << 1);
    if retain {
        first |= 1;
    }
    if dup {
        first |= 0x08;
    }
    let mut body = mqtt_str(topic);
    if qos > 0 {
        body.extend(pid.to_be_bytes());
    }
    if v5 {
        body.extend(varint(props.len()));
        body.extend(props);
    }
    body.extend_from_slice(payload);
    packet(first, &body)
}

/// A SUBSCRIBE with the correct fixed-header flags (0b0010).
pub fn subscribe_packet(v5: bool, pid: u16, filters: &[(&str, u8)]) -> Vec<u8> {
    subscribe_packet_props(v5, pid, &[], filters)
}

/// A SUBSCRIBE with v5 properties (ignored unless `v5`).
pub fn subscribe_packet_props(v5: bool, pid: u16, props: &[u8], filters: &[(&str, u8)]) -> Vec<u8> {
    let mut body = pid.to_be_bytes().to_vec();
    if v5 {
        body.extend(varint(props.len()));
        body.extend(props);
    }
    for (f, opts) in filters {
        body.extend(mqtt_str(f));
        body.push(*opts);
    }
    packet(0x82, &body)
}

pub fn unsubscribe_packet(v5: bool, pid: u16, filters: &[&str]) -> Vec<u8> {
    let mut body = pid.to_be_bytes().to_vec();
    if v5 {
        body.push(0);
    }
    for f in filters {
        body.extend(mqtt_str(f));
    }
    packet(0xA2, &body)
}

/// PUBACK / PUBREC / PUBREL / PUBCOMP with just a packet id.
pub fn ack_packet(kind: u8, pid: u16) -> Vec<u8> {
    let first = if kind == PUBREL { 0x62 } else { kind << 4 };
    packet(first, &pid.to_be_bytes())
}

pub fn disconnect_packet() -> Vec<u8> {
    vec![0xE0, 0]
}

pub fn pingreq_packet() -> Vec<u8> {
    vec![0xC0, 0]
}

/// A v5 user property (0x26) encoded for a property list.
pub fn user_prop(k: &str, v: &str) -> Vec<u8> {
    let mut out = vec![0x26];
    out.extend(mqtt_str(k));
    out.extend(mqtt_str(v));
    out
}

/// A v5 AUTH with an Authentication Method (0x15) and Data (0x16).
pub fn auth_packet(reason: u8, method: &str, data: &[u8]) -> Vec<u8> {
    let props = auth_props(method, Some(data));
    let mut body = vec![reason];
    body.extend(varint(props.len()));
    body.extend(props);
    packet(0xF0, &body)
}

/// v5 Authentication Method (0x15) and, if given, Authentication Data
/// (0x16) properties, for CONNECT or AUTH.
pub fn auth_props(method: &str, data: Option<&[u8]>) -> Vec<u8> {
    let mut p = vec![0x15];
    p.extend(mqtt_str(method));
    if let Some(d) = data {
        p.push(0x16);
        p.extend(mqtt_str(d));
    }
    p
}

/// A v5 Session Expiry Interval property (0x11) for a property list.
pub fn session_expiry(secs: u32) -> Vec<u8> {
    let mut p = vec![0x11];
    p.extend(secs.to_be_bytes());
    p
}

// ---------------------------------------------------------------------------
// Packet decoding
// ---------------------------------------------------------------------------

/// One packet as received: type, fixed-header flags, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pkt {
    pub kind: u8,
    pub flags: u8,
    pub body: Vec<u8>,
}

/// A decoded PUBLISH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pub {
    pub topic: String,
    pub qos: u8,
    pub retain: bool,
    pub dup: bool,
    pub pid: u16,
    /// v5: the raw property bytes.
    pub props: Vec<u8>,
    pub payload: Vec<u8>,
}

fn read_varint(b: &[u8]) -> (usize, usize) {
    let mut n = 0usize;
    let mut mult = 1usize;
    for (i, byte) in b.iter().enumerate().take(4) {
        n += (*byte as usize & 0x7F) * mult;
        mult *= 128;
        if byte & 0x80 == 0 {
            return (n, i + 1);
        }
    }
    panic!("bad varint in {b:?}")
}

impl Pkt {
    pub fn publish(&self, v5: bool) -> Pub {
        assert_eq!(self.kind, PUBLISH, "expected PUBLISH, got {self:?}");
        let b = &self.body;
        let tlen = u16::from_be_bytes([b[0], b[1]]) as usize;
        let topic = String::from_utf8(b[2..2 + tlen].to_vec()).expect("utf-8 topic");
        let mut i = 2 + tlen;
        let qos = (self.flags >> 1) & 3;
        let mut pid = 0;
        if qos > 0 {
            pid = u16::from_be_bytes([b[i], b[i + 1]]);
            i += 2;
        }
        let mut props = Vec::new();
        if v5 {
            let (plen, n) = read_varint(&b[i..]);
            i += n;
            props = b[i..i + plen].to_vec();
            i += plen;
        }
        Pub { topic, qos, retain: self.flags & 1 == 1, dup: self.flags & 8 == 8, pid, props, payload: b[i..].to_vec() }
    }

    /// The packet id of an ack / SUBACK / UNSUBACK.
    pub fn pid(&self) -> u16 {
        u16::from_be_bytes([self.body[0], self.body[1]])
    }

    /// CONNACK: (session present, return / reason code).
    pub fn connack(&self) -> (bool, u8) {
        assert_eq!(self.kind, CONNACK, "expected CONNACK, got {self:?}");
        (self.body[0] & 1 == 1, self.body[1])
    }

    /// v5 CONNACK: the property bytes.
    pub fn connack_props(&self) -> Vec<u8> {
        assert_eq!(self.kind, CONNACK, "expected CONNACK, got {self:?}");
        let (plen, n) = read_varint(&self.body[2..]);
        self.body[2 + n..2 + n + plen].to_vec()
    }

    /// SUBACK / UNSUBACK: the return / reason codes.
    pub fn ack_codes(&self, v5: bool) -> Vec<u8> {
        assert!(self.kind == SUBACK || self.kind == UNSUBACK, "expected SUBACK/UNSUBACK, got {self:?}");
        let mut i = 2;
        if v5 {
            let (plen, n) = read_varint(&self.body[i..]);
            i += n + plen;
        }
        self.body[i..].to_vec()
    }

    /// v5 SUBACK/UNSUBACK, or PUBACK/PUBREC/PUBREL/PUBCOMP with a reason
    /// code: the Reason String property, if any.
    pub fn reason_string(&self) -> Option<String> {
        let at = match self.kind {
            SUBACK | UNSUBACK => 2,
            _ if self.body.len() > 3 => 3,
            _ => return None,
        };
        let (plen, n) = read_varint(&self.body[at..]);
        props_list(&self.body[at + n..at + n + plen]).into_iter().find_map(|(id, v)| match v {
            Prop::Str(s) if id == 0x1F => Some(s),
            _ => None,
        })
    }

    /// v5 DISCONNECT / AUTH reason code (0 when the body is empty).
    pub fn reason(&self) -> u8 {
        self.body.first().copied().unwrap_or(0)
    }

    /// v5 DISCONNECT / AUTH: the property bytes after the reason code.
    pub fn reason_props(&self) -> Vec<u8> {
        if self.body.len() < 2 {
            return Vec::new();
        }
        let (plen, n) = read_varint(&self.body[1..]);
        self.body[1 + n..1 + n + plen].to_vec()
    }
}

/// A decoded v5 property value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prop {
    Int(u32),
    Str(String),
    Pair(String, String),
    Bin(Vec<u8>),
}

/// Decodes a v5 property list into (identifier, value), in order.
/// Panics on an unknown identifier.
pub fn props_list(props: &[u8]) -> Vec<(u8, Prop)> {
    let mut out = Vec::new();
    let mut i = 0;
    let bin = |i: &mut usize| -> Vec<u8> {
        let l = u16::from_be_bytes([props[*i], props[*i + 1]]) as usize;
        let v = props[*i + 2..*i + 2 + l].to_vec();
        *i += 2 + l;
        v
    };
    let s = |i: &mut usize| String::from_utf8(bin(i)).expect("utf-8 property");
    let int = |i: &mut usize, n: usize| -> Prop {
        let v = props[*i..*i + n].iter().fold(0u32, |a, b| (a << 8) | *b as u32);
        *i += n;
        Prop::Int(v)
    };
    while i < props.len() {
        let id = props[i];
        i += 1;
        let v = match id {
            0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A => int(&mut i, 1),
            0x13 | 0x21 | 0x22 | 0x23 => int(&mut i, 2),
            0x02 | 0x11 | 0x18 | 0x27 => int(&mut i, 4),
            0x0B => {
                let (v, n) = read_varint(&props[i..]);
                i += n;
                Prop::Int(v as u32)
            }
            0x03 | 0x08 | 0x12 | 0x15 | 0x1A | 0x1C | 0x1F => Prop::Str(s(&mut i)),
            0x09 | 0x16 => Prop::Bin(bin(&mut i)),
            0x26 => {
                let k = s(&mut i);
                Prop::Pair(k, s(&mut i))
            }
            other => panic!("unknown property {other:#x} in {props:?}"),
        };
        out.push((id, v));
    }
    out
}

/// The integer property `id`, if present.
pub fn int_prop(props: &[u8], id: u8) -> Option<u32> {
    props_list(props).into_iter().find_map(|(i, v)| match v {
        Prop::Int(n) if i == id => Some(n),
        _ => None,
    })
}

/// The user properties (0x26) of a v5 property list, in order.
pub fn user_props(props: &[u8]) -> Vec<(String, String)> {
    props_list(props)
        .into_iter()
        .filter_map(|(_, v)| match v {
            Prop::Pair(k, v) => Some((k, v)),
            _ => None,
        })
        .collect()
}
