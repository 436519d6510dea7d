//! A recovered queue's entries, streamed to an unlinked scratch file as
//! replay folds them, so a backlog of millions costs disk, not memory.
//!
//! What stays in memory per queue is small whatever its length: the set
//! of sequence numbers queued as ranges (a backlog is a few runs), every
//! 1024th (`SAMPLE_EVERY`) entry's file offset, a write buffer, and the rare
//! entries that arrive out of order (`late`, kept decoded). Entries that
//! arrive as two interleaved ascending sequences (a compaction's snapshot
//! of a spilled queue, written in pieces while new entries are queued) go
//! to two spools, the second in [`Entries::second`], so neither is late.
//! The file holds
//! entries in strictly increasing sequence number; an entry is live while
//! its number is in the set and no later copy is in `late`. Removing an
//! entry whose body must go in flight reads it back (forward from the
//! first live entry, or from the nearest sample).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::record::Record;
use super::recover::Entry;

/// Entries between two remembered file offsets.
const SAMPLE_EVERY: u64 = 1024;
/// Encoded bytes buffered before they are written out.
const CHUNK: usize = 64 * 1024;

/// Names scratch files uniquely within this process.
static FILES: AtomicU64 = AtomicU64::new(0);

/// Sequence numbers as inclusive ranges, first to last.
#[derive(Debug, Clone, Default)]
struct Ranges(BTreeMap<u64, u64>);

impl Ranges {
    fn around(&self, seq: u64) -> Option<(u64, u64)> {
        self.0.range(..=seq).next_back().map(|(s, l)| (*s, *l)).filter(|r| r.1 >= seq)
    }

    fn contains(&self, seq: u64) -> bool {
        self.around(seq).is_some()
    }

    /// Adds `seq`; whether it was absent.
    fn insert(&mut self, seq: u64) -> bool {
        if self.contains(seq) {
            return false;
        }
        let next = seq.checked_add(1).and_then(|n| self.0.get(&n).copied());
        if next.is_some() {
            self.0.remove(&(seq + 1));
        }
        let last = next.unwrap_or(seq);
        match seq.checked_sub(1).and_then(|p| self.around(p)) {
            Some((s, _)) => self.0.insert(s, last),
            None => self.0.insert(seq, last),
        };
        true
    }

    /// Removes `seq`; whether it was there.
    fn remove(&mut self, seq: u64) -> bool {
        let Some((s, l)) = self.around(seq) else { return false };
        self.0.remove(&s);
        if s < seq {
            self.0.insert(s, seq - 1);
        }
        if seq < l {
            self.0.insert(seq + 1, l);
        }
        true
    }

    fn last(&self) -> Option<u64> {
        self.0.values().next_back().copied()
    }
}

/// Bytes appended one after another: a buffer, written out to an unlinked
/// file in `dir` once it grows (in memory without a directory or if the
/// file fails).
#[derive(Debug, Default)]
struct Spool {
    dir: Option<Arc<Path>>,
    file: Option<File>,
    /// Writing to the file failed: it is only read from now on.
    stuck: bool,
    flushed: u64,
    buf: Vec<u8>,
}

impl Spool {
    fn len(&self) -> u64 {
        self.flushed + self.buf.len() as u64
    }

    fn append(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
        if self.buf.len() < CHUNK || self.stuck {
            return;
        }
        if self.file.is_none() {
            let Some(dir) = self.dir.take() else { return };
            let path = dir.join(format!("recovery-q{}.tmp", FILES.fetch_add(1, Ordering::Relaxed)));
            let file = std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&path);
            let _ = std::fs::remove_file(&path);
            match file {
                Ok(f) => self.file = Some(f),
                Err(e) => {
                    tracing::warn!(path = %path.display(), "store: recovery keeps a queue in memory: {e}");
                    return;
                }
            }
        }
        if let Some(f) = &mut self.file {
            match f.write_all(&self.buf) {
                Ok(()) => {
                    self.flushed += self.buf.len() as u64;
                    self.buf.clear();
                }
                Err(e) => {
                    // What was written stays readable; the rest stays here.
                    tracing::warn!("store: recovery scratch file failed, a queue stays in memory: {e}");
                    self.stuck = true;
                }
            }
        }
    }

    /// Up to `want` bytes from `at` (fewer at the end).
    fn read(&self, at: u64, want: usize) -> std::io::Result<Vec<u8>> {
        let end = self.len().min(at.saturating_add(want as u64));
        let mut out = Vec::with_capacity(end.saturating_sub(at) as usize);
        if at < self.flushed {
            let upto = end.min(self.flushed);
            let mut b = vec![0; (upto - at) as usize];
            match &self.file {
                Some(f) => f.read_exact_at(&mut b, at)?,
                None => return Err(std::io::Error::other("scratch file closed")),
            }
            out.extend_from_slice(&b);
        }
        let from = at.max(self.flushed);
        if from < end {
            let a = (from - self.flushed) as usize;
            out.extend_from_slice(&self.buf[a..(end - self.flushed) as usize]);
        }
        Ok(out)
    }
}

