//! The connection of one bridge to its remote broker: a tokio task that
//! connects (addresses in order or round robin, connect timeout,
//! exponential backoff with jitter between rounds), sends CONNECT with the
//! configured options, subscribes for the `in` rules (No Local and Retain
//! As Published), forwards the queue ([`Fifo`]) in order within an
//! in-flight window (ours, at most the remote's Receive Maximum; nothing
//! over its Maximum Packet Size), publishes what the remote sends through
//! the router (an internal client: `RouterMsg::Publish` with the
//! bridge's origin key) and acknowledges it once the router processed it
//! and the local log made it durable, and keeps the link alive with
//! PINGREQ.
//!
//! QoS 2 across a crash: a message's packet id is its queue position
//! ([`pkid`]: the same after a restart), and PUBREL goes only after the
//! PUBREC is durable (`Fifo::persist_released`). After a restart the link
//! sends PUBREL for what the remote had received and PUBLISH with DUP for
//! the rest, which a remote that has it acknowledges without delivering it
//! again ([MQTT-4.3.3-10]); either way no duplicate. A 3.1.1 remote does
//! not say how many QoS 2 messages it takes in flight (Mosquitto's default
//! is 20 and it drops the connection over it): with a QoS 2 `out` rule the
//! window to a 3.1.1 remote is at most [`V311_QOS2_WINDOW`].
//!
//! Outcome of a remote refusal (PUBACK/PUBREC reason code 0x80 or more,
//! e.g. 0x87 Not authorized, 0x97 Quota exceeded, 0x99): the message is
//! not sent again (it would be refused again and block the queue behind
//! it); it is logged (topic, code) and counted in `FifoStats::rejected`.
//!
//! TCP or, with `tls = true`, TLS over it (rustls, the connector loaded
//! at start by `server::tls::connector`; the remote's certificate checked
//! against the address's host or `tls_server_name`): [`connect_one`]
//! returns a [`Stream`], which [`session`] runs on split in two.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::client::TlsStream;
use tokio_util::sync::CancellationToken;

use super::config::{AddressOrder, BridgeConfig, BridgeProtocol};
use super::fifo::{Fifo, Reader};
use crate::message::{Message, SessionKey};
use crate::protocol::client::{decode_server, encode_client, ClientPacket, ServerPacket};
use crate::protocol::{
    publish_size_bound, Ack, ConnAck, ConnectReason, DisconnectReason, PubCompReason, Publish, QoS, Reason,
    RetainHandling, SubOptions, Subscribe, SubscribeFilter, Version,
};
use crate::router::{RouterMsg, Ticket};
use crate::store::{Journal, Lsn, StoredMessage};

/// Largest packet accepted from the remote.
const MAX_IN_PACKET: usize = 16 * 1024 * 1024;
/// How often a connected bridge logs its state.
const STATUS_EVERY: Duration = Duration::from_secs(60);
/// Records read from the queue at once.
const READ_BATCH: usize = 1024;
/// The window to a 3.1.1 remote when a rule forwards QoS 2.
pub const V311_QOS2_WINDOW: u16 = 20;
/// Packet ids of queued messages: 1 to this (65535 is the SUBSCRIBE's).
const PKIDS: u64 = 65_534;

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("connect timed out")]
    Timeout,
    #[error("refused: CONNACK {0}")]
    Refused(ConnectReason),
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("keep-alive: no answer from the remote")]
    KeepAlive,
    #[error("closed by the remote before CONNACK")]
    Closed,
    #[error("TLS: `{0}` is not a server name")]
    ServerName(String),
}

