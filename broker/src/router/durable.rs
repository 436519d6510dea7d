//! The router's side of persistence: recording session, subscription,
//! retained and queue changes, restoring state at start, and snapshots
//! that let the log be compacted.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::{Router, SessionEntry};
use crate::message::{Delivery, Message, SessionKey};
use crate::session::state::{SessionState, SharedSession, WalkRead, WalkStep};
use crate::store::record::unix_ms;
use crate::store::{Journal, Lsn, Model, Record, StoredMessage};

pub(super) struct Durable {
    pub journal: Arc<Journal>,
    /// An `Instant` and the wall-clock time it corresponds to.
    pub base: (Instant, SystemTime),
    next_mid: u64,
    /// The message body stored last, to store it once for all its targets.
    /// The `Arc` is kept so its address cannot be reused by another message.
    last_mid: Option<(Arc<Message>, u64)>,
    snapshot_id: u64,
    /// A finished snapshot's end and begin LSNs, waiting to be durable.
    pending_gc: Option<(Lsn, Lsn)>,
    /// Old segments are being deleted by the log writer: the count of its
    /// deletions done when it was asked (the log's size is read after).
    deleting: Option<u64>,
    /// Log size right after the last compaction.
    compacted_size: u64,
    /// A compaction's snapshot being written, a few sessions at a time.
    running: Option<SnapshotRun>,
    /// Exactly-once across a cut inside a routing (`resume.rs`).
    pub resume: super::resume::Resume,
    /// No compaction before this (a snapshot failed).
    retry_at: Option<Instant>,
    /// Rate-limits the error that compaction waits for a restart.
    unreadable_log: crate::ratelimit::RateLimited,
    /// Notified when a chunk a snapshot's walk waits for is read back.
    pub walk_ready: Arc<tokio::sync::Notify>,
    /// Client identifiers whose recorded session ended (`SessionEnd`), with
    /// the log's position after it, until that is durable: a CONNACK that
    /// says the session is gone waits for it ([`Router::end_pending`]).
    ended: HashMap<Arc<str>, Lsn>,
}

/// How long after a failed snapshot the next may start.
const SNAPSHOT_RETRY: Duration = Duration::from_secs(60);

/// How a snapshot step waits for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Stops between sessions when the log has no room (the router's loop
    /// comes back when it has).
    Room,
    /// Waits for room (blocking) before each record: the snapshot at start.
    Wait,
    /// Never waits: everything is appended now.
    Never,
}

/// A snapshot in progress ([`Router::snapshot_step`]). Records other than
/// the snapshot's apply, in replay, to the state it builds as well, to the
/// sessions it has already written or that they create (`store::recover`):
/// so each session is written whole, under its lock, at any point between
/// the begin and end records, and what changed before is in what it writes.
pub(super) struct SnapshotRun {
    id: u64,
    begin: Lsn,
    /// The sessions still to write, in descending order (the next is
    /// the last).
    keys: Vec<SessionKey>,
    /// Of those, the ones written early, out of order: a session is written
    /// before any other record of it that would otherwise create it in the
    /// state replay builds (see [`Router::record_session`]).
    early: HashSet<SessionKey>,
    /// Message bodies written so far (bounded, see `SessionState::dump`).
    mids: HashSet<u64>,
    /// Sessions whose spilled chunks on disk are still to write, in the
    /// order their walks began (only the first is read ahead).
    walks: std::collections::VecDeque<Arc<SharedSession>>,
    /// The first walk waits for the spill thread.
    waiting: bool,
    /// The retained messages still to write, once the sessions are.
    retained: Option<Vec<Arc<Message>>>,
}

/// Retained messages a snapshot step writes as one session's worth.
const RETAINED_PER_STEP: usize = 256;

