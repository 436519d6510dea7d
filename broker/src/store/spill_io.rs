//! The spill queues' file I/O, done by one thread (`edgemq-spill`) so that
//! neither the router nor a connection task ever waits for the disk while
//! it holds a session's lock.
//!
//! A queue hands over a [`Chunk`] of encoded entries to be appended to its
//! scratch file ([`SpillIo::write`]) and keeps the bytes until the thread
//! has written them, so they can still be read back from memory; it asks
//! for a written chunk to be read back ([`SpillIo::read`]) and is woken
//! when the bytes are there; it removes a drained file ([`SpillIo::remove`]).
//! Operations run in the order they were asked for, so a read or a removal
//! follows the writes before it. The state of a chunk changes only under
//! its own small lock, which no one holds over I/O.
//!
//! Memory: bytes handed over and not yet written count in
//! [`SpillDir::in_flight`]; past [`IN_FLIGHT_ROOM`] QoS 1/2 publishers wait
//! for the thread (as for the log, [`crate::store::Journal::room`]), past
//! [`IN_FLIGHT_MAX`] (with chunks whose write failed, kept in memory) a
//! queue has no room and its drop policy applies. A failed write is logged
//! (rate-limited) and its chunk kept in memory; the queue starts a new file
//! for what follows, so a disk that has room again is used again.
//!
//! Tests can run the operations inline, in the caller ([`SpillIo::inline`]),
//! and make writes and reads fail ([`SpillIo::inject_faults`]: the
//! deterministic simulation's failing disk).
//! So does a broker whose spill thread died (a panic in an operation, or
//! it could not start): the operation it was in is repaired (a write left
//! half done fails, its chunk kept in memory and its file given no more
//! appends; a read is asked again; a removal is done again), and it and
//! the callers run what is queued in order, with the same record of failed
//! files, so nothing is lost, duplicated or appended after a torn write.

use std::collections::HashSet;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Mutex};

use super::SpillDir;
use crate::ratelimit::RateLimited;

/// Bytes handed to the thread and not yet written beyond which the
/// journal has no room for more QoS 1/2 messages (publishers wait).
pub const IN_FLIGHT_ROOM: usize = 8 * 1024 * 1024;
/// Bytes in flight or kept after a failed write beyond which a spilling
/// queue has no room (its drop policy applies).
pub const IN_FLIGHT_MAX: usize = 32 * 1024 * 1024;

/// Where a chunk is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkState {
    /// Handed to the thread; the bytes are in memory.
    Writing,
    /// On disk; the bytes are not in memory.
    Written,
    /// The write failed: the bytes stay in memory until consumed.
    WriteFailed,
    /// Being read back.
    Reading,
    /// Read back: the bytes are in memory.
    Loaded,
    /// Could not be read back: its entries are lost to this run (the log
    /// still has those of persistent sessions).
    ReadFailed,
}

#[derive(Debug)]
struct ChunkInner {
    bytes: Option<Arc<[u8]>>,
    state: ChunkState,
}

/// A run of encoded entries of one queue, at a known place in its file.
/// It keeps the shared counters of [`SpillDir`] true for its bytes: in
/// `buffered` until written, in `in_flight` while being written, in `held`
/// after a failed write; dropping it releases what it is counted in.
#[derive(Debug)]
pub struct Chunk {
    dir: Arc<SpillDir>,
    len: usize,
    inner: Mutex<ChunkInner>,
}

impl Chunk {
    fn lock(&self) -> std::sync::MutexGuard<'_, ChunkInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The bytes if they are in memory, and the state.
    pub fn get(&self) -> (Option<Arc<[u8]>>, ChunkState) {
        let g = self.lock();
        (g.bytes.clone(), g.state)
    }

    /// Claims the chunk for a read; false if it is in memory or being read.
    fn start_read(&self) -> bool {
        let mut g = self.lock();
        match g.state {
            ChunkState::Written | ChunkState::ReadFailed if g.bytes.is_none() => {
                g.state = ChunkState::Reading;
                true
            }
            _ => false,
        }
    }

