//! The simulated broker: the real session machines, router and store,
//! driven in one thread by a scheduler that a seeded generator steers.
//!
//! What each piece is here:
//! - connections: a [`Conn`] per network connection, with a byte pipe each
//!   way; the scheduler decides when bytes cross (all of them, or a part:
//!   packets split across reads), and the conn's turn does what the
//!   driver's does (`server/connection.rs`: gate inputs fed, actions
//!   carried out in order, a CONNECT's reply waited for, deliveries within
//!   the window, a close told to the router, with the will the machine
//!   hands it checked against what the client did: dropped, or a
//!   DISCONNECT read to the end);
//! - the router (`turns.rs`): its channel is an inbox the scheduler drains
//!   a random number of messages at a time (`Router::handle`, tickets as
//!   the driver sends them; CONNECT replies relayed so the oracle sees
//!   when they are carried out), with expiry, store maintenance and a
//!   compaction's snapshot steps at random;
//! - the store: opened with `Threads::Inline`: the log writer runs one
//!   round when the scheduler says (so durability lags the appends by a
//!   random amount), the spill queues' I/O inline; its files go through
//!   `disk::FlakyFs` (failing writes and syncs for a while when the
//!   scheduler says) onto `PowerLossFs`, which cuts the power at a random
//!   operation or when the scheduler says; the disk then keeps only what
//!   was synced (the rest torn at a random byte) and the broker starts
//!   again on it; the spill files fail on their own switch (`disk.rs`);
//! - time: a `SimClock`, moved by the scheduler.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use edgemq::clock::{Clock, SimClock};
use edgemq::router::{ConnectReply, Router, RouterMsg, SessionRefused};
use edgemq::session::budget::QueuePool;
use edgemq::session::state::{QueueLimits, SharedSession};
use edgemq::session::MachineConfig;
use edgemq::store::powerloss::{Loss, PowerLossFs, Rng};
use edgemq::store::{Journal, Lsn, StoreConfig, Threads};

use crate::check::Oracle;
use crate::client::Client;
use crate::conns::Conn;
use crate::disk::{FlakyFs, Switch};
use crate::setup::{machine_config, tmp, Settings};
use crate::turns::Relay;

pub type Reply = Result<ConnectReply, SessionRefused>;

/// A running broker on the simulated disk.
pub struct Boot {
    pub journal: Arc<Journal>,
    pub router: Router,
    pub(crate) cfg: Arc<MachineConfig>,
    pub inbox: VecDeque<RouterMsg>,
    pub conns: Vec<Conn>,
    pub sessions: Vec<Arc<SharedSession>>,
    /// QoS 2 messages routed, with the log position after their records.
    pub routed_qos2: Vec<(Bytes, Lsn)>,
    /// Every routing of a message into two or more records: the log
    /// positions before and after them.
    pub fanouts: Vec<(Lsn, Lsn)>,
    /// CONNECT replies on their way (`turns.rs`).
    pub relays: Vec<Relay>,
}

pub struct World {
    pub rng: Rng,
    pub s: Settings,
    _dir: tempfile::TempDir,
    store: StoreConfig,
    pub fs: PowerLossFs,
    /// The disk's failures (`disk.rs`): how many began, and the durable
    /// LSN when the current one began.
    pub switch: Switch,
    pub faults: u64,
    pub fault_durable: Lsn,
    pub clock: Arc<SimClock>,
    pub clients: Vec<Client>,
    pub oracle: Oracle,
    pub boot: Option<Boot>,
    pub(crate) next_conn: u64,
    /// Figures for the report.
    pub crashes: u64,
    pub steps_run: u64,
    /// Routings the last power cut fell among (their log positions).
    cut_fanouts: Vec<(Lsn, Lsn)>,
    /// A power cut fell inside the records of a message's routing: which
    /// copies survived depends on the order the router visited the
    /// subscription tree, a randomly keyed `HashMap`'s (ROBUSTNESS.md),
    /// so the run need not replay exactly in another process.
    pub order_sensitive: bool,
    /// Spilled entries queues were held up by (a chunk that did not read
    /// back: nothing behind it given until it did), summed as they began,
    /// and the count last seen (`SpillDir::unreadable`).
    pub held_up: u64,
    last_unreadable: u64,
}