impl Durable {
    /// The record of a persistent session: expiry, and since when it is
    /// offline (0: connected).
    fn session_record(&self, key: SessionKey, e: &SessionEntry) -> Record {
        let offline_since_ms = match (&e.conn, e.disconnected_at) {
            (None, Some(at)) => unix_ms(self.wall(at)),
            _ => 0,
        };
        let expiry_secs = e.expiry.map(|x| x.as_secs());
        let user = e.owner.as_deref().map(str::to_owned);
        Record::Session { key, client_id: e.client_id.to_string(), expiry_secs, offline_since_ms, user }
    }

    /// Writes one session into the snapshot in progress (`st` is its
    /// locked state); true if its spilled chunks on disk are left for a
    /// walk (`SnapshotRun::walks`).
    fn snap_session(
        &self,
        mids: &mut HashSet<u64>,
        key: SessionKey,
        e: &SessionEntry,
        st: &mut SessionState,
        (now, wall): (Instant, SystemTime),
        pace: Pace,
    ) -> bool {
        let j = &self.journal;
        j.append(&Record::Snap(Box::new(self.session_record(key, e))));
        let mut out = |r| {
            if pace == Pace::Wait {
                j.wait_room();
            }
            j.append(&Record::Snap(Box::new(r)));
        };
        st.dump(mids, now, wall, &mut out)
    }

    /// Records a message body under a new id; returns the id.
    fn store_body(&mut self, msg: &Message) -> u64 {
        let mid = self.next_mid;
        self.next_mid += 1;
        self.write_body(mid, msg);
        if let Some(r) = self.resume.routing_record(mid, msg) {
            self.journal.append(&r);
        }
        mid
    }

    /// Appends the body record of `msg` under `mid`.
    fn write_body(&self, mid: u64, msg: &Message) {
        let stored = StoredMessage::from_message(msg, self.base.0, self.base.1);
        self.journal.append(&Record::Msg { mid, msg: stored });
    }

    /// Gives up the snapshot in progress (a chunk of a spilled queue could
    /// not be read back, or a walk was cut short): no end record, so the
    /// log keeps what it has and the snapshot is retried later.
    fn abandon(&mut self, run: SnapshotRun, lost: usize, now: Instant) {
        tracing::error!(
            snapshot = run.id,
            unreadable_messages = lost,
            "store: the snapshot is abandoned (a spilled queue could not be walked); the log keeps \
             everything and compaction is retried in {} s",
            SNAPSHOT_RETRY.as_secs()
        );
        for s in run.walks {
            s.lock().dump_abort();
        }
        self.retry_at = Some(now + SNAPSHOT_RETRY);
    }

    /// A session that ends in steps (`ending.rs`) leaves the snapshot's
    /// walks: its end, recorded before the snapshot's, removes it from
    /// what the snapshot builds.
    pub fn forget_walk(&mut self, s: &Arc<SharedSession>) {
        if let Some(run) = &mut self.running {
            run.walks.retain(|w| !Arc::ptr_eq(w, s));
        }
    }

    fn wall(&self, now: Instant) -> SystemTime {
        match now.checked_duration_since(self.base.0) {
            Some(d) => self.base.1 + d,
            None => self.base.1 - self.base.0.duration_since(now),
        }
    }
}

impl Router {
    /// Records the end of `client_id`'s recorded session `key`.
    pub(super) fn record_end(&mut self, key: SessionKey, client_id: &Arc<str>) {
        if let Some(d) = &mut self.durable {
            d.journal.append(&Record::SessionEnd { key });
            let lsn = d.journal.appended();
            d.ended.insert(client_id.clone(), lsn);
        }
    }

    /// The log position a CONNACK for `client_id` must wait for, if its
    /// session ended and that is not durable yet (0 if nothing): a power
    /// cut before it would bring back a session the CONNACK said was gone,
    /// its queue delivered after all and its inbound QoS 2 identifiers
    /// reused. (Ends already durable are forgotten by the tick.)
    pub(super) fn end_pending(&self, client_id: &str) -> Lsn {
        let Some(d) = &self.durable else { return 0 };
        match d.ended.get(client_id) {
            Some(&lsn) if lsn > *d.journal.durable().borrow() => lsn,
            _ => 0,
        }
    }

