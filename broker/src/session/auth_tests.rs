//! Enhanced authentication on the machine, with a test method "echo": it
//! answers a first step with the challenge "?" and accepts a second step
//! whose data is "ok" (anything else fails with 0x86).

use std::sync::Arc;

use bytes::Bytes;

use crate::auth::{AuthClient, AuthExchange, AuthStep, Authenticator, NoEnhancedAuth};
use crate::protocol::{Auth, AuthReason, Connect, ConnectReason, DisconnectReason, Packet, Version};
use crate::session::machine::{
    self,
    tests::{connack, connect_packet, Client, Harness},
};
use crate::session::{Close, MachineConfig};

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
            _ => AuthStep::Fail(ConnectReason::BadUserNameOrPassword),
        }
    }
}

fn cfg(authenticator: Arc<dyn Authenticator>) -> MachineConfig {
    MachineConfig { allow_anonymous: false, authenticator, ..machine::tests::cfg() }
}

fn connect(method: Option<&str>, data: Option<&'static [u8]>) -> Connect {
    let mut c = connect_packet(Version::V5, "a", true);
    c.authentication_method = method.map(str::to_owned);
    c.authentication_data = data.map(Bytes::from_static);
    c
}

fn auth(reason: AuthReason, method: &str, data: &'static [u8]) -> Packet {
    Packet::Auth(Auth { reason, method: Some(method.into()), data: Some(Bytes::from_static(data)) })
}

/// The harness of `machine_tests.rs` and one connection, after its CONNECT.
struct One {
    h: Harness,
    c: Client,
}

impl One {
    /// Connects with `c`; returns the packets sent and the close, if any.
    fn connect(authenticator: Arc<dyn Authenticator>, c: Connect) -> (One, Vec<Packet>, Option<Close>) {
        let mut h = Harness::new();
        let (c, sent, closed) = h.client_with(cfg(authenticator), c);
        (One { h, c }, sent, closed)
    }

    fn feed(&mut self, p: Packet) -> (Vec<Packet>, Option<Close>) {
        self.h.feed(&mut self.c, p)
    }
}

#[test]
fn default_supports_no_method() {
    let (_, sent, closed) = One::connect(Arc::new(NoEnhancedAuth), connect(Some("SCRAM-SHA-1"), Some(b"n,,n=user")));
    // [MQTT-4.12.0-1] CONNACK 0x8C, then close.
    assert_eq!((connack(&sent).code, closed), (ConnectReason::BadAuthenticationMethod, Some(Close::Refused)));
}

#[test]
fn data_without_method_is_a_protocol_error() {
    let (_, sent, closed) = One::connect(Arc::new(Echo), connect(None, Some(b"x")));
    assert_eq!((connack(&sent).code, closed), (ConnectReason::ProtocolError, Some(Close::Refused)));
}

#[test]
fn exchange_before_connack_then_reauthentication() {
    let (mut one, sent, closed) = One::connect(Arc::new(Echo), connect(Some("echo"), None));
    // [MQTT-4.12.0-2] AUTH 0x18 with the method [MQTT-4.12.0-5]; no CONNACK yet.
    assert_eq!(sent, vec![auth(AuthReason::ContinueAuthentication, "echo", b"?")]);
    assert_eq!(closed, None);
    assert!(one.c.m.deadline().is_some(), "the connect timeout still runs");
    let (sent, closed) = one.feed(auth(AuthReason::ContinueAuthentication, "echo", b"ok"));
    let ack = connack(&sent);
    assert_eq!((ack.code, closed), (ConnectReason::Success, None));
    // [MQTT-4.12.0-5] a successful CONNACK names the method; it carries the data.
    assert_eq!(ack.props.authentication_method.as_deref(), Some("echo"));
    assert_eq!(ack.props.authentication_data.as_deref(), Some(&b"welcome"[..]));
    // [MQTT-4.12.1-1] re-authentication: AUTH 0x19, then the same exchange.
    let (sent, _) = one.feed(auth(AuthReason::ReAuthenticate, "echo", b""));
    assert_eq!(sent, vec![auth(AuthReason::ContinueAuthentication, "echo", b"?")]);
    let (sent, closed) = one.feed(auth(AuthReason::ContinueAuthentication, "echo", b"ok"));
    assert_eq!((sent, closed), (vec![auth(AuthReason::Success, "echo", b"welcome")], None));
    // [MQTT-4.12.1-2] a failed re-authentication: DISCONNECT with the code;
    // 0x86 Bad user name or password is not a DISCONNECT code
    // [MQTT-3.14.2-1], so it is sent as 0x87 Not authorized.
    one.feed(auth(AuthReason::ReAuthenticate, "echo", b""));
    let (sent, closed) = one.feed(auth(AuthReason::ContinueAuthentication, "echo", b"wrong"));
    assert!(matches!(sent.as_slice(), [Packet::Disconnect(d)] if d.reason == DisconnectReason::NotAuthorized));
    assert_eq!(closed, Some(Close::Error(DisconnectReason::NotAuthorized)));
}

#[test]
fn failed_exchange_is_refused_with_its_code() {
    let (mut one, _, _) = One::connect(Arc::new(Echo), connect(Some("echo"), None));
    let (sent, closed) = one.feed(auth(AuthReason::ContinueAuthentication, "echo", b"wrong"));
    // [MQTT-4.12.0-4] CONNACK >= 0x80, then close.
    assert_eq!((connack(&sent).code, closed), (ConnectReason::BadUserNameOrPassword, Some(Close::Refused)));
}

#[test]
fn wrong_auth_packets_are_protocol_errors() {
    // During the exchange: another method [MQTT-4.12.0-5], or a reason other than 0x18 [MQTT-4.12.0-3].
    for bad in
        [auth(AuthReason::ContinueAuthentication, "other", b"ok"), auth(AuthReason::ReAuthenticate, "echo", b"ok")]
    {
        let (mut one, _, _) = One::connect(Arc::new(Echo), connect(Some("echo"), None));
        let (sent, closed) = one.feed(bad);
        assert_eq!((connack(&sent).code, closed), (ConnectReason::ProtocolError, Some(Close::Refused)));
    }
    // After CONNACK: 0x18 outside an exchange, another method [MQTT-4.12.1-1].
    for bad in [auth(AuthReason::ContinueAuthentication, "echo", b"ok"), auth(AuthReason::ReAuthenticate, "other", b"")]
    {
        let (mut one, _, _) = One::connect(Arc::new(Echo), connect(Some("echo"), None));
        one.feed(auth(AuthReason::ContinueAuthentication, "echo", b"ok"));
        let (_, closed) = one.feed(bad);
        assert_eq!(closed, Some(Close::Error(DisconnectReason::ProtocolError)));
    }
}

#[test]
fn auth_without_a_method_in_connect_is_a_protocol_error() {
    // A client admitted without a method (the listener allows anonymous clients).
    let mut h = Harness::new();
    let cfg = MachineConfig { allow_anonymous: true, ..cfg(Arc::new(Echo)) };
    let (c, sent, _) = h.client_with(cfg, connect(None, None));
    let mut one = One { h, c };
    assert_eq!(connack(&sent).code, ConnectReason::Success);
    let (sent, closed) = one.feed(auth(AuthReason::ReAuthenticate, "echo", b""));
    // [MQTT-4.12.0-7]: DISCONNECT 0x82.
    assert!(matches!(sent.as_slice(), [Packet::Disconnect(d)] if d.reason == DisconnectReason::ProtocolError));
    assert_eq!(closed, Some(Close::Error(DisconnectReason::ProtocolError)));
}
