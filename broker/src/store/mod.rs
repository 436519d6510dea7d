//! Durable storage of broker state: persistent sessions (subscriptions,
//! expiry), their queues and in-flight QoS 1/2 messages, inbound QoS 2
//! packet identifiers, and retained messages.
//!
//! Everything is a [`Record`] in one write-ahead [`log`]; state is what
//! [`recover`] folds the records into. Owners append where the state
//! changes: the router (sessions, subscriptions, retained, messages and
//! queue entries) and `SessionState` (what leaves the queue, acks, inbound
//! QoS 2). A snapshot, taken at start and whenever the log outgrows the
//! live state, rewrites what is live and lets older segments go.
//!
//! Queues too long to keep in memory are spilled to scratch files in
//! [`SpillDir`] (see `session::spill`): a copy for memory's sake, never a
//! source of truth, emptied at every start.

mod bodies;
pub mod fs;
pub mod log;
pub mod losses;
pub mod powerloss;
pub mod record;
pub mod recover;
mod repair;
pub mod segment;
pub mod spill_io;
pub mod spool;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;

pub use log::{Log, LogConfig, LogStats, Loss, Lsn, Recovery, SyncMode, Threads};
pub use record::{Record, StoredMessage};
pub use recover::Model;

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Io(#[from] io::Error),
    /// A segment written by a newer release, in a format this one cannot
    /// read: nothing was read or changed.
    #[error(
        "{dir} holds a store of a newer format than this release reads ({segment}: format {format}, \
         created by {created_by}; this release reads formats 0 to {supported}); nothing was changed: \
         run a release that reads it, or move the directory aside"
    )]
    NewerFormat { dir: String, segment: String, format: u16, created_by: String, supported: u16 },
}

/// Where and how to store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub dir: PathBuf,
    /// Scratch directory for spilled queues (emptied at start).
    pub spill_dir: PathBuf,
    pub sync: SyncMode,
    pub segment_bytes: u64,
    /// Take a snapshot when the log is larger than this and than twice the
    /// live state.
    pub compact_bytes: u64,
    /// What the log writer writes through (`fs::RealFs` but in tests).
    pub fs: Arc<dyn fs::Fs>,
}

/// The handle through which state changes are recorded.
pub struct Journal {
    log: Log,
    pub sync: SyncMode,
    pub compact_bytes: u64,
    /// Where persistent sessions spill long queues.
    pub spill: Arc<SpillDir>,
}

/// The scratch directory of spilled queues, and what they share.
#[derive(Debug)]
pub struct SpillDir {
    pub path: PathBuf,
    /// The reference point of message times in spill files.
    pub epoch: Instant,
    /// Bytes encoded but not yet written, over all queues.
    pub buffered: AtomicUsize,
    pub bytes_written: AtomicU64,
    next_file: AtomicU64,
    /// Bytes of spilled entries (in files, or encoded and waiting to be
    /// written), over all queues.
    pub disk_used: AtomicU64,
    /// Limits of spilled bytes: all queues together, and one queue.
    quota: AtomicU64,
    session_quota: AtomicU64,
    /// The file system's free space was below [`reserve`] at the last check.
    low_space: AtomicBool,
    /// A free-space check is running.
    checking: AtomicBool,
    /// The spill thread: every file operation of the queues.
    pub io: spill_io::SpillIo,
    /// Bytes handed to the spill thread and not yet written, and bytes kept
    /// in memory after a failed write ([`spill_io`]).
    pub in_flight: AtomicUsize,
    pub held: AtomicUsize,
    /// [`SpillDir::has_room`] may be true again.
    pub room: tokio::sync::Notify,
    /// Queued entries lost to spill chunks that could not be read back:
    /// the log keeps them (no compaction) until a restart.
    pub unreadable: AtomicU64,
}

/// Completes once `ready` holds, re-checking it each time `notify` wakes
/// its waiters (registered before the check, so no wake-up is missed).
pub(crate) async fn until(notify: &tokio::sync::Notify, ready: impl Fn() -> bool) {
    loop {
        let notified = notify.notified();
        let mut notified = std::pin::pin!(notified);
        notified.as_mut().enable();
        if ready() {
            return;
        }
        notified.await;
    }
}

