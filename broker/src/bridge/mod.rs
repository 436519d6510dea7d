//! Bridges to remote brokers (`[[bridge]]`), store and forward:
//! - `config.rs`: the tables, Mosquitto's topic rules, validation;
//! - `fifo.rs`: each bridge's durable outgoing queue (the store's log
//!   format, a persisted read cursor) under `DATA_DIR/bridge/NAME`;
//! - `outbound.rs`: the router's side (`out` rules matched on the router
//!   task, messages appended to the queues; publishers' acknowledgements
//!   held until the queues made them durable);
//! - `link.rs`: one tokio task per bridge, the connection to the remote;
//! - `status.rs`: what each shows of itself (`GET /api/bridges`,
//!   `GET /metrics`, `$SYS/broker/bridge/NAME/...`).
//!
//! Each bridge publishes locally with its own origin key (counted down
//! from `store::record::MAX_ID`, far above the router's session keys), so
//! what it brings in is never sent back out by it.

pub mod config;
pub mod fifo;
pub mod link;
pub mod outbound;
pub mod status;

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::{AddressOrder, BridgeConfig, BridgeProtocol, BridgeQueuePolicy, BridgeTls, Direction, TopicRule};
use fifo::Fifo;
pub use status::BridgeStatus;

use crate::config::Config;
use crate::message::SessionKey;
use crate::router::{Router, RouterMsg};
use crate::store::{Journal, StoreError};

/// Why the bridges cannot start.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("cannot open the bridge queue in {dir}: {source}")]
    Queue { dir: String, source: StoreError },
    /// A CA, certificate or key file of its TLS that does not load.
    #[error("bridge {name}: {source}")]
    Tls { name: String, source: crate::server::tls::TlsError },
}

/// One bridge: its settings, queue, origin key and TLS connector.
type Opened = (Arc<BridgeConfig>, Arc<Fifo>, SessionKey, Option<tokio_rustls::TlsConnector>);

/// The configured bridges, their queues opened, not yet running.
pub struct Bridges {
    bridges: Vec<Opened>,
    statuses: Vec<Arc<BridgeStatus>>,
    gate: Option<mpsc::UnboundedReceiver<outbound::Deferred>>,
}

/// The origin key of bridge number `i`.
fn origin(i: usize) -> SessionKey {
    crate::store::record::MAX_ID - i as u64
}

impl Bridges {
    /// Loads every bridge's TLS files, opens its queue (blocking: before
    /// the broker serves) and gives the router their `out` side.
    pub fn open(cfg: &Config, fs: Arc<dyn crate::store::fs::Fs>, router: &mut Router) -> Result<Bridges, BridgeError> {
        let mut bridges = Vec::new();
        for (i, b) in cfg.bridges.iter().enumerate() {
            let tls = match &b.tls {
                Some(t) => Some(
                    crate::server::tls::connector(t)
                        .map_err(|source| BridgeError::Tls { name: b.name.clone(), source })?,
                ),
                None => None,
            };
            let dir = cfg.data_dir.join("bridge").join(&b.name);
            let fifo = Fifo::open(&dir, cfg.sync, fs.clone())
                .map_err(|source| BridgeError::Queue { dir: dir.display().to_string(), source })?;
            bridges.push((Arc::new(b.clone()), Arc::new(fifo), origin(i), tls));
        }
        let mut gate = None;
        if !bridges.is_empty() {
            let now = tokio::time::Instant::now().into_std();
            let queues: Vec<_> = bridges.iter().map(|(c, f, o, _)| (c.clone(), f.clone(), *o)).collect();
            let (out, rx) = outbound::Outbound::new(&queues, (now, std::time::SystemTime::now()));
            router.set_bridges(out);
            gate = Some(rx);
        }
        let statuses: Vec<_> = bridges.iter().map(|(c, f, _, _)| BridgeStatus::new(&c.name, f.clone())).collect();
        router.set_bridge_statuses(statuses.clone());
        Ok(Bridges { bridges, statuses, gate })
    }

    /// Starts the gate and one task per bridge; they end with `shutdown`.
    pub fn spawn(
        &mut self,
        router: &mpsc::Sender<RouterMsg>,
        journal: Option<&Arc<Journal>>,
        shutdown: &CancellationToken,
        tracker: &TaskTracker,
    ) {
        if let Some(rx) = self.gate.take() {
            tokio::spawn(outbound::gate(rx));
        }
        for ((cfg, fifo, origin, tls), status) in self.bridges.iter().zip(&self.statuses) {
            let link = link::Link {
                status: status.clone(),
                private: std::sync::atomic::AtomicBool::new(cfg.try_private),
                remote_state: std::sync::atomic::AtomicBool::new(link::remote_notifications(cfg)),
                cfg: cfg.clone(),
                tls: tls.clone(),
                fifo: fifo.clone(),
                router: router.clone(),
                origin: *origin,
                journal: journal.cloned(),
                shutdown: shutdown.clone(),
            };
            tracker.spawn(link::run(link));
        }
    }

    /// What each bridge shows of itself, for the admin API.
    pub fn statuses(&self) -> Vec<Arc<BridgeStatus>> {
        self.statuses.clone()
    }

    /// The queues, to close at shutdown.
    pub fn fifos(&self) -> Vec<Arc<Fifo>> {
        self.bridges.iter().map(|b| b.1.clone()).collect()
    }
}
