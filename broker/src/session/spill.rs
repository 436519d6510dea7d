//! A session queue that keeps only its head in memory and the rest in a
//! scratch file, so a persistent session's backlog costs disk, not RAM.
//!
//! Order is: `head` (decoded, in memory), then the chunks handed to the
//! spill thread (`front`, the one being decoded, then `runs`), then `tail`
//! (encoded, not yet handed over). While nothing is spilled, pushes go to
//! the head, up to a few entries for a connected session (the one that is
//! draining) and none for an offline one. Entries are handed over in
//! chunks; the global budget in [`SpillDir`] bounds what all queues
//! together hold encoded in memory. The file is a copy of what the log
//! already made durable, never synced, and deleted when drained or dropped.
//!
//! No file I/O happens here (the session's lock is held): the spill thread
//! (`store::spill_io`) writes a chunk, keeping its bytes in memory until it
//! has, and reads one back when asked; a queue whose next chunk is on disk
//! has nothing to give until then (`front` is `None` although `len` is
//! not 0), and the session is woken when the chunk is there. A connected
//! queue asks for the next chunk as it starts decoding one, so a drain
//! rarely waits. A compaction's snapshot walks the queue without I/O here
//! (`spill_walk.rs`): what is in memory at once, the chunks on disk as the
//! spill thread reads them back, none consumed before it is walked. A
//! session that ends with shared-subscription entries on disk is drained
//! the same way, chunk by chunk as the spill thread reads them
//! (`router/ending.rs`); a shared subscriber that disconnects gives the
//! group only what is in memory. Only `take_where` and `take_shared(true)`
//! read chunks on disk in the caller, where blocking is allowed (the
//! broker's stop, tests).
//!
//! If a chunk cannot be written, its entries stay in memory (within
//! [`SpillDir::memory_full`]) and the queue begins a new file. If one
//! cannot be read back, the queue gives nothing behind it (so deliveries
//! keep the order the router queued them in) and its entries keep counting
//! in its length (so its limits hold): it is read again at every delivery
//! attempt, waking the session only if it reads back; until it does, its
//! entries are counted in [`SpillDir::unreadable`], and the log is not
//! compacted while any are, so a restart brings back those of persistent
//! sessions, in order. (`take_where`, which reads the whole queue in the
//! caller, still gives up a chunk it cannot read, counted the same way;
//! a session that ends gives such a chunk up, `give_up_unreadable`.)
//!
//! Accounting: the decoded head is charged to the memory budget (a push
//! that does not fit there goes to disk even while nothing is spilled), and
//! the spilled bytes (chunks and tail) to the disk quotas of [`SpillDir`];
//! [`MessageQueue::room`] says whether the next push fits.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Instant;

use super::budget::{memory_cost, Charge, Full, QueuePool};
use super::state::{MessageQueue, SharedSession, WalkRead, WalkStep};
use crate::message::{Delivery, SessionKey};
use crate::store::record::{decode_spilled, encode_spilled};
use crate::store::spill_io::{self, Chunk, ChunkState, SpillIo, SpillPath};

#[path = "spill_walk.rs"]
mod walk;
use crate::store::SpillDir;

/// Entries a connected session keeps decoded in memory.
const HEAD_ONLINE: usize = 64;
/// Encoded bytes a queue buffers before writing them out.
const TAIL_CHUNK: usize = 32 * 1024;

/// A chunk handed to the spill thread, where it is in which file.
struct Run {
    /// Increasing along the queue (a snapshot's walk follows them).
    id: u64,
    chunk: Arc<Chunk>,
    path: SpillPath,
    at: u64,
    len: usize,
    entries: usize,
    /// When its first entry's message was received (the backlog's age).
    first: Instant,
    /// A read of it failed: its entries are counted in
    /// `SpillDir::unreadable` until it reads back or the queue goes.
    missing: bool,
}

/// The chunk being decoded into the head.
struct Front {
    bytes: Arc<[u8]>,
    path: SpillPath,
    at: usize,
    left: usize,
    /// The chunk's first entry's time: what is left of it is younger.
    first: Instant,
}

