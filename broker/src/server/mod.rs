//! The running broker: listeners, the router task, connection tasks, and
//! graceful shutdown (a cancellation broadcast, then waiting for every
//! connection task to finish, bounded in time).

mod connection;
mod connlog;
mod deadlines;
mod gate_watch;
mod listener;
mod live;
pub mod reclaim;
mod reload;
mod stopping;
pub mod tls;
pub mod ws;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use connection::{serve, ConnCtx, Transport};
pub use listener::MAX_REFUSING;
pub use live::{Reloaded, RouterProbe};

use crate::auth::files::FileAuth;
use crate::auth::stats::{AuthCounts, AuthStats};
use crate::auth::{Authenticator, NoEnhancedAuth};
use crate::config::{Config, ListenerConfig, ListenerProtocol};
use reload::{Current, GlobalFiles, Reloadable};

use crate::metrics::Metrics;
use crate::router::{self, Router, RouterMsg, RouterStats};
use crate::session::budget::QueuePool;
use crate::session::state::QueueLimits;
use crate::session::MachineConfig;
use crate::store::{self, Journal, StoreConfig};

/// Messages that may wait for the router before publishers are slowed down.
const ROUTER_CHANNEL: usize = 4096;
/// How long shutdown waits for connections to close.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Errors starting the broker.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("cannot create data directory {dir}: {source}")]
    DataDir { dir: String, source: io::Error },
    #[error("cannot open the store in {dir}: {source}")]
    Store { dir: String, source: crate::store::StoreError },
    /// A password or ACL file that does not load (file and line named).
    #[error("{0}")]
    AuthFile(#[from] crate::auth::files::FileAuthError),
    /// A TLS listener's certificate, key, CA or CRL file that does not load.
    #[error("{0}")]
    Tls(#[from] tls::TlsError),
    /// A bridge's queue that does not open, or TLS file that does not load.
    #[error("{0}")]
    Bridge(#[from] crate::bridge::BridgeError),
}

/// A running broker.
pub struct Broker {
    addrs: Vec<SocketAddr>,
    /// Each listener's URL scheme, beside its address in `addrs`.
    schemes: Vec<&'static str>,
    /// What `reload` reads again, per listener.
    reloadable: Vec<Reloadable>,
    /// The configuration running, replaced by `reload_config` (a lock held
    /// only to clone or swap it).
    cfg: std::sync::Mutex<Config>,
    shutdown: CancellationToken,
    /// Shutdown as the connections see it (`stopping.rs`).
    stopping: Arc<stopping::Stopping>,
    tracker: TaskTracker,
    router: JoinHandle<Option<Router>>,
    /// For probes and live settings; weak, so shutdown still ends the router.
    control: mpsc::WeakSender<RouterMsg>,
    journal: Option<Arc<Journal>>,
    auth_stats: Arc<AuthStats>,
    /// The HTTP listener's address, if `[http]` is on.
    http: Option<SocketAddr>,
    metrics: Arc<Metrics>,
    /// The bridges' queues (`crate::bridge`), closed at shutdown.
    bridge_queues: Vec<Arc<crate::bridge::fifo::Fifo>>,
}

/// Logs the refusals counted since the last line, once per
/// [`crate::ratelimit::LOG_EVERY`] at most, until shutdown.
async fn log_refusals(stats: Arc<AuthStats>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(crate::ratelimit::LOG_EVERY) => {
                stats.log_new();
            }
        }
    }
}

