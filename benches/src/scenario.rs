//! The benchmark scenarios. Every run is bounded in time and count.

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::task::JoinSet;

use crate::client::{Conn, SyncConn};
use crate::procfs::{rss, Rss};
use crate::track::Tracker;
use crate::wire::{self, now_nanos, Stamp};
use crate::{Error, Report, Target};

/// Messages encoded per write by a publisher (QoS 0; QoS 1/2 are also
/// bounded by the in-flight window).
const BATCH: usize = 64;

fn join_err(e: tokio::task::JoinError) -> Error {
    Error::Other(format!("task failed: {e}"))
}

pub(crate) fn secs(d: Duration) -> f64 {
    d.as_secs_f64().max(1e-9)
}

pub(crate) fn check_qos(qos: u8) -> Result<(), Error> {
    if qos > 2 {
        return Err(Error::Other(format!("QoS must be 0, 1 or 2, not {qos}")));
    }
    Ok(())
}

fn add_rss(r: &mut Report, before: Option<Rss>, after: Option<Rss>) {
    if let Some(b) = before {
        r.add("rss_before_kib", b.rss_kib);
    }
    if let Some(a) = after {
        r.add("rss_after_kib", a.rss_kib).add("peak_rss_kib", a.peak_kib);
    }
}

// ---------------------------------------------------------------- publisher

#[derive(Clone)]
pub(crate) struct PubSpec {
    pub(crate) id: u32,
    pub(crate) topic: String,
    pub(crate) qos: u8,
    pub(crate) count: u64,
    pub(crate) size: usize,
    pub(crate) window: usize,
    pub(crate) deadline: tokio::time::Instant,
}

/// Sends `count` messages as fast as the window allows; returns when all
/// are acknowledged (QoS 1: PUBACK; QoS 2: PUBCOMP).
pub(crate) async fn publish_loop(mut c: Conn, s: PubSpec) -> Result<(Conn, Instant), Error> {
    let (mut seq, mut inflight, mut pkid) = (0u64, 0usize, 0u16);
    // Packet identifiers cycle through 1..=65535, so the window must stay below.
    let window = s.window.clamp(1, 65_535);
    loop {
        let room = if s.qos == 0 { BATCH } else { window.saturating_sub(inflight).min(BATCH) };
        let k = (room as u64).min(s.count - seq);
        if k > 0 {
            let ts = now_nanos();
            for _ in 0..k {
                pkid = if pkid == u16::MAX { 1 } else { pkid + 1 };
                wire::publish(&mut c.wbuf, &s.topic, s.qos, pkid, Stamp { publisher: s.id, seq, ts }, s.size);
                seq += 1;
            }
            if s.qos > 0 {
                inflight += k as usize;
            }
        }
        c.flush().await?;
        if seq == s.count && inflight == 0 {
            return Ok((c, Instant::now()));
        }
        if s.qos == 0 {
            continue;
        }
        if inflight >= window || seq == s.count {
            tokio::time::timeout_at(s.deadline, c.read())
                .await
                .map_err(|_| Error::Timeout(format!("publisher {}: {inflight} messages unacknowledged", s.id)))??;
        } else {
            c.rbuf.reserve(4096);
            match c.stream.try_read_buf(&mut c.rbuf) {
                Ok(0) => return Err(Error::Closed),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e.into()),
            }
        }
        let mut off = 0;
        while let Some(f) = wire::next_frame(&c.rbuf[off..])? {
            let pk = wire::ack_pkid(&c.rbuf[off + f.body..off + f.len])?;
            match f.header & 0xF0 {
                wire::PUBACK | wire::PUBCOMP => inflight = inflight.saturating_sub(1),
                wire::PUBREC => wire::ack(&mut c.wbuf, wire::PUBREL, pk),
                t => return Err(Error::Protocol(format!("publisher got packet type 0x{t:02x}"))),
            }
            off += f.len;
        }
        c.rbuf.advance(off);
    }
}

