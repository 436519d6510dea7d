//! Counters of what authentication and authorization refused: CONNECTs
//! refused for their credentials (or for another user's session), and ACL
//! denials of PUBLISH, SUBSCRIBE filters, wills (at CONNECT and when
//! published), deliveries and retained messages. Plain atomics, one set per
//! broker shared by its listeners (they survive a reload), read with
//! [`AuthStats::counts`] (`Broker::auth_counts`).
//!
//! The session machine only counts (it reads no clock); the broker's
//! logging task calls [`AuthStats::log_new`] once per
//! [`crate::ratelimit::LOG_EVERY`], which logs at debug level what was
//! counted since, so a flood of refused clients costs one line per
//! interval, never one per event.

use std::sync::atomic::{AtomicU64, Ordering};

/// What was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// A CONNECT: bad or missing credentials, a failed enhanced
    /// authentication, another user's session.
    Authentication,
    /// A PUBLISH to a topic the ACL does not let the client write.
    Publish,
    /// A SUBSCRIBE filter the ACL does not let the client read.
    Subscribe,
    /// A will topic denied at CONNECT or when the will was due.
    Will,
    /// A message not delivered: the client may not read its topic (now).
    Delivery,
    /// Of the deliveries, a retained message (the retain flag set: sent
    /// on subscribe).
    Retained,
}

const KINDS: usize = 6;

fn index(d: Denial) -> usize {
    match d {
        Denial::Authentication => 0,
        Denial::Publish => 1,
        Denial::Subscribe => 2,
        Denial::Will => 3,
        Denial::Delivery => 4,
        Denial::Retained => 5,
    }
}

/// The counters (see the module doc).
#[derive(Debug, Default)]
pub struct AuthStats {
    counts: [AtomicU64; KINDS],
    /// What the last [`AuthStats::log_new`] saw.
    logged: [AtomicU64; KINDS],
}

/// The counters' values at one moment.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AuthCounts {
    pub auth_failures: u64,
    pub publish_denied: u64,
    pub subscribe_denied: u64,
    pub will_denied: u64,
    /// Deliveries denied, retained ones included.
    pub delivery_denied: u64,
    pub retained_denied: u64,
}

impl AuthCounts {
    fn from(v: [u64; KINDS]) -> AuthCounts {
        AuthCounts {
            auth_failures: v[0],
            publish_denied: v[1],
            subscribe_denied: v[2],
            will_denied: v[3],
            delivery_denied: v[4],
            retained_denied: v[5],
        }
    }
}

impl AuthStats {
    /// Counts one refusal (a retained delivery counts as a delivery too).
    pub fn count(&self, d: Denial) {
        self.counts[index(d)].fetch_add(1, Ordering::Relaxed);
        if d == Denial::Retained {
            self.counts[index(Denial::Delivery)].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn counts(&self) -> AuthCounts {
        AuthCounts::from(std::array::from_fn(|i| self.counts[i].load(Ordering::Relaxed)))
    }

    /// What was counted since the last call, logged at debug level if
    /// anything was; returned for the caller (and tests).
    pub fn log_new(&self) -> AuthCounts {
        let new = AuthCounts::from(std::array::from_fn(|i| {
            let now = self.counts[i].load(Ordering::Relaxed);
            now.saturating_sub(self.logged[i].swap(now, Ordering::Relaxed))
        }));
        if new != AuthCounts::default() {
            tracing::debug!(
                auth_failures = new.auth_failures,
                publish = new.publish_denied,
                subscribe = new.subscribe_denied,
                will = new.will_denied,
                delivery = new.delivery_denied,
                retained = new.retained_denied,
                "refused by authentication or the ACL since the last such line"
            );
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_what_is_new_since_the_last_log() {
        let s = AuthStats::default();
        s.count(Denial::Publish);
        s.count(Denial::Retained);
        s.count(Denial::Authentication);
        let want = AuthCounts {
            auth_failures: 1,
            publish_denied: 1,
            delivery_denied: 1,
            retained_denied: 1,
            ..AuthCounts::default()
        };
        assert_eq!(s.counts(), want);
        assert_eq!(s.log_new(), want);
        assert_eq!(s.log_new(), AuthCounts::default(), "nothing new");
        s.count(Denial::Subscribe);
        assert_eq!(s.log_new(), AuthCounts { subscribe_denied: 1, ..AuthCounts::default() });
        assert_eq!(s.counts().subscribe_denied, 1);
    }
}
