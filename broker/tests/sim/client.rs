//! The simulated MQTT clients: each keeps what a correct client keeps for
//! a persistent session (its unacknowledged outgoing QoS 1/2 messages,
//! resent in order with DUP after a reconnect, and the packet ids of
//! inbound QoS 2 messages it has not seen released, so a redelivery is
//! not handed to the application twice), speaks to the broker in bytes
//! (`protocol::client`'s encoder and decoder, the bridge's), and tells
//! the [`Oracle`] what it was acknowledged and what its application got.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::{Bytes, BytesMut};
use std::time::Duration;

use bytes::BufMut;
use edgemq::protocol::client::{decode_server, encode_client, ClientConnect, ClientPacket, ServerPacket};
use edgemq::protocol::{
    Ack, DisconnectReason, Publish, QoS, SubAckReason, SubOptions, Subscribe, SubscribeFilter, Version,
};
use edgemq::store::powerloss::Rng;

use crate::check::{Delivered, Oracle, Sent};
use crate::lifecycle::WillSpec;

/// Topics the clients publish to: `t/..` live traffic, `r/..` retained.
pub const TOPICS: [&str; 4] = ["t/a", "t/b", "t/c/d", "t/a"];
pub const RETAINED: [&str; 3] = ["r/1", "r/2", "r/3"];
/// Filters a client subscribes with (all under `t/`, so retained topics
/// are only seen by the probe); the `$share/` ones make shared groups
/// (each message to one member, [MQTT-4.8.2]), `g` more often than `h`.
pub const FILTERS: [&str; 8] = ["t/#", "t/+", "t/a", "t/c/#", "+/b", "$share/g/t/#", "$share/g/t/#", "$share/h/t/a"];

/// An outgoing QoS 1/2 message not yet acknowledged (QoS 2: not yet
/// PUBREC'd), or released and waiting for PUBCOMP.
#[derive(Debug, Clone)]
enum Out {
    Publish(Publish),
    Released,
}

#[derive(Debug)]
pub struct Client {
    pub id: usize,
    pub client_id: String,
    pub version: Version,
    /// Clean Session 0 / Clean Start 0.
    pub persistent: bool,
    /// How long its session outlives a connection (`None`: never; zero:
    /// a clean session): MQTT 5's Session Expiry Interval, or the broker's
    /// expiry of 3.1.1 persistent sessions.
    pub expiry: Option<Duration>,
    /// The will each of its connections sets, if any.
    pub will: Option<WillSpec>,
    /// Connections made (numbers its wills).
    conns: u64,
    /// A SUBSCRIBE was sent in the current session (before that, nothing
    /// may arrive: a new session has no subscription and no queue).
    subscribed_session: bool,
    /// The receive maximum it announces (MQTT 5).
    receive_max: u16,
    /// Its subscription: filter and QoS asked.
    pub filter: (&'static str, QoS),
    /// Granted and acknowledged (SUBACK received).
    pub subscribed: bool,
    subscribe_sent: bool,
    /// Connected: CONNACK received on the current connection.
    pub connected: bool,
    /// The broker acknowledged something of this session (so it must
    /// still be there: a later CONNACK without session present is a loss).
    pub established: bool,
    /// Messages sent and not finished, oldest first, by packet id.
    out: VecDeque<(u16, Out)>,
    /// Inbound QoS 2 ids received and not yet released.
    in2: BTreeSet<u16>,
    /// Acknowledgements owed to the broker, sent in order when the client
    /// gets round to it (a slow client).
    owed: VecDeque<ClientPacket>,
    next_pkid: u16,
    next_seq: u64,
    rbuf: BytesMut,
}

impl Client {
    /// Client `id`; `expiry_311`: the broker's expiry of 3.1.1 persistent sessions.
    pub fn new(id: usize, rng: &mut Rng, expiry_311: Option<Duration>) -> Client {
        let version = if rng.chance(50) { Version::V5 } else { Version::V311 };
        let qos = if rng.chance(50) { QoS::ExactlyOnce } else { QoS::AtLeastOnce };
        let persistent = rng.chance(85);
        let expiry = match (persistent, version) {
            (false, _) => Some(Duration::ZERO),
            // One MQTT 5 session in three expires, after 1 to 15 s.
            (true, Version::V5) => rng.chance(33).then(|| Duration::from_secs(1 + rng.below(15))),
            (true, _) => expiry_311,
        };
        let will = rng.chance(40).then(|| WillSpec {
            qos: [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce][rng.below(3) as usize],
            retain: rng.chance(30),
            // MQTT 5: a Will Delay Interval half the time, up to 8 s.
            delay: if version == Version::V5 && rng.chance(50) { 1 + rng.below(8) as u32 } else { 0 },
        });
        Client {
            id,
            client_id: format!("c{id}"),
            version,
            persistent,
            expiry,
            will,
            conns: 0,
            subscribed_session: false,
            receive_max: [1, 2, 5, 100][rng.below(4) as usize],
            filter: (FILTERS[rng.below(FILTERS.len() as u64) as usize], qos),
            subscribed: false,
            subscribe_sent: false,
            connected: false,
            established: false,
            out: VecDeque::new(),
            in2: BTreeSet::new(),
            owed: VecDeque::new(),
            next_pkid: 1,
            next_seq: 1,
            rbuf: BytesMut::new(),
        }
    }

