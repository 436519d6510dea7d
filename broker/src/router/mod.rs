//! The router: owner of every session, the subscription index and the
//! retained messages. It matches each published message against the
//! subscriptions and appends one [`Delivery`] per subscribed session (or
//! per shared group, to one chosen member) to that session's queue, then
//! wakes the session's connection. It also holds delayed wills (MQTT 5 Will
//! Delay Interval) and expires abandoned sessions.
//!
//! [`Router`] does no I/O and reads no clock (`now` is passed in); the task
//! in [`run`] feeds it [`RouterMsg`]s in batches from a bounded channel and
//! wakes each touched session once per batch; a connection may route its
//! own PUBLISH inline when the router is free ([`SharedRouter`]). Connections (and later the
//! bridge and `$SYS` publisher) are its clients through [`RouterMsg`].

pub mod admin;
mod caps;
mod control;
mod lifecycle;
mod retained;
mod shared;
mod stats;
mod sys;
mod takeover;
mod task;
mod tree;

mod durable;
mod ending;
mod resume;

pub use shared::SharedRouter;
pub use task::run;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

pub use caps::{RouterCaps, SessionRefused};
pub use control::{Control, LiveSettings};
pub use durable::Pace;
pub use retained::{is_internal as is_internal_topic, RetainedFull, RetainedLimits, RetainedStore};
pub use stats::RouterStats;
pub use takeover::TAKEOVER_GRACE;
pub use tree::{SharedGroup, Sub, SubscriptionTree, Target};

use crate::config::SharedStrategy;
use crate::message::{Delivery, Message, SessionKey};
use crate::metrics::Metrics;
use crate::protocol::{DisconnectReason, QoS, RetainHandling, SubOptions};
use crate::session::budget::Full;
use crate::session::state::{Enqueued, QueueLimits, SessionState, SharedSession};
use crate::store::{Lsn, Record, StoredMessage};

/// How the router reaches a connection it must close (session takeover
/// 0x8E, queue full 0x97): [`ConnHandle::close`] records the MQTT 5 reason
/// and wakes the connection's driver, which tells its machine. The same
/// waker is woken by the shared keep-alive wheel (`server/deadlines.rs`,
/// through a [`WeakConn`]); shutdown is one broadcast every driver waits
/// on, not a token per connection.
///
/// 16 bytes: a connection's machine and its router entry each hold one.
#[derive(Debug, Clone)]
pub struct ConnHandle {
    pub id: u64,
    signal: Arc<ConnSignal>,
}

/// What a connection's handles share.
#[derive(Debug)]
struct ConnSignal {
    /// The driver's task, woken by [`ConnHandle::close`] and by its
    /// keep-alive deadline.
    waker: futures_util::task::AtomicWaker,
    /// The reason of the first [`ConnHandle::close`]; 0 until then.
    reason: AtomicU8,
    /// Whether the client speaks MQTT 5 (set once CONNECT is read).
    v5: AtomicBool,
    /// Who is connected, for the admin API (set once CONNACK is sent).
    info: std::sync::OnceLock<Box<ConnInfo>>,
}

/// A connection's handle that does not keep it: what the keep-alive wheel
/// holds until the deadline's tick (a closed connection's signal is freed
/// then, not kept by the wheel's reference).
#[derive(Debug, Clone)]
pub struct WeakConn(std::sync::Weak<ConnSignal>);

impl WeakConn {
    /// Wakes the connection's driver, if it is still there.
    pub fn wake(&self) {
        if let Some(s) = self.0.upgrade() {
            s.waker.wake();
        }
    }
}

/// What the admin API tells of a connection (`GET /api/clients`).
#[derive(Debug, Clone)]
///
/// Boxed beside every connected client's handle, so kept small: 80 bytes
/// (a `String`, a `&'static str` and a `SystemTime` made it 112).
pub struct ConnInfo {
    pub user: Option<Box<str>>,
    pub address: std::net::SocketAddr,
    /// The listener's URL (`mqtt://127.0.0.1:1883`).
    pub listener: Arc<str>,
    /// When CONNACK was sent, in seconds since the Unix epoch.
    pub connected_since: u64,
    /// Keep-alive granted, in seconds (0: none).
    pub keep_alive: u16,
    pub version: crate::protocol::Version,
}

