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
    /// What one queue may hold in memory: a quarter of `limit`.
    share: usize,
    used: AtomicUsize,
    /// Where queues spill once past their memory share (persistence on).
    spill: OnceLock<Arc<SpillDir>>,
}

impl QueuePool {
    pub fn new(limit: usize) -> Arc<QueuePool> {
        Arc::new(QueuePool { limit, share: limit / 4, used: AtomicUsize::new(0), spill: OnceLock::new() })
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
    bytes: usize,
    /// Taken from the pool: `bytes` rounded up, plus at most two chunks.
    reserved: usize,
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
        let want = self.bytes + cost;
        want <= self.pool.share
            && (want <= self.reserved || self.pool.used() + (want - self.reserved) <= self.pool.limit)
    }

    pub fn add(&mut self, cost: usize) {
        self.bytes += cost;
        if self.bytes > self.reserved {
            let more = (self.bytes - self.reserved).next_multiple_of(CHUNK);
            self.pool.used.fetch_add(more, Ordering::Relaxed);
            self.reserved += more;
        }
    }

    pub fn sub(&mut self, cost: usize) {
        self.bytes -= cost.min(self.bytes);
        let keep = self.bytes.next_multiple_of(CHUNK) + CHUNK;
        if self.reserved > keep + CHUNK {
            self.pool.used.fetch_sub(self.reserved - keep, Ordering::Relaxed);
            self.reserved = keep;
        }
    }

    /// The bytes held (exact; the pool counts them in chunks).
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.pool.used.fetch_sub(self.reserved, Ordering::Relaxed);
    }
}

#[cfg(test)]
#[path = "budget_tests.rs"]
mod tests;
