//! The `soak` scenario (issue 18): connect/disconnect churn for a long
//! time, with exactly-once bookkeeping.
//!
//! - **Persistent subscribers** (`subs`, half MQTT 3.1.1 with clean
//!   session 0, half MQTT 5 with Clean Start 0 and a Session Expiry
//!   Interval of 600 s) subscribe to `soak/data/#` at QoS 2, then go
//!   offline and come back over and over (online 0.3-3 s, offline
//!   0.2-2.5 s; half the time with DISCONNECT, half by dropping the
//!   socket without sending the last acknowledgements). Each keeps the
//!   client side of the QoS 2 flow across connections (the packet ids
//!   awaiting PUBREL, so a PUBLISH sent again with DUP is not taken
//!   twice) and records every QoS 1 and QoS 2 message by publisher and
//!   sequence number: a QoS 2 message seen twice is a duplicate, one not
//!   seen at the end is lost, and so is a QoS 1 message (QoS 1 may be
//!   duplicated).
//! - **Publishers** (`pubs_per_qos` at each QoS, alternately 3.1.1 and
//!   MQTT 5) publish `rate` messages/s each to `soak/data/ID`, up to 20 in
//!   flight; they too reconnect every 1-6 s, half the time abruptly. The
//!   QoS 1/2 ones have persistent sessions and send their unacknowledged
//!   messages again on reconnecting (PUBLISH with DUP, or PUBREL), as a
//!   client must: the broker has to take a QoS 2 message once.
//! - **Retained updates**: one client replaces (and one time in ten
//!   deletes) retained messages on `soak/ret/0..retained`, 20 a second.
//! - **Churners** (`churners` at once): connect, subscribe to a filter
//!   over `soak/`, read and acknowledge for 0.2-2 s, leave; as 3.1.1 clean
//!   sessions, MQTT 5 sessions expiring 1-3 s after they leave, or 3.1.1
//!   persistent sessions from a small pool that are resumed later.
//!
//! At the end the publishers finish their in-flight messages, the
//! persistent subscribers come back for the rest, every session is
//! discarded, and the broker's RSS and open file descriptors
//! (`/proc/PID/fd`) are read with nothing connected, to compare with the
//! start (and, loaded, after `checkpoint`, the first minute).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::procfs::{fds, rss};
use crate::scenario::raise_fd_limit;
use crate::soak_tasks::{
    churner, connect, persistent_sub, publisher, qos_of, retainer, Publisher, Rng, Shared, SubState,
};
use crate::{Error, Report, Target};

/// `soak`: churn for `duration`, QoS 2 tracked exactly once.
#[derive(Debug, Clone)]
pub struct SoakOpts {
    pub duration: Duration,
    /// When the "first minute" figures are read (RSS, file descriptors).
    pub checkpoint: Duration,
    /// Persistent subscribers with the exactly-once bookkeeping.
    pub subs: usize,
    /// Publishers at each of QoS 0, 1 and 2.
    pub pubs_per_qos: usize,
    /// Messages per second of each publisher.
    pub rate: f64,
    /// Churning clients at once.
    pub churners: usize,
    /// Retained topics updated.
    pub retained: usize,
    pub size: usize,
    pub seed: u64,
    /// Silence that ends the final drain of a persistent subscriber.
    pub idle: Duration,
    /// Bound of the wind-down (publishers finishing, subscribers draining).
    pub wind_down: Duration,
}

impl Default for SoakOpts {
    fn default() -> Self {
        SoakOpts {
            duration: Duration::from_secs(1800),
            checkpoint: Duration::from_secs(60),
            subs: 6,
            pubs_per_qos: 2,
            rate: 20.0,
            churners: 16,
            retained: 100,
            size: 64,
            seed: 1,
            idle: Duration::from_secs(5),
            wind_down: Duration::from_secs(120),
        }
    }
}

