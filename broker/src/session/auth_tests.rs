//! Enhanced authentication on the machine, with a test method "echo": it
//! answers a first step with the challenge "?" and accepts a second step
//! whose data is "ok" (anything else fails with 0x86).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::auth::{AuthClient, AuthExchange, AuthStep, Authenticator, NoEnhancedAuth};
use crate::config::QueueFullPolicy;
use crate::protocol::{reason, Auth, ConnAck, Connect, Packet, Version};
use crate::router::{ConnHandle, Router};
use crate::session::state::QueueLimits;
use crate::session::{Action, Close, Machine, MachineConfig};

#[derive(Debug)]
struct Echo;

struct EchoExchange {
    round: u8,
}

impl Authenticator for Echo {
    fn start(&self, method: &str, _client: AuthClient<'_>) -> Option<Box<dyn AuthExchange>> {
        (method == "echo").then(|| Box::new(EchoExchange { round: 0 }) as Box<dyn AuthExchange>)
    }
}

impl AuthExchange for EchoExchange {
    fn step(&mut self, data: Option<&[u8]>) -> AuthStep {
        self.round += 1;
        match (self.round, data) {
            (1, _) => AuthStep::Continue(Some(Bytes::from_static(b"?"))),
            (_, Some(b"ok")) => AuthStep::Success(Some(Bytes::from_static(b"welcome"))),
            _ => AuthStep::Fail(reason::BAD_USERNAME_OR_PASSWORD),
        }
    }
}

fn cfg(authenticator: Arc<dyn Authenticator>) -> MachineConfig {
    MachineConfig {
        max_packet_size: 1 << 20,
        max_inflight: 10,
        connect_timeout: Duration::from_secs(10),
        session_expiry: None,
        allow_anonymous: false,
        receive_maximum: 10,
        max_keepalive: 100,
        topic_alias_maximum: 0,
        server_topic_aliases: false,
        response_information: None,
        authenticator,
    }
}

fn connect(method: Option<&str>, data: Option<&'static [u8]>) -> Connect {
    Connect {
        version: Version::V5,
        client_id: "a".into(),
        clean_start: true,
        keep_alive: 10,
        will: None,
        username: None,
        password: None,
        session_expiry_interval: None,
        receive_maximum: None,
        maximum_packet_size: None,
        topic_alias_maximum: None,
        request_response_information: false,
        request_problem_information: true,
        authentication_method: method.map(str::to_owned),
        authentication_data: data.map(Bytes::from_static),
        user_properties: Vec::new(),
    }
}

fn auth(reason: u8, method: &str, data: &'static [u8]) -> Packet {
    Packet::Auth(Auth { reason, method: Some(method.into()), data: Some(Bytes::from_static(data)) })
}

/// A machine and the router it connects through.
struct Harness {
    m: Machine,
    router: Router,
    now: Instant,
}

impl Harness {
    fn new(authenticator: Arc<dyn Authenticator>) -> Harness {
        let now = Instant::now();
        let limits =
            QueueLimits { max_messages: 10, max_bytes: 1 << 20, policy: QueueFullPolicy::DropNew, queue_qos0: false };
        Harness { m: Machine::new(cfg(authenticator), ConnHandle::new(1), now), router: Router::new(limits), now }
    }