/// The settings of the connections of listener `l`: its limits, or else
/// the global ones.
fn machine_config(
    cfg: &Config,
    l: &ListenerConfig,
    authenticator: Arc<dyn Authenticator>,
    journal: Option<&Arc<Journal>>,
    files: Option<Arc<FileAuth>>,
    auth_stats: Arc<AuthStats>,
    metrics: &Arc<Metrics>,
) -> MachineConfig {
    MachineConfig {
        max_packet_size: l.max_packet_size.unwrap_or(cfg.max_packet_size),
        max_inflight: cfg.max_inflight_messages,
        connect_timeout: Duration::from_secs(cfg.connect_timeout_secs),
        max_topic_levels: cfg.max_topic_levels,
        max_subscriptions: cfg.max_subscriptions_per_client,
        session_expiry: (cfg.session_expiry_secs > 0).then(|| Duration::from_secs(cfg.session_expiry_secs)),
        allow_anonymous: l.allow_anonymous.unwrap_or(cfg.allow_anonymous),
        receive_maximum: cfg.receive_maximum,
        max_keepalive: l.max_keepalive.unwrap_or(cfg.max_keepalive),
        topic_alias_maximum: cfg.topic_alias_maximum,
        server_topic_aliases: cfg.server_topic_aliases,
        response_information: cfg.response_information.clone(),
        authenticator,
        log: journal.map(|j| j.clone() as Arc<dyn crate::store::LogPosition>),
        files,
        cert_username: if l.protocol.is_tls() { l.tls.cert_username } else { crate::config::CertUsername::No },
        use_username_as_clientid: l.use_username_as_clientid,
        check_session_owner: cfg.check_session_owner,
        auth_stats,
        metrics: metrics.clone(),
    }
}

/// What a broker is built on that tests (and the simulation) may
/// replace: the enhanced authentication methods, the file system the
/// store's log writes through, and the clock read where the store starts.
#[derive(Debug, Clone)]
pub struct Seams {
    pub authenticator: Arc<dyn Authenticator>,
    pub fs: Arc<dyn crate::store::fs::Fs>,
    pub clock: Arc<dyn crate::clock::Clock>,
}

impl Default for Seams {
    fn default() -> Seams {
        Seams {
            authenticator: Arc::new(NoEnhancedAuth),
            fs: Arc::new(crate::store::fs::RealFs),
            clock: Arc::new(crate::clock::SystemClock),
        }
    }
}

impl Broker {
    /// Binds every listener and starts serving, with no enhanced
    /// authentication method (MQTT 5 AUTH).
    pub async fn start(cfg: Config) -> Result<Broker, StartError> {
        Self::start_with_seams(cfg, Seams::default()).await
    }

    /// [`Broker::start`] with the enhanced authentication methods of
    /// `authenticator` (see [`crate::auth`]).
    pub async fn start_with_authenticator(
        cfg: Config,
        authenticator: Arc<dyn Authenticator>,
    ) -> Result<Broker, StartError> {
        Self::start_with_seams(cfg, Seams { authenticator, ..Seams::default() }).await
    }

