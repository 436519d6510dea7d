//! What a bridge shows of itself (`GET /api/bridges`): whether it is
//! connected and to which address, its queue (depth, bytes, the age of
//! the oldest message it has read from it), what it forwarded, dropped
//! and had refused, and the last error. Set by the bridge's task
//! (`link.rs`) with atomics and two short locks; read by the HTTP side.

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
        })
    }

    /// Connected to `addr`.
    pub fn up(&self, addr: &str) {
        set(&self.remote, Some(addr.to_owned()));
        self.connected.store(true, Ordering::Relaxed);
        self.since_ms.store(unix_ms(std::time::SystemTime::now()), Ordering::Relaxed);
    }

    /// The connection ended (or a connect failed) with `error`.
    pub fn down(&self, error: String) {
        set(&self.last_error, Some(error));
        if self.connected.swap(false, Ordering::Relaxed) {
            self.since_ms.store(unix_ms(std::time::SystemTime::now()), Ordering::Relaxed);
        }
    }

    /// The oldest message read from the queue and not yet done.
    pub fn set_oldest(&self, received_ms: Option<u64>) {
        self.oldest_ms.store(received_ms.unwrap_or(0), Ordering::Relaxed);
    }

    /// The API's object.
    pub fn json(&self) -> Value {
        let now = unix_ms(std::time::SystemTime::now());
        let stats = &self.fifo.stats;
        let oldest = self.oldest_ms.load(Ordering::Relaxed);
        let since = self.since_ms.load(Ordering::Relaxed);
        json!({
            "name": self.name,
            "connected": self.connected.load(Ordering::Relaxed),
            "remote": get(&self.remote),
            "since": (since > 0).then_some(since / 1000),
            "queued_messages": self.fifo.depth(),
            "queued_bytes": self.fifo.bytes(),
            "oldest_queued_age_secs": (oldest > 0).then(|| now.saturating_sub(oldest) / 1000),
            "forwarded": stats.forwarded.load(Ordering::Relaxed),
            "dropped": stats.dropped.load(Ordering::Relaxed),
            "rejected": stats.rejected.load(Ordering::Relaxed),
            "last_error": get(&self.last_error),
        })
    }
}
