//! What a bridge shows of itself: whether it is connected and to which
//! address, its queue (depth, bytes, the age of the oldest message it has
//! read from it), what it forwarded, dropped and had refused in each
//! direction, its reconnections, and the last error. Set by the bridge's
//! task (`link.rs`) with atomics and two short locks; read as
//! [`Figures`] by `GET /api/bridges`, `GET /metrics`
//! (`metrics::BridgeCollector`) and `$SYS/broker/bridge/NAME/...`
//! (`router/sys.rs`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use super::fifo::Fifo;
use crate::store::record::unix_ms;

/// One bridge's state, shared by its task and the admin API.
pub struct BridgeStatus {
    pub name: String,
    fifo: Arc<Fifo>,
    connected: AtomicBool,
    /// Unix ms of the last connect or disconnect (0: neither yet).
    since_ms: AtomicU64,
    /// `received_ms` of the oldest message in the window (0: none).
    oldest_ms: AtomicU64,
    remote: Mutex<Option<String>>,
    last_error: Mutex<Option<String>>,
    /// Connections made (CONNACK 0), and attempts that failed.
    connects: AtomicU64,
    connect_failures: AtomicU64,
    /// Messages from the remote published locally, and those no `in`
    /// rule took (not published).
    in_forwarded: AtomicU64,
    in_dropped: AtomicU64,
}

/// One reading of a bridge's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Figures {
    pub connected: bool,
    pub queued_messages: u64,
    pub queued_bytes: u64,
    pub oldest_queued_age_secs: Option<u64>,
    /// `out`: acknowledged by the remote (or sent, QoS 0).
    pub out_forwarded: u64,
    /// `out`: not queued, or dropped from the queue, by its policy.
    pub out_dropped: u64,
    /// `out`: refused by the remote (reason code 0x80 or more) or over its
    /// Maximum Packet Size.
    pub out_rejected: u64,
    pub in_forwarded: u64,
    pub in_dropped: u64,
    /// Connections made after the first.
    pub reconnects: u64,
    pub connect_failures: u64,
}

impl std::fmt::Debug for BridgeStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BridgeStatus").field("name", &self.name).field("figures", &self.figures()).finish()
    }
}

fn set(m: &Mutex<Option<String>>, v: Option<String>) {
    *m.lock().unwrap_or_else(|p| p.into_inner()) = v;
}

fn get(m: &Mutex<Option<String>>) -> Option<String> {
    m.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

impl BridgeStatus {
    pub fn new(name: &str, fifo: Arc<Fifo>) -> Arc<BridgeStatus> {
        Arc::new(BridgeStatus {
            name: name.to_owned(),
            fifo,
            connected: AtomicBool::new(false),
            since_ms: AtomicU64::new(0),
            oldest_ms: AtomicU64::new(0),
            remote: Mutex::new(None),
            last_error: Mutex::new(None),
            connects: AtomicU64::new(0),
            connect_failures: AtomicU64::new(0),
            in_forwarded: AtomicU64::new(0),
            in_dropped: AtomicU64::new(0),
        })
    }

    /// Connected to `addr`.
    pub fn up(&self, addr: &str) {
        set(&self.remote, Some(addr.to_owned()));
        self.connected.store(true, Ordering::Relaxed);
        self.connects.fetch_add(1, Ordering::Relaxed);
        self.since_ms.store(unix_ms(std::time::SystemTime::now()), Ordering::Relaxed);
    }

    /// The connection ended (or a connect failed) with `error`.
    pub fn down(&self, error: String) {
        set(&self.last_error, Some(error));
        if self.connected.swap(false, Ordering::Relaxed) {
            self.since_ms.store(unix_ms(std::time::SystemTime::now()), Ordering::Relaxed);
        }
    }

    /// A connection attempt failed with `error`.
    pub fn connect_failed(&self, error: String) {
        self.connect_failures.fetch_add(1, Ordering::Relaxed);
        self.down(error);
    }

    /// A message from the remote was published locally (`true`) or taken
    /// by no `in` rule.
    pub fn incoming(&self, published: bool) {
        let c = if published { &self.in_forwarded } else { &self.in_dropped };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// The state now.
    pub fn figures(&self) -> Figures {
        let now = unix_ms(std::time::SystemTime::now());
        let stats = &self.fifo.stats;
        let oldest = self.oldest_ms.load(Ordering::Relaxed);
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let queued_messages = self.fifo.depth();
        Figures {
            connected: self.connected.load(Ordering::Relaxed),
            queued_messages,
            queued_bytes: self.fifo.bytes(),
            // The link stores the oldest's time after it takes from the
            // queue: an empty queue has no oldest, whatever it stored last.
            oldest_queued_age_secs: (oldest > 0 && queued_messages > 0).then(|| now.saturating_sub(oldest) / 1000),
            out_forwarded: get(&stats.forwarded),
            out_dropped: get(&stats.dropped),
            out_rejected: get(&stats.rejected),
            in_forwarded: get(&self.in_forwarded),
            in_dropped: get(&self.in_dropped),
            reconnects: get(&self.connects).saturating_sub(1),
            connect_failures: get(&self.connect_failures),
        }
    }

    /// The oldest message read from the queue and not yet done.
    pub fn set_oldest(&self, received_ms: Option<u64>) {
        self.oldest_ms.store(received_ms.unwrap_or(0), Ordering::Relaxed);
    }

    /// The API's object (`forwarded`, `dropped`, `rejected`: the `out`
    /// direction's).
    pub fn json(&self) -> Value {
        let f = self.figures();
        let since = self.since_ms.load(Ordering::Relaxed);
        json!({
            "name": self.name,
            "connected": f.connected,
            "remote": get(&self.remote),
            "since": (since > 0).then_some(since / 1000),
            "queued_messages": f.queued_messages,
            "queued_bytes": f.queued_bytes,
            "oldest_queued_age_secs": f.oldest_queued_age_secs,
            "forwarded": f.out_forwarded,
            "dropped": f.out_dropped,
            "rejected": f.out_rejected,
            "in_forwarded": f.in_forwarded,
            "in_dropped": f.in_dropped,
            "reconnects": f.reconnects,
            "connect_failures": f.connect_failures,
            "last_error": get(&self.last_error),
        })
    }

    /// The `$SYS/broker/bridge/NAME/...` topics and their values.
    pub fn sys_values(&self) -> Vec<(String, String)> {
        let f = self.figures();
        let values = [
            ("connected", u64::from(f.connected)),
            ("queue/messages", f.queued_messages),
            ("queue/bytes", f.queued_bytes),
            ("out/forwarded", f.out_forwarded),
            ("out/dropped", f.out_dropped),
            ("out/rejected", f.out_rejected),
            ("in/forwarded", f.in_forwarded),
            ("in/dropped", f.in_dropped),
            ("reconnects", f.reconnects),
            ("connect_failures", f.connect_failures),
        ];
        values.iter().map(|(t, v)| (format!("$SYS/broker/bridge/{}/{t}", self.name), v.to_string())).collect()
    }
}
