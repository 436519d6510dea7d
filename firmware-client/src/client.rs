//! The sans-I/O protocol core: MQTT 3.1.1 session state machine.
//!
//! [`Client`] owns the connection state, the keep-alive timers, the inbound
//! QoS 2 bookkeeping and the outbox policy. It never touches a transport or a
//! clock: the driver copies received bytes in ([`Client::feed`] or
//! [`Client::receive_buffer`]), takes bytes to send out
//! ([`Client::transmit_data`] / [`Client::commit_transmitted`]), and passes the
//! current time in milliseconds (a wrapping `u32`) to [`Client::poll`], which
//! returns events.
//!
//! Every PUBLISH goes through the outbox, so ordering holds across QoS levels
//! and across disconnections: QoS 0 entries leave the outbox once written to
//! the transmit buffer, QoS 1/2 entries once acknowledged (PUBACK / PUBCOMP).

#[cfg(not(feature = "v5"))]
use crate::codec::Packet;
use crate::codec::{self, BufferTooSmall, Connect, Publish, QoS, Will};
use crate::error::{ClientError, LinkError};
use crate::outbox::{EntryMeta, OutboxStorage, StorageFull, FLAG_PUBREC, FLAG_SENT};

/// What to do when a `publish` does not fit the outbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutboxPolicy {
    /// Refuse the new message with [`ClientError::OutboxFull`] (default).
    /// Nothing already accepted is ever dropped.
    Reject,
    /// Make room by dropping the oldest QoS 0 messages that have not been
    /// sent yet; if that is not enough, refuse with
    /// [`ClientError::OutboxFull`]. QoS 1/2 messages are never dropped.
    DropOldestQos0,
}

/// Connection parameters and timeouts.
#[derive(Clone, Copy, Debug)]
pub struct Config<'a> {
    /// Client identifier. Must be non-empty for a persistent session.
    pub client_id: &'a str,
    /// Keep-alive in seconds (0 disables pings and dead-link detection).
    pub keep_alive_secs: u16,
    /// Clean session flag: `false` resumes the broker-side session.
    pub clean_session: bool,
    /// Optional user name.
    pub username: Option<&'a str>,
    /// Optional password (requires a user name).
    pub password: Option<&'a [u8]>,
    /// Optional last will.
    pub will: Option<Will<'a>>,
    /// How long to wait for CONNACK, in milliseconds.
    pub connect_timeout_ms: u32,
    /// How long to wait for PINGRESP, in milliseconds.
    pub ping_timeout_ms: u32,
    /// Maximum QoS 1/2 messages sent and not yet acknowledged (0 counts as 1).
    pub max_inflight: u16,
    /// Outbox full policy.
    pub outbox_policy: OutboxPolicy,
    /// Speak MQTT 5 with these CONNECT options; `None` (default): MQTT 3.1.1.
    #[cfg(feature = "v5")]
    pub v5: Option<crate::v5::V5Options>,
}

impl<'a> Config<'a> {
    /// Defaults: keep-alive 30 s, persistent session, no credentials, no will,
    /// 5 s connect and ping timeouts, 8 in flight, [`OutboxPolicy::Reject`].
    pub const fn new(client_id: &'a str) -> Self {
        Config {
            client_id,
            keep_alive_secs: 30,
            clean_session: false,
            username: None,
            password: None,
            will: None,
            connect_timeout_ms: 5_000,
            ping_timeout_ms: 5_000,
            max_inflight: 8,
            outbox_policy: OutboxPolicy::Reject,
            #[cfg(feature = "v5")]
            v5: None,
        }
    }
}

/// Connection state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// No session; call [`Client::connect`] once the transport is up.
    Disconnected,
    /// CONNECT queued or sent, waiting for CONNACK.
    Connecting,
    /// CONNACK accepted.
    Connected,
}

