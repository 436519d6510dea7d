//! Minimal append-only segmented log for the benchmark.
//!
//! Record: `[len u32 LE][crc32 u32 LE][payload]`, crc over payload.
//! Payload: `[type u8][session u64 LE][seq u64 LE][message bytes (enqueue only)]`.
//! One writer; group commit = one `write` + one `sync_data` per batch.
//! An ack is an appended small record. Recovery scans all segments, verifies
//! CRCs and cuts the log at the first bad/torn record (with a warning).
//! Compaction: delete head segments whose enqueue records are all acked.
use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const HDR: u64 = 8;
const T_ENQ: u8 = 1;
const T_ACK: u8 = 2;
const MAX_REC: u32 = 16 << 20;

struct Seg {
    id: u64,
    live: u64,
    len: u64,
}

#[derive(Default)]
struct Sess {
    /// (first seq written to the segment, segment id), ascending.
    ranges: Vec<(u64, u64)>,
    acked_upto: u64,
    ooo_acked: BTreeSet<u64>,
    last_seq: u64,
    cursor: Option<(u64, u64)>,
}

impl Sess {
    fn is_acked(&self, seq: u64) -> bool {
        seq < self.acked_upto || self.ooo_acked.contains(&seq)
    }
    fn ack(&mut self, seq: u64) {
        if seq == self.acked_upto {
            self.acked_upto += 1;
            while self.ooo_acked.remove(&self.acked_upto) {
                self.acked_upto += 1;
            }
        } else if seq > self.acked_upto {
            self.ooo_acked.insert(seq);
        }
    }
    fn seg_of(&self, seq: u64) -> Option<u64> {
        let i = self.ranges.partition_point(|r| r.0 <= seq);
        if i == 0 {
            None
        } else {
            Some(self.ranges[i - 1].1)
        }
    }
}

pub struct SegLog {
    dir: PathBuf,
    seg_size: u64,
    segs: Vec<Seg>,
    active: File,
    buf: Vec<u8>,
    sessions: HashMap<u64, Sess>,
    pub segments_deleted: u64,
    pub syncs: u64,
    pub recovered_records: u64,
    pub truncated_bytes: u64,
}

fn seg_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("seg-{id:020}.log"))
}

