//! Bridges to remote brokers (`[[bridge]]`), store and forward:
//! - `config.rs`: the tables, Mosquitto's topic rules, validation;
//! - `fifo.rs`: each bridge's durable outgoing queue (the store's log
//!   format, a persisted read cursor) under `DATA_DIR/bridge/NAME`;
//! - `outbound.rs`: the router's side (`out` rules matched on the router
//!   task, messages appended to the queues; publishers' acknowledgements
//!   held until the queues made them durable);
//! - `link.rs`: one tokio task per bridge, the connection to the remote.
//!
//! Each bridge publishes locally with its own origin key (counted down
//! from `store::record::MAX_ID`, far above the router's session keys), so
//! what it brings in is never sent back out by it.

pub mod config;
pub mod fifo;
pub mod link;
pub mod outbound;

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::{AddressOrder, BridgeConfig, BridgeProtocol, BridgeQueuePolicy, Direction, TopicRule};
use fifo::Fifo;

use crate::config::Config;
use crate::message::SessionKey;
use crate::router::{Router, RouterMsg};
use crate::store::{Journal, StoreError};

/// The configured bridges, their queues opened, not yet running.
pub struct Bridges {
    bridges: Vec<(Arc<BridgeConfig>, Arc<Fifo>, SessionKey)>,
    gate: Option<mpsc::UnboundedReceiver<outbound::Deferred>>,
}

/// The origin key of bridge number `i`.
fn origin(i: usize) -> SessionKey {
    crate::store::record::MAX_ID - i as u64
}

impl Bridges {
    /// Opens every bridge's queue (blocking: before the broker serves) and
    /// gives the router their `out` side.
    pub fn open(
        cfg: &Config,
        fs: Arc<dyn crate::store::fs::Fs>,
        router: &mut Router,
    ) -> Result<Bridges, (String, StoreError)> {
        let mut bridges = Vec::new();
        for (i, b) in cfg.bridges.iter().enumerate() {
            let dir = cfg.data_dir.join("bridge").join(&b.name);
            let fifo = Fifo::open(&dir, cfg.sync, fs.clone()).map_err(|e| (dir.display().to_string(), e))?;
            bridges.push((Arc::new(b.clone()), Arc::new(fifo), origin(i)));
        }
        let mut gate = None;
        if !bridges.is_empty() {
            let now = tokio::time::Instant::now().into_std();
            let (out, rx) = outbound::Outbound::new(&bridges, (now, std::time::SystemTime::now()));
            router.set_bridges(out);
            gate = Some(rx);
        }
        Ok(Bridges { bridges, gate })
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
        for (cfg, fifo, origin) in &self.bridges {
            let link = link::Link {
                cfg: cfg.clone(),
                fifo: fifo.clone(),
                router: router.clone(),
                origin: *origin,
                journal: journal.cloned(),
                shutdown: shutdown.clone(),
            };
            tracker.spawn(link::run(link));
        }
    }

    /// The queues, to close at shutdown.
    pub fn fifos(&self) -> Vec<Arc<Fifo>> {
        self.bridges.iter().map(|b| b.1.clone()).collect()
    }
}