    fn encode(&self, p: &ClientPacket, out: &mut BytesMut) {
        if let Err(e) = encode_client(p, self.version, out) {
            panic!("client {} cannot encode {p:?}: {e}", self.id);
        }
    }

    /// The CONNECT of a new connection; its will (payload, topic), if any.
    pub fn connect(&mut self, out: &mut BytesMut) -> Option<(Bytes, String, WillSpec)> {
        self.rbuf.clear();
        self.connected = false;
        self.subscribe_sent = false;
        self.conns += 1;
        let c = ClientConnect {
            version: self.version,
            bridge: false,
            client_id: self.client_id.clone(),
            clean_start: !self.persistent,
            keep_alive: 0,
            username: None,
            password: None,
            session_expiry: match self.expiry {
                None => u32::MAX,
                Some(x) => x.as_secs() as u32,
            },
            receive_maximum: self.receive_max,
            maximum_packet_size: 1 << 20,
            will: None,
        };
        let Some(spec) = self.will else {
            self.encode(&ClientPacket::Connect(c), out);
            return None;
        };
        // Retained wills on a topic of their own (the retained model checks
        // them); the others where subscribers are.
        let topic = if spec.retain { format!("r/w{}", self.id) } else { "t/w".to_owned() };
        let payload = Bytes::from(format!("w{}:{}", self.id, self.conns));
        let mut plain = BytesMut::new();
        self.encode(&ClientPacket::Connect(c), &mut plain);
        with_will(&plain, self.version, &topic, &payload, spec, out);
        Some((payload, topic, spec))
    }

    /// A DISCONNECT: normal (the will discarded), or MQTT 5's 0x04 (with
    /// the will).
    pub fn disconnect(&mut self, with_will: bool, out: &mut BytesMut) {
        let reason =
            if with_will { DisconnectReason::DisconnectWithWill } else { DisconnectReason::NormalDisconnection };
        self.encode(&ClientPacket::Disconnect(reason), out);
    }

    /// The connection is gone.
    pub fn dropped(&mut self) {
        self.connected = false;
        self.owed.clear();
    }

    fn pkid(&mut self) -> Option<u16> {
        for _ in 0..u16::MAX {
            let p = self.next_pkid;
            self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
            if !self.out.iter().any(|(id, _)| *id == p) {
                return Some(p);
            }
        }
        None
    }

