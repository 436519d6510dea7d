//! What the router counts, as a snapshot ([`RouterStats`], returned at
//! shutdown) of the broker's registry ([`crate::metrics::Metrics`]), and
//! the registry's gauges of what the router holds, set after each batch.

use std::sync::Arc;

use super::Router;
use crate::metrics::Metrics;

/// The router's counters at one moment, read from the broker's registry
/// ([`crate::metrics::Metrics`], where they are kept as they happen).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RouterStats {
    pub published: u64,
    pub delivered: u64,
    pub dropped_queue_full: u64,
    /// Of those, dropped at a disk quota or the free-space reserve.
    pub dropped_disk_quota: u64,
    pub sessions_expired: u64,
    /// CONNECTs refused at `max_sessions`.
    pub sessions_refused: u64,
    /// Retained messages not kept at `max_retained_messages`/`_bytes`.
    pub retained_refused: u64,
    /// CONNECTs that opened, resumed or took over a session.
    pub connects: u64,
    /// CONNECTs refused: the session of their client identifier belongs
    /// to another user.
    pub sessions_not_owner: u64,
}

impl RouterStats {
    /// The router's counters in `m` now.
    pub fn of(m: &Metrics) -> RouterStats {
        RouterStats {
            published: m.received.total(),
            delivered: m.delivered.get(),
            dropped_queue_full: m.drops.queue_full.get(),
            dropped_disk_quota: m.drops.disk_quota.get(),
            sessions_expired: m.sessions_expired.get(),
            sessions_refused: m.sessions_refused.get(),
            retained_refused: m.retained_refused.get(),
            connects: m.connects.get(),
            sessions_not_owner: m.sessions_not_owner.get(),
        }
    }
}

impl Router {
    /// The router's counters now (they live in the broker's registry).
    pub fn stats(&self) -> RouterStats {
        RouterStats::of(&self.metrics)
    }

    /// The broker's registry.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Sets the registry's gauges of what the router holds (after each
    /// batch and each inline route: four relaxed loads, a store only where
    /// the figure changed, so the cache lines stay shared between cores).
    pub(super) fn update_gauges(&self) {
        let m = &self.metrics;
        let set = |g: &crate::metrics::Gauge, v: u64| {
            if g.get() != v {
                g.set(v as i64);
            }
        };
        set(&m.sessions, self.sessions.len() as u64);
        set(&m.subscriptions, self.subs.len() as u64);
        set(&m.retained_messages, self.retained.clients_len() as u64);
        set(&m.retained_bytes, self.retained.bytes());
    }
}
