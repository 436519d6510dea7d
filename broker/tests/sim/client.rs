//! The simulated MQTT clients: each keeps what a correct client keeps for
//! a persistent session (its unacknowledged outgoing QoS 1/2 messages,
//! resent in order with DUP after a reconnect, and the packet ids of
//! inbound QoS 2 messages it has not seen released, so a redelivery is
//! not handed to the application twice), speaks to the broker in bytes
//! (`protocol::client`'s encoder and decoder, the bridge's), and tells
//! the [`Oracle`] what it was acknowledged and what its application got.

use std::collections::{BTreeMap, VecDeque};

use bytes::{Bytes, BytesMut};
use std::time::Duration;

use bytes::BufMut;
use edgemq::auth::acl::Access;
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
/// `r/#` gets the retained messages (and retained wills) when it subscribes.
pub const FILTERS: [&str; 9] =
    ["t/#", "t/+", "t/a", "t/c/#", "+/b", "$share/g/t/#", "$share/g/t/#", "$share/h/t/a", "r/#"];

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
    /// The user name it connects with (seeds with an ACL, `acl.rs`).
    pub user: Option<String>,
    /// The ACL refuses its will's topic (so its CONNECT with it is refused
    /// with 0x87 Not authorized: the next one goes without a will, the one
    /// after with it again), and its subscription's filter.
    pub will_denied: bool,
    pub filter_denied: bool,
    /// This connection's CONNECT carries a will the ACL refuses; the next
    /// CONNECT goes without its will.
    expect_refused: bool,
    skip_will: bool,
    /// The SUBACK refused the subscription in this session.
    sub_refused: bool,
    /// An UNSUBSCRIBE sent and not yet acknowledged (resent after a
    /// reconnect that resumed the session; then 0x11 No subscription
    /// existed is an answer too), and the wait before subscribing again.
    unsub_pending: bool,
    unsub_resent: bool,
    resub_wait: bool,
    /// The session epoch (the oracle's) of its last SUBACK.
    sub_epoch: u64,
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
    /// With the payload and the client's session epoch (the oracle's) when
    /// it came.
    in2: BTreeMap<u16, (Bytes, u64)>,
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
            user: None,
            will_denied: false,
            filter_denied: false,
            expect_refused: false,
            skip_will: false,
            sub_refused: false,
            unsub_pending: false,
            unsub_resent: false,
            resub_wait: false,
            sub_epoch: 0,
            conns: 0,
            subscribed_session: false,
            receive_max: [1, 2, 5, 100][rng.below(4) as usize],
            filter: (FILTERS[rng.below(FILTERS.len() as u64) as usize], qos),
            subscribed: false,
            subscribe_sent: false,
            connected: false,
            established: false,
            out: VecDeque::new(),
            in2: BTreeMap::new(),
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
            username: self.user.clone(),
            password: None,
            session_expiry: match self.expiry {
                None => u32::MAX,
                Some(x) => x.as_secs() as u32,
            },
            receive_maximum: self.receive_max,
            maximum_packet_size: 1 << 20,
            will: None,
        };
        self.expect_refused = false;
        let spec = match self.will {
            Some(spec) if !std::mem::take(&mut self.skip_will) => spec,
            _ => {
                self.encode(&ClientPacket::Connect(c), out);
                return None;
            }
        };
        self.expect_refused = self.will_denied;
        self.skip_will = self.will_denied;
        // Retained wills on a topic of their own (the retained model checks
        // them); the others where subscribers are.
        let topic = if spec.retain { format!("r/w{}", self.id) } else { "t/w".to_owned() };
        let payload = Bytes::from(format!("w{}:{}", self.id, self.conns));
        // The will's fields come before the user name: added after them.
        let user = c.username.clone();
        let mut plain = BytesMut::new();
        self.encode(&ClientPacket::Connect(ClientConnect { username: None, ..c }), &mut plain);
        with_will(&plain, self.version, (&topic, &payload, spec), user.as_deref(), out);
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

    /// Sends what it owes (acknowledgements), or the SUBSCRIBE once (after
    /// an UNSUBSCRIBE: again, when `resub`).
    pub fn catch_up(&mut self, all: bool, resub: bool, oracle: &mut Oracle, out: &mut BytesMut) {
        while let Some(p) = self.owed.pop_front() {
            self.encode(&p, out);
            if !all {
                break;
            }
        }
        if self.connected
            && !self.subscribed
            && !self.subscribe_sent
            && self.persistent
            && !self.sub_refused
            && !self.unsub_pending
            && (resub || !self.resub_wait)
        {
            self.subscribe_sent = true;
            self.subscribed_session = true;
            self.resub_wait = false;
            oracle.subscribe_sent(self.id);
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

    /// Unsubscribes from its filter, if subscribed.
    pub fn unsubscribe(&mut self, oracle: &mut Oracle, out: &mut BytesMut) {
        if !self.connected || !self.subscribed || self.unsub_pending {
            return;
        }
        trace!("client {} UNSUBSCRIBE {}", self.id, self.filter.0);
        self.subscribed = false;
        self.unsub_pending = true;
        oracle.unsubscribe_sent(self.id);
        encode_unsubscribe(self.version, self.filter.0, out);
    }

    /// An UNSUBACK: for MQTT 5, 0x00 (the subscription existed: the SUBACK
    /// came in this session), or 0x11 too for one resent after a reconnect.
    fn on_unsuback(&mut self, codes: &[u8], oracle: &mut Oracle) {
        assert!(self.unsub_pending, "client {}: an UNSUBACK for no UNSUBSCRIBE", self.id);
        if self.version.is_v5() {
            // 0x11 also when the session it subscribed in ended unknown to
            // it (the CONNACK saying so never reached it).
            let gone = self.sub_epoch != oracle.epoch(self.id);
            let ok = codes == [0x00] || ((self.unsub_resent || gone) && codes == [0x11]);
            assert!(ok, "client {}: UNSUBACK {codes:?} for its one subscription [MQTT-3.11.3]", self.id);
        }
        self.unsub_pending = false;
        self.unsub_resent = false;
        self.resub_wait = true;
        self.subscribe_sent = false;
        oracle.unsubscribe_acked(self.id);
    }

    /// Bytes from the broker: handles every whole packet.
    pub fn receive(&mut self, bytes: &[u8], oracle: &mut Oracle, out: &mut BytesMut) {
        self.rbuf.extend_from_slice(bytes);
        loop {
            // UNSUBACK (which `decode_server` does not read out).
            if let Some(codes) = take_unsuback(&mut self.rbuf, self.version) {
                self.on_unsuback(&codes, oracle);
                continue;
            }
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
                if self.expect_refused {
                    // A will the client may not publish: refused ([MQTT-3.2.2-4]-ish:
                    // CONNACK 0x87 Not authorized, 3.1.1's 0x05), never published.
                    assert_eq!(
                        c.code,
                        edgemq::protocol::ConnectReason::NotAuthorized,
                        "client {}: a CONNECT with a will the ACL refuses",
                        self.id
                    );
                    oracle.acl_figures[2] += 1;
                    return;
                }
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
                    self.sub_refused = false;
                    self.unsub_pending = false;
                    self.resub_wait = false;
                } else if self.unsub_pending {
                    // Whether the broker had it before the connection went is unknown.
                    self.unsub_resent = true;
                    encode_unsubscribe(self.version, self.filter.0, out);
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
                if self.filter_denied {
                    // 0x87 Not authorized; 3.1.1 has one failure code, 0x80.
                    let want =
                        if self.version.is_v5() { SubAckReason::NotAuthorized } else { SubAckReason::UnspecifiedError };
                    assert_eq!(granted, want, "client {}: SUBSCRIBE to {} the ACL refuses", self.id, self.filter.0);
                    self.sub_refused = true;
                    oracle.acl_figures[1] += 1;
                    return;
                }
                assert!(!granted.is_error(), "client {}: SUBSCRIBE refused ({granted})", self.id);
                self.subscribed = true;
                self.established = true;
                self.sub_epoch = oracle.epoch(self.id);
                oracle.subscribed(self.id, self.filter.0, QoS::from_u8(granted.code()).unwrap_or(QoS::AtMostOnce));
            }
            ServerPacket::Publish(p) => self.on_publish(p, oracle),
            ServerPacket::PubAck(a) => {
                if let Some(i) = self.out.iter().position(|(id, o)| *id == a.pkid && matches!(o, Out::Publish(_))) {
                    if let Some((_, Out::Publish(p))) = self.out.remove(i) {
                        self.check_ack(&p, a.reason.code(), oracle);
                        self.established = true;
                        oracle.acked(self.id, &p.payload, !a.reason.is_error());
                    }
                }
            }
            ServerPacket::PubRec(a) => {
                if let Some(e) = self.out.iter_mut().find(|(id, _)| *id == a.pkid) {
                    if let Out::Publish(p) = &e.1 {
                        let p = p.clone();
                        self.check_ack(&p, a.reason.code(), oracle);
                        let Some(e) = self.out.iter_mut().find(|(id, _)| *id == a.pkid) else { return };
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

    /// A PUBACK or PUBREC for `p`: one the ACL refuses gets 0x87 Not
    /// authorized in MQTT 5 (section 3.4.2.1), in 3.1.1 an ordinary
    /// acknowledgement ([MQTT-3.3.5-2]: a positive one, or a close); any
    /// other never 0x87.
    fn check_ack(&self, p: &Publish, code: u8, oracle: &mut Oracle) {
        let denied = !oracle.may(self.id, &p.topic, Access::Write);
        if denied {
            let want = if self.version.is_v5() { 0x87 } else { 0x00 };
            assert_eq!(
                code, want,
                "client {}: acknowledgement of {:?} to {}, which the ACL refuses",
                self.id, p.payload, p.topic
            );
            oracle.acl_figures[0] += 1;
        } else {
            assert_ne!(code, 0x87, "client {}: {:?} to {} refused, which the ACL allows", self.id, p.payload, p.topic);
        }
    }

    fn on_publish(&mut self, p: Publish, oracle: &mut Oracle) {
        trace!("client {} PUBLISH {:?} pkid {} dup {} {:?}", self.id, p.payload, p.pkid, p.dup, p.qos);
        assert!(
            !self.filter_denied,
            "client {} got {:?} on {}: it has no subscription (the ACL refuses its filter)",
            self.id, p.payload, p.topic
        );
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
                match self.in2.get(&p.pkid) {
                    None => {
                        self.in2.insert(p.pkid, (p.payload.clone(), oracle.epoch(self.id)));
                        true
                    }
                    Some((payload, _)) if *payload == p.payload => false,
                    Some((payload, epoch)) => {
                        // Another message under an id not released: the
                        // broker reuses an id only after PUBCOMP, so the id
                        // is one of an old session that ended unknown to the
                        // client (the CONNACK saying so never reached it):
                        // the client must take it for a duplicate, and the
                        // new message is lost to it (the standard's limit).
                        assert!(
                            *epoch != oracle.epoch(self.id),
                            "client {}: {:?} under packet id {} of {payload:?}, not released [MQTT-2.2.1-3]",
                            self.id,
                            p.payload,
                            p.pkid
                        );
                        oracle.stale_id(self.id, &p.payload);
                        false
                    }
                }
            }
        };
        if new {
            oracle.delivered(Delivered {
                to: self.id,
                qos: p.qos,
                retain: p.retain,
                topic: p.topic,
                payload: p.payload,
                gen: 0,
            });
        }
    }

    /// Nothing owed to or expected from the broker.
    pub fn settled(&self) -> bool {
        self.owed.is_empty() && self.out.is_empty() && (self.subscribed || !self.persistent || self.sub_refused)
    }

    /// Debug summary.
    pub fn state(&self) -> BTreeMap<&'static str, usize> {
        BTreeMap::from([("out", self.out.len()), ("owed", self.owed.len()), ("in2", self.in2.len())])
    }
}

/// `plain` (a CONNECT without will, no user name or password: the will's
/// fields go at the end) with the will set: flags, MQTT 5 will properties
/// (the Will Delay Interval), topic and payload; then the user name, if any.
fn with_will(plain: &[u8], v: Version, will: (&str, &[u8], WillSpec), user: Option<&str>, out: &mut BytesMut) {
    let (topic, payload, w) = will;
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
    if let Some(user) = user {
        body[7] |= 0x80;
        body.put_u16(user.len() as u16);
        body.put_slice(user.as_bytes());
    }
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

/// An UNSUBSCRIBE of `filter` (packet identifier 0xFFFE), encoded here:
/// the bridge's encoder has none.
fn encode_unsubscribe(v: Version, filter: &str, out: &mut BytesMut) {
    let props = usize::from(v.is_v5());
    out.put_u8(0xA2);
    out.put_u8((2 + props + 2 + filter.len()) as u8);
    out.put_u16(0xFFFE);
    if props == 1 {
        out.put_u8(0);
    }
    out.put_u16(filter.len() as u16);
    out.put_slice(filter.as_bytes());
}

/// Takes a whole UNSUBACK from the front of `buf`, if one is there: its
/// reason codes (MQTT 5; none in 3.1.1).
fn take_unsuback(buf: &mut BytesMut, v: Version) -> Option<Vec<u8>> {
    if buf.first() != Some(&0xB0) {
        return None;
    }
    let (mut len, mut at, mut shift) = (0usize, 1, 0);
    loop {
        let b = *buf.get(at)?;
        len |= usize::from(b & 0x7F) << shift;
        at += 1;
        shift += 7;
        if b & 0x80 == 0 {
            break;
        }
    }
    if buf.len() < at + len {
        return None;
    }
    let p = buf.split_to(at + len);
    let body = &p[at..];
    assert_eq!(
        u16::from_be_bytes([body[0], body[1]]),
        0xFFFE,
        "UNSUBACK with another packet identifier [MQTT-3.10.4-4]"
    );
    if !v.is_v5() {
        return Some(Vec::new());
    }
    // Properties (a length, then skipped), then the codes.
    let mut i = 2;
    let (mut plen, mut shift) = (0usize, 0);
    loop {
        let b = body[i];
        plen |= usize::from(b & 0x7F) << shift;
        i += 1;
        shift += 7;
        if b & 0x80 == 0 {
            break;
        }
    }
    Some(body[i + plen..].to_vec())
}
