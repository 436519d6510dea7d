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

use bytes::{Bytes, BytesMut};
use edgemq::clock::{Clock, SimClock};
use edgemq::protocol::{decode, encode, Decoded, DisconnectReason, Packet};
use edgemq::router::{ConnHandle, ConnectReply, Router, RouterMsg, SessionRefused, Ticket};
use edgemq::session::budget::QueuePool;
use edgemq::session::state::{QueueLimits, SharedSession};
use edgemq::session::{Action, Close, Machine, MachineConfig};
use edgemq::store::powerloss::{Loss, PowerLossFs, Rng};
use edgemq::store::{Journal, Lsn, StoreConfig, Threads};
use tokio::sync::oneshot;

use crate::check::Oracle;
use crate::client::Client;
use crate::disk::{FlakyFs, Switch};
use crate::setup::{machine_config, tmp, Settings};
use crate::turns::Relay;

pub type Reply = Result<ConnectReply, SessionRefused>;

/// One network connection, the broker's side and the two pipes.
pub struct Conn {
    client: usize,
    /// The payload of the will its CONNECT set.
    will: Option<Bytes>,
    /// The client closed it after sending everything (a DISCONNECT
    /// last): the broker reads all of it before it sees the end.
    graceful: bool,
    /// The DISCONNECT the machine was handed, if any.
    disconnect_read: Option<DisconnectReason>,
    /// The client still holds it (else: it is gone, the broker has not
    /// noticed yet).
    client_alive: bool,
    pub m: Machine,
    handle: ConnHandle,
    ticket: Arc<Ticket>,
    /// Bytes sent by the client not yet read by the broker, and read but
    /// not yet decoded.
    to_broker: BytesMut,
    rbuf: BytesMut,
    /// Bytes written by the broker not yet read by the client.
    to_client: BytesMut,
    /// Actions not yet carried out (behind a CONNECT's round trip).
    actions: VecDeque<Action>,
    awaiting: Option<oneshot::Receiver<Reply>>,
    closing: Option<Close>,
    session: Option<Arc<SharedSession>>,
}

/// A running broker on the simulated disk.
pub struct Boot {
    pub journal: Arc<Journal>,
    pub router: Router,
    cfg: Arc<MachineConfig>,
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
    next_conn: u64,
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
        let clients: Vec<Client> = (0..s.clients).map(|i| Client::new(i, &mut rng, s.expiry_311)).collect();
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
            oracle: Oracle::default(),
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

    /// The index of client `c`'s current connection.
    fn current(&self, c: usize) -> Option<usize> {
        self.boot.as_ref()?.conns.iter().position(|k| k.client == c && k.client_alive)
    }

    fn client_publishes(&mut self, c: usize) {
        let Some(i) = self.current(c) else { return self.client_connects(c) };
        let mut out = BytesMut::new();
        if self.clients[c].connected {
            self.clients[c].publish(&mut self.rng, &mut self.oracle, &mut out);
        }
        self.boot().conns[i].to_broker.extend_from_slice(&out);
    }

    fn client_catches_up(&mut self, c: usize, all: bool) {
        let Some(i) = self.current(c) else { return self.client_connects(c) };
        let mut out = BytesMut::new();
        let all = all || self.rng.chance(50);
        self.clients[c].catch_up(all, &mut out);
        self.boot().conns[i].to_broker.extend_from_slice(&out);
    }

    fn client_connects(&mut self, c: usize) {
        if self.current(c).is_some() {
            return;
        }
        self.next_conn += 1;
        let handle = ConnHandle::new(self.next_conn);
        let now = self.now();
        let mut out = BytesMut::new();
        let will = self.clients[c].connect(&mut out);
        let payload = will.as_ref().map(|w| w.0.clone());
        self.oracle.conn_opened(self.next_conn, c, self.clients[c].expiry, will);
        let b = self.boot();
        let m = Machine::new(b.cfg.clone(), handle.clone(), now);
        b.conns.push(Conn {
            client: c,
            will: payload,
            graceful: false,
            disconnect_read: None,
            client_alive: true,
            m,
            handle,
            ticket: Arc::new(Ticket::default()),
            to_broker: out,
            rbuf: BytesMut::new(),
            to_client: BytesMut::new(),
            actions: VecDeque::new(),
            awaiting: None,
            closing: None,
            session: None,
        });
    }

    /// The client's connection fails: it stops using it; the broker
    /// notices now or later (a half-open connection, taken over when the
    /// client comes back).
    fn client_drops(&mut self, c: usize) {
        let Some(i) = self.current(c) else { return };
        if self.clients[c].connected && self.rng.chance(40) {
            return self.client_disconnects(c, i);
        }
        trace!("client {c} drops its connection");
        self.clients[c].dropped();
        let notice = self.rng.chance(50);
        let b = self.boot();
        b.conns[i].client_alive = false;
        b.conns[i].to_broker.clear();
        if notice {
            self.close_conn(i, Close::Io);
        }
    }

