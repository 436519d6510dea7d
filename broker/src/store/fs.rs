//! The file-system seam of the log writer: what it does to the disk
//! (open a segment for appending, write, `fdatasync`, sync a directory),
//! behind a trait so tests, benchmarks and the simulation can slow the
//! disk down or make it fail. [`RealFs`] is the broker's; [`SlowSyncFs`]
//! delays every `fdatasync` (an SD card under load); [`FailingFs`] fails
//! writes and syncs while told to (a full or failing card);
//! [`PowerLossFs`](super::powerloss::PowerLossFs) records everything to
//! cut the power at any point (the power-loss tests). Segments deleted
//! after a snapshot go through [`Fs::remove`] too, and so do recovery's
//! repairs (cuts, rewrites, renames, damaged bytes kept aside); recovery
//! reads segments through `std::fs` directly.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A segment file open for appending.
pub trait SegmentFile: Send {
    /// Writes all of `buf` at the end.
    fn append(&mut self, buf: &[u8]) -> io::Result<()>;
    /// `fdatasync`: what was written is on the medium when this returns.
    fn sync(&mut self) -> io::Result<()>;
    /// Cuts the file to `len` bytes (the writer undoing a failed write).
    fn truncate(&mut self, len: u64) -> io::Result<()>;
}

/// What the log writer asks of the file system.
pub trait Fs: Send + Sync + std::fmt::Debug {
    /// Opens (creating it if missing) a segment for appending at its end.
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>>;
    /// Makes a directory's entries (a new segment) durable; best effort.
    fn sync_dir(&self, dir: &Path);
    /// Removes a segment: one the writer made but could not fill, one a
    /// snapshot made obsolete, or an empty one recovery found.
    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
    /// Writes a file anew (created, or emptied) with what `fill` writes,
    /// and syncs it (recovery: damaged bytes kept aside, a segment
    /// rewritten without its damage).
    fn write_synced(&self, path: &Path, fill: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>) -> io::Result<()> {
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(path)?;
        fill(&mut f)?;
        f.sync_all()
    }
    /// Renames a file (recovery: a rewritten segment over the damaged one).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    /// Cuts a file to `len` bytes, without a sync (recovery: a torn or
    /// damaged end cut off; the writer's next sync makes it durable).
    fn set_len(&self, path: &Path, len: u64) -> io::Result<()> {
        OpenOptions::new().write(true).open(path)?.set_len(len)
    }
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

impl SegmentFile for File {
    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        self.write_all(buf)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.sync_data()
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        // Appends go to the (new) end: the file is open with O_APPEND.
        self.set_len(len)
    }
}

impl Fs for RealFs {
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        let mut f = OpenOptions::new().create(true).append(true).open(path)?;
        f.seek(SeekFrom::End(0))?;
        Ok(Box::new(f))
    }

    fn sync_dir(&self, dir: &Path) {
        // Without it a new segment's name may be lost in a power cut.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

/// The real file system with every `fdatasync` taking `delay` longer (a
/// slow SD card): for tests and benchmarks of a broker on a slow disk.
/// The delay can be changed while it runs.
#[derive(Debug, Default)]
pub struct SlowSyncFs {
    delay_ms: Arc<AtomicU64>,
    syncs: Arc<AtomicU64>,
}

impl SlowSyncFs {
    pub fn new(delay: Duration) -> Arc<SlowSyncFs> {
        let fs = SlowSyncFs::default();
        fs.set_delay(delay);
        Arc::new(fs)
    }

    pub fn set_delay(&self, delay: Duration) {
        self.delay_ms.store(delay.as_millis() as u64, Ordering::Relaxed);
    }

    /// `fdatasync` calls so far.
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }
}

struct SlowFile {
    file: Box<dyn SegmentFile>,
    delay_ms: Arc<AtomicU64>,
    syncs: Arc<AtomicU64>,
}

impl SegmentFile for SlowFile {
    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file.append(buf)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(self.delay_ms.load(Ordering::Relaxed)));
        self.file.sync()
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.file.truncate(len)
    }
}

impl Fs for SlowSyncFs {
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        let (delay_ms, syncs) = (self.delay_ms.clone(), self.syncs.clone());
        Ok(Box::new(SlowFile { file: RealFs.open_append(path)?, delay_ms, syncs }))
    }

    fn sync_dir(&self, dir: &Path) {
        RealFs.sync_dir(dir)
    }
}

/// The real file system, with every write, sync and segment creation
/// failing with "no space left on device" while [`FailingFs::set_failing`]
/// says so: for tests of a broker whose disk fills up and frees again. A
/// write that fails while failing writes half of its bytes first, as a
/// full disk does.
#[derive(Debug, Default)]
pub struct FailingFs {
    failing: Arc<std::sync::atomic::AtomicBool>,
    failures: Arc<AtomicU64>,
}

impl FailingFs {
    pub fn new() -> Arc<FailingFs> {
        Arc::new(FailingFs::default())
    }

    pub fn set_failing(&self, on: bool) {
        self.failing.store(on, Ordering::Relaxed);
    }

    /// Operations failed so far.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}

fn full(failures: &AtomicU64) -> io::Error {
    failures.fetch_add(1, Ordering::Relaxed);
    io::Error::new(io::ErrorKind::StorageFull, "no space left on device (FailingFs)")
}

struct FailingFile {
    file: Box<dyn SegmentFile>,
    failing: Arc<std::sync::atomic::AtomicBool>,
    failures: Arc<AtomicU64>,
}

impl SegmentFile for FailingFile {
    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        if self.failing.load(Ordering::Relaxed) {
            self.file.append(&buf[..buf.len() / 2])?;
            return Err(full(&self.failures));
        }
        self.file.append(buf)
    }

    fn sync(&mut self) -> io::Result<()> {
        if self.failing.load(Ordering::Relaxed) {
            return Err(full(&self.failures));
        }
        self.file.sync()
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.file.truncate(len)
    }
}

impl Fs for FailingFs {
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        if self.failing.load(Ordering::Relaxed) {
            return Err(full(&self.failures));
        }
        let (failing, failures) = (self.failing.clone(), self.failures.clone());
        Ok(Box::new(FailingFile { file: RealFs.open_append(path)?, failing, failures }))
    }

    fn sync_dir(&self, dir: &Path) {
        RealFs.sync_dir(dir)
    }
}