    /// Turns persistence on: restores `model`, then takes a snapshot so the
    /// log starts compact. `base` pairs an `Instant` with wall-clock time.
    pub fn enable_persistence(&mut self, journal: Arc<Journal>, model: Model, base: (Instant, SystemTime)) {
        let now = base.0;
        let wall_now = base.1;
        self.durable = Some(Durable {
            journal: journal.clone(),
            base,
            next_mid: model.max_mid + 1,
            last_mid: None,
            snapshot_id: 0,
            pending_gc: None,
            deleting: None,
            compacted_size: 0,
            running: None,
            resume: super::resume::Resume::new(model.interrupted),
            retry_at: None,
            unreadable_log: Default::default(),
            walk_ready: Arc::new(tokio::sync::Notify::new()),
            ended: HashMap::new(),
        });
        self.next_key = self.next_key.max(model.max_key + 1);
        // Queues past their memory share spill there too.
        self.limits.pool.set_spill(journal.spill.clone());
        let msgs = model.msgs;
        let mut cache: std::collections::HashMap<u64, Arc<Message>> = std::collections::HashMap::new();
        let mut message = |mid: u64| -> Option<Arc<Message>> {
            if let Some(m) = cache.get(&mid) {
                return Some(m.clone());
            }
            let m = Arc::new(msgs.get(mid)?.into_message(now, wall_now));
            // Shares bodies between sessions; bounded, as restored queues
            // go to disk and must not all stay in memory through here.
            if cache.len() >= 65_536 {
                cache.clear();
            }
            cache.insert(mid, m.clone());
            Some(m)
        };
        // In key order (the order they were made): shared groups list their
        // members in it, so which member gets a message does not depend on
        // a hash map's order (the simulation replays a seed exactly).
        let mut sessions: Vec<_> = model.sessions.into_iter().collect();
        sessions.sort_unstable_by_key(|s| s.0);
        for (key, stored) in sessions {
            let shared = SharedSession::new(self.limits.clone());
            let client_id: Arc<str> = stored.client_id.as_str().into();
            let owner: Option<Arc<str>> = stored.user.as_deref().map(Arc::from);
            let expiry = stored.expiry_secs.map(Duration::from_secs);
            // Offline since the recorded time, or since now if it was
            // connected when the broker stopped.
            let offline_for = Duration::from_millis(unix_ms(wall_now).saturating_sub(stored.offline_since_ms));
            let since = if stored.offline_since_ms == 0 { now } else { now.checked_sub(offline_for).unwrap_or(now) };
            {
                let mut st = shared.lock();
                st.set_journal(key, journal.clone());
                st.restore(stored, &mut message);
                for (filter, (options, id)) in &st.subscriptions {
                    self.subs.insert(filter, key, super::Sub { options: *options, id: *id });
                }
            }
            self.by_client.insert(client_id.clone(), key);
            self.sessions.insert(
                key,
                SessionEntry { client_id, shared, conn: None, expiry, disconnected_at: Some(since), owner },
            );
        }
        for (_, m) in model.retained {
            self.retain(&Arc::new(m.into_message(now, wall_now)));
        }
        // Before listening: waiting for the log writer keeps a backlog's
        // snapshot from waiting in memory all at once.
        self.snapshot_with(now, Pace::Wait);
    }

    pub(super) fn record(&self, r: &Record) {
        if let Some(d) = &self.durable {
            d.journal.append(r);
        }
    }

