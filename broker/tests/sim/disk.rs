//! A failing disk over the simulated one: while the scheduler says, the
//! log's segment writes fail with ENOSPC (after writing a random prefix of
//! the buffer, as a full disk may) and its fdatasyncs with EIO (nothing
//! synced), and opening a new segment fails now and then; then the disk
//! recovers. Everything else, and everything while it works, goes to the
//! [`PowerLossFs`] underneath, so power cuts still keep only what was
//! synced. What the writer must do meanwhile: ARCHITECTURE.md, "When the
//! disk fails".
//!
//! The spill queues' scratch files fail on their own switch
//! ([`Switch::spill_hook`], through `SpillIo::inject_faults`): writes with
//! ENOSPC after a random prefix (the chunk stays in memory, the queue
//! starts a new file), reads with EIO (the queue is held up by the chunk,
//! its entries counted in `SpillDir::unreadable`, until a read succeeds;
//! a whole-queue walk gives it up, and the log brings it back after a
//! restart).

use std::io::{self, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use edgemq::store::fs::{Fs, SegmentFile};
use edgemq::store::powerloss::{PowerLossFs, Rng};
use edgemq::store::spill_io::{FaultHook, SpillOp};

/// Which operations fail while the disk is failing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Writes (ENOSPC), a prefix written first.
    Writes,
    /// fdatasync (EIO).
    Syncs,
    /// A failing card: each write or sync fails or not, at random (so a
    /// round may get through).
    Intermittent,
}

/// Which spill-file operations fail while the spill switch is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpillFault {
    Writes,
    Reads,
    /// Each write or read fails or not, at random.
    Intermittent,
}

#[derive(Debug)]
struct Faults {
    on: Option<Fault>,
    spill: Option<SpillFault>,
    rng: Rng,
    /// Operations failed, for the report.
    failed: u64,
    /// Spill writes and reads asked, and failed.
    spill_ops: u64,
    spill_failed: u64,
}

/// The switch the scheduler holds; shared with every [`FlakyFs`] of a run.
#[derive(Debug, Clone)]
pub struct Switch(Arc<Mutex<Faults>>);

impl Switch {
    pub fn new(seed: u64) -> Switch {
        Switch(Arc::new(Mutex::new(Faults {
            on: None,
            spill: None,
            rng: Rng::new(seed),
            failed: 0,
            spill_ops: 0,
            spill_failed: 0,
        })))
    }

    fn lock(&self) -> MutexGuard<'_, Faults> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set(&self, fault: Option<Fault>) {
        self.lock().on = fault;
    }

    pub fn on(&self) -> Option<Fault> {
        self.lock().on
    }

    pub fn failed(&self) -> u64 {
        self.lock().failed
    }

    pub fn set_spill(&self, fault: Option<SpillFault>) {
        self.lock().spill = fault;
    }

    pub fn spill(&self) -> Option<SpillFault> {
        self.lock().spill
    }

    /// Spill writes and reads asked, and failed.
    pub fn spill_figures(&self) -> [u64; 2] {
        let f = self.lock();
        [f.spill_ops, f.spill_failed]
    }

    /// The hook the spill I/O asks before each write and read.
    pub fn spill_hook(&self) -> FaultHook {
        let switch = self.clone();
        Arc::new(move |op| {
            let mut f = switch.lock();
            f.spill_ops += 1;
            let hit = match (f.spill?, op) {
                (SpillFault::Writes, SpillOp::Write(_)) | (SpillFault::Reads, SpillOp::Read) => true,
                (SpillFault::Intermittent, _) => f.rng.chance(50),
                _ => false,
            };
            if !hit {
                return None;
            }
            f.spill_failed += 1;
            trace!("spill {op:?} fails");
            match op {
                SpillOp::Write(len) => Some((f.rng.below(len as u64 + 1) as usize, enospc())),
                SpillOp::Read => Some((0, eio())),
            }
        })
    }

    /// Whether this operation (`write`: a write, else a sync) fails now;
    /// for a write, also how many bytes of `len` reach the disk first.
    fn fails(&self, write: bool, len: usize) -> Option<usize> {
        let mut f = self.lock();
        let hit = match f.on? {
            Fault::Writes => write,
            Fault::Syncs => !write,
            Fault::Intermittent => f.rng.chance(50),
        };
        if !hit {
            return None;
        }
        f.failed += 1;
        Some(if write && len > 0 { f.rng.below(len as u64) as usize } else { 0 })
    }
}

fn enospc() -> io::Error {
    io::Error::from_raw_os_error(28)
}

fn eio() -> io::Error {
    io::Error::from_raw_os_error(5)
}

/// The simulated disk with the switch in front of the log writer's files.
#[derive(Debug)]
pub struct FlakyFs {
    pub inner: PowerLossFs,
    pub switch: Switch,
}

struct FlakyFile {
    inner: Box<dyn SegmentFile>,
    switch: Switch,
}

impl SegmentFile for FlakyFile {
    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        match self.switch.fails(true, buf.len()) {
            Some(prefix) => {
                if prefix > 0 {
                    self.inner.append(&buf[..prefix])?;
                }
                Err(enospc())
            }
            None => self.inner.append(buf),
        }
    }

    fn sync(&mut self) -> io::Result<()> {
        match self.switch.fails(false, 0) {
            Some(_) => Err(eio()),
            None => self.inner.sync(),
        }
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.inner.truncate(len)
    }
}

impl Fs for FlakyFs {
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        // A new segment cannot be made on a full disk (now and then).
        if self.switch.on().is_some() && self.switch.fails(true, 0).is_some() {
            return Err(enospc());
        }
        Ok(Box::new(FlakyFile { inner: self.inner.open_append(path)?, switch: self.switch.clone() }))
    }

    fn sync_dir(&self, dir: &Path) {
        self.inner.sync_dir(dir)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        self.inner.remove(path)
    }

    fn write_synced(&self, path: &Path, fill: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>) -> io::Result<()> {
        self.inner.write_synced(path, fill)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }

    fn set_len(&self, path: &Path, len: u64) -> io::Result<()> {
        self.inner.set_len(path, len)
    }
}