/// Why a step ended the boot.
#[derive(Debug, PartialEq, Eq)]
pub enum Stop {
    /// The power went.
    Crash,
}

impl World {
    pub fn new(seed: u64) -> World {
        let mut rng = Rng::new(seed);
        let s = Settings::draw(&mut rng);
        let dir = tmp();
        let store = StoreConfig {
            dir: dir.path().join("store"),
            spill_dir: dir.path().join("spill"),
            sync: s.sync,
            segment_bytes: s.segment_bytes,
            compact_bytes: s.compact_bytes,
            fs: Arc::new(edgemq::store::fs::RealFs),
        };
        trace!("settings: {s:?}");
        let mut clients: Vec<Client> = (0..s.clients).map(|i| Client::new(i, &mut rng, s.expiry_311)).collect();
        if let Some(acl) = &s.acl {
            trace!("ACL:\n{}", acl.text());
            for c in &mut clients {
                use edgemq::auth::acl::Access;
                c.user = acl.user(c.id);
                let topic = c.will.map(|w| if w.retain { format!("r/w{}", c.id) } else { "t/w".to_owned() });
                c.will_denied = topic.is_some_and(|t| !acl.may(c.id, &t, Access::Write));
                c.filter_denied = !acl.may(c.id, c.filter.0, Access::Subscribe);
            }
        }
        for c in &clients {
            trace!(
                "client {}: {:?} persistent {} expiry {:?} will {:?}",
                c.id,
                c.version,
                c.persistent,
                c.expiry,
                c.will
            );
        }
        let acl = s.acl.clone();
        let switch = Switch::new(rng.next_u64());
        let clock = Arc::new(SimClock::new((Instant::now(), SystemTime::UNIX_EPOCH + Duration::from_secs(1 << 31))));
        World {
            rng,
            s,
            _dir: dir,
            store,
            fs: PowerLossFs::new(u64::MAX),
            switch,
            faults: 0,
            fault_durable: 0,
            clock,
            clients,
            oracle: Oracle::with_acl(acl),
            boot: None,
            next_conn: 0,
            crashes: 0,
            steps_run: 0,
            cut_fanouts: Vec::new(),
            held_up: 0,
            last_unreadable: 0,
            order_sensitive: false,
        }
    }

    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// Starts the broker on what the disk holds (recovery, restore, the
    /// start-up snapshot), with the power going at operation `crash_at`.
    /// `Err(Stop::Crash)` if it went during the start.
    pub fn start(&mut self, crash_at: u64) -> Result<(), Stop> {
        self.fs = PowerLossFs::new(crash_at);
        self.switch.set(None);
        self.oracle.fault = None;
        self.oracle.boot_started();
        let fs = FlakyFs { inner: self.fs.clone(), switch: self.switch.clone() };
        let cfg = StoreConfig { fs: Arc::new(fs), ..self.store.clone() };
        let (journal, model, rec) = edgemq::store::open_with(&cfg, Threads::Inline, self.clock.as_ref())
            .unwrap_or_else(|e| panic!("the store refuses to open after a power cut: {e}"));
        // On a disk that writes in order a power cut, also during a disk
        // failure, leaves a torn tail, never what recovery must take for
        // damage in the middle of the log (which forgets the inbound QoS 2
        // ids before it). Pages lost one by one can: a hole in unsynced
        // writes followed by kept ones looks like damage (ROBUSTNESS.md).
        if self.s.loss == Loss::Torn {
            assert_eq!(rec.lost_up_to, 0, "recovery found damage before the end of the log: {:?}", rec.losses);
        } else if rec.lost_up_to > 0 {
            self.oracle.ids_forgotten();
        }
        let journal = Arc::new(journal);
        self.switch.set_spill(None);
        journal.spill.io.inject_faults(self.switch.spill_hook());
        trace!(
            "boot: recovered up to LSN {} (truncated {} bytes, losses {:?}, lost up to {})",
            journal.appended(),
            rec.truncated_bytes,
            rec.losses,
            rec.lost_up_to
        );
        // Whether the cut fell inside a routing (see `replays_exactly`).
        let end = journal.appended();
        let durable = self.fs.probed_at_crash().unwrap_or(0);
        let inside = |at: Lsn| self.cut_fanouts.iter().any(|(b, a)| *b < at && at < *a);
        self.order_sensitive |= inside(end) || inside(durable);
        self.cut_fanouts.clear();
        let rx = journal.durable();
        self.fs.set_probe(Box::new(move || *rx.borrow()));
        trace!(
            "recovered sessions: {:?}",
            model.sessions.iter().map(|(k, s)| (*k, (s.client_id.clone(), s.expiry_secs))).collect::<BTreeMap<_, _>>()
        );
        let retained: BTreeMap<String, Bytes> =
            model.retained.iter().map(|(t, m)| (t.clone(), m.payload.clone())).collect();
        let limits = QueueLimits {
            max_messages: self.s.max_messages,
            max_bytes: 0,
            policy: self.s.policy,
            queue_qos0: false,
            pool: QueuePool::new(self.s.queue_memory),
        };
        let mut router = Router::new(limits);
        router.enable_persistence(journal.clone(), model, (self.clock.now(), self.clock.wall()));
        let cfg = Arc::new(machine_config(&journal, &self.s));
        self.boot = Some(Boot {
            journal,
            router,
            cfg,
            inbox: VecDeque::new(),
            conns: Vec::new(),
            sessions: Vec::new(),
            routed_qos2: Vec::new(),
            fanouts: Vec::new(),
            relays: Vec::new(),
        });
        if self.fs.crashed() {
            return Err(Stop::Crash);
        }
        self.recovered_retained(retained);
        Ok(())
    }

