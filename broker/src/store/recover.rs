//! Replay: folds the log's records into the state they describe.
//!
//! Records of a snapshot (`Snap`, between `SnapshotBegin` and
//! `SnapshotEnd`) build a fresh state that replaces the old one only when
//! the snapshot is complete; other records in that window apply to both
//! (to the fresh one only for sessions the snapshot already wrote).
//!
//! The state is held compactly and in few large allocations (queues as
//! sorted vectors, message bodies encoded in one arena), because a backlog
//! of millions of queued messages passes through here at start and the
//! memory must go back to the system once the queues are on disk again.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use super::record::{Record, StoredMessage};
use crate::message::SessionKey;
use crate::protocol::{QoS, SubOptions};

/// A queue entry as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub mid: u64,
    pub qos: QoS,
    pub retain: bool,
    pub sub_ids: Vec<u32>,
    pub shared: Option<String>,
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
    pub subs: BTreeMap<String, (SubOptions, Option<u32>)>,
    pub queue: Entries,
    /// In send order.
    pub inflight: Vec<(u16, Flight)>,
    pub in2: HashSet<u16>,
}

/// The whole durable state.
#[derive(Debug, Clone, Default)]
pub struct Model {
    pub sessions: HashMap<SessionKey, StoredSession>,
    pub msgs: Bodies,
    pub retained: HashMap<String, StoredMessage>,
    pub max_key: SessionKey,
    pub max_mid: u64,
}

impl Model {
    fn apply(&mut self, r: &Record) {
        match r {
            Record::Session { key, client_id, expiry_secs, offline_since_ms } => {
                self.max_key = self.max_key.max(*key);
                let s = self.sessions.entry(*key).or_default();
                s.client_id.clone_from(client_id);
                s.expiry_secs = *expiry_secs;
                s.offline_since_ms = *offline_since_ms;
            }
            Record::SessionEnd { key } => {
                self.sessions.remove(key);
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
                if let Some(s) = self.sessions.get_mut(key) {
                    let entry = Entry {
                        mid: *mid,
                        qos: *qos,
                        retain: *retain,
                        sub_ids: sub_ids.clone(),
                        shared: shared.clone(),
                    };
                    s.queue.insert(*seq, entry);
                }
            }
            Record::Pop { key, seq, pkid } => {
                if let Some(s) = self.sessions.get_mut(key) {
                    if let Some(entry) = s.queue.remove(*seq) {
                        if *pkid != 0 {
                            s.inflight.retain(|f| f.0 != *pkid);
                            s.inflight.push((*pkid, Flight::Published { seq: *seq, entry }));
                        }
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
                if let Some(s) = self.sessions.get_mut(key) {
                    s.in2.insert(*pkid);
                }
            }
            Record::In2Done { key, pkid } => {
                if let Some(s) = self.sessions.get_mut(key) {
                    s.in2.remove(pkid);
                }
            }
            Record::SnapshotBegin { .. } | Record::SnapshotEnd { .. } | Record::Snap(_) => {}
        }
    }

    /// Drops message bodies no queue refers to.
    pub fn prune(&mut self) {
        let mut live = HashSet::new();
        for s in self.sessions.values() {
            live.extend(s.queue.iter().map(|(_, e)| e.mid));
            live.extend(s.inflight.iter().filter_map(|f| match &f.1 {
                Flight::Published { entry, .. } => Some(entry.mid),
                Flight::Released => None,
            }));
        }
        self.msgs.retain(&live);
    }
}

/// A session's queue entries by sequence number: a vector kept sorted,
/// appended to at the back and popped mostly at the front.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entries(VecDeque<(u64, Entry)>);

impl Entries {
    pub fn insert(&mut self, seq: u64, e: Entry) {
        match self.0.back() {
            Some((last, _)) if *last >= seq => match self.0.binary_search_by_key(&seq, |x| x.0) {
                Ok(i) => self.0[i].1 = e,
                Err(i) => self.0.insert(i, (seq, e)),
            },
            _ => self.0.push_back((seq, e)),
        }
    }

    pub fn remove(&mut self, seq: u64) -> Option<Entry> {
        if self.0.front().is_some_and(|x| x.0 == seq) {
            return self.0.pop_front().map(|x| x.1);
        }
        let i = self.0.binary_search_by_key(&seq, |x| x.0).ok()?;
        self.0.remove(i).map(|x| x.1)
    }

    pub fn iter(&self) -> impl Iterator<Item = &(u64, Entry)> {
        self.0.iter()
    }

    pub fn keys(&self) -> impl Iterator<Item = u64> + '_ {
        self.0.iter().map(|x| x.0)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl IntoIterator for Entries {
    type Item = (u64, Entry);
    type IntoIter = std::collections::vec_deque::IntoIter<(u64, Entry)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// Message bodies by `mid`, encoded one after another in one buffer.
#[derive(Debug, Clone, Default)]
pub struct Bodies {
    arena: Vec<u8>,
    index: HashMap<u64, (usize, usize)>,
}

impl Bodies {
    pub fn insert(&mut self, mid: u64, m: &StoredMessage) {
        let at = self.arena.len();
        m.encode_into(&mut self.arena);
        self.index.insert(mid, (at, self.arena.len()));
    }

    pub fn get(&self, mid: u64) -> Option<StoredMessage> {
        let (a, b) = *self.index.get(&mid)?;
        StoredMessage::decode(self.arena.get(a..b)?).ok()
    }

    pub fn keys(&self) -> impl Iterator<Item = u64> + '_ {
        self.index.keys().copied()
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    fn retain(&mut self, live: &HashSet<u64>) {
        self.index.retain(|mid, _| live.contains(mid));
    }
}

/// Replays records in log order.
#[derive(Debug, Default)]
pub struct Replay {
    pub model: Model,
    /// A snapshot in progress: its id and the state it builds.
    building: Option<(u64, Model)>,
    pub snapshots: u64,
}

impl Replay {
    pub fn apply(&mut self, r: Record) {
        match r {
            Record::SnapshotBegin { id } => {
                let fresh = Model { max_key: self.model.max_key, max_mid: self.model.max_mid, ..Model::default() };
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

    /// The state, with any incomplete snapshot discarded.
    pub fn finish(mut self) -> Model {
        self.model.prune();
        self.model
    }
}

#[cfg(test)]
#[path = "recover_tests.rs"]
mod tests;