/// Runs one publisher per connection (`spec` with `id` = its index and
/// topic `bench/ID`) until every one is done; returns the connections
/// and when the last one finished (the first error if any failed, after
/// all have ended).
pub(crate) async fn publish_all(
    conns: Vec<Conn>,
    spec: &PubSpec,
    start: Instant,
) -> Result<(Vec<Conn>, Instant), Error> {
    let mut set = JoinSet::new();
    for (i, c) in conns.into_iter().enumerate() {
        set.spawn(publish_loop(c, PubSpec { id: i as u32, topic: format!("bench/{i}"), ..spec.clone() }));
    }
    let mut end = start;
    let mut done = Vec::new();
    let mut first_err = None;
    while let Some(r) = set.join_next().await {
        match r.map_err(join_err).and_then(|r| r) {
            Ok((c, at)) => {
                end = end.max(at);
                done.push(c);
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok((done, end)),
    }
}

// --------------------------------------------------------------- subscriber

pub(crate) struct SubSpec {
    pub(crate) tracker: Tracker,
    /// Unique messages after which the subscriber is done.
    pub(crate) expected: u64,
    /// Set once every publisher is done; then `idle` without data ends the run.
    pub(crate) publishers_done: Arc<AtomicBool>,
    pub(crate) idle: Duration,
    pub(crate) deadline: tokio::time::Instant,
}

pub(crate) struct SubOutcome {
    pub(crate) tracker: Tracker,
    pub(crate) last_rx: Option<Instant>,
}

pub(crate) async fn subscribe_loop(mut c: Conn, mut s: SubSpec) -> Result<SubOutcome, Error> {
    let mut last_rx = None;
    // Messages may have come in with the CONNACK (a persistent session's
    // backlog): parse what is buffered before reading more.
    let mut buffered = !c.rbuf.is_empty();
    while s.tracker.unique < s.expected {
        let now = tokio::time::Instant::now();
        if now >= s.deadline {
            break;
        }
        if !std::mem::take(&mut buffered) {
            match tokio::time::timeout(s.idle.min(s.deadline - now), c.read()).await {
                Ok(r) => {
                    r?;
                }
                Err(_) if s.publishers_done.load(Ordering::Acquire) => break,
                Err(_) => continue,
            }
        }
        let mut off = 0;
        let mut got = false;
        while let Some(f) = wire::next_frame(&c.rbuf[off..])? {
            let body = &c.rbuf[off + f.body..off + f.len];
            match f.header & 0xF0 {
                wire::PUBLISH => {
                    let r = wire::parse_publish(f.header, body)?;
                    s.tracker.record(r.publisher, r.seq);
                    got = true;
                    match r.qos {
                        1 => wire::ack(&mut c.wbuf, wire::PUBACK, r.pkid),
                        2 => wire::ack(&mut c.wbuf, wire::PUBREC, r.pkid),
                        _ => {}
                    }
                }
                0x60 => wire::ack(&mut c.wbuf, wire::PUBCOMP, wire::ack_pkid(body)?),
                wire::PINGRESP => {}
                t => return Err(Error::Protocol(format!("subscriber got packet type 0x{t:02x}"))),
            }
            off += f.len;
        }
        if got {
            last_rx = Some(Instant::now());
        }
        c.rbuf.advance(off);
        c.flush().await?;
    }
    c.close().await;
    Ok(SubOutcome { tracker: s.tracker, last_rx })
}

/// The counts of one subscriber that expected `per` messages from each
/// publisher, `total` in all: received, unique, lost, duplicates,
/// reordering and, when messages are missing, which publishers lost how
/// many (`lost_by_pub=0:12,3:40`).
pub(crate) fn add_counts(r: &mut Report, tr: &Tracker, per: u64, total: u64) {
    r.add("received", tr.received).add("unique", tr.unique).add("lost", total - tr.unique.min(total));
    r.add("dup", tr.duplicates).add("ooo", tr.out_of_order).add("foreign", tr.foreign);
    r.add("dup_pubs", tr.publishers_with_duplicates()).add("ooo_pubs", tr.publishers_out_of_order());
    let lost: Vec<String> = tr
        .per_publisher()
        .iter()
        .enumerate()
        .filter(|(_, p)| p.0 < per)
        .map(|(i, p)| format!("{i}:{}", per - p.0))
        .collect();
    if !lost.is_empty() {
        r.add("lost_by_pub", lost.join(","));
    }
}

// ------------------------------------------------------------------ fan-in

/// `fanin`: P publishers to one subscriber on `bench/#`.
#[derive(Debug, Clone)]
pub struct FaninOpts {
    pub publishers: usize,
    pub qos: u8,
    /// Payload bytes (at least 20: publisher id, sequence, timestamp).
    pub size: usize,
    /// Messages in total (split evenly between publishers).
    pub messages: u64,
    /// QoS 1/2 messages in flight per publisher.
    pub window: usize,
    /// Silence after the publishers finish that ends the run.
    pub idle: Duration,
    /// Bound of the whole run.
    pub timeout: Duration,
    /// The subscriber uses a persistent session (clean session 0, a fresh
    /// client id per run): with a durable broker, every QoS 1/2 message
    /// must reach the disk before it is acknowledged.
    pub persistent: bool,
}

impl Default for FaninOpts {
    fn default() -> Self {
        FaninOpts {
            publishers: 8,
            qos: 0,
            size: 64,
            messages: 200_000,
            window: 100,
            idle: Duration::from_secs(2),
            timeout: Duration::from_secs(120),
            persistent: false,
        }
    }
}

/// Publishers to topics `bench/ID`, one subscriber on `bench/#`: messages
/// per second received, loss, duplicates and reordering per publisher.
pub async fn fanin(t: &Target, o: &FaninOpts) -> Result<Report, Error> {
    check_qos(o.qos)?;
    let p = o.publishers.max(1);
    let per = (o.messages / p as u64).max(1);
    let total = per * p as u64;
    let before = t.pid.and_then(rss);
    let deadline = tokio::time::Instant::now() + o.timeout;
    let mut sub = if o.persistent {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        Conn::connect_session(t.addr, &format!("bench-sub-p{nanos}"), false).await?
    } else {
        Conn::connect(t.addr, "bench-sub-0").await?
    };
    sub.subscribe("bench/#", o.qos).await?;
    let mut pubs = Vec::with_capacity(p);
    for i in 0..p {
        pubs.push(Conn::connect(t.addr, &format!("bench-pub-{i}")).await?);
    }
    let done = Arc::new(AtomicBool::new(false));
    let spec = SubSpec {
        tracker: Tracker::new(p, per),
        expected: total,
        publishers_done: done.clone(),
        idle: o.idle,
        deadline,
    };
    let start = Instant::now();
    let sub = tokio::spawn(subscribe_loop(sub, spec));
    let spec =
        PubSpec { id: 0, topic: String::new(), qos: o.qos, count: per, size: o.size, window: o.window, deadline };
    let published = publish_all(pubs, &spec, start).await;
    done.store(true, Ordering::Release);
    let out = sub.await.map_err(join_err)??;
    let after = t.pid.and_then(rss);
    let (conns, pub_end) = published?;
    for c in conns {
        c.close().await;
    }
    let tr = &out.tracker;
    let end = out.last_rx.unwrap_or(start);
    let mut r = Report::new("fanin");
    r.add("qos", o.qos)
        .add("persistent", u8::from(o.persistent))
        .add("pubs", p)
        .add("size", wire::payload_len(o.size))
        .add("sent", total);
    add_counts(&mut r, tr, per, total);
    r.addf("elapsed_s", secs(end - start), 3);
    r.addf("msgs_per_s", tr.unique as f64 / secs(end - start), 0);
    r.addf("pub_msgs_per_s", total as f64 / secs(pub_end - start), 0);
    add_rss(&mut r, before, after);
    Ok(r)
}

// ----------------------------------------------------------------- fan-out

/// `fanout`: one publisher to K subscribers of one topic.
#[derive(Debug, Clone)]
pub struct FanoutOpts {
    pub subscribers: usize,
    pub qos: u8,
    pub size: usize,
    /// Messages published (each delivered to every subscriber).
    pub messages: u64,
    pub window: usize,
    pub idle: Duration,
    pub timeout: Duration,
}

impl Default for FanoutOpts {
    fn default() -> Self {
        FanoutOpts {
            subscribers: 8,
            qos: 0,
            size: 64,
            messages: 100_000,
            window: 100,
            idle: Duration::from_secs(2),
            timeout: Duration::from_secs(120),
        }
    }
}

/// One publisher on `bench/fanout`, K subscribers: deliveries per second.
pub async fn fanout(t: &Target, o: &FanoutOpts) -> Result<Report, Error> {
    check_qos(o.qos)?;
    let k = o.subscribers.max(1);
    let n = o.messages.max(1);
    let before = t.pid.and_then(rss);
    let deadline = tokio::time::Instant::now() + o.timeout;
    let topic = "bench/fanout";
    let done = Arc::new(AtomicBool::new(false));
    let mut subs = Vec::with_capacity(k);
    for i in 0..k {
        let mut c = Conn::connect(t.addr, &format!("bench-sub-{i}")).await?;
        c.subscribe(topic, o.qos).await?;
        let spec =
            SubSpec { tracker: Tracker::new(1, n), expected: n, publishers_done: done.clone(), idle: o.idle, deadline };
        subs.push((c, spec));
    }
    let publisher = Conn::connect(t.addr, "bench-pub-0").await?;
    let start = Instant::now();
    let subs: Vec<_> = subs.into_iter().map(|(c, s)| tokio::spawn(subscribe_loop(c, s))).collect();
    let spec = PubSpec { id: 0, topic: topic.into(), qos: o.qos, count: n, size: o.size, window: o.window, deadline };
    let published = tokio::spawn(publish_loop(publisher, spec)).await.map_err(join_err);
    done.store(true, Ordering::Release);
    let mut outs = Vec::with_capacity(k);
    for s in subs {
        outs.push(s.await.map_err(join_err)??);
    }
    let (publisher, pub_end) = published??;
    publisher.close().await;
    let after = t.pid.and_then(rss);
    let sum = |f: fn(&Tracker) -> u64| outs.iter().map(|o| f(&o.tracker)).sum::<u64>();
    let unique = sum(|t| t.unique);
    let expected = n * k as u64;
    let end = outs.iter().filter_map(|o| o.last_rx).max().unwrap_or(start);
    let mut r = Report::new("fanout");
    r.add("qos", o.qos).add("subs", k).add("size", wire::payload_len(o.size)).add("sent", n);
    r.add("expected", expected).add("received", sum(|t| t.received)).add("unique", unique);
    r.add("lost", expected - unique.min(expected)).add("dup", sum(|t| t.duplicates));
    r.add("ooo", sum(|t| t.out_of_order)).add("foreign", sum(|t| t.foreign));
    r.addf("elapsed_s", secs(end - start), 3);
    r.addf("deliveries_per_s", unique as f64 / secs(end - start), 0);
    r.addf("pub_msgs_per_s", n as f64 / secs(pub_end - start), 0);
    add_rss(&mut r, before, after);
    Ok(r)
}

// ----------------------------------------------------------------- latency

/// `latency`: a fixed publish rate, one publisher, one subscriber.
#[derive(Debug, Clone)]
pub struct LatencyOpts {
    /// Messages per second.
    pub rate: u64,
    /// Measured messages.
    pub messages: u64,
    /// Messages sent first and left out of the figures.
    pub warmup: u64,
    pub qos: u8,
    pub size: usize,
    pub timeout: Duration,
}

impl Default for LatencyOpts {
    fn default() -> Self {
        LatencyOpts { rate: 5_000, messages: 25_000, warmup: 2_500, qos: 0, size: 64, timeout: Duration::from_secs(60) }
    }
}

pub(crate) fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

fn lock<T>(m: &Mutex<T>) -> Result<std::sync::MutexGuard<'_, T>, Error> {
    m.lock().map_err(|_| Error::Other("a thread panicked".into()))
}

/// Blocking subscriber of the latency scenario: records send-to-receive
/// times (ns) of messages with `seq >= warmup`.
fn latency_subscriber(
    mut c: SyncConn,
    total: u64,
    warmup: u64,
    done: &AtomicBool,
    deadline: Instant,
) -> Result<(Tracker, Vec<u64>), Error> {
    let mut tr = Tracker::new(1, total);
    let mut lat = Vec::with_capacity(total.saturating_sub(warmup) as usize);
    let mut idle_since: Option<Instant> = None;
    let mut w = BytesMut::new();
    c.stream.set_read_timeout(Some(Duration::from_millis(100)))?;
    while tr.unique < total && Instant::now() < deadline {
        match c.read() {
            Ok(_) => idle_since = None,
            Err(Error::Io(e)) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                if done.load(Ordering::Acquire) {
                    let since = *idle_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > Duration::from_secs(2) {
                        break;
                    }
                }
                continue;
            }
            Err(e) => return Err(e),
        }
        let mut acked = 0;
        crate::fleet::take_frames_into(&mut c.rbuf, &mut w, &mut tr, &mut lat, warmup, &mut acked)?;
        if !w.is_empty() {
            c.stream.write_all(&w)?;
            w.clear();
        }
    }
    Ok((tr, lat))
}

