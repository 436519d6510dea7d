//! The per-connection protocol state machine. It does no I/O and reads no
//! clock: the driver feeds it decoded packets, router replies and the
//! current time, and carries out the [`Action`]s it emits (send a packet,
//! ask the router something, close). Handlers for each packet type are in
//! `handlers.rs`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::auth::{AuthExchange, Authenticator};
use crate::message::{Message, SessionKey};
use crate::protocol::{Connect, ConnectReason, Disconnect, DisconnectReason, Packet, Version, Will};
use crate::router::{ConnHandle, ConnectReply, ConnectRequest, RouterMsg, SessionRefused, SubscribeEntry};
use crate::session::gate::{Gate, LogPosition};
use crate::session::state::SharedSession;

/// Settings of the machine, taken from the broker configuration.
#[derive(Debug, Clone)]
pub struct MachineConfig {
    pub max_packet_size: usize,
    pub max_inflight: u16,
    pub connect_timeout: Duration,
    /// Levels a topic name or filter may have (see `Config::max_topic_levels`).
    pub max_topic_levels: u16,
    /// Subscriptions one session may hold (see `Config::max_subscriptions_per_client`).
    pub max_subscriptions: usize,
    /// Expiry of 3.1.1 persistent sessions; `None` = never.
    pub session_expiry: Option<Duration>,
    pub allow_anonymous: bool,
    /// Receive Maximum the broker allows a client (inbound QoS 2 awaiting PUBREL).
    pub receive_maximum: u16,
    /// Largest keep-alive granted to MQTT 5 clients (Server Keep Alive).
    pub max_keepalive: u16,
    /// Topic Alias Maximum the broker accepts from MQTT 5 clients.
    pub topic_alias_maximum: u16,
    /// Whether the broker assigns topic aliases to MQTT 5 clients.
    pub server_topic_aliases: bool,
    /// Response Information for clients that request it (client id appended).
    pub response_information: Option<String>,
    /// Enhanced authentication methods (MQTT 5 AUTH), see `crate::auth`.
    pub authenticator: Arc<dyn Authenticator>,
    /// The store's log, if the broker has one: acknowledgements and
    /// outgoing QoS 2 packets then pass the durability gate (`gate.rs`).
    pub log: Option<Arc<dyn LogPosition>>,
    /// The listener's password and ACL files, if it has any.
    pub files: Option<Arc<crate::auth::files::FileAuth>>,
    /// Whether the client certificate's name is the user name (TLS
    /// listeners): CONNECT's user name and password are then ignored, and a
    /// client without such a certificate is refused (as Mosquitto).
    pub cert_username: crate::config::CertUsername,
    /// The authenticated user name replaces the client identifier
    /// (Mosquitto's `use_username_as_clientid`; a client without one is
    /// refused, 0x87 / 0x05).
    pub use_username_as_clientid: bool,
    /// A CONNECT may not resume, take over or clean a session created
    /// by another user (`Config::check_session_owner`), where users
    /// authenticate: a password file (as loaded now), certificate names.
    pub check_session_owner: bool,
    /// The broker's counters of refusals (`crate::auth::stats`).
    pub auth_stats: Arc<crate::auth::stats::AuthStats>,
    /// The broker's registry (drops counted here: too large, ACL).
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// Whether `p` fits the client's Maximum Packet Size [MQTT-3.1.2-24].
fn fits_client(c: &Connected, p: &Packet) -> bool {
    let Some(max) = c.out.max_packet_size else { return true };
    let mut scratch = bytes::BytesMut::new();
    crate::protocol::encode(p, c.version, &mut scratch).is_ok() && scratch.len() <= max as usize
}

/// Why a connection is closing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// The client sent DISCONNECT.
    Normal,
    /// A protocol violation or a keep-alive timeout, with its MQTT 5 reason.
    Error(DisconnectReason),
    /// Another connection took the session over.
    TakenOver,
    /// The broker is shutting down.
    Shutdown,
    /// The network connection failed or the peer closed it.
    Io,
    /// CONNECT was refused (CONNACK with an error code was sent).
    Refused,
}

/// For log lines: an error close names its reason and code.
impl std::fmt::Display for Close {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Close::Normal => f.write_str("DISCONNECT from the client"),
            Close::Error(r) => write!(f, "{r}"),
            Close::TakenOver => f.write_str("session taken over"),
            Close::Shutdown => f.write_str("server shutting down"),
            Close::Io => f.write_str("network connection closed"),
            Close::Refused => f.write_str("CONNECT refused"),
        }
    }
}