/// Which disk limit of spilled queues was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskLimit {
    /// `max_queued_disk_bytes`: one queue's spilled bytes.
    Session,
    /// `queue_disk_quota`: all queues' spilled bytes.
    Total,
    /// The file system's free space fell below its reserve.
    FreeSpace,
}

/// Free space the file system keeps for the log and everything else:
/// spilling stops below it (5% of its size, at most 1 GiB).
pub fn reserve(size: u64) -> u64 {
    (size / 20).min(1 << 30)
}

/// Bytes available to us, and the size, of the file system holding `path`.
pub fn free_space(path: &Path) -> io::Result<(u64, u64)> {
    let st = rustix::fs::statvfs(path)?;
    Ok((st.f_bavail.saturating_mul(st.f_frsize), st.f_blocks.saturating_mul(st.f_frsize)))
}

impl SpillDir {
    /// Bytes of encoded entries all queues together may hold in memory
    /// before each push writes its own out.
    pub const BUFFER_BUDGET: usize = 4 * 1024 * 1024;

    /// Creates `path` afresh: whatever an earlier run spilled is a copy of
    /// what the log holds, so it is deleted.
    pub fn create(path: PathBuf) -> io::Result<SpillDir> {
        SpillDir::create_with(path, spill_io::SpillIo::start(), Instant::now())
    }

    /// [`SpillDir::create`] with its file operations run inline, in the
    /// caller (tests that check each step).
    pub fn create_inline(path: PathBuf) -> io::Result<SpillDir> {
        SpillDir::create_with(path, spill_io::SpillIo::inline(), Instant::now())
    }

    fn create_with(path: PathBuf, io: spill_io::SpillIo, epoch: Instant) -> io::Result<SpillDir> {
        match std::fs::remove_dir_all(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        std::fs::create_dir_all(&path)?;
        Ok(SpillDir {
            path,
            epoch,
            buffered: AtomicUsize::new(0),
            unreadable: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            next_file: AtomicU64::new(0),
            disk_used: AtomicU64::new(0),
            quota: AtomicU64::new(u64::MAX),
            session_quota: AtomicU64::new(u64::MAX),
            low_space: AtomicBool::new(false),
            checking: AtomicBool::new(false),
            io,
            in_flight: AtomicUsize::new(0),
            held: AtomicUsize::new(0),
            room: tokio::sync::Notify::new(),
        })
    }

    /// Whether the spill thread is keeping up: QoS 1/2 publishers wait for
    /// [`SpillDir::room`] otherwise.
    pub fn has_room(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) < spill_io::IN_FLIGHT_ROOM
    }

    /// Completes once [`SpillDir::has_room`].
    pub async fn room(&self) {
        until(&self.room, || self.has_room()).await
    }

