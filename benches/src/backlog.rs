//! The `backlog` scenario: store-and-forward for a subscriber that is away.
//!
//! 1. A subscriber with a persistent session (MQTT 3.1.1 clean session 0, a
//!    fresh client id per run) subscribes to `bench/#` at QoS 1 or 2 and
//!    disconnects cleanly (DISCONNECT, then waits for the broker to close).
//! 2. P publishers send N messages in total to `bench/ID` (the pipelined
//!    publishers of `fanin`), which the broker must queue for the absent
//!    subscriber. The broker's RSS is read before, sampled every 100 ms
//!    while publishing, and read once more after the publishers are gone
//!    and the broker has settled (`settle`, 1 s).
//! 3. The subscriber comes back (same client id, clean session 0) and
//!    drains its queue, acknowledging everything (PUBACK; PUBREC/PUBCOMP);
//!    the drain rate runs from its CONNACK to the last message. The
//!    tracker counts what is lost (QoS 1/2: anything short of N),
//!    duplicated or reordered per publisher.
//!
//! Finally a clean-session connection with the same client id discards
//! the session, so repeated runs against one broker leave nothing behind.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::client::{Conn, HANDSHAKE_TIMEOUT};
use crate::procfs::rss;
use crate::scenario::{add_counts, check_qos, publish_all, secs, subscribe_loop, PubSpec, SubSpec};
use crate::track::Tracker;
use crate::wire;
use crate::{Error, Report, Target};

/// How often the broker's RSS is sampled while publishing and draining.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// `backlog`: messages queued for an offline persistent session, then drained.
#[derive(Debug, Clone)]
pub struct BacklogOpts {
    pub publishers: usize,
    /// 1 or 2 (QoS 0 messages are not queued for offline sessions).
    pub qos: u8,
    /// Payload bytes (at least 20: publisher id, sequence, timestamp).
    pub size: usize,
    /// Messages in total (split evenly between publishers).
    pub messages: u64,
    /// QoS 1/2 messages in flight per publisher.
    pub window: usize,
    /// Wait after publishing before reading the RSS of the queued messages.
    pub settle: Duration,
    /// Silence during the drain that ends it (messages are missing).
    pub idle: Duration,
    /// Bound of the whole run.
    pub timeout: Duration,
}

impl Default for BacklogOpts {
    fn default() -> Self {
        BacklogOpts {
            publishers: 8,
            qos: 1,
            size: 64,
            messages: 1_000_000,
            window: 100,
            settle: Duration::from_secs(1),
            idle: Duration::from_secs(5),
            timeout: Duration::from_secs(240),
        }
    }
}

/// The highest `VmRSS` of a process, sampled every [`SAMPLE_EVERY`] until
/// [`PeakSampler::finish`] (which takes one last sample).
struct PeakSampler {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Option<u64>>,
}

impl PeakSampler {
    fn start(pid: Option<u32>) -> PeakSampler {
        let (stop, mut stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let pid = pid?;
            let mut peak = None;
            loop {
                peak = peak.max(rss(pid).map(|r| r.rss_kib));
                tokio::select! {
                    _ = &mut stopped => break,
                    () = tokio::time::sleep(SAMPLE_EVERY) => {}
                }
            }
            peak.max(rss(pid).map(|r| r.rss_kib))
        });
        PeakSampler { stop, task }
    }

    async fn finish(self) -> Option<u64> {
        let _ = self.stop.send(());
        self.task.await.ok().flatten()
    }
}

fn unique_client_id() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("bench-backlog-{nanos}")
}

/// Queues N messages for an offline persistent subscriber, then drains
/// them: publish and drain rates, broker RSS while queued and per queued
/// message, loss, duplicates and reordering per publisher.
pub async fn backlog(t: &Target, o: &BacklogOpts) -> Result<Report, Error> {
    check_qos(o.qos)?;
    if o.qos == 0 {
        return Err(Error::Other("backlog needs QoS 1 or 2 (QoS 0 is not queued for offline sessions)".into()));
    }
    let p = o.publishers.max(1);
    let per = (o.messages / p as u64).max(1);
    let total = per * p as u64;
    let deadline = tokio::time::Instant::now() + o.timeout;
    let id = unique_client_id();

    // 1. The persistent session and its subscription, then away.
    let mut sub = Conn::connect_session(t.addr, &id, false).await?;
    sub.subscribe("bench/#", o.qos).await?;
    sub.close_and_wait(HANDSHAKE_TIMEOUT).await;

    // 2. Publish while the subscriber is offline.
    let mut pubs = Vec::with_capacity(p);
    for i in 0..p {
        pubs.push(Conn::connect(t.addr, &format!("bench-backlog-pub-{i}")).await?);
    }
    let before = t.pid.and_then(rss);
    let sampler = PeakSampler::start(t.pid);
    let start = Instant::now();
    let spec =
        PubSpec { id: 0, topic: String::new(), qos: o.qos, count: per, size: o.size, window: o.window, deadline };
    let published = publish_all(pubs, &spec, start).await;
    let pub_peak = sampler.finish().await;
    let (conns, pub_end) = published?;
    for c in conns {
        c.close().await;
    }
    tokio::time::sleep(o.settle).await;
    let queued = t.pid.and_then(rss);

    // 3. Back online: drain the queue.
    let sampler = PeakSampler::start(t.pid);
    let sub = Conn::connect_session(t.addr, &id, false).await?;
    let drain_start = Instant::now();
    let session_present = sub.session_present;
    let spec = SubSpec {
        tracker: Tracker::new(p, per),
        expected: total,
        publishers_done: Arc::new(AtomicBool::new(true)),
        idle: o.idle,
        deadline,
    };
    let drained = subscribe_loop(sub, spec).await;
    let drain_peak = sampler.finish().await;
    let out = drained?;
    let after = t.pid.and_then(rss);
    if let Ok(c) = Conn::connect(t.addr, &id).await {
        c.close().await;
    }

    let tr = &out.tracker;
    let drain_end = out.last_rx.unwrap_or(drain_start).max(drain_start);
    let mut r = Report::new("backlog");
    r.add("qos", o.qos).add("pubs", p).add("size", wire::payload_len(o.size)).add("sent", total);
    r.add("session_present", u8::from(session_present));
    r.addf("pub_elapsed_s", secs(pub_end - start), 3).addf("pub_rate", total as f64 / secs(pub_end - start), 0);
    add_counts(&mut r, tr, per, total);
    r.addf("drain_elapsed_s", secs(drain_end - drain_start), 3);
    r.addf("drain_rate", tr.unique as f64 / secs(drain_end - drain_start), 0);
    if let Some(b) = before {
        r.add("rss_before_kib", b.rss_kib);
    }
    if let Some(k) = pub_peak {
        r.add("rss_peak_kib", k);
    }
    if let Some(q) = queued {
        r.add("rss_queued_kib", q.rss_kib);
    }
    if let Some(k) = drain_peak {
        r.add("rss_drain_peak_kib", k);
    }
    if let Some(a) = after {
        r.add("rss_after_kib", a.rss_kib);
    }
    if let (Some(b), Some(q)) = (before, queued) {
        // Broker memory per queued message, in bytes (negative if RSS fell).
        r.addf("rss_per_msg_b", (q.rss_kib as f64 - b.rss_kib as f64) * 1024.0 / total as f64, 1);
    }
    Ok(r)
}
