//! The state of one MQTT session that outlives its network connections:
//! subscriptions, the queue of messages waiting to be sent, the outgoing
//! QoS 1/2 messages in flight, and the inbound QoS 2 packet identifiers
//! awaiting PUBREL.
//!
//! The router appends to the queue; the connection that currently owns the
//! session takes from it, tracks acknowledgements and, on resume, resends
//! what was in flight. Both go through [`SharedSession`], one small lock per
//! session (never a global one). The queue itself sits behind
//! [`MessageQueue`]: in memory ([`MemQueue`]) for sessions that are not
//! stored, spilling to disk ([`super::spill::SpillQueue`]) for stored ones.
//! A memory queue past its share of the memory budget becomes a spill
//! queue too when the broker has a data directory (and a memory queue
//! again once drained); only a queue that can neither stay in memory nor
//! spill, or that reached a limit the user set, applies the drop policy.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::budget::{memory_cost, Charge, Full, QueuePool};
use super::spill::SpillQueue;
use crate::config::QueueFullPolicy;
use crate::message::{Delivery, SessionKey};
use crate::protocol::{QoS, SubOptions};
use crate::store::{DiskLimit, Journal, Record};

/// Storage of a session's waiting messages, oldest first.
pub trait MessageQueue: Send {
    fn push_back(&mut self, d: Delivery);
    fn pop_front(&mut self) -> Option<Delivery>;
    fn front(&mut self) -> Option<&Delivery>;
    /// Begins a snapshot's walk of the waiting deliveries, oldest first:
    /// `f` gets what is in memory now; true if more is left for
    /// [`MessageQueue::walk_next`] (none of which is consumed meanwhile).
    fn walk_begin(&mut self, f: &mut dyn FnMut(&Delivery)) -> bool;
    /// Continues a walk: `f` gets the next deliveries as far as they are
    /// in memory (or, `WalkRead::Blocking`, read here).
    fn walk_next(&mut self, _f: &mut dyn FnMut(&Delivery), _read: WalkRead<'_>) -> WalkStep {
        WalkStep::Done
    }
    /// Gives a walk up.
    fn walk_abort(&mut self) {}
    fn len(&self) -> usize;
    /// Removes and returns, in order, the deliveries for which `pred` holds.
    fn take_where(&mut self, pred: &mut dyn FnMut(&Delivery) -> bool) -> Vec<Delivery>;
    /// `take_where` for the deliveries of shared subscriptions; with
    /// `from_disk` false only those in memory (no I/O), the others stay.
    fn take_shared(&mut self, _from_disk: bool) -> Vec<Delivery> {
        self.take_where(&mut |d| d.shared.is_some())
    }
    /// Whether shared-subscription entries may be on disk (what
    /// `take_shared(false)` leaves).
    fn shared_on_disk(&self) -> bool {
        false
    }
    /// For a session that ends: gives up the next chunk on disk if its
    /// read back failed; the entries given up (0 if none).
    fn give_up_unreadable(&mut self) -> usize {
        0
    }
    /// Whether a connection is draining the queue (a hint for what to keep
    /// in memory).
    fn set_online(&mut self, _online: bool) {}
    /// Whether `d` fits (memory budget, disk quotas); the limit if not.
    fn room(&self, d: &Delivery) -> Result<(), Full>;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// When the oldest waiting message was received, without I/O (the
    /// admin API's backlog age; a spilled queue knows it to the chunk: the
    /// first entry of the chunk its front is in); `None` if none waits.
    fn oldest_received(&self) -> Option<std::time::Instant>;
}

/// How a walk gets chunks that are on disk.
pub enum WalkRead<'a> {
    /// Asks the spill thread; the function makes what it calls when one is
    /// read back.
    Ask(&'a dyn Fn() -> Box<dyn FnOnce() + Send>),
    /// Reads them in the caller (the snapshot at start, before listening).
    Blocking,
}

/// What a step of a walk did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalkStep {
    /// Everything is walked.
    Done,
    /// More is in memory or on disk: call again.
    More,
    /// Waiting for chunks to be read back (the `Ask` wake-up comes).
    Waiting,
    /// A chunk could not be read back (`lost` entries), or the walk was cut
    /// short: the snapshot cannot be complete.
    Failed { lost: usize },
}

