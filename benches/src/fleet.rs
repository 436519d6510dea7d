//! The IoT-shape scenarios (issue 15): `fleet`, many devices each
//! publishing rarely to one subscriber (every message its own wake-up:
//! broker CPU per message and latency), and `storm`, many persistent
//! sessions with a few queued messages each reconnecting at once (time
//! until all are served, RSS peak).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::task::JoinSet;

use crate::client::Conn;
use crate::procfs::{cpu_ns, rss};
use crate::scenario::{add_counts, connect_many, percentile, raise_fd_limit, secs};
use crate::track::Tracker;
use crate::wire::{self, now_nanos, Stamp};
use crate::{Error, Report, Target};

fn join_err(e: tokio::task::JoinError) -> Error {
    Error::Other(format!("task failed: {e}"))
}

fn lock<T>(m: &Mutex<T>) -> Result<std::sync::MutexGuard<'_, T>, Error> {
    m.lock().map_err(|_| Error::Other("a task panicked".into()))
}

/// [`take_frames_into`] on a connection's own buffers.
fn take_frames(c: &mut Conn, tr: &mut Tracker, lat: &mut Vec<u64>, warmup: u64, acked: &mut u64) -> Result<u64, Error> {
    take_frames_into(&mut c.rbuf, &mut c.wbuf, tr, lat, warmup, acked)
}

/// Parses every whole frame in `rbuf`: PUBLISHes are recorded (with
/// their latency when `seq >= warmup`) and acknowledged into `wbuf`,
/// PUBREL answered; returns the PUBLISHes seen. Acknowledgements of the
/// connection's own publishing are counted in `acked`.
pub(crate) fn take_frames_into(
    rbuf: &mut BytesMut,
    wbuf: &mut BytesMut,
    tr: &mut Tracker,
    lat: &mut Vec<u64>,
    warmup: u64,
    acked: &mut u64,
) -> Result<u64, Error> {
    let now = now_nanos();
    let (mut off, mut got) = (0, 0);
    while let Some(f) = wire::next_frame(&rbuf[off..])? {
        let body = &rbuf[off + f.body..off + f.len];
        match f.header & 0xF0 {
            wire::PUBLISH => {
                let r = wire::parse_publish(f.header, body)?;
                tr.record(r.publisher, r.seq);
                if r.seq >= warmup {
                    lat.push(now.saturating_sub(r.ts));
                }
                got += 1;
                match r.qos {
                    1 => wire::ack(wbuf, wire::PUBACK, r.pkid),
                    2 => wire::ack(wbuf, wire::PUBREC, r.pkid),
                    _ => {}
                }
            }
            0x60 => wire::ack(wbuf, wire::PUBCOMP, wire::ack_pkid(body)?),
            wire::PUBACK | wire::PUBCOMP => *acked += 1,
            wire::PUBREC => wire::ack(wbuf, wire::PUBREL, wire::ack_pkid(body)?),
            wire::PINGRESP => {}
            t => return Err(Error::Protocol(format!("got packet type 0x{t:02x}"))),
        }
        off += f.len;
    }
    rbuf.advance(off);
    Ok(got)
}

// ------------------------------------------------------------------- fleet

/// `fleet`: D devices on `fleet/ID`, each at `rate` messages/s, one
/// subscriber on `fleet/#`.
#[derive(Debug, Clone)]
pub struct FleetOpts {
    pub devices: usize,
    /// Messages per second of each device.
    pub rate: f64,
    pub qos: u8,
    pub size: usize,
    /// Measured time, after the warm-up.
    pub duration: Duration,
    /// Left out of the figures (connections settle, caches warm).
    pub warmup: Duration,
    /// Connection attempts in progress at once while setting up.
    pub concurrency: usize,
    pub timeout: Duration,
}

impl Default for FleetOpts {
    fn default() -> Self {
        FleetOpts {
            devices: 5_000,
            rate: 1.0,
            qos: 1,
            size: 64,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            concurrency: 200,
            timeout: Duration::from_secs(120),
        }
    }
}