/// What the driver must do.
#[derive(Debug)]
pub enum Action {
    Send(Packet),
    /// Ask the router to open the session; feed the reply to [`Machine::connected`].
    Connect(ConnectRequest),
    /// Verify `username`'s password against the listener's password file,
    /// off the async workers; feed the answer to [`Machine::password_checked`].
    CheckPassword {
        username: String,
        password: bytes::Bytes,
    },
    /// Hand a message to the router.
    Route(Message),
    Subscribe(Vec<SubscribeEntry>),
    Unsubscribe(Vec<String>),
    /// Flush what was sent, then close the network connection.
    Close(Close),
}

pub(super) struct Connected {
    pub version: Version,
    /// Shared with the router's copy.
    pub client_id: Arc<str>,
    pub key: SessionKey,
    pub session: Arc<SharedSession>,
    /// Keep-alive in seconds (0: none). Small fields keep this box, which
    /// lives as long as the connection, in a smaller allocation.
    pub keep_alive: u16,
    /// Boxed: most clients have none, and this struct lives as long as
    /// the connection.
    pub will: Option<Box<Will>>,
    /// Outgoing QoS 1/2 window: ours, lowered by the client's Receive Maximum.
    pub window: u16,
    /// An MQTT 5 client connected with Session Expiry Interval 0, which
    /// DISCONNECT may not raise [MQTT-3.14.2-2]. (A flag rather than the
    /// interval: this box, with the MQTT 5 AUTH state, stays in a
    /// 128-byte allocation.)
    pub zero_expiry: bool,
    /// The client wants Reason Strings on acknowledgements (MQTT 5
    /// Request Problem Information, default on).
    pub problem_info: bool,
    pub expiry_update: Option<Option<Duration>>,
    /// What this connection sends: aliases, size limit (outbound.rs).
    pub out: super::outbound::Outbound,
    /// Topic aliases the client set (MQTT 5): alias -> topic; made on first use.
    // Boxed on purpose: 8 bytes instead of an empty map's 48 for the
    // connections that never use it.
    #[allow(clippy::box_collection)]
    pub aliases_in: Option<Box<HashMap<u16, String>>>,
    /// Who the client is, where something needs it later: the enhanced
    /// authentication method it connected with, the user name the ACL
    /// checks. Boxed, and `None` for most clients (neither is in use).
    pub auth: Option<Box<Identity>>,
}

/// The identity of a connected client: for re-authentication (MQTT 5
/// AUTH) and for ACL checks after CONNECT.
pub(super) struct Identity {
    /// The enhanced authentication method of CONNECT, if any.
    pub method: Option<String>,
    pub username: Option<String>,
    /// A re-authentication in progress.
    pub exchange: Option<Box<dyn AuthExchange>>,
}

/// A CONNECT the machine accepted, until its CONNACK.
pub(super) struct Accepted {
    pub connect: Connect,
    /// Whether the broker assigned the client identifier.
    pub assigned: bool,
    /// Authentication Data for the CONNACK of a successful enhanced
    /// authentication.
    pub auth_data: Option<Bytes>,
}

/// Enhanced authentication before CONNACK (MQTT 5).
pub(super) struct Authenticating {
    pub accepted: Accepted,
    pub exchange: Box<dyn AuthExchange>,
    /// The connect timeout still runs.
    pub deadline: Instant,
}

pub(super) enum State {
    AwaitConnect {
        deadline: Instant,
        /// The user name the client's TLS certificate gives, when the
        /// listener takes it as such (boxed: a thin pointer, 8 bytes in
        /// the state of every connection rather than 16 or 24).
        #[allow(clippy::box_collection)]
        cert_username: Option<Box<String>>,
    },
    /// Enhanced authentication in progress (MQTT 5): waiting for AUTH.
    /// The states other than the first are boxed: the state of every
    /// connection is as large as the largest.
    Authenticating(Box<Authenticating>),
    /// CONNECT accepted by the machine, waiting for the router.
    Connecting(Box<Accepted>),
    /// The user name and password are being verified (off the async
    /// workers: a hash costs milliseconds), see [`Action::CheckPassword`].
    Verifying(Box<Accepted>),
    Connected(Box<Connected>),
    Closed,
}

