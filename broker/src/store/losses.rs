//! What records lost to damage cost: recovery tells the log's losses (LSN
//! ranges, see `repair`) only as gaps in the LSNs of the records it
//! replays, so the records after each gap are checked against the state
//! replayed so far. Counted (as well as the surviving records can tell):
//!
//! - queued messages lost: a queue entry after the gap whose sequence
//!   number skips entries of its session (lost `Enq` records), or whose
//!   message body is missing (a lost `Msg` record; the entry cannot be
//!   delivered and is dropped when the state is restored);
//! - sessions touched: those sessions, and sessions named by records after
//!   the gap that the state does not know (a lost `Session` record: their
//!   later records are ignored).
//!
//! Lost acknowledgement and QoS 2 records (`Pop`, `Ack`, `Rel`, `In2`,
//! `In2Done`) leave no trace in the records after them; ARCHITECTURE.md
//! ("Damage and exactly-once") says what their loss does.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::log::Lsn;
use super::record::Record;
use super::recover::Model;
use crate::message::SessionKey;

/// What one gap in the LSNs cost.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Effect {
    /// The first LSN of the gap.
    pub from: Lsn,
    pub queued_lost: u64,
    pub sessions: BTreeSet<SessionKey>,
}

/// Follows the replay and accounts every gap.
#[derive(Debug, Default)]
pub struct Tracker {
    last: Lsn,
    pub effects: Vec<Effect>,
    /// Sessions whose queue was checked for skipped entries since the gap.
    checked: HashSet<SessionKey>,
    /// The LSN of the record that last recorded each inbound QoS 2 packet
    /// identifier.
    in2: HashMap<(SessionKey, u16), Lsn>,
}

impl Tracker {
    /// Before the record with LSN `lsn` is applied to `model` (the state
    /// the record changes, [`super::recover::Replay::target`]).
    pub fn before(&mut self, lsn: Lsn, target: Option<(&Model, &Record)>) {
        if self.last != 0 && lsn > self.last + 1 {
            self.effects.push(Effect { from: self.last + 1, ..Effect::default() });
            self.checked.clear();
        }
        self.last = lsn;
        if let Some((_, Record::In2 { key, pkid })) = target {
            self.in2.insert((*key, *pkid), lsn);
        }
        let (Some(effect), Some((model, r))) = (self.effects.last_mut(), target) else { return };
        let key = match r {
            Record::Sub { key, .. }
            | Record::Unsub { key, .. }
            | Record::Enq { key, .. }
            | Record::Pop { key, .. }
            | Record::Ack { key, .. }
            | Record::Rel { key, .. }
            | Record::In2 { key, .. }
            | Record::In2Done { key, .. } => *key,
            _ => return,
        };
        let Some(s) = model.sessions.get(&key) else {
            effect.sessions.insert(key);
            return;
        };
        if let Record::Enq { seq, mid, .. } = r {
            let mut lost = u64::from(!model.msgs.contains(*mid));
            if self.checked.insert(key) {
                if let Some(last) = s.queue.last_seq() {
                    lost += seq.saturating_sub(last.saturating_add(1));
                }
            }
            if lost > 0 {
                effect.queued_lost += lost;
                effect.sessions.insert(key);
            }
        }
    }

    /// Forgets the inbound QoS 2 packet identifiers of `model` recorded
    /// before `lost` (the last LSN lost): the record of their release
    /// (PUBREL, `In2Done`) may have been lost, and a packet identifier
    /// kept by mistake would make the broker drop the client's next QoS 2
    /// message with that identifier as a redelivery. Forgotten, a
    /// retransmitted PUBLISH is routed again: a possible duplicate, never a
    /// loss. Returns how many were forgotten.
    pub fn forget_uncertain_in2(&self, model: &mut Model, lost: Lsn) -> usize {
        let mut forgotten = 0;
        for (key, s) in &mut model.sessions {
            let before = s.in2.len();
            s.in2.retain(|pkid| self.in2.get(&(*key, *pkid)).is_some_and(|lsn| *lsn > lost));
            forgotten += before - s.in2.len();
        }
        forgotten
    }

    /// The effect of the gap that begins at `from`, if records followed it.
    pub fn of(&self, from: Lsn) -> Option<&Effect> {
        self.effects.iter().find(|e| e.from == from)
    }
}

#[cfg(test)]
#[path = "losses_tests.rs"]
mod tests;
