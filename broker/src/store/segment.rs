//! The segment files of the write-ahead log, as recovery reads them: the
//! segment header (magic, format version, the release that created it),
//! the scan of a segment's frames with resynchronisation past damage, and
//! the files recovery keeps damaged bytes in (`damaged/`), which also
//! reserve the LSNs those bytes may have held.
//!
//! Formats: 1 (the header), 2 (adds the `Routing` record: an older release
//! that met one would take it for damage, so it refuses the segment by its
//! header instead). Both share the header.
//!
//! Header ([`HEADER_LEN`] = 48 bytes, little-endian):
//! `magic[8] = "EDGEMQ\x1aL" | format: u16 | header_len: u16 |
//! first_lsn: u64 | created_by[24] (UTF-8, NUL-padded) | crc: u32` where
//! `crc` is the CRC-32 of the 44 bytes before it. The magic and the format
//! are where they are in every format to come. A file that does not start
//! with the magic is format 0 (the headerless segments of the releases
//! before the header): frames from offset 0. A format-0 frame cannot start
//! with the magic (its length would exceed the largest record).

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::log::Lsn;

pub const MAGIC: [u8; 8] = *b"EDGEMQ\x1aL";
/// The format this build writes; it reads this one and every older one.
pub const FORMAT: u16 = 2;
/// The first format with a header.
const FIRST_HEADED: u16 = 1;
pub const HEADER_LEN: usize = 48;
const CREATED_BY: usize = 24;

/// Frame header: `len: u32 | crc: u32 | lsn: u64`.
pub const FRAME: usize = 16;
/// Larger records are treated as corruption.
pub const MAX_RECORD: usize = 512 * 1024 * 1024;
/// How far past the LSN expected a frame found after damage may be, over
/// the frames the damaged bytes could have held: room for the gaps that
/// earlier repairs left.
const MAX_JUMP: u64 = 1 << 16;
/// Larger LSNs are treated as corruption (no log gets there, and LSN
/// arithmetic cannot overflow below it).
pub const MAX_LSN: Lsn = 1 << 62;

/// The subdirectory of the log's directory where damaged bytes are kept.
pub const DAMAGED_DIR: &str = "damaged";

/// The header of a new segment whose first record will be `first`.
pub fn header(first: Lsn) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(&MAGIC);
    h[8..10].copy_from_slice(&FORMAT.to_le_bytes());
    h[10..12].copy_from_slice(&(HEADER_LEN as u16).to_le_bytes());
    h[12..20].copy_from_slice(&first.to_le_bytes());
    let by = concat!("edgemq ", env!("CARGO_PKG_VERSION")).as_bytes();
    let n = by.len().min(CREATED_BY);
    h[20..20 + n].copy_from_slice(&by[..n]);
    let sum = crc32fast::hash(&h[..44]);
    h[44..48].copy_from_slice(&sum.to_le_bytes());
    h
}

/// What a segment's first bytes say about its format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// No magic: format 0, frames from offset 0.
    Headerless,
    /// A valid header of a format this build reads (`format` <= [`FORMAT`]).
    Current { format: u16, created_by: String },
    /// The magic and a known format, but the header is torn or damaged:
    /// frames are looked for after it.
    DamagedHeader,
    /// Written by a newer release: not to be read, nor changed.
    Newer { format: u16, created_by: String },
}

impl Kind {
    /// Where the frames start.
    pub fn data_start(&self) -> u64 {
        match self {
            Kind::Headerless => 0,
            _ => HEADER_LEN as u64,
        }
    }
}

/// Reads the header of the segment at `path`.
pub fn kind(path: &Path) -> io::Result<Kind> {
    let mut h = Vec::with_capacity(HEADER_LEN);
    File::open(path)?.take(HEADER_LEN as u64).read_to_end(&mut h)?;
    Ok(parse(&h))
}

/// Whether the segment at `path`, named after `first`, is shorter than a
/// header and holds the beginning of the header the writer writes: a new
/// segment whose header write a crash interrupted (nothing can follow it,
/// as the header is written whole before any record). The release that
/// created it (the bytes from 20 on) is not compared.
pub fn is_torn_header(path: &Path, first: Lsn) -> io::Result<bool> {
    let mut h = Vec::with_capacity(HEADER_LEN);
    File::open(path)?.take(HEADER_LEN as u64).read_to_end(&mut h)?;
    let n = h.len().min(20);
    Ok(h.len() < HEADER_LEN && h[..n] == header(first)[..n])
}