    /// The client sends DISCONNECT (MQTT 5: now and then 0x04, with the
    /// will) and closes the connection; the broker reads up to it.
    fn client_disconnects(&mut self, c: usize, i: usize) {
        let with_will = self.clients[c].version.is_v5() && self.rng.chance(30);
        trace!("client {c} disconnects (with will: {with_will})");
        let mut out = BytesMut::new();
        self.clients[c].disconnect(with_will, &mut out);
        self.clients[c].dropped();
        let k = &mut self.boot().conns[i];
        k.to_broker.extend_from_slice(&out);
        k.client_alive = false;
        k.graceful = true;
    }

    /// Some bytes cross from a client to the broker, which reads them.
    fn net_to_broker(&mut self) {
        let Some(i) = self.pick(|k| !k.to_broker.is_empty()) else { return };
        let split = self.rng.chance(20);
        let cut = self.rng.next_u64();
        let k = &mut self.boot().conns[i];
        let n = if split { 1 + (cut as usize) % k.to_broker.len() } else { k.to_broker.len() };
        let bytes = k.to_broker.split_to(n);
        k.rbuf.extend_from_slice(&bytes);
        self.read(i);
    }

    /// Some bytes cross from the broker to a client.
    fn net_to_client(&mut self) {
        let Some(i) = self.pick(|k| !k.to_client.is_empty() && k.client_alive) else { return };
        let split = self.rng.chance(20);
        let cut = self.rng.next_u64();
        let b = self.boot.as_mut().unwrap_or_else(|| panic!("no broker"));
        let k = &mut b.conns[i];
        let n = if split { 1 + (cut as usize) % k.to_client.len() } else { k.to_client.len() };
        let bytes = k.to_client.split_to(n);
        let mut out = BytesMut::new();
        self.clients[k.client].receive(&bytes, &mut self.oracle, &mut out);
        k.to_broker.extend_from_slice(&out);
    }

    fn pick(&mut self, f: impl Fn(&Conn) -> bool) -> Option<usize> {
        let b = self.boot.as_ref()?;
        let ok: Vec<usize> = (0..b.conns.len()).filter(|&i| f(&b.conns[i])).collect();
        if ok.is_empty() {
            return None;
        }
        Some(ok[self.rng.below(ok.len() as u64) as usize])
    }

    /// The broker decodes and handles what it has read, as the driver's
    /// `on_readable`, stopping behind a CONNECT's round trip.
    fn read(&mut self, i: usize) {
        let now = self.now();
        loop {
            let k = &mut self.boot().conns[i];
            if k.closing.is_some() || k.m.is_closed() || k.awaiting.is_some() {
                break;
            }
            let max = k.m.config().max_packet_size;
            match decode(&mut k.rbuf, k.m.version(), max) {
                Ok(Decoded::Packet(p, _)) => {
                    if let Packet::Disconnect(d) = &p {
                        k.disconnect_read = Some(d.reason);
                    }
                    k.m.handle(p, now)
                }
                Ok(Decoded::Incomplete { .. }) => break,
                Err(e) => k.m.decode_error(e),
            }
            self.execute(i);
        }
        self.finish_turn(i);
    }

    /// A connection's turn, as the driver's loop: the router's close, the
    /// CONNECT reply, the gate's inputs, actions, deliveries.
    fn conn_turn(&mut self) {
        let Some(i) = self.pick(|_| true) else { return };
        let now = self.now();
        let k = &mut self.boot().conns[i];
        if k.graceful && k.awaiting.is_none() && !k.to_broker.is_empty() {
            // All the client sent arrives before the end of the stream
            // (also when the router closes it: the driver reads first).
            let bytes = k.to_broker.split();
            k.rbuf.extend_from_slice(&bytes);
            return self.read(i);
        }
        if !k.client_alive && k.closing.is_none() && !(k.graceful && k.awaiting.is_some()) {
            // The broker notices the dead connection.
            k.closing = Some(Close::Io);
            return self.finish_turn(i);
        }
        if let Some(code) = k.handle.close_reason() {
            if !k.m.is_closed() {
                k.m.closed_by_router(code);
            }
        }
        if let Some(rx) = &mut k.awaiting {
            match rx.try_recv() {
                Ok(reply) => {
                    k.awaiting = None;
                    if let Ok(r) = &reply {
                        k.session = Some(r.session.clone());
                    }
                    k.m.connected(reply, now);
                }
                Err(oneshot::error::TryRecvError::Empty) => return,
                Err(oneshot::error::TryRecvError::Closed) => {
                    k.awaiting = None;
                    k.closing = Some(Close::Shutdown);
                    return self.finish_turn(i);
                }
            }
        }
        let durable = *self.boot().journal.durable().borrow();
        let k = &mut self.boot().conns[i];
        let processed = k.ticket.processed.load(std::sync::atomic::Ordering::Acquire);
        let lsn = k.ticket.lsn.load(std::sync::atomic::Ordering::Acquire);
        k.m.handle_processed(processed, lsn);
        k.m.handle_durable(durable);
        self.execute(i);
        let budget = 1 + self.rng.below(16) as usize;
        let k = &mut self.boot().conns[i];
        if k.awaiting.is_none() && !k.m.has_actions() {
            if let Some(v) = k.m.version() {
                let out = &mut k.to_client;
                k.m.deliver(now, budget, |p| encode_sent(&p, v, out));
            }
        }
        self.execute(i);
        // Bytes read while the CONNECT waited.
        if !self.boot().conns[i].rbuf.is_empty() {
            return self.read(i);
        }
        self.finish_turn(i);
    }