/// A connection to the remote.
pub enum Stream {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// What a bridge task needs.
pub struct Link {
    pub cfg: Arc<BridgeConfig>,
    pub tls: Option<tokio_rustls::TlsConnector>,
    pub fifo: Arc<Fifo>,
    pub router: mpsc::Sender<RouterMsg>,
    pub origin: SessionKey,
    pub journal: Option<Arc<Journal>>,
    pub shutdown: CancellationToken,
    /// What the admin API shows of this bridge.
    pub status: Arc<super::BridgeStatus>,
    /// Whether CONNECT carries the bridge mark (protocol level | 0x80):
    /// `try_private`, until a remote refuses it (see [`connect_one`]).
    pub private: AtomicBool,
    /// Whether CONNECT carries the state's will and the state is
    /// published on the remote: notifications on and not local only,
    /// until a remote refuses the will (see [`connect_one`]).
    pub remote_state: AtomicBool,
}

/// A message read from the queue, until the remote has it.
struct Entry {
    lsn: Lsn,
    /// Bytes of its record in the queue.
    bytes: u64,
    msg: StoredMessage,
    pkid: u16,
    /// PUBREC came: PUBREL is what is (re)sent.
    released: bool,
    done: bool,
    /// Sent at least once (in this process, or possibly before a crash).
    sent: bool,
}

/// What outlives one connection: the window of messages read from the
/// queue, and the inbound QoS 2 ids awaiting PUBREL.
struct State {
    window: VecDeque<Entry>,
    reader: Option<Reader>,
    in_qos2: HashSet<u16>,
    /// QoS 2 messages completed (PUBCOMP) that the persisted cursor may
    /// not cover yet: they stay in the PUBREC record until it does.
    completed: VecDeque<Lsn>,
}

/// The packet id of the message at `lsn`: unique in a window spanning
/// fewer than [`PKIDS`] positions, and the same after a restart.
fn pkid(lsn: Lsn) -> u16 {
    ((lsn.saturating_sub(1) % PKIDS) + 1) as u16
}

fn version(cfg: &BridgeConfig) -> Version {
    match cfg.protocol_version {
        BridgeProtocol::V311 => Version::V311,
        BridgeProtocol::V5 => Version::V5,
    }
}

/// A delay between `d / 2` and `d`.
fn jitter(d: Duration) -> Duration {
    let mut b = [0u8; 2];
    let r = getrandom::fill(&mut b).map_or(0x8000, |()| u16::from_le_bytes(b));
    d / 2 + d.mul_f64(f64::from(r) / f64::from(u16::MAX) / 2.0)
}

/// Runs the bridge until shutdown.
pub async fn run(link: Link) {
    let cfg = link.cfg.clone();
    let mut st = State {
        window: VecDeque::new(),
        reader: Some(link.fifo.reader()),
        in_qos2: HashSet::new(),
        completed: VecDeque::new(),
    };
    let (min, max) = (Duration::from_millis(cfg.reconnect_min_ms), Duration::from_millis(cfg.reconnect_max_ms));
    let mut delay = min;
    let mut start = 0;
    let mut failures = 0u64;
    link.notify(false).await;
    loop {
        for i in 0..cfg.addresses.len() {
            let at = (start + i) % cfg.addresses.len();
            let addr = &cfg.addresses[at];
            let r = tokio::select! {
                r = connect_one(&link, addr) => r,
                () = link.shutdown.cancelled() => return,
            };
            match r {
                Ok((stream, ack, rbuf)) => {
                    tracing::info!(bridge = %cfg.name, %addr, session_present = ack.session_present, queued = link.fifo.depth(), "bridge connected");
                    delay = min;
                    failures = 0;
                    if cfg.address_order == AddressOrder::RoundRobin {
                        start = at + 1;
                    }
                    link.status.up(addr);
                    link.notify(true).await;
                    let r = match stream {
                        Stream::Tcp(s) => session(&link, &mut st, s.into_split(), rbuf, &ack, addr).await,
                        Stream::Tls(s) => session(&link, &mut st, tokio::io::split(s), rbuf, &ack, addr).await,
                    };
                    link.notify(false).await;
                    let stats = &link.fifo.stats;
                    if let Err(e) = &r {
                        link.status.down(e.to_string());
                    }
                    match r {
                        Ok(()) => return,
                        Err(e) => tracing::warn!(
                            bridge = %cfg.name, %addr, queued = link.fifo.depth(),
                            forwarded = stats.forwarded.load(Ordering::Relaxed),
                            dropped = stats.dropped.load(Ordering::Relaxed),
                            rejected = stats.rejected.load(Ordering::Relaxed),
                            "bridge disconnected: {e}"
                        ),
                    }
                    break;
                }
                Err(e) => {
                    link.status.connect_failed(e.to_string());
                    // A line at each power-of-two failure: an outage of
                    // days does not flood the log.
                    failures += 1;
                    if failures.is_power_of_two() {
                        tracing::warn!(bridge = %cfg.name, %addr, failures, queued = link.fifo.depth(), "bridge cannot connect: {e}");
                    }
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(jitter(delay)) => {}
            () = link.shutdown.cancelled() => return,
        }
        delay = (delay * 2).min(max);
    }
}

impl Link {
    /// The retained `1`/`0` on the notification topic, locally.
    async fn notify(&self, up: bool) {
        if !self.cfg.notifications {
            return;
        }
        let m = Message {
            topic: self.cfg.notification_topic.clone(),
            payload: if up { "1".into() } else { "0".into() },
            qos: QoS::AtLeastOnce,
            retain: true,
            props: None,
            origin: self.origin,
            received: Instant::now(),
        };
        let _ = self.router.send(RouterMsg::Publish(m)).await;
    }
}

/// Whether the state goes to the remote too (Mosquitto's default).
pub fn remote_notifications(cfg: &BridgeConfig) -> bool {
    cfg.notifications && !cfg.notifications_local_only
}

/// The retained state for the remote's notification topic (QoS 0: the
/// window's packet ids are the queue's; if it is lost with the
/// connection, the will says `0`).
fn state_packet(cfg: &BridgeConfig, up: bool) -> ClientPacket {
    ClientPacket::Publish(Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: true,
        topic: cfg.notification_topic.clone(),
        pkid: 0,
        payload: if up { "1".into() } else { "0".into() },
        props: None,
    })
}

fn encode(p: &ClientPacket, v: Version, buf: &mut BytesMut) -> Result<(), LinkError> {
    encode_client(p, v, buf).map_err(|e| LinkError::Protocol(e.to_string()))
}

/// Inbound QoS 1/2 messages whose acknowledgement waits for the router
/// (the `count`th message of this link's ticket) and the log.
struct InAck {
    count: u64,
    ack: ClientPacket,
}

/// One connection's life: returns `Ok` on shutdown, the error otherwise.
async fn session<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    link: &Link,
    st: &mut State,
    (mut rd, mut wr): (R, W),
    mut rbuf: BytesMut,
    ack: &ConnAck,
    addr: &str,
) -> Result<(), LinkError> {
    let cfg = &link.cfg;
    let v = version(cfg);
    let qos2_out = cfg.topics.iter().any(|r| r.direction.is_out() && r.qos == 2);
    let unannounced = if v == Version::V311 && qos2_out { V311_QOS2_WINDOW } else { u16::MAX };
    let window = usize::from(cfg.max_inflight.min(ack.props.receive_maximum.unwrap_or(unannounced)).max(1));
    let max_packet = ack.props.maximum_packet_size.map_or(usize::MAX, |m| m as usize);
    let max_qos = QoS::from_u8(ack.props.maximum_qos.unwrap_or(2)).unwrap_or(QoS::ExactlyOnce);
    let mut wbuf = BytesMut::new();
    let filters: Vec<SubscribeFilter> = cfg
        .topics
        .iter()
        .filter(|r| r.direction.is_in())
        .map(|r| SubscribeFilter {
            filter: r.remote_filter(),
            options: SubOptions {
                qos: QoS::from_u8(r.qos).unwrap_or(QoS::AtMostOnce),
                no_local: true,
                retain_as_published: true,
                retain_handling: RetainHandling::OnSubscribe,
            },
        })
        .collect();
    let remote_state = link.remote_state.load(Ordering::Relaxed);
    if remote_state {
        encode(&state_packet(cfg, true), v, &mut wbuf)?;
    }
    if !filters.is_empty() {
        let s = Subscribe { pkid: u16::MAX, filters, subscription_identifier: None, user_properties: Vec::new() };
        encode(&ClientPacket::Subscribe(s), v, &mut wbuf)?;
    }
    // What the remote may lack: everything not done, again, with DUP.
    for e in st.window.iter_mut().filter(|e| !e.done) {
        let p =
            if e.released { ClientPacket::PubRel(Ack::ok(e.pkid)) } else { ClientPacket::Publish(publish(e, true)) };
        encode(&p, v, &mut wbuf)?;
    }
    if st.reader.is_none() {
        // Lost with a reader task that failed: read on after the window.
        let mut r = link.fifo.reader();
        r.skip_to(st.window.back().map_or(0, |e| e.lsn + 1));
        st.reader = Some(r);
    }
    let ticket = Arc::new(Ticket::default());
    let mut routed = 0u64;
    let mut in_acks: VecDeque<InAck> = VecDeque::new();
    let mut log_durable = link.journal.as_ref().map(|j| j.durable());
    let mut fifo_durable = link.fifo.durable();
    let keep_alive = Duration::from_secs(u64::from(ack.props.server_keep_alive.unwrap_or(cfg.keep_alive_secs).max(1)));
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + keep_alive / 2, keep_alive / 2);
    let mut ping_out = false;
    let mut status = tokio::time::interval_at(tokio::time::Instant::now() + STATUS_EVERY, STATUS_EVERY);
    rbuf.reserve(64 * 1024);
    let mut first = !rbuf.is_empty();
    loop {
        // Fill the window from the queue.
        while st.window.len() < window {
            // No two of the window's packet ids alike.
            let span = st.window.front().map_or(Lsn::MAX, |e| e.lsn + PKIDS - 1);
            let upto = (*fifo_durable.borrow_and_update()).min(span);
            let Some(mut reader) = st.reader.take() else { break };
            reader.skip_to(link.fifo.floor() + 1);
            if reader.next() > upto {
                st.reader = Some(reader);
                break;
            }
            let want = (window - st.window.len()).min(READ_BATCH);
            let (reader, got) = tokio::task::spawn_blocking(move || {
                let r = reader.read(upto, want, 1 << 20);
                (reader, r)
            })
            .await
            .map_err(|e| LinkError::Protocol(format!("queue reader: {e}")))?;
            let next = reader.next();
            st.reader = Some(reader);
            let got = got?;
            if got.is_empty() {
                break;
            }
            for (lsn, bytes) in got {
                let Ok(mut msg) = StoredMessage::decode(&bytes) else {
                    tracing::error!(bridge = %cfg.name, lsn, "bridge queue: undecodable record skipped");
                    continue;
                };
                msg.qos = msg.qos.min(max_qos);
                let released = msg.qos == QoS::ExactlyOnce && link.fifo.opened_released.contains(&lsn);
                let mut e = Entry {
                    lsn,
                    bytes: bytes.len() as u64,
                    pkid: if msg.qos == QoS::AtMostOnce { 0 } else { pkid(lsn) },
                    msg,
                    released,
                    done: false,
                    sent: lsn <= link.fifo.opened_last,
                };
                let p = publish(&e, e.sent);
                e.sent = true;
                if released {
                    // Its PUBREC came before a restart.
                    encode(&ClientPacket::PubRel(Ack::ok(e.pkid)), v, &mut wbuf)?;
                } else if publish_size_bound(&p, v.is_v5()) > max_packet && encoded_len(&p, v) > max_packet {
                    tracing::warn!(bridge = %cfg.name, topic = %e.msg.topic, max_packet, "bridge: message over the remote's Maximum Packet Size, not sent");
                    link.fifo.stats.rejected.fetch_add(1, Ordering::Relaxed);
                    e.done = true;
                } else {
                    encode(&ClientPacket::Publish(p), v, &mut wbuf)?;
                    if e.msg.qos == QoS::AtMostOnce {
                        e.done = true;
                        link.fifo.stats.forwarded.fetch_add(1, Ordering::Relaxed);
                    }
                }
                st.window.push_back(e);
            }
            advance(link, st);
            if next > upto {
                break;
            }
        }
        if !wbuf.is_empty() {
            wr.write_all(&wbuf).await?;
            wbuf.clear();
        }
        let can_read = st.window.len() < window;
        tokio::select! {
            // What came with the CONNACK is handled first, as if just read.
            r = async { if first { Ok(1) } else { rd.read_buf(&mut rbuf).await } } => {
                first = false;
                if r? == 0 {
                    return Err(LinkError::Protocol("closed by the remote".into()));
                }
                ping_out = false;
                let mut recs = Vec::new();
                while let Some(p) = decode_server(&mut rbuf, v, MAX_IN_PACKET).map_err(|e| LinkError::Protocol(e.to_string()))? {
                    match p {
                        ServerPacket::PubAck(a) => acked(link, st, a, QoS::AtLeastOnce),
                        ServerPacket::PubRec(a) if a.reason.is_error() => acked(link, st, a, QoS::ExactlyOnce),
                        ServerPacket::PubRec(a) => recs.push(a.pkid),
                        ServerPacket::PubComp(a) => acked(link, st, a, QoS::ExactlyOnce),
                        ServerPacket::Publish(p) => {
                            if let Some(a) = incoming(link, st, p, &ticket, &mut routed).await {
                                in_acks.push_back(a);
                            }
                        }
                        ServerPacket::PubRel(a) => {
                            st.in_qos2.remove(&a.pkid);
                            encode(&ClientPacket::PubComp(Ack::ok(a.pkid)), v, &mut wbuf)?;
                        }
                        ServerPacket::SubAck { codes, .. } => {
                            if codes.iter().any(|c| c.is_error()) {
                                tracing::warn!(bridge = %cfg.name, ?codes, "bridge: the remote refused subscriptions");
                            }
                        }
                        ServerPacket::Disconnect(d) => {
                            return Err(LinkError::Protocol(format!("DISCONNECT {}", d.reason)));
                        }
                        ServerPacket::PingResp | ServerPacket::ConnAck(_) | ServerPacket::Other(_) => {}
                    }
                }
                if !recs.is_empty() {
                    release(link, st, &recs).await?;
                    for id in recs {
                        encode(&ClientPacket::PubRel(Ack::ok(id)), v, &mut wbuf)?;
                    }
                }
                advance(link, st);
            }
            _ = fifo_durable.changed(), if can_read => {}
            () = ticket.notify.notified(), if !in_acks.is_empty() => {}
            _ = async { match log_durable.as_mut() { Some(d) => d.changed().await, None => std::future::pending().await } }, if !in_acks.is_empty() => {}
            _ = status.tick() => {
                let oldest = st.window.front().map(|e| crate::store::record::unix_ms(std::time::SystemTime::now()).saturating_sub(e.msg.received_ms) / 1000);
                let stats = &link.fifo.stats;
                tracing::info!(
                    bridge = %cfg.name, %addr, queued = link.fifo.depth(), queued_bytes = link.fifo.bytes(),
                    oldest_secs = ?oldest, forwarded = stats.forwarded.load(Ordering::Relaxed),
                    dropped = stats.dropped.load(Ordering::Relaxed), rejected = stats.rejected.load(Ordering::Relaxed),
                    "bridge status"
                );
            }
            _ = ping.tick() => {
                if ping_out {
                    return Err(LinkError::KeepAlive);
                }
                ping_out = true;
                encode(&ClientPacket::PingReq, v, &mut wbuf)?;
            }
            () = link.shutdown.cancelled() => {
                // A normal DISCONNECT discards the will: the state is sent.
                if remote_state {
                    encode(&state_packet(cfg, false), v, &mut wbuf)?;
                }
                encode(&ClientPacket::Disconnect(DisconnectReason::NormalDisconnection), v, &mut wbuf)?;
                let _ = wr.write_all(&wbuf).await;
                return Ok(());
            }
        }
        // Inbound acknowledgements the router and the log allow.
        let processed = ticket.processed.load(Ordering::Acquire);
        let durable = log_durable.as_ref().map_or(u64::MAX, |d| *d.borrow());
        while in_acks.front().is_some_and(|a| a.count <= processed && ticket.lsn.load(Ordering::Acquire) <= durable) {
            if let Some(a) = in_acks.pop_front() {
                encode(&a.ack, v, &mut wbuf)?;
            }
        }
    }
}