    /// Records a persistent session's existence, expiry and online state,
    /// making it journaled if it was not yet.
    pub(super) fn record_session(&mut self, key: SessionKey, now: Instant) {
        let Some(d) = self.durable.as_mut() else { return };
        let Some(e) = self.sessions.get(&key) else { return };
        if e.expiry == Some(Duration::ZERO) {
            // No longer persistent (an MQTT 5 client resumed with expiry 0):
            // it must not come back after a restart.
            let mut st = e.shared.lock();
            if st.is_journaled() {
                d.journal.append(&Record::SessionEnd { key });
                d.ended.insert(e.client_id.clone(), d.journal.appended());
                st.clear_journal();
            }
            return;
        }
        let mut st = e.shared.lock();
        if st.is_journaled() {
            // A snapshot that has not written this session yet does so now:
            // the record below would otherwise create it, empty, in the state
            // replay builds, and its snapshot entries would then come late
            // (held in memory at start, in-flight order lost).
            if let Some(mut run) = d.running.take() {
                let pending = !run.early.contains(&key) && run.keys.binary_search_by(|k| key.cmp(k)).is_ok();
                if pending {
                    let wall = d.wall(now);
                    if d.snap_session(&mut run.mids, key, e, &mut st, (now, wall), Pace::Room) {
                        run.walks.push_back(e.shared.clone());
                    }
                    run.early.insert(key);
                }
                d.running = Some(run);
            }
        }
        d.journal.append(&d.session_record(key, e));
        if !st.is_journaled() {
            // Only a session made this instant gets here: a resumed one was
            // journaled since it was made, or had Session Expiry 0 and ended
            // with its connection (`Router::connect`), and a DISCONNECT may
            // not raise an expiry of 0 [MQTT-3.14.2-2]. So it holds nothing
            // to record yet.
            debug_assert!(st.queued() == 0 && st.inflight_len() == 0 && st.subscriptions.is_empty());
            st.set_journal(key, d.journal.clone());
        }
    }

    /// Stores the message body of a QoS 1/2 delivery to a persistent
    /// session (once per message) and names it in the delivery.
    pub(super) fn stored(&mut self, mut dl: Delivery, journaled: bool) -> Delivery {
        let Some(d) = &mut self.durable else { return dl };
        if !journaled || dl.qos == crate::protocol::QoS::AtMostOnce {
            return dl;
        }
        let mid = match &d.last_mid {
            Some((m, mid)) if Arc::ptr_eq(m, &dl.msg) => *mid,
            _ => {
                let mid = d.store_body(&dl.msg);
                d.last_mid = Some((dl.msg.clone(), mid));
                mid
            }
        };
        dl.mid = mid;
        dl
    }

    /// A queued delivery moves to another member of its shared group: the
    /// new entry names the same message body (written again under its id,
    /// so a snapshot in progress has it whatever it wrote already). A cut
    /// between the new entry and the old one's removal then leaves two
    /// entries of one body in the group, which replay reduces to one
    /// (`store::recover`, `Model::drop_shared_copies`).
    pub(super) fn keep_body(&mut self, dl: &Delivery) {
        let Some(d) = &mut self.durable else { return };
        if dl.mid == 0 {
            return;
        }
        d.write_body(dl.mid, &dl.msg);
        d.last_mid = Some((dl.msg.clone(), dl.mid));
    }

    /// Writes the live state as a snapshot, all of it now (after the one
    /// in progress, if any), without waiting for the log; older log
    /// segments are deleted once it is durable (see
    /// [`Router::maintain_store`]).
    pub fn snapshot(&mut self, now: Instant) {
        self.snapshot_with(now, Pace::Never);
    }

    /// [`Router::snapshot`] at `pace`.
    fn snapshot_with(&mut self, now: Instant, pace: Pace) {
        while !self.snapshot_step(now, pace, usize::MAX) {}
        self.start_snapshot();
        while !self.snapshot_step(now, pace, usize::MAX) {}
    }