/// Something the application should know about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// CONNACK accepted. If `session_present` is false the broker has no
    /// subscriptions for this client: subscribe again.
    Connected {
        /// Whether the broker resumed a stored session.
        session_present: bool,
    },
    /// An outbound QoS 1/2 message was acknowledged (PUBACK / PUBCOMP) and
    /// left the outbox.
    Delivered {
        /// Packet identifier returned by `publish`.
        pid: u16,
    },
    /// An inbound application message. QoS 2 messages are reported once.
    Message(Publish<'a>),
    /// SUBACK: one return code per filter (0..=2 granted QoS, 0x80 failure).
    Subscribed {
        /// Packet identifier returned by `subscribe`.
        pid: u16,
        /// Return codes.
        codes: &'a [u8],
    },
    /// UNSUBACK.
    Unsubscribed {
        /// Packet identifier returned by `unsubscribe`.
        pid: u16,
        /// MQTT 5 reason codes, one per filter (empty for MQTT 3.1.1).
        codes: &'a [u8],
    },
    /// A stored message could not be sent because it no longer fits the
    /// transmit buffer (only possible after a reboot with smaller buffers);
    /// it was removed from the outbox.
    Dropped {
        /// Its packet identifier (0 for QoS 0).
        pid: u16,
    },
    /// MQTT 5: the broker answered a QoS 1/2 message with an error reason
    /// code (PUBACK, PUBREC or PUBCOMP of 0x80 or more). The message left
    /// the outbox; resending it would get the same answer.
    #[cfg(feature = "v5")]
    Rejected {
        /// Packet identifier returned by `publish`.
        pid: u16,
        /// The broker's reason.
        reason: crate::v5::ReasonCode,
    },
    /// MQTT 5: a queued message's Message Expiry Interval ran out before it
    /// was sent; it left the outbox unsent.
    #[cfg(feature = "v5")]
    Expired {
        /// Its packet identifier (0 for QoS 0).
        pid: u16,
    },
}

/// Non-borrowing result of one internal step.
pub(crate) enum Step {
    /// Nothing more to do now.
    Idle,
    /// Made progress, call again.
    Again,
    Connected(bool),
    Delivered(u16),
    Dropped(u16),
    #[cfg(not(feature = "v5"))]
    Unsubscribed(u16),
    #[cfg(feature = "v5")]
    Rejected(u16, crate::v5::ReasonCode),
    #[cfg(feature = "v5")]
    Expired(u16),
    /// The packet at the start of the receive buffer is the event
    /// (PUBLISH or SUBACK); it is re-decoded to borrow it.
    Borrowed,
}

/// Room that must be free in the transmit buffer before an inbound packet is
/// processed (enough for any acknowledgement).
const ACK_ROOM: usize = 4;

/// Largest MQTT 5 PUBLISH overhead over 3.1.1 for a message without
/// caller properties: property length and a Topic Alias.
const V5_OVERHEAD: usize = if cfg!(feature = "v5") { 4 } else { 0 };

/// The MQTT client core. `Q2` bounds the number of inbound QoS 2 messages
/// received but not yet released (PUBREL) by the broker.
pub struct Client<'b, S: OutboxStorage, const Q2: usize = 4> {
    pub(crate) cfg: Config<'b>,
    pub(crate) tx: &'b mut [u8],
    pub(crate) tx_len: usize,
    pub(crate) rx: &'b mut [u8],
    pub(crate) rx_len: usize,
    /// Bytes at the start of `rx` already handled, removed on next use.
    pub(crate) rx_consumed: usize,
    pub(crate) outbox: S,
    /// Leading outbox entries already sent on this connection.
    pub(crate) cursor: usize,
    pub(crate) state: State,
    pub(crate) now: u32,
    /// Start of the connect attempt.
    pub(crate) connect_at: u32,
    pub(crate) last_tx: u32,
    pub(crate) last_rx: u32,
    pub(crate) ping_sent: Option<u32>,
    pub(crate) next_pid: u16,
    pub(crate) inbound_q2: heapless::Vec<u16, Q2>,
    #[cfg(feature = "v5")]
    pub(crate) v5: crate::client_v5::V5State<'b>,
}

