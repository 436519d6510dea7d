//! [`PowerLossFs`]: the real file system, recording every write, sync and
//! directory change of the log writer, so that a test can cut the power
//! at any point and leave on disk only what a power cut may leave: for
//! every file, what it held at its last `fdatasync` and then a part of
//! what was written since (a prefix of the unsynced writes with the last
//! one torn at a random byte, or unsynced pages kept or dropped one by
//! one); for every directory entry created or removed since the last sync
//! of its directory, either the old or the new state. Recovery then reads
//! the directory through `std::fs`, as in the broker.
//!
//! Everything the log writes goes through the [`Fs`] seam, recovery's
//! repairs too (so the power may also go while recovery repairs); files
//! count as durable when first touched here (written by an earlier boot's
//! record, or before the test). Directories themselves (`damaged/`) are
//! not modelled: their creation is durable.

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::fs::{Fs, RealFs, SegmentFile};

/// The page size of [`Loss::Pages`].
const PAGE: usize = 4096;

/// What a power cut does to a file's unsynced writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// A prefix of them reaches the medium, the last one torn at a
    /// random byte (a disk that writes in order).
    Torn,
    /// Every unsynced page is kept or lost on its own, and the file's
    /// size is anything from the synced one to the written one (lost
    /// pages read as zeros or the synced bytes).
    Pages,
}

/// A small seeded generator (SplitMix64), so a crash is reproducible from
/// its seed without a dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 if `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[derive(Debug, Clone)]
enum Op {
    Write(Vec<u8>),
    Truncate(u64),
}

#[derive(Debug, Default)]
struct FileState {
    /// What the file held at its last sync.
    synced: Vec<u8>,
    /// What it holds now.
    current: Vec<u8>,
    /// Changes since the last sync, in order.
    unsynced: Vec<Op>,
}

/// A directory entry: the file a name stands for now and at the last sync
/// of its directory (`None`: no such file).
type Entry = (Option<usize>, Option<usize>);

#[derive(Default)]
struct Inner {
    files: Vec<FileState>,
    /// Directory entries touched: what each name is now and at its
    /// directory's last sync.
    names: HashMap<PathBuf, Entry>,
    ops: u64,
    crash_at: u64,
    crashed: bool,
    /// What the probe said when the power went.
    at_crash: Option<u64>,
    probe: Option<Box<dyn Fn() -> u64 + Send>>,
}

impl Inner {
    /// Counts an operation; `false` if the power is (now) off.
    fn tick(&mut self) -> bool {
        if self.crashed {
            return false;
        }
        self.ops += 1;
        if self.ops >= self.crash_at {
            self.cut();
            return false;
        }
        true
    }

    fn cut(&mut self) {
        if !self.crashed {
            self.crashed = true;
            self.at_crash = self.probe.as_ref().map(|p| p());
        }
    }

    /// Points a (tracked) name at a file now.
    fn name(&mut self, path: &Path, id: Option<usize>) {
        if let Some(e) = self.names.get_mut(path) {
            e.0 = id;
        }
    }

    /// The file a name stands for now, its state read from the disk when
    /// first touched (as synced).
    fn track(&mut self, path: &Path) -> Option<usize> {
        if let Some((now, _)) = self.names.get(path) {
            return *now;
        }
        let id = std::fs::read(path).ok().map(|bytes| {
            self.files.push(FileState { synced: bytes.clone(), current: bytes, unsynced: Vec::new() });
            self.files.len() - 1
        });
        self.names.insert(path.to_owned(), (id, id));
        id
    }
}

/// The real file system with power cuts; see the module docs. Cheap to
/// clone (the clones share the record).
#[derive(Clone, Default)]
pub struct PowerLossFs {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for PowerLossFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.lock();
        f.debug_struct("PowerLossFs").field("ops", &st.ops).field("crashed", &st.crashed).finish_non_exhaustive()
    }
}

