//! The MQTT 5 half of the session core (feature `v5`): CONNECT options and
//! CONNACK limits, reason codes on acknowledgements, topic aliases both
//! ways, caller properties and Message Expiry on queued messages.
//!
//! These are more methods of [`Client`]; the 3.1.1 paths in `client.rs`
//! call in here when [`Config::v5`] is set.
//!
//! A message queued with [`Client::publish_with`] is stored with an extras
//! block in front of its payload: `[len u16 LE][queued at u32 LE][expiry
//! secs u32 LE][property bytes]`, where `len` counts the bytes after it and
//! the property bytes are Content Type and User Properties in wire format.

use crate::client::{find, Client, Config, Event, Step};
use crate::codec::{self, BufferTooSmall, Connect, Properties, Publish, QoS};
use crate::error::{ClientError, LinkError};
use crate::outbox::{EntryMeta, OutboxStorage, FLAG_PUBREC};
use crate::v5::codec::{self as c5, id, Packet, Property};
use crate::v5::{AliasTable, PublishProperties, ReasonCode, ServerLimits, MAX_USER_PROPERTIES};

/// Capacity for a broker-assigned client identifier.
const ASSIGNED_ID_MAX: usize = 64;

/// Shortest topic worth an outbound alias (the alias property is 3 bytes).
const MIN_ALIAS_TOPIC: usize = 4;

/// Per-client MQTT 5 state.
pub(crate) struct V5State<'b> {
    limits: ServerLimits,
    assigned_id: heapless::Vec<u8, ASSIGNED_ID_MAX>,
    aliases_out: AliasTable<'b>,
    aliases_in: AliasTable<'b>,
    /// Topic Alias Maximum sent in the last CONNECT.
    alias_max_in: u16,
}

impl V5State<'_> {
    pub(crate) fn new() -> Self {
        V5State {
            limits: ServerLimits {
                receive_maximum: u16::MAX,
                maximum_packet_size: u32::MAX,
                topic_alias_maximum: 0,
                keep_alive_secs: 0,
            },
            assigned_id: heapless::Vec::new(),
            aliases_out: AliasTable::new(&mut []),
            aliases_in: AliasTable::new(&mut []),
            alias_max_in: 0,
        }
    }

    pub(crate) fn keep_alive(&self, cfg: &Config<'_>) -> u16 {
        if cfg.v5.is_some() {
            self.limits.keep_alive_secs
        } else {
            cfg.keep_alive_secs
        }
    }

    /// The broker's Receive Maximum (`u16::MAX` for 3.1.1).
    pub(crate) fn receive_maximum(&self) -> u16 {
        self.limits.receive_maximum
    }

    /// The broker's Maximum Packet Size.
    pub(crate) fn max_packet(&self) -> usize {
        usize::try_from(self.limits.maximum_packet_size).unwrap_or(usize::MAX)
    }
}

/// Encodes CONNECT (3.1.1 or 5) into the client's transmit buffer and
/// resets the per-connection MQTT 5 state.
pub(crate) fn encode_connect<S: OutboxStorage, const Q2: usize>(
    cl: &mut Client<'_, S, Q2>,
    c: &Connect<'_>,
) -> Result<usize, BufferTooSmall> {
    let st = &mut cl.v5;
    st.aliases_out.clear();
    st.aliases_in.clear();
    st.limits = V5State::new().limits;
    st.limits.keep_alive_secs = cl.cfg.keep_alive_secs;
    let Some(o) = cl.cfg.v5 else {
        return c5::encode_connect_as(false, c, &c5::ConnectProperties::default(), c.client_id.as_bytes(), cl.tx);
    };
    st.alias_max_in = if st.aliases_in.capacity() > 0 { o.topic_alias_maximum } else { 0 };
    let q2 = u16::try_from(Q2.max(1)).unwrap_or(u16::MAX);
    let props = c5::ConnectProperties {
        session_expiry: o.session_expiry_secs,
        receive_maximum: if o.receive_maximum == 0 { q2 } else { o.receive_maximum },
        maximum_packet_size: if o.maximum_packet_size == 0 {
            u32::try_from(cl.rx.len()).unwrap_or(u32::MAX)
        } else {
            o.maximum_packet_size
        },
        topic_alias_maximum: st.alias_max_in,
    };
    // An empty client id resumes with the one the broker assigned.
    let id = if c.client_id.is_empty() { &st.assigned_id[..] } else { c.client_id.as_bytes() };
    c5::encode_connect_as(true, c, &props, id, cl.tx)
}

