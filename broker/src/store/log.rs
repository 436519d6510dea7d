//! The write-ahead log: an append-only sequence of records in segment
//! files, each record framed with its length, a CRC-32 and its sequence
//! number (LSN), written by one thread with group commit.
//!
//! Segment file: a header (magic, format version, the release that
//! created it; see `segment`), then frames `len: u32 LE | crc: u32 LE |
//! lsn: u64 LE | payload[len]`, where `crc` covers `lsn` and `payload`.
//! Segments are named after the LSN of their first record; LSNs grow
//! through the log (gaps are records lost to damage). The header is
//! written once per segment, so records cost what they did. On open,
//! `repair` reads every segment and costs damage only what is damaged: it
//! resynchronises on the next intact frame, keeps the damaged bytes in
//! `damaged/` and repairs the segment; a segment of a newer format stops
//! the open before anything is changed.
//!
//! Durability: appenders get an LSN at once and frame their record in
//! place in one pending buffer; the writer thread swaps it out, fills in
//! the checksums and writes everything pending, and goes on writing while
//! more keeps arriving (up to 4 MiB), then (by [`SyncMode`]) calls
//! `fdatasync` once for the whole burst and publishes the durable LSN,
//! which acknowledgements wait for. With `Always`, every record gets its
//! own `fdatasync`.
//!
//! The deterministic simulation opens the log with [`Threads::Inline`]:
//! no thread, the same writer code run one round at a time by
//! [`Log::write_pending`], when the simulation's scheduler decides; a
//! round that fails there is written again at the next call (no sleeping
//! retry loop: the simulation decides when the disk recovers).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use tokio::sync::{watch, Notify};

use super::fs::{Fs, SegmentFile};
use super::repair::{self, Opened};
use super::segment::{self, HEADER_LEN};
use super::StoreError;

/// A record's sequence number; 0 means "nothing".
pub type Lsn = u64;

/// A frame's header.
const HEADER: usize = segment::FRAME;

/// When written records are made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    /// `fdatasync` after every record, before anything that depends on it.
    Always,
    /// Group commit: one `fdatasync` covers every record written since the
    /// previous one; waiters are released together.
    #[default]
    Batch,
    /// Never sync: records survive a process crash, not a power cut.
    Never,
}

/// Log settings.
#[derive(Debug, Clone)]
pub struct LogConfig {
    pub dir: PathBuf,
    pub segment_bytes: u64,
    pub sync: SyncMode,
    /// What the writer writes through (`RealFs`; a slow or failing disk in tests).
    pub fs: Arc<dyn Fs>,
}

/// What opening the log found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    pub records: u64,
    pub segments: usize,
    /// Segments of format 0 (no header) that were read.
    pub headerless_segments: usize,
    /// Bytes removed from the segments: torn tails cut off, damaged
    /// ranges cut out (and kept in `moved_aside`).
    pub truncated_bytes: u64,
    /// Files written aside with damaged bytes (`damaged/`).
    pub moved_aside: Vec<PathBuf>,
    /// Records lost, one entry per damaged range or gap in the LSNs.
    pub losses: Vec<Loss>,
    /// The highest LSN lost to damage, found now or kept aside in
    /// `damaged/` by an earlier recovery (0: none); torn tails, and damage
    /// confined to the end of the last segment (what a power cut leaves of
    /// unsynced writes), aside.
    pub lost_up_to: Lsn,
}

/// Records lost to one damaged range (or missing from the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loss {
    /// The LSNs lost, `from..=to` (none if `to < from`: damaged bytes
    /// between two records that follow on).
    pub from: Lsn,
    pub to: Lsn,
    /// Damaged bytes, and where they began (segment, offset); no bytes: a
    /// gap in the LSNs (a missing segment, or an earlier repair).
    pub bytes: u64,
    pub at: Option<(PathBuf, u64)>,
    /// An unfinished last frame (a write a crash interrupted), cut off.
    pub torn: bool,
    /// A gap an earlier recovery already reported and kept the bytes of.
    pub known: bool,
    /// Where the damaged bytes were kept.
    pub kept: Vec<PathBuf>,
}

