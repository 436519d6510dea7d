//! Session takeover: a CONNECT for a client identifier whose connection is
//! still open waits until that connection has finished what it had
//! received and reported in (`RouterMsg::Disconnected`), so a DISCONNECT
//! it sent first decides about its will [MQTT-3.1.2-10] and a session that
//! ended with it (Clean Session 1, Session Expiry 0) is not resumed
//! [MQTT-3.1.2-6]. An old connection that does not report within
//! [`TAKEOVER_GRACE`] (stuck writing to a dead peer) is taken over anyway.

use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::{ConnectReply, ConnectRequest, Router, SessionRefused};
use crate::message::SessionKey;
use crate::protocol::DisconnectReason;

/// How long a takeover waits for the old connection to report.
pub const TAKEOVER_GRACE: Duration = Duration::from_secs(5);

/// A CONNECT waiting for the old connection of its session.
pub(super) struct Parked {
    req: ConnectRequest,
    reply: oneshot::Sender<Result<ConnectReply, SessionRefused>>,
    due: Instant,
}

impl Router {
    /// Opens or resumes the session of `req` and replies, or, if the
    /// session's connection is still open, closes that one (0x8E,
    /// [MQTT-3.1.4-2]) and waits for it to report.
    pub(super) fn connect_or_wait(
        &mut self,
        req: ConnectRequest,
        reply: oneshot::Sender<Result<ConnectReply, SessionRefused>>,
        now: Instant,
    ) {
        if let Err(e) = self.admit(&req, now) {
            let _ = reply.send(Err(e));
            return;
        }
        self.connect_admitted(req, reply, now);
    }

    /// [`Router::connect_or_wait`] for a CONNECT the caps admitted.
    pub(super) fn connect_admitted(
        &mut self,
        req: ConnectRequest,
        reply: oneshot::Sender<Result<ConnectReply, SessionRefused>>,
        now: Instant,
    ) {
        let waiting = self.by_client.get(req.client_id.as_str()).and_then(|k| self.takeovers.remove(k));
        if let Some(earlier) = waiting {
            // A newer CONNECT for the same identifier: the one still
            // waiting goes ahead now (it gets its CONNACK) and is taken
            // over in turn below.
            self.reply_connect(earlier.req, earlier.reply, now);
        }
        let online = self.by_client.get(req.client_id.as_str()).and_then(|k| {
            let old = self.sessions.get(k)?.conn.as_ref()?;
            old.close(DisconnectReason::SessionTakenOver);
            Some(*k)
        });
        let Some(key) = online else {
            // The connection may have gone away meanwhile; nothing to do then.
            self.reply_connect(req, reply, now);
            return;
        };
        self.takeovers.insert(key, Parked { req, reply, due: now + TAKEOVER_GRACE });
    }

    /// After a connection of `key` reported in: a takeover waiting for it
    /// goes ahead.
    pub(super) fn resume_takeover(&mut self, key: SessionKey, now: Instant) {
        let offline = self.sessions.get(&key).is_none_or(|e| e.conn.is_none());
        if offline {
            if let Some(p) = self.takeovers.remove(&key) {
                self.reply_connect(p.req, p.reply, now);
            }
        }
    }

    /// Takeovers whose old connection did not report within
    /// [`TAKEOVER_GRACE`] go ahead without it (the old connection's report,
    /// if it comes, is then that of a replaced connection).
    pub(super) fn force_takeovers(&mut self, now: Instant) {
        let mut due: Vec<SessionKey> = self.takeovers.iter().filter(|(_, p)| p.due <= now).map(|(k, _)| *k).collect();
        due.sort_unstable();
        for key in due {
            if let Some(p) = self.takeovers.remove(&key) {
                if let Some(n) = self.cap_logs.takeover.event(now) {
                    tracing::warn!(
                        client_id = %p.req.client_id,
                        takeovers = n,
                        "session takeover: the old connection did not finish in time (one line per 10 s at most)"
                    );
                }
                self.reply_connect(p.req, p.reply, now);
            }
        }
    }

    /// CONNECTs waiting for a takeover.
    pub fn takeovers_waiting(&self) -> usize {
        self.takeovers.len()
    }
}
