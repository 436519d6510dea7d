//! `GET /metrics`: the registry in the Prometheus text format (0.0.4),
//! written by `prometheus-client`'s encoder (names, labels, escaping and
//! the histogram's buckets are the crate's, not formatted here). Each
//! scrape reads the atomics once; nothing is kept between scrapes.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::{Drops, Metrics, PerQos, Refusal};

/// The registry's figures and every registered group, as Prometheus text.
pub fn encode(metrics: &Arc<Metrics>) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::with_prefix("edgemq");
    registry.register_collector(Box::new(Core(metrics.clone())));
    for g in metrics.groups() {
        registry.register_collector(Box::new(Group(g)));
    }
    let mut out = String::with_capacity(8 * 1024);
    prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)?;
    Ok(out)
}

#[derive(Debug)]
struct Core(Arc<Metrics>);

/// A registered group, shared with its owner.
#[derive(Debug)]
struct Group(Arc<dyn Collector>);

impl Collector for Group {
    fn encode(&self, e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.0.encode(e)
    }
}

/// The authentication layer's refusal counters (`auth::stats`), a group
/// of the registry.
#[derive(Debug)]
pub struct AuthCollector(pub Arc<crate::auth::stats::AuthStats>);

impl Collector for AuthCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let c = self.0.counts();
        counter(
            &mut e,
            "auth_failures",
            "CONNECTs refused by authentication (credentials, enhanced authentication, another user's session)",
            c.auth_failures,
        )?;
        let denied = [
            ("publish", c.publish_denied),
            ("subscribe", c.subscribe_denied),
            ("will", c.will_denied),
            ("delivery", c.delivery_denied),
            ("retained", c.retained_denied),
        ];
        labelled(
            &mut e,
            "acl_denied",
            "What the ACL refused, by kind (retained deliveries also count as deliveries)",
            "kind",
            denied,
        )
    }
}

/// The bridges' figures (`bridge::BridgeStatus`), a group of the
/// registry, each series labelled with the bridge's name.
#[derive(Debug)]
pub struct BridgeCollector(pub Vec<Arc<crate::bridge::BridgeStatus>>);