impl Loss {
    /// The number of records lost.
    pub fn records(&self) -> u64 {
        self.to.saturating_add(1).saturating_sub(self.from)
    }
}

/// Counters of the writer (for metrics and the write-amplification report).
#[derive(Debug, Default)]
pub struct LogStats {
    pub bytes_written: AtomicU64,
    pub records_written: AtomicU64,
    pub syncs: AtomicU64,
    /// Whether writes are failing now (disk full or failing): nothing
    /// becomes durable until they succeed again.
    pub failing: std::sync::atomic::AtomicBool,
    /// Failed attempts to write again.
    pub write_errors: AtomicU64,
    /// Segments deleted (made obsolete by a snapshot), and their bytes.
    pub segments_deleted: AtomicU64,
    pub bytes_deleted: AtomicU64,
    /// Requests of [`Log::delete_before`] the writer has carried out.
    pub deletions_done: AtomicU64,
    /// Records appended (by the router and the sessions).
    pub appends: AtomicU64,
    /// How long each `fdatasync` took.
    pub sync_latency: crate::metrics::Histogram,
    /// The last write or sync error and when (written by the log thread
    /// only when one happens, read by the admin API).
    pub last_error: std::sync::Mutex<Option<(std::time::SystemTime, String)>>,
}

impl LogStats {
    fn error(&self, e: &io::Error) {
        let mut last = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
        *last = Some((std::time::SystemTime::now(), e.to_string()));
    }
}

/// Bytes of framed records waiting for the writer beyond which the log has
/// no room ([`Log::has_room`]): publishers then wait (asynchronously, in
/// their connection's task) before handing the router more QoS 1/2
/// messages, so a slow disk slows producers instead of growing memory.
/// Appends themselves never wait: a thread that appends (the router, a
/// connection holding its session's lock) never blocks on the disk.
const PENDING_BYTES: usize = 1024 * 1024;

/// The pending buffer and the writer's are released above this size once
/// the log is quiet, so it holds no burst-sized buffers.
const KEEP_BUFFER: usize = 64 * 1024;

/// Records appended and not yet taken by the writer, framed in place in
/// one byte buffer, oldest first: an append allocates nothing and the
/// writer swaps the whole buffer for its empty one.
#[derive(Default)]
struct Pending {
    state: Mutex<PendingState>,
    /// Records were added (the writer waits for this).
    added: Condvar,
    /// There is room again, or the writer stopped (publishers wait for
    /// this, asynchronously).
    room: Notify,
    /// The pending buffer's length, readable without the lock.
    len: std::sync::atomic::AtomicUsize,
}

#[derive(Default)]
struct PendingState {
    /// The LSN the next append gets.
    next: Lsn,
    /// Framed records with consecutive LSNs, `first` to `last`.
    buf: Vec<u8>,
    first: Lsn,
    last: Lsn,
    /// No more records will come ([`Log::close`]).
    closed: bool,
    /// The writer stopped: appenders must not wait for it.
    writer_gone: bool,
    /// The writer is waiting for records: the next append wakes it (and
    /// only then, as a wake-up is a system call).
    writer_waiting: bool,
    /// Segments whose records all precede this LSN are to be deleted by
    /// the writer ([`Log::delete_before`]; 0: none asked).
    delete_before: Lsn,
}

/// Records the writer took: their LSNs run from `first` to `last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Taken {
    first: Lsn,
    last: Lsn,
}

