//! A session queue that keeps only its head in memory and the rest in a
//! scratch file, so a persistent session's backlog costs disk, not RAM.
//!
//! Order is: `head` (decoded, in memory), then the file's unread entries,
//! then `tail` (encoded, not yet written). While nothing is spilled, pushes
//! go to the head, up to a few entries for a connected session (the one
//! that is draining) and none for an offline one. Entries are written out
//! in chunks; the global budget in [`SpillDir`] bounds what all queues
//! together hold encoded in memory. The file is a copy of what the log
//! already made durable, never synced, and deleted when drained or dropped.
//!
//! If the scratch file cannot be written or read, the queue logs it once and
//! keeps everything in memory from then on: the log still has every entry.
//!
//! Accounting: the decoded head is charged to the memory budget (a push
//! that does not fit there goes to disk even while nothing is spilled), and
//! the spilled bytes (file and tail) to the disk quotas of [`SpillDir`];
//! [`MessageQueue::room`] says whether the next push fits.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::budget::{memory_cost, Charge, Full, QueuePool};
use super::state::MessageQueue;
use crate::message::{Delivery, SessionKey};
use crate::store::record::{decode_spilled, encode_spilled};
use crate::store::SpillDir;

/// Entries a connected session keeps decoded in memory.
const HEAD_ONLINE: usize = 64;
/// Encoded bytes a queue buffers before writing them out.
const TAIL_CHUNK: usize = 32 * 1024;
/// Bytes read from the file at a time.
const READ_CHUNK: usize = 64 * 1024;

pub struct SpillQueue {
    head: VecDeque<Delivery>,
    dir: Arc<SpillDir>,
    path: PathBuf,
    /// File offset of the first unread entry, and the file's length.
    read_at: u64,
    written: u64,
    file_entries: usize,
    /// Length-prefixed encoded entries after the file's.
    tail: Vec<u8>,
    tail_entries: usize,
    online: bool,
    /// The file failed: everything stays in memory.
    in_memory: bool,
    /// The file, open for reading while the session is connected (it is
    /// then drained a chunk at a time); closed when it goes offline or the
    /// file is deleted, so an offline session holds no descriptor.
    reader: Option<File>,
    /// The head's bytes, charged to the memory budget.
    charge: Charge,
    /// The spilled bytes last added to `dir.disk_used`.
    disk_charged: u64,
}

/// Roughly what a delivery takes spilled (its entry and body encoded).
fn spilled_size(d: &Delivery) -> u64 {
    (d.msg.payload.len() + d.msg.topic.len() + 48) as u64
}

impl SpillQueue {
    pub fn new(dir: Arc<SpillDir>, key: SessionKey, pool: &Arc<QueuePool>) -> SpillQueue {
        let path = dir.new_file(key);
        SpillQueue {
            head: VecDeque::new(),
            dir,
            path,
            read_at: 0,
            written: 0,
            file_entries: 0,
            tail: Vec::new(),
            tail_entries: 0,
            online: false,
            in_memory: false,
            reader: None,
            charge: Charge::new(pool),
            disk_charged: 0,
        }
    }

    /// Puts `d` at the end of the head, whatever the limits (for the
    /// entries of a memory queue that starts spilling).
    pub fn push_head(&mut self, d: Delivery) {
        self.charge.add(memory_cost(&d));
        self.head.push_back(d);
    }

    /// Bytes spilled: the file's unread part and the tail.
    pub fn disk_bytes(&self) -> u64 {
        self.written - self.read_at + self.tail.len() as u64
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
        self.file_entries + self.tail_entries
    }

    fn head_limit(&self) -> usize {
        if self.in_memory {
            usize::MAX
        } else if self.online {
            HEAD_ONLINE
        } else {
            0
        }
    }

    fn encode(&mut self, d: &Delivery) {
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
        std::mem::take(&mut self.tail)
    }

    fn flush(&mut self) {
        if self.tail.is_empty() {
            return;
        }
        let result =
            OpenOptions::new().create(true).append(true).open(&self.path).and_then(|mut f| f.write_all(&self.tail));
        match result {
            Ok(()) => {
                self.written += self.tail.len() as u64;
                self.dir.bytes_written.fetch_add(self.tail.len() as u64, Ordering::Relaxed);
                self.file_entries += self.tail_entries;
                self.take_tail();
            }
            Err(e) => self.fail(&e),
        }
    }

    /// Gives up on the file: reads back what it can and keeps it all here.
    fn fail(&mut self, e: &io::Error) {
        tracing::error!(file = %self.path.display(), "queue spill file failed, keeping this queue in memory: {e}");
        self.in_memory = true;
        while self.file_entries > 0 {
            let before = self.file_entries;
            self.refill_from_file(usize::MAX);
            if self.file_entries == before {
                tracing::error!(
                    lost = self.file_entries,
                    "queue spill file unreadable; these messages return only after a restart"
                );
                self.file_entries = 0;
            }
        }
        self.refill_from_tail();
        self.reader = None;
        let _ = std::fs::remove_file(&self.path);
        self.read_at = 0;
        self.written = 0;
    }