/// One device: its messages at `start + k / rate`, each waiting for its
/// acknowledgement (QoS 1/2) before the next is due.
async fn device(mut c: Conn, id: u32, start: tokio::time::Instant, o: FleetOpts, count: u64) -> Result<Conn, Error> {
    let period = Duration::from_secs_f64(1.0 / o.rate.max(1e-3));
    let topic = format!("fleet/{id}");
    let deadline = start + o.timeout;
    let (mut tr, mut lat, mut acked) = (Tracker::new(0, 0), Vec::new(), 0u64);
    for seq in 0..count {
        tokio::time::sleep_until(start + period * seq as u32).await;
        let pkid = (seq % 65_535 + 1) as u16;
        wire::publish(&mut c.wbuf, &topic, o.qos, pkid, Stamp { publisher: id, seq, ts: now_nanos() }, o.size);
        c.flush().await?;
        while o.qos > 0 && acked <= seq {
            tokio::time::timeout_at(deadline, c.read())
                .await
                .map_err(|_| Error::Timeout(format!("device {id}: message {seq} unacknowledged")))??;
            take_frames(&mut c, &mut tr, &mut lat, 0, &mut acked)?;
            c.flush().await?;
        }
    }
    Ok(c)
}

struct Received {
    tracker: Tracker,
    lat: Vec<u64>,
    last_rx: Option<Instant>,
}

/// The subscriber: until `expected` distinct messages, the deadline, or
/// 2 s of silence after `done`.
async fn collect(
    mut c: Conn,
    mut tr: Tracker,
    expected: u64,
    warmup: u64,
    done: Arc<AtomicBool>,
    deadline: tokio::time::Instant,
) -> Result<Received, Error> {
    let (mut lat, mut acked, mut last_rx) = (Vec::new(), 0u64, None);
    while tr.unique < expected {
        let now = tokio::time::Instant::now();
        if now >= deadline {
            break;
        }
        match tokio::time::timeout(Duration::from_secs(2).min(deadline - now), c.read()).await {
            Ok(r) => {
                r?;
            }
            Err(_) if done.load(Ordering::Acquire) => break,
            Err(_) => continue,
        }
        if take_frames(&mut c, &mut tr, &mut lat, warmup, &mut acked)? > 0 {
            last_rx = Some(Instant::now());
        }
        c.flush().await?;
    }
    c.close().await;
    Ok(Received { tracker: tr, lat, last_rx })
}

