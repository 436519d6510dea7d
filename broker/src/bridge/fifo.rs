//! The durable outgoing queue of one bridge: a first-in first-out file
//! queue in `DATA_DIR/bridge/NAME/`, made of the store's own log
//! (`store::log`: segments, framing, checksums, group commit, repair on
//! open) holding one [`StoredMessage`] per record, and a read cursor
//! (`cursor`: the last LSN the remote acknowledged in order, with a
//! CRC-32), replaced atomically; beside it `released`, the QoS 2 messages
//! after the cursor whose PUBREC came (their LSNs, with a CRC-32), written
//! and synced before their PUBREL is sent, so that after a crash the link
//! sends PUBREL for those, not PUBLISH (which the remote would take as
//! new once it has completed them: a duplicate).
//!
//! Who does what: the router appends ([`Fifo::append`], no I/O, never
//! waits); the log's writer thread writes and syncs; the bridge's link
//! reads with a [`Reader`] (positioned reads of the segments, in
//! `spawn_blocking`), moves the cursor in memory ([`Fifo::set_acked`])
//! and persists it, deleting the segments wholly before it
//! ([`Fifo::persist`], also in `spawn_blocking`). A message is thus
//! written once; after a crash the records after the persisted cursor are
//! sent again (with DUP). Opening replays the segments to count what is
//! queued, holding nothing of them in memory.

use std::collections::HashSet;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::watch;

use crate::store::fs::Fs;
use crate::store::log::{segments, Log, LogConfig, Lsn, SyncMode};
use crate::store::{segment, StoreError, StoredMessage};

/// Segments of a bridge queue: what is deleted at once once acknowledged.
const SEGMENT_BYTES: u64 = 8 * 1024 * 1024;

/// Counters of a bridge (logged now; metrics later).
#[derive(Debug, Default)]
pub struct FifoStats {
    /// Messages the remote acknowledged (or, QoS 0, that were written to it).
    pub forwarded: AtomicU64,
    /// Messages not queued or dropped from the queue by its policy.
    pub dropped: AtomicU64,
    /// Messages the remote refused (reason code 0x80 or more), or too
    /// large for its Maximum Packet Size: logged, counted, not sent again.
    pub rejected: AtomicU64,
}

/// One bridge's queue.
pub struct Fifo {
    dir: PathBuf,
    log: Log,
    /// Every LSN up to this one is done (acknowledged, refused or dropped).
    acked: watch::Sender<Lsn>,
    /// `drop_oldest`: every LSN up to this one is dropped.
    floor: AtomicU64,
    /// The cursor as last written to `cursor`.
    persisted: AtomicU64,
    persisting: AtomicBool,
    /// The last LSN at open: those may have been sent before a crash, so
    /// they go with DUP.
    pub opened_last: Lsn,
    /// `released` as found at open: QoS 2 messages after the cursor the
    /// remote had sent PUBREC for.
    pub opened_released: HashSet<Lsn>,
    /// Bytes of records appended, and of those done.
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    pub stats: FifoStats,
}

impl std::fmt::Debug for Fifo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fifo").field("dir", &self.dir).field("acked", &self.acked()).finish_non_exhaustive()
    }
}

/// LSNs, little-endian, then their CRC-32 (`cursor` holds one, `released` any number).
fn lsns_bytes(lsns: &[Lsn]) -> Vec<u8> {
    let mut b: Vec<u8> = lsns.iter().flat_map(|l| l.to_le_bytes()).collect();
    let sum = crc32fast::hash(&b);
    b.extend_from_slice(&sum.to_le_bytes());
    b
}

/// The LSNs of [`lsns_bytes`]; `None` if the file is missing or damaged.
fn read_lsns(path: &Path) -> Option<Vec<Lsn>> {
    let b = std::fs::read(path).ok()?;
    let (body, sum) = b.split_at_checked(b.len().checked_sub(4)?)?;
    if body.len() % 8 != 0 || crc32fast::hash(body).to_le_bytes() != sum {
        return None;
    }
    Some(body.chunks_exact(8).map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])).collect())
}