/// Reads the publisher's acknowledgements, answering PUBREC with PUBREL.
fn latency_acks(
    mut c: SyncConn,
    writer: &Mutex<std::net::TcpStream>,
    total: u64,
    deadline: Instant,
) -> Result<u64, Error> {
    let mut completed = 0u64;
    let mut w = BytesMut::new();
    c.stream.set_read_timeout(Some(Duration::from_millis(100)))?;
    while completed < total && Instant::now() < deadline {
        match c.read() {
            Ok(_) => {}
            Err(Error::Io(e)) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                continue
            }
            Err(e) => return Err(e),
        }
        let mut off = 0;
        while let Some(f) = wire::next_frame(&c.rbuf[off..])? {
            let pk = wire::ack_pkid(&c.rbuf[off + f.body..off + f.len])?;
            match f.header & 0xF0 {
                wire::PUBACK | wire::PUBCOMP => completed += 1,
                wire::PUBREC => wire::ack(&mut w, wire::PUBREL, pk),
                _ => {}
            }
            off += f.len;
        }
        c.rbuf.advance(off);
        if !w.is_empty() {
            lock(writer)?.write_all(&w)?;
            w.clear();
        }
    }
    Ok(completed)
}

/// One publisher at a fixed rate (paced by a thread, one message per
/// write), one subscriber: p50/p99/p99.9/max send-to-receive latency in µs.
/// Blocking: call it from a thread, not from inside an async task.
pub fn latency(t: &Target, o: &LatencyOpts) -> Result<Report, Error> {
    check_qos(o.qos)?;
    let rate = o.rate.max(1);
    let total = o.messages.max(1) + o.warmup;
    let deadline = Instant::now() + o.timeout;
    let topic = "bench/lat";
    let mut sub = SyncConn::connect(t.addr, "bench-lat-sub", crate::client::HANDSHAKE_TIMEOUT)?;
    sub.subscribe(topic, o.qos)?;
    let publisher = SyncConn::connect(t.addr, "bench-lat-pub", crate::client::HANDSHAKE_TIMEOUT)?;
    let writer = Mutex::new(publisher.stream.try_clone()?);
    let done = AtomicBool::new(false);
    let before = t.pid.and_then(rss);
    let (sent, sub_out, acks) = std::thread::scope(|s| {
        let sub_thread = s.spawn(|| latency_subscriber(sub, total, o.warmup, &done, deadline));
        let ack_thread = (o.qos > 0).then(|| s.spawn(|| latency_acks(publisher, &writer, total, deadline)));
        let mut buf = BytesMut::with_capacity(256);
        let start = Instant::now();
        let mut sent = 0u64;
        let mut err = None;
        for seq in 0..total {
            let due = start + Duration::from_nanos(seq * 1_000_000_000 / rate);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if Instant::now() > deadline {
                break;
            }
            let stamp = Stamp { publisher: 0, seq, ts: now_nanos() };
            wire::publish(&mut buf, topic, o.qos, (seq % 65535 + 1) as u16, stamp, o.size);
            let r = lock(&writer).and_then(|mut w| w.write_all(&buf).map_err(Error::from));
            buf.clear();
            if let Err(e) = r {
                err = Some(e);
                break;
            }
            sent += 1;
        }
        done.store(true, Ordering::Release);
        let sub_out = sub_thread.join().map_err(|_| Error::Other("subscriber thread panicked".into()));
        let acks = ack_thread.map(|h| h.join().map_err(|_| Error::Other("ack thread panicked".into())));
        match err {
            Some(e) => Err(e),
            None => Ok((sent, sub_out, acks)),
        }
    })?;
    let (tr, mut lat) = sub_out??;
    let acked = match acks {
        Some(a) => a??,
        None => sent,
    };
    let after = t.pid.and_then(rss);
    lat.sort_unstable();
    let mut r = Report::new("latency");
    r.add("qos", o.qos).add("rate", rate).add("size", wire::payload_len(o.size)).add("sent", sent);
    r.add("acked", acked).add("received", tr.received).add("unique", tr.unique);
    r.add("lost", sent - tr.unique.min(sent)).add("dup", tr.duplicates).add("ooo", tr.out_of_order);
    r.add("measured", lat.len());
    r.addf("p50_us", percentile(&lat, 0.5), 1).addf("p99_us", percentile(&lat, 0.99), 1);
    r.addf("p999_us", percentile(&lat, 0.999), 1).addf("max_us", percentile(&lat, 1.0), 1);
    add_rss(&mut r, before, after);
    Ok(r)
}

