//! Replay: folds the log's records into the state they describe.
//!
//! Records of a snapshot (`Snap`, between `SnapshotBegin` and
//! `SnapshotEnd`) build a fresh state that replaces the old one only when
//! the snapshot is complete; other records in that window apply to both
//! (to the fresh one only for sessions the snapshot already wrote).
//!
//! A backlog of millions of queued messages passes through here at start,
//! so it does not stay in memory: queue entries are spooled to scratch
//! files as they are folded ([`Entries`], `spool.rs`) and message bodies
//! written to another ([`Bodies`], `bodies.rs`); what memory holds grows
//! with the number of sessions and of runs of entries, not of entries.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

pub use super::bodies::Bodies;
use super::record::{Record, StoredMessage};
pub use super::spool::Entries;
use crate::message::SessionKey;
use crate::protocol::{QoS, SubOptions};

/// A queue entry as stored (24 bytes: millions of them can pass through
/// recovery, and Subscription Identifiers and shared groups are rare).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub mid: u64,
    pub qos: QoS,
    pub retain: bool,
    /// Subscription Identifiers and the shared subscription, if any.
    pub extra: Option<Box<(Vec<u32>, Option<String>)>>,
}

impl Entry {
    pub fn new(mid: u64, qos: QoS, retain: bool, sub_ids: Vec<u32>, shared: Option<String>) -> Entry {
        let extra = (!sub_ids.is_empty() || shared.is_some()).then(|| Box::new((sub_ids, shared)));
        Entry { mid, qos, retain, extra }
    }

    /// Subscription Identifiers and shared subscription.
    pub fn into_extra(self) -> (Vec<u32>, Option<String>) {
        self.extra.map_or((Vec::new(), None), |b| *b)
    }
}

/// An in-flight message as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flight {
    Published { seq: u64, entry: Entry },
    Released,
}

/// A persistent session as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredSession {
    pub client_id: String,
    pub expiry_secs: Option<u64>,
    pub offline_since_ms: u64,
    /// The user who created the session (`None`: anonymous, or a
    /// record written before sessions had owners).
    pub user: Option<String>,
    pub subs: BTreeMap<String, (SubOptions, Option<u32>)>,
    pub queue: Entries,
    /// In send order.
    pub inflight: Vec<(u16, Flight)>,
    pub in2: HashSet<u16>,
}

/// A routing that a cut interrupted ([`Record::Routing`] without its
/// publisher's `In2`): what the publisher's retransmission must not give
/// again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interrupted {
    pub mid: u64,
    pub crc: u32,
    /// The sessions, with the shared group of the entry, that have it.
    pub got: Vec<(SessionKey, Option<String>)>,
}

/// The whole durable state.
#[derive(Debug, Default)]
pub struct Model {
    pub sessions: HashMap<SessionKey, StoredSession>,
    pub msgs: Bodies,
    pub retained: HashMap<String, StoredMessage>,
    pub max_key: SessionKey,
    pub max_mid: u64,
    /// Routings begun and not ended by their publisher's `In2`, by the
    /// publisher's session and packet identifier (after a clean stop: none).
    pub interrupted: HashMap<(SessionKey, u16), Interrupted>,
    /// Their message ids, to find them from queue entries.
    routing_mids: HashMap<u64, (SessionKey, u16)>,
    /// Where queues are spooled while replaying (memory without it).
    scratch: Option<Arc<Path>>,
}

