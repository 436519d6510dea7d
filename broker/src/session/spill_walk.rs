//! A compaction snapshot's walk of a spill queue, without file I/O under
//! the session's lock.
//!
//! The walk begins with what is in memory (the head, the chunk being
//! decoded, and everything else if no chunk is on disk), written at once.
//! If a chunk is on disk, the tail is handed over as one more chunk and
//! the chunks up to it are walked in order, each once the spill thread has
//! read it back (a few ahead); the router is woken when one is. Until a
//! chunk is walked the queue does not consume it (`Walk::holds`): an entry
//! the snapshot has not written yet cannot be sent, acknowledged or moved
//! in flight, so the log never names it before the snapshot does. Pushes
//! meanwhile go behind the walked chunks and are logged as usual; the log's
//! replay keeps the snapshot's entries and the newer ones as two ascending
//! sequences on disk (`store::spool`). A walked chunk that the queue does
//! not need next gives its memory back (`Chunk::evict`).

use super::{decode_entries, SpillQueue};
use crate::message::Delivery;
use crate::session::state::{WalkRead, WalkStep};
use crate::store::spill_io::{self, ChunkState};

/// Chunks a walk writes before it lets the router go on.
const WALK_CHUNKS: usize = 4;
/// Chunks on disk a walk asks for ahead of the one it writes next.
const READ_AHEAD: usize = 3;

/// The chunks (by id) a walk has still to write: `next..end`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Walk {
    next: u64,
    end: u64,
}

impl Walk {
    /// Whether the walk has yet to write chunk `id`.
    pub(super) fn holds(&self, id: u64) -> bool {
        (self.next..self.end).contains(&id)
    }
}

impl SpillQueue {
    /// See [`crate::session::state::MessageQueue::walk_begin`].
    pub(super) fn begin_walk(&mut self, f: &mut dyn FnMut(&Delivery)) -> bool {
        self.end_walk();
        self.walk_broken = false;
        for d in &self.head {
            f(d);
        }
        if let Some(fr) = &self.front {
            decode_entries(&fr.bytes[fr.at..], fr.left, &self.dir, &mut |d| f(&d));
        }
        let on_disk = self.runs.iter().any(|r| r.chunk.get().0.is_none());
        if !on_disk {
            for r in &self.runs {
                if let (Some(b), _) = r.chunk.get() {
                    decode_entries(&b, r.entries, &self.dir, &mut |d| f(&d));
                }
            }
            decode_entries(&self.tail, usize::MAX, &self.dir, &mut |d| f(&d));
            return false;
        }
        // The tail's entries come after the chunks': they are walked as one
        // more chunk (no I/O here, its bytes stay in memory until written).
        self.flush();
        self.sync_disk();
        let next = self.runs.front().map_or(self.next_id, |r| r.id);
        self.walk = Some(Walk { next, end: self.next_id });
        true
    }

    /// See [`crate::session::state::MessageQueue::walk_next`].
    pub(super) fn next_walk(&mut self, f: &mut dyn FnMut(&Delivery), read: WalkRead<'_>) -> WalkStep {
        if std::mem::take(&mut self.walk_broken) {
            return WalkStep::Failed { lost: 0 };
        }
        let Some(mut w) = self.walk else { return WalkStep::Done };
        let first = self.runs.iter().position(|r| r.id >= w.next).unwrap_or(self.runs.len());
        for i in first..first + WALK_CHUNKS {
            let Some(r) = self.runs.get(i).filter(|r| r.id < w.end) else {
                self.end_walk();
                return WalkStep::Done;
            };
            let bytes = match (r.chunk.get(), &read) {
                ((Some(b), _), _) => b,
                ((None, _), WalkRead::Blocking) => match spill_io::read_now(&r.path, r.at, r.len) {
                    Ok(b) => b.into(),
                    Err(e) => {
                        tracing::error!(file = %r.path.display(), "queue spill file unreadable: {e}");
                        return WalkStep::Failed { lost: r.entries };
                    }
                },
                ((None, state), WalkRead::Ask(wake)) => {
                    let lost = r.entries;
                    // Asked again after a failure: the next walk may find it.
                    for r in self.runs.range(i..).take(READ_AHEAD + 1).filter(|r| r.id < w.end) {
                        self.dir.io.read(&r.path, r.at, r.len, &r.chunk, wake());
                    }
                    if state == ChunkState::ReadFailed {
                        return WalkStep::Failed { lost };
                    }
                    match self.runs[i].chunk.get() {
                        // Read inline.
                        (Some(b), _) => b,
                        (None, ChunkState::ReadFailed) => return WalkStep::Failed { lost },
                        _ => {
                            self.walk = Some(w);
                            return WalkStep::Waiting;
                        }
                    }
                }
            };
            let r = &self.runs[i];
            decode_entries(&bytes, r.entries, &self.dir, &mut |d| f(&d));
            if i > 0 || !self.online {
                // Not the chunk a connection decodes next.
                r.chunk.evict();
            }
            w.next = r.id + 1;
        }
        self.walk = Some(w);
        // What the walk released may be consumed now.
        (self.wake())();
        WalkStep::More
    }

    /// Ends a walk in progress (if any): its chunks may be consumed.
    pub(super) fn end_walk(&mut self) {
        if self.walk.take().is_some() {
            (self.wake())();
        }
    }

    /// `take_where` consumes every chunk: a walk in progress
    /// fails (the snapshot is retried).
    pub(super) fn break_walk(&mut self) {
        if self.walk.is_some() {
            self.end_walk();
            self.walk_broken = true;
        }
    }

    /// Walks the whole queue (tests): chunks on disk asked for and waited
    /// for; false if the walk failed.
    #[cfg(test)]
    pub(crate) fn walk_all(&mut self, f: &mut dyn FnMut(&Delivery)) -> bool {
        let noop = || -> Box<dyn FnOnce() + Send> { Box::new(|| {}) };
        if !self.begin_walk(f) {
            return true;
        }
        loop {
            match self.next_walk(f, WalkRead::Ask(&noop)) {
                WalkStep::Done => return true,
                WalkStep::More => {}
                WalkStep::Waiting => std::thread::sleep(std::time::Duration::from_millis(1)),
                WalkStep::Failed { .. } => return false,
            }
        }
    }

    /// Entries lost to chunks that could not be read back, so far.
    #[cfg(test)]
    pub(super) fn unreadable(&self) -> u64 {
        self.dir.unreadable.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(test)]
#[path = "spill_walk_tests.rs"]
mod tests;
