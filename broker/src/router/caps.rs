//! The router's caps and what happens at each (README, "Limits"):
//! sessions in total (`max_sessions`: a CONNECT that would open a new
//! session beyond it is refused, existing sessions still resume) and
//! retained messages (`max_retained_messages`, `max_retained_bytes`: a
//! retained message beyond them is delivered but not retained), and the
//! owner of a session (a CONNECT that checks it may not resume or take
//! over another user's session, nor clean it). Each refusal is counted in
//! the broker's registry ([`crate::metrics::Metrics`]) and logged at most once per
//! [`crate::ratelimit::LOG_EVERY`].

use std::sync::Arc;
use std::time::Instant;

use super::retained::RetainedLimits;
use super::{ConnectReply, ConnectRequest, Router};
use crate::message::Message;
use crate::ratelimit::RateLimited;

/// The caps the router enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouterCaps {
    pub max_sessions: usize,
    pub retained: RetainedLimits,
}

impl Default for RouterCaps {
    fn default() -> Self {
        RouterCaps { max_sessions: usize::MAX, retained: RetainedLimits::default() }
    }
}

/// Why the router refused a CONNECT's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionRefused {
    /// It would open a session beyond `max_sessions` (CONNACK 0x97 Quota
    /// exceeded; 3.1.1: 0x03).
    #[error("the broker is at max_sessions")]
    Quota,
    /// The client identifier's session belongs to another user (CONNACK
    /// 0x87 Not authorized; 3.1.1: 0x05); that session is left as it is.
    #[error("the session belongs to another user")]
    NotOwner,
}

/// Rate limits of the caps' log lines.
#[derive(Debug, Default)]
pub(super) struct CapLogs {
    sessions: RateLimited,
    retained: RateLimited,
    owners: RateLimited,
    /// Takeovers that went ahead without the old connection (`takeover.rs`).
    pub(super) takeover: RateLimited,
}

impl Router {
    pub fn set_caps(&mut self, caps: RouterCaps) {
        self.caps = caps;
        self.retained.set_limits(caps.retained);
    }

    /// Whether a CONNECT of `client_id` may go ahead: it resumes or
    /// replaces a session, or there is room for a new one.
    pub(super) fn admit(&mut self, req: &ConnectRequest, now: Instant) -> Result<(), SessionRefused> {
        let client_id = req.client_id.as_str();
        if let Some(e) = self.by_client.get(client_id).and_then(|k| self.sessions.get(k)) {
            // A session without owner (made where users did not
            // authenticate, by an anonymous client, or by a release before
            // owners) is claimed by whoever resumes it (`Router::connect`).
            if req.check_owner && e.owner.is_some() && e.owner != req.user {
                self.metrics.sessions_not_owner.inc();
                if let Some(n) = self.cap_logs.owners.event(now) {
                    tracing::warn!(
                        refused = n,
                        client_id,
                        user = req.user.as_deref().unwrap_or("(anonymous)"),
                        "CONNECTs refused: the client identifier's session belongs to another user"
                    );
                }
                return Err(SessionRefused::NotOwner);
            }
            return Ok(());
        }
        // Sessions ending in steps still count (a CONNECT they hold was
        // admitted while they did).
        if self.sessions.len() + self.endings_in_progress() < self.caps.max_sessions {
            return Ok(());
        }
        self.metrics.sessions_refused.inc();
        if let Some(n) = self.cap_logs.sessions.event(now) {
            tracing::warn!(
                refused = n,
                max_sessions = self.caps.max_sessions,
                "new sessions refused: the broker is at max_sessions"
            );
        }
        Err(SessionRefused::Quota)
    }

    /// Opens, resumes or takes over the session of `req` at once, as
    /// [`Router::connect`], if the caps allow it (the router's own clients
    /// and tests; connections go through [`super::RouterMsg::Connect`]).
    pub fn open(&mut self, req: ConnectRequest, now: Instant) -> Result<ConnectReply, SessionRefused> {
        self.admit(&req, now)?;
        Ok(self.connect(req, now))
    }

    /// Keeps `msg` as its topic's retained message unless that would go
    /// beyond a cap; returns whether it was kept (a deletion always is).
    pub(super) fn retain(&mut self, msg: &Arc<Message>) -> bool {
        let Err(full) = self.retained.set(msg.clone()) else {
            return true;
        };
        self.metrics.retained_refused.inc();
        if let Some(n) = self.cap_logs.retained.event(msg.received) {
            tracing::warn!(refused = n, topic = %msg.topic, "retained messages not kept: {full}");
        }
        false
    }
}

#[cfg(test)]
#[path = "caps_tests.rs"]
mod tests;
