//! MQTT 5 enhanced authentication (section 4.12) end to end: the default
//! broker supports no method, AUTH is refused where no exchange was asked
//! for, and a test method plugged in through `Broker::start_with_authenticator`
//! runs the whole exchange (before CONNACK and re-authentication) over raw
//! packets.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::*;
use edgemq::auth::{AuthClient, AuthExchange, AuthStep, Authenticator};

/// Method "challenge": asks for the client id reversed, then accepts it.
#[derive(Debug)]
struct Challenge;

struct ChallengeExchange {
    expect: Vec<u8>,
    asked: bool,
}

impl Authenticator for Challenge {
    fn start(&self, method: &str, client: AuthClient<'_>) -> Option<Box<dyn AuthExchange>> {
        let expect = client.client_id.bytes().rev().collect();
        (method == "challenge").then(|| Box::new(ChallengeExchange { expect, asked: false }) as Box<dyn AuthExchange>)
    }
}

impl AuthExchange for ChallengeExchange {
    fn step(&mut self, data: Option<&[u8]>) -> AuthStep {
        if !std::mem::replace(&mut self.asked, true) {
            return AuthStep::Continue(Some(Bytes::from_static(b"reverse your id")));
        }
        if data == Some(&self.expect[..]) {
            AuthStep::Success(Some(Bytes::from_static(b"welcome")))
        } else {
            AuthStep::Fail(edgemq::protocol::ConnectReason::BadUserNameOrPassword)
        }
    }
}

fn v5_connect_with(id: &str, props: Vec<u8>) -> Vec<u8> {
    connect_packet(&ConnectOpts::new(Proto::V5, id).props(props))
}

/// The Authentication Method (0x15) and Data (0x16) of a property list.
fn auth_of(props: &[u8]) -> (Option<String>, Option<Vec<u8>>) {
    let list = props_list(props);
    let method = list.iter().find_map(|(id, v)| match v {
        Prop::Str(s) if *id == 0x15 => Some(s.clone()),
        _ => None,
    });
    let data = list.iter().find_map(|(id, v)| match v {
        Prop::Bin(b) if *id == 0x16 => Some(b.clone()),
        _ => None,
    });
    (method, data)
}

/// [MQTT-4.12.0-1]: an Authentication Method the server does not support
/// gets CONNACK 0x8C Bad authentication method, and the connection closes.
#[tokio::test]
async fn unsupported_method_gets_0x8c_and_close() {
    let b = TestBroker::start().await;
    let mut c = Raw::open(b.addr).await;
    c.send(&v5_connect_with("scram", auth_props("SCRAM-SHA-1", Some(b"n,,n=user,r=abc")))).await;
    assert_refused(&c.expect_closed("unsupported method").await, 0x8C, "[MQTT-4.12.0-1]");
    b.shutdown().await;
}

/// [MQTT-4.12.0-6]: without an Authentication Method in CONNECT the
/// CONNACK names none; [MQTT-4.12.0-7]: such a client must not send AUTH,
/// so AUTH is a Protocol Error: DISCONNECT 0x82 and close.
#[tokio::test]
async fn auth_without_a_method_is_a_protocol_error() {
    let b = TestBroker::start_with_authenticator(Arc::new(Challenge), |_| {}).await;
    let mut c = Raw::open(b.addr).await;
    c.send(&v5_connect_with("plain", Vec::new())).await;
    let ack = c.expect("CONNACK").await;
    assert_eq!(ack.connack().1, 0);
    assert_eq!(auth_of(&ack.connack_props()).0, None, "[MQTT-4.12.0-6] no Authentication Method in CONNACK");
    c.send(&auth_packet(0x19, "challenge", b"")).await;
    assert_v5_disconnect(&c.expect_closed("AUTH without a method").await, 0x82, "[MQTT-4.12.0-7]");
    b.shutdown().await;
}