/// What [`encode_entry`] did with an outbox entry.
pub(crate) enum Encoded {
    /// Encoded (or the buffer had no room).
    Done(Result<usize, BufferTooSmall>),
    /// Its Message Expiry ran out: drop it.
    Expired,
    /// Larger than the broker's Maximum Packet Size: drop it.
    TooLarge,
}

/// Splits a stored payload with an extras block into
/// `(queued_at, expiry, property bytes, payload)`.
fn split_extras(stored: &[u8]) -> Option<(u32, u32, &[u8], &[u8])> {
    let n = usize::from(u16::from_le_bytes([*stored.first()?, *stored.get(1)?]));
    let ext = stored.get(2..2 + n)?;
    let queued = u32::from_le_bytes([ext[0], ext[1], ext[2], ext[3]]);
    let expiry = u32::from_le_bytes([*ext.get(4)?, ext[5], ext[6], ext[7]]);
    Some((queued, expiry, ext.get(8..)?, stored.get(2 + n..)?))
}

/// Encodes the PUBLISH of an outbox entry: strips the extras block, checks
/// Message Expiry, and for MQTT 5 adds properties and a topic alias.
pub(crate) fn encode_entry(
    mut p: Publish<'_>,
    m: EntryMeta,
    st: &mut V5State<'_>,
    v5: bool,
    now: u32,
    free: &mut [u8],
) -> Encoded {
    let mut expiry = None;
    if m.props {
        let Some((queued, exp, props, payload)) = split_extras(p.payload) else {
            return Encoded::TooLarge;
        };
        p.payload = payload;
        p.properties = Properties(props);
        if exp != 0 {
            let waited = now.wrapping_sub(queued) / 1000;
            if waited >= exp {
                return Encoded::Expired;
            }
            // The broker gets what is left of the interval.
            expiry = Some(exp - waited);
        }
    }
    if !v5 {
        return Encoded::Done(c5::encode_publish_as(false, &p, None, None, free));
    }
    let topic = p.topic.as_bytes();
    let mut alias = None;
    let mut new_alias = false;
    if st.limits.topic_alias_maximum > 0 && topic.len() >= MIN_ALIAS_TOPIC {
        if let Some(a) = st.aliases_out.alias_of(topic) {
            alias = Some(a);
            p.topic = crate::Topic(&[]);
        } else if st.aliases_out.len() < usize::from(st.limits.topic_alias_maximum) {
            alias = u16::try_from(st.aliases_out.len() + 1).ok();
            new_alias = true;
        }
    }
    let plen = if expiry.is_some() { 5 } else { 0 } + if alias.is_some() { 3 } else { 0 } + p.properties.0.len();
    if c5::publish_len(p.qos, p.topic.len(), plen, p.payload.len()) > st.max_packet() {
        // [MQTT-3.2.2-15]: never more than the broker's Maximum Packet Size.
        return Encoded::TooLarge;
    }
    let r = c5::encode_publish_as(true, &p, expiry, alias, free);
    if let (true, Ok(_), Some(a)) = (new_alias, &r, alias) {
        if !st.aliases_out.insert(a, topic) {
            // Cannot remember it: send this one without the alias.
            return Encoded::Done(c5::encode_publish_as(true, &p, expiry, None, free));
        }
    }
    Encoded::Done(r)
}

impl<'b, S: OutboxStorage, const Q2: usize> Client<'b, S, Q2> {
    /// True if this client speaks MQTT 5 ([`Config::v5`] is set).
    pub fn is_v5(&self) -> bool {
        self.cfg.v5.is_some()
    }

    /// Buffers for MQTT 5 topic aliases: `outbound` remembers topics this
    /// client sent with an alias (so a repeated topic is sent as a two-byte
    /// alias), `inbound` the broker's aliases. Either may be empty (no
    /// aliases that way). Each alias costs 4 bytes plus the topic. Takes
    /// effect at the next [`connect`](Self::connect).
    pub fn set_topic_alias_buffers(&mut self, outbound: &'b mut [u8], inbound: &'b mut [u8]) {
        self.v5.aliases_out = AliasTable::new(outbound);
        self.v5.aliases_in = AliasTable::new(inbound);
    }

    /// The limits the broker announced in its last CONNACK (MQTT 5).
    pub fn server_limits(&self) -> ServerLimits {
        self.v5.limits
    }

    /// The client identifier the broker assigned (MQTT 5, when connecting
    /// with an empty id); reused on reconnect.
    pub fn assigned_client_id(&self) -> Option<&str> {
        if self.v5.assigned_id.is_empty() {
            return None;
        }
        core::str::from_utf8(&self.v5.assigned_id).ok()
    }

