//! Shared helpers for the end-to-end tests: an in-process broker on
//! 127.0.0.1:0, a byte-level MQTT client for the edge cases client
//! libraries hide, and small wrappers around rumqttc event loops.
//!
//! Every wait here is bounded (`TIMEOUT`), so a broken broker makes a test
//! fail instead of hang.

#![allow(dead_code)] // each test binary uses a different subset

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Upper bound for any single wait on the broker.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait when checking that something does NOT arrive.
pub const QUIET: Duration = Duration::from_millis(300);

/// Awaits `fut`, panicking with `what` if it takes longer than `TIMEOUT`.
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(TIMEOUT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {TIMEOUT:?} waiting for {what}"),
    }
}

// ---------------------------------------------------------------------------
// Broker
// ---------------------------------------------------------------------------

/// A broker running in this process, with its own temporary data directory.
pub struct TestBroker {
    pub broker: edgemq::Broker,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl TestBroker {
    pub async fn start() -> TestBroker {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut edgemq::Config)) -> TestBroker {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = edgemq::Config {
            listeners: vec!["127.0.0.1:0".parse().expect("addr")],
            data_dir: dir.path().to_owned(),
            ..edgemq::Config::default()
        };
        tweak(&mut cfg);
        let broker = within("broker start", edgemq::Broker::start(cfg)).await.expect("broker starts");
        let addr = broker.local_addrs()[0];
        TestBroker { broker, addr, _dir: dir }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub async fn shutdown(self) {
        within("broker shutdown", self.broker.shutdown()).await;
    }
}

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
}