pub struct SpillQueue {
    head: VecDeque<Delivery>,
    dir: Arc<SpillDir>,
    key: SessionKey,
    /// The file chunks are appended to, and its length so far (with the
    /// chunks not yet written).
    path: SpillPath,
    written: u64,
    /// The chunk being decoded, then the chunks handed over, oldest first.
    front: Option<Front>,
    runs: VecDeque<Run>,
    /// Entries and bytes in `front` and `runs`.
    run_entries: usize,
    run_bytes: u64,
    /// Length-prefixed encoded entries after the chunks'.
    tail: Vec<u8>,
    tail_entries: usize,
    /// When the tail's first entry's message was received.
    tail_first: Option<Instant>,
    online: bool,
    /// The head's bytes, charged to the memory budget.
    charge: Charge,
    /// The spilled bytes last added to `dir.disk_used`.
    disk_charged: u64,
    /// Woken when a chunk it waits for has been read back.
    waker: Weak<SharedSession>,
    /// The id of the next chunk handed over.
    next_id: u64,
    /// A snapshot's walk in progress: its chunks are not consumed.
    walk: Option<walk::Walk>,
    /// A walk was cut short by `take_where`.
    walk_broken: bool,
    /// Spilled entries of shared subscriptions, at most (`take_where`
    /// reads nothing back while none is).
    shared_spilled: usize,
}

/// Roughly what a delivery takes spilled (its entry and body encoded).
fn spilled_size(d: &Delivery) -> u64 {
    (d.msg.payload.len() + d.msg.topic.len() + 48) as u64
}

impl SpillQueue {
    pub fn new(dir: Arc<SpillDir>, key: SessionKey, pool: &Arc<QueuePool>, waker: Weak<SharedSession>) -> SpillQueue {
        let path: SpillPath = dir.new_file(key).into();
        SpillQueue {
            head: VecDeque::new(),
            dir,
            key,
            path,
            written: 0,
            front: None,
            runs: VecDeque::new(),
            run_entries: 0,
            run_bytes: 0,
            tail: Vec::new(),
            tail_entries: 0,
            tail_first: None,
            online: false,
            charge: Charge::new(pool),
            disk_charged: 0,
            waker,
            next_id: 0,
            walk: None,
            walk_broken: false,
            shared_spilled: 0,
        }
    }

    /// Puts `d` at the end of the head, whatever the limits (for the
    /// entries of a memory queue that starts spilling).
    pub fn push_head(&mut self, d: Delivery) {
        self.charge.add(memory_cost(&d));
        self.head.push_back(d);
    }

    /// Bytes spilled: the chunks' (what is left of the one being decoded)
    /// and the tail.
    pub fn disk_bytes(&self) -> u64 {
        self.run_bytes + self.tail.len() as u64
    }

    /// Brings the shared count of spilled bytes up to date.
    fn sync_disk(&mut self) {
        let now = self.disk_bytes();
        if now > self.disk_charged {
            self.dir.disk_used.fetch_add(now - self.disk_charged, Ordering::Relaxed);
        } else {
            self.dir.disk_used.fetch_sub(self.disk_charged - now, Ordering::Relaxed);
        }
        self.disk_charged = now;
    }

    /// Whether a push of `d` goes to the head.
    fn to_head(&self, d: &Delivery) -> bool {
        self.spilled() == 0 && self.head.len() < self.head_limit() && self.charge.has_room(memory_cost(d))
    }

    fn spilled(&self) -> usize {
        self.run_entries + self.tail_entries
    }

    fn head_limit(&self) -> usize {
        if self.online {
            HEAD_ONLINE
        } else {
            0
        }
    }

    fn encode(&mut self, d: &Delivery) {
        self.shared_spilled += usize::from(d.shared.is_some());
        self.tail_first.get_or_insert(d.msg.received);
        let at = self.tail.len();
        self.tail.extend_from_slice(&[0; 4]);
        encode_spilled(d, self.dir.epoch, &mut self.tail);
        let n = (self.tail.len() - at - 4) as u32;
        self.tail[at..at + 4].copy_from_slice(&n.to_le_bytes());
        self.tail_entries += 1;
        self.dir.buffered.fetch_add(self.tail.len() - at, Ordering::Relaxed);
    }

    /// Releases the tail buffer and its share of the budget.
    fn take_tail(&mut self) -> Vec<u8> {
        self.dir.buffered.fetch_sub(self.tail.len(), Ordering::Relaxed);
        self.tail_entries = 0;
        self.tail_first = None;
        std::mem::take(&mut self.tail)
    }