/// Encodes one entry as a length-prefixed `Enq` record.
fn encode(seq: u64, e: &Entry, out: &mut Vec<u8>) {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    let (sub_ids, shared) = e.extra.as_deref().cloned().unwrap_or_default();
    Record::Enq { key: 0, seq, mid: e.mid, qos: e.qos, retain: e.retain, sub_ids, shared }.encode_into(out);
    let n = (out.len() - at - 4) as u32;
    out[at..at + 4].copy_from_slice(&n.to_le_bytes());
}

/// Decodes the entry at the start of `b`: it and the bytes it took; `None`
/// if `b` ends first (or it does not decode: our own file, so a bug).
fn decode(b: &[u8]) -> Option<((u64, Entry), usize)> {
    let len = u32::from_le_bytes(b.get(..4)?.try_into().ok()?) as usize;
    match Record::decode(b.get(4..4 + len)?) {
        Ok(Record::Enq { seq, mid, qos, retain, sub_ids, shared, .. }) => {
            Some(((seq, Entry::new(mid, qos, retain, sub_ids, shared)), 4 + len))
        }
        _ => {
            tracing::error!("store: a recovery scratch entry does not decode");
            None
        }
    }
}

/// A session's queue entries by sequence number.
#[derive(Default)]
pub struct Entries {
    present: Ranges,
    len: usize,
    spool: Spool,
    /// The highest sequence number in the spool.
    last_spooled: Option<u64>,
    spooled: u64,
    /// Every `SAMPLE_EVERY`th spooled entry: its number and offset.
    samples: Vec<(u64, u64)>,
    /// Offset before which no spooled entry is live.
    cursor: u64,
    /// Entries that came after a higher number was spooled.
    late: BTreeMap<u64, Entry>,
    /// Entries that came after a higher number was spooled but in
    /// ascending order among themselves (on disk only).
    second: Option<Box<Entries>>,
    /// Where the spools go (none: in memory).
    scratch: Option<Arc<Path>>,
}

impl Entries {
    /// Entries spooled to scratch files in `dir`.
    pub fn on_disk(dir: Arc<Path>) -> Entries {
        Entries {
            spool: Spool { dir: Some(dir.clone()), ..Spool::default() },
            scratch: Some(dir),
            ..Entries::default()
        }
    }

    /// Entries held in memory (`late`) rather than spooled.
    pub fn in_memory(&self) -> usize {
        self.late.len() + self.second.as_ref().map_or(0, |s| s.in_memory())
    }

    /// The spool `seq` goes to: this one (in order, or late), or the
    /// second one, where a second ascending sequence goes.
    fn second_for(&mut self, seq: u64) -> Option<&mut Entries> {
        if self.second.as_ref().is_some_and(|s| s.present.contains(seq)) {
            return self.second.as_deref_mut();
        }
        let in_order = self.last_spooled.is_none_or(|l| seq > l);
        if in_order || self.present.contains(seq) {
            return None;
        }
        let dir = self.scratch.clone()?;
        let second = self.second.get_or_insert_with(|| Box::new(Entries::on_disk(dir)));
        let fits = second.last_spooled.is_none_or(|l| seq > l);
        fits.then_some(&mut **second)
    }

    /// The second spool if it holds `seq`.
    fn second_with(&mut self, seq: u64) -> Option<&mut Entries> {
        self.second.as_deref_mut().filter(|s| s.present.contains(seq))
    }

    /// Whether the spool went to a file.
    pub fn spooled_to_file(&self) -> bool {
        self.spool.file.is_some()
    }

    pub fn insert(&mut self, seq: u64, e: Entry) {
        if let Some(second) = self.second_for(seq) {
            second.insert(seq, e);
            return;
        }
        if self.last_spooled.is_none_or(|l| seq > l) {
            if self.spooled % SAMPLE_EVERY == 0 {
                self.samples.push((seq, self.spool.len()));
            }
            let mut b = Vec::with_capacity(32);
            encode(seq, &e, &mut b);
            self.spool.append(&b);
            self.spooled += 1;
            self.last_spooled = Some(seq);
        } else {
            self.late.insert(seq, e);
        }
        if self.present.insert(seq) {
            self.len += 1;
        }
    }

    /// Removes `seq` without reading it back.
    pub fn discard(&mut self, seq: u64) {
        if let Some(second) = self.second_with(seq) {
            second.discard(seq);
        } else if self.present.remove(seq) {
            self.len -= 1;
            self.late.remove(&seq);
        }
    }

