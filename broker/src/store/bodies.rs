//! Message bodies recovered from the log, by `mid`: encoded one after
//! another (each after its length), in an unlinked scratch file with a
//! small write buffer (in memory without one), so a backlog's bodies cost
//! page cache, not RSS.
//!
//! The index is compact because the broker numbers bodies in the order it
//! writes them: a run of up to 64 increasing `mid`s written one after the
//! other is one [`Block`] (its first `mid`, its file offset and bitmasks,
//! under one byte a body), read back by skipping the bodies before the one
//! wanted (from the last one read, as queues are read in order). Bodies
//! that break a run (written again, or out of order) are indexed one by
//! one.

use std::cell::Cell;
use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;

use super::record::StoredMessage;

/// Bodies buffered before they are written to the scratch file.
const BODY_CHUNK: usize = 256 * 1024;
/// `mid`s a block spans.
const SPAN: u64 = 64;

/// Up to [`SPAN`] bodies written one after the other, from `first` on.
#[derive(Debug, Clone, Copy)]
struct Block {
    first: u64,
    /// Offset of the first body.
    offset: u64,
    /// Bit `i`: `first + i` was written here (in order).
    written: u64,
    /// Bit `i`: and is still indexed.
    present: u64,
    /// Bit `i`: marked live by the current prune.
    live: u64,
}

/// Message bodies by `mid`.
#[derive(Debug, Default)]
pub struct Bodies {
    /// The bytes after `flushed` (all of them without a file).
    buf: Vec<u8>,
    file: Option<File>,
    /// Writing to the file failed: it is only read from now on.
    stuck: bool,
    /// Bytes written to the file.
    flushed: u64,
    /// In increasing `first`; every `mid` of a block is below the next's.
    blocks: Vec<Block>,
    /// The last block takes the next body if it follows its last one.
    open: bool,
    /// Bodies indexed one by one (they win over a block's): offset, live.
    single: HashMap<u64, (u64, bool)>,
    /// The last body read: its `mid` and offset.
    cursor: Cell<Option<(u64, u64)>>,
}

