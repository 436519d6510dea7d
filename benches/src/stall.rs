//! The `stall` scenario (issue 18): a subscriber that reads nothing.
//!
//! 1. A stalled subscriber (MQTT 3.1.1, clean session) subscribes to
//!    `stall/data` at QoS 0 or 1 and then never reads: its TCP receive
//!    window fills and the broker must queue (in memory up to the
//!    session's share of `queue_memory_bytes`, then spilled to disk up to
//!    the disk quotas, then dropped by `queue_full_policy`).
//! 2. A normal subscriber on the same topic at QoS 1 reads and
//!    acknowledges everything (its rate is the figure to compare with a
//!    run without the stalled one: `--baseline`).
//! 3. One publisher sends `bytes` in messages of `size` bytes at QoS 1,
//!    up to `window` in flight, each waiting for its PUBACK: any refusal
//!    (the broker closing it, a PUBACK not coming) is reported.
//!
//! The broker's RSS is sampled every 100 ms while publishing (peak, one
//! figure a second, and the end); with `metrics` (the broker's `[http]`
//! address) its queue, spill and drop counters are read at the end of
//! publishing. Finally (unless `drain` is off) the stalled subscriber
//! reads what the broker kept for it: received + dropped should be what
//! was published.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::client::Conn;
use crate::procfs::rss;
use crate::scenario::{add_counts, publish_loop, secs, subscribe_loop, PubSpec, SubSpec};
use crate::track::Tracker;
use crate::{metrics, wire, Error, Report, Target};

const TOPIC: &str = "stall/data";

/// `stall`: one publisher, a normal and (unless `baseline`) a stalled subscriber.
#[derive(Debug, Clone)]
pub struct StallOpts {
    /// QoS of the stalled subscriber's subscription (0 or 1).
    pub stalled_qos: u8,
    /// Run without the stalled subscriber (the reference rate).
    pub baseline: bool,
    /// Bytes published in total (payloads).
    pub bytes: u64,
    /// Payload bytes of each message (at least 20).
    pub size: usize,
    /// QoS 1 messages in flight from the publisher.
    pub window: usize,
    /// The broker's HTTP listener, for its `/metrics`.
    pub metrics: Option<std::net::SocketAddr>,
    /// Afterwards the stalled subscriber reads what was kept for it.
    pub drain: bool,
    /// Silence that ends the normal subscriber (after the publisher) and the drain.
    pub idle: Duration,
    pub timeout: Duration,
}

impl Default for StallOpts {
    fn default() -> Self {
        StallOpts {
            stalled_qos: 1,
            baseline: false,
            bytes: 1 << 30,
            size: 64 * 1024,
            window: 16,
            metrics: None,
            drain: true,
            idle: Duration::from_secs(5),
            timeout: Duration::from_secs(600),
        }
    }
}