    /// Hands the tail to the spill thread as a chunk (no I/O here). After
    /// a failed write the file's length is unknown: a new file is begun.
    fn flush(&mut self) {
        if self.tail.is_empty() {
            return;
        }
        let failed =
            self.runs.back().is_some_and(|r| r.path == self.path && r.chunk.get().1 == ChunkState::WriteFailed);
        if failed {
            self.path = self.dir.new_file(self.key).into();
            self.written = 0;
        }
        let entries = std::mem::take(&mut self.tail_entries);
        let first = self.tail_first.take().unwrap_or_else(Instant::now);
        // The tail's bytes stay counted in `buffered` until written.
        let bytes = std::mem::take(&mut self.tail);
        let len = bytes.len();
        let chunk = SpillIo::write(&self.dir, &self.path, self.written, bytes);
        let id = self.next_id;
        self.next_id += 1;
        let path = self.path.clone();
        self.runs.push_back(Run { id, chunk, path, at: self.written, len, entries, first, missing: false });
        self.written += len as u64;
        self.run_entries += entries;
        self.run_bytes += len as u64;
    }

    /// What wakes the session's connection when a read is done.
    fn wake(&self) -> Box<dyn FnOnce() + Send> {
        let w = self.waker.clone();
        Box::new(move || {
            if let Some(s) = w.upgrade() {
                s.notify.notify_one();
            }
        })
    }

    /// What wakes the session's connection when `chunk` has been read back,
    /// not when the read failed (a queue held up by a chunk it cannot read
    /// asks again at the next delivery attempt, never in a loop of its own).
    fn wake_if_read(&self, chunk: &Arc<Chunk>) -> Box<dyn FnOnce() + Send> {
        let (w, chunk) = (self.waker.clone(), Arc::downgrade(chunk));
        Box::new(move || {
            let read = chunk.upgrade().is_some_and(|c| c.get().1 != ChunkState::ReadFailed);
            if let Some(s) = w.upgrade().filter(|_| read) {
                s.notify.notify_one();
            }
        })
    }

    /// The front chunk could not be read back: the queue waits for it (its
    /// entries counted in `SpillDir::unreadable` and logged, once).
    fn hold_front(&mut self) {
        let Some(run) = self.runs.front_mut().filter(|r| !r.missing) else { return };
        run.missing = true;
        self.dir.unreadable.fetch_add(run.entries as u64, Ordering::Relaxed);
        tracing::error!(
            unreadable = run.entries,
            queued = self.head.len() + self.run_entries + self.tail_entries,
            "queue spill file unreadable; the queue delivers nothing behind these messages until they read \
             back (tried again at each delivery) or a restart brings them back from the log (not compacted \
             until then)"
        );
    }

    /// Asks for the next chunk to be read back before it is needed, while
    /// a connection drains the queue.
    fn prefetch(&self) {
        if let Some(r) = self.runs.front().filter(|_| self.online) {
            self.dir.io.read(&r.path, r.at, r.len, &r.chunk, self.wake());
        }
    }

    /// Makes the head non-empty if anything spilled is in memory. Without
    /// `blocking`, a chunk on disk is asked for and the call returns (the
    /// session is woken when it is there); with it (whole-queue walks), it
    /// is read here.
    fn refill(&mut self, blocking: bool) {
        while self.head.is_empty() {
            if self.front.is_some() {
                self.decode_front();
                continue;
            }
            let Some(run) = self.runs.front() else { break };
            if self.walk.is_some_and(|w| w.holds(run.id)) {
                // A snapshot writes it first (the session is woken then).
                return;
            }
            let (bytes, state) = run.chunk.get();
            let bytes = match bytes {
                Some(b) => Some(b),
                None if blocking => spill_io::read_now(&run.path, run.at, run.len).ok().map(Arc::from),
                None => {
                    // Asked again after a failure: woken only if it reads back.
                    let failed = state == ChunkState::ReadFailed;
                    let wake = if failed { self.wake_if_read(&run.chunk) } else { self.wake() };
                    self.dir.io.read(&run.path, run.at, run.len, &run.chunk, wake);
                    match run.chunk.get() {
                        // Read inline.
                        (Some(b), _) => Some(b),
                        (None, ChunkState::ReadFailed) => {
                            self.hold_front();
                            return;
                        }
                        _ => {
                            if failed {
                                self.hold_front();
                            }
                            return;
                        }
                    }
                }
            };
            let Some(run) = self.runs.pop_front() else { break };
            match bytes {
                Some(bytes) => {
                    if run.missing {
                        self.dir.unreadable.fetch_sub(run.entries as u64, Ordering::Relaxed);
                        tracing::info!(entries = run.entries, "queue spill chunk read back after all");
                    }
                    self.front = Some(Front { bytes, path: run.path, at: 0, left: run.entries, first: run.first });
                    self.prefetch();
                }
                None => {
                    // A whole-queue walk (`take_where`) gives it up.
                    if !run.missing {
                        self.dir.unreadable.fetch_add(run.entries as u64, Ordering::Relaxed);
                    }
                    tracing::error!(
                        lost = run.entries,
                        "queue spill file unreadable; these messages return only after a restart \
                         (the log is not compacted until then)"
                    );
                    self.run_entries -= run.entries;
                    self.run_bytes -= run.len as u64;
                    self.file_done(&run.path);
                }
            }
        }
        if self.head.is_empty() && self.front.is_none() && self.runs.is_empty() && self.tail_entries > 0 {
            self.refill_from_tail();
        }
    }