fn encoded_len(p: &Publish, v: Version) -> usize {
    let mut b = BytesMut::new();
    encode_client(&ClientPacket::Publish(p.clone()), v, &mut b).map_or(usize::MAX, |()| b.len())
}

fn publish(e: &Entry, dup: bool) -> Publish {
    let m = &e.msg;
    Publish {
        dup: dup && m.qos != QoS::AtMostOnce,
        qos: m.qos,
        retain: m.retain,
        topic: m.topic.clone(),
        pkid: e.pkid,
        payload: m.payload.clone(),
        props: m.props.clone(),
    }
}

/// PUBREC came for `ids`: their messages are recorded as released
/// (durably, if any is new) before the caller sends the PUBRELs.
async fn release(link: &Link, st: &mut State, ids: &[u16]) -> Result<(), LinkError> {
    let is_new = |e: &Entry| !e.done && !e.released && e.msg.qos == QoS::ExactlyOnce && ids.contains(&e.pkid);
    if !st.window.iter().any(is_new) {
        return Ok(());
    }
    let persisted = link.fifo.persisted();
    while st.completed.front().is_some_and(|l| *l <= persisted) {
        st.completed.pop_front();
    }
    let released = st.window.iter().filter(|e| (e.released && !e.done) || is_new(e)).map(|e| e.lsn);
    let lsns: Vec<Lsn> = st.completed.iter().copied().chain(released).collect();
    let fifo = link.fifo.clone();
    tokio::task::spawn_blocking(move || fifo.persist_released(&lsns))
        .await
        .map_err(|e| LinkError::Protocol(format!("PUBREC record: {e}")))??;
    for e in st.window.iter_mut().filter(|e| is_new(e)) {
        e.released = true;
    }
    Ok(())
}

