//! The broker's one registry of counters and gauges ([`Metrics`]): plain
//! atomics kept where the events happen (the router, the connection
//! drivers, the session queues, the listeners, the store's log writer),
//! read by `$SYS` (`router/sys.rs`), by `GET /metrics` (encoded with
//! `prometheus-client` in `prom.rs`) and by the admin API.
//!
//! Cost on the hot path: one relaxed atomic add per event, no lock, no
//! allocation. One [`Metrics`] per broker (tests run several brokers in one
//! process), shared as an `Arc`: the server makes it and hands it to the
//! queue pool (where the router and every session find it), to each
//! listener's connection settings and to the HTTP task.
//!
//! Other parts (a bridge) add their own counters as a group:
//! [`Metrics::register_group`] takes anything that implements
//! `prometheus_client::collector::Collector`; it is encoded with the rest
//! on every scrape.

mod prom;

pub use prom::{encode, AuthCollector, BridgeCollector};

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::protocol::{ConnectReason, QoS};

/// A monotonic count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    #[inline]
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down (a level: sessions online, bytes queued).
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    #[inline]
    pub fn add(&self, n: i64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    #[inline]
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }

    /// The value, never below 0.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed).max(0) as u64
    }
}

/// A level changed by many threads at once (the queues' totals: the router
/// adds at each enqueue, every connection subtracts at each delivery): one
/// cache line per stripe, a thread adding to its own, so the line does not
/// move between the cores at every message; read as the sum.
#[derive(Debug, Default)]
pub struct StripedGauge([Stripe; STRIPES]);

const STRIPES: usize = 4;

#[derive(Debug, Default)]
#[repr(align(64))]
struct Stripe(AtomicI64);

thread_local! {
    /// This thread's stripe, given out in turn.
    static STRIPE: usize = {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed) as usize % STRIPES
    };
}

impl StripedGauge {
    #[inline]
    pub fn add(&self, n: i64) {
        let i = STRIPE.with(|s| *s);
        self.0[i].0.fetch_add(n, Ordering::Relaxed);
    }

    /// The value, never below 0.
    pub fn get(&self) -> u64 {
        self.0.iter().map(|s| s.0.load(Ordering::Relaxed)).sum::<i64>().max(0) as u64
    }
}

/// A count per QoS level.
#[derive(Debug, Default)]
pub struct PerQos(pub [Counter; 3]);

impl PerQos {
    #[inline]
    pub fn add(&self, qos: QoS, n: u64) {
        self.0[qos as usize].add(n);
    }

    pub fn total(&self) -> u64 {
        self.0.iter().map(Counter::get).sum()
    }
}

/// Why a CONNECT was refused (its CONNACK reason, as the metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Refusal {
    /// 0x84 (3.1.1: 0x01).
    ProtocolVersion,
    /// 0x85 (0x02).
    ClientIdentifier,
    /// 0x86 (0x04).
    BadCredentials,
    /// 0x87 (0x05).
    NotAuthorized,
    /// 0x97: the listener's `max_connections` or `max_sessions`.
    Quota,
    /// 0x8C: an authentication method the broker does not have.
    AuthenticationMethod,
    /// Any other reason code.
    Other,
}

impl Refusal {
    pub const ALL: [Refusal; 7] = [
        Refusal::ProtocolVersion,
        Refusal::ClientIdentifier,
        Refusal::BadCredentials,
        Refusal::NotAuthorized,
        Refusal::Quota,
        Refusal::AuthenticationMethod,
        Refusal::Other,
    ];

    /// The refusal a CONNACK reason code (MQTT 5 numbering) stands for.
    pub fn of(code: ConnectReason) -> Refusal {
        match code {
            ConnectReason::UnsupportedProtocolVersion => Refusal::ProtocolVersion,
            ConnectReason::ClientIdentifierNotValid => Refusal::ClientIdentifier,
            ConnectReason::BadUserNameOrPassword => Refusal::BadCredentials,
            ConnectReason::NotAuthorized => Refusal::NotAuthorized,
            ConnectReason::QuotaExceeded => Refusal::Quota,
            ConnectReason::BadAuthenticationMethod => Refusal::AuthenticationMethod,
            _ => Refusal::Other,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Refusal::ProtocolVersion => "protocol_version",
            Refusal::ClientIdentifier => "client_identifier",
            Refusal::BadCredentials => "bad_credentials",
            Refusal::NotAuthorized => "not_authorized",
            Refusal::Quota => "quota",
            Refusal::AuthenticationMethod => "authentication_method",
            Refusal::Other => "other",
        }
    }
}

/// Messages not delivered, by cause.
#[derive(Debug, Default)]
pub struct Drops {
    /// A session's queue had no room (any limit; `disk_quota` is a part).
    pub queue_full: Counter,
    /// Of `queue_full`, at a disk quota or the free-space reserve.
    pub disk_quota: Counter,
    /// Larger than the client's Maximum Packet Size ([MQTT-3.1.2-25]),
    /// over every connection, closed ones too.
    pub too_large: Counter,
    /// Their Message Expiry Interval passed while queued.
    pub expired: Counter,
    /// The subscriber's ACL does not let it read the topic.
    pub acl: Counter,
    /// QoS 0 for an offline session (not queued unless configured).
    pub offline_qos0: Counter,
}