impl Model {
    fn apply(&mut self, r: &Record) {
        match r {
            Record::Session { key, client_id, expiry_secs, offline_since_ms, user } => {
                self.max_key = self.max_key.max(*key);
                let scratch = &self.scratch;
                let s = self.sessions.entry(*key).or_insert_with(|| StoredSession {
                    queue: scratch.clone().map_or_else(Entries::default, Entries::on_disk),
                    ..StoredSession::default()
                });
                s.client_id.clone_from(client_id);
                s.expiry_secs = *expiry_secs;
                s.offline_since_ms = *offline_since_ms;
                s.user.clone_from(user);
            }
            Record::SessionEnd { key } => {
                self.sessions.remove(key);
                if !self.interrupted.is_empty() {
                    self.interrupted.retain(|o, _| o.0 != *key);
                    self.routing_mids.retain(|_, o| o.0 != *key);
                }
            }
            Record::Sub { key, filter, options, id } => {
                if let Some(s) = self.sessions.get_mut(key) {
                    s.subs.insert(filter.clone(), (*options, *id));
                }
            }
            Record::Unsub { key, filter } => {
                if let Some(s) = self.sessions.get_mut(key) {
                    s.subs.remove(filter);
                }
            }
            Record::Retain(m) => {
                if m.payload.is_empty() {
                    self.retained.remove(&m.topic);
                } else {
                    self.retained.insert(m.topic.clone(), m.clone());
                }
            }
            Record::Msg { mid, msg } => {
                self.max_mid = self.max_mid.max(*mid);
                self.msgs.insert(*mid, msg);
            }
            Record::Enq { key, seq, mid, qos, retain, sub_ids, shared } => {
                if let Some(i) = self.routing_mids.get(mid).and_then(|o| self.interrupted.get_mut(o)) {
                    if i.mid == *mid {
                        i.got.push((*key, shared.clone()));
                    }
                }
                if let Some(s) = self.sessions.get_mut(key) {
                    let entry = Entry::new(*mid, *qos, *retain, sub_ids.clone(), shared.clone());
                    s.queue.insert(*seq, entry);
                }
            }
            Record::Pop { key, seq, pkid } => {
                if let Some(s) = self.sessions.get_mut(key) {
                    if *pkid == 0 {
                        s.queue.discard(*seq);
                    } else if let Some(entry) = s.queue.remove(*seq) {
                        s.inflight.retain(|f| f.0 != *pkid);
                        s.inflight.push((*pkid, Flight::Published { seq: *seq, entry }));
                    }
                }
            }
            Record::Ack { key, pkid } => {
                if let Some(s) = self.sessions.get_mut(key) {
                    s.inflight.retain(|f| f.0 != *pkid);
                }
            }
            Record::Rel { key, pkid } => {
                if let Some(s) = self.sessions.get_mut(key) {
                    match s.inflight.iter_mut().find(|f| f.0 == *pkid) {
                        Some(f) => f.1 = Flight::Released,
                        None => s.inflight.push((*pkid, Flight::Released)),
                    }
                }
            }
            Record::In2 { key, pkid } => {
                if let Some(i) = self.interrupted.remove(&(*key, *pkid)) {
                    self.routing_mids.remove(&i.mid);
                }
                if let Some(s) = self.sessions.get_mut(key) {
                    s.in2.insert(*pkid);
                }
            }
            Record::In2Done { key, pkid } => {
                if let Some(s) = self.sessions.get_mut(key) {
                    s.in2.remove(pkid);
                }
            }
            Record::Routing { key, pkid, mid, crc, got } => {
                if let Some(old) =
                    self.interrupted.insert((*key, *pkid), Interrupted { mid: *mid, crc: *crc, got: got.clone() })
                {
                    self.routing_mids.remove(&old.mid);
                }
                self.routing_mids.insert(*mid, (*key, *pkid));
            }
            Record::SnapshotBegin { .. } | Record::SnapshotEnd { .. } | Record::Snap(_) => {}
        }
    }

    /// Drops message bodies no queue refers to (marking the live ones in
    /// the index: no set of them all, which would be as large as the queues).
    pub fn prune(&mut self) {
        let sessions = &self.sessions;
        self.interrupted.retain(|o, _| sessions.contains_key(&o.0));
        self.routing_mids.clear();
        self.drop_shared_copies();
        for s in self.sessions.values() {
            for (_, e) in s.queue.iter() {
                self.msgs.mark(e.mid);
            }
            for f in &s.inflight {
                if let Flight::Published { entry, .. } = &f.1 {
                    self.msgs.mark(entry.mid);
                }
            }
        }
        self.msgs.sweep();
    }
}

