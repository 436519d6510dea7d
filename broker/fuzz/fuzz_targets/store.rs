//! cargo-fuzz target `store`: the store's record decoding
//! (`edgemq::store::Record::decode`, `StoredMessage::decode`,
//! `record::decode_spilled`) and recovery (`edgemq::store::open`: the
//! log's segment scan and repair, then the replay of every record into the
//! model) from arbitrary segment files in a fresh directory.
//!
//! Input: `[mode, body...]`.
//! - Every input: `body` is given to the three record decoders; what
//!   decodes must encode and decode back to itself.
//! - `mode` bit 0 clear (raw): `body` is written as segment file(s) as is:
//!   one, `00000000000000000001.log`, or with bit 1 two, cut at the offset
//!   in the first two bytes, the second named after the LSN in the third.
//! - `mode` bit 4 set: every segment starts with a segment header of the
//!   current format (else they are headerless, format 0); raw bodies may
//!   still hold any header, newer formats included.
//! - `mode` bit 0 set (framed): `body` is a list of records, each
//!   `[ctl, len, payload[len]]`, framed with a valid checksum and
//!   consecutive LSNs so that the payloads reach the record decoder and the
//!   replay. `ctl` bit 0: a wrong checksum; bit 1: an LSN skipped; bit 2:
//!   a new segment starts here (named after the record's LSN, or with bit 3
//!   one more); bit 4: stop, and the rest of `body` is a torn tail.
//!   `mode` bits 2-3 pick the first LSN (1 to 4; the first segment is
//!   always named 1, so a larger one is a gap).
//!
//! Checked: no panic and no hang (libFuzzer's `-timeout`); a segment of a
//! newer format refuses the open and leaves every file as it was; recovery
//! resynchronises past damage and repairs what it finds once and for all:
//! opening the repaired directory again truncates and moves aside nothing,
//! finds no damaged bytes, and recovers the same records into the same
//! state. Queued message bodies are read back from the
//! recovery's scratch file. The recovered state is then restored into a
//! router, as at start-up (`Router::enable_persistence`: sessions, queues
//! spilled to disk, in-flight messages, retained messages, a snapshot),
//! with `mode` bits 5-7 picking queue limits, and the log opened again.
#![no_main]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use edgemq::config::QueueFullPolicy;
use edgemq::router::Router;
use edgemq::session::state::QueueLimits;
use edgemq::store::record::decode_spilled;
use edgemq::store::recover::Flight;
use edgemq::store::{Journal, Model, Record, StoreConfig, StoreError, StoredMessage, SyncMode};
use edgemq_fuzz::segment::{file_name, push_frame, push_header, FORMAT};
use libfuzzer_sys::fuzz_target;

fn decoders(body: &[u8]) {
    if let Ok(r) = Record::decode(body) {
        assert_eq!(Record::decode(&r.encode()), Ok(r.clone()), "record does not round-trip");
    }
    if let Ok(m) = StoredMessage::decode(body) {
        let mut out = Vec::new();
        m.encode_into(&mut out);
        assert_eq!(StoredMessage::decode(&out), Ok(m), "message body does not round-trip");
    }
    let epoch = Instant::now();
    if let Ok(d) = decode_spilled(body, epoch) {
        let _ = (d.msg.received, d.seq, d.mid);
    }
}

/// Segment files (first LSN in the name, bytes) for a framed input.
fn framed(mode: u8, body: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let mut lsn = 1 + u64::from((mode >> 2) & 3);
    let mut first = Vec::new();
    if mode & 0x10 != 0 {
        push_header(&mut first, FORMAT, 1);
    }
    let mut segs = vec![(1, first)];
    let mut at = 0;
    while at + 2 <= body.len() {
        let (ctl, len) = (body[at], usize::from(body[at + 1]));
        at += 2;
        if ctl & 0x10 != 0 {
            break;
        }
        let payload = &body[at..(at + len).min(body.len())];
        at += payload.len();
        if ctl & 2 != 0 {
            lsn += 1;
        }
        if ctl & 4 != 0 {
            let first = lsn + u64::from(ctl >> 3 & 1);
            let mut seg = Vec::new();
            if mode & 0x10 != 0 {
                push_header(&mut seg, FORMAT, first);
            }
            segs.push((first, seg));
        }
        let Some((_, seg)) = segs.last_mut() else { break };
        push_frame(seg, lsn, payload);
        if ctl & 1 != 0 {
            let crc_at = seg.len() - payload.len() - 12;
            seg[crc_at] ^= 0x55;
        }
        lsn += 1;
    }
    if let Some((_, seg)) = segs.last_mut() {
        seg.extend_from_slice(&body[at.min(body.len())..]);
    }
    segs
}

fn raw(mode: u8, body: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let mut segs = match body {
        [a, b, n, rest @ ..] if mode & 2 != 0 => {
            let cut = usize::from(u16::from_le_bytes([*a, *b])) % (rest.len() + 1);
            vec![(1, rest[..cut].to_vec()), (u64::from(*n), rest[cut..].to_vec())]
        }
        _ => vec![(1, body.to_vec())],
    };
    if mode & 0x10 != 0 {
        for (first, seg) in &mut segs {
            let mut h = Vec::new();
            push_header(&mut h, FORMAT, *first);
            seg.splice(0..0, h);
        }
    }
    segs
}