impl<'b, S: OutboxStorage, const Q2: usize> Client<'b, S, Q2> {
    /// A disconnected client using `tx` and `rx` as its transmit and receive
    /// buffers. `tx` must hold the largest packet you publish or subscribe
    /// with, `rx` the largest packet the broker sends. Messages already in
    /// `outbox` (e.g. recovered from flash) are sent after connecting.
    pub fn new(cfg: Config<'b>, tx: &'b mut [u8], rx: &'b mut [u8], outbox: S) -> Self {
        // Inbound QoS 2 ids the storage kept across a reboot.
        let mut ids = [0u16; Q2];
        let n = outbox.load_inbound_qos2(&mut ids).min(Q2);
        let mut inbound_q2 = heapless::Vec::new();
        for &pid in &ids[..n] {
            let _ = inbound_q2.push(pid);
        }
        Client {
            cfg,
            tx,
            tx_len: 0,
            rx,
            rx_len: 0,
            rx_consumed: 0,
            outbox,
            cursor: 0,
            state: State::Disconnected,
            now: 0,
            connect_at: 0,
            last_tx: 0,
            last_rx: 0,
            ping_sent: None,
            next_pid: 1,
            inbound_q2,
            #[cfg(feature = "v5")]
            v5: crate::client_v5::V5State::new(),
        }
    }

    /// Current connection state.
    pub fn state(&self) -> State {
        self.state
    }

    /// True once CONNACK was accepted and until the link fails.
    pub fn is_connected(&self) -> bool {
        self.state == State::Connected
    }

    /// The outbox (e.g. to check how many messages are pending).
    pub fn outbox(&self) -> &S {
        &self.outbox
    }

    /// Consumes the client, returning the outbox.
    pub fn into_outbox(self) -> S {
        self.outbox
    }

    /// Starts a new connection: discards buffered bytes of any previous one
    /// and queues CONNECT. Call it when the transport is (re)established.
    pub fn connect(&mut self, now: u32) -> Result<(), ClientError> {
        self.reset_link();
        let c = Connect {
            client_id: self.cfg.client_id,
            keep_alive: self.cfg.keep_alive_secs,
            clean_session: self.cfg.clean_session,
            username: self.cfg.username,
            password: self.cfg.password,
            will: self.cfg.will,
        };
        #[cfg(feature = "v5")]
        let r = crate::client_v5::encode_connect(self, &c);
        #[cfg(not(feature = "v5"))]
        let r = codec::encode_connect(&c, self.tx);
        self.tx_len = r.map_err(|_| ClientError::TooLarge)?;
        self.state = State::Connecting;
        self.now = now;
        self.connect_at = now;
        self.last_rx = now;
        self.last_tx = now;
        Ok(())
    }

    /// Queues DISCONNECT (replacing unsent bytes) and goes to
    /// [`State::Disconnected`]. Flush the transmit data, then close the
    /// transport. The outbox is kept.
    pub fn disconnect(&mut self) {
        let was_up = self.state != State::Disconnected;
        self.reset_link();
        if was_up {
            #[cfg(feature = "v5")]
            if self.is_v5() {
                let r = crate::v5::codec::encode_disconnect(crate::v5::ReasonCode::Success, self.tx);
                self.tx_len = r.unwrap_or(0);
                return;
            }
            self.tx_len = codec::encode_disconnect(self.tx).unwrap_or(0);
        }
    }

    /// Tells the core the transport failed or was closed.
    pub fn link_lost(&mut self) {
        self.reset_link();
    }

    fn reset_link(&mut self) {
        self.state = State::Disconnected;
        self.tx_len = 0;
        self.rx_len = 0;
        self.rx_consumed = 0;
        self.cursor = 0;
        self.ping_sent = None;
    }

    pub(crate) fn fail(&mut self, e: LinkError) -> LinkError {
        self.reset_link();
        e
    }

    /// Bytes waiting to be written to the transport.
    pub fn transmit_data(&self) -> &[u8] {
        &self.tx[..self.tx_len]
    }

    /// Marks the first `n` bytes of [`transmit_data`](Self::transmit_data)
    /// as written.
    pub fn commit_transmitted(&mut self, n: usize) {
        let n = n.min(self.tx_len);
        codec::shift_left(self.tx, n, self.tx_len);
        self.tx_len -= n;
        if n > 0 {
            self.last_tx = self.now;
        }
    }