impl ConnectOpts {
    pub fn new(proto: Proto, client_id: &str) -> ConnectOpts {
        ConnectOpts { proto, client_id: client_id.into(), clean: true, keep_alive: 60, will: None, props: Vec::new() }
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

    /// v5 DISCONNECT reason code (0 when the body is empty).
    pub fn reason(&self) -> u8 {
        self.body.first().copied().unwrap_or(0)
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

// ---------------------------------------------------------------------------
// Raw client
// ---------------------------------------------------------------------------

/// What a read returned.
#[derive(Debug)]
pub enum Recv {
    Packet(Pkt),
    /// The broker closed (EOF or reset).
    Closed,
    TimedOut,
}

/// A byte-level MQTT client over TCP.
pub struct Raw {
    pub stream: TcpStream,
    buf: Vec<u8>,
    /// Packets read ahead while waiting for a specific one (e.g. PUBLISHes
    /// that arrive between PUBREC and PUBREL); returned first by reads.
    stash: VecDeque<Pkt>,
    pub v5: bool,
}

impl Raw {
    pub async fn open(addr: SocketAddr) -> Raw {
        let stream = within("tcp connect", TcpStream::connect(addr)).await.expect("tcp connect");
        stream.set_nodelay(true).expect("nodelay");
        Raw { stream, buf: Vec::new(), stash: VecDeque::new(), v5: false }
    }

    /// Opens a connection, sends CONNECT, expects CONNACK accepted;
    /// returns the client and the session-present flag.
    pub async fn connect(addr: SocketAddr, o: &ConnectOpts) -> (Raw, bool) {
        let mut c = Raw::open(addr).await;
        c.v5 = o.proto == Proto::V5;
        c.send(&connect_packet(o)).await;
        let ack = c.expect("CONNACK").await;
        let (sp, rc) = ack.connack();
        assert_eq!(rc, 0, "CONNECT of {:?} refused: {ack:?}", o.client_id);
        (c, sp)
    }

    /// A 3.1.1 clean-session client.
    pub async fn v311(addr: SocketAddr, id: &str) -> Raw {
        Raw::connect(addr, &ConnectOpts::new(Proto::V311, id)).await.0
    }

    /// A 5.0 clean-start client.
    pub async fn v5(addr: SocketAddr, id: &str) -> Raw {
        Raw::connect(addr, &ConnectOpts::new(Proto::V5, id)).await.0
    }

    /// Sends bytes. A write error (the broker already closed) is ignored:
    /// the test then observes the close on read.
    pub async fn send(&mut self, bytes: &[u8]) {
        let _ = within("write", self.stream.write_all(bytes)).await;
    }

    fn take_packet(&mut self) -> Option<Pkt> {
        if self.buf.len() < 2 {
            return None;
        }
        let mut len = 0usize;
        let mut mult = 1usize;
        let mut i = 1;
        loop {
            let b = *self.buf.get(i)?;
            len += (b as usize & 0x7F) * mult;
            mult *= 128;
            i += 1;
            if b & 0x80 == 0 {
                break;
            }
            assert!(i <= 4, "broker sent a bad remaining length: {:?}", &self.buf[..i]);
        }
        if self.buf.len() < i + len {
            return None;
        }
        let first = self.buf[0];
        let body = self.buf[i..i + len].to_vec();
        self.buf.drain(..i + len);
        Some(Pkt { kind: first >> 4, flags: first & 0x0F, body })
    }

    /// Reads one packet, waiting at most `wait`.
    pub async fn recv_within(&mut self, wait: Duration) -> Recv {
        if let Some(p) = self.stash.pop_front() {
            return Recv::Packet(p);
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(p) = self.take_packet() {
                return Recv::Packet(p);
            }
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Err(_) => return Recv::TimedOut,
                Ok(Ok(0)) | Ok(Err(_)) => return Recv::Closed,
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Reads one packet; panics if the connection closes or nothing comes.
    pub async fn expect(&mut self, what: &str) -> Pkt {
        match self.recv_within(TIMEOUT).await {
            Recv::Packet(p) => p,
            other => panic!("waiting for {what}: {other:?}"),
        }
    }

    /// Reads packets of `kind`, skipping PINGRESP.
    /// Waits for a packet of `kind`. PUBLISH packets that arrive first are
    /// kept for later reads: a server may deliver messages before it
    /// acknowledges (a PUBACK held until the message is on disk, say).
    pub async fn expect_kind(&mut self, kind: u8, what: &str) -> Pkt {
        let mut ahead = Vec::new();
        loop {
            let p = self.expect(what).await;
            if p.kind == PINGRESP && kind != PINGRESP {
                continue;
            }
            if p.kind == PUBLISH && kind != PUBLISH {
                ahead.push(p);
                continue;
            }
            assert_eq!(p.kind, kind, "waiting for {what}, got {p:?}");
            let rest = std::mem::take(&mut self.stash);
            self.stash = ahead.into_iter().chain(rest).collect();
            return p;
        }
    }

    /// Reads one PUBLISH.
    pub async fn expect_publish(&mut self) -> Pub {
        let v5 = self.v5;
        self.expect_kind(PUBLISH, "PUBLISH").await.publish(v5)
    }

    /// Reads until the broker closes the connection; returns what came
    /// before the close. Panics if the connection stays open.
    pub async fn expect_closed(&mut self, what: &str) -> Vec<Pkt> {
        let mut seen = Vec::new();
        loop {
            match self.recv_within(TIMEOUT).await {
                Recv::Packet(p) => seen.push(p),
                Recv::Closed => return seen,
                Recv::TimedOut => panic!("{what}: broker kept the connection open; received {seen:?}"),
            }
        }
    }

    /// Asserts nothing arrives (and the connection stays open) for `QUIET`.
    pub async fn expect_silence(&mut self, what: &str) {
        match self.recv_within(QUIET).await {
            Recv::TimedOut => {}
            other => panic!("{what}: expected nothing, got {other:?}"),
        }
    }

    /// SUBSCRIBE and wait for the SUBACK; returns its codes.
    pub async fn subscribe(&mut self, pid: u16, filters: &[(&str, u8)]) -> Vec<u8> {
        let v5 = self.v5;
        self.send(&subscribe_packet(v5, pid, filters)).await;
        let ack = self.expect_kind(SUBACK, "SUBACK").await;
        assert_eq!(ack.pid(), pid, "SUBACK packet id");
        ack.ack_codes(v5)
    }

    /// PUBLISH and complete the QoS handshake from the sender's side.
    pub async fn publish(&mut self, topic: &str, qos: u8, retain: bool, pid: u16, payload: &[u8]) {
        let v5 = self.v5;
        self.send(&publish_packet(v5, topic, qos, retain, false, pid, payload)).await;
        match qos {
            0 => {}
            1 => {
                let a = self.expect_kind(PUBACK, "PUBACK").await;
                assert_eq!(a.pid(), pid);
            }
            _ => {
                let a = self.expect_kind(PUBREC, "PUBREC").await;
                assert_eq!(a.pid(), pid);
                self.send(&ack_packet(PUBREL, pid)).await;
                let c = self.expect_kind(PUBCOMP, "PUBCOMP").await;
                assert_eq!(c.pid(), pid);
            }
        }
    }

    /// Reads one PUBLISH and acknowledges it (QoS 1: PUBACK; QoS 2: PUBREC,
    /// then waits for PUBREL and sends PUBCOMP).
    pub async fn receive_acked(&mut self) -> Pub {
        let p = self.expect_publish().await;
        match p.qos {
            0 => {}
            1 => self.send(&ack_packet(PUBACK, p.pid)).await,
            _ => {
                self.send(&ack_packet(PUBREC, p.pid)).await;
                // Other packets (e.g. the next PUBLISH) may come before the PUBREL.
                let mut ahead = Vec::new();
                loop {
                    let q = self.expect("PUBREL").await;
                    if q.kind == PUBREL && q.pid() == p.pid {
                        assert_eq!(q.flags, 0b0010, "PUBREL flags [MQTT-3.6.1-1]");
                        break;
                    }
                    ahead.push(q);
                }
                for q in ahead.into_iter().rev() {
                    self.stash.push_front(q);
                }
                self.send(&ack_packet(PUBCOMP, p.pid)).await;
            }
        }
        p
    }

    /// Sends DISCONNECT and waits for the broker to close.
    pub async fn disconnect(mut self) {
        self.send(&disconnect_packet()).await;
        let _ = self.recv_within(TIMEOUT).await;
    }
}

/// A well-behaved client that checks the broker still serves it: it
/// subscribes to its own topic and, on `check`, publishes a QoS 1 message
/// to it and expects it back.
pub struct Bystander {
    pub raw: Raw,
    topic: String,
    n: u16,
}

impl Bystander {
    pub async fn new(addr: SocketAddr, name: &str) -> Bystander {
        let mut raw = Raw::v311(addr, name).await;
        let topic = format!("bystander/{name}");
        assert_eq!(raw.subscribe(1, &[(&topic, 1)]).await, vec![1]);
        Bystander { raw, topic, n: 1 }
    }

    pub async fn check(&mut self, after: &str) {
        self.n += 1;
        let payload = format!("alive {}", self.n);
        let pid = self.n;
        self.raw.send(&publish_packet(false, &self.topic, 1, false, false, pid, payload.as_bytes())).await;
        // PUBACK and the forwarded PUBLISH may come in either order.
        let (mut got_ack, mut got_msg) = (false, false);
        while !(got_ack && got_msg) {
            let p = match self.raw.recv_within(TIMEOUT).await {
                Recv::Packet(p) => p,
                other => panic!("bystander disturbed after {after}: {other:?}"),
            };
            match p.kind {
                PUBACK => got_ack = true,
                PUBLISH => {
                    let m = p.publish(false);
                    assert_eq!(m.payload, payload.as_bytes(), "bystander after {after}");
                    self.raw.send(&ack_packet(PUBACK, m.pid)).await;
                    got_msg = true;
                }
                _ => panic!("bystander after {after}: unexpected {p:?}"),
            }
        }
    }
}

// ---------------------------------------------------------------------------
// rumqttc wrappers
// ---------------------------------------------------------------------------

/// A rumqttc 3.1.1 client whose event loop runs in a task; incoming
/// packets arrive on `rx`.
pub struct V4Client {
    pub client: rumqttc::AsyncClient,
    pub rx: mpsc::UnboundedReceiver<rumqttc::Packet>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for V4Client {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl V4Client {
    /// Connects and waits for the CONNACK; returns the client and session present.
    pub async fn connect(opts: rumqttc::MqttOptions) -> (V4Client, bool) {
        let (client, mut el) = rumqttc::AsyncClient::new(opts, 1000);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(rumqttc::Event::Incoming(p)) => {
                        if tx.send(p).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
        let sp = within("rumqttc CONNACK", async {
            loop {
                match rx.recv().await {
                    Some(rumqttc::Packet::ConnAck(a)) => {
                        assert_eq!(a.code, rumqttc::ConnectReturnCode::Success);
                        return a.session_present;
                    }
                    Some(_) => {}
                    None => panic!("rumqttc connection failed before CONNACK"),
                }
            }
        })
        .await;
        (V4Client { client, rx, task }, sp)
    }

    pub fn options(addr: SocketAddr, id: &str) -> rumqttc::MqttOptions {
        let mut o = rumqttc::MqttOptions::new(id, addr.ip().to_string(), addr.port());
        o.set_keep_alive(Duration::from_secs(30));
        // rumqttc's default limit (10 KiB) is below the payloads tested here.
        o.set_max_packet_size(1 << 20, 1 << 20);
        o
    }

    pub async fn simple(addr: SocketAddr, id: &str) -> V4Client {
        V4Client::connect(V4Client::options(addr, id)).await.0
    }

    pub async fn subscribe(&mut self, filter: &str, qos: rumqttc::QoS) -> Vec<rumqttc::SubscribeReasonCode> {
        self.client.subscribe(filter, qos).await.expect("subscribe request");
        within("SUBACK", async {
            loop {
                match self.rx.recv().await {
                    Some(rumqttc::Packet::SubAck(a)) => return a.return_codes,
                    Some(_) => {}
                    None => panic!("connection lost before SUBACK"),
                }
            }
        })
        .await
    }

    pub async fn next_publish(&mut self) -> rumqttc::Publish {
        within("PUBLISH (rumqttc)", async {
            loop {
                match self.rx.recv().await {
                    Some(rumqttc::Packet::Publish(p)) => return p,
                    Some(_) => {}
                    None => panic!("connection lost while waiting for PUBLISH"),
                }
            }
        })
        .await
    }
}

/// A rumqttc 5.0 client whose event loop runs in a task.
pub struct V5Client {
    pub client: rumqttc::v5::AsyncClient,
    pub rx: mpsc::UnboundedReceiver<rumqttc::v5::mqttbytes::v5::Packet>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for V5Client {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl V5Client {
    pub fn options(addr: SocketAddr, id: &str) -> rumqttc::v5::MqttOptions {
        let mut o = rumqttc::v5::MqttOptions::new(id, addr.ip().to_string(), addr.port());
        o.set_keep_alive(Duration::from_secs(30));
        o
    }

    pub async fn connect(opts: rumqttc::v5::MqttOptions) -> V5Client {
        use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, Packet};
        let (client, mut el) = rumqttc::v5::AsyncClient::new(opts, 1000);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(rumqttc::v5::Event::Incoming(p)) => {
                        if tx.send(p).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
        within("rumqttc v5 CONNACK", async {
            loop {
                match rx.recv().await {
                    Some(Packet::ConnAck(a)) => {
                        assert_eq!(a.code, ConnectReturnCode::Success);
                        return;
                    }
                    Some(_) => {}
                    None => panic!("rumqttc v5 connection failed before CONNACK"),
                }
            }
        })
        .await;
        V5Client { client, rx, task }
    }

    pub async fn simple(addr: SocketAddr, id: &str) -> V5Client {
        V5Client::connect(V5Client::options(addr, id)).await
    }

    pub async fn subscribe(&mut self, filter: &str, qos: rumqttc::v5::mqttbytes::QoS) -> Vec<u8> {
        use rumqttc::v5::mqttbytes::v5::{Packet, SubscribeReasonCode};
        self.client.subscribe(filter, qos).await.expect("subscribe request");
        within("v5 SUBACK", async {
            loop {
                match self.rx.recv().await {
                    Some(Packet::SubAck(a)) => {
                        return a
                            .return_codes
                            .iter()
                            .map(|c| match c {
                                SubscribeReasonCode::Success(q) => *q as u8,
                                SubscribeReasonCode::Failure | SubscribeReasonCode::Unspecified => 0x80,
                                SubscribeReasonCode::TopicFilterInvalid => 0x8F,
                                other => panic!("unexpected SUBACK code {other:?}"),
                            })
                            .collect();
                    }
                    Some(_) => {}
                    None => panic!("connection lost before SUBACK"),
                }
            }
        })
        .await
    }

    pub async fn next_publish(&mut self) -> rumqttc::v5::mqttbytes::v5::Publish {
        use rumqttc::v5::mqttbytes::v5::Packet;
        within("PUBLISH (rumqttc v5)", async {
            loop {
                match self.rx.recv().await {
                    Some(Packet::Publish(p)) => return p,
                    Some(_) => {}
                    None => panic!("connection lost while waiting for PUBLISH"),
                }
            }
        })
        .await
    }
}
