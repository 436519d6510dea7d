//! What all session queues share: the memory budget of queued messages
//! ([`QueuePool`], `queue_memory_bytes`) and the scratch directory that
//! queues spill to once past their memory share, and the reasons a queue
//! may be full ([`Full`]).
//!
//! A queue charges the messages it holds decoded in memory to the budget
//! through its [`Charge`] (released as they leave, and when the queue is
//! dropped); one session may hold at most a quarter of the budget. The
//! disk side (per-session and total quotas) is kept by
//! [`crate::store::SpillDir`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use crate::message::{Delivery, Message};
use crate::store::{DiskLimit, SpillDir};

/// Why a queue has no room for a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// `max_queued_messages` (set by the user).
    Messages,
    /// `max_queued_bytes` (set by the user).
    Bytes,
    /// The memory budget (`queue_memory_bytes`) or the session's share of
    /// it, with nowhere to spill (no persistence).
    Memory,
    /// A disk quota of spilled queues.
    Disk(DiskLimit),
}

impl std::fmt::Display for Full {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Full::Messages => "max_queued_messages",
            Full::Bytes => "max_queued_bytes",
            Full::Memory => "queue_memory_bytes (its share per session, without persistence)",
            Full::Disk(DiskLimit::Session) => "max_queued_disk_bytes",
            Full::Disk(DiskLimit::Total) => "queue_disk_quota",
            Full::Disk(DiskLimit::FreeSpace) => "the data directory's free-space reserve",
        })
    }
}

/// What a queued delivery costs in memory: its payload and topic, and
/// the delivery and message records (a message shared by several queues
/// is charged to each: the budget errs on the safe side).
pub fn memory_cost(d: &Delivery) -> usize {
    const RECORDS: usize = std::mem::size_of::<Delivery>() + std::mem::size_of::<Message>() + 16;
    d.msg.payload.len() + d.msg.topic.len() + RECORDS
}

/// What the queues of all sessions share.
#[derive(Debug)]
pub struct QueuePool {
    /// Bytes ([`memory_cost`]) all queues may hold in memory.
    limit: usize,
    /// What one queue may hold in memory: a quarter of `limit`, at most 4 GiB.
    share: usize,
    used: AtomicUsize,
    /// Where queues spill once past their memory share (persistence on).
    spill: OnceLock<Arc<SpillDir>>,
    /// The broker's registry, where queues count what they hold and drop.
    metrics: Arc<crate::metrics::Metrics>,
}

impl QueuePool {
    pub fn new(limit: usize) -> Arc<QueuePool> {
        Self::with_metrics(limit, crate::metrics::Metrics::new())
    }

    /// A pool whose queues count into `metrics` (the broker's registry).
    pub fn with_metrics(limit: usize, metrics: Arc<crate::metrics::Metrics>) -> Arc<QueuePool> {
        // A queue counts its bytes in a `u32` (its memory queue is then 48
        // bytes, one connection's share of the allocator's 48-byte class).
        let share = (limit / 4).min(u32::MAX as usize);
        Arc::new(QueuePool { limit, share, used: AtomicUsize::new(0), spill: OnceLock::new(), metrics })
    }

    /// The broker's registry (the router's too: it takes it from here).
    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.metrics
    }

    /// Lets queues spill to `dir` (once; later calls are ignored).
    pub fn set_spill(&self, dir: Arc<SpillDir>) {
        let _ = self.spill.set(dir);
    }

    pub fn spill(&self) -> Option<&Arc<SpillDir>> {
        self.spill.get()
    }

    /// Bytes charged now, over all queues.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    pub fn share(&self) -> usize {
        self.share
    }
}

/// The bytes one queue holds in memory, charged to its pool.
///
/// The pool's counter is shared by the router and every connection, so a
/// queue takes its bytes from it in [`CHUNK`]s: a queue that keeps up
/// (one message in, one out) touches it only now and then, not twice per
/// message. A queue keeps up to two chunks it does not use (8 KiB: 40 MiB
/// for 5,000 sessions that have had messages queued), all of it released
/// when the queue is dropped.
#[derive(Debug)]
pub struct Charge {
    pool: Arc<QueuePool>,
    bytes: u32,
    /// Taken from the pool: `bytes` rounded up, plus at most two chunks.
    reserved: u32,
}

/// What a queue takes from its pool at a time.
pub const CHUNK: usize = 4096;

impl Charge {
    pub fn new(pool: &Arc<QueuePool>) -> Charge {
        Charge { pool: pool.clone(), bytes: 0, reserved: 0 }
    }

    pub fn pool(&self) -> &Arc<QueuePool> {
        &self.pool
    }

    /// Whether `cost` more bytes fit in this queue's share and the budget.
    pub fn has_room(&self, cost: usize) -> bool {
        let (bytes, reserved) = (self.bytes as usize, self.reserved as usize);
        let want = bytes + cost;
        want <= self.pool.share && (want <= reserved || self.pool.used() + (want - reserved) <= self.pool.limit)
    }

    /// Adds `cost` (saturating at 4 GiB: only a push past [`Self::has_room`]
    /// gets there, and the pool still counts it).
    pub fn add(&mut self, cost: usize) {
        let cost = u32::try_from(cost).unwrap_or(u32::MAX);
        self.bytes = self.bytes.saturating_add(cost);
        if self.bytes > self.reserved {
            let chunk = CHUNK as u32;
            let more = (self.bytes - self.reserved).div_ceil(chunk).saturating_mul(chunk);
            let more = more.min(u32::MAX - self.reserved);
            self.pool.used.fetch_add(more as usize, Ordering::Relaxed);
            self.reserved += more;
        }
    }

    pub fn sub(&mut self, cost: usize) {
        let cost = u32::try_from(cost).unwrap_or(u32::MAX);
        self.bytes -= cost.min(self.bytes);
        let chunk = CHUNK as u32;
        let keep = self.bytes.div_ceil(chunk).saturating_mul(chunk).saturating_add(chunk);
        if self.reserved > keep.saturating_add(chunk) {
            self.pool.used.fetch_sub((self.reserved - keep) as usize, Ordering::Relaxed);
            self.reserved = keep;
        }
    }

    /// The bytes held (exact; the pool counts them in chunks).
    pub fn bytes(&self) -> usize {
        self.bytes as usize
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.pool.used.fetch_sub(self.reserved as usize, Ordering::Relaxed);
    }
}

#[cfg(test)]
#[path = "budget_tests.rs"]
mod tests;
