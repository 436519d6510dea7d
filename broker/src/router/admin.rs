//! The admin API's requests to the router (`GET /api/clients`,
//! `/api/sessions`, `/api/subscriptions`, `/api/retained` and the
//! actions), answered one page at a time.
//!
//! A page is bounded twice: it holds at most `limit` entries (the HTTP
//! side caps it at [`MAX_LIMIT`]), and the router examines at most
//! [`SCAN`] times that many sessions for it (a page of online clients
//! among 100,000 offline sessions ends early, with `next` set, instead of
//! walking them all). Sessions are paged in client identifier order
//! (`after` is the last identifier of the previous page), so the router
//! never copies its maps and a request costs it O(log n + page). Retained
//! messages are paged in topic order by one walk of the tree that keeps
//! only the page (its time grows with the retained messages, its memory
//! does not). Each session's lock is taken once per entry, briefly, for
//! its queue depth and in-flight count; nothing blocks.

use std::collections::BinaryHeap;
use std::ops::Bound;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::oneshot;

use super::{ConnInfo, Router};
use crate::message::Message;
use crate::protocol::{DisconnectReason, QoS, SubOptions};
use crate::store::{Record, StoredMessage};

/// The largest page a request may ask for.
pub const MAX_LIMIT: usize = 1000;
/// Sessions examined per entry of a page (at most) before it ends early.
pub const SCAN: usize = 8;

/// Where a page starts and how long it may be.
#[derive(Debug, Clone, Default)]
pub struct PageReq {
    /// The last key of the previous page (exclusive); `None`: the first.
    pub after: Option<String>,
    pub limit: usize,
    /// Only keys (client identifiers, topics) that start with it: the
    /// dashboard's search. Sessions are then walked from the prefix on
    /// and the walk ends at the first identifier past it.
    pub prefix: Option<String>,
}

/// One page and where the next one starts (`None`: this was the last).
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// A connected client.
#[derive(Debug)]
pub struct ClientRow {
    pub client_id: Arc<str>,
    /// `None` for a moment after CONNECT, until the driver has said.
    pub info: Option<ConnInfo>,
    pub inflight: usize,
    pub queued: usize,
}

/// A session, online or offline.
#[derive(Debug)]
pub struct SessionRow {
    pub client_id: Arc<str>,
    pub online: bool,
    pub queued: usize,
    pub queued_bytes: usize,
    pub inflight: usize,
    /// How long the oldest queued message has waited (a spilled queue's:
    /// to the chunk, `MessageQueue::oldest_received`); `None`: none waits.
    pub oldest_queued: Option<Duration>,
    /// The session's expiry after disconnection (`None`: never).
    pub expiry: Option<Duration>,
    /// Offline: when it expires (wall clock), if it does.
    pub expires_at: Option<SystemTime>,
    pub subscriptions: usize,
}

/// A session's subscriptions.
#[derive(Debug)]
pub struct SubscriptionRow {
    pub client_id: Arc<str>,
    pub filters: Vec<(String, SubOptions, Option<u32>)>,
}

/// A retained message.
#[derive(Debug)]
pub struct RetainedRow {
    pub topic: String,
    pub qos: QoS,
    pub bytes: usize,
    pub age: Duration,
}

/// What the admin API asks the router.
#[derive(Debug)]
pub enum Admin {
    Clients(PageReq, oneshot::Sender<Page<ClientRow>>),
    Sessions(PageReq, oneshot::Sender<Page<SessionRow>>),
    Subscriptions(PageReq, oneshot::Sender<Page<SubscriptionRow>>),
    Retained(PageReq, oneshot::Sender<Page<RetainedRow>>),
    /// Closes the client's connection (MQTT 5: DISCONNECT 0x98
    /// Administrative action); its session stays. Whether it was connected.
    Disconnect(String, oneshot::Sender<bool>),
    /// Ends the session (closing its connection first, 0x98). Whether it existed.
    DeleteSession(String, oneshot::Sender<bool>),
    /// Deletes the topic's retained message. Whether there was one.
    DeleteRetained(String, oneshot::Sender<bool>),
}