/// Many devices at a low rate to one subscriber: broker CPU per message
/// (all its threads' run time from `/proc/PID/task/*/schedstat` over the
/// measured part, divided by the messages it carried), latency
/// percentiles of the measured messages, counts.
pub async fn fleet(t: &Target, o: &FleetOpts) -> Result<Report, Error> {
    crate::scenario::check_qos(o.qos)?;
    let d = o.devices.max(1);
    raise_fd_limit(d as u64 + 256)?;
    let rate = o.rate.max(1e-3);
    let warm = (o.warmup.as_secs_f64() * rate).ceil() as u64;
    let count = warm + (o.duration.as_secs_f64() * rate).ceil().max(1.0) as u64;
    let deadline = tokio::time::Instant::now() + o.timeout;
    let mut sub = Conn::connect(t.addr, "fleet-sub").await?;
    sub.subscribe("fleet/#", o.qos).await?;
    let ids: Vec<String> = (0..d).map(|i| format!("fleet-dev-{i}")).collect();
    let (devices, failed) = connect_many(t.addr, &ids, o.concurrency, false).await;
    if let Some(e) = failed.into_iter().next() {
        return Err(e);
    }
    let before = t.pid.and_then(rss);
    let done = Arc::new(AtomicBool::new(false));
    let total = count * d as u64;
    let subscriber = tokio::spawn(collect(sub, Tracker::new(d, count), total, warm, done.clone(), deadline));
    // Devices spread evenly over one period, so the broker sees a steady rate.
    let base = tokio::time::Instant::now() + Duration::from_millis(100);
    let mut set = JoinSet::new();
    for (i, c) in devices.into_iter().enumerate() {
        let phase = Duration::from_secs_f64(i as f64 / d as f64 / rate);
        set.spawn(device(c, i as u32, base + phase, o.clone(), count));
    }
    tokio::time::sleep_until(base + o.warmup).await;
    let cpu_start = t.pid.and_then(cpu_ns);
    let mut conns = Vec::with_capacity(d);
    let mut first_err = None;
    while let Some(r) = set.join_next().await {
        match r.map_err(join_err).and_then(|r| r) {
            Ok(c) => conns.push(c),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    done.store(true, Ordering::Release);
    let rx = subscriber.await.map_err(join_err)??;
    let cpu_end = t.pid.and_then(cpu_ns);
    let after = t.pid.and_then(rss);
    for c in conns {
        c.close().await;
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    let mut lat = rx.lat;
    lat.sort_unstable();
    let measured = lat.len() as u64;
    let mut r = Report::new("fleet");
    r.add("qos", o.qos).add("devices", d).addf("rate", rate, 3).add("size", wire::payload_len(o.size));
    r.add("sent", total);
    add_counts_brief(&mut r, &rx.tracker, count, total);
    r.add("measured", measured);
    if let (Some(a), Some(b)) = (cpu_start, cpu_end) {
        let us = b.saturating_sub(a) as f64 / 1000.0;
        r.addf("broker_cpu_s", us / 1e6, 3).addf("cpu_us_per_msg", us / measured.max(1) as f64, 2);
    }
    r.addf("p50_us", percentile(&lat, 0.5), 1).addf("p99_us", percentile(&lat, 0.99), 1);
    r.addf("p999_us", percentile(&lat, 0.999), 1).addf("max_us", percentile(&lat, 1.0), 1);
    if let Some(last) = rx.last_rx {
        r.addf("msgs_per_s", measured as f64 / secs(last.elapsed().max(o.duration)), 0);
    }
    if let (Some(b), Some(a)) = (before, after) {
        r.add("rss_before_kib", b.rss_kib).add("rss_after_kib", a.rss_kib).add("peak_rss_kib", a.peak_kib);
    }
    Ok(r)
}

/// The counts of [`add_counts`] without the per-publisher loss list when
/// thousands of devices would make it unreadable (it is kept below 20).
fn add_counts_brief(r: &mut Report, tr: &Tracker, per: u64, total: u64) {
    let mut full = Report::default();
    add_counts(&mut full, tr, per, total);
    for (k, v) in full.fields {
        if k != "lost_by_pub" || v.split(',').count() < 20 {
            r.fields.push((k, v));
        }
    }
}

// ------------------------------------------------------------------- storm

/// `storm`: C clients with persistent sessions and `queued` messages each
/// reconnect at once.
#[derive(Debug, Clone)]
pub struct StormOpts {
    pub clients: usize,
    /// QoS 1 messages queued for each client while it is away.
    pub queued: u64,
    pub size: usize,
    /// Connection attempts in progress at once while setting up (the storm
    /// itself starts every client at once).
    pub concurrency: usize,
    pub timeout: Duration,
}

impl Default for StormOpts {
    fn default() -> Self {
        StormOpts { clients: 10_000, queued: 3, size: 64, concurrency: 200, timeout: Duration::from_secs(180) }
    }
}

/// Publishes `queued` QoS 1 messages to each `storm/ID`, up to 100 in flight.
async fn fill(
    c: &mut Conn,
    clients: usize,
    queued: u64,
    size: usize,
    deadline: tokio::time::Instant,
) -> Result<(), Error> {
    let total = clients as u64 * queued;
    let (mut sent, mut acked) = (0u64, 0u64);
    let (mut tr, mut lat) = (Tracker::new(0, 0), Vec::new());
    while acked < total {
        while sent < total && sent - acked < 100 {
            let (id, seq) = ((sent % clients as u64) as u32, sent / clients as u64);
            let pkid = (sent % 65_535 + 1) as u16;
            wire::publish(
                &mut c.wbuf,
                &format!("storm/{id}"),
                1,
                pkid,
                Stamp { publisher: id, seq, ts: now_nanos() },
                size,
            );
            sent += 1;
        }
        c.flush().await?;
        tokio::time::timeout_at(deadline, c.read())
            .await
            .map_err(|_| Error::Timeout(format!("storm publisher: {} unacknowledged", sent - acked)))??;
        take_frames(c, &mut tr, &mut lat, 0, &mut acked)?;
    }
    Ok(())
}

/// One client of the storm: reconnects, reads its queued messages, says
/// when it had them all.
async fn rejoin(
    t: Target,
    id: u32,
    queued: u64,
    tr: Arc<Mutex<Tracker>>,
    start: Instant,
    deadline: tokio::time::Instant,
) -> Result<(Conn, Duration), Error> {
    let mut c = tokio::time::timeout_at(deadline, Conn::connect_session(t.addr, &format!("storm-{id}"), false))
        .await
        .map_err(|_| Error::Timeout(format!("storm client {id}: CONNACK")))??;
    if !c.session_present {
        return Err(Error::Protocol(format!("storm client {id}: session not present")));
    }
    let (mut lat, mut acked, mut got) = (Vec::new(), 0u64, 0u64);
    loop {
        got += {
            let mut tr = lock(&tr)?;
            take_frames(&mut c, &mut tr, &mut lat, u64::MAX, &mut acked)?
        };
        c.flush().await?;
        if got >= queued {
            break;
        }
        tokio::time::timeout_at(deadline, c.read())
            .await
            .map_err(|_| Error::Timeout(format!("storm client {id}: {got} of {queued} messages")))??;
    }
    let served = start.elapsed();
    Ok((c, served))
}

/// Sets up C persistent sessions on `storm/ID` with `queued` messages each,
/// then reconnects all at once: time until every client had its messages,
/// broker RSS sampled every 20 ms during the storm.
pub async fn storm(t: &Target, o: &StormOpts) -> Result<Report, Error> {
    let n = o.clients.max(1);
    raise_fd_limit(n as u64 + 256)?;
    let deadline = tokio::time::Instant::now() + o.timeout;
    let ids: Vec<String> = (0..n).map(|i| format!("storm-{i}")).collect();
    let (mut conns, failed) = connect_many(t.addr, &ids, o.concurrency, true).await;
    if let Some(e) = failed.into_iter().next() {
        return Err(e);
    }
    for (i, c) in conns.iter_mut().enumerate() {
        c.subscribe(&format!("storm/{i}"), 1).await?;
    }
    let mut set = JoinSet::new();
    for c in conns {
        set.spawn(c.close_and_wait(Duration::from_secs(5)));
    }
    while set.join_next().await.is_some() {}
    let mut publisher = Conn::connect(t.addr, "storm-pub").await?;
    fill(&mut publisher, n, o.queued, o.size, deadline).await?;
    publisher.close().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = t.pid.and_then(rss);
    let peak = Arc::new(AtomicU64::new(before.map_or(0, |b| b.rss_kib)));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = t.pid.map(|pid| {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        tokio::spawn(async move {
            while sampling.load(Ordering::Acquire) {
                if let Some(r) = rss(pid) {
                    peak.fetch_max(r.rss_kib, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    });
    let tracker = Arc::new(Mutex::new(Tracker::new(n, o.queued)));
    let start = Instant::now();
    let mut set = JoinSet::new();
    for i in 0..n {
        set.spawn(rejoin(*t, i as u32, o.queued, tracker.clone(), start, deadline));
    }
    let (mut served, mut failed, mut first_err, mut last) = (Vec::with_capacity(n), 0usize, None, Duration::ZERO);
    while let Some(r) = set.join_next().await {
        match r.map_err(join_err).and_then(|r| r) {
            Ok((c, at)) => {
                last = last.max(at);
                served.push(c);
            }
            Err(e) => {
                failed += 1;
                first_err.get_or_insert(e);
            }
        }
    }
    sampling.store(false, Ordering::Release);
    if let Some(s) = sampler {
        let _ = s.await;
    }
    let after = t.pid.and_then(rss);
    let ok = served.len();
    // Leaves nothing behind: each session ends with a clean-session connect.
    for c in served {
        c.close().await;
    }
    let ids: Vec<String> = (0..n).map(|i| format!("storm-{i}")).collect();
    let (cleaned, _) = connect_many(t.addr, &ids, o.concurrency, false).await;
    for c in cleaned {
        c.close().await;
    }
    let tr = lock(&tracker)?.clone();
    let mut r = Report::new("storm");
    r.add("clients", n).add("queued", o.queued).add("served", ok).add("failed", failed);
    add_counts_brief(&mut r, &tr, o.queued, n as u64 * o.queued);
    r.addf("storm_s", secs(last), 3).addf("clients_per_s", ok as f64 / secs(last), 0);
    if let Some(b) = before {
        r.add("rss_before_kib", b.rss_kib).add("rss_peak_kib", peak.load(Ordering::Relaxed));
    }
    if let Some(a) = after {
        r.add("rss_after_kib", a.rss_kib);
    }
    if let Some(e) = first_err {
        r.add("first_error", format!("{e}").replace(' ', "_"));
    }
    Ok(r)
}