impl Pending {
    fn new(next: Lsn) -> Pending {
        let p = Pending::default();
        p.lock().next = next;
        p
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PendingState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Gives the next LSN to a record that `fill` encodes, framed in place;
    /// never waits. After close, or with the writer gone, the record is
    /// lost (its LSN still used), exactly as in a crash at this moment.
    fn push(&self, fill: impl FnOnce(&mut Vec<u8>)) -> Lsn {
        let mut st = self.lock();
        let lsn = st.next;
        if st.closed || st.writer_gone {
            st.next += 1;
            return lsn;
        }
        let at = st.buf.len();
        let frame = Unfinished { buf: &mut st.buf, at };
        frame.buf.extend_from_slice(&[0; HEADER]);
        frame.buf[at + 8..at + HEADER].copy_from_slice(&lsn.to_le_bytes());
        fill(frame.buf);
        // The checksum is left to the writer ([`seal`]), off the appenders' path.
        let len = (frame.buf.len() - at - HEADER) as u32;
        frame.buf[at..at + 4].copy_from_slice(&len.to_le_bytes());
        std::mem::forget(frame);
        // Only a complete frame takes the LSN.
        st.next += 1;
        if at == 0 {
            st.first = lsn;
        }
        st.last = lsn;
        self.len.store(st.buf.len(), Ordering::Relaxed);
        if st.writer_waiting {
            st.writer_waiting = false;
            self.added.notify_one();
        }
        lsn
    }

    fn next(&self) -> Lsn {
        self.lock().next
    }

    /// Takes the pending records into `out` (which must be empty): all of
    /// them, or with `one` only the oldest. If none are pending, waits for
    /// them when `wait` is set. `None` when waiting means closed and
    /// drained or a deletion was asked for ([`Pending::take_delete`]),
    /// otherwise that the queue ran dry.
    fn take(&self, one: bool, wait: bool, out: &mut Vec<u8>) -> Option<Taken> {
        let mut st = self.lock();
        shed(&mut st.buf);
        while st.buf.is_empty() {
            if st.closed || !wait || st.delete_before != 0 {
                return None;
            }
            st.writer_waiting = true;
            st = self.added.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        st.writer_waiting = false;
        let was_full = st.buf.len() >= PENDING_BYTES;
        let first = st.first;
        let taken = if one {
            let n = HEADER + frame_len(&st.buf);
            out.extend_from_slice(&st.buf[..n]);
            st.buf.drain(..n);
            st.first += 1;
            Taken { first, last: first }
        } else {
            std::mem::swap(out, &mut st.buf);
            Taken { first, last: st.last }
        };
        self.len.store(st.buf.len(), Ordering::Relaxed);
        if was_full {
            self.room.notify_waiters();
        }
        Some(taken)
    }

    fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// The deletion asked for since the last call, if any.
    fn take_delete(&self) -> Option<Lsn> {
        let lsn = std::mem::take(&mut self.lock().delete_before);
        (lsn != 0).then_some(lsn)
    }

    /// Asks the writer to delete the segments before `lsn`.
    fn ask_delete(&self, lsn: Lsn) {
        let mut st = self.lock();
        st.delete_before = st.delete_before.max(lsn);
        if st.writer_waiting {
            st.writer_waiting = false;
            self.added.notify_one();
        }
    }

    fn close(&self) {
        let mut st = self.lock();
        st.closed = true;
        st.writer_waiting = false;
        self.added.notify_all();
    }
}

/// A frame being encoded at the end of the pending buffer: if encoding
/// panicked, dropping this cuts it off, so neither the records before it
/// nor the LSN sequence are damaged (the lock's poisoning is ignored).
struct Unfinished<'a> {
    buf: &'a mut Vec<u8>,
    at: usize,
}

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        self.buf.truncate(self.at);
    }
}

/// Releases an empty buffer above `KEEP_BUFFER`: the log is quiet, and a
/// burst-sized buffer is not kept for the next burst.
fn shed(buf: &mut Vec<u8>) {
    if buf.is_empty() && buf.capacity() > KEEP_BUFFER {
        *buf = Vec::new();
    }
}

/// The payload length in the frame header at the start of `b`.
fn frame_len(b: &[u8]) -> usize {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize
}