impl Bodies {
    /// Bodies kept in a scratch file in `dir`; in memory if it cannot be
    /// created.
    pub fn on_disk(dir: &std::path::Path, n: u64) -> Bodies {
        let path = dir.join(format!("recovery-{n}.tmp"));
        let file = std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&path);
        let _ = std::fs::remove_file(&path);
        match file {
            Ok(f) => Bodies { file: Some(f), ..Bodies::default() },
            Err(e) => {
                tracing::warn!(path = %path.display(), "store: recovery keeps message bodies in memory: {e}");
                Bodies::default()
            }
        }
    }

    fn end(&self) -> u64 {
        self.flushed + self.buf.len() as u64
    }

    pub fn insert(&mut self, mid: u64, m: &StoredMessage) {
        let at = self.end();
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        m.encode_into(&mut self.buf);
        let n = (self.buf.len() - start - 4) as u32;
        self.buf[start..start + 4].copy_from_slice(&n.to_le_bytes());
        self.index(mid, at);
        self.cursor.set(None);
        if self.buf.len() >= BODY_CHUNK {
            self.flush();
        }
    }

    fn index(&mut self, mid: u64, at: u64) {
        let last = self.blocks.last_mut();
        let after = last.as_ref().is_none_or(|b| mid > b.first + u64::from(63 - b.written.leading_zeros()));
        if !after || self.single.contains_key(&mid) {
            // Written again, or out of order.
            if let Some(b) = self.block_mut(mid) {
                b.present &= !(1 << (mid - b.first));
            }
            self.single.insert(mid, (at, false));
            self.open = false;
            return;
        }
        match last {
            Some(b) if self.open && mid - b.first < SPAN => {
                b.written |= 1 << (mid - b.first);
                b.present |= 1 << (mid - b.first);
            }
            _ => {
                self.blocks.push(Block { first: mid, offset: at, written: 1, present: 1, live: 0 });
                self.open = true;
            }
        }
    }

    fn flush(&mut self) {
        let Some(f) = self.file.as_mut().filter(|_| !self.stuck) else { return };
        match f.write_all(&self.buf) {
            Ok(()) => {
                self.flushed += self.buf.len() as u64;
                self.buf.clear();
            }
            Err(e) => {
                // What was written stays readable; the rest stays here.
                tracing::warn!("store: recovery scratch file failed, bodies stay in memory: {e}");
                self.stuck = true;
            }
        }
    }

    fn block_at(&self, mid: u64) -> Option<usize> {
        let i = self.blocks.partition_point(|b| b.first <= mid).checked_sub(1)?;
        (mid - self.blocks[i].first < SPAN).then_some(i)
    }

    fn block_mut(&mut self, mid: u64) -> Option<&mut Block> {
        let i = self.block_at(mid)?;
        self.blocks.get_mut(i)
    }

    /// Bytes `at..at + len`, from the file or the buffer.
    fn read(&self, at: u64, len: usize) -> Option<Vec<u8>> {
        if at >= self.flushed {
            let a = (at - self.flushed) as usize;
            return self.buf.get(a..a + len).map(<[u8]>::to_vec);
        }
        let mut bytes = vec![0; len];
        self.file.as_ref()?.read_exact_at(&mut bytes, at).ok()?;
        Some(bytes)
    }

    fn len_at(&self, at: u64) -> Option<u64> {
        let b = self.read(at, 4)?;
        Some(u64::from(u32::from_le_bytes(b.try_into().ok()?)))
    }

    /// The offset of body `mid`.
    fn offset(&self, mid: u64) -> Option<u64> {
        if let Some((at, _)) = self.single.get(&mid) {
            return Some(*at);
        }
        let b = self.blocks[self.block_at(mid)?];
        let bit = mid - b.first;
        if b.present & (1 << bit) == 0 {
            return None;
        }
        // Skip the bodies before it, from the last one read if it helps.
        let (mut i, mut at) = match self.cursor.get() {
            Some((c, at)) if c >= b.first && c <= mid && !self.single.contains_key(&c) => (c - b.first, at),
            _ => (b.written.trailing_zeros().into(), b.offset),
        };
        while i < bit {
            at += 4 + self.len_at(at)?;
            i += 1;
            while b.written & (1 << i) == 0 {
                i += 1;
            }
        }
        self.cursor.set(Some((mid, at)));
        Some(at)
    }

    pub fn get(&self, mid: u64) -> Option<StoredMessage> {
        let at = self.offset(mid)?;
        let len = self.len_at(at)? as usize;
        StoredMessage::decode(&self.read(at + 4, len)?).ok()
    }

    pub fn keys(&self) -> impl Iterator<Item = u64> + '_ {
        let blocks =
            self.blocks.iter().flat_map(|b| (0..SPAN).filter(|i| b.present & (1 << i) != 0).map(|i| b.first + i));
        blocks.chain(self.single.keys().copied())
    }

    pub fn contains(&self, mid: u64) -> bool {
        self.single.contains_key(&mid)
            || self.block_at(mid).is_some_and(|i| self.blocks[i].present & (1 << (mid - self.blocks[i].first)) != 0)
    }

    pub fn len(&self) -> usize {
        self.blocks.iter().map(|b| b.present.count_ones() as usize).sum::<usize>() + self.single.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Marks `mid` as referred to, for [`Bodies::sweep`].
    pub fn mark(&mut self, mid: u64) {
        if let Some((_, live)) = self.single.get_mut(&mid) {
            *live = true;
        } else if let Some(b) = self.block_mut(mid) {
            b.live |= 1 << (mid - b.first);
        }
    }

    /// Drops the bodies not marked since the last sweep.
    pub fn sweep(&mut self) {
        for b in &mut self.blocks {
            b.present &= b.live;
            b.live = 0;
        }
        self.single.retain(|_, (_, live)| std::mem::take(live));
        self.cursor.set(None);
    }
}

#[cfg(test)]
#[path = "bodies_tests.rs"]
mod tests;
