//! Log lines that clients drive, rate-limited per listener
//! ([`crate::ratelimit`]): a refused CONNECT (bad password, not
//! authorized, invalid client identifier, `max_sessions`, ...) and a
//! connection closed for a malformed packet. A flood of either costs one
//! line per [`crate::ratelimit::LOG_EVERY`], saying how many it stands for,
//! so it cannot fill a gateway's SD card.

use std::fmt::Display;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Instant;

use crate::protocol::ConnectReason;
use crate::ratelimit::RateLimited;

/// The rate limits of one listener's connection log lines.
#[derive(Debug, Default)]
pub struct ConnLogs {
    refused: Mutex<RateLimited>,
    malformed: Mutex<RateLimited>,
}

/// Counts an event; `Some(n)` when a line for `n` events is due.
fn due(limit: &Mutex<RateLimited>) -> Option<u64> {
    let now = Instant::now();
    match limit.lock() {
        Ok(mut r) => r.event(now),
        Err(poisoned) => poisoned.into_inner().event(now),
    }
}

impl ConnLogs {
    /// A CONNACK with the error `code` was sent to `peer`.
    pub fn refused(&self, peer: &SocketAddr, code: ConnectReason) {
        if let Some(n) = due(&self.refused) {
            tracing::warn!(%peer, code = code.code(), refused = n, "CONNECT refused: {code} (one line per 10 s at most)");
        }
    }

    /// `peer`'s connection is closed: what it sent does not decode.
    pub fn malformed(&self, peer: &SocketAddr, client_id: &str, e: &dyn Display) {
        if let Some(n) = due(&self.malformed) {
            tracing::warn!(%peer, client_id, closed = n, "closing connection: {e} (one line per 10 s at most)");
        }
    }
}
