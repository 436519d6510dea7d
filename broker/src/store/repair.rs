//! Recovery of the log's directory at open: refuses a newer format before
//! touching anything, reads every segment (resynchronising past damage,
//! see `segment`), accounts what was lost (LSN ranges and bytes), keeps
//! damaged bytes in `damaged/`, and repairs the segments so that the next
//! open finds nothing more to repair:
//!
//! - a torn tail of the last segment (an unfinished frame) is cut off; a
//!   torn header of the last segment (a crash while a new segment was
//!   begun) is written again whole;
//! - other damage reaching the end of a segment is cut off after its bytes
//!   were kept aside;
//! - damage with intact frames after it makes the segment be rewritten
//!   (header, then its intact frames; written aside, synced, renamed over
//!   it), so intact records keep their LSNs and the gap is the loss.
//!
//! The LSN range of every kept-aside file is reserved: the log goes on
//! after the highest LSN it may hold, so a new segment never takes the
//! name or LSNs of what was moved aside.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::fs::Fs;
use super::log::{segments, Loss, Lsn, Recovery};
use super::segment::{self, Event, Held, Kind, Scanned, DAMAGED_DIR, FORMAT, HEADER_LEN};
use super::StoreError;

/// What recovery found and where the writer goes on.
pub(super) struct Opened {
    pub rec: Recovery,
    /// The LSN of the next record.
    pub next: Lsn,
    /// The last segment, to be appended to, and its size; `None`: start a
    /// new segment named after `next`.
    pub tail: Option<(PathBuf, u64)>,
}

/// Damaged bytes: segment index, offset, length.
type Piece = (usize, u64, u64);

/// A loss being accounted: records `from..=to` and the bytes they were in.
struct Pending {
    from: Lsn,
    to: Lsn,
    pieces: Vec<Piece>,
    torn: bool,
    /// Damage (not torn) in the last segment running to its end: see
    /// [`Held::tail`].
    tail: bool,
}

/// Reads (replaying every usable record into `f`, which answers whether
/// the record decodes) and repairs the segments in `dir`.
pub(super) fn recover(dir: &Path, fs_: &dyn Fs, f: &mut dyn FnMut(Lsn, &[u8]) -> bool) -> Result<Opened, StoreError> {
    let segs = segments(dir)?;
    let mut kinds = Vec::with_capacity(segs.len());
    for (_, path) in &segs {
        let kind = segment::kind(path)?;
        if let Kind::Newer { format, created_by } = &kind {
            return Err(StoreError::NewerFormat {
                dir: dir.display().to_string(),
                segment: path.display().to_string(),
                format: *format,
                created_by: created_by.clone(),
                supported: FORMAT,
            });
        }
        kinds.push(kind);
    }
    let held = segment::held(dir)?;
    let mut rec = Recovery { segments: segs.len(), ..Recovery::default() };
    let mut last: Lsn = segs.first().map_or(0, |s| s.0.saturating_sub(1));
    let mut pieces: Vec<Piece> = Vec::new();
    let mut losses: Vec<Pending> = Vec::new();
    let mut scans: Vec<Scanned> = Vec::with_capacity(segs.len());
    for (i, ((first, path), kind)) in segs.iter().zip(&kinds).enumerate() {
        if *kind == Kind::Headerless {
            rec.headerless_segments += 1;
        }
        if *kind == Kind::DamagedHeader {
            let len = fs::metadata(path)?.len();
            pieces.push((i, 0, len.min(HEADER_LEN as u64)));
        }
        let expect = last.saturating_add(1).max(*first);
        let scanned = segment::scan(path, kind.data_start(), expect, &mut |ev| match ev {
            Event::Frame(lsn, payload) => {
                if !f(lsn, payload) {
                    return false;
                }
                if lsn > last + 1 || !pieces.is_empty() {
                    let pieces = std::mem::take(&mut pieces);
                    losses.push(Pending { from: last + 1, to: lsn - 1, pieces, torn: false, tail: false });
                }
                last = lsn;
                rec.records += 1;
                true
            }
            Event::Damage { offset, len, .. } => {
                match pieces.last_mut() {
                    Some(p) if p.0 == i && p.1 + p.2 == offset => p.2 += len,
                    _ => pieces.push((i, offset, len)),
                }
                true
            }
        })?;
        scans.push(scanned);
    }
    if !pieces.is_empty() {
        // Damage up to the end of the log: no record after it tells how
        // many were lost, so as many as the bytes could hold are reserved;
        // but an unfinished last frame, or the unfinished header of a new
        // last segment, is only a torn write.
        let last_seg = segs.len() - 1;
        let torn_header =
            kinds[last_seg] == Kind::DamagedHeader && segment::is_torn_header(&segs[last_seg].1, segs[last_seg].0)?;
        let torn = pieces.len() == 1 && pieces[0].0 == last_seg && (scans[last_seg].torn || torn_header);
        // Other damage there is kept aside and its LSNs reserved, but it is
        // most likely writes a power cut interrupted too (pages of the
        // last, unsynced writes lost): records never durable, so never
        // acknowledged, and no reason to doubt the inbound QoS 2 packet
        // identifiers recorded before it (`lost_up_to`). Media damage of
        // durable records at the very end of the log is the rare case.
        let tail = !torn && pieces.iter().all(|p| p.0 == last_seg);
        let bytes: u64 = pieces.iter().map(|p| p.2).sum();
        let to = if torn { last } else { last.saturating_add(segment::max_records(bytes)) };
        losses.push(Pending { from: last + 1, to, pieces, torn, tail });
    }
    let mut rewritten = vec![false; segs.len()];
    apply(dir, fs_, &segs, &kinds, &scans, &losses, &mut rewritten, &mut rec)?;
    for l in &losses {
        let known = l.pieces.is_empty() && held.iter().any(|h: &Held| h.from <= l.from && l.to <= h.to);
        let bytes = l.pieces.iter().map(|p| p.2).sum();
        let at = l.pieces.first().map(|p| (segs[p.0].1.clone(), p.1));
        rec.losses.push(Loss { from: l.from, to: l.to, bytes, at, torn: l.torn, known, kept: Vec::new() });
    }
    // Files kept aside, per loss, in the order they were written.
    let mut kept = rec.moved_aside.iter();
    for (l, p) in rec.losses.iter_mut().zip(&losses) {
        if !p.torn {
            l.kept = kept.by_ref().take(p.pieces.len()).cloned().collect();
        }
    }
    let reserved = held.iter().map(|h| h.to).chain(losses.iter().map(|l| l.to)).max().unwrap_or(0);
    // A gap that an earlier recovery kept aside as damage at the end of
    // the log counts as that did.
    let tail_held =
        |l: &Pending| l.pieces.is_empty() && held.iter().any(|h| h.tail && h.from <= l.from && l.to <= h.to);
    let lost = losses.iter().filter(|l| !l.torn && !l.tail && !tail_held(l) && l.to >= l.from).map(|l| l.to);
    let held_lost = held.iter().filter(|h| !h.legacy && !h.tail && h.to >= h.from).map(|h| h.to);
    rec.lost_up_to = held_lost.chain(lost).max().unwrap_or(0);
    let mut next = (last + 1).max(reserved.saturating_add(1));
    let tail = match segs.last() {
        None => None,
        Some((first, path)) => {
            next = next.max(*first);
            let size = fs::metadata(path)?.len();
            // Only a segment of this format takes more records: an older
            // release must not find a record of a newer one in a segment
            // whose header says it can read it.
            let current =
                rewritten[segs.len() - 1] || matches!(kinds[segs.len() - 1], Kind::Current { format: FORMAT, .. });
            if current {
                Some((path.clone(), size))
            } else {
                // Nothing in it (an empty file, or an older format's header
                // alone): the new segment takes its name, so it goes.
                let empty =
                    size == 0 || (size <= HEADER_LEN as u64 && matches!(kinds[segs.len() - 1], Kind::Current { .. }));
                if empty {
                    fs_.remove(path)?;
                }
                // A headerless or older segment with records is only read;
                // the snapshot at start rewrites its state in the new format.
                None
            }
        }
    };
    Ok(Opened { rec, next, tail })
}