impl ConnInfo {
    /// `"3.1"`, `"3.1.1"` or `"5.0"`.
    pub fn protocol(&self) -> &'static str {
        match self.version {
            crate::protocol::Version::V31 => "3.1",
            crate::protocol::Version::V311 => "3.1.1",
            crate::protocol::Version::V5 => "5.0",
        }
    }
}

impl ConnHandle {
    pub fn new(id: u64) -> ConnHandle {
        let signal = ConnSignal {
            waker: futures_util::task::AtomicWaker::new(),
            reason: AtomicU8::new(0),
            v5: AtomicBool::new(false),
            info: Default::default(),
        };
        ConnHandle { id, signal: Arc::new(signal) }
    }

    /// A handle that does not keep the connection's signal alive.
    pub fn downgrade(&self) -> WeakConn {
        WeakConn(Arc::downgrade(&self.signal))
    }

    /// Records who is connected (once; later calls are ignored).
    pub fn set_info(&self, info: ConnInfo) {
        let _ = self.signal.info.set(Box::new(info));
    }

    pub fn info(&self) -> Option<&ConnInfo> {
        self.signal.info.get().map(|b| &**b)
    }

    /// Whether the client speaks MQTT 5.
    pub fn v5(&self) -> bool {
        self.signal.v5.load(Ordering::Relaxed)
    }

    /// Records the client's protocol (once its CONNECT is read, before the
    /// router hears of the connection).
    pub fn set_v5(&self, v5: bool) {
        self.signal.v5.store(v5, Ordering::Relaxed);
    }

    /// Asks the connection to close with the MQTT 5 reason `code` (a
    /// DISCONNECT reason, at least 0x80). The first reason wins; returns
    /// whether this call was the first.
    pub fn close(&self, code: DisconnectReason) -> bool {
        let first = self.signal.reason.compare_exchange(0, code.code(), Ordering::AcqRel, Ordering::Acquire).is_ok();
        self.signal.waker.wake();
        first
    }

    /// The reason the connection was asked to close with, if it was.
    pub fn close_reason(&self) -> Option<DisconnectReason> {
        DisconnectReason::try_from(self.signal.reason.load(Ordering::Acquire)).ok().filter(|r| r.is_error())
    }

