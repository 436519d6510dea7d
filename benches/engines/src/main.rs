//! edgemq storage-engine benchmark. See README.md.
//!
//! Subcommands (each prints one `key=value ...` line on stdout):
//!   throughput <engine> <batch|always|never> <n> <dir>
//!   fill <engine> <n> <dir> <close|crash>
//!   recover <engine> <n> <dir>
//!   crashtest <dir> [iterations]
//!   fsync-probe <dir>
mod engines;
mod seglog;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

const SESSION: u64 = 42;
const PRODUCERS: usize = 8;
/// Per-publisher in-flight window (unacked QoS 1 PUBLISHes), like MQTT receive-maximum.
const WINDOW: u64 = 256;
const PAYLOAD: usize = 64;

fn status_kb(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[derive(Clone, Copy, Default)]
struct Io {
    wchar: u64,
    write_bytes: u64,
    cancelled: u64,
}
fn proc_io() -> Io {
    let s = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    let get = |k: &str| {
        s.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0u64)
    };
    Io { wchar: get("wchar:"), write_bytes: get("write_bytes:"), cancelled: get("cancelled_write_bytes:") }
}
/// (device bytes written incl. page-granular rewrites, minus cancelled; logical write() bytes)
fn io_delta(a: Io, b: Io) -> (u64, u64) {
    (
        (b.write_bytes - a.write_bytes).saturating_sub(b.cancelled - a.cancelled),
        b.wchar - a.wchar,
    )
}

/// Allocated bytes on disk (like `du`).
fn disk_bytes(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            if let Ok(m) = e.metadata() {
                total += if m.is_dir() { disk_bytes(&e.path()) } else { m.blocks() * 512 };
            }
        }
    }
    total
}

fn payload(seq: u64) -> Vec<u8> {
    let mut v = vec![0u8; PAYLOAD];
    for (i, c) in v.chunks_mut(8).enumerate() {
        c.copy_from_slice(&(seq ^ i as u64).to_le_bytes());
    }
    v
}

enum In {
    Pub(usize, Vec<u8>),
    Ack(Vec<u64>),
}