/// Keeps the damaged bytes aside and repairs the damaged segments.
#[allow(clippy::too_many_arguments)]
fn apply(
    dir: &Path,
    fs_: &dyn Fs,
    segs: &[(Lsn, PathBuf)],
    kinds: &[Kind],
    scans: &[Scanned],
    losses: &[Pending],
    rewritten: &mut [bool],
    rec: &mut Recovery,
) -> io::Result<()> {
    let mut damaged: Vec<Vec<(u64, u64)>> = vec![Vec::new(); segs.len()];
    for l in losses {
        for &(i, offset, len) in &l.pieces {
            damaged[i].push((offset, len));
            rec.truncated_bytes += len;
            if l.torn {
                continue;
            }
            let to = segment::damaged_path(dir, &segs[i].1, offset, l.from, l.to, l.tail);
            fs::create_dir_all(dir.join(DAMAGED_DIR))?;
            copy_range(fs_, &segs[i].1, offset, len, &to)?;
            rec.moved_aside.push(to);
        }
    }
    for (i, pieces) in damaged.iter().enumerate() {
        let Some(&(offset, _)) = pieces.first() else { continue };
        let path = &segs[i].1;
        let header_ok = kinds[i] != Kind::DamagedHeader;
        if header_ok && pieces.len() == 1 && pieces[0].0 + pieces[0].1 == scans[i].len {
            // Only the end is damaged: cut it off.
            fs_.set_len(path, offset)?;
        } else {
            rewrite(fs_, path, segs[i].0, &scans[i].runs)?;
            rewritten[i] = true;
        }
    }
    if rec.truncated_bytes > 0 {
        // What was kept aside first: a repair that lasts has its damaged
        // bytes (and the LSNs they reserve) kept.
        fs_.sync_dir(&dir.join(DAMAGED_DIR));
        fs_.sync_dir(dir);
    }
    Ok(())
}

/// Copies `len` bytes at `offset` of `from` into a new file `to`, synced.
fn copy_range(fs_: &dyn Fs, from: &Path, offset: u64, len: u64, to: &Path) -> io::Result<()> {
    let mut src = File::open(from)?;
    src.seek(SeekFrom::Start(offset))?;
    fs_.write_synced(to, &mut |dst| io::copy(&mut (&mut src).take(len), dst).map(drop))
}

/// Rewrites the segment at `path` as a header and its intact frames.
fn rewrite(fs_: &dyn Fs, path: &Path, first: Lsn, runs: &[(u64, u64)]) -> io::Result<()> {
    let tmp = PathBuf::from(format!("{}.repair", path.display()));
    let mut src = File::open(path)?;
    fs_.write_synced(&tmp, &mut |dst| {
        dst.write_all(&segment::header(first))?;
        for &(start, end) in runs {
            src.seek(SeekFrom::Start(start))?;
            io::copy(&mut (&mut src).take(end - start), dst)?;
        }
        Ok(())
    })?;
    fs_.rename(&tmp, path)
}