    /// Whether spilled bytes waiting in memory (written or kept after a
    /// failed write) leave no room for more.
    pub fn memory_full(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) + self.held.load(Ordering::Relaxed) > spill_io::IN_FLIGHT_MAX
    }

    /// Sets the limits of spilled bytes: all queues together, and one queue.
    pub fn set_quotas(&self, total: u64, session: u64) {
        self.quota.store(total, Ordering::Relaxed);
        self.session_quota.store(session, Ordering::Relaxed);
    }

    /// The limits of spilled bytes: all queues together, and one queue.
    pub fn quotas(&self) -> (u64, u64) {
        (self.quota.load(Ordering::Relaxed), self.session_quota.load(Ordering::Relaxed))
    }

    /// Whether a queue that has spilled `queue_bytes` may spill about
    /// `more` bytes more; the limit reached if not.
    pub fn disk_room(&self, queue_bytes: u64, more: u64) -> Result<(), DiskLimit> {
        let (total, session) = self.quotas();
        if queue_bytes.saturating_add(more) > session {
            Err(DiskLimit::Session)
        } else if self.disk_used.load(Ordering::Relaxed).saturating_add(more) > total {
            Err(DiskLimit::Total)
        } else if self.low_space.load(Ordering::Relaxed) {
            Err(DiskLimit::FreeSpace)
        } else {
            Ok(())
        }
    }

    /// Sets what the last free-space check found (tests).
    #[cfg(test)]
    pub fn set_low_space(&self, low: bool) {
        self.low_space.store(low, Ordering::Relaxed);
    }

    /// Claims the next free-space check; `false` while one is running (so
    /// checks on a stalled disk do not pile up).
    pub fn start_space_check(&self) -> bool {
        !self.checking.swap(true, Ordering::AcqRel)
    }

    /// Checks the file system's free space against its [`reserve`]
    /// (blocking: run it off the router and the connections), logging a
    /// change; ends what [`SpillDir::start_space_check`] claimed.
    pub fn check_space(&self) {
        match free_space(&self.path) {
            Ok((free, size)) => {
                let low = free < reserve(size);
                if self.low_space.swap(low, Ordering::Relaxed) != low {
                    if low {
                        tracing::warn!(
                            free,
                            reserve = reserve(size),
                            "data directory nearly full: queues spill no more, the drop policy applies"
                        );
                    } else {
                        tracing::info!(free, "data directory has room again: queues spill again");
                    }
                }
            }
            Err(e) => tracing::warn!(dir = %self.path.display(), "cannot read the free space: {e}"),
        }
        self.checking.store(false, Ordering::Release);
    }

    /// A new file name, never used before in this run.
    pub fn new_file(&self, key: crate::message::SessionKey) -> PathBuf {
        let n = self.next_file.fetch_add(1, Ordering::Relaxed);
        self.path.join(format!("{key}-{n}.q"))
    }

    /// Whether the queues' tails (encoded, not yet handed to the spill
    /// thread) hold more than [`SpillDir::BUFFER_BUDGET`]: `buffered` also
    /// counts chunks being written and kept after a failed write, which
    /// must not make every push write a chunk of its own.
    pub fn over_budget(&self) -> bool {
        let tails = self
            .buffered
            .load(Ordering::Relaxed)
            .saturating_sub(self.in_flight.load(Ordering::Relaxed))
            .saturating_sub(self.held.load(Ordering::Relaxed));
        tails > Self::BUFFER_BUDGET
    }
}

/// How far a log has given out positions (LSNs): what the durability gate
/// of a connection (`session/gate.rs`) reads when it holds a packet, since
/// every record appended before it must be durable first. [`Journal`] is
/// one; tests use a counter.
pub trait LogPosition: Send + Sync + std::fmt::Debug {
    fn appended(&self) -> Lsn;
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").field("appended", &self.appended()).finish_non_exhaustive()
    }
}

impl LogPosition for Journal {
    fn appended(&self) -> Lsn {
        Journal::appended(self)
    }
}

impl Journal {
    pub fn append(&self, r: &Record) -> Lsn {
        self.log.append_with(|out| r.encode_into(out))
    }

    /// The LSN of the last record appended so far.
    pub fn appended(&self) -> Lsn {
        self.log.next_lsn() - 1
    }

    /// Watches the highest durable LSN.
    pub fn durable(&self) -> watch::Receiver<Lsn> {
        self.log.durable()
    }

    /// Whether the log and the spill thread keep up ([`Log::has_room`],
    /// [`SpillDir::has_room`]).
    pub fn has_room(&self) -> bool {
        self.log.has_room() && self.spill.has_room()
    }

    /// See [`Log::wait_room`].
    pub fn wait_room(&self) {
        self.log.wait_room()
    }

    /// Completes once [`Journal::has_room`].
    pub async fn room(&self) {
        while !self.has_room() {
            self.log.room().await;
            self.spill.room().await;
        }
    }

    pub fn disk_bytes(&self) -> u64 {
        self.log.disk_bytes()
    }

    /// See [`Log::delete_before`]: the writer thread deletes them.
    pub fn delete_before(&self, lsn: Lsn) {
        self.log.delete_before(lsn)
    }