    /// Begins a snapshot (none may be in progress).
    fn start_snapshot(&mut self) {
        let Some(d) = &mut self.durable else { return };
        if d.running.is_some() {
            return;
        }
        d.snapshot_id += 1;
        let id = d.snapshot_id;
        let begin = d.journal.append(&Record::SnapshotBegin { id });
        // A message body named before the snapshot is in it only if a queue
        // still refers to it: no later delivery may reuse its id.
        d.last_mid = None;
        let mut keys: Vec<SessionKey> = self.sessions.keys().copied().collect();
        keys.sort_unstable_by(|a, b| b.cmp(a));
        d.running = Some(SnapshotRun {
            id,
            begin,
            keys,
            mids: HashSet::new(),
            early: HashSet::new(),
            walks: Default::default(),
            waiting: false,
            retained: None,
        });
    }

    /// Whether the snapshot in progress waits for the spill thread (not for
    /// the log): the router's loop waits for `walk_ready` then.
    pub fn snapshot_waiting(&self) -> bool {
        self.durable.as_ref().and_then(|d| d.running.as_ref()).is_some_and(|r| r.waiting)
    }

    /// Whether a compaction's snapshot is being written.
    pub fn snapshot_running(&self) -> bool {
        self.durable.as_ref().is_some_and(|d| d.running.is_some())
    }

    /// Writes the next sessions of the snapshot in progress, at most
    /// `sessions` (a walk's step counts as one), at `pace`; true once it is
    /// complete (or none runs, or it failed). With [`Pace::Room`] it never
    /// waits: it stops when the log has no room, and a spilled queue's
    /// chunks on disk are written as the spill thread reads them back
    /// (`walk_ready` is notified; [`Router::snapshot_waiting`]).
    pub fn snapshot_step(&mut self, now: Instant, pace: Pace, sessions: usize) -> bool {
        if pace != Pace::Room && self.snapshot_running() {
            // The end needs every ending recorded, and these paces may not
            // come back for it.
            self.finish_endings(None, now);
        }
        let recorded_ending = self.recorded_ending();
        let Some(d) = &mut self.durable else { return true };
        let Some(mut run) = d.running.take() else { return true };
        let j = d.journal.clone();
        let wall = d.wall(now);
        let ready = d.walk_ready.clone();
        let wake = move || -> Box<dyn FnOnce() + Send> {
            let ready = ready.clone();
            Box::new(move || ready.notify_one())
        };
        let mut written = 0;
        run.waiting = false;
        loop {
            if written >= sessions || (pace == Pace::Room && !j.has_room()) {
                d.running = Some(run);
                return false;
            }
            if let Some(s) = run.walks.front().cloned() {
                written += 1;
                let mut st = s.lock();
                if !st.is_journaled() {
                    // Ended: its records would be ignored.
                    st.dump_abort();
                    run.walks.pop_front();
                    continue;
                }
                let mut out = |r| {
                    if pace == Pace::Wait {
                        j.wait_room();
                    }
                    j.append(&Record::Snap(Box::new(r)));
                };
                let read = if pace == Pace::Room { WalkRead::Ask(&wake) } else { WalkRead::Blocking };
                match st.dump_next(&mut run.mids, now, wall, &mut out, read) {
                    WalkStep::Done => {
                        run.walks.pop_front();
                    }
                    WalkStep::More => {}
                    WalkStep::Waiting => {
                        run.waiting = true;
                        d.running = Some(run);
                        return false;
                    }
                    WalkStep::Failed { lost } => {
                        drop(st);
                        d.abandon(run, lost, now);
                        return true;
                    }
                }
                continue;
            }
            let Some(key) = run.keys.pop() else { break };
            if run.early.remove(&key) {
                continue;
            }
            let Some(e) = self.sessions.get(&key) else { continue };
            // Appended under the session's lock, so a change the session
            // records after this point follows its snapshot in the log.
            let mut st = e.shared.lock();
            if !st.is_journaled() {
                continue;
            }
            written += 1;
            if d.snap_session(&mut run.mids, key, e, &mut st, (now, wall), pace) {
                run.walks.push_back(e.shared.clone());
            }
        }
        // Then the retained messages, a batch at a time as well. Each is
        // looked up again when written: one replaced or cleared meanwhile
        // was recorded (and applies to what replay builds), and the
        // snapshot writes the current one or none.
        let retained = run.retained.get_or_insert_with(|| {
            let mut all = Vec::with_capacity(self.retained.len());
            self.retained.for_each(|m| all.push(m.clone()));
            all
        });
        while !retained.is_empty() {
            if written >= sessions || (pace == Pace::Room && !j.has_room()) {
                d.running = Some(run);
                return false;
            }
            written += 1;
            for m in retained.drain(retained.len().saturating_sub(RETAINED_PER_STEP)..) {
                self.retained.matching(&m.topic, |now_m| {
                    if now_m.topic == m.topic {
                        let stored = StoredMessage::from_message(now_m, now, wall);
                        j.append(&Record::Snap(Box::new(Record::Retain(stored))));
                    }
                });
            }
        }
        if recorded_ending {
            // A session ending in steps is in the log's older segments, not in
            // the snapshot: its entries still to hand over would be lost with
            // them. Its end notifies `walk_ready`.
            run.waiting = true;
            d.running = Some(run);
            return false;
        }
        d.resume.snapshot(&self.sessions, &mut |r| {
            j.append(&Record::Snap(Box::new(r)));
        });
        // A queue that gave up a chunk it could not read back during the
        // run (not in a walk: before the walk reached it) has those entries
        // missing from the snapshot: the log must keep them.
        let unreadable = j.spill.unreadable.load(std::sync::atomic::Ordering::Relaxed);
        if unreadable > 0 {
            d.abandon(run, unreadable as usize, now);
            return true;
        }
        let end = j.append(&Record::SnapshotEnd { id: run.id });
        d.pending_gc = Some((end, run.begin));
        true
    }

