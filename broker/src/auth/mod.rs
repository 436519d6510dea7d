//! Enhanced authentication (MQTT 5.0 section 4.12): the seam where an
//! authentication method (SCRAM, Kerberos, a token scheme...) plugs in.
//!
//! A client names a method in CONNECT (Authentication Method, with optional
//! Authentication Data). The session machine asks the broker's
//! [`Authenticator`] for an [`AuthExchange`] of that method:
//!
//! - `None`: the method is not supported; CONNACK 0x8C Bad authentication
//!   method, then close [MQTT-4.12.0-1].
//! - an exchange: each [`AuthExchange::step`] takes the client's data and
//!   answers [`AuthStep::Success`] (CONNACK 0x00 naming the method
//!   [MQTT-4.12.0-5], with the data), [`AuthStep::Continue`] (AUTH 0x18 to
//!   the client [MQTT-4.12.0-2], whose AUTH 0x18 [MQTT-4.12.0-3] is the next
//!   step) or [`AuthStep::Fail`] (CONNACK with that code, then close
//!   [MQTT-4.12.0-4]).
//!
//! After CONNACK the client may re-authenticate with AUTH 0x19
//! [MQTT-4.12.1-1]: a new exchange of the same method runs the same way,
//! success answered with AUTH 0x00 and failure with DISCONNECT and a close
//! [MQTT-4.12.1-2]. An AUTH packet from a client that named no method is a
//! protocol error [MQTT-4.12.0-7]. A client that names a method is
//! authenticated by it alone: `allow_anonymous` does not apply to it.
//!
//! The broker's default, [`NoEnhancedAuth`], supports no method. An
//! exchange runs on its connection's task, between packets: it must not
//! block (no I/O, no waiting).

pub mod acl;
pub mod files;
pub mod passwd;
pub mod stats;

use std::fmt;

use bytes::Bytes;

/// Who is authenticating, for the authenticator's decision.
#[derive(Debug, Clone, Copy)]
pub struct AuthClient<'a> {
    pub client_id: &'a str,
    /// The User Name of CONNECT, if any.
    pub username: Option<&'a str>,
}

/// The broker's authentication methods.
pub trait Authenticator: Send + Sync + fmt::Debug {
    /// Starts an exchange of `method` for `client`, or `None` if the method
    /// is not supported.
    fn start(&self, method: &str, client: AuthClient<'_>) -> Option<Box<dyn AuthExchange>>;
}

/// One authentication exchange (of a connection, or of a re-authentication).
pub trait AuthExchange: Send {
    /// Takes the client's Authentication Data (from CONNECT or AUTH) and
    /// says what happens next.
    fn step(&mut self, data: Option<&[u8]>) -> AuthStep;
}

/// The outcome of one step of an exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthStep {
    /// Authenticated; the data (if any) goes to the client in CONNACK, or
    /// in AUTH 0x00 after a re-authentication.
    Success(Option<Bytes>),
    /// Another round: the data goes to the client in AUTH 0x18.
    Continue(Option<Bytes>),
    /// Refused with this reason code (0x80 or above, e.g. 0x86 Bad user
    /// name or password, 0x87 Not authorized; a lower one is sent as 0x87).
    Fail(crate::protocol::ConnectReason),
}

/// The default: no enhanced authentication method is supported.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoEnhancedAuth;

impl Authenticator for NoEnhancedAuth {
    fn start(&self, _method: &str, _client: AuthClient<'_>) -> Option<Box<dyn AuthExchange>> {
        None
    }
}
