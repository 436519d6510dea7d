//! The end of a session whose queue holds shared-subscription entries on
//! disk: the queue drained a step at a time with no file I/O in the caller
//! (the spill thread reads each chunk back and wakes the session), the
//! shared entries kept for the other members of their groups, the others
//! dropped with the session (`router/ending.rs` drives it). A chunk whose
//! read fails is given up, not waited for (logged): a queue that goes on
//! waits for it, but this one ends.

use super::SessionState;
use crate::message::Delivery;
use crate::store::Record;

/// What a step of [`SessionState::drain_shared`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// The queue is empty.
    Done,
    /// The step's budget is used: call again.
    More,
    /// The next chunk is being read back; the session is woken when it is.
    Waiting,
}

impl SessionState {
    /// Whether queued entries of shared subscriptions may be on disk (what
    /// [`SessionState::take_shared`] leaves without `from_disk`).
    pub fn shared_on_disk(&self) -> bool {
        self.queue.shared_on_disk()
    }

    /// The records of `taken` leaving this session's queue, to be appended
    /// after the other members' queue records of them (a power cut before
    /// the session's end must not bring back what another member has
    /// delivered since).
    pub fn removal_records(&self, taken: &[Delivery]) -> Vec<Record> {
        let key = self.key;
        taken.iter().filter(|d| self.stored(d)).map(|d| Record::Pop { key, seq: d.seq, pkid: 0 }).collect()
    }

    /// Pops up to `max` queued entries without I/O, for a session that
    /// ends: those of shared subscriptions go to `out`, the others are
    /// dropped (the session's end covers them in the log).
    pub fn drain_shared(&mut self, max: usize, out: &mut Vec<Delivery>) -> Drained {
        for _ in 0..max {
            match self.pop_queued() {
                Some(d) if d.shared.is_some() => out.push(d),
                Some(_) => {}
                None if self.queue.is_empty() => return Drained::Done,
                None => {
                    // A chunk that cannot be read back is not waited for: the
                    // session is gone, and its end is what a restart replays.
                    let lost = self.queue.give_up_unreadable();
                    if lost == 0 {
                        return Drained::Waiting;
                    }
                    self.count(-(lost as i64), 0, 0);
                    tracing::error!(
                        lost,
                        "a session ends with queued messages its spill file cannot give back: lost, \
                         messages of shared subscriptions among them"
                    );
                }
            }
        }
        if self.queue.is_empty() {
            Drained::Done
        } else {
            Drained::More
        }
    }
}