// ---------------------------------------------------------- connections

/// `conns`: many idle connections.
#[derive(Debug, Clone)]
pub struct ConnsOpts {
    pub connections: usize,
    /// Connection attempts in progress at once.
    pub concurrency: usize,
    /// Wait after the last CONNACK before reading the broker's memory.
    pub settle: Duration,
}

impl Default for ConnsOpts {
    fn default() -> Self {
        ConnsOpts { connections: 5_000, concurrency: 100, settle: Duration::from_secs(1) }
    }
}

/// Raises this process's open-file limit to at least `needed` if the hard
/// limit allows; returns the new soft limit.
pub fn raise_fd_limit(needed: u64) -> Result<u64, Error> {
    let got = rlimit::increase_nofile_limit(needed)?;
    if got < needed {
        return Err(Error::Other(format!("open-file limit is {got}, {needed} needed (raise the hard limit)")));
    }
    Ok(got)
}

/// Opens one connection per client id, `concurrency` attempts at a time
/// (persistent sessions when `persistent`); returns those that completed
/// CONNECT/CONNACK, in no particular order, and the errors of the others.
pub(crate) async fn connect_many(
    addr: SocketAddr,
    ids: &[String],
    concurrency: usize,
    persistent: bool,
) -> (Vec<Conn>, Vec<Error>) {
    let mut set = JoinSet::new();
    let (mut open, mut errors) = (Vec::with_capacity(ids.len()), Vec::new());
    let mut next = ids.iter();
    loop {
        while set.len() < concurrency.max(1) {
            let Some(id) = next.next().cloned() else { break };
            set.spawn(async move { Conn::connect_session(addr, &id, !persistent).await });
        }
        let Some(r) = set.join_next().await else { break };
        match r.map_err(join_err).and_then(|r| r) {
            Ok(conn) => open.push(conn),
            Err(e) => errors.push(e),
        }
    }
    (open, errors)
}