    /// [`Broker::start`] on the given [`Seams`].
    pub async fn start_with_seams(cfg: Config, seams: Seams) -> Result<Broker, StartError> {
        let Seams { authenticator, fs, clock } = seams;
        if cfg.persistence {
            // Without persistence nothing is written: the data directory
            // may be missing or read-only.
            std::fs::create_dir_all(&cfg.data_dir)
                .map_err(|source| StartError::DataDir { dir: cfg.data_dir.display().to_string(), source })?;
        }
        let mut listeners = Vec::new();
        for l in &cfg.listeners {
            // Before anything is bound or opened: a bad file stops the start.
            let files = FileAuth::load(
                l.password_file.as_deref().or(cfg.password_file.as_deref()),
                l.acl_file.as_deref().or(cfg.acl_file.as_deref()),
            )?
            .map(Arc::new);
            let tls = if l.protocol.is_tls() { Some(tls::TlsLayer::new(&l.tls)?) } else { None };
            let addr = l.bind;
            let bound = match l.protocol {
                ListenerProtocol::Mqtt | ListenerProtocol::Mqtts | ListenerProtocol::Ws | ListenerProtocol::Wss => {
                    TcpListener::bind(addr).await
                }
            };
            match bound {
                Ok(socket) => listeners.push((socket, l, files, tls)),
                // A host without IPv6 loopback still serves IPv4 by default.
                Err(e) if addr.is_ipv6() && e.kind() == io::ErrorKind::AddrNotAvailable && cfg.listeners.len() > 1 => {
                    tracing::warn!(%addr, "skipping listener: {e}");
                }
                Err(source) => return Err(StartError::Bind { addr, source }),
            }
        }
        let metrics = Metrics::new();
        let (addrs, schemes): (Vec<SocketAddr>, Vec<&'static str>) = listeners
            .iter()
            .map(|(socket, l, _, _)| (socket.local_addr().unwrap_or(l.bind), l.protocol.scheme()))
            .unzip();
        let limits = QueueLimits {
            max_messages: cfg.max_queued_messages,
            max_bytes: cfg.max_queued_bytes,
            policy: cfg.queue_full_policy,
            queue_qos0: cfg.queue_qos0_messages,
            pool: QueuePool::with_metrics(cfg.queue_memory_bytes, metrics.clone()),
        };
        let (tx, rx) = mpsc::channel(ROUTER_CHANNEL);
        let mut r = Router::new(limits);
        let live = live::live_settings(&cfg);
        let now = tokio::time::Instant::now().into_std();
        r.set_sys_interval(live.sys_interval, now);
        r.apply_live(live, now);
        let journal = if cfg.persistence { Some(open_store(&cfg, fs.clone(), clock.as_ref(), &mut r)?) } else { None };
        let mut bridges = crate::bridge::Bridges::open(&cfg, fs, &mut r)?;
        // Bound before the router starts: a taken port stops the start.
        let http_socket = match &cfg.http {
            Some(h) => {
                Some(TcpListener::bind(h.bind).await.map_err(|source| StartError::Bind { addr: h.bind, source })?)
            }
            None => None,
        };
        let shared = router::SharedRouter::new(r);
        let router = tokio::spawn(router::run(shared.clone(), rx));
        let control = tx.downgrade();
        let shutdown = CancellationToken::new();
        let stopping = stopping::Stopping::new();
        let tracker = TaskTracker::new();
        bridges.spawn(&tx, journal.as_ref(), &shutdown, &tracker);
        let bridge_queues = bridges.fifos();
        let bridge_status = bridges.statuses();
        if !bridge_status.is_empty() {
            metrics.register_group(Arc::new(crate::metrics::BridgeCollector(bridge_status.clone())));
        }
        let ids = Arc::new(AtomicU64::new(1));
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        // Password hashes on all but one core at a time (at least one): a
        // burst of CONNECTs leaves a core to the other connections' tasks.
        let hashing = Arc::new(tokio::sync::Semaphore::new(cores.saturating_sub(1).max(1)));
        let mut reloadable = Vec::new();
        let deadlines = deadlines::Deadlines::new();
        let auth_stats = Arc::new(AuthStats::default());
        metrics.register_group(Arc::new(crate::metrics::AuthCollector(auth_stats.clone())));
        tracker.spawn(log_refusals(auth_stats.clone(), shutdown.clone()));
        for ((socket, l, files, tls), (addr, scheme)) in listeners.into_iter().zip(addrs.iter().zip(&schemes)) {
            let url: Arc<str> = format!("{scheme}://{addr}").into();
            // One context per listener: its limits are its connections' settings.
            let ctx = Arc::new(ConnCtx {
                router: tx.clone(),
                inline: shared.clone(),
                machine: Current::new(Arc::new(machine_config(
                    &cfg,
                    l,
                    authenticator.clone(),
                    journal.as_ref(),
                    files,
                    auth_stats.clone(),
                    &metrics,
                ))),
                shutdown: shutdown.clone(),
                stopping: stopping.clone(),
                deadlines: deadlines.clone(),
                verbose: cfg.verbose.into(),
                journal: journal.clone(),
                hashing: hashing.clone(),
                tls: tls.map(|t| Current::new(Arc::new(t))),
                ws: l.protocol.is_ws(),
                handshakes: tls::Handshakes::default(),
                logs: connlog::ConnLogs::default(),
                listener: metrics.listener(url.to_string()),
                metrics: metrics.clone(),
                url,
            });
            let limit = listener::ConnLimit::new(l.max_connections, ctx.listener.open.clone());
            reloadable.push(Reloadable { ctx: ctx.clone(), listener: l.clone() });
            tracker.spawn(listener::accept_loop(socket, ctx, limit, tracker.clone(), ids.clone()));
        }
        let mut http = None;
        if let (Some(socket), Some(h)) = (http_socket, &cfg.http) {
            http = Some(socket.local_addr().unwrap_or(h.bind));
            let state = Arc::new(crate::http::Http {
                cfg: h.clone(),
                router: tx.clone(),
                metrics: metrics.clone(),
                persistence: cfg.persistence,
                started: std::time::Instant::now(),
                bridges: bridge_status.clone(),
            });
            tracker.spawn(crate::http::serve(socket, state, shutdown.clone(), tracker.clone()));
        }
        let cfg = std::sync::Mutex::new(cfg);
        Ok(Broker {
            addrs,
            schemes,
            shutdown,
            stopping,
            tracker,
            router,
            control,
            journal,
            reloadable,
            cfg,
            auth_stats,
            http,
            metrics,
            bridge_queues,
        })
    }

    /// Refused CONNECTs and ACL denials so far, all listeners together.
    pub fn auth_counts(&self) -> AuthCounts {
        self.auth_stats.counts()
    }

    /// The addresses actually bound (port 0 resolved).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The HTTP listener's address (port 0 resolved), if `[http]` is on.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http
    }

