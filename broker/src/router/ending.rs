//! Sessions that end while their queue holds shared-subscription entries
//! on disk. Those entries belong to the other members of their groups
//! (MQTT 5.0 section 4.8.2), but reading them back is file I/O, which the
//! router does not do. So such a session's end is spread over steps: the
//! queue is drained as the spill thread reads its chunks back (each read
//! wakes the session, which the router's loop watches), the shared entries
//! are queued to other members as they come, and the session's end is
//! recorded last, after their queue records (a crash in between brings the
//! session back, never loses an entry).
//!
//! Meanwhile the client identifier has no session, but a CONNECT for it
//! waits ([`Router::reply_connect`]) until the end is recorded, so a
//! CONNACK saying the session is gone follows its durable end (the gate's
//! rule 4), and a compaction's snapshot is not finished before every
//! ending is recorded (the log still holds what the snapshot no longer
//! has); each entry handed over is recorded as gone from this session
//! after the other member's record of it, so a power cut before the end
//! does not bring back what another member has delivered since. A session
//! that is not recorded holds neither up. An old connection of the session
//! still running takes nothing from it meanwhile (`SessionState::ending`). Inline spill I/O (tests, the simulation) finishes an ending in
//! its first step unless it has more entries than a step takes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::{ConnectReply, ConnectRequest, Router, SessionRefused};
use crate::message::SessionKey;
use crate::protocol::DisconnectReason;
use crate::session::state::{Drained, SharedSession};

/// Queued entries a step pops at most (the router's other work goes on
/// between steps).
const ENDING_STEP: usize = 4096;

type Reply = oneshot::Sender<Result<ConnectReply, SessionRefused>>;

/// A session being ended a step at a time.
pub(super) struct Ending {
    key: SessionKey,
    client_id: Arc<str>,
    session: Arc<SharedSession>,
    /// CONNECTs for the client identifier, answered once the end is
    /// recorded.
    parked: Vec<(ConnectRequest, Reply)>,
    /// The last step stopped at its budget, not for the spill thread.
    more: bool,
    /// The session is recorded: its end is a `SessionEnd` that CONNECTs
    /// and a snapshot's end wait for (one that is not has nothing to wait
    /// for: none of it is in the log).
    recorded: bool,
}

impl Router {
    /// Ends `session`'s queue a step at a time (see the module's doc); its
    /// subscriptions and maps entries are gone already. The first step
    /// runs now.
    pub(super) fn begin_ending(&mut self, key: SessionKey, client_id: Arc<str>, session: Arc<SharedSession>) {
        if let Some(d) = &mut self.durable {
            // A snapshot walking this queue lets it go: it is finished only
            // after this end is recorded, which removes what it wrote.
            d.forget_walk(&session);
        }
        let recorded = {
            let mut st = session.lock();
            st.dump_abort();
            // An old connection still running (a takeover past its grace)
            // takes nothing more from it.
            st.ending = true;
            st.is_journaled()
        };
        self.endings.push(Ending { key, client_id, session, parked: Vec::new(), more: false, recorded });
        let i = self.endings.len() - 1;
        if self.step_ending(i, false) {
            self.finish_ending(i, Instant::now());
        }
    }

    /// One step of every ending: the router's loop calls it when a session
    /// it watches is woken ([`Router::endings_to_watch`]), and the tick
    /// (a wake-up taken by an old connection still polling the session).
    pub(super) fn step_endings(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.endings.len() {
            if self.step_ending(i, false) {
                self.finish_ending(i, now);
            } else {
                i += 1;
            }
        }
    }

    /// Finishes every ending now, reading chunks on disk here: before a
    /// snapshot that must not wait (the broker's stop, tests), and for a
    /// direct [`Router::connect`] (tests: the broker's connections park).
    pub(super) fn finish_endings(&mut self, client_id: Option<&str>, now: Instant) {
        let mut i = 0;
        while i < self.endings.len() {
            if client_id.is_some_and(|c| *self.endings[i].client_id != *c) {
                i += 1;
                continue;
            }
            self.step_ending(i, true);
            self.finish_ending(i, now);
        }
    }

    /// True once the queue is drained.
    fn step_ending(&mut self, i: usize, blocking: bool) -> bool {
        let (key, session) = (self.endings[i].key, self.endings[i].session.clone());
        let mut taken = Vec::new();
        let (step, removals) = {
            let mut st = session.lock();
            if blocking {
                let (t, removals) = st.take_shared(true);
                taken = t;
                (Drained::Done, removals)
            } else {
                let step = st.drain_shared(ENDING_STEP, &mut taken);
                (step, st.removal_records(&taken))
            }
        };
        self.endings[i].more = step == Drained::More;
        // Not a member any more: they go to the others, whose queue records
        // come before this session's removal records (as at a disconnect).
        self.redeliver_shared(taken, key);
        for r in &removals {
            self.record(r);
        }
        step == Drained::Done
    }

    /// Records the end of ending `i` and answers the CONNECTs it held.
    fn finish_ending(&mut self, i: usize, now: Instant) {
        let e = self.endings.remove(i);
        if e.session.lock().is_journaled() {
            self.record_end(e.key, &e.client_id);
        }
        if let Some(d) = &self.durable {
            // A snapshot may wait for the endings.
            d.walk_ready.notify_one();
        }
        let mut parked = e.parked.into_iter();
        if let Some((req, reply)) = parked.next() {
            self.reply_connect(req, reply, now);
        }
        // Later ones take the first one's session over, waiting for its
        // connection as any takeover does (admitted already).
        for (req, reply) in parked {
            self.connect_admitted(req, reply, now);
        }
    }

    /// Answers a CONNECT that may go ahead (its session's old connection,
    /// if any, has reported or was given up): a session that ends here
    /// (Clean Start, or one with Session Expiry 0, which lasted only as long
    /// as its connection [MQTT-3.1.2-6]) and must be ended in steps, or one
    /// still ending, holds the reply until its end is recorded.
    pub(super) fn reply_connect(&mut self, req: ConnectRequest, reply: Reply, now: Instant) {
        if let Some(&key) = self.by_client.get(req.client_id.as_str()) {
            if let Some(e) = self.sessions.get(&key).filter(|e| req.clean_start || e.expiry == Some(Duration::ZERO)) {
                if let Some(old) = &e.conn {
                    // [MQTT-3.1.4-2] session takeover: close the existing connection.
                    old.close(DisconnectReason::SessionTakenOver);
                }
                self.end_session(key, now);
            }
        }
        if let Some(e) = self.endings.iter_mut().find(|e| e.recorded && *e.client_id == *req.client_id) {
            e.parked.push((req, reply));
            return;
        }
        let _ = reply.send(Ok(self.connect(req, now)));
    }

    /// The sessions of the endings waiting for the spill thread, and
    /// whether one can take another step at once (`None`: no ending).
    pub fn endings_to_watch(&self) -> Option<(Vec<Arc<SharedSession>>, bool)> {
        if self.endings.is_empty() {
            return None;
        }
        let more = self.endings.iter().any(|e| e.more);
        Some((self.endings.iter().map(|e| e.session.clone()).collect(), more))
    }

    /// Sessions being ended in steps.
    pub fn endings_in_progress(&self) -> usize {
        self.endings.len()
    }

    /// Whether a recorded session is being ended in steps (a snapshot's end
    /// waits for its `SessionEnd`).
    pub(super) fn recorded_ending(&self) -> bool {
        self.endings.iter().any(|e| e.recorded)
    }
}
