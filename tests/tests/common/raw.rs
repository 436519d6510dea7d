//! A byte-level MQTT client and a well-behaved bystander client.

#![allow(dead_code)] // each test binary uses a different subset

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

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

/// What a [`Raw`] client talks over: TCP, or TLS over it.
pub trait RawStream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> RawStream for S {}

/// A byte-level MQTT client over TCP (or TLS: [`Raw::over`]).
pub struct Raw {
    pub stream: Box<dyn RawStream>,
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
        Raw::over(stream)
    }

    /// A client over an open stream (a TLS session, say), before CONNECT.
    pub fn over(stream: impl RawStream + 'static) -> Raw {
        Raw { stream: Box::new(stream), buf: Vec::new(), stash: VecDeque::new(), v5: false }
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
        // A TLS or WebSocket stream sends on flush.
        let _ = within("write", async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        })
        .await;
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

    /// The connection's stream, for a test that reads and writes it
    /// itself (nothing read ahead is kept: call it right after CONNACK).
    pub fn into_stream(self) -> Box<dyn RawStream> {
        assert!(self.buf.is_empty() && self.stash.is_empty(), "bytes read ahead would be lost");
        self.stream
    }

    /// Sends DISCONNECT and waits for the broker to close.
    pub async fn disconnect(mut self) {
        self.send(&disconnect_packet()).await;
        let _ = self.recv_within(TIMEOUT).await;
    }
}

/// Asserts that what came before a close (see [`Raw::expect_closed`]) is
/// one MQTT 5 DISCONNECT with `reason`.
pub fn assert_v5_disconnect(seen: &[Pkt], reason: u8, what: &str) {
    assert!(
        seen.len() == 1 && seen[0].kind == DISCONNECT && seen[0].reason() == reason,
        "{what}: expected DISCONNECT {reason:#04x} before the close, got {seen:?}"
    );
}

/// Asserts that what came before a close is one CONNACK refusing with `code`.
pub fn assert_refused(seen: &[Pkt], code: u8, what: &str) {
    assert!(
        seen.len() == 1 && seen[0].kind == CONNACK && seen[0].connack().1 == code,
        "{what}: expected CONNACK {code:#04x} then the close, got {seen:?}"
    );
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

/// Reads PUBLISHes from the members of a shared subscription until `n` have
/// arrived in all (bounded by `TIMEOUT`); acknowledges each unless `ack` is
/// false. Returns (member index, message) in arrival order per member.
pub async fn collect_from(members: &mut [Raw], n: usize, ack: bool) -> Vec<(usize, Pub)> {
    let mut seen = Vec::new();
    within("messages at the group members", async {
        while seen.len() < n {
            for (i, m) in members.iter_mut().enumerate() {
                if let Recv::Packet(pk) = m.recv_within(Duration::from_millis(20)).await {
                    assert_eq!(pk.kind, PUBLISH, "{pk:?}");
                    let msg = pk.publish(m.v5);
                    if ack && msg.qos > 0 {
                        m.send(&ack_packet(PUBACK, msg.pid)).await;
                    }
                    seen.push((i, msg));
                }
            }
        }
    })
    .await;
    seen
}