/// The remote acknowledged (or refused) packet `a.pkid`.
///
/// A PUBACK for a QoS 2 message not yet released is taken as its
/// acknowledgement: the remote took it at QoS 1 (RabbitMQ 3.x does).
fn acked<R: Reason>(link: &Link, st: &mut State, a: Ack<R>, qos: QoS) {
    let takes =
        |e: &Entry| e.msg.qos == qos || (qos == QoS::AtLeastOnce && e.msg.qos == QoS::ExactlyOnce && !e.released);
    let Some(e) = at_pkid(&mut st.window, a.pkid).filter(|e| !e.done && takes(e)) else {
        return;
    };
    e.done = true;
    // PUBCOMP 0x92 (Packet Identifier not found) to a PUBREL sent again
    // after a restart: the remote had completed it.
    let completed =
        qos == QoS::ExactlyOnce && e.released && a.reason.code() == PubCompReason::PacketIdentifierNotFound.code();
    if e.released {
        st.completed.push_back(e.lsn);
    }
    if a.reason.is_error() && !completed {
        link.fifo.stats.rejected.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(bridge = %link.cfg.name, topic = %e.msg.topic, code = a.reason.code(), "bridge: the remote refused a message ({}); not sent again", a.reason);
    } else {
        link.fifo.stats.forwarded.fetch_add(1, Ordering::Relaxed);
    }
}