    /// The retained messages recovered at start, against the reference.
    fn recovered_retained(&mut self, got: BTreeMap<String, Bytes>) {
        let durable = self.fs.probed_at_crash().unwrap_or(0);
        let exact = self.crashes == 0 || durable == u64::MAX;
        self.oracle.recovered_retained(&got, durable, exact && self.crashes == 0);
    }

    /// The power goes now (if it has not yet): every connection is gone,
    /// the disk keeps what a power cut keeps.
    pub fn crash(&mut self) {
        self.fs.crash();
        self.last_unreadable = 0;
        trace!("power cut; durable LSN {:?}", self.fs.probed_at_crash());
        let durable = self.fs.probed_at_crash().unwrap_or(0);
        if let Some(b) = self.boot.take() {
            // A cut inside the records of a QoS 2 message's routing (the
            // open finding of ROBUSTNESS.md): it may be delivered twice.
            for (payload, after) in &b.routed_qos2 {
                if *after > durable {
                    self.oracle.cut_qos2(payload);
                }
            }
            self.cut_fanouts = b.fanouts;
            drop(b.conns);
            drop(b.router);
            b.journal.close();
        }
        for c in &mut self.clients {
            c.dropped();
        }
        self.oracle.power_cut();
        self.switch.set(None);
        self.oracle.fault = None;
        self.crashes += 1;
        let mut rng = Rng::new(self.rng.next_u64());
        self.fs.apply_crash(&mut rng, self.s.loss).unwrap_or_else(|e| panic!("power cut: {e}"));
    }

    /// A clean stop (everything written and synced) and a start on it:
    /// the recovered retained messages must be exactly the last set.
    pub fn restart_clean(&mut self) {
        if let Some(b) = self.boot.take() {
            let Boot { journal, router, conns, .. } = b;
            drop(conns);
            drop(router);
            journal.close();
        }
        for c in &mut self.clients {
            c.dropped();
        }
        let crashes = std::mem::take(&mut self.crashes);
        let _ = self.start(u64::MAX);
        self.crashes = crashes;
        if let Some(b) = self.boot.take() {
            b.journal.close();
        }
    }