    /// Like [`publish`](Self::publish), with MQTT 5 properties. They are
    /// copied into the outbox with the message; with MQTT 3.1.1 they are
    /// left out when sending (Message Expiry still drops a message that
    /// waited too long).
    pub fn publish_with(
        &mut self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
        props: &PublishProperties<'_>,
    ) -> Result<Option<u16>, ClientError> {
        let users = props.user_properties;
        if users.len() > MAX_USER_PROPERTIES || props.message_expiry_secs == Some(0) {
            return Err(ClientError::InvalidArgument);
        }
        let ct = props.content_type.unwrap_or("");
        let ct_hdr = c5::content_type_header(ct.len()).ok_or(ClientError::TooLarge)?;
        let ct_len = if props.content_type.is_some() { 3 + ct.len() } else { 0 };
        let mut heads = [[0u8; 5]; MAX_USER_PROPERTIES];
        let mut plen = ct_len;
        for ((k, v), h) in users.iter().zip(heads.iter_mut()) {
            let (Ok(kl), Ok(vl)) = (u16::try_from(k.len()), u16::try_from(v.len())) else {
                return Err(ClientError::TooLarge);
            };
            let (kl, vl) = (kl.to_be_bytes(), vl.to_be_bytes());
            *h = [id::USER_PROPERTY, kl[0], kl[1], vl[0], vl[1]];
            plen += 5 + k.len() + v.len();
        }
        let ext_len = u16::try_from(8 + plen).map_err(|_| ClientError::TooLarge)?.to_le_bytes();
        let q = self.now.to_le_bytes();
        let e = props.message_expiry_secs.unwrap_or(0).to_le_bytes();
        let ext = [ext_len[0], ext_len[1], q[0], q[1], q[2], q[3], e[0], e[1], e[2], e[3]];
        // ext, content type (2 parts), 4 parts per user property, payload.
        let mut parts: [&[u8]; 4 + 4 * MAX_USER_PROPERTIES] = [&[]; 4 + 4 * MAX_USER_PROPERTIES];
        parts[0] = &ext;
        if props.content_type.is_some() {
            parts[1] = &ct_hdr;
            parts[2] = ct.as_bytes();
        }
        for (i, ((k, v), h)) in users.iter().zip(heads.iter()).enumerate() {
            let at = 3 + 4 * i;
            parts[at] = &h[..3];
            parts[at + 1] = k.as_bytes();
            parts[at + 2] = &h[3..];
            parts[at + 3] = v.as_bytes();
        }
        parts[3 + 4 * users.len()] = payload;
        self.enqueue(topic, &parts[..4 + 4 * users.len()], qos, retain, true)
    }