/// The protocol state of one network connection.
pub struct Machine {
    pub(super) state: State,
    pub(super) cfg: Arc<MachineConfig>,
    pub(super) conn: ConnHandle,
    pub(super) version: Option<Version>,
    pub(super) last_seen: Instant,
    pub(super) out: Vec<Action>,
    /// The code CONNECT is refused with whatever it holds (listener full).
    pub(super) refusal: Option<ConnectReason>,
    /// The MQTT 5 client's Maximum Packet Size, once CONNECT is read: a
    /// refusing CONNACK must fit it too [MQTT-3.2.2-19].
    pub(super) client_max: Option<u32>,
    /// The client connected as a bridge (protocol level | 0x80).
    pub(super) bridge: bool,
    pub(super) closing: Option<Close>,
    /// What waits for the router or the disk (`gate.rs`); made on first
    /// use when the broker has a store.
    pub(super) gate: Option<Box<Gate>>,
}

impl Machine {
    /// A machine for a new connection; `cfg` is shared by all of them.
    pub fn new(cfg: impl Into<Arc<MachineConfig>>, conn: ConnHandle, now: Instant) -> Machine {
        let cfg = cfg.into();
        // The configuration bounds the timeout; a library caller's huge one
        // must not overflow the clock.
        let deadline = now.checked_add(cfg.connect_timeout).unwrap_or(now + Duration::from_secs(3600));
        Machine {
            state: State::AwaitConnect { deadline, cert_username: None },
            cfg,
            conn,
            version: None,
            last_seen: now,
            out: Vec::new(),
            refusal: None,
            client_max: None,
            bridge: false,
            closing: None,
            gate: None,
        }
    }

    /// How the router closes this connection (and shutdown, as its
    /// cancellation token's parent).
    pub fn conn(&self) -> &ConnHandle {
        &self.conn
    }

    /// Refuses the coming CONNECT with `code`, e.g. 0x97 Quota exceeded
    /// when the listener is at its `max_connections`. 0x97 rather than 0x89
    /// Server busy: the limit is an administrative one ("an implementation
    /// or administrative imposed limit has been exceeded", 5.0 3.2.2.2),
    /// not a passing overload that invites an immediate retry. MQTT 3.1 and
    /// 3.1.1 clients get 0x03 Server unavailable (the encoder maps it).
    pub fn refuse_connect(&mut self, code: ConnectReason) {
        self.refusal = Some(code);
    }

    /// The user name the client's TLS certificate gives (see
    /// `MachineConfig::cert_username`), before CONNECT; `None`: no
    /// certificate, or none that names the client.
    pub fn set_cert_username(&mut self, name: Option<String>) {
        if let State::AwaitConnect { cert_username, .. } = &mut self.state {
            *cert_username = name.map(Box::new);
        }
    }

    /// The settings this machine was made with.
    pub fn config(&self) -> &MachineConfig {
        &self.cfg
    }

    /// The protocol level, once CONNECT has been read.
    pub fn version(&self) -> Option<Version> {
        self.version
    }

    /// The client identifier, once connected.
    pub fn client_id(&self) -> Option<&str> {
        match &self.state {
            State::Connected(c) => Some(&c.client_id),
            _ => None,
        }
    }

    /// Once connected: the protocol, the keep-alive granted (seconds) and
    /// the user name (for the admin API).
    pub fn client_info(&self) -> Option<(Version, u16, Option<&str>)> {
        match &self.state {
            State::Connected(c) => Some((c.version, c.keep_alive, c.auth.as_ref().and_then(|a| a.username.as_deref()))),
            _ => None,
        }
    }

    /// The router's key of the session, once connected.
    pub fn session_key(&self) -> Option<SessionKey> {
        match &self.state {
            State::Connected(c) => Some(c.key),
            _ => None,
        }
    }

    pub fn is_closed(&self) -> bool {
        self.closing.is_some() || matches!(self.state, State::Closed)
    }