/// [`kind`] of the segment's first bytes (at most [`HEADER_LEN`]).
pub fn parse(h: &[u8]) -> Kind {
    if h.len() < 10 || h[..8] != MAGIC {
        return Kind::Headerless;
    }
    let format = u16::from_le_bytes([h[8], h[9]]);
    let created_by = || {
        let by = h.get(20..44).unwrap_or_default();
        let end = by.iter().position(|b| *b == 0).unwrap_or(by.len());
        String::from_utf8_lossy(&by[..end]).into_owned()
    };
    if format > FORMAT {
        return Kind::Newer { format, created_by: created_by() };
    }
    let valid = h.len() == HEADER_LEN
        && format >= FIRST_HEADED
        && u16::from_le_bytes([h[10], h[11]]) as usize == HEADER_LEN
        && crc32fast::hash(&h[..44]).to_le_bytes() == h[44..48];
    if valid {
        Kind::Current { format, created_by: created_by() }
    } else {
        Kind::DamagedHeader
    }
}

/// The CRC of a frame: it covers the LSN and the payload.
pub fn crc(lsn: Lsn, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&lsn.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// What [`scan`] reports, in file order.
pub enum Event<'a> {
    /// A valid frame; the visitor answers whether its record is usable
    /// (decodes): if not, the frame is damage.
    Frame(Lsn, &'a [u8]),
    /// Bytes `offset..offset + len` hold no usable frame.
    Damage { offset: u64, len: u64, torn: bool },
}

/// What a scan of one segment found.
#[derive(Debug, Default, Clone)]
pub struct Scanned {
    pub len: u64,
    /// Byte ranges of usable frames, merged.
    pub runs: Vec<(u64, u64)>,
    /// Damaged byte ranges.
    pub damage: Vec<(u64, u64)>,
    /// The last damage reaches the end of the file and is the prefix of
    /// one frame (a write a crash interrupted).
    pub torn: bool,
    /// The LSN after the last usable frame (`expect` if none).
    pub next: Lsn,
}

/// Reads the frames of the segment at `path` from `start`, accepting a
/// frame whose LSN is at least `expect` (later frames' LSNs must grow);
/// after a bad frame, resynchronises on the next valid one.
pub fn scan(path: &Path, start: u64, mut expect: Lsn, visit: &mut dyn FnMut(Event<'_>) -> bool) -> io::Result<Scanned> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut out = Scanned { len, next: expect, ..Scanned::default() };
    let mut r = BufReader::with_capacity(256 * 1024, &file);
    let mut at = start.min(len);
    r.seek(SeekFrom::Start(at))?;
    let mut payload = Vec::new();
    let mut window = Vec::new();
    while at < len {
        if let Some((lsn, n)) = frame(&mut r, at, len, expect, &mut payload)? {
            if visit(Event::Frame(lsn, &payload)) {
                let end = at + (FRAME + n) as u64;
                match out.runs.last_mut() {
                    Some(run) if run.1 == at => run.1 = end,
                    _ => out.runs.push((at, end)),
                }
                at = end;
                expect = lsn + 1;
                continue;
            }
        }
        // A header whose payload runs past the end looks like a write a
        // power cut interrupted, but a flipped length bit looks the same:
        // only with no valid frame after it is it a torn tail.
        let resume = resync(&file, at, len, expect, &mut window)?;
        let torn = resume.is_none() && is_torn(&file, at, len, expect)?;
        let end = resume.unwrap_or(len);
        match out.damage.last_mut() {
            Some(d) if d.1 == at => d.1 = end,
            _ => out.damage.push((at, end)),
        }
        visit(Event::Damage { offset: at, len: end - at, torn });
        out.torn = torn;
        at = end;
        r.seek(SeekFrom::Start(at))?;
    }
    out.next = expect;
    Ok(out)
}

/// The frame at `at` (the reader's position) if it is valid, with its
/// payload in `payload`; the reader is left after it, or anywhere if not.
fn frame(r: &mut impl Read, at: u64, len: u64, expect: Lsn, payload: &mut Vec<u8>) -> io::Result<Option<(Lsn, usize)>> {
    let mut h = [0u8; FRAME];
    if at + FRAME as u64 > len {
        return Ok(None);
    }
    r.read_exact(&mut h)?;
    let (n, sum, lsn) = fields(&h);
    if n > MAX_RECORD || at + (FRAME + n) as u64 > len || lsn < expect || lsn > MAX_LSN {
        return Ok(None);
    }
    payload.resize(n, 0);
    r.read_exact(payload)?;
    Ok((crc(lsn, payload) == sum).then_some((lsn, n)))
}

/// A frame header's payload length, CRC and LSN (`h`: [`FRAME`] bytes).
pub fn fields(h: &[u8]) -> (usize, u32, Lsn) {
    let n = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
    let sum = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    let lsn = u64::from_le_bytes([h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]]);
    (n, sum, lsn)
}

/// Whether the bytes from `at` to the end are the beginning of one frame
/// that was never finished: less than a frame header, or a header for the
/// record expected whose payload runs past the end.
fn is_torn(file: &File, at: u64, len: u64, expect: Lsn) -> io::Result<bool> {
    if len - at < FRAME as u64 {
        return Ok(true);
    }
    let mut h = [0u8; FRAME];
    file.read_exact_at(&mut h, at)?;
    let (n, _, lsn) = fields(&h);
    Ok(lsn == expect && n <= MAX_RECORD && at + (FRAME + n) as u64 > len)
}

/// The offset of the first valid frame after the damage at `damaged`: a
/// valid CRC, an LSN from `expect` on, and no further past it than the
/// frames the damaged bytes could have held (and [`MAX_JUMP`]).
///
/// The window grows from 4 KiB to 1 MiB, so that many small damaged
/// ranges cost what they span, not a megabyte each.
fn resync(file: &File, damaged: u64, len: u64, expect: Lsn, window: &mut Vec<u8>) -> io::Result<Option<u64>> {
    let mut base = damaged + 1;
    let mut payload = Vec::new();
    let mut size = 4096usize;
    while base + FRAME as u64 <= len {
        let want = size.min((len - base) as usize);
        size = (size * 2).min(1 << 20);
        if window.len() < want {
            window.resize(want, 0);
        }
        file.read_exact_at(&mut window[..want], base)?;
        let mut i = 0;
        while i + FRAME <= want {
            let off = base + i as u64;
            let (n, sum, lsn) = fields(&window[i..i + FRAME]);
            let bound = expect.saturating_add((off - damaged) / FRAME as u64 + MAX_JUMP);
            if n <= MAX_RECORD && off + (FRAME + n) as u64 <= len && lsn >= expect && lsn <= bound.min(MAX_LSN) {
                let p = match window[..want].get(i + FRAME..i + FRAME + n) {
                    Some(p) => p,
                    None => {
                        payload.resize(n, 0);
                        file.read_exact_at(&mut payload, off + FRAME as u64)?;
                        &payload[..]
                    }
                };
                if crc(lsn, p) == sum {
                    return Ok(Some(off));
                }
            }
            i += 1;
        }
        if base + want as u64 >= len {
            break;
        }
        base += (want - (FRAME - 1)) as u64;
    }
    Ok(None)
}

/// The most records `bytes` damaged bytes can have held.
pub fn max_records(bytes: u64) -> u64 {
    bytes.div_ceil(FRAME as u64)
}

/// The name of the file keeping damaged bytes of `segment` at `offset`,
/// whose lost records are `from..=to` (`to < from`: none); `tail`: the
/// damage ran to the end of the log (see [`Held::tail`]).
pub fn damaged_name(segment: &Path, offset: u64, from: Lsn, to: Lsn, tail: bool) -> String {
    let seg = segment.file_name().and_then(|n| n.to_str()).unwrap_or("segment");
    let tail = if tail { ".tail" } else { "" };
    format!("{seg}-{offset}.lsn-{from}-{to}{tail}.bin")
}

/// A range of LSNs that files kept aside may hold, and whether the file is
/// one of [`damaged_name`] (whose range is exactly the records lost).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    pub from: Lsn,
    pub to: Lsn,
    /// A whole segment an older release moved aside (its range a bound).
    pub legacy: bool,
    /// Damage that ran to the end of the log when it was found: most
    /// likely writes a power cut interrupted (never durable, so never
    /// acknowledged); its LSNs are reserved all the same.
    pub tail: bool,
}