    /// Feeds `p`; returns the packets sent and the close, if any.
    fn feed(&mut self, p: Packet) -> (Vec<Packet>, Option<Close>) {
        self.m.handle(p, self.now);
        let (mut sent, mut closed) = (Vec::new(), None);
        loop {
            let actions: Vec<Action> = self.m.take_actions().collect();
            if actions.is_empty() {
                return (sent, closed);
            }
            for a in actions {
                match a {
                    Action::Send(p) => sent.push(p),
                    Action::Connect(req) => {
                        let reply = self.router.connect(req, self.now);
                        self.m.connected(reply, self.now);
                    }
                    Action::Close(why) => closed = Some(why),
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
    }

    fn feed_connect(&mut self, c: Connect) -> (Vec<Packet>, Option<Close>) {
        self.feed(Packet::Connect(Box::new(c)))
    }
}

fn connack(sent: &[Packet]) -> &ConnAck {
    match sent {
        [Packet::ConnAck(c), ..] => c,
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

#[test]
fn default_supports_no_method() {
    let mut h = Harness::new(Arc::new(NoEnhancedAuth));
    let (sent, closed) = h.feed_connect(connect(Some("SCRAM-SHA-1"), Some(b"n,,n=user")));
    // [MQTT-4.12.0-1] CONNACK 0x8C, then close.
    assert_eq!((connack(&sent).code, closed), (reason::BAD_AUTHENTICATION_METHOD, Some(Close::Refused)));
}

#[test]
fn data_without_method_is_a_protocol_error() {
    let mut h = Harness::new(Arc::new(Echo));
    let (sent, closed) = h.feed_connect(connect(None, Some(b"x")));
    assert_eq!((connack(&sent).code, closed), (reason::PROTOCOL_ERROR, Some(Close::Refused)));
}

#[test]
fn exchange_before_connack_then_reauthentication() {
    let mut h = Harness::new(Arc::new(Echo));
    let (sent, closed) = h.feed_connect(connect(Some("echo"), None));
    // [MQTT-4.12.0-2] AUTH 0x18 with the method [MQTT-4.12.0-5]; no CONNACK yet.
    assert_eq!(sent, vec![auth(reason::CONTINUE_AUTHENTICATION, "echo", b"?")]);
    assert_eq!(closed, None);
    assert!(h.m.deadline().is_some(), "the connect timeout still runs");
    let (sent, closed) = h.feed(auth(reason::CONTINUE_AUTHENTICATION, "echo", b"ok"));
    let ack = connack(&sent);
    assert_eq!((ack.code, closed), (reason::SUCCESS, None));
    // [MQTT-4.12.0-5] a successful CONNACK names the method; it carries the data.
    assert_eq!(ack.props.authentication_method.as_deref(), Some("echo"));
    assert_eq!(ack.props.authentication_data.as_deref(), Some(&b"welcome"[..]));
    // [MQTT-4.12.1-1] re-authentication: AUTH 0x19, then the same exchange.
    let (sent, _) = h.feed(auth(reason::RE_AUTHENTICATE, "echo", b""));
    assert_eq!(sent, vec![auth(reason::CONTINUE_AUTHENTICATION, "echo", b"?")]);
    let (sent, closed) = h.feed(auth(reason::CONTINUE_AUTHENTICATION, "echo", b"ok"));
    assert_eq!((sent, closed), (vec![auth(reason::SUCCESS, "echo", b"welcome")], None));
    // [MQTT-4.12.1-2] a failed re-authentication: DISCONNECT with the code.
    h.feed(auth(reason::RE_AUTHENTICATE, "echo", b""));
    let (sent, closed) = h.feed(auth(reason::CONTINUE_AUTHENTICATION, "echo", b"wrong"));
    assert!(matches!(sent.as_slice(), [Packet::Disconnect(d)] if d.reason == reason::BAD_USERNAME_OR_PASSWORD));
    assert_eq!(closed, Some(Close::Error(reason::BAD_USERNAME_OR_PASSWORD)));
}

#[test]
fn failed_exchange_is_refused_with_its_code() {
    let mut h = Harness::new(Arc::new(Echo));
    h.feed_connect(connect(Some("echo"), None));
    let (sent, closed) = h.feed(auth(reason::CONTINUE_AUTHENTICATION, "echo", b"wrong"));
    // [MQTT-4.12.0-4] CONNACK >= 0x80, then close.
    assert_eq!((connack(&sent).code, closed), (reason::BAD_USERNAME_OR_PASSWORD, Some(Close::Refused)));
}

#[test]
fn wrong_auth_packets_are_protocol_errors() {
    // During the exchange: another method [MQTT-4.12.0-5], or a reason other than 0x18 [MQTT-4.12.0-3].
    for bad in [auth(reason::CONTINUE_AUTHENTICATION, "other", b"ok"), auth(reason::RE_AUTHENTICATE, "echo", b"ok")] {
        let mut h = Harness::new(Arc::new(Echo));
        h.feed_connect(connect(Some("echo"), None));
        let (sent, closed) = h.feed(bad);
        assert_eq!((connack(&sent).code, closed), (reason::PROTOCOL_ERROR, Some(Close::Refused)));
    }
    // After CONNACK: 0x18 outside an exchange, another method [MQTT-4.12.1-1].
    for bad in [auth(reason::CONTINUE_AUTHENTICATION, "echo", b"ok"), auth(reason::RE_AUTHENTICATE, "other", b"")] {
        let mut h = Harness::new(Arc::new(Echo));
        h.feed_connect(connect(Some("echo"), None));
        h.feed(auth(reason::CONTINUE_AUTHENTICATION, "echo", b"ok"));
        let (_, closed) = h.feed(bad);
        assert_eq!(closed, Some(Close::Error(reason::PROTOCOL_ERROR)));
    }
}

#[test]
fn auth_without_a_method_in_connect_is_a_protocol_error() {
    let mut h = Harness::new(Arc::new(Echo));
    let mut c = connect(None, None);
    c.username = Some("u".into());
    assert_eq!(connack(&h.feed_connect(c).0).code, reason::SUCCESS);
    let (sent, closed) = h.feed(auth(reason::RE_AUTHENTICATE, "echo", b""));
    // [MQTT-4.12.0-7]: DISCONNECT 0x82.
    assert!(matches!(sent.as_slice(), [Packet::Disconnect(d)] if d.reason == reason::PROTOCOL_ERROR));
    assert_eq!(closed, Some(Close::Error(reason::PROTOCOL_ERROR)));
}