/// The window's entry with packet id `id`: its LSN follows from the
/// front's, since a window spans fewer than [`PKIDS`] LSNs (a binary
/// search, not a scan of the window per acknowledgement).
///
/// A first read after a gap in the queue's LSNs (damage reserves LSNs)
/// may span more: then the window is scanned, as before.
fn at_pkid(window: &mut VecDeque<Entry>, id: u16) -> Option<&mut Entry> {
    let front = window.front()?.lsn;
    let lsn = front + (u64::from(id) + PKIDS - u64::from(pkid(front))) % PKIDS;
    let found =
        window.binary_search_by_key(&lsn, |e| e.lsn).ok().filter(|i| window.get(*i).is_some_and(|e| e.pkid == id));
    let wide = window.back().is_some_and(|e| e.lsn - front >= PKIDS);
    match found {
        Some(i) => window.get_mut(i),
        None if wide => window.iter_mut().find(|e| e.pkid == id && !e.done),
        None => None,
    }
}

/// Moves the queue's cursor over the done front of the window.
fn advance(link: &Link, st: &mut State) {
    let (mut last, mut bytes) = (0, 0);
    while st.window.front().is_some_and(|e| e.done) {
        if let Some(e) = st.window.pop_front() {
            last = e.lsn;
            bytes += e.bytes;
        }
    }
    if last > 0 {
        link.fifo.set_acked(last, bytes);
        link.fifo.persist_in_background();
    }
    link.status.set_oldest(st.window.front().map(|e| e.msg.received_ms));
}