fn throughput(engine: &str, mode: &str, n: u64, dir: &Path) {
    let per = n / PRODUCERS as u64;
    let n = per * PRODUCERS as u64;
    let max_pubs = match mode {
        "batch" => usize::MAX,
        "always" => 1,
        "never" => usize::MAX,
        _ => panic!("mode must be batch|always|never"),
    };
    let io0 = proc_io();
    let mut eng = engines::open(engine, dir);
    let acked: Arc<Vec<AtomicU64>> = Arc::new((0..PRODUCERS).map(|_| AtomicU64::new(0)).collect());
    let (tx, rx) = mpsc::channel::<In>();
    let (ctx, crx) = mpsc::channel::<Vec<u64>>();
    let start = Instant::now();
    let mut handles = Vec::new();
    for p in 0..PRODUCERS {
        let tx = tx.clone();
        let acked = acked.clone();
        handles.push(thread::spawn(move || {
            for i in 0..per {
                while i - acked[p].load(Ordering::Acquire) >= WINDOW {
                    thread::park_timeout(Duration::from_millis(1));
                }
                let mut m = vec![p as u8; PAYLOAD];
                m[..8].copy_from_slice(&i.to_le_bytes());
                if tx.send(In::Pub(p, m)).is_err() {
                    return;
                }
            }
        }));
    }
    // consumer: acks each message as soon as it is durable (as an online subscriber would)
    let atx = tx.clone();
    drop(tx);
    let consumer = thread::spawn(move || {
        for seqs in crx {
            if atx.send(In::Ack(seqs)).is_err() {
                return;
            }
        }
    });
    let producers: Vec<thread::Thread> = handles.iter().map(|h| h.thread().clone()).collect();
    let (mut next_seq, mut acked_total, mut syncs, mut batches, mut max_batch) = (1u64, 0u64, 0u64, 0u64, 0usize);
    let mut carry: Option<In> = None;
    while acked_total < n {
        let mut enq = Vec::new();
        let mut del = Vec::new();
        let mut per_prod = [0u64; PRODUCERS];
        let mut push = |x: In, enq: &mut Vec<engines::Enq>, del: &mut Vec<(u64, u64)>| match x {
            In::Pub(p, m) => {
                enq.push((SESSION, next_seq, m));
                next_seq += 1;
                per_prod[p] += 1;
            }
            In::Ack(seqs) => del.extend(seqs.into_iter().map(|q| (SESSION, q))),
        };
        let first = match carry.take() {
            Some(x) => x,
            None => rx.recv().expect("channel closed"),
        };
        push(first, &mut enq, &mut del);
        // group commit: take everything pending
        loop {
            match rx.try_recv() {
                Ok(x @ In::Pub(..)) if enq.len() >= max_pubs => {
                    carry = Some(x);
                    break;
                }
                Ok(x) => push(x, &mut enq, &mut del),
                Err(_) => break,
            }
        }
        let sync = !enq.is_empty() && mode != "never"; // ack-only batches need no fsync (redelivery is allowed)
        eng.commit(&enq, &del, sync);
        batches += 1;
        syncs += sync as u64;
        max_batch = max_batch.max(enq.len());
        acked_total += del.len() as u64;
        for (p, c) in per_prod.iter().enumerate() {
            if *c > 0 {
                acked[p].fetch_add(*c, Ordering::Release);
                producers[p].unpark();
            }
        }
        if !enq.is_empty() {
            let _ = ctx.send(enq.iter().map(|e| e.1).collect());
        }
    }
    if mode != "never" {
        eng.sync();
        syncs += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    drop(ctx);
    for h in handles {
        let _ = h.join();
    }
    drop(rx);
    let _ = consumer.join();
    let left = eng.scan(SESSION, 0, 10);
    assert!(left.is_empty(), "queue not empty after run");
    let stats = eng.stats();
    drop(eng);
    let (wb, wc) = io_delta(io0, proc_io());
    println!(
        "engine={engine} mode={mode} n={n} secs={secs:.3} msgs_per_s={:.0} app_syncs_per_msg={:.4} batches={batches} max_batch={max_batch} dev_bytes_per_msg={:.1} wchar_per_msg={:.1} disk_after={} rss_kb={} {stats}",
        n as f64 / secs,
        syncs as f64 / n as f64,
        wb as f64 / n as f64,
        wc as f64 / n as f64,
        disk_bytes(dir),
        status_kb("VmRSS:"),
    );
}

fn fill(engine: &str, n: u64, dir: &Path, close: &str) {
    let rss0 = status_kb("VmRSS:");
    let io0 = proc_io();
    let mut eng = engines::open(engine, dir);
    let start = Instant::now();
    let chunk = 1000u64;
    let mut seq = 1u64;
    let mut rss_steps = Vec::new();
    while seq <= n {
        if (seq - 1) % (n / 4).max(1) == 0 && seq > 1 {
            rss_steps.push(status_kb("VmRSS:").to_string());
        }
        let enq: Vec<engines::Enq> =
            (seq..(seq + chunk).min(n + 1)).map(|q| (SESSION, q, payload(q))).collect();
        seq += enq.len() as u64;
        eng.commit(&enq, &[], true);
    }
    let secs = start.elapsed().as_secs_f64();
    let rss = status_kb("VmRSS:");
    let hwm = status_kb("VmHWM:");
    thread::sleep(Duration::from_millis(500));
    let rss_settled = status_kb("VmRSS:");
    let stats = eng.stats();
    let (wb, wc) = io_delta(io0, proc_io());
    println!(
        "engine={engine} fill n={n} close={close} secs={secs:.3} enq_per_s={:.0} rss_base_kb={rss0} rss_kb={rss} rss_settled_kb={rss_settled} hwm_kb={hwm} rss_25_50_75pct_kb={} disk={} dev_bytes_per_msg={:.1} wchar_per_msg={:.1} {stats}",
        n as f64 / secs,
        rss_steps.join(","),
        disk_bytes(dir),
        wb as f64 / n as f64,
        wc as f64 / n as f64,
    );
    if close == "crash" {
        // like kill -9 right after the last durable commit: no destructor, no shutdown work
        std::process::exit(0);
    }
    drop(eng);
}

fn recover(engine: &str, n: u64, dir: &Path) {
    let rss0 = status_kb("VmRSS:");
    let disk0 = disk_bytes(dir);
    let t = Instant::now();
    let mut eng = engines::open(engine, dir);
    let open_secs = t.elapsed().as_secs_f64();
    let rss_open = status_kb("VmRSS:");
    let io0 = proc_io();
    let t = Instant::now();
    let (mut after, mut count) = (0u64, 0u64);
    loop {
        let got = eng.scan(SESSION, after, 10_000);
        if got.is_empty() {
            break;
        }
        for (q, m) in &got {
            assert_eq!(*q, after + 1, "out of order / missing message");
            assert_eq!(*m, payload(*q), "payload mismatch");
            after = *q;
        }
        count += got.len() as u64;
        let del: Vec<(u64, u64)> = got.iter().map(|g| (SESSION, g.0)).collect();
        eng.commit(&[], &del, false);
    }
    eng.sync();
    let drain_secs = t.elapsed().as_secs_f64();
    assert_eq!(count, n, "recovered count");
    let rss_drain = status_kb("VmRSS:");
    let hwm = status_kb("VmHWM:");
    let stats = eng.stats();
    let (wb, _) = io_delta(io0, proc_io());
    let disk_drained = disk_bytes(dir);
    drop(eng);
    println!(
        "engine={engine} recover n={n} open_secs={open_secs:.3} rss_base_kb={rss0} rss_open_kb={rss_open} drain_secs={drain_secs:.3} drain_per_s={:.0} rss_drained_kb={rss_drain} hwm_kb={hwm} disk_before={disk0} disk_drained={disk_drained} disk_closed={} drain_dev_bytes_per_msg={:.1} {stats}",
        n as f64 / drain_secs,
        disk_bytes(dir),
        wb as f64 / n as f64,
    );
}

/// Disk conditions right now: median/p90 latency of 4 KiB append + fdatasync.
fn fsync_probe(dir: &Path) {
    use std::io::Write;
    std::fs::create_dir_all(dir).expect("mkdir");
    let p = dir.join("probe");
    let mut f = std::fs::File::create(&p).expect("create");
    let mut lat = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        f.write_all(&[7u8; 4096]).expect("write");
        f.sync_data().expect("sync");
        lat.push(t.elapsed().as_secs_f64() * 1e3);
    }
    lat.sort_by(|a, b| a.total_cmp(b));
    let _ = std::fs::remove_dir_all(dir);
    println!("fsync_probe median_ms={:.3} p90_ms={:.3}", lat[100], lat[180]);
}