impl Model {
    /// A shared group's message is given to one member: a member that
    /// leaves hands its queued entries to another, recorded as the other's
    /// `Enq` then its own `Pop` (in that order, so a cut between them
    /// cannot lose the message). A cut between them leaves the entry with
    /// both: the copy in flight (it may have been delivered), or else the
    /// one of the lowest session key, is kept, and the others go
    /// [MQTT-4.8.2]. Only messages of shared subscriptions are looked at.
    fn drop_shared_copies(&mut self) {
        let shared = |e: &Entry| e.extra.as_ref().and_then(|x| x.1.clone());
        let mut keys: Vec<SessionKey> = self.sessions.keys().copied().collect();
        keys.sort_unstable();
        let mut seen: HashSet<(u64, String)> = HashSet::new();
        for s in keys.iter().filter_map(|k| self.sessions.get(k)) {
            for f in &s.inflight {
                if let Flight::Published { entry, .. } = &f.1 {
                    if let Some(g) = shared(entry) {
                        seen.insert((entry.mid, g));
                    }
                }
            }
        }
        let mut copies = Vec::new();
        for k in &keys {
            let Some(s) = self.sessions.get(k) else { continue };
            for (seq, e) in s.queue.iter() {
                if let Some(g) = shared(&e) {
                    if !seen.insert((e.mid, g)) {
                        copies.push((*k, seq));
                    }
                }
            }
        }
        for (k, seq) in copies {
            if let Some(s) = self.sessions.get_mut(&k) {
                s.queue.discard(seq);
            }
        }
    }
}

/// Replays records in log order.
#[derive(Debug, Default)]
pub struct Replay {
    pub model: Model,
    /// A snapshot in progress: its id and the state it builds.
    building: Option<(u64, Model)>,
    pub snapshots: u64,
    /// Where message bodies go while replaying (memory without it).
    scratch: Option<std::path::PathBuf>,
    files: u64,
}

impl Replay {
    /// A replay that keeps message bodies in scratch files in `dir`.
    pub fn with_scratch(dir: std::path::PathBuf) -> Replay {
        let mut r = Replay { scratch: Some(dir), ..Replay::default() };
        r.model.msgs = r.bodies();
        r.model.scratch = r.scratch.as_deref().map(Arc::from);
        r
    }

    fn bodies(&mut self) -> Bodies {
        self.files += 1;
        match &self.scratch {
            Some(dir) => Bodies::on_disk(dir, self.files),
            None => Bodies::default(),
        }
    }

    pub fn apply(&mut self, r: Record) {
        match r {
            Record::SnapshotBegin { id } => {
                let msgs = self.bodies();
                let fresh = Model {
                    max_key: self.model.max_key,
                    max_mid: self.model.max_mid,
                    msgs,
                    scratch: self.model.scratch.clone(),
                    ..Model::default()
                };
                self.building = Some((id, fresh));
            }
            Record::SnapshotEnd { id } => {
                if let Some((b, m)) = self.building.take() {
                    if b == id {
                        self.model = m;
                        self.snapshots += 1;
                    }
                }
            }
            Record::Snap(inner) => {
                if let Some((_, m)) = &mut self.building {
                    m.apply(&inner);
                }
            }
            other => {
                self.model.apply(&other);
                if let Some((_, m)) = &mut self.building {
                    m.apply(&other);
                }
            }
        }
    }

    /// The state `r` will change and the change: the snapshot being built
    /// for a `Snap` record (`None` outside a snapshot), the state otherwise.
    pub fn target<'a>(&'a self, r: &'a Record) -> Option<(&'a Model, &'a Record)> {
        match r {
            Record::Snap(inner) => self.building.as_ref().map(|(_, m)| (m, &**inner)),
            other => Some((&self.model, other)),
        }
    }

    /// The state, with any incomplete snapshot discarded.
    pub fn finish(mut self) -> Model {
        self.model.prune();
        self.model
    }
}

#[cfg(test)]
#[path = "recover_tests.rs"]
mod tests;