impl Router {
    pub(super) fn admin(&mut self, req: Admin, now: Instant) {
        // A requester that went away is no error.
        match req {
            Admin::Clients(p, tx) => {
                let _ = tx.send(self.page(&p, |id, e| {
                    let conn = e.conn.as_ref()?;
                    let st = e.shared.lock();
                    Some(ClientRow {
                        client_id: id,
                        info: conn.info().cloned(),
                        inflight: st.inflight_len(),
                        queued: st.queued(),
                    })
                }));
            }
            Admin::Sessions(p, tx) => {
                let wall = SystemTime::now();
                let _ = tx.send(self.page(&p, |id, e| {
                    let st = e.shared.lock();
                    let expires_at = match (e.disconnected_at, e.expiry) {
                        (Some(at), Some(x)) => (at + x).checked_duration_since(now).map(|left| wall + left),
                        _ => None,
                    };
                    Some(SessionRow {
                        client_id: id,
                        online: e.conn.is_some(),
                        queued: st.queued(),
                        queued_bytes: st.queued_bytes(),
                        inflight: st.inflight_len(),
                        oldest_queued: st.oldest_queued().map(|t| now.saturating_duration_since(t)),
                        expiry: e.expiry,
                        expires_at,
                        subscriptions: st.subscriptions.len(),
                    })
                }));
            }
            Admin::Subscriptions(p, tx) => {
                let _ = tx.send(self.page(&p, |id, e| {
                    let st = e.shared.lock();
                    let mut filters: Vec<_> = st.subscriptions.iter().map(|(f, (o, i))| (f.clone(), *o, *i)).collect();
                    filters.sort_by(|a, b| a.0.cmp(&b.0));
                    Some(SubscriptionRow { client_id: id, filters })
                }));
            }
            Admin::Retained(p, tx) => {
                let _ = tx.send(self.retained_page(&p, now));
            }
            Admin::Disconnect(id, tx) => {
                let conn =
                    self.by_client.get(id.as_str()).and_then(|k| self.sessions.get(k)).and_then(|e| e.conn.as_ref());
                if let Some(c) = conn {
                    tracing::info!(client_id = id, "admin API: disconnecting the client");
                    c.close(DisconnectReason::AdministrativeAction);
                }
                let _ = tx.send(conn.is_some());
            }
            Admin::DeleteSession(id, tx) => {
                let key = self.by_client.get(id.as_str()).copied();
                if let Some(key) = key {
                    tracing::info!(client_id = id, "admin API: deleting the session");
                    if let Some(c) = self.sessions.get(&key).and_then(|e| e.conn.as_ref()) {
                        c.close(DisconnectReason::AdministrativeAction);
                    }
                    self.end_session(key, now);
                }
                let _ = tx.send(key.is_some());
            }
            Admin::DeleteRetained(topic, tx) => {
                let mut had = false;
                self.retained.matching(&topic, |m| had |= m.topic == topic);
                if had && !super::is_internal_topic(&topic) {
                    let msg = Arc::new(Message {
                        topic,
                        payload: bytes::Bytes::new(),
                        qos: QoS::AtMostOnce,
                        retain: true,
                        props: None,
                        origin: 0,
                        received: now,
                    });
                    // An empty retained message deletes it; recorded as such,
                    // delivered to no one.
                    self.retain(&msg);
                    if let Some(d) = &self.durable {
                        let stored = StoredMessage::from_message(&msg, d.base.0, d.base.1);
                        self.record(&Record::Retain(stored));
                    }
                }
                let _ = tx.send(had);
            }
        }
    }

    /// A page of sessions in client identifier order after `p.after`,
    /// `row` giving each its entry (or none: skipped, still examined).
    fn page<T>(&self, p: &PageReq, mut row: impl FnMut(Arc<str>, &super::SessionEntry) -> Option<T>) -> Page<T> {
        let limit = p.limit.clamp(1, MAX_LIMIT);
        let prefix = p.prefix.as_deref().unwrap_or("");
        let start = match &p.after {
            Some(a) if a.as_str() >= prefix => Bound::Excluded(a.as_str()),
            _ => Bound::Included(prefix),
        };
        let mut items = Vec::with_capacity(limit.min(64));
        let mut last = None;
        let mut more = false;
        let ids = self.by_client.range::<str, _>((start, Bound::Unbounded));
        for (examined, (id, key)) in ids.take_while(|(id, _)| id.starts_with(prefix)).enumerate() {
            if items.len() == limit || examined == limit * SCAN {
                more = true;
                break;
            }
            last = Some(id);
            if let Some(e) = self.sessions.get(key) {
                items.extend(row(id.clone(), e));
            }
        }
        Page { items, next: if more { last.map(|id| id.to_string()) } else { None } }
    }

    /// A page of retained messages in topic order after `p.after`: one
    /// walk, keeping the `limit` smallest topics past it.
    fn retained_page(&self, p: &PageReq, now: Instant) -> Page<RetainedRow> {
        let limit = p.limit.clamp(1, MAX_LIMIT);
        let after = p.after.as_deref();
        let prefix = p.prefix.as_deref().unwrap_or("");
        // A max-heap of at most `limit`: its top is the largest topic kept.
        let mut heap: BinaryHeap<ByTopic> = BinaryHeap::with_capacity(limit + 1);
        let mut beyond = false;
        self.retained.for_each(|m| {
            let skip = after.is_some_and(|a| m.topic.as_str() <= a) || !m.topic.starts_with(prefix);
            if skip || super::is_internal_topic(&m.topic) {
                return;
            }
            if heap.len() == limit {
                beyond = true;
                if heap.peek().is_some_and(|top| m.topic >= top.0.topic) {
                    return;
                }
                heap.pop();
            }
            heap.push(ByTopic(m.clone()));
        });
        let kept = heap.into_sorted_vec();
        let next = if beyond { kept.last().map(|m| m.0.topic.clone()) } else { None };
        let items = kept
            .into_iter()
            .map(|ByTopic(m)| RetainedRow {
                topic: m.topic.clone(),
                qos: m.qos,
                bytes: m.payload.len(),
                age: now.saturating_duration_since(m.received),
            })
            .collect();
        Page { items, next }
    }
}

/// A retained message ordered by its topic.
struct ByTopic(Arc<Message>);

impl PartialEq for ByTopic {
    fn eq(&self, other: &Self) -> bool {
        self.0.topic == other.0.topic
    }
}

impl Eq for ByTopic {}

impl PartialOrd for ByTopic {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ByTopic {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.topic.cmp(&other.0.topic)
    }
}

#[cfg(test)]
#[path = "admin_tests.rs"]
mod tests;