/// Churn for `o.duration` (see the module docs): RSS and open file
/// descriptors of the broker at the start, at `checkpoint` and at the
/// end; QoS 2 lost and duplicated, QoS 1 lost, per persistent subscriber
/// summed; connections made; errors.
pub async fn soak(t: &Target, o: &SoakOpts) -> Result<Report, Error> {
    raise_fd_limit(4 * (o.subs + 3 * o.pubs_per_qos + o.churners) as u64 + 256)?;
    let run = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos()).to_string();
    let sh = Arc::new(Shared::new(run.clone()));
    let fd_start = t.pid.and_then(fds);
    let rss_start = t.pid.and_then(rss);
    let start = tokio::time::Instant::now();

    let (totals, totals_rx) = watch::channel(None);
    let mut subs = JoinSet::new();
    for i in 0..o.subs {
        let (id, v5) = (format!("soak-sub-{run}-{i}"), i % 2 == 1);
        let mut c = connect(t, &id, v5, true).await?;
        c.subscribe("soak/data/#", 2).await?;
        let rng = Rng::new(o.seed, 1_000 + i as u64);
        subs.spawn(persistent_sub(*t, c, id, sh.clone(), totals_rx.clone(), rng, o.clone()));
    }
    let mut pubs = JoinSet::new();
    let n_pubs = 3 * o.pubs_per_qos as u32;
    for id in 0..n_pubs {
        let p = Publisher::new(id, (id / 3) % 2 == 1, format!("soak-pub-{run}-{id}"), o.size);
        pubs.spawn(publisher(*t, p, sh.clone(), Rng::new(o.seed, 2_000 + u64::from(id)), o.clone()));
    }
    let retained = tokio::spawn(retainer(*t, sh.clone(), Rng::new(o.seed, 3_000), o.clone()));
    let mut churn = JoinSet::new();
    for slot in 0..o.churners {
        churn.spawn(churner(*t, slot, sh.clone(), Rng::new(o.seed, 4_000 + slot as u64)));
    }

    // Loaded: the broker's figures once a second.
    let (mut peak, mut series, mut at_checkpoint) = (0u64, Vec::new(), None);
    let every = (o.duration.as_secs() / 12).max(1);
    let mut tick = 0u64;
    while start.elapsed() < o.duration {
        tokio::time::sleep_until(start + Duration::from_secs(tick + 1).min(o.duration)).await;
        tick += 1;
        let now = t.pid.and_then(rss).map_or(0, |r| r.rss_kib);
        peak = peak.max(now);
        if tick % every == 0 {
            series.push(now.to_string());
        }
        if at_checkpoint.is_none() && start.elapsed() >= o.checkpoint {
            at_checkpoint = Some((now, t.pid.and_then(fds), sh.online.load(Ordering::Relaxed)));
        }
    }
    let rss_end = t.pid.and_then(rss);
    let (fd_loaded, online_loaded) = (t.pid.and_then(fds), sh.online.load(Ordering::Relaxed));
    sh.stop.store(true, Ordering::Release);

    // Wind-down: the publishers' totals first, then the subscribers drain.
    let mut expected = vec![0u64; n_pubs as usize];
    let (mut pub_reconnects, mut resent, mut pub_sessions_lost, mut refused, mut completed_unknown) = (0, 0, 0, 0, 0);
    let mut sent = [0u64; 3];
    while let Some(r) = pubs.join_next().await {
        let (id, out) = r.map_err(|e| Error::Other(format!("publisher task failed: {e}")))?;
        expected[id as usize] = out.sent;
        sent[usize::from(qos_of(id))] += out.sent;
        pub_reconnects += out.reconnects;
        resent += out.resent;
        pub_sessions_lost += out.sessions_lost;
        refused += out.refused;
        completed_unknown += out.completed_unknown;
    }
    let _ = totals.send(Some(Arc::new(expected.clone())));
    let mut states = Vec::new();
    while let Some(r) = subs.join_next().await {
        states.push(r.map_err(|e| Error::Other(format!("subscriber task failed: {e}")))?);
    }
    let retained_updates = retained.await.unwrap_or(0);
    let mut churn_connects = 0;
    while let Some(r) = churn.join_next().await {
        churn_connects += r.unwrap_or(0);
    }
    // Everything is closed and every session discarded: the broker idle again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let fd_end = t.pid.and_then(fds);
    let rss_idle = t.pid.and_then(rss);

    let mut r = Report::new("soak");
    r.addf("secs", o.duration.as_secs_f64(), 0).add("subs", o.subs).add("pubs", n_pubs).add("churners", o.churners);
    r.add("q0_sent", sent[0]).add("q1_sent", sent[1]).add("q2_sent", sent[2]);
    let (mut q1_lost, mut q2_lost) = (0u64, 0u64);
    for st in &states {
        for (p, &n) in expected.iter().enumerate() {
            match qos_of(p as u32) {
                1 => q1_lost += st.q1.missing(p, n),
                2 => q2_lost += st.q2.missing(p, n),
                _ => {}
            }
        }
    }
    let sum = |f: fn(&SubState) -> u64| states.iter().map(f).sum::<u64>();
    r.add("q2_lost", q2_lost).add("q2_dup", sum(|s| s.q2.dups)).add("q1_lost", q1_lost);
    r.add("q1_dup", sum(|s| s.q1.dups)).add("q2_resent", sum(|s| s.q2_resent)).add("q0_received", sum(|s| s.q0));
    r.add("wrong_qos", sum(|s| s.wrong_qos)).add("sub_reconnects", sum(|s| s.reconnects));
    r.add("sessions_lost", sum(|s| s.sessions_lost) + pub_sessions_lost);
    r.add("pub_reconnects", pub_reconnects)
        .add("pub_resent", resent)
        .add("pub_refused", refused)
        .add("pub_pubcomp_not_found", completed_unknown);
    r.add("retained_updates", retained_updates).add("churn_connects", churn_connects);
    r.add("errors", sh.errors.load(Ordering::Relaxed));
    if let Some(b) = rss_start {
        r.add("rss_start_kib", b.rss_kib);
    }
    if let Some((k, fd, online)) = at_checkpoint {
        r.add("rss_1min_kib", k);
        if let Some(fd) = fd {
            r.add("fd_1min", fd);
        }
        r.add("conns_1min", online);
    }
    if let Some(e) = rss_end {
        r.add("rss_end_kib", e.rss_kib).add("rss_peak_kib", peak.max(e.rss_kib));
        if let Some((k, _, _)) = at_checkpoint.filter(|c| c.0 > 0) {
            r.addf("rss_change_pct", (e.rss_kib as f64 - k as f64) * 100.0 / k as f64, 1);
        }
        r.add("rss_series_kib", series.join(","));
    }
    if let Some(fd) = fd_loaded {
        r.add("fd_loaded_end", fd).add("conns_loaded_end", online_loaded);
    }
    if let Some(i) = rss_idle {
        r.add("rss_idle_end_kib", i.rss_kib);
    }
    if let (Some(a), Some(b)) = (fd_start, fd_end) {
        r.add("fd_start", a).add("fd_end", b);
    }
    if let Some(e) = sh.first_error.lock().ok().and_then(|f| f.clone()) {
        r.add("first_error", e.replace(' ', "_"));
    }
    Ok(r)
}