    fn compact_rx(&mut self) {
        if self.rx_consumed > 0 {
            codec::shift_left(self.rx, self.rx_consumed, self.rx_len);
            self.rx_len -= self.rx_consumed;
            self.rx_consumed = 0;
        }
    }

    /// Free space to read transport bytes into; follow with
    /// [`commit_received`](Self::commit_received).
    pub fn receive_buffer(&mut self) -> &mut [u8] {
        self.compact_rx();
        &mut self.rx[self.rx_len..]
    }

    /// Marks `n` bytes of [`receive_buffer`](Self::receive_buffer) as filled.
    pub fn commit_received(&mut self, n: usize) {
        self.rx_len = (self.rx_len + n).min(self.rx.len());
    }

    /// Copies as much of `data` as fits into the receive buffer and returns
    /// how many bytes were taken; call [`poll`](Self::poll) and feed the rest.
    pub fn feed(&mut self, data: &[u8]) -> usize {
        let space = self.receive_buffer();
        let n = data.len().min(space.len());
        space[..n].copy_from_slice(&data[..n]);
        self.commit_received(n);
        n
    }

    /// Queues a message in the outbox; it is sent, in order, when connected.
    /// Returns the packet identifier for QoS 1/2 (reported again in
    /// [`Event::Delivered`]).
    pub fn publish(&mut self, topic: &str, payload: &[u8], qos: QoS, retain: bool) -> Result<Option<u16>, ClientError> {
        self.enqueue(topic, &[payload], qos, retain, false)
    }

    /// Queues a message whose stored payload is `parts` concatenated
    /// (`props`: it starts with the MQTT 5 extras block).
    pub(crate) fn enqueue(
        &mut self,
        topic: &str,
        parts: &[&[u8]],
        qos: QoS,
        retain: bool,
        props: bool,
    ) -> Result<Option<u16>, ClientError> {
        if !codec::valid_topic_name(topic) {
            return Err(ClientError::InvalidTopic);
        }
        let stored: usize = parts.iter().map(|p| p.len()).sum();
        // Largest encoding: 5 header bytes, topic length, packet id (and
        // the MQTT 5 overhead; the extras block is larger than the
        // properties it becomes).
        let wire = 5 + 2 + topic.len() + 2 + V5_OVERHEAD + stored;
        if wire > self.tx.len() || topic.len() + stored > self.outbox.max_message_len() {
            return Err(ClientError::TooLarge);
        }
        let pid = if qos == QoS::AtMostOnce { 0 } else { self.alloc_pid() };
        let meta = EntryMeta { qos, retain, props, pid, flags: 0 };
        while let Err(StorageFull) = self.outbox.push_parts(meta, topic, parts) {
            if self.cfg.outbox_policy == OutboxPolicy::Reject || !self.drop_oldest_qos0() {
                return Err(ClientError::OutboxFull);
            }
        }
        Ok((pid != 0).then_some(pid))
    }

    /// Removes the oldest not-yet-sent QoS 0 message; false if none.
    fn drop_oldest_qos0(&mut self) -> bool {
        for i in self.cursor..self.outbox.len() {
            if self.outbox.get(i).map(|e| e.meta.qos) == Some(QoS::AtMostOnce) {
                self.outbox.remove(i);
                return true;
            }
        }
        false
    }

    fn alloc_pid(&mut self) -> u16 {
        loop {
            let pid = self.next_pid;
            self.next_pid = self.next_pid.checked_add(1).unwrap_or(1);
            if self.find(pid).is_none() {
                return pid;
            }
        }
    }

    fn find(&self, pid: u16) -> Option<usize> {
        find(&self.outbox, pid)
    }

    /// Sends SUBSCRIBE now (not queued in the outbox). Needs a connection and
    /// room in the transmit buffer.
    pub fn subscribe(&mut self, topics: &[(&str, QoS)]) -> Result<u16, ClientError> {
        if topics.is_empty() || topics.iter().any(|(t, _)| !codec::valid_topic_filter(t)) {
            return Err(ClientError::InvalidTopic);
        }
        #[cfg(feature = "v5")]
        let v5 = self.is_v5();
        #[cfg(feature = "v5")]
        return self.send_control(|pid, buf| crate::v5::codec::encode_subscribe_as(v5, pid, topics, buf));
        #[cfg(not(feature = "v5"))]
        self.send_control(|pid, buf| codec::encode_subscribe(pid, topics, buf))
    }