/// Opens C connections (CONNECT/CONNACK each, `concurrency` at a time),
/// keeps them idle, and reads the broker's memory before and after.
pub async fn conns(t: &Target, o: &ConnsOpts) -> Result<Report, Error> {
    let c = o.connections.max(1);
    raise_fd_limit(c as u64 + 256)?;
    let before = t.pid.and_then(rss);
    let start = Instant::now();
    let ids: Vec<String> = (0..c).map(|i| format!("bench-idle-{i}")).collect();
    let (open, errors) = connect_many(t.addr, &ids, o.concurrency, false).await;
    let failed = errors.len();
    let first_err = errors.into_iter().next();
    let elapsed = start.elapsed();
    tokio::time::sleep(o.settle).await;
    let after = t.pid.and_then(rss);
    let ok = open.len();
    drop(open);
    let mut r = Report::new("conns");
    r.add("conns", c).add("connected", ok).add("failed", failed);
    r.addf("elapsed_s", secs(elapsed), 3).addf("conns_per_s", ok as f64 / secs(elapsed), 0);
    add_rss(&mut r, before, after);
    if let (Some(b), Some(a)) = (before, after) {
        r.addf("kib_per_conn", a.rss_kib.saturating_sub(b.rss_kib) as f64 / ok.max(1) as f64, 2);
    }
    if let Some(e) = first_err {
        r.add("first_error", format!("{e}").replace(' ', "_"));
    }
    Ok(r)
}