impl Collector for BridgeCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use crate::bridge::status::Figures;
        let all: Vec<(&str, Figures)> = self.0.iter().map(|b| (b.name.as_str(), b.figures())).collect();
        type Field = fn(&Figures) -> u64;
        let fields: [(&str, &str, MetricType, Field); 6] = [
            ("bridge_connected", "1 while the bridge is connected to its remote", MetricType::Gauge, |f| {
                u64::from(f.connected)
            }),
            ("bridge_queued_messages", "Messages in the bridge's outgoing queue", MetricType::Gauge, |f| {
                f.queued_messages
            }),
            ("bridge_queued_bytes", "Bytes of the bridge's outgoing queue", MetricType::Gauge, |f| f.queued_bytes),
            (
                "bridge_oldest_queued_age_seconds",
                "Age of the oldest message in flight to the remote (0: none)",
                MetricType::Gauge,
                |f| f.oldest_queued_age_secs.unwrap_or(0),
            ),
            ("bridge_reconnects", "Connections to the remote after the first", MetricType::Counter, |f| f.reconnects),
            ("bridge_connect_failures", "Failed connection attempts", MetricType::Counter, |f| f.connect_failures),
        ];
        for (name, help, kind, get) in fields {
            let mut enc = e.encode_descriptor(name, help, None, kind)?;
            for (bridge, f) in &all {
                one_of(&mut enc, kind, ("bridge", bridge), get(f))?;
            }
        }
        let mut enc = e.encode_descriptor(
            "bridge_messages",
            "Messages through the bridge, by direction and outcome (out forwarded: acknowledged by the remote; \
             out dropped: by the queue's policy; out rejected: refused by the remote; in dropped: no in rule)",
            None,
            MetricType::Counter,
        )?;
        for (bridge, f) in &all {
            let series = [
                ("out", "forwarded", f.out_forwarded),
                ("out", "dropped", f.out_dropped),
                ("out", "rejected", f.out_rejected),
                ("in", "forwarded", f.in_forwarded),
                ("in", "dropped", f.in_dropped),
            ];
            for (direction, outcome, v) in series {
                let labels = [("bridge", *bridge), ("direction", direction), ("outcome", outcome)];
                ConstCounter::new(v).encode(enc.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// One series of a family of `kind` (a gauge or a counter) with one label.
fn one_of(
    enc: &mut prometheus_client::encoding::MetricEncoder,
    kind: MetricType,
    label: (&'static str, &str),
    v: u64,
) -> Result<(), std::fmt::Error> {
    let labels = [label];
    match kind {
        MetricType::Gauge => ConstGauge::new(v as i64).encode(enc.encode_family(&labels)?),
        _ => ConstCounter::new(v).encode(enc.encode_family(&labels)?),
    }
}

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(v);
    c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(v as i64);
    g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)
}

/// A counter family with one label.
fn labelled<'a>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    key: &'static str,
    values: impl IntoIterator<Item = (&'a str, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (label, v) in values {
        let labels = [(key, label)];
        ConstCounter::new(v).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

fn per_qos(e: &mut DescriptorEncoder, name: &str, help: &str, q: &PerQos) -> Result<(), std::fmt::Error> {
    labelled(e, name, help, "qos", ["0", "1", "2"].into_iter().zip(q.0.iter().map(super::Counter::get)))
}

fn drops(e: &mut DescriptorEncoder, d: &Drops) -> Result<(), std::fmt::Error> {
    // `queue_full` counts every queue drop, `disk_quota` a part of them:
    // the label splits them so that the series add up.
    let values = [
        ("queue_full", d.queue_full.get().saturating_sub(d.disk_quota.get())),
        ("disk_quota", d.disk_quota.get()),
        ("too_large", d.too_large.get()),
        ("expired", d.expired.get()),
        ("acl", d.acl.get()),
        ("offline_qos0", d.offline_qos0.get()),
    ];
    labelled(e, "messages_dropped", "Messages not delivered, by cause", "cause", values)
}

impl Collector for Core {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let m = &*self.0;
        per_qos(&mut e, "messages_received", "PUBLISH packets received from clients, by QoS", &m.received)?;
        per_qos(&mut e, "bytes_received", "Payload bytes of PUBLISH packets received, by QoS", &m.received_bytes)?;
        per_qos(&mut e, "messages_sent", "PUBLISH packets sent to clients, by QoS", &m.sent)?;
        per_qos(&mut e, "bytes_sent", "Payload bytes of PUBLISH packets sent, by QoS", &m.sent_bytes)?;
        counter(&mut e, "deliveries", "Deliveries queued for a session", m.delivered.get())?;
        drops(&mut e, &m.drops)?;
        counter(&mut e, "connects", "CONNECTs that opened, resumed or took over a session", m.connects.get())?;
        let refused = Refusal::ALL.iter().map(|r| (r.label(), m.connect_refused[*r as usize].get()));
        labelled(&mut e, "connects_refused", "CONNECTs refused, by reason", "reason", refused)?;
        counter(&mut e, "sessions_expired", "Sessions discarded at their expiry", m.sessions_expired.get())?;
        gauge(&mut e, "sessions", "Sessions held, online and offline", m.sessions.get())?;
        gauge(&mut e, "sessions_online", "Sessions with a connection", m.sessions_online.get())?;
        let offline = m.sessions.get().saturating_sub(m.sessions_online.get());
        gauge(&mut e, "sessions_offline", "Sessions without a connection", offline)?;
        gauge(&mut e, "subscriptions", "Subscriptions held", m.subscriptions.get())?;
        gauge(&mut e, "retained_messages", "Retained messages held", m.retained_messages.get())?;
        gauge(&mut e, "retained_bytes", "Bytes of retained messages (topic and payload)", m.retained_bytes.get())?;
        counter(&mut e, "retained_refused", "Retained messages not kept at a cap", m.retained_refused.get())?;
        gauge(&mut e, "queued_messages", "Messages waiting in session queues", m.queued_messages.get())?;
        gauge(&mut e, "queued_bytes", "Bytes of messages waiting in session queues", m.queued_bytes.get())?;
        gauge(&mut e, "inflight_messages", "Outgoing QoS 1/2 messages awaiting acknowledgement", m.inflight.get())?;
        listeners(&mut e, m)?;
        store(&mut e, m)
    }
}

fn listeners(e: &mut DescriptorEncoder, m: &Metrics) -> Result<(), std::fmt::Error> {
    let ls = m.listeners();
    type Field = fn(&super::ListenerMetrics) -> u64;
    let fields: [(&str, &str, MetricType, Field); 4] = [
        ("listener_connections_accepted", "Connections accepted", MetricType::Counter, |l| l.accepted.get()),
        ("listener_connections_open", "Connections open", MetricType::Gauge, |l| {
            l.open.load(std::sync::atomic::Ordering::Relaxed) as u64
        }),
        ("listener_connections_refused", "Connections refused: listener full", MetricType::Counter, |l| {
            l.refused_full.get()
        }),
        ("listener_handshake_failures", "Failed TLS handshakes and WebSocket upgrades", MetricType::Counter, |l| {
            l.handshake_failures.get()
        }),
    ];
    for (name, help, kind, get) in fields {
        let mut enc = e.encode_descriptor(name, help, None, kind)?;
        for l in &ls {
            one_of(&mut enc, kind, ("listener", l.url.as_str()), get(l))?;
        }
    }
    Ok(())
}

fn store(e: &mut DescriptorEncoder, m: &Metrics) -> Result<(), std::fmt::Error> {
    let secs = ConstGauge::new(m.snapshot_micros.get() as f64 / 1e6);
    secs.encode(e.encode_descriptor(
        "store_snapshot_seconds",
        "Duration of the last store snapshot",
        None,
        secs.metric_type(),
    )?)?;
    counter(e, "store_snapshots", "Store snapshots taken", m.snapshots.get())?;
    let Some(j) = m.store() else { return Ok(()) };
    use std::sync::atomic::Ordering::Relaxed;
    let log = j.stats();
    let written = log.bytes_written.load(Relaxed);
    gauge(e, "store_log_bytes", "Bytes of the store's log segments on disk", j.disk_bytes())?;
    counter(e, "store_bytes_written", "Bytes the log writer wrote", written)?;
    counter(e, "store_appends", "Records appended to the log", log.appends.load(Relaxed))?;
    counter(e, "store_records_written", "Records the log writer wrote", log.records_written.load(Relaxed))?;
    counter(e, "store_fdatasyncs", "fdatasync calls of the log writer", log.syncs.load(Relaxed))?;
    counter(e, "store_write_errors", "Failed attempts to write the log again", log.write_errors.load(Relaxed))?;
    gauge(
        e,
        "store_failing",
        "1 while the log cannot be written (nothing becomes durable)",
        u64::from(log.failing.load(Relaxed)),
    )?;
    let (sum, count, buckets) = log.sync_latency.snapshot();
    let mut h =
        e.encode_descriptor("store_sync_seconds", "Latency of the log's fdatasync", None, MetricType::Histogram)?;
    h.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
    if let Some((at, _)) = &*log.last_error.lock().unwrap_or_else(|p| p.into_inner()) {
        let t = at.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        gauge(e, "store_last_error_time_seconds", "When the log last failed to write or sync (Unix time)", t)?;
    }
    gauge(e, "store_spill_bytes", "Bytes of queues spilled to scratch files", j.spill.disk_used.load(Relaxed))
}