/// Fills in the checksum of every frame in `buf`: it covers the LSN and
/// the payload, which follow each other.
fn seal(buf: &mut [u8]) {
    let mut at = 0;
    while at < buf.len() {
        let end = at + HEADER + frame_len(&buf[at..]);
        let sum = crc32fast::hash(&buf[at + 8..end]);
        buf[at + 4..at + 8].copy_from_slice(&sum.to_le_bytes());
        at = end;
    }
}

/// Held by the writer thread: when it ends (or panics), appenders stop
/// waiting for it.
struct WriterGone(Arc<Pending>);

impl Drop for WriterGone {
    fn drop(&mut self) {
        self.0.lock().writer_gone = true;
        self.0.len.store(0, Ordering::Relaxed);
        self.0.room.notify_waiters();
    }
}

/// A handle to the log; cheap to share behind an `Arc`.
pub struct Log {
    pending: Arc<Pending>,
    durable: watch::Receiver<Lsn>,
    pub stats: Arc<LogStats>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// With [`Threads::Inline`]: the writer, run by [`Log::write_pending`].
    inline: Mutex<Option<Rounds>>,
    /// Bytes of the segments at open: with the bytes written and deleted
    /// since ([`LogStats`]), the log's size without a `stat`.
    at_open: u64,
}

pub(super) fn segment_name(first: Lsn) -> String {
    format!("{first:020}.log")
}

pub(crate) fn segments(dir: &Path) -> io::Result<Vec<(Lsn, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        // LSNs start at 1; anything else is not one of our segments.
        let first = name.strip_suffix(".log").and_then(|n| n.parse::<Lsn>().ok());
        if let Some(first) = first.filter(|f| (1..=segment::MAX_LSN).contains(f)) {
            out.push((first, path));
        }
    }
    out.sort();
    Ok(out)
}

/// Who runs the log writer (and the spill queues' I/O, [`super::open_with`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Threads {
    /// Their own threads (`edgemq-log`, `edgemq-spill`): the broker.
    #[default]
    Spawned,
    /// No thread: the caller runs them ([`Log::write_pending`]; spill I/O
    /// inline, in the queue's caller). For the deterministic simulation.
    Inline,
}

impl Log {
    /// Opens (or creates) the log, replaying every usable record into `f`
    /// in order (`f` answers whether the record decodes: a record that
    /// does not is damage), repairing damage as described in `repair`.
    /// A segment of a newer format refuses the open before anything is
    /// changed.
    pub fn open(cfg: LogConfig, f: &mut dyn FnMut(Lsn, &[u8]) -> bool) -> Result<(Log, Recovery), StoreError> {
        Log::open_with(cfg, Threads::Spawned, f)
    }

    /// [`Log::open`], the writer run as `threads` says.
    pub fn open_with(
        cfg: LogConfig,
        threads: Threads,
        f: &mut dyn FnMut(Lsn, &[u8]) -> bool,
    ) -> Result<(Log, Recovery), StoreError> {
        fs::create_dir_all(&cfg.dir)?;
        let Opened { rec, next: expect, tail } = repair::recover(&cfg.dir, cfg.fs.as_ref(), f)?;
        let (path, size, new) = match tail {
            Some((p, size)) => (p, size, false),
            None => (cfg.dir.join(segment_name(expect)), 0, true),
        };
        let mut file = cfg.fs.open_append(&path)?;
        let size = if new {
            file.append(&segment::header(expect))?;
            HEADER_LEN as u64
        } else {
            size
        };
        cfg.fs.sync_dir(&cfg.dir);
        let (durable_tx, durable) = watch::channel(expect - 1);
        let stats = Arc::new(LogStats::default());
        let pending = Arc::new(Pending::new(expect));
        let writer = Writer { cfg: cfg.clone(), file, path, size, stats: stats.clone(), pending: pending.clone() };
        let rounds = Rounds::new(writer, durable_tx, threads);
        let (handle, inline) = match threads {
            Threads::Spawned => {
                (Some(std::thread::Builder::new().name("edgemq-log".into()).spawn(move || rounds.run())?), None)
            }
            Threads::Inline => (None, Some(rounds)),
        };
        let at_open = segments(&cfg.dir)?.iter().filter_map(|(_, p)| fs::metadata(p).ok()).map(|m| m.len()).sum();
        let log = Log { pending, durable, stats, writer: Mutex::new(handle), inline: Mutex::new(inline), at_open };
        Ok((log, rec))
    }