    /// Sends UNSUBSCRIBE now. Needs a connection and transmit buffer room.
    pub fn unsubscribe(&mut self, topics: &[&str]) -> Result<u16, ClientError> {
        if topics.is_empty() || topics.iter().any(|t| !codec::valid_topic_filter(t)) {
            return Err(ClientError::InvalidTopic);
        }
        #[cfg(feature = "v5")]
        let v5 = self.is_v5();
        #[cfg(feature = "v5")]
        return self.send_control(|pid, buf| crate::v5::codec::encode_unsubscribe_as(v5, pid, topics, buf));
        #[cfg(not(feature = "v5"))]
        self.send_control(|pid, buf| codec::encode_unsubscribe(pid, topics, buf))
    }

    fn send_control(
        &mut self,
        enc: impl FnOnce(u16, &mut [u8]) -> Result<usize, BufferTooSmall>,
    ) -> Result<u16, ClientError> {
        if self.state != State::Connected {
            return Err(ClientError::NotConnected);
        }
        let pid = self.alloc_pid();
        let n = enc(pid, &mut self.tx[self.tx_len..]).map_err(|_| {
            if self.tx_len == 0 {
                ClientError::TooLarge
            } else {
                ClientError::Busy
            }
        })?;
        #[cfg(feature = "v5")]
        if n > self.v5.max_packet() {
            // [MQTT-3.2.2-15]: never more than the broker's Maximum Packet Size.
            return Err(ClientError::TooLarge);
        }
        self.tx_len += n;
        Ok(pid)
    }