    /// Moves up to `HEAD_ONLINE` entries of the front chunk to the head.
    fn decode_front(&mut self) {
        let Some(f) = &mut self.front else { return };
        let (head, charge) = (&mut self.head, &mut self.charge);
        let shared = &mut self.shared_spilled;
        let (used, n) = decode_entries(&f.bytes[f.at..], f.left.min(HEAD_ONLINE), &self.dir, &mut |d| {
            *shared = shared.saturating_sub(usize::from(d.shared.is_some()));
            charge.add(memory_cost(&d));
            head.push_back(d);
        });
        f.at += used;
        f.left -= n;
        self.run_entries -= n;
        self.run_bytes -= used as u64;
        if n == 0 && f.left > 0 {
            // Our own bytes do not decode (logged): the rest is lost.
            let rest = (f.bytes.len() - f.at) as u64;
            tracing::error!(lost = f.left, "queue spill chunk does not decode");
            self.dir.unreadable.fetch_add(f.left as u64, Ordering::Relaxed);
            self.run_entries -= f.left;
            self.run_bytes -= rest;
            f.left = 0;
        }
        if f.left == 0 {
            if let Some(f) = self.front.take() {
                self.file_done(&f.path);
            }
        }
    }

    /// A chunk of `path` was consumed: the file is removed if no other
    /// chunk of it is left.
    fn file_done(&mut self, path: &SpillPath) {
        if self.runs.front().is_some_and(|r| r.path == *path) {
            return;
        }
        self.dir.io.remove(path);
        if *path == self.path {
            self.written = 0;
        }
    }

    fn refill_from_tail(&mut self) {
        let tail = self.take_tail();
        decode_entries(&tail, usize::MAX, &self.dir, &mut |d| {
            self.charge.add(memory_cost(&d));
            self.head.push_back(d);
        });
        self.shared_spilled = 0;
    }

    fn pop(&mut self, blocking: bool) -> Option<Delivery> {
        self.refill(blocking);
        self.sync_disk();
        if self.spilled() == 0 {
            self.shared_spilled = 0;
        }
        let d = self.head.pop_front()?;
        self.charge.sub(memory_cost(&d));
        Some(d)
    }
}

/// Decodes up to `max` entries from the start of `b`, in order, into `f`;
/// returns the bytes and the entries used.
fn decode_entries(b: &[u8], max: usize, dir: &SpillDir, f: &mut dyn FnMut(Delivery)) -> (usize, usize) {
    let (mut at, mut n) = (0, 0);
    while n < max {
        let Some((d, used)) = decode_at(&b[at..], dir) else { break };
        f(d);
        at += used;
        n += 1;
    }
    (at, n)
}

/// Decodes one length-prefixed entry; `None` at the end of `b` or on an
/// entry that does not decode (logged: our own file, so a bug).
fn decode_at(b: &[u8], dir: &SpillDir) -> Option<(Delivery, usize)> {
    let len = u32::from_le_bytes(b.get(..4)?.try_into().ok()?) as usize;
    let body = b.get(4..4 + len)?;
    match decode_spilled(body, dir.epoch) {
        Ok(d) => Some((d, 4 + len)),
        Err(e) => {
            tracing::error!(dir = %dir.path.display(), "queue spill file: {e}");
            None
        }
    }
}

impl MessageQueue for SpillQueue {
    fn push_back(&mut self, d: Delivery) {
        if self.to_head(&d) {
            self.push_head(d);
            return;
        }
        self.encode(&d);
        if self.tail.len() >= TAIL_CHUNK || self.dir.over_budget() {
            self.flush();
        }
        self.sync_disk();
    }