    /// Ready once [`ConnHandle::close`] is called, with its reason
    /// ([`ConnHandle::close_reason`]); else registers `cx`'s waker, which
    /// the keep-alive wheel wakes too.
    pub fn poll_closed(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<DisconnectReason>> {
        self.signal.waker.register(cx.waker());
        if self.signal.reason.load(Ordering::Acquire) == 0 {
            return std::task::Poll::Pending;
        }
        std::task::Poll::Ready(self.close_reason())
    }
}

/// A connection asking to open or resume its session.
#[derive(Debug)]
pub struct ConnectRequest {
    pub client_id: String,
    pub clean_start: bool,
    /// How long the session outlives the connection; `None` = forever.
    pub expiry: Option<Duration>,
    pub conn: ConnHandle,
    /// The authenticated user (`None`: anonymous, or not checked); a new
    /// session records it as its owner.
    pub user: Option<Arc<str>>,
    /// Refuse (`SessionRefused::NotOwner`) if the client identifier's
    /// session belongs to another user (an anonymous client included);
    /// a session without owner becomes `user`'s when resumed. Set where
    /// users authenticate.
    pub check_owner: bool,
}

/// The router's answer to a [`ConnectRequest`].
pub struct ConnectReply {
    pub key: SessionKey,
    /// The client identifier, shared with the router's copy.
    pub client_id: Arc<str>,
    pub session: Arc<SharedSession>,
    pub session_present: bool,
    /// The log position the CONNACK waits for (0: none), see
    /// [`Router::end_pending`].
    pub durable_before: Lsn,
}

/// One subscription of a SUBSCRIBE, after validation by the session.
#[derive(Debug, Clone)]
pub struct SubscribeEntry {
    pub filter: String,
    pub sub: Sub,
    /// Whether the subscription already existed (for Retain Handling 1).
    pub existed: bool,
}

/// How a connection learns that the router has processed its messages and
/// how far the log must be durable before it may acknowledge them.
#[derive(Debug, Default)]
pub struct Ticket {
    /// Messages of this connection the router has processed.
    pub processed: std::sync::atomic::AtomicU64,
    /// The log position after the router processed the last of them.
    pub lsn: std::sync::atomic::AtomicU64,
    pub notify: tokio::sync::Notify,
    /// Updates left to the bridges' gate (`bridge/outbound.rs`) and not
    /// yet made: later ones wait behind them, to keep their order.
    pub deferred: std::sync::atomic::AtomicU64,
}

/// What the router is asked to do.
pub enum RouterMsg {
    /// Another message, after which `Ticket` is updated.
    Ticketed(Box<RouterMsg>, Arc<Ticket>),
    Connect(ConnectRequest, oneshot::Sender<Result<ConnectReply, SessionRefused>>),
    Publish(Message),
    Subscribe {
        key: SessionKey,
        entries: Vec<SubscribeEntry>,
    },
    Unsubscribe {
        key: SessionKey,
        filters: Vec<String>,
    },
    /// A connection ended. `will` is published after `will_delay` (or when
    /// the session ends, if sooner); `expiry` overrides the session's
    /// expiry (MQTT 5 DISCONNECT).
    Disconnected {
        key: SessionKey,
        conn_id: u64,
        will: Option<Message>,
        will_delay: Duration,
        expiry: Option<Option<Duration>>,
    },
    /// From the broker itself: a liveness probe, live settings.
    Control(Control),
    /// A request of the admin API (`admin.rs`): one page, or an action.
    Admin(admin::Admin),
}

struct SessionEntry {
    /// Shared with `by_client`'s key: one copy of the identifier.
    client_id: Arc<str>,
    shared: Arc<SharedSession>,
    conn: Option<ConnHandle>,
    expiry: Option<Duration>,
    disconnected_at: Option<Instant>,
    /// The user whose CONNECT created the session (`None`: anonymous).
    owner: Option<Arc<str>>,
}

/// The router state.
pub struct Router {
    sessions: HashMap<SessionKey, SessionEntry>,
    /// Ordered, so that the admin API pages through it (`admin.rs`).
    by_client: std::collections::BTreeMap<Arc<str>, SessionKey>,
    subs: SubscriptionTree,
    retained: RetainedStore,
    next_key: SessionKey,
    /// Shared by every session.
    limits: Arc<QueueLimits>,
    /// Close an online MQTT 5 client's connection (0x97) when its queue
    /// overflows, instead of dropping its messages silently.
    quota_disconnect: bool,
    strategy: SharedStrategy,
    rng: u64,
    /// Wills waiting for their delay: (due, session, will).
    delayed_wills: Vec<(Instant, SessionKey, Message)>,
    /// Sessions given deliveries since the last [`Router::take_touched`].
    touched: Vec<Arc<SharedSession>>,
    /// The broker's registry (the queue pool's): counted as events happen.
    metrics: Arc<Metrics>,
    /// Persistence, if on (see `durable.rs`).
    durable: Option<durable::Durable>,
    /// The bridges' `out` rules and queues, if any bridge is configured.
    bridges: Option<crate::bridge::outbound::Outbound>,
    /// CONNECTs waiting for the old connection of their session
    /// (`takeover.rs`), by session.
    takeovers: HashMap<SessionKey, takeover::Parked>,
    /// Sessions being ended in steps (`ending.rs`).
    endings: Vec<ending::Ending>,
    caps: RouterCaps,
    cap_logs: caps::CapLogs,
    sys: sys::Sys,
}

impl Router {
    pub fn new(limits: QueueLimits) -> Router {
        Router {
            metrics: limits.pool.metrics().clone(),
            sessions: HashMap::new(),
            by_client: std::collections::BTreeMap::new(),
            subs: SubscriptionTree::default(),
            retained: RetainedStore::default(),
            next_key: 1,
            limits: Arc::new(limits),
            quota_disconnect: true,
            strategy: SharedStrategy::RoundRobin,
            rng: 0x9E37_79B9_7F4A_7C15,
            delayed_wills: Vec::new(),
            touched: Vec::new(),
            durable: None,
            bridges: None,
            takeovers: HashMap::new(),
            endings: Vec::new(),
            caps: RouterCaps::default(),
            cap_logs: caps::CapLogs::default(),
            sys: sys::Sys::default(),
        }
    }