/// `VmRSS` every 100 ms until stopped: peak and one sample a second.
fn sample_rss(pid: Option<u32>) -> (oneshot::Sender<()>, tokio::task::JoinHandle<(u64, Vec<u64>)>) {
    let (stop, mut stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let (mut peak, mut series) = (0u64, Vec::new());
        let Some(pid) = pid else { return (peak, series) };
        for tick in 0u64.. {
            let now = rss(pid).map_or(0, |r| r.rss_kib);
            peak = peak.max(now);
            if tick % 10 == 0 {
                series.push(now);
            }
            tokio::select! {
                _ = &mut stopped => break,
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
        (peak.max(rss(pid).map_or(0, |r| r.rss_kib)), series)
    });
    (stop, task)
}

/// Every `step`-th value, so a long run's series stays one readable field.
fn thin(series: &[u64], max: usize) -> String {
    let step = series.len().div_ceil(max.max(1)).max(1);
    series.iter().step_by(step).map(|v| v.to_string()).collect::<Vec<_>>().join(",")
}

/// The broker's queue, spill and drop figures (`/metrics`).
async fn add_metrics(r: &mut Report, addr: std::net::SocketAddr, prefix: &'static [(&'static str, &'static str)]) {
    match metrics::fetch(addr).await {
        Ok(text) => {
            for (key, series) in prefix {
                if let Some(v) = metrics::value(&text, series) {
                    r.add(key, v);
                }
            }
        }
        Err(e) => {
            r.add("metrics_error", e.to_string().replace(' ', "_"));
        }
    }
}

const QUEUE_METRICS: &[(&str, &str)] = &[
    ("queued_messages", "edgemq_queued_messages"),
    ("queued_bytes", "edgemq_queued_bytes"),
    ("inflight_messages", "edgemq_inflight_messages"),
    ("spill_bytes", "edgemq_store_spill_bytes"),
    ("dropped_queue_full", "edgemq_messages_dropped_total{cause=\"queue_full\"}"),
    ("dropped_disk_quota", "edgemq_messages_dropped_total{cause=\"disk_quota\"}"),
];

/// A publisher sends `bytes` at QoS 1 beside a subscriber that reads
/// nothing and one that reads everything: broker RSS over time, the
/// normal subscriber's rate and counts, what became of the stalled one's
/// queue, whether the publisher was ever refused.
pub async fn stall(t: &Target, o: &StallOpts) -> Result<Report, Error> {
    if o.stalled_qos > 1 {
        return Err(Error::Other("stall: the stalled subscriber's QoS is 0 or 1".into()));
    }
    let size = wire::payload_len(o.size);
    let n = (o.bytes / size as u64).max(1);
    let deadline = tokio::time::Instant::now() + o.timeout;
    let before = t.pid.and_then(rss);
    let stalled = if o.baseline {
        None
    } else {
        let mut c = Conn::connect(t.addr, "stall-stalled").await?;
        c.subscribe(TOPIC, o.stalled_qos).await?;
        Some(c)
    };
    let mut normal = Conn::connect(t.addr, "stall-normal").await?;
    normal.subscribe(TOPIC, 1).await?;
    let publisher = Conn::connect(t.addr, "stall-pub").await?;
    let done = Arc::new(AtomicBool::new(false));
    let spec =
        SubSpec { tracker: Tracker::new(1, n), expected: n, publishers_done: done.clone(), idle: o.idle, deadline };
    let (stop, sampler) = sample_rss(t.pid);
    let start = Instant::now();
    let sub = tokio::spawn(subscribe_loop(normal, spec));
    let spec = PubSpec { id: 0, topic: TOPIC.into(), qos: 1, count: n, size, window: o.window, deadline };
    let published = publish_loop(publisher, spec).await;
    done.store(true, std::sync::atomic::Ordering::Release);
    let pub_end = Instant::now();
    let out = sub.await.map_err(|e| Error::Other(format!("subscriber task failed: {e}")))??;
    let _ = stop.send(());
    let (peak, series) = sampler.await.unwrap_or_default();
    let end = t.pid.and_then(rss);

    let mut r = Report::new("stall");
    r.add("stalled", if o.baseline { "none".to_string() } else { format!("qos{}", o.stalled_qos) });
    r.add("size", size).add("sent", n).add("bytes", n * size as u64);
    match &published {
        Ok(_) => r.add("pub_refused", 0),
        Err(e) => r.add("pub_refused", 1).add("pub_error", e.to_string().replace(' ', "_")),
    };
    r.addf("pub_elapsed_s", secs(pub_end - start), 3).addf("pub_msgs_per_s", n as f64 / secs(pub_end - start), 0);
    add_counts(&mut r, &out.tracker, n, n);
    let rx_end = out.last_rx.unwrap_or(start);
    let rate = out.tracker.unique as f64 / secs(rx_end - start);
    r.addf("normal_msgs_per_s", rate, 0).addf("normal_mib_per_s", rate * size as f64 / 1_048_576.0, 1);
    if let Some(b) = before {
        r.add("rss_before_kib", b.rss_kib);
    }
    if t.pid.is_some() {
        r.add("rss_peak_kib", peak).add("rss_series_kib", thin(&series, 40));
    }
    if let Some(e) = end {
        r.add("rss_end_kib", e.rss_kib);
    }
    if let Some(addr) = o.metrics {
        add_metrics(&mut r, addr, QUEUE_METRICS).await;
    }
    if let Ok((c, _)) = published {
        c.close().await;
    }
    let Some(stalled) = stalled else { return Ok(r) };
    if !o.drain {
        drop(stalled);
        return Ok(r);
    }
    // The stalled subscriber wakes up and takes what was kept for it.
    let drain_start = Instant::now();
    let spec = SubSpec {
        tracker: Tracker::new(1, n),
        expected: n,
        publishers_done: Arc::new(AtomicBool::new(true)),
        idle: o.idle,
        deadline,
    };
    let drained = subscribe_loop(stalled, spec).await?;
    let tr = &drained.tracker;
    let drain_end = drained.last_rx.unwrap_or(drain_start).max(drain_start);
    r.add("stalled_received", tr.received)
        .add("stalled_unique", tr.unique)
        .add("stalled_missing", n - tr.unique.min(n));
    r.add("stalled_dup", tr.duplicates).add("stalled_ooo", tr.out_of_order);
    r.addf("stalled_drain_s", secs(drain_end - drain_start), 3);
    if let Some(a) = t.pid.and_then(rss) {
        r.add("rss_after_drain_kib", a.rss_kib);
    }
    if let Some(addr) = o.metrics {
        const AFTER: &[(&str, &str)] =
            &[("queued_messages_after", "edgemq_queued_messages"), ("spill_bytes_after", "edgemq_store_spill_bytes")];
        add_metrics(&mut r, addr, AFTER).await;
    }
    Ok(r)
}