/// What recovery made of the directory, for comparison across opens.
#[derive(Debug, PartialEq, Eq)]
struct Summary {
    records: u64,
    sessions: Vec<(u64, edgemq::store::recover::StoredSession)>,
    retained: Vec<(String, StoredMessage)>,
    bodies: Vec<(u64, Option<StoredMessage>)>,
    max_key: u64,
    max_mid: u64,
}

fn summary(records: u64, m: &Model) -> Summary {
    let mut sessions: Vec<_> = m.sessions.iter().map(|(k, s)| (*k, s.clone())).collect();
    sessions.sort_by_key(|s| s.0);
    let mut retained: Vec<_> = m.retained.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    retained.sort_by(|a, b| a.0.cmp(&b.0));
    let mut bodies: Vec<_> = m.msgs.keys().map(|mid| (mid, m.msgs.get(mid))).collect();
    bodies.sort_by_key(|b| b.0);
    Summary { records, sessions, retained, bodies, max_key: m.max_key, max_mid: m.max_mid }
}

fn open(root: &Path) -> Option<(edgemq::store::Recovery, Summary, Journal, Model)> {
    let cfg = StoreConfig {
        dir: root.join("data"),
        spill_dir: root.join("spill"),
        sync: SyncMode::Never,
        segment_bytes: 1 << 20,
        compact_bytes: 1 << 30,
        fs: std::sync::Arc::new(edgemq::store::fs::RealFs),
    };
    let (journal, model, rec) = match edgemq::store::open(&cfg) {
        Ok(x) => x,
        Err(StoreError::NewerFormat { .. }) => return None,
        Err(e) => panic!("recovery failed with an I/O error: {e}"),
    };
    let s = summary(rec.records, &model);
    Some((rec, s, journal, model))
}

/// Every file under `dir` and its bytes.
fn files(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if let Ok(b) = std::fs::read(&p) {
                out.push((p, b));
            }
        }
    }
    out.sort();
    out
}

/// What the broker does next: the router restores the state (sessions
/// with their queues, which spill to disk, in-flight messages, retained
/// messages) and writes a snapshot of it.
///
/// A queue or in-flight entry with sequence number `u64::MAX` is known to
/// overflow `seq + 1` in `SessionState::restore` (ROBUSTNESS.md,
/// "Findings"); such a state is not restored, so the run goes on.
fn restore(journal: Journal, model: Model, mode: u8) {
    let max_seq = model.sessions.values().any(|s| {
        s.queue.keys().any(|seq| seq == u64::MAX)
            || s.inflight.iter().any(|f| matches!(f.1, Flight::Published { seq: u64::MAX, .. }))
    });
    if max_seq {
        journal.close();
        return;
    }
    let limits = QueueLimits {
        max_messages: if mode & 0x40 != 0 { 2 } else { 1000 },
        max_bytes: 1 << 20,
        policy: if mode & 0x80 != 0 { QueueFullPolicy::DropOldest } else { QueueFullPolicy::DropNew },
        queue_qos0: mode & 0x20 != 0,
        ..QueueLimits::default()
    };
    let journal = Arc::new(journal);
    let mut router = Router::new(limits);
    router.enable_persistence(journal.clone(), model, (Instant::now(), SystemTime::now()));
    router.expire(Instant::now() + Duration::from_secs(1 << 20));
    journal.close();
}

fuzz_target!(|data: &[u8]| {
    let [mode, body @ ..] = data else { return };
    decoders(body);
    let segs = if mode & 1 != 0 { framed(*mode, body) } else { raw(*mode, body) };
    // On a RAM disk where there is one: a fresh directory per input.
    let base = Path::new("/dev/shm");
    let tmp = if base.is_dir() { tempfile::tempdir_in(base) } else { tempfile::tempdir() };
    let Ok(tmp) = tmp else { return };
    let data_dir = tmp.path().join("data");
    if std::fs::create_dir_all(&data_dir).is_err() {
        return;
    }
    for (first, bytes) in &segs {
        if std::fs::write(data_dir.join(file_name(*first)), bytes).is_err() {
            return;
        }
    }
    let before = files(&data_dir);
    let Some((_, first, journal, _)) = open(tmp.path()) else {
        assert_eq!(files(&data_dir), before, "a refused newer format was changed");
        return;
    };
    journal.close();
    let Some((again, second, journal, model)) = open(tmp.path()) else {
        panic!("the repaired log is refused as a newer format")
    };
    assert_eq!(again.truncated_bytes, 0, "the repaired log was cut again");
    assert!(again.moved_aside.is_empty(), "the repaired log had more moved aside: {:?}", again.moved_aside);
    assert!(again.losses.iter().all(|l| l.bytes == 0), "damaged bytes left after repair: {:?}", again.losses);
    assert_eq!(first, second, "a second recovery recovered something else");
    restore(journal, model, *mode);
    // The log with the restored state's snapshot must open again.
    let Some((_, _, journal, _)) = open(tmp.path()) else { panic!("the restored log is refused") };
    journal.close();
});