/// The persisted cursor; 0 if there is none, or (logged) if it is damaged.
fn read_cursor(path: &Path) -> Lsn {
    match read_lsns(path).as_deref() {
        Some([lsn]) => *lsn,
        None if !path.exists() => 0,
        _ => {
            tracing::warn!(path = %path.display(), "bridge queue: damaged cursor, sending the whole queue again");
            0
        }
    }
}

/// Replaces `dir/name` with `bytes`, synced (written to `name.tmp`, renamed).
fn replace_synced(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    {
        let f = File::create(&tmp)?;
        f.write_all_at(bytes, 0)?;
        f.sync_data()?;
    }
    std::fs::rename(&tmp, dir.join(name))?;
    File::open(dir)?.sync_all()
}

impl Fifo {
    /// Opens (or creates) the queue in `dir`.
    pub fn open(dir: &Path, sync: SyncMode, fs: Arc<dyn Fs>) -> Result<Fifo, StoreError> {
        std::fs::create_dir_all(dir)?;
        let cursor = read_cursor(&dir.join("cursor"));
        let (mut count, mut bytes) = (0u64, 0u64);
        let cfg = LogConfig { dir: dir.join("queue"), segment_bytes: SEGMENT_BYTES, sync, fs };
        let (log, rec) = Log::open(cfg, &mut |lsn, payload| {
            if lsn > cursor {
                count += 1;
                bytes += payload.len() as u64;
            }
            StoredMessage::decode(payload).is_ok()
        })?;
        let last = log.next_lsn() - 1;
        if rec.truncated_bytes > 0 {
            tracing::warn!(dir = %dir.display(), truncated_bytes = rec.truncated_bytes, "bridge queue: repaired damage");
        }
        // A cursor past the log (its segments lost) starts after the log.
        let cursor = cursor.min(last);
        let path = dir.join("released");
        let released = read_lsns(&path).unwrap_or_else(|| {
            if path.exists() {
                tracing::warn!(path = %path.display(), "bridge queue: damaged PUBREC record, QoS 2 in flight sent again as PUBLISH");
            }
            Vec::new()
        });
        let opened_released: HashSet<Lsn> = released.into_iter().filter(|l| *l > cursor).collect();
        tracing::info!(dir = %dir.display(), queued = count, bytes, "bridge queue: opened");
        Ok(Fifo {
            dir: dir.to_owned(),
            log,
            acked: watch::channel(cursor).0,
            floor: AtomicU64::new(cursor),
            persisted: AtomicU64::new(cursor),
            persisting: AtomicBool::new(false),
            opened_last: last,
            opened_released,
            bytes_in: AtomicU64::new(bytes),
            bytes_out: AtomicU64::new(0),
            stats: FifoStats::default(),
        })
    }

    /// Appends a message; its LSN. No I/O, never waits.
    pub fn append(&self, m: &StoredMessage) -> Lsn {
        let mut len = 0;
        let lsn = self.log.append_with(|out| {
            let at = out.len();
            m.encode_into(out);
            len = out.len() - at;
        });
        self.bytes_in.fetch_add(len as u64, Ordering::Relaxed);
        lsn
    }

    /// The last LSN appended.
    pub fn last(&self) -> Lsn {
        self.log.next_lsn() - 1
    }

    pub fn durable(&self) -> watch::Receiver<Lsn> {
        self.log.durable()
    }

    pub fn acked(&self) -> Lsn {
        *self.acked.borrow()
    }

    /// The cursor as last made durable.
    pub fn persisted(&self) -> Lsn {
        self.persisted.load(Ordering::Relaxed)
    }

    pub fn watch_acked(&self) -> watch::Receiver<Lsn> {
        self.acked.subscribe()
    }

    /// Messages queued (appended and not done).
    pub fn depth(&self) -> u64 {
        self.last().saturating_sub(self.acked().max(self.floor.load(Ordering::Relaxed)))
    }

    /// Bytes of the queued records (as encoded in the queue).
    pub fn bytes(&self) -> u64 {
        self.bytes_in.load(Ordering::Relaxed).saturating_sub(self.bytes_out.load(Ordering::Relaxed))
    }