    /// The write is done (`ok`) or failed.
    fn written(&self, ok: bool) {
        let mut g = self.lock();
        if g.state != ChunkState::Writing {
            return;
        }
        self.dir.in_flight.fetch_sub(self.len, Ordering::Relaxed);
        if ok {
            g.bytes = None;
            g.state = ChunkState::Written;
            self.dir.buffered.fetch_sub(self.len, Ordering::Relaxed);
            self.dir.bytes_written.fetch_add(self.len as u64, Ordering::Relaxed);
        } else {
            g.state = ChunkState::WriteFailed;
            self.dir.held.fetch_add(self.len, Ordering::Relaxed);
        }
    }

    /// Gives the bytes of a chunk read back (and still on disk) up, for a
    /// snapshot's walk that does not need them any more.
    pub fn evict(&self) {
        let mut g = self.lock();
        if g.state == ChunkState::Loaded {
            (g.bytes, g.state) = (None, ChunkState::Written);
        }
    }

    /// A read that did not happen (the thread died in it): the chunk may
    /// be asked for again.
    fn unclaim(&self) {
        let mut g = self.lock();
        if g.state == ChunkState::Reading {
            g.state = ChunkState::Written;
        }
    }

    fn read(&self, bytes: Option<Vec<u8>>) {
        let mut g = self.lock();
        match bytes {
            Some(b) => (g.bytes, g.state) = (Some(b.into()), ChunkState::Loaded),
            None => (g.bytes, g.state) = (None, ChunkState::ReadFailed),
        }
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        let state = self.lock().state;
        match state {
            ChunkState::Writing => {
                self.dir.in_flight.fetch_sub(self.len, Ordering::Relaxed);
                self.dir.buffered.fetch_sub(self.len, Ordering::Relaxed);
            }
            ChunkState::WriteFailed => {
                self.dir.held.fetch_sub(self.len, Ordering::Relaxed);
                self.dir.buffered.fetch_sub(self.len, Ordering::Relaxed);
            }
            _ => {}
        }
    }
}

/// A file of a queue: its path, shared by its chunks and operations.
pub type SpillPath = Arc<Path>;

enum Op {
    /// `at`: the file's length before it (the chunk's offset).
    Write {
        path: SpillPath,
        at: u64,
        chunk: Arc<Chunk>,
    },
    /// `wake` is taken when called.
    Read {
        path: SpillPath,
        at: u64,
        len: usize,
        chunk: Arc<Chunk>,
        wake: Option<Box<dyn FnOnce() + Send>>,
    },
    Remove {
        path: SpillPath,
    },
}

/// Which operation a [`FaultHook`] is asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpillOp {
    /// Appending a chunk of this many bytes.
    Write(usize),
    /// Reading a chunk back.
    Read,
}

/// Decides whether an operation fails: for a write, how many of its bytes
/// reach the file first and the error; for a read, the error.
pub type FaultHook = Arc<dyn Fn(SpillOp) -> Option<(usize, io::Error)> + Send + Sync>;

#[derive(Default)]
struct Faults(Option<FaultHook>);

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Faults(injected)" } else { "Faults(none)" })
    }
}

/// What the I/O side remembers: failures to log, and files a write failed
/// on (nothing more is appended to them: their length is unknown).
#[derive(Debug, Default)]
struct IoState {
    failures: RateLimited,
    poisoned: HashSet<SpillPath>,
    /// Injected failures (tests, the simulation).
    faults: Faults,
    /// Tests: the next write panics half done.
    #[cfg(test)]
    panic_next_write: bool,
}

/// What the thread and the callers share: the queue of operations, the
/// record of failed files, and whether the thread still runs them.
struct Shared {
    rx: Mutex<mpsc::Receiver<Op>>,
    state: Mutex<IoState>,
    alive: std::sync::atomic::AtomicBool,
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, IoState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs what is queued, in the caller (no thread runs it).
    fn drain(&self) {
        let rx = self.rx.lock().unwrap_or_else(|e| e.into_inner());
        while let Ok(op) = rx.try_recv() {
            run_guarded(op, self);
        }
    }