    /// The actions emitted since the last call.
    pub fn take_actions(&mut self) -> std::vec::Drain<'_, Action> {
        self.out.drain(..)
    }

    /// Whether actions are waiting for [`Machine::actions`].
    pub fn has_actions(&self) -> bool {
        !self.out.is_empty()
    }

    /// The actions emitted since the last call, with their storage: a
    /// machine between turns holds none (an `Action` is 96 bytes).
    pub fn actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.out)
    }

    pub(super) fn send(&mut self, mut p: Packet) {
        if let State::Connected(c) = &self.state {
            if c.problem_info && c.version.is_v5() && p.explain() && !fits_client(c, &p) {
                // Not at the price of exceeding the client's Maximum Packet
                // Size ([MQTT-3.4.2-2] and the like for the other acks).
                p.unexplain();
            }
        }
        self.gated_send(p);
    }

    /// Emits a message for the router (the gate counts them).
    pub(super) fn emit_routed(&mut self, a: Action) {
        self.note_routed();
        self.out.push(a);
    }

    /// Closes with `why`; for MQTT 5 clients a DISCONNECT with the reason
    /// goes first when the server initiates it ([MQTT-4.13.1-1] for errors).
    /// The state is kept until [`Machine::finish`] so the will can be taken.
    pub(super) fn close(&mut self, why: Close) {
        // Only a close already under way stops this one: a machine between
        // states (`State::Closed` while a CONNECT is checked) must still
        // tell the driver to close.
        if self.closing.is_some() {
            return;
        }
        let code = match why {
            Close::Error(c) => Some(c),
            Close::TakenOver => Some(DisconnectReason::SessionTakenOver),
            Close::Shutdown => Some(DisconnectReason::ServerShuttingDown),
            Close::Normal | Close::Io | Close::Refused => None,
        };
        if code.is_some() {
            // [MQTT-3.2.0-1] nothing before the CONNACK: one still held for
            // the disk goes before the DISCONNECT (gate rule 4).
            self.release_connack();
        }
        if let (Some(code), State::Connected(c)) = (code, &self.state) {
            if c.version.is_v5() {
                let reason_string = Some(code.text().to_owned());
                let mut p = Packet::Disconnect(Disconnect { reason: code, reason_string, ..Disconnect::default() });
                if !fits_client(c, &p) {
                    // [MQTT-3.14.2-3] no Reason String beyond the client's
                    // Maximum Packet Size; without it DISCONNECT is 3 bytes,
                    // and a client allowing less gets only the close.
                    p = Packet::Disconnect(Disconnect { reason: code, ..Disconnect::default() });
                }
                if fits_client(c, &p) {
                    self.send(p);
                }
            }
        }
        self.out.push(Action::Close(why));
        self.closing = Some(why);
    }

    /// Feeds one decoded packet.
    pub fn handle(&mut self, packet: Packet, now: Instant) {
        self.last_seen = now;
        if self.is_closed() {
            return;
        }
        match (&self.state, packet) {
            (State::AwaitConnect { deadline, .. }, Packet::Connect(c)) => {
                let deadline = *deadline;
                self.on_connect(*c, deadline)
            }
            (State::Authenticating(_), Packet::Auth(a)) => self.on_auth(a),
            (State::Connected(_), p) => self.on_packet(p, now),
            // The decoder lets only CONNECT through first, and the driver
            // waits for the router before reading on; anything else is a bug
            // in the peer's ordering.
            _ => self.close(Close::Error(DisconnectReason::ProtocolError)),
        }
    }

    fn on_packet(&mut self, packet: Packet, now: Instant) {
        match packet {
            Packet::Publish(p) => self.on_publish(p, now),
            Packet::PubAck(a) => self.on_puback(a),
            Packet::PubRec(a) => self.on_pubrec(a),
            Packet::PubRel(a) => self.on_pubrel(a),
            Packet::PubComp(a) => self.on_pubcomp(a),
            Packet::Subscribe(s) => self.on_subscribe(s),
            Packet::Unsubscribe(u) => self.on_unsubscribe(u),
            Packet::PingReq => self.send(Packet::PingResp),
            Packet::Disconnect(d) => self.on_disconnect(d),
            Packet::Auth(a) => self.on_auth(a),
            // The decoder rejects every other type from a client.
            _ => self.close(Close::Error(DisconnectReason::ProtocolError)),
        }
    }

    /// A packet could not be decoded.
    pub fn decode_error(&mut self, e: crate::protocol::DecodeError) {
        use crate::protocol::{ConnAck, DecodeError};
        if let (DecodeError::UnsupportedVersion(level), State::AwaitConnect { .. }) = (e, &self.state) {
            // [MQTT-3.1.2-2] CONNACK 0x01 (0x84 in 5.0), then close.
            let v = if level == 5 { Version::V5 } else { Version::V311 };
            self.version = Some(v);
            self.send(Packet::ConnAck(Box::new(ConnAck {
                code: ConnectReason::UnsupportedProtocolVersion,
                ..ConnAck::default()
            })));
            self.close(Close::Refused);
            return;
        }
        self.close(Close::Error(e.disconnect_reason()));
    }

    /// The router opened the session, or refused to open one
    /// (`max_sessions`: CONNACK 0x97 Quota exceeded; 3.1/3.1.1: 0x03).
    pub fn connected(&mut self, reply: Result<ConnectReply, SessionRefused>, now: Instant) {
        let State::Connecting(a) = std::mem::replace(&mut self.state, State::Closed) else {
            return;
        };
        match reply {
            Ok(reply) => self.on_session(*a, reply, now),
            Err(SessionRefused::Quota) => self.refuse(ConnectReason::QuotaExceeded),
            Err(SessionRefused::NotOwner) => self.refuse_auth(ConnectReason::NotAuthorized),
        }
    }

    /// Takes what the router must hear when the connection is gone: the
    /// will (published unless the client disconnected normally, or the
    /// broker shut down), and the session's new expiry.
    pub fn finish(&mut self, why: Close, now: Instant) -> Option<RouterMsg> {
        let state = std::mem::replace(&mut self.state, State::Closed);
        let State::Connected(c) = state else {
            return None;
        };
        let why = self.closing.unwrap_or(why);
        // On DISCONNECT the handler already discarded the will unless the
        // MQTT 5 reason 0x04 asked for it ([MQTT-3.1.2-10]).
        let will = match why {
            Close::Shutdown | Close::Refused => None,
            Close::Normal | Close::Error(_) | Close::TakenOver | Close::Io => c.will,
        };
        // Checked again when published: the permission may have gone since CONNECT.
        let user = c.auth.as_ref().and_then(|a| a.username.as_deref());
        let will = will.filter(|w| {
            let ok = self
                .cfg
                .files
                .as_ref()
                .is_none_or(|f| f.allows(user, &c.client_id, &w.topic, crate::auth::acl::Access::Write));
            if !ok {
                self.cfg.auth_stats.count(crate::auth::stats::Denial::Will);
            }
            ok
        });
        let will_delay = will.as_ref().map_or(0, |w| w.delay_interval);
        let will = will.map(|w| will_message(*w, c.key, now));
        Some(RouterMsg::Disconnected {
            key: c.key,
            conn_id: self.conn.id,
            will,
            will_delay: Duration::from_secs(u64::from(will_delay)),
            expiry: c.expiry_update,
        })
    }

    /// When [`Machine::on_timer`] must next be called.
    pub fn deadline(&self) -> Option<Instant> {
        if self.closing.is_some() {
            return None;
        }
        match &self.state {
            State::AwaitConnect { deadline, .. } => Some(*deadline),
            State::Authenticating(a) => Some(a.deadline),
            // [MQTT-3.1.2-24] one and a half times the keep-alive.
            State::Connected(c) => {
                (c.keep_alive > 0).then(|| self.last_seen + Duration::from_millis(u64::from(c.keep_alive) * 1500))
            }
            _ => None,
        }
    }

    pub fn on_timer(&mut self, now: Instant) {
        if self.deadline().is_some_and(|d| now >= d) {
            let timed_out_connected = matches!(self.state, State::Connected(_));
            if timed_out_connected {
                self.close(Close::Error(DisconnectReason::KeepAliveTimeout));
            } else {
                self.close(Close::Refused);
            }
        }
    }

    /// The router closed this connection (see `ConnHandle::close`): another
    /// connection took the session over (0x8E), or the session's queue
    /// overflowed (0x97). MQTT 5 clients get DISCONNECT with the reason.
    pub fn closed_by_router(&mut self, code: DisconnectReason) {
        self.close(if code == DisconnectReason::SessionTakenOver { Close::TakenOver } else { Close::Error(code) });
    }

    pub fn shutdown(&mut self) {
        self.close(Close::Shutdown);
    }
}

fn will_message(w: Will, origin: SessionKey, now: Instant) -> Message {
    Message { topic: w.topic, payload: w.payload, qos: w.qos, retain: w.retain, props: w.props, origin, received: now }
}

#[cfg(test)]
#[path = "machine_tests.rs"]
pub(super) mod tests;