/// A plugged-in method: AUTH 0x18 with the method [MQTT-4.12.0-2], the
/// client's AUTH 0x18 [MQTT-4.12.0-3], CONNACK 0x00 naming the method
/// [MQTT-4.12.0-5]; the client then works, and re-authenticates with AUTH
/// 0x19 [MQTT-4.12.1-1], answered with AUTH 0x00.
#[tokio::test]
async fn plugged_in_method_runs_the_exchange() {
    let b = TestBroker::start_with_authenticator(Arc::new(Challenge), |c| c.allow_anonymous = false).await;
    let mut c = Raw::open(b.addr).await;
    c.v5 = true;
    c.send(&v5_connect_with("abc", auth_props("challenge", None))).await;
    let challenge = c.expect_kind(AUTH, "AUTH 0x18").await;
    assert_eq!(challenge.reason(), 0x18, "[MQTT-4.12.0-2]");
    let (method, data) = auth_of(&challenge.reason_props());
    assert_eq!((method.as_deref(), data.as_deref()), (Some("challenge"), Some(&b"reverse your id"[..])));
    c.send(&auth_packet(0x18, "challenge", b"cba")).await;
    let ack = c.expect_kind(CONNACK, "CONNACK").await;
    assert_eq!(ack.connack().1, 0, "authenticated");
    let (method, data) = auth_of(&ack.connack_props());
    assert_eq!((method.as_deref(), data.as_deref()), (Some("challenge"), Some(&b"welcome"[..])), "[MQTT-4.12.0-5]");
    assert_eq!(c.subscribe(1, &[("auth/t", 1)]).await, vec![1]);
    c.publish("auth/t", 1, false, 2, b"hello").await;
    assert_eq!(c.receive_acked().await.payload, b"hello");
    c.send(&auth_packet(0x19, "challenge", b"")).await;
    assert_eq!(c.expect_kind(AUTH, "AUTH 0x18").await.reason(), 0x18);
    c.send(&auth_packet(0x18, "challenge", b"cba")).await;
    let done = c.expect_kind(AUTH, "AUTH 0x00").await;
    assert_eq!((done.reason(), auth_of(&done.reason_props()).0.as_deref()), (0x00, Some("challenge")));
    c.disconnect().await;
    b.shutdown().await;
}

/// [MQTT-4.12.0-4]: the server rejects the authentication with a CONNACK
/// of 0x80 or above and closes the connection.
#[tokio::test]
async fn failed_exchange_is_refused_and_closed() {
    let b = TestBroker::start_with_authenticator(Arc::new(Challenge), |_| {}).await;
    let mut c = Raw::open(b.addr).await;
    c.send(&v5_connect_with("abc", auth_props("challenge", None))).await;
    assert_eq!(c.expect("AUTH 0x18").await.kind, AUTH);
    c.send(&auth_packet(0x18, "challenge", b"abc")).await;
    assert_refused(&c.expect_closed("wrong answer").await, 0x86, "[MQTT-4.12.0-4]");
    b.shutdown().await;
}

/// [MQTT-4.12.1-2]: a failed re-authentication gets DISCONNECT and the
/// close. The method refuses with 0x86 (Bad user name or password), a
/// CONNACK code only: a DISCONNECT must carry one of its own codes
/// [MQTT-3.14.2-1], so it is 0x87 Not authorized.
#[tokio::test]
async fn failed_reauthentication_gets_disconnect_0x87() {
    let b = TestBroker::start_with_authenticator(Arc::new(Challenge), |_| {}).await;
    let mut c = Raw::open(b.addr).await;
    c.v5 = true;
    c.send(&v5_connect_with("abc", auth_props("challenge", None))).await;
    assert_eq!(c.expect_kind(AUTH, "AUTH 0x18").await.reason(), 0x18);
    c.send(&auth_packet(0x18, "challenge", b"cba")).await;
    assert_eq!(c.expect_kind(CONNACK, "CONNACK").await.connack().1, 0);
    c.send(&auth_packet(0x19, "challenge", b"")).await;
    assert_eq!(c.expect_kind(AUTH, "AUTH 0x18").await.reason(), 0x18);
    c.send(&auth_packet(0x18, "challenge", b"wrong")).await;
    assert_v5_disconnect(&c.expect_closed("wrong answer").await, 0x87, "[MQTT-4.12.1-2]");
    b.shutdown().await;
}
