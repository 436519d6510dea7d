//! The router's side of persistence: recording session, subscription,
//! retained and queue changes, restoring state at start, and snapshots
//! that let the log be compacted.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::{Router, SessionEntry};
use crate::message::{Delivery, Message, SessionKey};
use crate::session::state::SharedSession;
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
    /// Log size right after the last compaction.
    compacted_size: u64,
}

impl Durable {
    /// The record of a persistent session: expiry, and since when it is
    /// offline (0: connected).
    fn session_record(&self, key: SessionKey, e: &SessionEntry) -> Record {
        let offline_since_ms = match (&e.conn, e.disconnected_at) {
            (None, Some(at)) => unix_ms(self.wall(at)),
            _ => 0,
        };
        let expiry_secs = e.expiry.map(|x| x.as_secs());
        Record::Session { key, client_id: e.client_id.to_string(), expiry_secs, offline_since_ms }
    }

    /// Records a message body under a new id; returns the id.
    fn store_body(&mut self, msg: &Message) -> u64 {
        let mid = self.next_mid;
        self.next_mid += 1;
        let stored = StoredMessage::from_message(msg, self.base.0, self.base.1);
        self.journal.append(&Record::Msg { mid, msg: stored });
        mid
    }

    fn wall(&self, now: Instant) -> SystemTime {
        match now.checked_duration_since(self.base.0) {
            Some(d) => self.base.1 + d,
            None => self.base.1 - self.base.0.duration_since(now),
        }
    }
}

impl Router {
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
            compacted_size: 0,
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
        for (key, stored) in model.sessions {
            let shared = Arc::new(SharedSession::new(self.limits.clone()));
            let client_id: Arc<str> = stored.client_id.as_str().into();
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
            self.sessions
                .insert(key, SessionEntry { client_id, shared, conn: None, expiry, disconnected_at: Some(since) });
        }
        for (_, m) in model.retained {
            self.retain(&Arc::new(m.into_message(now, wall_now)));
        }
        // Before listening: waiting for the log writer keeps a backlog's
        // snapshot from waiting in memory all at once.
        self.snapshot_with(now, true);
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
                st.clear_journal();
            }
            return;
        }
        let mut st = e.shared.lock();
        d.journal.append(&d.session_record(key, e));
        if !st.is_journaled() {
            // What was queued or in flight before the session became
            // persistent gets its body stored, so it survives a restart too.
            st.store_bodies(&mut |dl| d.store_body(&dl.msg));
            st.set_journal(key, d.journal.clone());
            st.dump(&mut HashSet::new(), now, d.wall(now), &mut |r| {
                d.journal.append(&r);
            });
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

    /// Writes the live state as a snapshot; older log segments are deleted
    /// once it is durable (see [`Router::maintain_store`]).
    pub fn snapshot(&mut self, now: Instant) {
        self.snapshot_with(now, false);
    }

    /// [`Router::snapshot`]; with `wait`, each record waits for room in the
    /// log's buffer (blocking the thread).
    fn snapshot_with(&mut self, now: Instant, wait: bool) {
        let Some(d) = &mut self.durable else { return };
        d.snapshot_id += 1;
        let id = d.snapshot_id;
        let j = d.journal.clone();
        let wall = d.wall(now);
        let begin = j.append(&Record::SnapshotBegin { id });
        let mut mids = HashSet::new();
        for (key, e) in &self.sessions {
            // Appended under the session's lock, so a change the session
            // records after this point follows its snapshot in the log.
            let st = e.shared.lock();
            if !st.is_journaled() {
                continue;
            }
            j.append(&Record::Snap(Box::new(d.session_record(*key, e))));
            st.dump(&mut mids, now, wall, &mut |r| {
                if wait {
                    j.wait_room();
                }
                j.append(&Record::Snap(Box::new(r)));
            });
        }
        self.retained.for_each(|m| {
            let stored = StoredMessage::from_message(m, now, wall);
            j.append(&Record::Snap(Box::new(Record::Retain(stored))));
        });
        let end = j.append(&Record::SnapshotEnd { id });
        d.pending_gc = Some((end, begin));
    }

    /// Deletes segments a durable snapshot made obsolete, and starts a
    /// snapshot when the log has grown well past the live state.
    /// Snapshots taken since the store was opened (the start-up one too).
    pub fn snapshot_count(&self) -> u64 {
        self.durable.as_ref().map_or(0, |d| d.snapshot_id)
    }

    pub fn maintain_store(&mut self, now: Instant) {
        let Some(d) = &mut self.durable else { return };
        if let Some((end, begin)) = d.pending_gc {
            if *d.journal.durable().borrow() >= end {
                if let Err(e) = d.journal.delete_before(begin) {
                    tracing::warn!("store: cannot delete old log segments: {e}");
                }
                d.pending_gc = None;
                d.compacted_size = d.journal.disk_bytes();
            }
            return;
        }
        let size = d.journal.disk_bytes();
        if size > d.journal.compact_bytes.max(2 * d.compacted_size) {
            tracing::info!(log_bytes = size, "store: compacting the log");
            // Waits for the log writer as it goes: a large backlog's
            // snapshot must not wait in memory all at once (the router
            // stalls for as long as writing it takes instead).
            self.snapshot_with(now, true);
        }
    }
}