/// The in-memory queue, its bytes charged to the memory budget.
#[derive(Debug)]
pub struct MemQueue(VecDeque<Delivery>, Charge);

impl MemQueue {
    pub fn new(pool: &Arc<QueuePool>) -> MemQueue {
        MemQueue(VecDeque::new(), Charge::new(pool))
    }
}

impl MessageQueue for MemQueue {
    fn push_back(&mut self, d: Delivery) {
        self.1.add(memory_cost(&d));
        self.0.push_back(d);
    }
    fn pop_front(&mut self) -> Option<Delivery> {
        let d = self.0.pop_front()?;
        self.1.sub(memory_cost(&d));
        if self.0.is_empty() && self.0.capacity() > 65_536 {
            // A drained backlog gives its memory back (a small one is kept:
            // queues that fill and drain often would regrow it each time).
            self.0 = VecDeque::new();
        }
        Some(d)
    }
    fn room(&self, d: &Delivery) -> Result<(), Full> {
        if self.1.has_room(memory_cost(d)) {
            Ok(())
        } else {
            Err(Full::Memory)
        }
    }
    fn front(&mut self) -> Option<&Delivery> {
        self.0.front()
    }
    fn oldest_received(&self) -> Option<std::time::Instant> {
        self.0.front().map(|d| d.msg.received)
    }
    fn walk_begin(&mut self, f: &mut dyn FnMut(&Delivery)) -> bool {
        for d in &self.0 {
            f(d);
        }
        false
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn take_where(&mut self, pred: &mut dyn FnMut(&Delivery) -> bool) -> Vec<Delivery> {
        let (taken, kept): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut self.0).into_iter().partition(|d| pred(d));
        self.0 = kept;
        self.1.sub(taken.iter().map(memory_cost).sum());
        taken.into()
    }
}

/// Queue limits of a session.
#[derive(Debug, Clone)]
pub struct QueueLimits {
    /// `max_queued_messages`; 0: no limit (the budget and quotas decide).
    pub max_messages: usize,
    /// `max_queued_bytes` (payload bytes); 0: no limit.
    pub max_bytes: usize,
    pub policy: QueueFullPolicy,
    /// Queue QoS 0 messages while the session is offline.
    pub queue_qos0: bool,
    /// The memory budget all queues share, and where they spill.
    pub pool: Arc<QueuePool>,
}

impl Default for QueueLimits {
    fn default() -> Self {
        QueueLimits {
            max_messages: 0,
            max_bytes: 0,
            policy: QueueFullPolicy::DropNew,
            queue_qos0: false,
            pool: QueuePool::new(crate::config::DEFAULT_QUEUE_MEMORY_BYTES),
        }
    }
}

/// Where an outgoing QoS 1/2 message is in its flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    /// PUBLISH sent; waiting for PUBACK (QoS 1) or PUBREC (QoS 2).
    Published(Delivery),
    /// PUBREL sent; waiting for PUBCOMP.
    Released,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlight {
    pub pkid: u16,
    pub stage: Stage,
}

/// What happened to a message offered to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    Queued,
    /// Dropped because the queue was full (first drop of an episode: `true`).
    DroppedFull {
        first: bool,
    },
    /// QoS 0 while offline, not queued by configuration.
    DroppedOffline,
}

/// Packet identifiers: chosen by the broker, or bounded by Receive Maximum
/// (at most 65,535 in any case), so a fixed multiplicative hash serves:
/// no key to store (16 bytes less per set than `RandomState`) and a few
/// instructions instead of SipHash on every acknowledgement.
type PkidSet = HashSet<u16, std::hash::BuildHasherDefault<PkidHasher>>;
type PkidMap<V> = HashMap<u16, V, std::hash::BuildHasherDefault<PkidHasher>>;

/// Fibonacci hashing of one `u16`, spreading consecutive identifiers over
/// the high bits that the table's control bytes use.
#[derive(Default)]
pub struct PkidHasher(u64);