    /// Deletes segments a durable snapshot made obsolete, and starts a
    /// snapshot when the log has grown well past the live state.
    /// Snapshots taken since the store was opened (the start-up one too).
    pub fn snapshot_count(&self) -> u64 {
        self.durable.as_ref().map_or(0, |d| d.snapshot_id)
    }

    pub fn maintain_store(&mut self, now: Instant) {
        let Some(d) = &mut self.durable else { return };
        if !d.ended.is_empty() {
            let durable = *d.journal.durable().borrow();
            d.ended.retain(|_, lsn| *lsn > durable);
        }
        if let Some(asked) = d.deleting {
            if d.journal.stats().deletions_done.load(std::sync::atomic::Ordering::Acquire) == asked {
                return;
            }
            d.deleting = None;
            d.compacted_size = d.journal.disk_bytes();
        }
        if let Some((end, begin)) = d.pending_gc {
            if *d.journal.durable().borrow() >= end {
                // The log writer deletes them (no file-system call here).
                d.deleting = Some(d.journal.stats().deletions_done.load(std::sync::atomic::Ordering::Acquire));
                d.journal.delete_before(begin);
                d.pending_gc = None;
            }
            return;
        }
        if d.running.is_some() || d.retry_at.is_some_and(|t| now < t) {
            return;
        }
        let unreadable = d.journal.spill.unreadable.load(std::sync::atomic::Ordering::Relaxed);
        if unreadable > 0 {
            // The log has those messages: a restart brings them back.
            if let Some(n) = d.unreadable_log.event(now) {
                tracing::error!(
                    unreadable_messages = unreadable,
                    times = n,
                    "store: queued messages could not be read back from spill files; the log is not \
                     compacted until a restart brings them back"
                );
            }
            return;
        }
        let size = d.journal.disk_bytes();
        if size > d.journal.compact_bytes.max(2 * d.compacted_size) {
            tracing::info!(log_bytes = size, "store: compacting the log");
            // Written by `snapshot_step` as the log has room, between
            // batches of messages (the router's loop).
            self.start_snapshot();
        }
    }
}

#[cfg(test)]
#[path = "snapshot_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "snapshot_spill_tests.rs"]
mod spill_tests;

#[cfg(test)]
#[path = "shared_spill_tests.rs"]
mod shared_spill_tests;