/// The counters of one listener.
#[derive(Debug, Default)]
pub struct ListenerMetrics {
    /// `mqtt://127.0.0.1:1883` and the like (the metric's label).
    pub url: String,
    /// Connections accepted (those refused when full included).
    pub accepted: Counter,
    /// Connections open now (the listener's count against `max_connections`).
    pub open: Arc<std::sync::atomic::AtomicUsize>,
    /// Connections refused because the listener was full.
    pub refused_full: Counter,
    /// Failed TLS handshakes and WebSocket upgrades.
    pub handshake_failures: Counter,
}

/// Buckets (upper bounds, seconds) of the store's sync latency histogram.
pub const SYNC_BUCKETS: [f64; 12] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 5.0];

/// A histogram of durations in fixed buckets, one relaxed add per bucket
/// an observation falls in, no lock.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Non-cumulative counts per bucket of [`SYNC_BUCKETS`], then +Inf.
    buckets: [Counter; SYNC_BUCKETS.len() + 1],
    sum_micros: Counter,
}

impl Histogram {
    pub fn observe(&self, d: std::time::Duration) {
        let s = d.as_secs_f64();
        let i = SYNC_BUCKETS.iter().position(|b| s <= *b).unwrap_or(SYNC_BUCKETS.len());
        self.buckets[i].inc();
        self.sum_micros.add(d.as_micros() as u64);
    }

    /// (sum in seconds, count, cumulative buckets) as Prometheus wants them.
    pub fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let mut acc = 0;
        let mut out = Vec::with_capacity(self.buckets.len());
        for (i, b) in self.buckets.iter().enumerate() {
            acc += b.get();
            out.push((SYNC_BUCKETS.get(i).copied().unwrap_or(f64::INFINITY), acc));
        }
        (self.sum_micros.get() as f64 / 1e6, acc, out)
    }
}

/// The registry: every counter and gauge of one broker.
#[derive(Debug, Default)]
pub struct Metrics {
    /// PUBLISH received from clients (and wills), by QoS; `$SYS` excluded.
    pub received: PerQos,
    pub received_bytes: PerQos,
    /// PUBLISH written to clients, by QoS (payload bytes in `sent_bytes`).
    pub sent: PerQos,
    pub sent_bytes: PerQos,
    /// Deliveries queued for a session (one per subscriber and message).
    pub delivered: Counter,
    pub drops: Drops,
    /// CONNECTs that opened, resumed or took over a session.
    pub connects: Counter,
    /// CONNECTs refused, by [`Refusal`] (CONNACK with a failure code).
    pub connect_refused: [Counter; Refusal::ALL.len()],
    /// Of those, new sessions refused at `max_sessions`.
    pub sessions_refused: Counter,
    /// Of those, CONNECTs of a client id whose session belongs to another
    /// user.
    pub sessions_not_owner: Counter,
    pub sessions_expired: Counter,
    /// Sessions the router holds, and of them those with a connection.
    pub sessions: Gauge,
    pub sessions_online: Gauge,
    pub subscriptions: Gauge,
    /// Retained messages of clients (the broker's own `$SYS` not counted).
    pub retained_messages: Gauge,
    pub retained_bytes: Gauge,
    /// Retained messages not kept at `max_retained_messages`/`_bytes`.
    pub retained_refused: Counter,
    /// Messages waiting in all session queues (in memory and spilled), and
    /// their payload and topic bytes.
    pub queued_messages: StripedGauge,
    pub queued_bytes: StripedGauge,
    /// Outgoing QoS 1/2 messages awaiting their acknowledgement.
    pub inflight: StripedGauge,
    /// How long the last snapshot of the store took (microseconds).
    pub snapshot_micros: Gauge,
    pub snapshots: Counter,
    listeners: Mutex<Vec<Arc<ListenerMetrics>>>,
    store: Mutex<Option<StoreView>>,
    groups: Mutex<Vec<Arc<dyn prometheus_client::collector::Collector>>>,
}

/// What the registry reads of the store: its counters, its size on
/// disk, the spill directory's use.
pub type StoreView = Arc<crate::store::Journal>;

/// Locks a registration list; a poisoned one still holds whole entries.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics::default())
    }

    /// Counts a refused CONNECT by its CONNACK reason (MQTT 5 numbering).
    pub fn refused(&self, code: ConnectReason) {
        self.connect_refused[Refusal::of(code) as usize].inc();
    }

    /// A new listener's counters (at start, once per listener).
    pub fn listener(&self, url: String) -> Arc<ListenerMetrics> {
        let l = Arc::new(ListenerMetrics { url, ..ListenerMetrics::default() });
        lock(&self.listeners).push(l.clone());
        l
    }

    pub fn listeners(&self) -> Vec<Arc<ListenerMetrics>> {
        lock(&self.listeners).clone()
    }

    /// The store whose health is reported (once persistence is on).
    pub fn set_store(&self, view: StoreView) {
        *lock(&self.store) = Some(view);
    }

    pub fn store(&self) -> Option<StoreView> {
        lock(&self.store).clone()
    }

    /// Adds a group of metrics of another part of the broker (a bridge),
    /// encoded with the rest on every scrape. Registration takes a lock;
    /// the group's own counters should be atomics like these.
    pub fn register_group(&self, group: Arc<dyn prometheus_client::collector::Collector>) {
        lock(&self.groups).push(group);
    }

    fn groups(&self) -> Vec<Arc<dyn prometheus_client::collector::Collector>> {
        lock(&self.groups).clone()
    }
}