impl std::hash::Hasher for PkidHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u16(u16::from(*b));
        }
    }

    fn write_u16(&mut self, n: u16) {
        self.0 = (self.0 ^ u64::from(n)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A session's packet identifiers in use.
#[derive(Default)]
struct Pkids {
    /// The QoS 1/2 deliveries sent and not yet acknowledged, in send
    /// order (here, not in [`SessionState`]: a session that never had one
    /// holds no 32-byte empty queue).
    inflight: VecDeque<InFlight>,
    /// Those in `inflight`, for O(1) allocation.
    out: PkidSet,
    /// Inbound QoS 2 packet ids received and not yet released, each with
    /// 0 once its `In2` record is appended, else its place among those
    /// whose message the router has not routed yet: their `In2` record
    /// waits for the routing ([`SessionState::inbound_qos2_routed`]), so a
    /// durable `In2` always follows its message's records (else a power cut
    /// between them kept the id and lost the message: the retransmission
    /// was dropped as a duplicate; found by the simulation, ROBUSTNESS.md).
    in2: PkidMap<u32>,
}

/// The session state proper.
pub struct SessionState {
    queue: Box<dyn MessageQueue>,
    queued_bytes: usize,
    next_pkid: u16,
    /// The packet identifiers in use and the deliveries in flight, made on
    /// the first QoS 1/2 message (an idle session has none: 88 bytes less
    /// per session, and its `SharedSession` in mimalloc's 192-byte class).
    pkids: Option<Box<Pkids>>,
    /// Topic filter -> options (and Subscription Identifier). A `BTreeMap`:
    /// 24 bytes empty, against 48 for a `HashMap` and its `RandomState`.
    pub subscriptions: BTreeMap<String, (SubOptions, Option<u32>)>,
    /// Shared by every session (the router's).
    limits: Arc<QueueLimits>,
    /// Whether a connection currently owns the session.
    online: bool,
    /// Messages dropped because the queue was full, ever.
    pub dropped: u64,
    /// The queue's length when the current drop episode began.
    /// (At most `u32::MAX`: the field is kept small, see `state_tests`.)
    drop_episode: Option<u32>,
    /// The limit of the last drop.
    pub last_full: Option<Full>,
    /// The queue is a memory queue turned spill queue (not stored): it
    /// turns back into a memory queue once drained.
    spilled_over: bool,
    /// The session has ended and gives its shared entries to their groups
    /// (`router/ending.rs`): an old connection still running takes none.
    pub(crate) ending: bool,
    /// Where changes are recorded, for persistent sessions.
    journal: Option<Arc<Journal>>,
    key: SessionKey,
    next_seq: u64,
    /// The session this is the state of, woken by a spill queue when a
    /// chunk it read back is there (none in tests of the state alone).
    waker: std::sync::Weak<SharedSession>,
}

/// What a session leaves in the registry's queue gauges goes with it
/// (each change was counted where it happened: [`SessionState::count`]).
impl Drop for SessionState {
    fn drop(&mut self) {
        self.count(-(self.queue.len() as i64), -(self.queued_bytes as i64), -(self.inflight_len() as i64));
    }
}

/// The record of a queue entry.
fn enq_record(key: SessionKey, d: &Delivery) -> Record {
    Record::Enq {
        key,
        seq: d.seq,
        mid: d.mid,
        qos: d.qos,
        retain: d.retain,
        sub_ids: d.sub_ids.clone(),
        shared: d.shared.as_deref().map(str::to_owned),
    }
}

/// A session as shared by the router and the owning connection.
pub struct SharedSession {
    pub state: Mutex<SessionState>,
    /// Wakes the owning connection when deliveries are queued.
    pub notify: super::wake::Wake,
    /// The router has this session on its list to wake after the current
    /// batch (so it is listed once, not once per delivery).
    pub wake_pending: std::sync::atomic::AtomicBool,
}

impl SharedSession {
    /// A session whose spill queue can wake it (see [`SessionState`]).
    pub fn new(limits: impl Into<Arc<QueueLimits>>) -> Arc<SharedSession> {
        let limits = limits.into();
        Arc::new_cyclic(|weak| {
            let mut state = SessionState::new(limits);
            state.waker = weak.clone();
            SharedSession {
                state: Mutex::new(state),
                notify: Default::default(),
                wake_pending: std::sync::atomic::AtomicBool::new(false),
            }
        })
    }

    /// Locks the state. A poisoned lock (a panic while holding it) still
    /// holds consistent data for our purposes: every mutation below is
    /// completed before any call that could panic.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, SessionState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl SessionState {
    pub fn new(limits: impl Into<Arc<QueueLimits>>) -> SessionState {
        let limits = limits.into();
        SessionState {
            queue: Box::new(MemQueue::new(&limits.pool)),
            queued_bytes: 0,
            next_pkid: 1,
            pkids: None,
            subscriptions: BTreeMap::new(),
            limits,
            online: false,
            dropped: 0,
            drop_episode: None,
            last_full: None,
            spilled_over: false,
            ending: false,
            journal: None,
            key: 0,
            next_seq: 0,
            waker: std::sync::Weak::new(),
        }
    }

    pub fn online(&self) -> bool {
        self.online
    }

    /// Whether a connection owns the session now.
    pub fn set_online(&mut self, online: bool) {
        self.online = online;
        self.queue.set_online(online);
    }

    /// Stops recording changes (the session is no longer persistent).
    pub fn clear_journal(&mut self) {
        self.journal = None;
    }

    pub fn is_journaled(&self) -> bool {
        self.journal.is_some()
    }

    fn record(&self, r: Record) {
        if let Some(j) = &self.journal {
            j.append(&r);
        }
    }

    /// Whether a delivery's changes are recorded: QoS 1/2 ones whose
    /// message body the router stored.
    fn stored(&self, d: &Delivery) -> bool {
        self.journal.is_some() && d.mid != 0 && d.qos != QoS::AtMostOnce
    }

    fn record_pop(&self, d: &Delivery, pkid: u16) {
        if self.stored(d) {
            self.record(Record::Pop { key: self.key, seq: d.seq, pkid });
        }
    }

    /// Whether `d` fits: the user's limits, then the queue's memory and
    /// disk room; a memory queue out of room starts spilling if it can.
    fn room(&mut self, d: &Delivery) -> Result<(), Full> {
        let l = &self.limits;
        if l.max_messages != 0 && self.queue.len() >= l.max_messages {
            return Err(Full::Messages);
        }
        if l.max_bytes != 0 && self.queued_bytes + d.msg.cost() > l.max_bytes {
            return Err(Full::Bytes);
        }
        match self.queue.room(d) {
            Err(Full::Memory) if self.journal.is_none() && !self.spilled_over => match self.limits.pool.spill() {
                Some(dir) => {
                    // Past its memory share: what it holds stays in memory
                    // as the head, what comes next goes to disk.
                    let mut spill = SpillQueue::new(dir.clone(), self.key, &self.limits.pool, self.waker.clone());
                    spill.set_online(self.online);
                    while let Some(d) = self.queue.pop_front() {
                        spill.push_head(d);
                    }
                    self.queue = Box::new(spill);
                    self.spilled_over = true;
                    self.queue.room(d)
                }
                None => Err(Full::Memory),
            },
            r => r,
        }
    }

    /// Offers a delivery to the queue, applying the limits.
    pub fn enqueue(&mut self, mut d: Delivery) -> Enqueued {
        if !self.online && d.qos == QoS::AtMostOnce && !self.limits.queue_qos0 {
            return Enqueued::DroppedOffline;
        }
        let cost = d.msg.cost();
        if let Err(full) = self.room(&d) {
            // Dropping older entries cannot help against the total quota
            // or a full disk: those drop the new message.
            let helps = !matches!(full, Full::Disk(DiskLimit::Total | DiskLimit::FreeSpace));
            let made_room = self.limits.policy == QueueFullPolicy::DropOldest && helps && {
                while self.room(&d).is_err() {
                    let Some(old) = self.pop_queued() else { break };
                    self.record_pop(&old, 0);
                    self.dropped += 1;
                }
                self.room(&d).is_ok()
            };
            if !made_room {
                self.dropped += 1;
                self.last_full = Some(full);
                let first = self.drop_episode.is_none();
                if first {
                    self.drop_episode = Some(u32::try_from(self.queue.len()).unwrap_or(u32::MAX));
                }
                return Enqueued::DroppedFull { first };
            }
        }
        self.queued_bytes += cost;
        self.count(1, cost as i64, 0);
        d.seq = self.next_seq;
        self.next_seq += 1;
        if self.stored(&d) {
            self.record(enq_record(self.key, &d));
        }
        self.queue.push_back(d);
        Enqueued::Queued
    }

    /// Counts a change of this session's queue (messages, bytes) and
    /// in-flight window in the registry's gauges: a relaxed add for each
    /// that changed. (Counted as they happen, not kept per session: the
    /// session's allocation has no room left in its size class.)
    fn count(&self, messages: i64, bytes: i64, inflight: i64) {
        let m = self.limits.pool.metrics();
        for (g, n) in [(&m.queued_messages, messages), (&m.queued_bytes, bytes), (&m.inflight, inflight)] {
            if n != 0 {
                g.add(n);
            }
        }
    }

    /// The payload and topic bytes of the queued messages.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// When the oldest queued message was received, if the queue holds it
    /// in memory (a spilled queue's head may be on disk: `None`).
    pub fn oldest_queued(&self) -> Option<Instant> {
        self.queue.oldest_received()
    }

    fn pop_queued(&mut self) -> Option<Delivery> {
        let d = self.queue.pop_front()?;
        self.queued_bytes = self.queued_bytes.saturating_sub(d.msg.cost());
        self.count(-1, -(d.msg.cost() as i64), 0);
        // A drop episode ends once the queue has drained to half what it
        // held when it began, so sustained overload logs once, not once per burst.
        if self.drop_episode.is_some_and(|n| self.queue.len() <= n as usize / 2) {
            self.drop_episode = None;
        }
        if self.spilled_over && self.queue.is_empty() {
            self.queue = Box::new(MemQueue::new(&self.limits.pool));
            self.queue.set_online(self.online);
            self.spilled_over = false;
        }
        Some(d)
    }

    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    pub fn inflight_len(&self) -> usize {
        self.flights().len()
    }

    /// The deliveries in flight (none until the first QoS 1/2 one).
    fn flights(&self) -> &VecDeque<InFlight> {
        static NONE: VecDeque<InFlight> = VecDeque::new();
        self.pkids.as_ref().map_or(&NONE, |p| &p.inflight)
    }

    /// Takes the next delivery to send, if the in-flight `window` allows,
    /// assigning a packet identifier to QoS 1/2 ones (0 for QoS 0).
    /// Expired messages (Message Expiry Interval) are discarded on the way.
    pub fn next_to_send(&mut self, window: usize, now: Instant) -> Option<(Delivery, u16)> {
        if self.ending {
            return None;
        }
        loop {
            let qos = self.queue.front()?.qos;
            if qos != QoS::AtMostOnce && self.inflight_len() >= window {
                return None;
            }
            let d = self.pop_queued()?;
            if d.msg.expired(now) {
                self.record_pop(&d, 0);
                self.limits.pool.metrics().drops.expired.inc();
                continue;
            }
            if d.qos == QoS::AtMostOnce {
                return Some((d, 0));
            }
            let pkid = self.alloc_pkid();
            self.record_pop(&d, pkid);
            let pkids = self.pkids();
            pkids.out.insert(pkid);
            pkids.inflight.push_back(InFlight { pkid, stage: Stage::Published(d.clone()) });
            self.count(0, 0, 1);
            return Some((d, pkid));
        }
    }

    fn alloc_pkid(&mut self) -> u16 {
        loop {
            let id = self.next_pkid;
            self.next_pkid = if id == u16::MAX { 1 } else { id + 1 };
            if !self.pkids.as_ref().is_some_and(|p| p.out.contains(&id)) {
                return id;
            }
        }
    }

    fn pkids(&mut self) -> &mut Pkids {
        self.pkids.get_or_insert_with(Box::default)
    }

    fn forget_pkid(&mut self, pkid: u16) {
        if let Some(p) = &mut self.pkids {
            p.out.remove(&pkid);
        }
    }

    fn position(&self, pkid: u16) -> Option<usize> {
        self.flights().iter().position(|f| f.pkid == pkid)
    }

    /// PUBACK received: the QoS 1 flow is complete.
    pub fn puback(&mut self, pkid: u16) -> bool {
        match self.position(pkid) {
            Some(i) if matches!(&self.flights()[i].stage, Stage::Published(d) if d.qos == QoS::AtLeastOnce) => {
                self.pkids().inflight.remove(i);
                self.count(0, 0, -1);
                self.forget_pkid(pkid);
                self.record(Record::Ack { key: self.key, pkid });
                true
            }
            _ => false,
        }
    }

    /// PUBREC received: the message is the receiver's now; PUBREL is owed.
    /// Returns whether the packet identifier was known.
    pub fn pubrec(&mut self, pkid: u16) -> bool {
        match self.position(pkid) {
            Some(i) => {
                self.pkids().inflight[i].stage = Stage::Released;
                self.record(Record::Rel { key: self.key, pkid });
                true
            }
            None => false,
        }
    }

    /// PUBREC with an error reason (MQTT 5) or PUBCOMP: the flow ends.
    pub fn complete(&mut self, pkid: u16) -> bool {
        match self.position(pkid) {
            Some(i) => {
                self.pkids().inflight.remove(i);
                self.count(0, 0, -1);
                self.forget_pkid(pkid);
                self.record(Record::Ack { key: self.key, pkid });
                true
            }
            None => false,
        }
    }

    /// Everything in flight, in send order, for a resumed session
    /// ([MQTT-4.4.0-1]: resend unacknowledged PUBLISH and PUBREL).
    pub fn inflight(&self) -> impl Iterator<Item = &InFlight> {
        self.flights().iter()
    }

    /// Inbound QoS 2 PUBLISH: keeps its packet identifier. `false` means
    /// it was already kept (a redelivery), so it must not be routed again.
    /// Its `In2` record is appended once the router has routed the message
    /// ([`SessionState::inbound_qos2_routed`]).
    pub fn inbound_qos2_received(&mut self, pkid: u16) -> bool {
        if self.inbound_qos2_contains(pkid) {
            return false;
        }
        let place = match self.journal {
            Some(_) => self.pkids.as_ref().and_then(|p| p.in2.values().max()).map_or(1, |m| m + 1),
            None => 0,
        };
        self.pkids().in2.insert(pkid, place);
        true
    }

    /// The router has routed this session's oldest inbound QoS 2 message
    /// not yet routed (its records are appended): its `In2` record follows
    /// them. (A client that sent PUBREL before its PUBREC shifts this by
    /// one: its own protocol error.)
    pub fn inbound_qos2_routed(&mut self) {
        let Some(pkid) = self.inbound_qos2_unrouted() else { return };
        self.pkids().in2.insert(pkid, 0);
        self.record(Record::In2 { key: self.key, pkid });
    }

    /// The packet identifier [`SessionState::inbound_qos2_routed`] will
    /// record next: the oldest inbound QoS 2 message not yet routed (of a
    /// recorded session; `None` otherwise).
    pub fn inbound_qos2_unrouted(&self) -> Option<u16> {
        self.pkids.as_ref()?.in2.iter().filter(|(_, p)| **p != 0).min_by_key(|(_, p)| **p).map(|(k, _)| *k)
    }

    /// PUBREL received: forgets the identifier. Returns whether it was known.
    pub fn inbound_qos2_released(&mut self, pkid: u16) -> bool {
        match self.pkids.as_mut().and_then(|p| p.in2.remove(&pkid)) {
            Some(0) => {
                self.record(Record::In2Done { key: self.key, pkid });
                true
            }
            Some(_) => true,
            None => false,
        }
    }

    pub fn inbound_qos2_contains(&self, pkid: u16) -> bool {
        self.pkids.as_ref().is_some_and(|p| p.in2.contains_key(&pkid))
    }

    pub fn inbound_qos2_pending(&self) -> usize {
        self.pkids.as_ref().map_or(0, |p| p.in2.len())
    }

    /// Removes the deliveries that came through shared subscriptions and
    /// are not yet acknowledged (QoS 1 in flight, or queued), so the router
    /// can give them to another member of their group. QoS 2 messages
    /// already sent stay: their flow must complete with this client (MQTT
    /// 5.0 section 4.8.2). The records of the removal are returned, to be
    /// appended after the new member's queue records (a crash in between
    /// must not lose the message). With `from_disk` false, queued entries
    /// a spill queue holds on disk stay (no I/O): they wait for this client
    /// to come back or for its session to end (MQTT 5.0 section 4.8.2: the
    /// Server MAY wait for the Client to reconnect).
    pub fn take_shared(&mut self, from_disk: bool) -> (Vec<Delivery>, Vec<Record>) {
        let mut out = Vec::new();
        let mut records = Vec::new();
        let mut acked = Vec::new();
        if let Some(p) = &mut self.pkids {
            p.inflight.retain(|f| match &f.stage {
                Stage::Published(d) if d.shared.is_some() && d.qos == QoS::AtLeastOnce => {
                    out.push(d.clone());
                    acked.push(f.pkid);
                    false
                }
                _ => true,
            });
        }
        self.count(0, 0, -(acked.len() as i64));
        for pkid in acked {
            self.forget_pkid(pkid);
            if self.journal.is_some() {
                records.push(Record::Ack { key: self.key, pkid });
            }
        }
        let taken = self.queue.take_shared(from_disk);
        for d in &taken {
            self.queued_bytes = self.queued_bytes.saturating_sub(d.msg.cost());
            self.count(-1, -(d.msg.cost() as i64), 0);
            if self.stored(d) {
                records.push(Record::Pop { key: self.key, seq: d.seq, pkid: 0 });
            }
        }
        out.extend(taken);
        (out, records)
    }

    /// Rebuilds a persistent session from its stored state.
    pub fn restore(
        &mut self,
        stored: crate::store::recover::StoredSession,
        message: &mut dyn FnMut(u64) -> Option<Arc<crate::message::Message>>,
    ) {
        use crate::store::recover::Flight;
        let delivery = |seq: u64, e: crate::store::recover::Entry, msg: Arc<crate::message::Message>| {
            let (qos, retain, mid) = (e.qos, e.retain, e.mid);
            let (sub_ids, shared) = e.into_extra();
            Delivery { msg, qos, retain, sub_ids, shared: shared.map(Arc::from), mid, seq }
        };
        self.subscriptions = stored.subs.into_iter().collect();
        let mut max_seq = 0;
        for (pkid, f) in stored.inflight {
            let stage = match f {
                Flight::Published { seq, entry } => {
                    // saturating: a damaged log's u64::MAX must not overflow (found by fuzzing).
                    max_seq = max_seq.max(seq.saturating_add(1));
                    let Some(msg) = message(entry.mid) else { continue };
                    Stage::Published(delivery(seq, entry, msg))
                }
                Flight::Released => Stage::Released,
            };
            self.next_pkid = pkid.checked_add(1).unwrap_or(1).max(1);
            let pkids = self.pkids();
            pkids.out.insert(pkid);
            pkids.inflight.push_back(InFlight { pkid, stage });
            self.count(0, 0, 1);
        }
        for (seq, entry) in stored.queue.iter() {
            max_seq = max_seq.max(seq.saturating_add(1));
            let Some(msg) = message(entry.mid) else { continue };
            let d = delivery(seq, entry, msg);
            self.queued_bytes += d.msg.cost();
            self.count(1, d.msg.cost() as i64, 0);
            self.queue.push_back(d);
        }
        self.next_seq = max_seq;
        if !stored.in2.is_empty() {
            self.pkids().in2 = stored.in2.into_iter().map(|p| (p, 0)).collect();
        }
    }

    /// Drops everything (clean start).
    pub fn clear(&mut self) {
        let (limits, waker) = (self.limits.clone(), self.waker.clone());
        *self = SessionState::new(limits);
        self.waker = waker;
    }
}

#[path = "state_snapshot.rs"]
mod snapshot;

#[path = "state_end.rs"]
mod end;
pub use end::Drained;

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