    fn pop_front(&mut self) -> Option<Delivery> {
        self.pop(false)
    }

    fn oldest_received(&self) -> Option<Instant> {
        let spilled = || self.front.as_ref().map(|f| f.first).or_else(|| self.runs.front().map(|r| r.first));
        self.head.front().map(|d| d.msg.received).or_else(spilled).or(self.tail_first)
    }

    fn front(&mut self) -> Option<&Delivery> {
        self.refill(false);
        self.sync_disk();
        self.head.front()
    }

    fn room(&self, d: &Delivery) -> Result<(), Full> {
        if self.to_head(d) {
            Ok(())
        } else if self.dir.memory_full() {
            Err(Full::Memory)
        } else {
            self.dir.disk_room(self.disk_bytes(), spilled_size(d)).map_err(Full::Disk)
        }
    }

    fn walk_begin(&mut self, f: &mut dyn FnMut(&Delivery)) -> bool {
        self.begin_walk(f)
    }

    fn walk_next(&mut self, f: &mut dyn FnMut(&Delivery), read: WalkRead<'_>) -> WalkStep {
        self.next_walk(f, read)
    }

    fn walk_abort(&mut self) {
        self.end_walk();
    }

    fn len(&self) -> usize {
        self.head.len() + self.spilled()
    }

    fn take_where(&mut self, pred: &mut dyn FnMut(&Delivery) -> bool) -> Vec<Delivery> {
        // Rotates the queue once: kept entries go to the back in order.
        // Chunks on disk are read here (a rare walk of the whole queue).
        self.break_walk();
        let mut taken = Vec::new();
        for _ in 0..self.len() {
            let Some(d) = self.pop(true) else { break };
            if pred(&d) {
                taken.push(d);
            } else {
                self.push_back(d);
            }
        }
        taken
    }

    fn shared_on_disk(&self) -> bool {
        self.shared_spilled > 0
    }

    fn give_up_unreadable(&mut self) -> usize {
        if !self.head.is_empty() || self.front.is_some() {
            return 0;
        }
        match self.runs.front() {
            // Failed, or failed and asked again (`missing`): not waited for.
            Some(r) if r.missing || r.chunk.get().1 == ChunkState::ReadFailed => {}
            _ => return 0,
        }
        let Some(run) = self.runs.pop_front() else { return 0 };
        if run.missing {
            // Gone with the session: a restart would not bring it back.
            self.dir.unreadable.fetch_sub(run.entries as u64, Ordering::Relaxed);
        }
        self.run_entries -= run.entries;
        self.run_bytes -= run.len as u64;
        self.file_done(&run.path);
        self.sync_disk();
        run.entries
    }

    fn take_shared(&mut self, from_disk: bool) -> Vec<Delivery> {
        if from_disk && self.shared_spilled > 0 {
            return self.take_where(&mut |d| d.shared.is_some());
        }
        // None on disk, or only what is in memory asked for: the head alone,
        // no I/O.
        let (taken, kept): (VecDeque<_>, VecDeque<_>) =
            std::mem::take(&mut self.head).into_iter().partition(|d| d.shared.is_some());
        self.head = kept;
        self.charge.sub(taken.iter().map(memory_cost).sum());
        taken.into()
    }

    fn set_online(&mut self, online: bool) {
        self.online = online;
        if !online && self.spilled() == 0 && !self.head.is_empty() {
            // Going offline: what is left goes out of memory.
            for d in std::mem::take(&mut self.head) {
                self.encode(&d);
            }
            let held = self.charge.bytes();
            self.charge.sub(held);
            self.flush();
        }
        self.sync_disk();
    }
}

impl Drop for SpillQueue {
    fn drop(&mut self) {
        self.take_tail();
        self.dir.disk_used.fetch_sub(self.disk_charged, Ordering::Relaxed);
        // Every file still holding chunks, once what was asked is done.
        let mut paths: Vec<SpillPath> = self.front.take().map(|f| f.path).into_iter().collect();
        for r in self.runs.drain(..) {
            if r.missing {
                // Gone with the queue: nothing left to bring back for it.
                self.dir.unreadable.fetch_sub(r.entries as u64, Ordering::Relaxed);
            }
            if paths.last() != Some(&r.path) {
                paths.push(r.path);
            }
        }
        for p in paths {
            self.dir.io.remove(&p);
        }
    }
}

#[cfg(test)]
#[path = "spill_tests.rs"]
mod tests;