    /// Offers every routed message to these bridges (`bridge/outbound.rs`).
    pub fn set_bridges(&mut self, b: crate::bridge::outbound::Outbound) {
        self.bridges = Some(b);
    }

    pub fn set_shared_strategy(&mut self, s: SharedStrategy) {
        self.strategy = s;
    }

    /// Whether an online MQTT 5 client whose queue overflows is
    /// disconnected with 0x97 Quota exceeded (`disconnect_on_queue_full`).
    pub fn set_disconnect_on_queue_full(&mut self, on: bool) {
        self.quota_disconnect = on;
    }

    pub fn handle(&mut self, msg: RouterMsg, now: Instant) {
        match msg {
            RouterMsg::Ticketed(inner, ticket) => {
                if self.handle_ticketed(*inner, &ticket, now) {
                    ticket.notify.notify_one();
                }
            }
            RouterMsg::Connect(req, reply) => self.connect_or_wait(req, reply, now),
            RouterMsg::Publish(m) if m.qos == QoS::ExactlyOnce => self.publish_exactly_once(m),
            RouterMsg::Publish(m) => self.publish(m),
            RouterMsg::Subscribe { key, entries } => self.subscribe(key, entries, now),
            RouterMsg::Unsubscribe { key, filters } => {
                let journaled = self.sessions.get(&key).is_some_and(|e| e.shared.lock().is_journaled());
                for f in filters {
                    self.subs.remove(&f, key);
                    if journaled {
                        self.record(&Record::Unsub { key, filter: f });
                    }
                }
            }
            RouterMsg::Disconnected { key, conn_id, will, will_delay, expiry } => {
                self.disconnected(key, conn_id, will.map(|w| (w, will_delay)), expiry, now);
                self.resume_takeover(key, now);
            }
            RouterMsg::Control(c) => self.control(c, now),
            RouterMsg::Admin(req) => self.admin(req, now),
        }
    }

    fn subscribe(&mut self, key: SessionKey, entries: Vec<SubscribeEntry>, now: Instant) {
        let Some(shared) = self.sessions.get(&key).map(|e| e.shared.clone()) else {
            return;
        };
        let journaled = shared.lock().is_journaled();
        for entry in entries {
            self.subs.insert(&entry.filter, key, entry.sub);
            if journaled {
                let (options, id) = (entry.sub.options, entry.sub.id);
                self.record(&Record::Sub { key, filter: entry.filter.clone(), options, id });
            }
            let o = entry.sub.options;
            let send = match o.retain_handling {
                RetainHandling::OnSubscribe => true,
                RetainHandling::OnNewSubscribe => !entry.existed,
                RetainHandling::Never => false,
            };
            // MQTT 5.0 section 4.8.2: no retained messages for shared subscriptions.
            if !send || entry.filter.starts_with("$share/") {
                continue;
            }
            let mut found = Vec::new();
            self.retained.matching(&entry.filter, |m| {
                if !m.expired(now) {
                    found.push(m.clone())
                }
            });
            for msg in found {
                // [MQTT-3.3.1-8] retained messages sent on subscribe keep RETAIN set.
                let d = Delivery {
                    qos: msg.qos.min(o.qos),
                    msg,
                    retain: true,
                    sub_ids: entry.sub.id.into_iter().collect(),
                    shared: None,
                    mid: 0,
                    seq: 0,
                };
                let d = self.stored(d, journaled);
                let offered = offer(&mut shared.lock(), d);
                self.enqueued(key, offered);
            }
            touch(&mut self.touched, &shared);
        }
    }