    /// Inbound packet handling of a `v5` build, for both protocols.
    pub(crate) fn process_inbound_v5(&mut self) -> Result<Option<Step>, LinkError> {
        let v5 = self.is_v5();
        let (packet, len) = match c5::decode_inbound_as(v5, &self.rx[..self.rx_len])? {
            Some(x) => x,
            None => {
                if self.rx_len == self.rx.len() {
                    return Err(LinkError::PacketTooLarge);
                }
                return Ok(None);
            }
        };
        self.rx_consumed = len;
        self.last_rx = self.now;
        let connected = self.state == crate::State::Connected;
        let tx = &mut self.tx[self.tx_len..];
        let mut ack = |kind: u8, pid: u16| codec::encode_ack(kind, pid, tx).unwrap_or(0);
        let (sent, step) = match packet {
            Packet::ConnAck { session_present, reason, properties } if !connected => {
                if !v5 && reason != ReasonCode::Success {
                    // A 3.1.1 CONNACK is 4 bytes; its return code is the last.
                    return Err(LinkError::Refused(self.rx[3]));
                }
                if reason != ReasonCode::Success {
                    return Err(LinkError::Rejected(reason));
                }
                apply_connack(&mut self.v5, &properties)?;
                self.on_connack(session_present);
                (0, Step::Connected(session_present))
            }
            Packet::Publish(p) if connected => {
                if let Some(a) = c5::topic_alias(&p.properties) {
                    let st = &mut self.v5;
                    let known = if p.topic.is_empty() {
                        st.aliases_in.topic(a).is_some()
                    } else {
                        st.aliases_in.insert(a, p.topic.as_bytes())
                    };
                    if a > st.alias_max_in || !known {
                        return Err(LinkError::TopicAlias);
                    }
                }
                match (p.qos, p.pid) {
                    (QoS::AtLeastOnce, Some(pid)) => (ack(4, pid), Step::Borrowed),
                    (QoS::ExactlyOnce, Some(pid)) => {
                        let n = ack(5, pid);
                        if self.inbound_q2.contains(&pid) {
                            (n, Step::Again)
                        } else {
                            self.inbound_q2.push(pid).map_err(|_| LinkError::TooManyInboundQos2)?;
                            // Kept before the message is reported, so a
                            // reboot cannot deliver it twice.
                            self.outbox.save_inbound_qos2(&self.inbound_q2);
                            (n, Step::Borrowed)
                        }
                    }
                    _ => (0, Step::Borrowed),
                }
            }
            Packet::PubRel(a) if connected => {
                if crate::client::release_inbound(&mut self.inbound_q2, a.pid) {
                    self.outbox.save_inbound_qos2(&self.inbound_q2);
                }
                (ack(7, a.pid), Step::Again)
            }
            Packet::PubAck(a) if connected => (0, self.finish(a.pid, QoS::AtLeastOnce, a.reason)),
            Packet::PubComp(a) if connected => (0, self.finish(a.pid, QoS::ExactlyOnce, a.reason)),
            Packet::PubRec(a) if connected && a.reason.is_error() => {
                // The QoS 2 flow ends here: no PUBREL.
                (0, self.finish(a.pid, QoS::ExactlyOnce, a.reason))
            }
            Packet::PubRec(a) if connected => {
                if let Some(i) = find(&self.outbox, a.pid) {
                    self.outbox.add_flags(i, FLAG_PUBREC);
                }
                (ack(6, a.pid), Step::Again)
            }
            Packet::SubAck { .. } | Packet::UnsubAck { .. } if connected => (0, Step::Borrowed),
            Packet::PingResp if connected => {
                self.ping_sent = None;
                (0, Step::Again)
            }
            Packet::Disconnect { reason, .. } => return Err(LinkError::ServerDisconnect(reason)),
            _ => return Err(LinkError::UnexpectedPacket),
        };
        self.tx_len += sent;
        Ok(Some(step))
    }

    /// PUBACK / PUBCOMP / failed PUBREC: complete, or reject on an error code.
    fn finish(&mut self, pid: u16, qos: QoS, reason: ReasonCode) -> Step {
        let step = self.complete(pid, qos);
        match step {
            Step::Delivered(pid) if reason.is_error() => Step::Rejected(pid, reason),
            s => s,
        }
    }

    /// The event for the packet at the start of the receive buffer.
    pub(crate) fn borrowed_event_v5(&self) -> Option<Event<'_>> {
        match c5::decode_inbound_as(self.is_v5(), &self.rx[..self.rx_consumed]) {
            Ok(Some((Packet::Publish(mut p), _))) => {
                if p.topic.is_empty() {
                    let a = c5::topic_alias(&p.properties)?;
                    p.topic = crate::Topic(self.v5.aliases_in.topic(a)?);
                }
                Some(Event::Message(p))
            }
            Ok(Some((Packet::SubAck { pid, codes, .. }, _))) => Some(Event::Subscribed { pid, codes }),
            Ok(Some((Packet::UnsubAck { pid, codes, .. }, _))) => Some(Event::Unsubscribed { pid, codes }),
            _ => None,
        }
    }
}

/// Takes the broker's limits and assigned client id from CONNACK.
fn apply_connack(st: &mut V5State<'_>, props: &Properties<'_>) -> Result<(), LinkError> {
    for p in props.iter() {
        match p {
            Property::U16(id::RECEIVE_MAXIMUM, 0) => {
                return Err(LinkError::Malformed(codec::DecodeError::InvalidProperty))
            }
            Property::U16(id::RECEIVE_MAXIMUM, v) => st.limits.receive_maximum = v,
            Property::U32(id::MAXIMUM_PACKET_SIZE, v) => st.limits.maximum_packet_size = v,
            Property::U16(id::TOPIC_ALIAS_MAXIMUM, v) => st.limits.topic_alias_maximum = v,
            // [MQTT-3.2.2-21]: the Server Keep Alive replaces ours.
            Property::U16(id::SERVER_KEEP_ALIVE, v) => st.limits.keep_alive_secs = v,
            Property::Bytes(id::ASSIGNED_CLIENT_ID, b) => {
                st.assigned_id.clear();
                // Too long to keep: reconnecting with an empty id gets a new one.
                let _ = st.assigned_id.extend_from_slice(b);
            }
            _ => {}
        }
    }
    Ok(())
}