    /// `drop_oldest`: the oldest message not yet read is dropped.
    pub fn drop_oldest(&self) {
        let next = self.floor.load(Ordering::Relaxed).max(self.acked()) + 1;
        self.floor.store(next.min(self.last()), Ordering::Relaxed);
        self.stats.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Records up to this LSN are dropped (`drop_oldest`).
    pub fn floor(&self) -> Lsn {
        self.floor.load(Ordering::Relaxed)
    }

    /// Every LSN up to `lsn` is done; `bytes` of records went with them.
    pub fn set_acked(&self, lsn: Lsn, bytes: u64) {
        self.bytes_out.fetch_add(bytes, Ordering::Relaxed);
        self.acked.send_if_modified(|a| {
            let moved = lsn > *a;
            *a = (*a).max(lsn);
            moved
        });
    }

    /// Writes the cursor if it moved and deletes the segments before it.
    /// Blocking: call it from `spawn_blocking`; one call at a time does
    /// the work ([`Fifo::start_persist`]).
    pub fn persist(&self) -> io::Result<()> {
        let a = self.acked();
        if a <= self.persisted.load(Ordering::Relaxed) {
            return Ok(());
        }
        replace_synced(&self.dir, "cursor", &lsns_bytes(&[a]))?;
        self.persisted.store(a, Ordering::Relaxed);
        // Done by the queue's log writer, after the cursor is durable.
        self.log.delete_before(a + 1);
        Ok(())
    }

    /// Makes `lsns` the QoS 2 messages whose PUBREC came (blocking: call
    /// it from `spawn_blocking`); their PUBREL may go once it returns.
    pub fn persist_released(&self, lsns: &[Lsn]) -> io::Result<()> {
        replace_synced(&self.dir, "released", &lsns_bytes(lsns))
    }

    /// Claims the right to run [`Fifo::persist`]; [`Fifo::end_persist`] gives it back.
    pub fn start_persist(&self) -> bool {
        self.acked() > self.persisted.load(Ordering::Relaxed)
            && self.persisting.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    pub fn end_persist(&self) {
        self.persisting.store(false, Ordering::Release);
    }

    /// Persists the cursor (if it moved) off the async workers.
    pub fn persist_in_background(self: &Arc<Self>) {
        if !self.start_persist() {
            return;
        }
        let me = self.clone();
        tokio::task::spawn_blocking(move || loop {
            let r = me.persist();
            me.end_persist();
            if let Err(e) = r {
                // The next acknowledgement tries again.
                tracing::warn!(dir = %me.dir.display(), "bridge queue: cannot write the cursor: {e}");
                return;
            }
            // Acknowledgements that came meanwhile found it busy: once more.
            if !me.start_persist() {
                return;
            }
        });
    }

    /// A reader from the record after the cursor.
    pub fn reader(&self) -> Reader {
        Reader::new(self.dir.join("queue"), self.acked().max(self.floor()) + 1)
    }

    /// Writes out what was appended and stops the writer (blocking).
    pub fn close(&self) {
        self.log.close();
    }
}

/// Bytes of the segment a [`Reader`] reads, read ahead in blocks: one
/// `pread` per [`BLOCK`] instead of two per record.
#[derive(Debug, Default)]
struct Block {
    /// The file offset of `bytes[0]`.
    at: u64,
    bytes: Vec<u8>,
}

/// What a [`Reader`] reads from a segment at once.
const BLOCK: usize = 64 * 1024;

impl Block {
    /// The `len` bytes at `off` of `file`, read if not held (a block from
    /// `off` on, or more for a longer record); `None` past the end.
    fn get(&mut self, file: &File, off: u64, len: usize) -> io::Result<Option<&[u8]>> {
        let held = off >= self.at && off + len as u64 <= self.at + self.bytes.len() as u64;
        if !held {
            if len <= BLOCK && self.bytes.capacity() > BLOCK {
                // A longer record made it larger: back to a block's size.
                self.bytes = Vec::new();
            }
            self.bytes.resize(len.max(BLOCK), 0);
            let mut n = 0;
            while n < self.bytes.len() {
                match file.read_at(&mut self.bytes[n..], off + n as u64) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            self.bytes.truncate(n);
            self.at = off;
            if n < len {
                return Ok(None);
            }
        }
        let from = (off - self.at) as usize;
        Ok(Some(&self.bytes[from..from + len]))
    }

    /// Forgets what it holds: the next read goes to the file (what was
    /// read past the durable end may have been half written).
    fn clear(&mut self) {
        self.bytes.clear();
    }
}

/// Reads a bridge queue's records in LSN order from the log's segments
/// (blocking: used in `spawn_blocking`).
#[derive(Debug)]
pub struct Reader {
    dir: PathBuf,
    /// The next LSN wanted.
    next: Lsn,
    /// The segment being read: its first LSN, file and read offset.
    at: Option<(Lsn, File, u64)>,
    block: Block,
}

impl Reader {
    pub fn new(dir: PathBuf, next: Lsn) -> Reader {
        Reader { dir, next, at: None, block: Block::default() }
    }

    /// The next LSN it reads.
    pub fn next(&self) -> Lsn {
        self.next
    }

    /// Skips to `next` if that is further.
    pub fn skip_to(&mut self, next: Lsn) {
        self.next = self.next.max(next);
    }

    /// The frame at `off` of `file` if whole and valid: (LSN, payload).
    fn frame(&mut self, file: &File, off: u64) -> io::Result<Option<(Lsn, Vec<u8>)>> {
        let Some(h) = self.block.get(file, off, segment::FRAME)? else { return Ok(None) };
        let (len, sum, lsn) = segment::fields(h);
        if len > segment::MAX_RECORD {
            return Ok(None);
        }
        let Some(payload) = self.block.get(file, off + segment::FRAME as u64, len)? else { return Ok(None) };
        Ok((segment::crc(lsn, payload) == sum).then(|| (lsn, payload.to_vec())))
    }

    /// Reads up to `max` records (and about `max_bytes`) from the next
    /// one, none after `upto` (the durable end): (LSN, encoded message).
    pub fn read(&mut self, upto: Lsn, max: usize, max_bytes: usize) -> io::Result<Vec<(Lsn, Vec<u8>)>> {
        let mut out = Vec::new();
        let mut bytes = 0;
        // Bytes held from an earlier call are read again once before a
        // frame there is taken for the segment's end.
        let mut fresh = false;
        while self.next <= upto && out.len() < max && bytes < max_bytes {
            if self.at.is_none() {
                let segs = segments(&self.dir)?;
                let Some((first, path)) = segs.iter().rev().find(|(f, _)| *f <= self.next).or(segs.first()) else {
                    break;
                };
                self.next = self.next.max(*first);
                let start = segment::kind(path)?.data_start();
                self.at = Some((*first, File::open(path)?, start));
                self.block.clear();
            }
            let Some((first, file, off)) = self.at.take() else { break };
            let frame = self.frame(&file, off)?;
            self.at = Some((first, file, off));
            let Some((lsn, payload)) = frame else {
                if !fresh {
                    fresh = true;
                    self.block.clear();
                    continue;
                }
                // The end of this segment (or damage the writer's repair
                // will cut at the next open): go on in the next one.
                let later = segments(&self.dir)?.into_iter().find(|(f, _)| *f > first);
                match later {
                    Some((f, _)) if f <= upto => {
                        self.next = self.next.max(f);
                        self.at = None;
                        continue;
                    }
                    _ => break,
                }
            };
            if lsn > upto {
                // Not durable yet: read it again next time, from the file.
                self.block.clear();
                break;
            }
            if let Some((_, _, off)) = &mut self.at {
                *off += (segment::FRAME + payload.len()) as u64;
            }
            if lsn < self.next {
                continue;
            }
            self.next = lsn + 1;
            bytes += payload.len();
            out.push((lsn, payload));
        }
        Ok(out)
    }
}

#[cfg(test)]
#[path = "fifo_tests.rs"]
mod tests;