    pub fn remove(&mut self, seq: u64) -> Option<Entry> {
        if let Some(second) = self.second_with(seq) {
            return second.remove(seq);
        }
        if !self.present.contains(seq) {
            return None;
        }
        let found = match self.late.remove(&seq) {
            Some(e) => Some(e),
            None => self.find(seq),
        };
        self.present.remove(seq);
        self.len -= 1;
        found
    }

    fn live(&self, seq: u64) -> bool {
        self.present.contains(seq) && !self.late.contains_key(&seq)
    }

    /// Reads the spooled entry `seq` back, moving the cursor past the dead
    /// entries before it.
    fn find(&mut self, seq: u64) -> Option<Entry> {
        let i = self.samples.partition_point(|s| s.0 <= seq);
        let sample = i.checked_sub(1).map_or(0, |i| self.samples[i].1);
        let mut at = sample.max(self.cursor);
        let mut moving = at == self.cursor;
        loop {
            let buf = match self.spool.read(at, CHUNK) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!("store: recovery scratch file unreadable, an in-flight message is lost: {e}");
                    return None;
                }
            };
            let mut used = 0;
            while let Some(((s, e), n)) = decode(&buf[used..]) {
                used += n;
                if moving && (s == seq || !self.live(s)) {
                    self.cursor = at + used as u64;
                } else {
                    moving = false;
                }
                if s == seq {
                    return Some(e);
                }
                if s > seq {
                    return None;
                }
            }
            if used == 0 {
                return None;
            }
            at += used as u64;
        }
    }

    /// The entries in order, read back from the spools.
    pub fn iter(&self) -> impl Iterator<Item = (u64, Entry)> + '_ {
        let mut first = self.iter_one().peekable();
        let mut second = self.second.as_ref().map(|s| s.iter_one().peekable());
        std::iter::from_fn(move || {
            let Some(second) = second.as_mut() else { return first.next() };
            match (first.peek(), second.peek()) {
                (Some(a), Some(b)) if a.0 < b.0 => first.next(),
                (_, Some(_)) => second.next(),
                _ => first.next(),
            }
        })
    }

    /// The entries of this spool (not the second) in order.
    fn iter_one(&self) -> Iter<'_> {
        Iter {
            entries: self,
            at: self.cursor,
            buf: Vec::new(),
            used: 0,
            late: self.late.iter().peekable(),
            pending: None,
        }
    }

    pub fn keys(&self) -> impl Iterator<Item = u64> + '_ {
        self.iter().map(|x| x.0)
    }

    pub fn len(&self) -> usize {
        self.len + self.second.as_ref().map_or(0, |s| s.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The highest sequence number queued.
    pub fn last_seq(&self) -> Option<u64> {
        self.present.last().max(self.second.as_ref().and_then(|s| s.present.last()))
    }
}

/// The entries of [`Entries`] in order: the spool's live ones merged with
/// the late ones.
pub struct Iter<'a> {
    entries: &'a Entries,
    at: u64,
    buf: Vec<u8>,
    used: usize,
    late: std::iter::Peekable<std::collections::btree_map::Iter<'a, u64, Entry>>,
    /// The next spooled entry, read ahead.
    pending: Option<(u64, Entry)>,
}

impl Iter<'_> {
    /// The next live spooled entry.
    fn next_spooled(&mut self) -> Option<(u64, Entry)> {
        loop {
            match decode(&self.buf[self.used..]) {
                Some(((s, e), n)) => {
                    self.used += n;
                    if self.entries.live(s) {
                        return Some((s, e));
                    }
                }
                None => {
                    self.at += self.used as u64;
                    self.used = 0;
                    self.buf = match self.entries.spool.read(self.at, CHUNK) {
                        Ok(b) => b,
                        Err(e) => {
                            tracing::error!("store: recovery scratch file unreadable, queued messages are lost: {e}");
                            Vec::new()
                        }
                    };
                    decode(&self.buf)?;
                }
            }
        }
    }
}

impl Iterator for Iter<'_> {
    type Item = (u64, Entry);

    fn next(&mut self) -> Option<(u64, Entry)> {
        if self.pending.is_none() {
            self.pending = self.next_spooled();
        }
        let late_first = match (&self.pending, self.late.peek()) {
            (Some((s, _)), Some((l, _))) => **l < *s,
            (None, Some(_)) => true,
            _ => false,
        };
        if late_first {
            return self.late.next().map(|(s, e)| (*s, e.clone()));
        }
        self.pending.take()
    }
}

impl Clone for Entries {
    /// A copy in memory.
    fn clone(&self) -> Entries {
        let mut c = Entries::default();
        for (s, e) in self.iter() {
            c.insert(s, e);
        }
        c
    }
}

impl PartialEq for Entries {
    fn eq(&self, other: &Entries) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Entries {}

impl std::fmt::Debug for Entries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
#[path = "spool_tests.rs"]
mod tests;