    /// The thread: operations until the handle is gone, or one panics.
    fn serve(&self) {
        loop {
            let op = match self.rx.lock().unwrap_or_else(|e| e.into_inner()).recv() {
                Ok(op) => op,
                Err(_) => return,
            };
            if !run_guarded(op, self) {
                // What is queued and what comes runs in the callers now.
                self.alive.store(false, Ordering::SeqCst);
                self.drain();
                return;
            }
        }
    }
}

/// Runs `op`; after a panic in it, repairs what it left and returns false.
fn run_guarded(mut op: Op, shared: &Shared) -> bool {
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&mut op, &mut shared.state())));
    if ran.is_ok() {
        return true;
    }
    tracing::error!("the spill thread failed; spill files are handled inline from now on");
    match op {
        Op::Write { path, chunk, .. } => {
            // Its length is unknown now: kept in memory, no more appends.
            shared.state().poisoned.insert(path);
            chunk.written(false);
        }
        Op::Read { chunk, wake, .. } => {
            chunk.unclaim();
            if let Some(wake) = wake {
                wake();
            }
        }
        Op::Remove { path } => {
            let _ = std::fs::remove_file(&path);
        }
    }
    false
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpillIo").field("thread", &self.alive.load(Ordering::Relaxed)).finish_non_exhaustive()
    }
}

/// The handle to the spill thread (or, for tests, inline I/O).
#[derive(Debug)]
pub struct SpillIo {
    tx: mpsc::Sender<Op>,
    shared: Arc<Shared>,
}

impl SpillIo {
    /// Starts the thread; it ends when the handle is dropped and what was
    /// asked is done. If it cannot start, operations run inline.
    pub fn start() -> SpillIo {
        let io = SpillIo::inline();
        io.shared.alive.store(true, Ordering::SeqCst);
        let shared = io.shared.clone();
        let spawned = std::thread::Builder::new().name("edgemq-spill".into()).spawn(move || shared.serve());
        if let Err(e) = spawned {
            io.shared.alive.store(false, Ordering::SeqCst);
            tracing::warn!("cannot start the spill thread, spill files are written inline: {e}");
        }
        io
    }

    /// Runs every operation in the caller (tests: deterministic).
    pub fn inline() -> SpillIo {
        let (tx, rx) = mpsc::channel::<Op>();
        let shared =
            Shared { rx: Mutex::new(rx), state: Mutex::default(), alive: std::sync::atomic::AtomicBool::new(false) };
        SpillIo { tx, shared: Arc::new(shared) }
    }

    fn submit(&self, op: Op) {
        // The receiver lives as long as `shared`: the send does not fail.
        let _ = self.tx.send(op);
        // Checked after the send: a thread that dies runs what it finds
        // queued, the callers what comes after.
        if !self.shared.alive.load(Ordering::SeqCst) {
            self.shared.drain();
        }
    }

    /// Whether the thread runs the operations (not the callers).
    pub fn threaded(&self) -> bool {
        self.shared.alive.load(Ordering::SeqCst)
    }

    /// Tests: the thread's next write panics after writing half its bytes.
    #[cfg(test)]
    pub fn panic_next_write(&self) {
        self.shared.state().panic_next_write = true;
    }

    /// Tests and the simulation: every write and read asks `hook` first
    /// whether it fails (the blocking reads of [`read_now`] do not).
    pub fn inject_faults(&self, hook: FaultHook) {
        self.shared.state().faults = Faults(Some(hook));
    }