    /// The broker's registry of counters and gauges.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Reads every listener's password, ACL and TLS files again (SIGHUP):
    /// new handshakes and CONNECTs use them, open connections stay as
    /// they are. A file that does not load keeps the old material; the
    /// errors (file and line) are returned and logged.
    pub fn reload(&self) -> Vec<String> {
        let cfg = self.config();
        let global = GlobalFiles { password_file: cfg.password_file, acl_file: cfg.acl_file };
        reload::reload(&self.reloadable, &global)
    }

    /// The configuration running (as last reloaded).
    pub fn config(&self) -> Config {
        match self.cfg.lock() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// SIGHUP with a configuration read again: applies the keys that can
    /// change live (limits of new connections, the router's caps and
    /// `$SYS` interval, the global password and ACL files), reloads every
    /// password, ACL and TLS file, and logs which changed keys need a
    /// restart (those keep their running values). The log level is the
    /// caller's (`logging::Logger`).
    pub async fn reload_config(&self, new: Config) -> Reloaded {
        let old = self.config();
        // Restart-only keys keep their running values; the live ones are new.
        let live::Changed { live: applied, restart, running } = live::changed_keys(&old, &new);
        for r in &self.reloadable {
            let cur = r.ctx.machine.get();
            let mut m = machine_config(
                &running,
                &r.listener,
                cur.authenticator.clone(),
                None,
                cur.files.clone(),
                cur.auth_stats.clone(),
                &cur.metrics,
            );
            m.log = cur.log.clone();
            r.ctx.machine.set(Arc::new(m));
            r.ctx.verbose.store(running.verbose, std::sync::atomic::Ordering::Relaxed);
        }
        let settings = live::live_settings(&running);
        if let Some(tx) = self.control.upgrade() {
            let _ = tx.send(RouterMsg::Control(router::Control::Settings(settings))).await;
        }
        match self.cfg.lock() {
            Ok(mut c) => *c = running,
            Err(poisoned) => *poisoned.into_inner() = running,
        }
        let errors = self.reload();
        if !applied.is_empty() {
            tracing::warn!(keys = ?applied, "reload: applied (new connections get the new limits)");
        }
        if !restart.is_empty() {
            tracing::warn!(keys = ?restart, "reload: changed, but these need a restart (running values kept)");
        }
        Reloaded { applied, restart, errors }
    }

    /// A probe of the router's liveness (the systemd watchdog's).
    pub fn probe(&self) -> RouterProbe {
        RouterProbe(self.control.clone())
    }

    /// The listeners as URLs (`mqtt://127.0.0.1:1883`, `mqtts://…`).
    pub fn urls(&self) -> Vec<String> {
        self.schemes.iter().zip(&self.addrs).map(|(s, a)| format!("{s}://{a}")).collect()
    }

    /// Stops accepting, disconnects every client (MQTT 5 clients get
    /// DISCONNECT 0x8B), waits for them (bounded), then stops the router.
    pub async fn shutdown(self) -> RouterStats {
        self.shutdown.cancel();
        self.stopping.stop();
        self.tracker.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.tracker.wait()).await.is_err() {
            tracing::warn!("connections still open after {SHUTDOWN_GRACE:?}; stopping anyway");
        }
        // The listeners' contexts hold router senders: the router stops
        // once the last is gone.
        drop(self.reloadable);
        let stats = match tokio::time::timeout(SHUTDOWN_GRACE, self.router).await {
            Ok(Ok(Some(r))) => r.stats(),
            _ => RouterStats::default(),
        };
        if let Some(j) = self.journal {
            // Everything appended is written and synced before we return.
            let _ = tokio::task::spawn_blocking(move || j.close()).await;
        }
        for q in self.bridge_queues {
            let _ = tokio::task::spawn_blocking(move || {
                q.close();
                let _ = q.persist();
            })
            .await;
        }
        stats
    }
}