    /// Appends a record; returns its LSN. Does no I/O and never waits.
    pub fn append(&self, payload: impl AsRef<[u8]>) -> Lsn {
        self.append_with(|out| out.extend_from_slice(payload.as_ref()))
    }

    /// Appends the record `fill` encodes (it appends to the buffer it is
    /// given, in place, under the queue's lock); returns its LSN.
    pub fn append_with(&self, fill: impl FnOnce(&mut Vec<u8>)) -> Lsn {
        // LSNs are given out under the lock that queues the records, so
        // they are queued in LSN order. If the writer thread is gone the
        // broker is stopping; the record is lost exactly as it would be in
        // a crash at this moment.
        self.stats.appends.fetch_add(1, Ordering::Relaxed);
        self.pending.push(fill)
    }

    /// Whether fewer than `PENDING_BYTES` wait for the writer (or it is
    /// gone): producers of records should wait for [`Log::room`] otherwise.
    pub fn has_room(&self) -> bool {
        self.pending.len.load(Ordering::Relaxed) < PENDING_BYTES
    }

    /// Blocks the calling thread until [`Log::has_room`] (or the writer is
    /// gone or closed): for an appender that cannot await, the snapshot
    /// taken at start, whose records would otherwise all wait in memory.
    pub fn wait_room(&self) {
        while !self.has_room() {
            {
                let st = self.pending.lock();
                if st.closed || st.writer_gone {
                    return;
                }
            }
            // With the writer inline, the waiting caller runs it.
            if !self.write_pending() {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
    }

    /// Completes once [`Log::has_room`].
    pub async fn room(&self) {
        super::until(&self.pending.room, || self.has_room()).await
    }

    /// The LSN the next append will get.
    pub fn next_lsn(&self) -> Lsn {
        self.pending.next()
    }

    /// Watches the highest durable LSN.
    pub fn durable(&self) -> watch::Receiver<Lsn> {
        self.durable.clone()
    }

    /// Asks the writer thread to delete every segment whose records all
    /// precede `lsn` (the caller does no file-system call: the router asks
    /// after a snapshot). Done before the writer's next round, or at once
    /// if it is idle; counted in [`LogStats::segments_deleted`], an error
    /// logged by the writer.
    pub fn delete_before(&self, lsn: Lsn) {
        self.pending.ask_delete(lsn);
    }

    /// Total size of the segment files, from counters (no file-system
    /// call: the router asks every second).
    pub fn disk_bytes(&self) -> u64 {
        (self.at_open + self.stats.bytes_written.load(Ordering::Relaxed))
            .saturating_sub(self.stats.bytes_deleted.load(Ordering::Relaxed))
    }

    /// With [`Threads::Inline`]: one round of the writer, in the caller
    /// (deletions asked for, then everything pending written and synced as
    /// the writer thread would); whether it did anything. Does nothing
    /// with the writer on its own thread.
    pub fn write_pending(&self) -> bool {
        match self.inline.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            Some(rounds) => rounds.turn(false) == Turn::Wrote,
            None => false,
        }
    }

    /// Stops the writer after it has written (and, unless `Never`, synced)
    /// everything appended so far.
    pub fn close(&self) {
        self.pending.close();
        if let Some(h) = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = h.join();
        }
        if let Some(rounds) = self.inline.lock().unwrap_or_else(|e| e.into_inner()).take() {
            rounds.run();
        }
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        self.close();
    }
}

#[path = "log_writer.rs"]
mod writer;
use writer::{Rounds, Turn, Writer};

#[cfg(test)]
#[path = "log_tests.rs"]
pub(in crate::store) mod tests;