/// The LSN ranges held by what earlier recoveries kept aside: the files of
/// `damaged/`, and whole segments moved aside as `*.log.corrupt-*` by
/// releases before the segment header (first LSN in the name, at most one
/// record per frame header's worth of bytes).
pub fn held(dir: &Path) -> io::Result<Vec<Held>> {
    let mut out = Vec::new();
    for (d, damaged) in [(dir.to_path_buf(), false), (dir.join(DAMAGED_DIR), true)] {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if damaged {
                if let Some(h) = parse_damaged(name) {
                    out.push(h);
                }
            } else if let Some((first, _)) = name.split_once(".log.corrupt-") {
                if let Ok(first) = first.parse::<Lsn>() {
                    let len = entry.metadata()?.len();
                    let to = first.saturating_add(max_records(len));
                    out.push(Held { from: first, to, legacy: true, tail: false });
                }
            }
        }
    }
    // Not ours (no recovery keeps aside LSNs the log cannot reach).
    out.retain(|h| h.to <= MAX_LSN);
    Ok(out)
}

fn parse_damaged(name: &str) -> Option<Held> {
    let name = name.strip_suffix(".bin")?;
    let (name, tail) = match name.strip_suffix(".tail") {
        Some(n) => (n, true),
        None => (name, false),
    };
    let range = name.rsplit_once(".lsn-")?.1;
    let (from, to) = range.split_once('-')?;
    Some(Held { from: from.parse().ok()?, to: to.parse().ok()?, legacy: false, tail })
}

/// Where damaged bytes of a segment in `dir` go.
pub fn damaged_path(dir: &Path, segment: &Path, offset: u64, from: Lsn, to: Lsn, tail: bool) -> PathBuf {
    dir.join(DAMAGED_DIR).join(damaged_name(segment, offset, from, to, tail))
}

#[cfg(test)]
#[path = "segment_tests.rs"]
mod tests;
