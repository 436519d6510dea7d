//! The log writer (the `edgemq-log` thread's work, or the caller's with
//! [`Threads::Inline`]): takes the pending records, seals their checksums,
//! writes them into segments (rotating full ones), syncs as the
//! [`SyncMode`] says, publishes the durable LSN, deletes segments a
//! snapshot made obsolete, and retries with backoff while the disk fails.

use super::*;

pub(super) struct Writer {
    pub(super) cfg: LogConfig,
    pub(super) file: Box<dyn SegmentFile>,
    /// The segment being written, and its size.
    pub(super) path: PathBuf,
    pub(super) size: u64,
    pub(super) stats: Arc<LogStats>,
    pub(super) pending: Arc<Pending>,
}

/// Bytes written without a sync while more records keep arriving: one
/// `fdatasync` then covers a whole burst (a snapshot, a flood of
/// publishes) instead of one per batch of pending records.
const SYNC_BYTES: u64 = 4 * 1024 * 1024;
/// Backoff between attempts to write again after a failure.
const RETRY_MIN: std::time::Duration = std::time::Duration::from_millis(100);
const RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(5);

/// What one round of the writer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Turn {
    /// Records written (and synced, by the mode) or segments deleted.
    Wrote,
    /// Nothing was pending.
    Idle,
    /// The log is closed and drained, or the disk failed while closing.
    Done,
}

/// The writer and what it keeps between rounds: run in a loop by the
/// `edgemq-log` thread, or a round at a time by [`Log::write_pending`].
pub(super) struct Rounds {
    writer: Writer,
    durable: watch::Sender<Lsn>,
    _gone: WriterGone,
    /// Buffers for `Pending::take` to swap with its own: kept between
    /// rounds so that appenders find capacity.
    spare: Vec<Vec<u8>>,
    buf: Vec<u8>,
    /// The round's batches (first LSN, framed bytes), kept until they are
    /// durable: a failed write or sync writes them again.
    round: Vec<(Lsn, Vec<u8>)>,
    /// With [`Threads::Inline`]: a failed round is written again at the
    /// caller's next turn instead of in a sleeping retry loop (the caller,
    /// a simulation, decides when the disk recovers and when time passes).
    inline: bool,
    failed: Option<Failed>,
}

/// A round whose write or sync failed, waiting to be written again.
struct Failed {
    /// The segment and size the round started from.
    start: (PathBuf, u64),
    /// Segments the round made.
    created: Vec<PathBuf>,
    /// The round's last LSN.
    last: Lsn,
    errors: u64,
}

impl Rounds {
    pub(super) fn new(writer: Writer, durable: watch::Sender<Lsn>, threads: Threads) -> Rounds {
        let _gone = WriterGone(writer.pending.clone());
        let inline = threads == Threads::Inline;
        Rounds { writer, durable, _gone, spare: Vec::new(), buf: Vec::new(), round: Vec::new(), inline, failed: None }
    }

    /// Rounds until the log is closed and drained (waiting for records
    /// between them), then a last sync.
    pub(super) fn run(mut self) {
        while self.turn(true) != Turn::Done {}
        let _ = self.writer.sync();
    }