impl PowerLossFs {
    /// The power goes at the `crash_at`-th operation (open, write, sync,
    /// directory sync, remove; counted from 1): it and every later one
    /// do nothing (and succeed, as the broker could not tell).
    pub fn new(crash_at: u64) -> PowerLossFs {
        let fs = PowerLossFs::default();
        fs.lock().crash_at = crash_at.max(1);
        fs
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Read when the power goes (in the thread of the operation that
    /// meets it): the log's durable LSN, so that what was reported durable
    /// before the cut is known exactly.
    pub fn set_probe(&self, probe: Box<dyn Fn() -> u64 + Send>) {
        self.lock().probe = Some(probe);
    }

    /// Cuts the power now (if it is still on).
    pub fn crash(&self) {
        self.lock().cut();
    }

    pub fn crashed(&self) -> bool {
        self.lock().crashed
    }

    /// Operations so far (while the power was on).
    pub fn ops(&self) -> u64 {
        self.lock().ops
    }

    /// What the probe said when the power went (`None`: no probe yet).
    pub fn probed_at_crash(&self) -> Option<u64> {
        self.lock().at_crash
    }

    /// Leaves on disk what the power cut left, chosen with `rng`: every
    /// file and directory entry touched through this seam rewritten (or
    /// removed). The power must be off.
    pub fn apply_crash(&self, rng: &mut Rng, loss: Loss) -> io::Result<()> {
        let mut st = self.lock();
        st.cut();
        let mut names: Vec<(PathBuf, Entry)> = st.names.iter().map(|(p, s)| (p.clone(), *s)).collect();
        names.sort_by(|a, b| a.0.cmp(&b.0));
        for (path, (now, synced)) in names {
            let id = if now == synced || rng.chance(50) { synced } else { now };
            match id {
                None => match std::fs::remove_file(&path) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                },
                Some(id) => std::fs::write(&path, after_cut(&st.files[id], rng, loss))?,
            }
        }
        Ok(())
    }
}

/// What a file holds after a power cut.
fn after_cut(f: &FileState, rng: &mut Rng, loss: Loss) -> Vec<u8> {
    let mut out = f.synced.clone();
    match loss {
        Loss::Torn => {
            let kept = rng.below(f.unsynced.len() as u64 + 1) as usize;
            for (i, op) in f.unsynced.iter().take(kept).enumerate() {
                match op {
                    Op::Truncate(len) => out.truncate(*len as usize),
                    Op::Write(b) if i + 1 == kept => {
                        let n = rng.below(b.len() as u64 + 1) as usize;
                        out.extend_from_slice(&b[..n]);
                    }
                    Op::Write(b) => out.extend_from_slice(b),
                }
            }
        }
        Loss::Pages => {
            let (old, new) = (&f.synced, &f.current);
            let (lo, hi) = (old.len().min(new.len()), old.len().max(new.len()));
            let len = match rng.below(3) {
                0 => old.len(),
                1 => new.len(),
                _ => lo + rng.below((hi - lo) as u64 + 1) as usize,
            };
            out = (0..len).map(|i| new.get(i).copied().unwrap_or(0)).collect();
            let mut page = 0;
            while page * PAGE < len {
                let range = page * PAGE..((page + 1) * PAGE).min(len);
                let same = old.get(range.clone()) == new.get(range.clone());
                if !same && rng.chance(50) {
                    for i in range {
                        out[i] = old.get(i).copied().unwrap_or(0);
                    }
                }
                page += 1;
            }
        }
    }
    out
}

struct PowerLossFile {
    fs: PowerLossFs,
    id: usize,
    file: Box<dyn SegmentFile>,
}

impl SegmentFile for PowerLossFile {
    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        let mut st = self.fs.lock();
        if !st.tick() {
            return Ok(());
        }
        let f = &mut st.files[self.id];
        f.current.extend_from_slice(buf);
        f.unsynced.push(Op::Write(buf.to_vec()));
        self.file.append(buf)
    }

    fn sync(&mut self) -> io::Result<()> {
        let mut st = self.fs.lock();
        if !st.tick() {
            return Ok(());
        }
        let f = &mut st.files[self.id];
        f.synced.clone_from(&f.current);
        f.unsynced.clear();
        // The real disk is not synced: nothing outlives the test.
        Ok(())
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        let mut st = self.fs.lock();
        if !st.tick() {
            return Ok(());
        }
        let f = &mut st.files[self.id];
        f.current.truncate(len as usize);
        f.unsynced.push(Op::Truncate(len));
        self.file.truncate(len)
    }
}

/// A file handle after the power went: it does nothing.
struct Dead;

impl SegmentFile for Dead {
    fn append(&mut self, _: &[u8]) -> io::Result<()> {
        Ok(())
    }
    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn truncate(&mut self, _: u64) -> io::Result<()> {
        Ok(())
    }
}

impl Fs for PowerLossFs {
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        let mut st = self.lock();
        if !st.tick() {
            return Ok(Box::new(Dead));
        }
        let id = match st.track(path) {
            Some(id) => id,
            None => {
                st.files.push(FileState::default());
                let id = st.files.len() - 1;
                st.name(path, Some(id));
                id
            }
        };
        let file = RealFs.open_append(path)?;
        Ok(Box::new(PowerLossFile { fs: self.clone(), id, file }))
    }

    fn sync_dir(&self, dir: &Path) {
        let mut st = self.lock();
        if !st.tick() {
            return;
        }
        for (path, (now, synced)) in st.names.iter_mut() {
            if path.parent() == Some(dir) {
                *synced = *now;
            }
        }
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut st = self.lock();
        if !st.tick() {
            return Ok(());
        }
        st.track(path);
        st.name(path, None);
        std::fs::remove_file(path)
    }

    fn write_synced(&self, path: &Path, fill: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>) -> io::Result<()> {
        let mut st = self.lock();
        if !st.tick() {
            return Ok(());
        }
        let mut bytes = Vec::new();
        fill(&mut bytes)?;
        std::fs::write(path, &bytes)?;
        // The same file if the name exists (emptied and written), synced;
        // a new name is durable only with its directory.
        let f = FileState { synced: bytes.clone(), current: bytes, unsynced: Vec::new() };
        match st.track(path) {
            Some(id) => st.files[id] = f,
            None => {
                st.files.push(f);
                let id = st.files.len() - 1;
                st.name(path, Some(id));
            }
        }
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.lock();
        if !st.tick() {
            return Ok(());
        }
        let id = st.track(from);
        st.track(to);
        st.name(to, id);
        st.name(from, None);
        std::fs::rename(from, to)
    }

    fn set_len(&self, path: &Path, len: u64) -> io::Result<()> {
        let mut st = self.lock();
        if !st.tick() {
            return Ok(());
        }
        if let Some(id) = st.track(path) {
            let f = &mut st.files[id];
            f.current.truncate(len as usize);
            f.unsynced.push(Op::Truncate(len));
        }
        std::fs::OpenOptions::new().write(true).open(path)?.set_len(len)
    }
}

#[cfg(test)]
#[path = "powerloss_tests.rs"]
mod tests;