    /// One scheduler step; `quiet`: no new publishes, drops, crashes (the
    /// drain at the end).
    pub fn step(&mut self, quiet: bool) -> Result<(), Stop> {
        self.steps_run += 1;
        if quiet && self.switch.on().is_some() {
            // The drain runs on a working disk.
            self.disk_trouble();
        }
        if quiet && self.switch.spill().is_some() {
            self.spill_trouble();
        }
        let n = self.clients.len() as u64;
        let c = self.rng.below(n) as usize;
        match self.rng.below(100) {
            0..=11 if !quiet => self.client_publishes(c),
            0..=19 => self.client_catches_up(c, quiet),
            20..=21 if !quiet => self.client_drops(c),
            22..=27 => self.client_connects(c),
            28..=41 => self.net_to_broker(),
            42..=55 => self.net_to_client(),
            56..=69 => self.conn_turn(),
            70..=81 => self.router_step(),
            82..=91 => self.log_step(quiet),
            92..=95 => self.time_passes(quiet),
            96 if self.s.spill_faults && !quiet => self.spill_trouble(),
            96..=97 => self.maintenance(),
            98 if self.s.disk_faults && !quiet => self.disk_trouble(),
            98 => self.maintenance(),
            _ if !quiet && self.rng.chance(10) => self.fs.crash(),
            _ => {}
        }
        let unreadable = self.unreadable();
        self.held_up += unreadable.saturating_sub(self.last_unreadable);
        self.last_unreadable = unreadable;
        if self.fs.crashed() {
            return Err(Stop::Crash);
        }
        self.check_queues();
        self.check_fault();
        Ok(())
    }

    pub(crate) fn boot(&mut self) -> &mut Boot {
        self.boot.as_mut().unwrap_or_else(|| panic!("no broker running"))
    }

    /// No queue beyond its limit (also one held up by a chunk it cannot
    /// read back, and after the restart that brings such a chunk's entries
    /// back: they never stopped counting).
    fn check_queues(&self) {
        let Some(b) = &self.boot else { return };
        if self.s.max_messages == 0 {
            return;
        }
        for s in b.sessions.iter().chain(b.conns.iter().filter_map(|k| k.session.as_ref())) {
            let q = s.lock().queued();
            assert!(q <= self.s.max_messages, "a queue holds {q} messages, beyond its limit {}", self.s.max_messages);
        }
    }

    /// Whether the run has come to rest: nothing in flight anywhere.
    pub fn settled(&mut self) -> bool {
        let Some(b) = &self.boot else { return false };
        let durable = *b.journal.durable().borrow();
        b.inbox.is_empty()
            && durable == b.journal.appended()
            && b.conns.iter().all(|k| {
                k.to_broker.is_empty()
                    && k.to_client.is_empty()
                    && k.rbuf.is_empty()
                    && k.actions.is_empty()
                    && k.awaiting.is_none()
                    && k.client_alive
                    && !k.m.gate_waiting()
                    && k.session.as_ref().is_some_and(|s| {
                        let s = s.lock();
                        s.queued() == 0 && s.inflight_len() == 0
                    })
            })
            && self.clients.iter().all(|c| c.settled() && c.connected)
            && b.conns.len() == self.clients.len()
    }

    /// Which of the clients and connections are not at rest (for a
    /// failure message).
    pub fn unsettled(&self) -> String {
        let Some(b) = &self.boot else { return "no broker".into() };
        let mut out = format!(
            "inbox {} appended {} durable {}",
            b.inbox.len(),
            b.journal.appended(),
            *b.journal.durable().borrow()
        );
        for k in &b.conns {
            let q = k.session.as_ref().map(|s| {
                let s = s.lock();
                (s.queued(), s.inflight_len())
            });
            out += &format!(
                "\n conn of c{}: alive {} to_broker {} to_client {} actions {} awaiting {} gate {} queue {q:?}",
                k.client,
                k.client_alive,
                k.to_broker.len(),
                k.to_client.len(),
                k.actions.len(),
                k.awaiting.is_some(),
                k.m.gate_waiting()
            );
        }
        for c in &self.clients {
            out += &format!("\n c{}: connected {} subscribed {} {:?}", c.id, c.connected, c.subscribed, c.state());
        }
        out
    }
}
