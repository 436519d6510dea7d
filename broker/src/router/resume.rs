//! Exactly-once across a cut inside a routing.
//!
//! A QoS 2 message of a persistent publisher is routed as several log
//! records: its body, a [`Record::Routing`] naming the publisher's session
//! and packet identifier, one queue entry per persistent subscriber, then
//! the publisher's `In2` (appended after the routing, `session/state.rs`,
//! so that a durable `In2` always follows its message). PUBREC waits for
//! the `In2` to be durable. A power cut (or a torn write) between the
//! first entry and the `In2` keeps some subscribers' copies and not the
//! publisher's identifier: the publisher, which got no PUBREC, retransmits
//! after the restart, and routing it again would give those subscribers a
//! second copy ([MQTT-4.3.3], exactly once).
//!
//! Replay (`store::recover`) finds such routings: a `Routing` record with
//! no `In2` of its publisher after it, with the sessions (and shared
//! groups) whose entries it wrote. The router keeps them here, by
//! publisher session and packet identifier. The publisher's next QoS 2
//! PUBLISH with that identifier and the same topic and payload (its
//! retransmission: [MQTT-4.3.3-1] a packet identifier is not reused before
//! PUBCOMP) is routed to every other target only, and its `In2` ends the
//! routing. Snapshots write what is still interrupted, so a second cut
//! before the retransmission keeps it.
//!
//! Nothing here runs without a store; after a clean stop it is empty.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Router, SessionEntry};
use crate::message::{Message, SessionKey};
use crate::protocol::SubOptions;
use crate::store::record::{message_crc, Record};
use crate::store::recover::Interrupted;

/// The router's interrupted routings and the routing in progress.
#[derive(Debug, Default)]
pub struct Resume {
    interrupted: HashMap<(SessionKey, u16), Interrupted>,
    /// The QoS 2 message being routed: its publisher's session and packet
    /// identifier, written with its body.
    current: Option<(SessionKey, u16)>,
    /// Targets of the retransmission being routed that already have it.
    skip: Vec<(SessionKey, Option<String>)>,
}

impl Resume {
    pub fn new(interrupted: HashMap<(SessionKey, u16), Interrupted>) -> Resume {
        if !interrupted.is_empty() {
            tracing::warn!(
                routings = interrupted.len(),
                "store: QoS 2 routings were cut short by the last stop; their publishers' retransmissions go only to the subscribers that did not get them"
            );
        }
        Resume { interrupted, ..Resume::default() }
    }

    /// The record that follows the body `mid` of `msg`, if `msg` is the
    /// QoS 2 message of a persistent publisher being routed.
    pub fn routing_record(&self, mid: u64, msg: &Message) -> Option<Record> {
        let (key, pkid) = self.current?;
        let crc = message_crc(&msg.topic, &msg.payload);
        Some(Record::Routing { key, pkid, mid, crc, got: Vec::new() })
    }

    /// Writes every interrupted routing whose publisher session is still
    /// there, as records of the snapshot `out` writes.
    pub fn snapshot(&mut self, sessions: &HashMap<SessionKey, SessionEntry>, out: &mut dyn FnMut(Record)) {
        self.interrupted.retain(|(key, _), _| sessions.contains_key(key));
        let mut all: Vec<_> = self.interrupted.iter().collect();
        all.sort_unstable_by_key(|(k, _)| **k);
        for ((key, pkid), i) in all {
            out(Record::Routing { key: *key, pkid: *pkid, mid: i.mid, crc: i.crc, got: i.got.clone() });
        }
    }

    /// Drops the targets that already have the retransmission being routed.
    fn skip_targets(&self, targets: &mut Vec<(SessionKey, SubOptions, Vec<u32>)>, groups: &mut Vec<Arc<str>>) {
        let skip = &self.skip;
        targets.retain(|t| !skip.iter().any(|(k, shared)| *k == t.0 && shared.is_none()));
        groups.retain(|g| !skip.iter().any(|(_, shared)| shared.as_deref() == Some(&**g)));
    }

    /// Interrupted routings kept (tests).
    #[cfg(test)]
    pub fn interrupted(&self) -> &HashMap<(SessionKey, u16), Interrupted> {
        &self.interrupted
    }
}

impl Router {
    /// Routes a QoS 2 message of session `m.origin`, then records its
    /// publisher's `In2` (`SessionState::inbound_qos2_routed`); a
    /// retransmission of an interrupted routing skips the targets that got
    /// it.
    pub(super) fn publish_exactly_once(&mut self, m: Message) {
        let from = m.origin;
        let pkid = self.sessions.get(&from).and_then(|e| e.shared.lock().inbound_qos2_unrouted());
        if let (Some(d), Some(pkid)) = (self.durable.as_mut(), pkid) {
            let r = &mut d.resume;
            r.current = Some((from, pkid));
            if let Some(i) = r.interrupted.remove(&(from, pkid)) {
                if i.crc == message_crc(&m.topic, &m.payload) {
                    tracing::debug!(
                        session = from,
                        pkid,
                        skipped = i.got.len(),
                        "store: an interrupted QoS 2 routing completed"
                    );
                    r.skip = i.got;
                }
            }
        }
        self.publish(m);
        if let Some(d) = self.durable.as_mut() {
            d.resume.current = None;
            d.resume.skip.clear();
        }
        if let Some(e) = self.sessions.get(&from) {
            e.shared.lock().inbound_qos2_routed();
        }
    }

    /// [`Resume::skip_targets`] while a retransmission is routed.
    pub(super) fn skip_routed(
        &self,
        targets: &mut Vec<(SessionKey, SubOptions, Vec<u32>)>,
        groups: &mut Vec<Arc<str>>,
    ) {
        if let Some(d) = self.durable.as_ref().filter(|d| !d.resume.skip.is_empty()) {
            d.resume.skip_targets(targets, groups);
        }
    }
}

#[cfg(test)]
#[path = "resume_tests.rs"]
mod tests;