    /// Hands `bytes` (counted in `dir.buffered` by the caller) over to be
    /// appended to `path`, `at` bytes long by then (0: a new file); the
    /// chunk keeps them until they are written. A file of another length
    /// (removed or changed under the queue) fails the write: the queue's
    /// chunks are never read back from bytes it did not write there.
    pub fn write(dir: &Arc<SpillDir>, path: &SpillPath, at: u64, bytes: Vec<u8>) -> Arc<Chunk> {
        let len = bytes.len();
        dir.in_flight.fetch_add(len, Ordering::Relaxed);
        let chunk = Arc::new(Chunk {
            dir: dir.clone(),
            len,
            inner: Mutex::new(ChunkInner { bytes: Some(bytes.into()), state: ChunkState::Writing }),
        });
        dir.io.submit(Op::Write { path: path.clone(), at, chunk: chunk.clone() });
        chunk
    }

    /// Asks for `len` bytes at `at` of `path` to be read into `chunk`
    /// (unless it is in memory or being read); `wake` is called when they
    /// are (or the read failed). Inline, done when this returns.
    pub fn read(&self, path: &SpillPath, at: u64, len: usize, chunk: &Arc<Chunk>, wake: Box<dyn FnOnce() + Send>) {
        if chunk.start_read() {
            self.submit(Op::Read { path: path.clone(), at, len, chunk: chunk.clone(), wake: Some(wake) });
        }
    }

    /// Removes a drained file, after everything asked before.
    pub fn remove(&self, path: &SpillPath) {
        self.submit(Op::Remove { path: path.clone() });
    }
}

/// Reads `len` bytes at `at` of `path`, in the caller (the blocking paths:
/// snapshots, rotations of a whole queue).
pub fn read_now(path: &Path, at: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; len];
    std::fs::File::open(path)?.read_exact_at(&mut buf, at)?;
    Ok(buf)
}

fn run(op: &mut Op, st: &mut IoState) {
    match op {
        Op::Write { path, at, chunk } => {
            let Some(bytes) = chunk.get().0 else { return };
            let fault = st.faults.0.as_ref().and_then(|hook| hook(SpillOp::Write(bytes.len())));
            let result = if st.poisoned.contains(&*path) {
                Err(io::Error::other("an earlier write to this file failed"))
            } else {
                OpenOptions::new().create(*at == 0).append(true).open(&*path).and_then(|mut f| {
                    let found = f.metadata()?.len();
                    if found != *at {
                        return Err(io::Error::other(format!("{found} bytes, {at} expected: changed under the queue")));
                    }
                    #[cfg(test)]
                    if std::mem::take(&mut st.panic_next_write) {
                        let _ = f.write_all(&bytes[..bytes.len() / 2]);
                        panic!("test: the spill thread dies in a write");
                    }
                    match fault {
                        Some((prefix, e)) => {
                            f.write_all(&bytes[..prefix.min(bytes.len())])?;
                            Err(e)
                        }
                        None => f.write_all(&bytes),
                    }
                })
            };
            chunk.written(result.is_ok());
            if let Err(e) = result {
                st.poisoned.insert(path.clone());
                if let Some(n) = st.failures.event(std::time::Instant::now()) {
                    tracing::error!(
                        file = %path.display(),
                        failed_writes = n,
                        "queue spill file cannot be written, keeping its entries in memory: {e}"
                    );
                }
            }
            if chunk.dir.has_room() {
                chunk.dir.room.notify_waiters();
            }
        }
        Op::Read { path, at, len, chunk, wake } => {
            let fault = st.faults.0.as_ref().and_then(|hook| hook(SpillOp::Read));
            match fault.map_or_else(|| read_now(path, *at, *len), |(_, e)| Err(e)) {
                Ok(b) => chunk.read(Some(b)),
                Err(e) => {
                    tracing::error!(file = %path.display(), "queue spill file unreadable: {e}");
                    chunk.read(None);
                }
            }
            if let Some(wake) = wake.take() {
                wake();
            }
        }
        Op::Remove { path } => {
            st.poisoned.remove(&*path);
            let _ = std::fs::remove_file(&**path);
        }
    }
}