    /// Runs timers, processes received packets and fills the transmit buffer.
    /// Call it after feeding bytes, after transmitting, and periodically
    /// (at least every few hundred ms) with the current time in ms. Repeat
    /// until it returns `Ok(None)`.
    ///
    /// On `Err` the connection is dead and the client is
    /// [`State::Disconnected`]: close the transport if it has a connection
    /// concept, then [`connect`](Self::connect) again.
    pub fn poll(&mut self, now: u32) -> Result<Option<Event<'_>>, LinkError> {
        self.now = now;
        loop {
            let step = match self.step() {
                Ok(s) => s,
                Err(e) => return Err(self.fail(e)),
            };
            let ev = match step {
                Step::Idle => return Ok(None),
                Step::Again => continue,
                Step::Connected(session_present) => Event::Connected { session_present },
                Step::Delivered(pid) => Event::Delivered { pid },
                Step::Dropped(pid) => Event::Dropped { pid },
                #[cfg(not(feature = "v5"))]
                Step::Unsubscribed(pid) => Event::Unsubscribed { pid, codes: &[] },
                #[cfg(feature = "v5")]
                Step::Rejected(pid, reason) => Event::Rejected { pid, reason },
                #[cfg(feature = "v5")]
                Step::Expired(pid) => Event::Expired { pid },
                Step::Borrowed => {
                    #[cfg(feature = "v5")]
                    return Ok(self.borrowed_event_v5());
                    #[cfg(not(feature = "v5"))]
                    return Ok(match codec::decode_inbound(&self.rx[..self.rx_consumed]) {
                        Ok(Some((Packet::Publish(p), _))) => Some(Event::Message(p)),
                        Ok(Some((Packet::SubAck { pid, codes }, _))) => Some(Event::Subscribed { pid, codes }),
                        _ => None,
                    });
                }
            };
            return Ok(Some(ev));
        }
    }

    pub(crate) fn elapsed(&self, since: u32) -> u32 {
        self.now.wrapping_sub(since)
    }

    fn step(&mut self) -> Result<Step, LinkError> {
        self.compact_rx();
        match self.state {
            State::Disconnected => {
                self.rx_len = 0;
                return Ok(Step::Idle);
            }
            State::Connecting => {
                if self.elapsed(self.connect_at) >= self.cfg.connect_timeout_ms {
                    return Err(LinkError::ConnectTimeout);
                }
            }
            State::Connected => {
                if let Some(t) = self.ping_sent {
                    if self.elapsed(t) >= self.cfg.ping_timeout_ms {
                        return Err(LinkError::PingTimeout);
                    }
                }
            }
        }
        if self.tx.len() - self.tx_len >= ACK_ROOM {
            if let Some(step) = self.process_inbound()? {
                return Ok(step);
            }
        }
        if self.state == State::Connected {
            return Ok(self.fill_transmit());
        }
        Ok(Step::Idle)
    }

    /// Handles the next complete inbound packet, if any.
    fn process_inbound(&mut self) -> Result<Option<Step>, LinkError> {
        #[cfg(feature = "v5")]
        return self.process_inbound_v5();
        #[cfg(not(feature = "v5"))]
        self.process_inbound_v3()
    }

    #[cfg(not(feature = "v5"))]
    fn process_inbound_v3(&mut self) -> Result<Option<Step>, LinkError> {
        let (packet, len) = match codec::decode_inbound(&self.rx[..self.rx_len])? {
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
        let tx = &mut self.tx[self.tx_len..];
        let connected = self.state == State::Connected;
        let mut ack = |kind: u8, pid: u16| codec::encode_ack(kind, pid, tx).unwrap_or(0);
        let (sent, step) = match packet {
            Packet::ConnAck { session_present, code } if !connected => {
                if code != 0 {
                    return Err(LinkError::Refused(code));
                }
                self.on_connack(session_present);
                (0, Step::Connected(session_present))
            }
            Packet::Publish(p) if connected => match (p.qos, p.pid) {
                (QoS::AtLeastOnce, Some(pid)) => (ack(4, pid), Step::Borrowed),
                (QoS::ExactlyOnce, Some(pid)) => {
                    let n = ack(5, pid);
                    if self.inbound_q2.contains(&pid) {
                        (n, Step::Again)
                    } else {
                        self.inbound_q2.push(pid).map_err(|_| LinkError::TooManyInboundQos2)?;
                        // Kept before the message is reported, so a reboot
                        // cannot deliver it twice.
                        self.outbox.save_inbound_qos2(&self.inbound_q2);
                        (n, Step::Borrowed)
                    }
                }
                _ => (0, Step::Borrowed),
            },
            Packet::PubRel(pid) if connected => {
                if release_inbound(&mut self.inbound_q2, pid) {
                    self.outbox.save_inbound_qos2(&self.inbound_q2);
                }
                (ack(7, pid), Step::Again)
            }
            Packet::PubAck(pid) if connected => (0, self.complete(pid, QoS::AtLeastOnce)),
            Packet::PubComp(pid) if connected => (0, self.complete(pid, QoS::ExactlyOnce)),
            Packet::PubRec(pid) if connected => {
                if let Some(i) = find(&self.outbox, pid) {
                    self.outbox.add_flags(i, FLAG_PUBREC);
                }
                (ack(6, pid), Step::Again)
            }
            Packet::SubAck { .. } if connected => (0, Step::Borrowed),
            Packet::UnsubAck(pid) if connected => (0, Step::Unsubscribed(pid)),
            Packet::PingResp if connected => {
                self.ping_sent = None;
                (0, Step::Again)
            }
            _ => return Err(LinkError::UnexpectedPacket),
        };
        self.tx_len += sent;
        Ok(Some(step))
    }

    pub(crate) fn on_connack(&mut self, session_present: bool) {
        self.state = State::Connected;
        self.cursor = 0;
        if !session_present {
            // The broker forgot us: inbound QoS 2 state is void, and QoS 2
            // messages that already got PUBREC were delivered.
            if !self.inbound_q2.is_empty() {
                self.inbound_q2.clear();
                self.outbox.save_inbound_qos2(&[]);
            }
            let mut i = 0;
            while let Some(e) = self.outbox.get(i) {
                if e.meta.flags & FLAG_PUBREC != 0 {
                    self.outbox.remove(i);
                } else {
                    i += 1;
                }
            }
        }
    }

    /// PUBACK / PUBCOMP for `pid`: remove the entry if it matches.
    pub(crate) fn complete(&mut self, pid: u16, qos: QoS) -> Step {
        match self.find(pid) {
            Some(i) if self.outbox.get(i).map(|e| e.meta.qos) == Some(qos) => {
                self.outbox.remove(i);
                if i < self.cursor {
                    self.cursor -= 1;
                }
                Step::Delivered(pid)
            }
            _ => Step::Again,
        }
    }

    /// Queues a PINGREQ when due, else the next outbox entry.
    fn fill_transmit(&mut self) -> Step {
        #[cfg(feature = "v5")]
        let ka = u32::from(self.v5.keep_alive(&self.cfg)) * 1000;
        #[cfg(not(feature = "v5"))]
        let ka = u32::from(self.cfg.keep_alive_secs) * 1000;
        let ping_due = ka > 0
            && self.ping_sent.is_none()
            && (self.elapsed(self.last_tx) >= ka || self.elapsed(self.last_rx) >= ka);
        let free = &mut self.tx[self.tx_len..];
        if ping_due {
            if let Ok(n) = codec::encode_pingreq(free) {
                self.tx_len += n;
                self.ping_sent = Some(self.now);
                return Step::Again;
            }
            return Step::Idle;
        }
        #[cfg(feature = "v5")]
        let window = self.cfg.max_inflight.min(self.v5.receive_maximum());
        #[cfg(not(feature = "v5"))]
        let window = self.cfg.max_inflight;
        if self.cursor > 0 && self.cursor >= usize::from(window) {
            return Step::Idle;
        }
        let Some(e) = self.outbox.get(self.cursor) else {
            return Step::Idle;
        };
        let m = e.meta;
        let res = if m.flags & FLAG_PUBREC != 0 {
            codec::encode_ack(6, m.pid, free)
        } else {
            let p = Publish {
                dup: m.flags & FLAG_SENT != 0,
                qos: m.qos,
                retain: m.retain,
                topic: e.topic,
                pid: Some(m.pid),
                payload: e.payload,
                properties: codec::Properties::NONE,
            };
            #[cfg(feature = "v5")]
            let r = match crate::client_v5::encode_entry(p, m, &mut self.v5, self.cfg.v5.is_some(), self.now, free) {
                crate::client_v5::Encoded::Expired => {
                    self.outbox.remove(self.cursor);
                    return Step::Expired(m.pid);
                }
                crate::client_v5::Encoded::TooLarge => {
                    self.outbox.remove(self.cursor);
                    return Step::Dropped(m.pid);
                }
                crate::client_v5::Encoded::Done(r) => r,
            };
            #[cfg(not(feature = "v5"))]
            let r = codec::encode_publish(&p, free);
            r
        };
        let Ok(n) = res else {
            if self.tx_len == 0 {
                self.outbox.remove(self.cursor);
                return Step::Dropped(m.pid);
            }
            return Step::Idle;
        };
        self.tx_len += n;
        if m.qos == QoS::AtMostOnce {
            self.outbox.remove(self.cursor);
        } else {
            if m.flags & FLAG_SENT == 0 {
                self.outbox.add_flags(self.cursor, FLAG_SENT);
            }
            self.cursor += 1;
        }
        Step::Again
    }
}

/// Forgets inbound QoS 2 packet id `pid` (PUBREL received). Order in the
/// table does not matter; `swap_remove` keeps `memmove` out of firmware.
/// True if it was there.
pub(crate) fn release_inbound<const Q2: usize>(table: &mut heapless::Vec<u16, Q2>, pid: u16) -> bool {
    let at = table.iter().position(|&p| p == pid);
    if let Some(i) = at {
        table.swap_remove(i);
    }
    at.is_some()
}

/// Index of the QoS 1/2 outbox entry with packet identifier `pid`.
pub(crate) fn find<S: OutboxStorage>(outbox: &S, pid: u16) -> Option<usize> {
    (0..outbox.len()).find(|&i| outbox.get(i).is_some_and(|e| e.meta.pid == pid && e.meta.qos != QoS::AtMostOnce))
}