    /// Moves up to `max` entries from the file to the head.
    fn refill_from_file(&mut self, max: usize) {
        // Read about what `max` entries take (their average size, plus one
        // entry), not a whole chunk of which most would be read again.
        let entries = self.file_entries.max(1) as u64;
        let average = (self.written - self.read_at).div_ceil(entries);
        let want = average.saturating_mul(max.min(self.file_entries) as u64 + 1).max(256);
        let (read_at, written) = (self.read_at, self.written);
        let read = self.reader().and_then(|f| read_chunk(f, read_at, written, want));
        let buf = match read {
            Ok(b) => b,
            Err(e) => {
                if !self.in_memory {
                    self.fail(&e);
                }
                return;
            }
        };
        let (at, moved) = decode_entries(&buf, max.min(self.file_entries), &self.dir, &mut |d| {
            self.charge.add(memory_cost(&d));
            self.head.push_back(d);
        });
        self.file_entries -= moved;
        self.read_at += at as u64;
        if moved == 0 && max > 0 && !self.in_memory {
            self.fail(&io::Error::new(io::ErrorKind::InvalidData, "an entry does not decode"));
            return;
        }
        if self.file_entries == 0 {
            self.reader = None;
            let _ = std::fs::remove_file(&self.path);
            self.read_at = 0;
            self.written = 0;
        } else if !self.online {
            self.reader = None;
        }
    }

    /// The file, opened for reading if it is not already.
    fn reader(&mut self) -> io::Result<&File> {
        match &mut self.reader {
            Some(f) => Ok(f),
            r @ None => Ok(r.insert(File::open(&self.path)?)),
        }
    }

    fn refill_from_tail(&mut self) {
        let tail = self.take_tail();
        decode_entries(&tail, usize::MAX, &self.dir, &mut |d| {
            self.charge.add(memory_cost(&d));
            self.head.push_back(d);
        });
    }

    /// Makes the head non-empty if anything is spilled.
    fn refill(&mut self) {
        if !self.head.is_empty() {
            return;
        }
        if self.file_entries > 0 {
            self.refill_from_file(HEAD_ONLINE);
        } else if self.tail_entries > 0 {
            self.refill_from_tail();
        }
    }

    /// Calls `f` on every spilled entry, in order, without consuming them.
    fn for_each_spilled(&self, f: &mut dyn FnMut(&Delivery, bool)) {
        if self.file_entries > 0 {
            let read = match &self.reader {
                Some(file) => self.for_each_in_file(file, f),
                None => File::open(&self.path).and_then(|file| self.for_each_in_file(&file, f)),
            };
            if let Err(e) = read {
                tracing::error!(file = %self.path.display(), "queue spill file unreadable: {e}");
            }
        }
        decode_entries(&self.tail, usize::MAX, &self.dir, &mut |d| f(&d, true));
    }

    /// [`SpillQueue::for_each_spilled`]'s part in the file.
    fn for_each_in_file(&self, file: &File, f: &mut dyn FnMut(&Delivery, bool)) -> io::Result<()> {
        let (mut read_at, mut left) = (self.read_at, self.file_entries);
        while left > 0 {
            let buf = read_chunk(file, read_at, self.written, READ_CHUNK as u64)?;
            let (at, n) = decode_entries(&buf, left, &self.dir, &mut |d| f(&d, true));
            if n == 0 {
                break;
            }
            left -= n;
            read_at += at as u64;
        }
        Ok(())
    }
}

/// Reads about `want` bytes of entries from `read_at` on (at most
/// `READ_CHUNK`, and at least one whole entry).
fn read_chunk(f: &File, read_at: u64, written: u64, want: u64) -> io::Result<Vec<u8>> {
    let want = (written - read_at).min(want).min(READ_CHUNK as u64) as usize;
    let mut buf = vec![0; want];
    f.read_exact_at(&mut buf, read_at)?;
    if let Some(len) = buf.get(..4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize) {
        if len + 4 > buf.len() {
            let mut rest = vec![0; len + 4 - buf.len()];
            f.read_exact_at(&mut rest, read_at + buf.len() as u64)?;
            buf.extend_from_slice(&rest);
        }
    }
    Ok(buf)
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
        if self.in_memory || self.to_head(&d) {
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
        self.refill();
        self.sync_disk();
        let d = self.head.pop_front()?;
        self.charge.sub(memory_cost(&d));
        Some(d)
    }

    fn front(&mut self) -> Option<&Delivery> {
        self.refill();
        self.sync_disk();
        self.head.front()
    }

    fn room(&self, d: &Delivery) -> Result<(), Full> {
        if self.to_head(d) {
            Ok(())
        } else if self.in_memory {
            Err(Full::Memory)
        } else {
            self.dir.disk_room(self.disk_bytes(), spilled_size(d)).map_err(Full::Disk)
        }
    }

    fn for_each(&self, f: &mut dyn FnMut(&Delivery, bool)) {
        for d in &self.head {
            f(d, false);
        }
        self.for_each_spilled(f);
    }

    fn len(&self) -> usize {
        self.head.len() + self.spilled()
    }

    fn take_where(&mut self, pred: &mut dyn FnMut(&Delivery) -> bool) -> Vec<Delivery> {
        // Rotates the queue once: kept entries go to the back in order.
        let mut taken = Vec::new();
        for _ in 0..self.len() {
            let Some(d) = self.pop_front() else { break };
            if pred(&d) {
                taken.push(d);
            } else {
                self.push_back(d);
            }
        }
        taken
    }

    fn set_online(&mut self, online: bool) {
        self.online = online;
        if !online {
            self.reader = None;
        }
        if !online && !self.in_memory && self.spilled() == 0 && !self.head.is_empty() {
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
        if self.written > 0 {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
#[path = "spill_tests.rs"]
mod tests;
