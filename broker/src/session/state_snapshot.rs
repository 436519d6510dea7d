//! The records that recreate a session's state, for a snapshot or when a
//! session becomes persistent: written at once but for the chunks of a
//! spilled queue that are on disk, which follow as a walk brings them back
//! (`spill_walk.rs`) with no file I/O under the session's lock; and a
//! session becoming persistent (`set_journal`).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::{enq_record, MessageQueue, SessionState, SpillQueue, Stage, WalkRead, WalkStep};
use crate::message::{Delivery, SessionKey};
use crate::protocol::QoS;
use crate::store::{Journal, Record};

/// Message bodies a snapshot remembers having written (beyond, it
/// forgets them all: a body written twice under one `mid` is harmless).
const REMEMBER: usize = 65_536;

/// The records of one queued (or in-flight) delivery of session `key`: its
/// body, once as far as `mids` remembers, and its entry.
fn entry(
    mids: &mut HashSet<u64>,
    (now, wall): (Instant, SystemTime),
    key: crate::message::SessionKey,
    d: &Delivery,
    out: &mut dyn FnMut(Record),
) {
    if mids.len() >= REMEMBER {
        mids.clear();
    }
    if mids.insert(d.mid) {
        let msg = crate::store::StoredMessage::from_message(&d.msg, now, wall);
        out(Record::Msg { mid: d.mid, msg });
    }
    out(enq_record(key, d));
}

/// What a queue walk does with each delivery: the records of stored ones.
fn queued<'a>(
    (key, journaled): (crate::message::SessionKey, bool),
    mids: &'a mut HashSet<u64>,
    time: (Instant, SystemTime),
    out: &'a mut dyn FnMut(Record),
) -> impl FnMut(&Delivery) + 'a {
    move |d| {
        if journaled && d.mid != 0 && d.qos != QoS::AtMostOnce {
            entry(mids, time, key, d, out);
        }
    }
}

impl SessionState {
    /// Makes this a persistent session whose changes go to `journal`; its
    /// queue moves out of memory.
    pub fn set_journal(&mut self, key: SessionKey, journal: Arc<Journal>) {
        self.key = key;
        if !self.spilled_over {
            // A spilled-over queue is a spill queue already, its chunks on
            // disk in order: kept as it is. Any other moves whole: popping
            // only what is in memory would stop at a chunk on disk.
            let mut spill = SpillQueue::new(journal.spill.clone(), key, &self.limits.pool, self.waker.clone());
            spill.set_online(self.online);
            for d in self.queue.take_where(&mut |_| true) {
                spill.push_back(d);
            }
            self.queue = Box::new(spill);
        }
        self.spilled_over = false;
        self.journal = Some(journal);
    }

    /// The records that recreate this session's state, passed to `out`
    /// one by one; true if a spilled queue's chunks on disk are left for
    /// [`SessionState::dump_next`] (the queue does not consume them until
    /// then).
    pub fn dump(
        &mut self,
        mids: &mut HashSet<u64>,
        now: Instant,
        wall: SystemTime,
        out: &mut dyn FnMut(Record),
    ) -> bool {
        let key = self.key;
        for (filter, (options, id)) in &self.subscriptions {
            out(Record::Sub { key, filter: filter.clone(), options: *options, id: *id });
        }
        for f in self.flights() {
            match &f.stage {
                Stage::Published(d) if self.stored(d) => {
                    entry(mids, (now, wall), key, d, out);
                    out(Record::Pop { key, seq: d.seq, pkid: f.pkid });
                }
                Stage::Published(_) => {}
                Stage::Released => out(Record::Rel { key, pkid: f.pkid }),
            }
        }
        for (pkid, _) in self.pkids.iter().flat_map(|p| p.in2.iter()).filter(|(_, place)| **place == 0) {
            out(Record::In2 { key, pkid: *pkid });
        }
        let mut f = queued((self.key, self.journal.is_some()), mids, (now, wall), out);
        self.queue.walk_begin(&mut f)
    }

    /// The next queued entries of a dump that [`SessionState::dump`] left
    /// pending.
    pub fn dump_next(
        &mut self,
        mids: &mut HashSet<u64>,
        now: Instant,
        wall: SystemTime,
        out: &mut dyn FnMut(Record),
        read: WalkRead<'_>,
    ) -> WalkStep {
        let mut f = queued((self.key, self.journal.is_some()), mids, (now, wall), out);
        self.queue.walk_next(&mut f, read)
    }

    /// Gives a pending dump up: the queue may consume what it held.
    pub fn dump_abort(&mut self) {
        self.queue.walk_abort();
    }
}