    pub fn stats(&self) -> &log::LogStats {
        &self.log.stats
    }

    /// See [`Log::write_pending`]: with [`Threads::Inline`], one round of
    /// the log writer in the caller.
    pub fn write_pending(&self) -> bool {
        self.log.write_pending()
    }

    /// Writes out and syncs everything appended, then stops the writer.
    pub fn close(&self) {
        self.log.close();
    }
}

/// Opens the store in `cfg.dir`, replaying it. A record that does not
/// decode (or names a session key or message id the broker never writes,
/// [`record::MAX_ID`]) is damage, like a bad checksum (see `repair`); every loss is
/// logged with one warning naming the LSNs, the bytes and what they cost.
pub fn open(cfg: &StoreConfig) -> Result<(Journal, Model, Recovery), StoreError> {
    open_with(cfg, Threads::Spawned, &crate::clock::SystemClock)
}

/// [`open`], with the log writer and the spill I/O run as `threads` says
/// and the spill files' time reference read from `clock`.
pub fn open_with(
    cfg: &StoreConfig,
    threads: Threads,
    clock: &dyn crate::clock::Clock,
) -> Result<(Journal, Model, Recovery), StoreError> {
    // Emptied first: recovery keeps its scratch files there too.
    let io = match threads {
        Threads::Spawned => spill_io::SpillIo::start(),
        Threads::Inline => spill_io::SpillIo::inline(),
    };
    let spill = Arc::new(SpillDir::create_with(cfg.spill_dir.clone(), io, clock.now())?);
    let mut replay = recover::Replay::with_scratch(cfg.spill_dir.clone());
    let mut tracker = losses::Tracker::default();
    let log_cfg =
        LogConfig { dir: cfg.dir.clone(), segment_bytes: cfg.segment_bytes, sync: cfg.sync, fs: cfg.fs.clone() };
    let (log, rec) = Log::open_with(log_cfg, threads, &mut |lsn, bytes| match Record::decode(bytes) {
        Ok(r) if r.ids_plausible() => {
            tracker.before(lsn, replay.target(&r));
            replay.apply(r);
            true
        }
        _ => false,
    })?;
    for loss in rec.losses.iter().filter(|l| !l.known) {
        report(loss, tracker.of(loss.from));
    }
    let mut model = replay.finish();
    if rec.lost_up_to > 0 {
        let forgotten = tracker.forget_uncertain_in2(&mut model, rec.lost_up_to);
        if forgotten > 0 {
            tracing::warn!(
                forgotten,
                "store: forgot inbound QoS 2 packet identifiers recorded before lost records (their release may \
                 have been lost): a retransmitted PUBLISH is delivered again rather than dropped"
            );
        }
    }
    Ok((Journal { log, sync: cfg.sync, compact_bytes: cfg.compact_bytes, spill }, model, rec))
}

/// The one warning of a loss.
fn report(loss: &Loss, effect: Option<&losses::Effect>) {
    let (segment, offset) = loss.at.as_ref().map_or((String::new(), 0), |(p, o)| (p.display().to_string(), *o));
    let lost_lsns = if loss.records() == 0 { "none".to_owned() } else { format!("{}..={}", loss.from, loss.to) };
    let queued_lost = effect.map_or(0, |e| e.queued_lost);
    let sessions = effect.map_or(0, |e| e.sessions.len());
    let kept: Vec<String> = loss.kept.iter().map(|p| p.display().to_string()).collect();
    if loss.torn {
        tracing::warn!(
            segment,
            offset,
            bytes = loss.bytes,
            "store: cut off an unfinished record at the end of the log"
        );
    } else if loss.bytes == 0 {
        tracing::warn!(
            lost_lsns,
            lost_records = loss.records(),
            queued_lost,
            sessions,
            "store: records missing from the log"
        );
    } else {
        tracing::warn!(
            segment,
            offset,
            bytes = loss.bytes,
            lost_lsns,
            lost_records = loss.records(),
            queued_lost,
            sessions,
            kept = ?kept,
            "store: damaged records lost; recovery went on at the next intact record"
        );
    }
}