    /// One round: deletions asked for, then the pending records (waited
    /// for if `wait`) written, synced and reported durable.
    pub(super) fn turn(&mut self, wait: bool) -> Turn {
        if let Some(f) = self.failed.take() {
            return self.redo_failed(f);
        }
        let w = &mut self.writer;
        // One record per fdatasync with `Always`; else everything pending.
        let one = w.cfg.sync == SyncMode::Always;
        let mut deleted = false;
        if let Some(lsn) = w.pending.take_delete() {
            w.delete_before(lsn);
            deleted = true;
        }
        let Some(mut taken) = w.pending.take(one, wait, &mut self.buf) else {
            // Woken to delete, or closed (a deletion asked before the
            // close is still carried out), or nothing pending.
            if let Some(lsn) = w.pending.take_delete() {
                w.delete_before(lsn);
                deleted = true;
            }
            return match (w.pending.is_closed(), deleted) {
                (true, _) => Turn::Done,
                (false, true) => Turn::Wrote,
                (false, false) => Turn::Idle,
            };
        };
        let start = (w.path.clone(), w.size);
        let mut created = Vec::new();
        let mut unsynced = 0u64;
        // Writes on while records keep arriving: one sync per
        // `SYNC_BYTES`, or when the queue runs dry.
        let mut result = loop {
            let records = taken.last - taken.first + 1;
            w.stats.records_written.fetch_add(records, Ordering::Relaxed);
            unsynced += self.buf.len() as u64;
            seal(&mut self.buf);
            let written = w.write_records(&self.buf, taken.first, &mut created);
            self.round.push((taken.first, std::mem::replace(&mut self.buf, self.spare.pop().unwrap_or_default())));
            if written.is_err() || one || unsynced >= SYNC_BYTES {
                break written;
            }
            match w.pending.take(false, false, &mut self.buf) {
                Some(t) => taken = t,
                None => break written,
            }
        };
        if result.is_ok() {
            result = w.sync();
        }
        if let Err(e) = result {
            if self.inline {
                w.failing(&e);
                self.failed = Some(Failed { start, created, last: taken.last, errors: 1 });
                return Turn::Idle;
            }
            if !w.retry(e, &start, &self.round, &mut created) {
                // Closed while the disk failed: what was not written is
                // not durable and was never acknowledged.
                return Turn::Done;
            }
        }
        self.durable_up_to(taken.last)
    }

    /// Inline: one more attempt at a failed round. While it fails nothing
    /// else is written; a closed log gives up (what was not written was
    /// never acknowledged).
    fn redo_failed(&mut self, mut f: Failed) -> Turn {
        let w = &mut self.writer;
        match w.redo(&f.start, &self.round, &mut f.created) {
            Ok(()) => {
                w.resumed(f.errors);
                self.durable_up_to(f.last)
            }
            Err(e) => {
                w.still_failing(&e, &mut f.errors);
                let closed = w.pending.is_closed();
                self.failed = Some(f);
                if closed {
                    Turn::Done
                } else {
                    Turn::Idle
                }
            }
        }
    }

    /// The round is durable up to `last`: reported, its buffers kept for reuse.
    fn durable_up_to(&mut self, last: Lsn) -> Turn {
        let _ = self.durable.send(last);
        for (_, mut b) in self.round.drain(..) {
            b.clear();
            shed(&mut b);
            if self.spare.len() < 2 {
                self.spare.push(b);
            }
        }
        Turn::Wrote
    }
}

impl Writer {
    /// A write or sync of the round from `start` (segment, size) failed:
    /// the disk is full or failing. Nothing of the round is reported
    /// durable, so no acknowledgement waiting for it leaves (clients
    /// retry; publishers wait for room once `PENDING_BYTES` are pending,
    /// QoS 0 traffic goes on); the writer logs it, then retries with
    /// backoff: undoes the round (segments it made removed, the first cut
    /// back) and writes it again. Returns false if the log was closed
    /// while it failed.
    fn retry(
        &mut self,
        e: io::Error,
        start: &(PathBuf, u64),
        round: &[(Lsn, Vec<u8>)],
        created: &mut Vec<PathBuf>,
    ) -> bool {
        self.failing(&e);
        let mut errors = 1u64;
        let mut backoff = RETRY_MIN;
        loop {
            let until = std::time::Instant::now() + backoff;
            while std::time::Instant::now() < until {
                if self.pending.is_closed() {
                    return false;
                }
                std::thread::sleep(RETRY_MIN.min(until.saturating_duration_since(std::time::Instant::now())));
            }
            backoff = (backoff * 2).min(RETRY_MAX);
            match self.redo(start, round, created) {
                Ok(()) => {
                    self.resumed(errors);
                    return true;
                }
                Err(e) => self.still_failing(&e, &mut errors),
            }
        }
    }

    /// The first failure of a round: logged once, the log marked failing.
    fn failing(&self, e: &io::Error) {
        tracing::error!("log: write failed: {e}; acknowledgements wait until the disk takes writes again");
        self.stats.error(e);
        self.stats.failing.store(true, Ordering::Relaxed);
    }

    /// Another failed attempt: counted, a line at each power-of-two attempt.
    fn still_failing(&self, e: &io::Error, errors: &mut u64) {
        self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
        self.stats.error(e);
        *errors += 1;
        if errors.is_power_of_two() {
            tracing::error!(failed_attempts = *errors, "log: writes still fail: {e}");
        }
    }