    /// Publishes a new message, if the window allows.
    pub fn publish(&mut self, rng: &mut Rng, oracle: &mut Oracle, out: &mut BytesMut) {
        let retain = rng.chance(15);
        let qos = match rng.below(10) {
            0..=1 => QoS::AtMostOnce,
            2..=5 => QoS::AtLeastOnce,
            _ => QoS::ExactlyOnce,
        };
        if qos != QoS::AtMostOnce && self.out.len() >= 4 {
            return;
        }
        let topic = if retain {
            RETAINED[rng.below(RETAINED.len() as u64) as usize]
        } else {
            TOPICS[rng.below(TOPICS.len() as u64) as usize]
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        // A retained message with an empty payload deletes the topic's.
        let payload = if retain && rng.chance(20) { Bytes::new() } else { Bytes::from(format!("{}:{seq}", self.id)) };
        let pkid = if qos == QoS::AtMostOnce { 0 } else { self.pkid().unwrap_or(0) };
        let p = Publish { dup: false, qos, retain, topic: topic.into(), pkid, payload: payload.clone(), props: None };
        let persistent = self.persistent;
        oracle.sent(Sent { publisher: self.id, seq, qos, topic, retain, payload, persistent });
        if qos != QoS::AtMostOnce {
            self.out.push_back((pkid, Out::Publish(p.clone())));
        }
        self.encode(&ClientPacket::Publish(p), out);
    }

    /// Sends what it owes (acknowledgements), or the SUBSCRIBE once.
    pub fn catch_up(&mut self, all: bool, out: &mut BytesMut) {
        while let Some(p) = self.owed.pop_front() {
            self.encode(&p, out);
            if !all {
                break;
            }
        }
        if self.connected && !self.subscribed && !self.subscribe_sent && self.persistent {
            self.subscribe_sent = true;
            self.subscribed_session = true;
            let s = Subscribe {
                pkid: 0xFFFF,
                filters: vec![SubscribeFilter {
                    filter: self.filter.0.into(),
                    options: SubOptions { qos: self.filter.1, ..SubOptions::default() },
                }],
                subscription_identifier: None,
                user_properties: Vec::new(),
            };
            self.encode(&ClientPacket::Subscribe(s), out);
        }
    }

    /// Bytes from the broker: handles every whole packet.
    pub fn receive(&mut self, bytes: &[u8], oracle: &mut Oracle, out: &mut BytesMut) {
        self.rbuf.extend_from_slice(bytes);
        loop {
            let p = match decode_server(&mut self.rbuf, self.version, 1 << 20) {
                Ok(Some(p)) => p,
                Ok(None) => return,
                Err(e) => panic!("client {}: the broker sent bytes it cannot decode: {e}", self.id),
            };
            self.on_packet(p, oracle, out);
        }
    }

    fn on_packet(&mut self, p: ServerPacket, oracle: &mut Oracle, out: &mut BytesMut) {
        match p {
            ServerPacket::ConnAck(c) => {
                assert!(!c.code.is_error(), "client {}: CONNACK refused with {}", self.id, c.code);
                self.connected = true;
                if !c.session_present {
                    self.subscribed_session = false;
                    // Its end is durable now (gate rule 4): a cut cannot
                    // bring the old session back.
                    oracle.end_acknowledged(self.id);
                    // An expiring session may be gone (`lifecycle.rs` checks when).
                    assert!(
                        !(self.persistent && self.established && self.expiry.is_none()),
                        "client {}: the broker lost its persistent session (CONNACK without session present \
                         after it had acknowledged packets of it)",
                        self.id
                    );
                    // A new session: what the client kept goes [MQTT-4.4.0-1].
                    for (_, o) in self.out.drain(..) {
                        if let Out::Publish(p) = o {
                            oracle.abandoned(self.id, &p.payload);
                        }
                    }
                    self.in2.clear();
                    self.subscribed = false;
                    self.established = false;
                }
                // Resend what was not finished, in order, DUP set [MQTT-4.4.0-1].
                let resend: Vec<ClientPacket> = self
                    .out
                    .iter()
                    .map(|(id, o)| match o {
                        Out::Publish(p) => ClientPacket::Publish(Publish { dup: true, ..p.clone() }),
                        Out::Released => ClientPacket::PubRel(Ack::ok(*id)),
                    })
                    .collect();
                for p in &resend {
                    self.encode(p, out);
                }
            }
            ServerPacket::SubAck { codes, .. } => {
                let granted = codes.first().copied().unwrap_or(SubAckReason::UnspecifiedError);
                assert!(!granted.is_error(), "client {}: SUBSCRIBE refused ({granted})", self.id);
                self.subscribed = true;
                self.established = true;
                oracle.subscribed(self.id, self.filter.0, QoS::from_u8(granted.code()).unwrap_or(QoS::AtMostOnce));
            }
            ServerPacket::Publish(p) => self.on_publish(p, oracle),
            ServerPacket::PubAck(a) => {
                if let Some(i) = self.out.iter().position(|(id, o)| *id == a.pkid && matches!(o, Out::Publish(_))) {
                    if let Some((_, Out::Publish(p))) = self.out.remove(i) {
                        self.established = true;
                        oracle.acked(self.id, &p.payload, !a.reason.is_error());
                    }
                }
            }
            ServerPacket::PubRec(a) => {
                if let Some(e) = self.out.iter_mut().find(|(id, _)| *id == a.pkid) {
                    if let Out::Publish(p) = &e.1 {
                        self.established = true;
                        oracle.acked(self.id, &p.payload, !a.reason.is_error());
                        if a.reason.is_error() {
                            let id = a.pkid;
                            self.out.retain(|(i, _)| *i != id);
                            return;
                        }
                        e.1 = Out::Released;
                    }
                }
                // PUBREL for it, or again for one already released [MQTT-4.3.3-4].
                self.owed.push_back(ClientPacket::PubRel(Ack::ok(a.pkid)));
            }
            ServerPacket::PubComp(a) => {
                self.out.retain(|(id, o)| !(*id == a.pkid && matches!(o, Out::Released)));
            }
            ServerPacket::PubRel(a) => {
                self.in2.remove(&a.pkid);
                self.owed.push_back(ClientPacket::PubComp(Ack::ok(a.pkid)));
            }
            ServerPacket::Disconnect(_) | ServerPacket::PingResp | ServerPacket::Other(_) => {}
        }
    }

    fn on_publish(&mut self, p: Publish, oracle: &mut Oracle) {
        trace!("client {} PUBLISH {:?} pkid {} dup {} {:?}", self.id, p.payload, p.pkid, p.dup, p.qos);
        // A new session (an expired one replaced) has no queue to deliver.
        assert!(
            self.subscribed_session,
            "client {} got {:?} in a new session before it subscribed (an ended session's queue delivered?)",
            self.id, p.payload
        );
        let new = match p.qos {
            QoS::AtMostOnce => true,
            QoS::AtLeastOnce => {
                self.owed.push_back(ClientPacket::PubAck(Ack::ok(p.pkid)));
                true
            }
            QoS::ExactlyOnce => {
                self.owed.push_back(ClientPacket::PubRec(Ack::ok(p.pkid)));
                // Delivered to the application once per packet id until
                // PUBREL [MQTT-4.3.3-9].
                self.in2.insert(p.pkid)
            }
        };
        if new {
            oracle.delivered(Delivered {
                to: self.id,
                qos: p.qos,
                retain: p.retain,
                topic: p.topic,
                payload: p.payload,
                epoch: 0,
            });
        }
    }

    /// Nothing owed to or expected from the broker.
    pub fn settled(&self) -> bool {
        self.owed.is_empty() && self.out.is_empty() && (self.subscribed || !self.persistent)
    }

    /// Debug summary.
    pub fn state(&self) -> BTreeMap<&'static str, usize> {
        BTreeMap::from([("out", self.out.len()), ("owed", self.owed.len()), ("in2", self.in2.len())])
    }
}

/// `plain` (a CONNECT without will, no user name or password: the will's
/// fields go at the end) with the will set: flags, MQTT 5 will properties
/// (the Will Delay Interval), topic and payload.
fn with_will(plain: &[u8], v: Version, topic: &str, payload: &[u8], w: WillSpec, out: &mut BytesMut) {
    let (mut len, mut at, mut shift) = (0usize, 1, 0);
    while plain[at] & 0x80 != 0 {
        len |= usize::from(plain[at] & 0x7F) << shift;
        (at, shift) = (at + 1, shift + 7);
    }
    len |= usize::from(plain[at]) << shift;
    let mut body = BytesMut::from(&plain[at + 1..]);
    assert_eq!(body.len(), len, "CONNECT framing");
    // Protocol name "MQTT" (6 bytes), level, then the flags.
    body[7] |= 0x04 | (w.qos as u8) << 3 | u8::from(w.retain) << 5;
    if v == Version::V5 {
        if w.delay > 0 {
            body.put_slice(&[5, 0x18]);
            body.put_u32(w.delay);
        } else {
            body.put_u8(0);
        }
    }
    body.put_u16(topic.len() as u16);
    body.put_slice(topic.as_bytes());
    body.put_u16(payload.len() as u16);
    body.put_slice(payload);
    out.put_u8(0x10);
    let mut n = body.len();
    loop {
        let b = (n % 128) as u8;
        n /= 128;
        out.put_u8(if n > 0 { b | 0x80 } else { b });
        if n == 0 {
            break;
        }
    }
    out.put_slice(&body);
}