// ----------------------------------------------------------------- startup

/// `startup`: the broker command to start and the address it will serve.
#[derive(Debug, Clone)]
pub struct StartupOpts {
    pub command: Vec<String>,
    pub addr: SocketAddr,
    /// How long the broker may take to answer.
    pub timeout: Duration,
    /// Wait after the first CONNACK before reading the idle RSS.
    pub settle: Duration,
}

/// Kills the broker when the scenario ends, whatever happens.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the broker, connects until the first CONNACK (retrying every
/// 0.5 ms), then reads its idle RSS. Blocking.
pub fn startup(o: &StartupOpts) -> Result<Report, Error> {
    let Some((prog, args)) = o.command.split_first() else {
        return Err(Error::Other("startup: no broker command given".into()));
    };
    let t0 = Instant::now();
    let child =
        Command::new(prog).args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
    let mut child = KillOnDrop(child);
    let mut attempts = 0u64;
    let up = loop {
        attempts += 1;
        match SyncConn::connect(o.addr, "bench-startup", Duration::from_secs(1)) {
            Ok(c) => break (t0.elapsed(), c),
            Err(e) => {
                if let Ok(Some(status)) = child.0.try_wait() {
                    return Err(Error::Other(format!("broker exited during startup: {status}")));
                }
                if t0.elapsed() > o.timeout {
                    return Err(Error::Timeout(format!("waiting for the first CONNACK ({e})")));
                }
                std::thread::sleep(Duration::from_micros(500));
            }
        }
    };
    let (to_connack, conn) = up;
    let mut w = BytesMut::new();
    wire::disconnect(&mut w);
    let mut s = conn.stream;
    let _ = s.write_all(&w);
    drop(s);
    std::thread::sleep(o.settle);
    let idle = rss(child.0.id());
    let mut r = Report::new("startup");
    r.addf("startup_ms", to_connack.as_secs_f64() * 1000.0, 2).add("attempts", attempts);
    if let Some(m) = idle {
        r.add("idle_rss_kib", m.rss_kib).add("peak_rss_kib", m.peak_kib);
    }
    Ok(r)
}