fn encode(buf: &mut Vec<u8>, ty: u8, session: u64, seq: u64, msg: &[u8]) {
    let len = 17 + msg.len();
    let start = buf.len();
    buf.extend_from_slice(&(len as u32).to_le_bytes());
    buf.extend_from_slice(&[0; 4]);
    buf.push(ty);
    buf.extend_from_slice(&session.to_le_bytes());
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.extend_from_slice(msg);
    let crc = crc32fast::hash(&buf[start + 8..]);
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Reads one record; Ok(None) = clean end, Err(()) = torn/corrupt.
fn read_rec<R: Read>(r: &mut R, remaining: u64, out: &mut Vec<u8>) -> Result<Option<()>, ()> {
    if remaining == 0 {
        return Ok(None);
    }
    if remaining < HDR {
        return Err(());
    }
    let mut h = [0u8; 8];
    r.read_exact(&mut h).map_err(|_| ())?;
    let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
    let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    if len == 0 && crc == 0 {
        return Ok(None); // zero-filled preallocated space: end of data
    }
    if len < 17 || len > MAX_REC || HDR + len as u64 > remaining {
        return Err(());
    }
    out.resize(len as usize, 0);
    r.read_exact(out).map_err(|_| ())?;
    if crc32fast::hash(out) != crc {
        return Err(());
    }
    Ok(Some(()))
}

fn parse(p: &[u8]) -> (u8, u64, u64) {
    let s = u64::from_le_bytes(p[1..9].try_into().unwrap_or_default());
    let q = u64::from_le_bytes(p[9..17].try_into().unwrap_or_default());
    (p[0], s, q)
}

impl SegLog {
    pub fn open(dir: &Path, seg_size: u64) -> io::Result<SegLog> {
        fs::create_dir_all(dir)?;
        let mut ids: Vec<u64> = fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let n = e.file_name().into_string().ok()?;
                n.strip_prefix("seg-")?.strip_suffix(".log")?.parse().ok()
            })
            .collect();
        ids.sort_unstable();
        let mut log = SegLog {
            dir: dir.to_path_buf(),
            seg_size,
            segs: Vec::new(),
            active: File::open("/dev/null")?,
            buf: Vec::with_capacity(1 << 20),
            sessions: HashMap::new(),
            segments_deleted: 0,
            syncs: 0,
            recovered_records: 0,
            truncated_bytes: 0,
        };
        let mut rec = Vec::new();
        let mut damaged = false;
        for &id in &ids {
            let path = seg_path(dir, id);
            if damaged {
                eprintln!("WARN seglog: ignoring segment {id} after damaged one");
                fs::rename(&path, path.with_extension("corrupt"))?;
                continue;
            }
            let f = File::open(&path)?;
            let flen = f.metadata()?.len();
            let mut r = BufReader::with_capacity(1 << 20, f);
            log.segs.push(Seg { id, live: 0, len: 0 });
            let mut off = 0u64;
            loop {
                match read_rec(&mut r, flen - off, &mut rec) {
                    Ok(Some(())) => {
                        off += HDR + rec.len() as u64;
                        log.recovered_records += 1;
                        log.apply(id, &rec);
                    }
                    Ok(None) => break,
                    Err(()) => {
                        eprintln!(
                            "WARN seglog: torn/corrupt record in segment {id} at offset {off}; cutting {} bytes",
                            flen - off
                        );
                        log.truncated_bytes += flen - off;
                        let f = OpenOptions::new().write(true).open(&path)?;
                        f.set_len(off)?;
                        f.sync_all()?;
                        damaged = true;
                        break;
                    }
                }
            }
            if let Some(s) = log.segs.last_mut() {
                s.len = off;
            }
        }
        match log.segs.last() {
            Some(s) => {
                log.active = OpenOptions::new().write(true).open(seg_path(dir, s.id))?;
                if log.active.metadata()?.len() < seg_size {
                    log.active.set_len(seg_size)?; // re-preallocate (zero-filled) after a cut
                    log.active.sync_all()?;
                }
            }
            None => log.new_segment(1)?,
        }
        Ok(log)
    }

    fn new_segment(&mut self, id: u64) -> io::Result<()> {
        self.active = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(seg_path(&self.dir, id))?;
        // Preallocate (sparse, zero-filled) so that per-batch fdatasync need not
        // update the file size; the zero header marks the end of data.
        self.active.set_len(self.seg_size)?;
        self.active.sync_all()?;
        File::open(&self.dir)?.sync_all()?; // make the new directory entry durable
        self.segs.push(Seg { id, live: 0, len: 0 });
        Ok(())
    }

    /// Updates the in-memory index for one record stored in segment `seg`.
    fn apply(&mut self, seg: u64, p: &[u8]) {
        let (ty, session, seq) = parse(p);
        if ty == T_ENQ {
            let s = self.sessions.entry(session).or_insert_with(|| Sess {
                acked_upto: seq,
                ..Default::default()
            });
            if s.ranges.last().map(|r| r.1) != Some(seg) {
                s.ranges.push((seq, seg));
            }
            s.last_seq = seq;
            if let Some(sg) = self.segs.iter_mut().rev().find(|x| x.id == seg) {
                sg.live += 1;
            }
        } else if ty == T_ACK {
            let Some(s) = self.sessions.get_mut(&session) else { return };
            if s.is_acked(seq) {
                return;
            }
            s.ack(seq);
            if let Some(id) = s.seg_of(seq) {
                if let Ok(i) = self.segs.binary_search_by_key(&id, |x| x.id) {
                    self.segs[i].live = self.segs[i].live.saturating_sub(1);
                }
            }
        }
    }

    pub fn last_seq(&self, session: u64) -> u64 {
        self.sessions.get(&session).map_or(0, |s| s.last_seq)
    }

    pub fn commit(&mut self, enq: &[(u64, u64, Vec<u8>)], acks: &[(u64, u64)], sync: bool) -> io::Result<()> {
        let size: u64 = enq.iter().map(|e| HDR + 17 + e.2.len() as u64).sum::<u64>() + acks.len() as u64 * 25;
        let cur = self.segs.last().map_or(0, |s| s.len);
        if cur > 0 && cur + size > self.seg_size {
            self.active.sync_data()?;
            self.syncs += 1;
            let id = self.segs.last().map_or(1, |s| s.id + 1);
            self.new_segment(id)?;
        }
        let seg = self.segs.last().map_or(0, |s| s.id);
        self.buf.clear();
        let mut rec_buf = std::mem::take(&mut self.buf);
        for (s, q, m) in enq {
            let st = rec_buf.len();
            encode(&mut rec_buf, T_ENQ, *s, *q, m);
            self.apply(seg, &rec_buf[st + 8..]);
        }
        for (s, q) in acks {
            let st = rec_buf.len();
            encode(&mut rec_buf, T_ACK, *s, *q, &[]);
            self.apply(seg, &rec_buf[st + 8..]);
        }
        if !rec_buf.is_empty() {
            let at = self.segs.last().map_or(0, |s| s.len);
            self.active.write_all_at(&rec_buf, at)?;
        }
        if let Some(s) = self.segs.last_mut() {
            s.len += rec_buf.len() as u64;
        }
        self.buf = rec_buf;
        if sync {
            self.active.sync_data()?;
            self.syncs += 1;
        }
        // compaction: drop fully-acked head segments (never the active one)
        while self.segs.len() > 1 && self.segs[0].live == 0 {
            let s = self.segs.remove(0);
            fs::remove_file(seg_path(&self.dir, s.id))?;
            self.segments_deleted += 1;
        }
        Ok(())
    }

    pub fn sync(&mut self) -> io::Result<()> {
        self.syncs += 1;
        self.active.sync_data()
    }

    /// Returns up to `limit` un-acked messages of `session` with seq > `after`, in order.
    pub fn scan(&mut self, session: u64, after: u64, limit: usize) -> io::Result<Vec<(u64, Vec<u8>)>> {
        let mut out = Vec::new();
        let Some(sess) = self.sessions.get(&session) else { return Ok(out) };
        let (mut seg_id, mut off) = sess.cursor.unwrap_or((sess.ranges.first().map_or(0, |r| r.1), 0));
        if let Some(first) = self.segs.first() {
            if seg_id < first.id {
                (seg_id, off) = (first.id, 0);
            }
        }
        let mut rec = Vec::new();
        let start = self.segs.partition_point(|s| s.id < seg_id);
        for sg in &self.segs[start..] {
            if sg.id != seg_id {
                (seg_id, off) = (sg.id, 0);
            }
            let mut f = File::open(seg_path(&self.dir, sg.id))?;
            f.seek(SeekFrom::Start(off))?;
            let mut r = BufReader::with_capacity(256 << 10, f);
            while out.len() < limit {
                match read_rec(&mut r, sg.len - off, &mut rec) {
                    Ok(Some(())) => {
                        off += HDR + rec.len() as u64;
                        let (ty, s, q) = parse(&rec);
                        if ty == T_ENQ && s == session && q > after && !sess.is_acked(q) {
                            out.push((q, rec[17..].to_vec()));
                        }
                    }
                    _ => break,
                }
            }
            if out.len() >= limit {
                break;
            }
        }
        if let Some(s) = self.sessions.get_mut(&session) {
            s.cursor = Some((seg_id, off));
        }
        Ok(out)
    }

    pub fn segment_count(&self) -> usize {
        self.segs.len()
    }
}