    /// The one handler of what became of a message offered to session
    /// `key`'s queue, `dropped` being the messages the queue dropped for
    /// lack of room (the new one, or older ones under `drop_oldest`).
    ///
    /// Counts it; at the first drop of an overflow episode (`drop_new`; an
    /// episode lasts until the queue has drained to half) logs it and, if
    /// so configured, closes the connection of an online MQTT 5 client with
    /// DISCONNECT 0x97 Quota exceeded. The session, persistent or not, keeps
    /// its queue; its expiry decides as for any disconnection. Only the
    /// first drop of an episode closes: a client that resumes a session
    /// whose queue overflowed while it was away is let drain it. MQTT
    /// 3.1/3.1.1 have no way to say why, so their clients keep the
    /// connection; so do clients under `drop_oldest`, which keeps the newest
    /// messages flowing by design.
    fn enqueued(&mut self, key: SessionKey, (r, dropped, full): Offered) {
        match r {
            Enqueued::Queued => self.metrics.delivered.inc(),
            Enqueued::DroppedOffline => self.metrics.drops.offline_qos0.inc(),
            _ => {}
        }
        if dropped == 0 {
            return;
        }
        self.metrics.drops.queue_full.add(dropped);
        if matches!(full, Some(Full::Disk(_))) {
            self.metrics.drops.disk_quota.add(dropped);
        }
        let Some(e) = self.sessions.get(&key) else { return };
        let client_id = &*e.client_id;
        if r != (Enqueued::DroppedFull { first: true }) {
            return;
        }
        let v5_conn = e.conn.as_ref().filter(|c| c.v5() && self.quota_disconnect);
        let limit = full.map(|f| f.to_string()).unwrap_or_default();
        if v5_conn.is_some_and(|c| c.close(DisconnectReason::QuotaExceeded)) {
            tracing::warn!(client_id, limit, "session queue full: disconnecting the client (MQTT 5 reason 0x97)");
        } else {
            tracing::warn!(client_id, limit, "session queue full: dropping messages until it drains");
        }
    }

    /// Routes one message: retained store, then every matching session.
    pub fn publish(&mut self, msg: Message) {
        self.metrics.received.add(msg.qos, 1);
        self.metrics.received_bytes.add(msg.qos, msg.payload.len() as u64);
        self.route(Arc::new(msg), true);
    }

    /// [`Router::publish`] without counting it; `record`: a retained
    /// message is recorded in the store (not for the broker's own `$SYS`).
    fn route(&mut self, msg: Arc<Message>, record: bool) {
        if msg.retain && self.retain(&msg) && record {
            if let Some(d) = &self.durable {
                let stored = StoredMessage::from_message(&msg, d.base.0, d.base.1);
                self.record(&Record::Retain(stored));
            }
        }
        // Collect one entry per session: overlapping subscriptions give one
        // copy at the highest granted QoS ([MQTT-3.3.5-1]) with every
        // Subscription Identifier. Each shared group gives one member a copy.
        let mut targets: Vec<(SessionKey, SubOptions, Vec<u32>)> = Vec::new();
        let mut groups: Vec<Arc<str>> = Vec::new();
        self.subs.matches(&msg.topic, |t| match t {
            Target::One(key, sub) => {
                if sub.options.no_local && key == msg.origin {
                    // No Local (MQTT 5): not back to the publishing session.
                    return;
                }
                match targets.iter_mut().find(|t| t.0 == key) {
                    Some(t) => {
                        t.1.qos = t.1.qos.max(sub.options.qos);
                        t.1.retain_as_published |= sub.options.retain_as_published;
                        t.2.extend(sub.id);
                    }
                    None => targets.push((key, sub.options, sub.id.into_iter().collect())),
                }
            }
            Target::Group(filter, _) => groups.push(filter.into()),
        });
        self.skip_routed(&mut targets, &mut groups);
        for (key, options, sub_ids) in targets {
            self.deliver(&msg, key, options, sub_ids, None);
        }
        for filter in groups {
            self.deliver_shared(&msg, filter, None);
        }
        if let Some(b) = &mut self.bridges {
            b.offer(&msg);
        }
    }

    fn deliver_shared(&mut self, msg: &Arc<Message>, filter: Arc<str>, exclude: Option<SessionKey>) -> bool {
        let sessions = &self.sessions;
        let online = |k: SessionKey| sessions.get(&k).is_some_and(|e| e.conn.is_some());
        let picked = self.subs.group(&filter).and_then(|g| pick(g, self.strategy, &mut self.rng, online, exclude));
        let Some((key, sub)) = picked else { return false };
        self.deliver(msg, key, sub.options, sub.id.into_iter().collect(), Some(filter))
    }