/// Opens the store in the data directory and restores its state into `router`.
/// Sets the disk quotas of spilled queues: as configured, or by default a
/// quarter of the data directory's free space now for all queues together
/// (a stored message is in the log as well as in its spill file), all of
/// which one queue may use.
fn disk_quotas(cfg: &Config, spill: &store::SpillDir) {
    let total = match cfg.queue_disk_quota {
        0 => match store::free_space(&cfg.data_dir) {
            Ok((free, _)) => free / 4,
            Err(e) => {
                tracing::warn!(dir = %cfg.data_dir.display(), "cannot read the free space ({e}): queue_disk_quota 1 GiB");
                1 << 30
            }
        },
        q => q,
    };
    let session = if cfg.max_queued_disk_bytes == 0 { total } else { cfg.max_queued_disk_bytes };
    spill.set_quotas(total, session);
    if spill.start_space_check() {
        spill.check_space();
    }
    tracing::info!(queue_disk_quota = total, max_queued_disk_bytes = session, "queues: disk quotas");
}

fn open_store(
    cfg: &Config,
    fs: Arc<dyn crate::store::fs::Fs>,
    clock: &dyn crate::clock::Clock,
    router: &mut Router,
) -> Result<Arc<Journal>, StartError> {
    let dir = cfg.data_dir.join("store");
    let store_cfg = StoreConfig {
        dir: dir.clone(),
        spill_dir: cfg.data_dir.join("spill"),
        sync: cfg.sync,
        segment_bytes: 16 * 1024 * 1024,
        compact_bytes: cfg.compact_bytes,
        fs,
    };
    let (journal, model, rec) = store::open_with(&store_cfg, store::Threads::Spawned, clock)
        .map_err(|source| StartError::Store { dir: dir.display().to_string(), source })?;
    if rec.truncated_bytes > 0 || !rec.moved_aside.is_empty() {
        let lost_records: u64 = rec.losses.iter().filter(|l| !l.known).map(|l| l.records()).sum();
        tracing::warn!(
            truncated_bytes = rec.truncated_bytes,
            lost_records,
            moved_aside = ?rec.moved_aside,
            "store: repaired damage"
        );
    }
    tracing::info!(
        records = rec.records,
        sessions = model.sessions.len(),
        retained = model.retained.len(),
        "store: recovered"
    );
    disk_quotas(cfg, &journal.spill);
    let journal = Arc::new(journal);
    let began = std::time::Instant::now();
    router.enable_persistence(journal.clone(), model, (clock.now(), clock.wall()));
    // Its start-up snapshot's duration.
    router.metrics().snapshot_micros.set(began.elapsed().as_micros() as i64);
    router.metrics().snapshots.inc();
    router.metrics().set_store(journal.clone());
    Ok(journal)
}