/// xorshift64*
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("readdir").flatten() {
        std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
    }
}

/// Crash-safety sanity check of the custom log: damage the last segment, reopen.
fn crashtest(dir: &Path, iters: u64) {
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1;
    let mut rng = Rng(seed);
    let pristine = dir.join("pristine");
    let work = dir.join("work");
    // 50k messages in 1 MiB segments, first 10k acked (so head segments get deleted)
    {
        let mut log = seglog::SegLog::open(&pristine, 1 << 20).expect("open");
        for b in 0..500u64 {
            let enq: Vec<engines::Enq> = (b * 100 + 1..=b * 100 + 100).map(|q| (SESSION, q, payload(q))).collect();
            let acks: Vec<(u64, u64)> =
                if b >= 1 && b <= 100 { ((b - 1) * 100 + 1..=b * 100).map(|q| (SESSION, q)).collect() } else { vec![] };
            log.commit(&enq, &acks, true).expect("commit");
        }
        println!("crashtest seed={seed} segments_deleted={} segments_left={}", log.segments_deleted, log.segment_count());
    }
    let mut segs: Vec<_> = std::fs::read_dir(&pristine).expect("rd").flatten().map(|e| e.path()).collect();
    segs.sort();
    let last_name = segs.last().expect("segment").file_name().expect("name").to_owned();
    let last = std::fs::read(pristine.join(&last_name)).expect("read");
    // independent parse of record boundaries of the last segment: (end offset, seq if enqueue)
    let mut bounds = Vec::new();
    let mut off = 0usize;
    while off + 8 <= last.len() {
        let len = u32::from_le_bytes(last[off..off + 4].try_into().expect("len")) as usize;
        if len == 0 {
            break; // preallocated zero tail
        }
        let ty = last[off + 8];
        let seq = u64::from_le_bytes(last[off + 17..off + 25].try_into().expect("seq"));
        off += 8 + len;
        bounds.push((off, if ty == 1 { Some(seq) } else { None }));
    }
    let valid_len = off as u64;
    let first_seq_in_last = bounds.iter().find_map(|b| b.1).expect("enq in last");
    let (mut ok, mut fail) = (0, 0);
    for it in 0..iters {
        copy_dir(&pristine, &work);
        let p = work.join(&last_name);
        let (kind, pos) = if it % 2 == 0 {
            let cut = (rng.next() % valid_len) as usize;
            std::fs::write(&p, &last[..cut]).expect("truncate");
            ("truncate", cut)
        } else {
            let pos = (rng.next() % valid_len) as usize;
            let mut d = last.clone();
            d[pos] ^= 1 << (rng.next() % 8);
            std::fs::write(&p, &d).expect("corrupt");
            ("flip", pos)
        };
        // expected: every enqueue record that ends at or before the damage survives
        let expect_last = bounds
            .iter()
            .filter(|b| if kind == "truncate" { b.0 <= pos } else { b.0 <= pos })
            .filter_map(|b| b.1)
            .last()
            .unwrap_or(first_seq_in_last - 1);
        let mut log = seglog::SegLog::open(&work, 1 << 20).expect("reopen");
        let got = log.scan(SESSION, 0, usize::MAX).expect("scan");
        let good = !got.is_empty()
            && got[0].0 == 10_001
            && got.last().map(|g| g.0) == Some(expect_last)
            && got.iter().enumerate().all(|(i, g)| g.0 == 10_001 + i as u64 && g.1 == payload(g.0));
        // the log must accept appends after the cut and keep them across another reopen
        let q = log.last_seq(SESSION) + 1;
        log.commit(&[(SESSION, q, payload(q))], &[], true).expect("append");
        drop(log);
        let mut log = seglog::SegLog::open(&work, 1 << 20).expect("reopen2");
        let got2 = log.scan(SESSION, 0, usize::MAX).expect("scan2");
        let good2 = got2.len() == got.len() + 1 && got2.last().map(|g| g.0) == Some(q);
        if good && good2 {
            ok += 1;
        } else {
            fail += 1;
            eprintln!("FAIL {kind} at {pos}: expected last {expect_last}, got {:?} (n={})", got.last().map(|g| g.0), got.len());
        }
    }
    println!("crashtest iterations={iters} passed={ok} failed={fail}");
    let _ = std::fs::remove_dir_all(dir);
    if fail > 0 {
        std::process::exit(1);
    }
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let arg = |i: usize| a.get(i).map(String::as_str).unwrap_or("");
    match arg(1) {
        "throughput" => throughput(arg(2), arg(3), arg(4).parse().expect("n"), Path::new(arg(5))),
        "fill" => fill(arg(2), arg(3).parse().expect("n"), Path::new(arg(4)), arg(5)),
        "recover" => recover(arg(2), arg(3).parse().expect("n"), Path::new(arg(4))),
        "fsync-probe" => fsync_probe(Path::new(arg(2))),
        "crashtest" => crashtest(Path::new(arg(2)), arg(3).parse().unwrap_or(40)),
        _ => {
            eprintln!("usage: see src/main.rs");
            std::process::exit(2);
        }
    }
}