/// A PUBLISH from the remote: published locally under its local topic;
/// the acknowledgement to send once the router and the log have it.
async fn incoming(link: &Link, st: &mut State, p: Publish, ticket: &Arc<Ticket>, routed: &mut u64) -> Option<InAck> {
    let ack = match p.qos {
        QoS::AtMostOnce => None,
        QoS::AtLeastOnce => Some(ClientPacket::PubAck(Ack::ok(p.pkid))),
        QoS::ExactlyOnce => Some(ClientPacket::PubRec(Ack::ok(p.pkid))),
    };
    if p.qos == QoS::ExactlyOnce && !st.in_qos2.insert(p.pkid) {
        // A retransmission of one already published: acknowledge only.
        return ack.map(|ack| InAck { count: 0, ack });
    }
    let local = link.cfg.topics.iter().find_map(|r| r.to_local(&p.topic));
    let Some(topic) = local else {
        link.status.incoming(false);
        tracing::debug!(bridge = %link.cfg.name, topic = %p.topic, "bridge: no in rule for a remote message");
        return ack.map(|ack| InAck { count: 0, ack });
    };
    let mut props = p.props;
    if let Some(pp) = props.as_mut() {
        pp.topic_alias = None;
        pp.subscription_identifiers.clear();
    }
    let m = Message {
        topic,
        payload: p.payload,
        qos: p.qos,
        retain: p.retain,
        props,
        origin: link.origin,
        received: Instant::now(),
    };
    let msg = match ack {
        Some(_) => RouterMsg::Ticketed(Box::new(RouterMsg::Publish(m)), ticket.clone()),
        None => RouterMsg::Publish(m),
    };
    if link.router.send(msg).await.is_err() {
        return None;
    }
    link.status.incoming(true);
    let ack = ack?;
    *routed += 1;
    Some(InAck { count: *routed, ack })
}

#[path = "link_connect.rs"]
mod connect;
use connect::connect_one;

#[cfg(test)]
#[path = "link_tests.rs"]
mod tests;