    /// Carries out the machine's actions in order, as the driver's
    /// `execute`; a CONNECT goes to the router and the rest waits for it.
    pub(crate) fn execute(&mut self, i: usize) {
        let b = self.boot();
        let k = &mut b.conns[i];
        loop {
            if k.awaiting.is_some() {
                return;
            }
            if k.actions.is_empty() {
                k.actions.extend(k.m.actions());
                if k.actions.is_empty() {
                    return;
                }
            }
            let Some(a) = k.actions.pop_front() else { return };
            let ticketed = |msg| RouterMsg::Ticketed(Box::new(msg), k.ticket.clone());
            match a {
                Action::Send(p) => {
                    if let Some(v) = k.m.version() {
                        encode_sent(&p, v, &mut k.to_client);
                    }
                }
                Action::Route(m) => b.inbox.push_back(ticketed(RouterMsg::Publish(m))),
                Action::Subscribe(entries) => {
                    let key = k.m.session_key().unwrap_or(0);
                    b.inbox.push_back(ticketed(RouterMsg::Subscribe { key, entries }));
                }
                Action::Unsubscribe(filters) => {
                    let key = k.m.session_key().unwrap_or(0);
                    b.inbox.push_back(ticketed(RouterMsg::Unsubscribe { key, filters }));
                }
                Action::Connect(req) => {
                    trace!("client {} CONNECT clean {}", k.client, req.clean_start);
                    let (tx, rx) = oneshot::channel();
                    b.inbox.push_back(RouterMsg::Connect(req, tx));
                    k.awaiting = Some(rx);
                }
                Action::Close(why) => k.closing = Some(why),
                Action::CheckPassword { .. } => k.m.password_checked(false),
            }
        }
    }

    /// Ends the connection if it asked to close.
    pub(crate) fn finish_turn(&mut self, i: usize) {
        if let Some(why) = self.boot().conns[i].closing {
            self.close_conn(i, why);
        }
    }

    /// The connection is gone: the client reads what was written before
    /// (if it still holds it), the router hears of it.
    fn close_conn(&mut self, i: usize, why: Close) {
        let now = self.now();
        let b = self.boot.as_mut().unwrap_or_else(|| panic!("no broker"));
        let mut k = b.conns.swap_remove(i);
        trace!("connection of client {} closed: {why:?}", k.client);
        if k.client_alive {
            let mut out = BytesMut::new();
            let bytes = std::mem::take(&mut k.to_client);
            self.clients[k.client].receive(&bytes, &mut self.oracle, &mut out);
            self.clients[k.client].dropped();
        }
        let msg = k.m.finish(why, now);
        let handed = match &msg {
            Some(RouterMsg::Disconnected { will, .. }) => will.as_ref().map(|m| m.payload.clone()),
            _ => None,
        };
        if let Some(payload) = &k.will {
            // Handed to the router unless the CONNECT never completed or a
            // DISCONNECT 0x00 discarded it ([MQTT-3.1.2-8], [MQTT-3.1.2-10],
            // 5.0 [MQTT-3.14.4-3]; 0x04 keeps it).
            let normal = k.disconnect_read == Some(DisconnectReason::NormalDisconnection);
            let expected = k.session.is_some() && !normal;
            assert!(
                handed.is_some() == expected && handed.as_ref().is_none_or(|h| h == payload),
                "client {}: the machine handed the router the will {handed:?} at the end of a connection that \
                 set {payload:?} (CONNECT completed: {}, DISCONNECT read: {:?})",
                k.client,
                k.session.is_some(),
                k.disconnect_read
            );
            if handed.is_none() {
                self.oracle.will_discarded(payload);
            }
        } else {
            assert!(handed.is_none(), "client {}: a will {handed:?} it never set", k.client);
        }
        if let Some(msg) = msg {
            b.inbox.push_back(msg);
        }
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

/// Encodes what the machine sent, as the driver does; the machine must
/// not send what the encoder refuses (nothing here is too long).
fn encode_sent(p: &Packet, v: edgemq::protocol::Version, out: &mut BytesMut) {
    if let Err(e) = encode(p, v, out) {
        panic!("the machine sent a packet it cannot encode ({e}): {p:?}");
    }
}
