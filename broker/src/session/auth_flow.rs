//! Enhanced authentication on [`Machine`] (MQTT 5.0 section 4.12): the
//! exchange of AUTH packets before CONNACK and for re-authentication,
//! driven by the broker's [`crate::auth::Authenticator`].

use std::time::Instant;

use super::machine::{Accepted, Authenticating, Close, Machine, State};
use crate::auth::{AuthClient, AuthStep};
use crate::protocol::{Auth, AuthReason, ConnectReason, DisconnectReason, Packet};

/// A refusal code an authenticator gave, made a valid error code.
fn fail_code(code: ConnectReason) -> ConnectReason {
    if code.is_error() {
        code
    } else {
        ConnectReason::NotAuthorized
    }
}

/// The DISCONNECT reason of a failed re-authentication [MQTT-4.12.1-2]:
/// the refusal's code where the DISCONNECT table has it, else 0x87 Not
/// authorized (0x86 Bad user name or password and 0x8C Bad authentication
/// method are CONNACK codes only [MQTT-3.14.2-1]).
fn reauth_fail_code(code: ConnectReason) -> DisconnectReason {
    DisconnectReason::try_from(fail_code(code).code()).unwrap_or(DisconnectReason::NotAuthorized)
}

impl Machine {
    /// CONNECT named an Authentication Method: starts its exchange.
    pub(super) fn start_auth(&mut self, accepted: Accepted, deadline: Instant) {
        let c = &accepted.connect;
        let Some(method) = c.authentication_method.as_deref() else {
            // 3.1.2.11.10: Authentication Data without a method is a Protocol Error.
            return self.refuse(ConnectReason::ProtocolError);
        };
        let client = AuthClient { client_id: &c.client_id, username: c.username.as_deref() };
        let Some(mut exchange) = self.cfg.authenticator.start(method, client) else {
            // [MQTT-4.12.0-1] an unsupported method: CONNACK 0x8C, then close.
            return self.refuse_auth(ConnectReason::BadAuthenticationMethod);
        };
        let step = exchange.step(c.authentication_data.as_deref());
        self.state = State::Authenticating(Box::new(Authenticating { accepted, exchange, deadline }));
        self.connect_auth_step(step);
    }

    /// AUTH from the client: the next step of the exchange before CONNACK,
    /// or a re-authentication after it.
    pub(super) fn on_auth(&mut self, a: Auth) {
        match &mut self.state {
            State::Authenticating(auth) => {
                // [MQTT-4.12.0-3] the client answers with 0x18, and
                // [MQTT-4.12.0-5] names the method of CONNECT.
                if a.reason != AuthReason::ContinueAuthentication
                    || a.method != auth.accepted.connect.authentication_method
                {
                    return self.refuse(ConnectReason::ProtocolError);
                }
                let step = auth.exchange.step(a.data.as_deref());
                self.connect_auth_step(step);
            }
            State::Connected(_) => self.reauth(a),
            _ => self.close(Close::Error(DisconnectReason::ProtocolError)),
        }
    }

    /// Carries out a step of the exchange before CONNACK.
    fn connect_auth_step(&mut self, step: AuthStep) {
        match step {
            AuthStep::Success(data) => {
                let State::Authenticating(auth) = std::mem::replace(&mut self.state, State::Closed) else {
                    return;
                };
                let accepted = Accepted { auth_data: data, ..auth.accepted };
                self.request_session(accepted);
            }
            AuthStep::Continue(data) => {
                let State::Authenticating(auth) = &self.state else { return };
                let method = auth.accepted.connect.authentication_method.clone();
                // [MQTT-4.12.0-2] AUTH 0x18, with the method [MQTT-4.12.0-5].
                self.send(Packet::Auth(Auth { reason: AuthReason::ContinueAuthentication, method, data }));
            }
            // [MQTT-4.12.0-4] CONNACK with the code, then close.
            AuthStep::Fail(code) => self.refuse_auth(fail_code(code)),
        }
    }

    /// AUTH after CONNACK: starts or continues a re-authentication.
    fn reauth(&mut self, a: Auth) {
        let authenticator = self.cfg.authenticator.clone();
        let Some(c) = self.connected_mut() else { return };
        let client_id = &c.client_id;
        let Some((auth, connect_method)) = c.auth.as_mut().and_then(|a| a.method.clone().map(|m| (a, m))) else {
            // [MQTT-4.12.0-7] a client that named no method must not send AUTH.
            return self.close(Close::Error(DisconnectReason::ProtocolError));
        };
        if a.method.as_deref() != Some(connect_method.as_str()) {
            // [MQTT-4.12.1-1] re-authentication uses the method of CONNECT.
            return self.close(Close::Error(DisconnectReason::ProtocolError));
        }
        let step = match (a.reason, &mut auth.exchange) {
            (AuthReason::ReAuthenticate, None) => {
                let client = AuthClient { client_id, username: auth.username.as_deref() };
                auth.exchange = authenticator.start(&connect_method, client);
                match &mut auth.exchange {
                    Some(exchange) => exchange.step(a.data.as_deref()),
                    None => AuthStep::Fail(ConnectReason::BadAuthenticationMethod),
                }
            }
            (AuthReason::ContinueAuthentication, Some(exchange)) => exchange.step(a.data.as_deref()),
            // 0x00 from a client, 0x18 out of an exchange, 0x19 within one.
            _ => return self.close(Close::Error(DisconnectReason::ProtocolError)),
        };
        let method = Some(connect_method);
        let reply = match step {
            AuthStep::Success(data) => {
                auth.exchange = None;
                Auth { reason: AuthReason::Success, method, data }
            }
            AuthStep::Continue(data) => Auth { reason: AuthReason::ContinueAuthentication, method, data },
            // [MQTT-4.12.1-2] a failed re-authentication: DISCONNECT, close.
            AuthStep::Fail(code) => {
                self.cfg.auth_stats.count(crate::auth::stats::Denial::Authentication);
                return self.close(Close::Error(reauth_fail_code(code)));
            }
        };
        self.send(Packet::Auth(reply));
    }
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