    fn resumed(&self, errors: u64) {
        self.stats.failing.store(false, Ordering::Relaxed);
        tracing::warn!(failed_attempts = errors, "log: the disk takes writes again; durability resumed");
    }

    /// Undoes a failed round and writes it again, then syncs.
    fn redo(&mut self, start: &(PathBuf, u64), round: &[(Lsn, Vec<u8>)], created: &mut Vec<PathBuf>) -> io::Result<()> {
        let removed = !created.is_empty();
        while let Some(p) = created.last() {
            match self.cfg.fs.remove(p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            created.pop();
        }
        if removed {
            // The removal made durable: a segment of the failed round that
            // came back after a power cut would follow the first one's
            // unsynced rewrite, and a cut there would look like damage in
            // the middle of the log (inbound QoS 2 ids before it forgotten).
            self.cfg.fs.sync_dir(&self.cfg.dir);
        }
        let mut file = self.cfg.fs.open_append(&start.0)?;
        file.truncate(start.1)?;
        (self.file, self.path, self.size) = (file, start.0.clone(), start.1);
        for (first, b) in round {
            self.write_records(b, *first, created)?;
        }
        self.sync()
    }

    /// Writes framed records whose first LSN is `first`, starting a new
    /// segment after the record that fills the current one.
    fn write_records(&mut self, buf: &[u8], first: Lsn, created: &mut Vec<PathBuf>) -> io::Result<()> {
        let mut from = 0;
        if self.size + buf.len() as u64 >= self.cfg.segment_bytes {
            let (mut at, mut lsn) = (0, first);
            while at < buf.len() {
                at += HEADER + frame_len(&buf[at..]);
                if self.size + (at - from) as u64 >= self.cfg.segment_bytes {
                    // Segment full: finish it and start the next at lsn + 1.
                    self.write(&buf[from..at])?;
                    self.rotate(lsn + 1, created)?;
                    from = at;
                }
                lsn += 1;
            }
        }
        if from < buf.len() {
            self.write(&buf[from..])?;
        }
        Ok(())
    }

    /// Deletes every segment whose records all precede `lsn`, never the
    /// one being written (the last).
    fn delete_before(&mut self, lsn: Lsn) {
        self.delete_segments(lsn);
        self.stats.deletions_done.fetch_add(1, Ordering::Release);
    }

    fn delete_segments(&mut self, lsn: Lsn) {
        let segs = match segments(&self.cfg.dir) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("store: cannot list log segments to delete old ones: {e}");
                return;
            }
        };
        for w in segs.windows(2) {
            if w[1].0 > lsn || w[0].1 == self.path {
                continue;
            }
            let len = fs::metadata(&w[0].1).map_or(0, |m| m.len());
            match self.cfg.fs.remove(&w[0].1) {
                Ok(()) => {
                    // Oldest first, each removal durable before the next: a
                    // power cut leaves a prefix of them done. Unsynced, any
                    // subset could persist, and an older segment back in
                    // front of a gap where a newer one stayed deleted is
                    // what a lost segment looks like to recovery (inbound
                    // QoS 2 ids before it forgotten).
                    self.cfg.fs.sync_dir(&self.cfg.dir);
                    self.stats.bytes_deleted.fetch_add(len, Ordering::Relaxed);
                    self.stats.segments_deleted.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    tracing::warn!(segment = %w[0].1.display(), "store: cannot delete an old log segment: {e}");
                    return;
                }
            }
        }
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file.append(buf)?;
        self.size += buf.len() as u64;
        self.stats.bytes_written.fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        if self.cfg.sync != SyncMode::Never {
            let began = std::time::Instant::now();
            self.file.sync()?;
            self.stats.sync_latency.observe(began.elapsed());
            self.stats.syncs.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    fn rotate(&mut self, first: Lsn, created: &mut Vec<PathBuf>) -> io::Result<()> {
        // The finished segment is made durable before records in the next
        // one can be reported durable.
        self.sync()?;
        let path = self.cfg.dir.join(segment_name(first));
        self.file = self.cfg.fs.open_append(&path)?;
        created.push(path.clone());
        self.path = path;
        self.size = 0;
        self.write(&segment::header(first))?;
        self.cfg.fs.sync_dir(&self.cfg.dir);
        Ok(())
    }
}