    fn deliver(
        &mut self,
        msg: &Arc<Message>,
        key: SessionKey,
        options: SubOptions,
        sub_ids: Vec<u32>,
        shared: Option<Arc<str>>,
    ) -> bool {
        let Some(e) = self.sessions.get(&key) else {
            return false;
        };
        let d = Delivery {
            msg: msg.clone(),
            qos: msg.qos.min(options.qos),
            // [MQTT-3.3.1-9] forwards clear RETAIN unless Retain As Published.
            retain: options.retain_as_published && msg.retain,
            sub_ids,
            shared,
            mid: 0,
            seq: 0,
        };
        // One lock per delivery on the common path; a stored session's
        // QoS 1/2 delivery has its body recorded first, outside the lock.
        let offered = {
            let mut st = e.shared.lock();
            if st.is_journaled() && d.qos != crate::protocol::QoS::AtMostOnce {
                Err(d)
            } else {
                Ok(offer(&mut st, d))
            }
        };
        let (offered, e) = match offered {
            Ok(offered) => (offered, e),
            Err(d) => {
                let d = self.stored(d, true);
                let Some(e) = self.sessions.get(&key) else {
                    return false;
                };
                (offer(&mut e.shared.lock(), d), e)
            }
        };
        let queued = offered.0 == Enqueued::Queued;
        if queued && e.conn.is_some() {
            touch(&mut self.touched, &e.shared);
        }
        self.enqueued(key, offered);
        queued
    }

    /// Gives deliveries a leaving member of a shared group had not finished
    /// to another member; keeps them with the leaver if no other member exists.
    fn redeliver_shared(&mut self, leftovers: Vec<Delivery>, from: SessionKey) {
        for d in leftovers {
            let Some(filter) = d.shared.clone() else { continue };
            self.keep_body(&d);
            if !self.deliver_shared(&d.msg, filter, Some(from)) {
                if let Some(e) = self.sessions.get(&from) {
                    e.shared.lock().enqueue(d);
                }
            }
        }
    }

    /// Sessions that were given messages since the last call; the caller
    /// wakes their connections (once per batch, not once per message).
    pub fn take_touched(&mut self) -> Vec<Arc<SharedSession>> {
        for s in &self.touched {
            s.wake_pending.store(false, Ordering::Relaxed);
        }
        std::mem::take(&mut self.touched)
    }

    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    pub fn subscription_count(&self) -> usize {
        self.subs.len()
    }

    pub fn retained_count(&self) -> usize {
        self.retained.len()
    }
}

/// Notes that `shared`'s connection must be woken after this batch (listed
/// once, however many deliveries it got).
fn touch(touched: &mut Vec<Arc<SharedSession>>, shared: &Arc<SharedSession>) {
    if !shared.wake_pending.swap(true, Ordering::Relaxed) {
        touched.push(shared.clone());
    }
}

/// What became of a message offered to a queue: the outcome, how many
/// messages the queue dropped for lack of room, and the limit reached.
type Offered = (Enqueued, u64, Option<Full>);

/// Offers `d` to a session's queue.
fn offer(st: &mut SessionState, d: Delivery) -> Offered {
    let before = st.dropped;
    let r = st.enqueue(d);
    let dropped = st.dropped.saturating_sub(before);
    (r, dropped, if dropped > 0 { st.last_full } else { None })
}

/// Picks the member of `group` that gets the next message: online members
/// first, in the configured order; never `exclude`.
fn pick(
    group: &SharedGroup,
    strategy: SharedStrategy,
    rng: &mut u64,
    online: impl Fn(SessionKey) -> bool,
    exclude: Option<SessionKey>,
) -> Option<(SessionKey, Sub)> {
    let n = group.members.len();
    if n == 0 {
        return None;
    }
    let start = match strategy {
        SharedStrategy::RoundRobin => group.cursor.get() % n,
        SharedStrategy::Random => {
            // xorshift64: spreads members well enough; no security role.
            *rng ^= *rng << 13;
            *rng ^= *rng >> 7;
            *rng ^= *rng << 17;
            (*rng % n as u64) as usize
        }
    };
    let candidates: Vec<usize> =
        (0..n).map(|i| (start + i) % n).filter(|&i| Some(group.members[i].0) != exclude).collect();
    let chosen = candidates.iter().copied().find(|&i| online(group.members[i].0)).or(candidates.first().copied())?;
    group.cursor.set(chosen + 1);
    Some(group.members[chosen])
}

#[cfg(test)]
#[path = "router_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "powerloss_tests.rs"]
mod powerloss_tests;
