//! Sessions' lifecycle in the router: a CONNECT opening, resuming or
//! taking over a session, a connection gone (will, expiry), a session's
//! end, and the expiry pass. The state is the router's (`mod.rs`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{ConnectReply, ConnectRequest, Router, SessionEntry};
use crate::message::{Message, SessionKey};
use crate::protocol::DisconnectReason;
use crate::session::state::SharedSession;

impl Router {
    /// Opens, resumes or takes over the session of `req.client_id` at once
    /// (an open connection of it is closed and replaced without waiting
    /// for it: `RouterMsg::Connect` waits, see `takeover.rs`). A session
    /// with Session Expiry 0 is not resumed: it lasted only as long as its
    /// connection [MQTT-3.1.2-6]. A session end that has to read spilled
    /// entries back (`ending.rs`) is finished here, reading them in the
    /// caller: the broker's connections never get here with one, as
    /// [`Router::reply_connect`] holds them until it is recorded.
    pub fn connect(&mut self, req: ConnectRequest, now: Instant) -> ConnectReply {
        self.metrics.connects.inc();
        self.finish_endings(Some(&req.client_id), now);
        if let Some(&key) = self.by_client.get(req.client_id.as_str()) {
            if let Some(old) = self.sessions.get(&key).and_then(|e| e.conn.as_ref()) {
                // [MQTT-3.1.4-2] session takeover: close the existing connection.
                old.close(DisconnectReason::SessionTakenOver);
            }
            let ended_with_connection = self.sessions.get(&key).is_some_and(|e| e.expiry == Some(Duration::ZERO));
            if req.clean_start || ended_with_connection {
                self.end_session(key, now);
                self.finish_endings(Some(&req.client_id), now);
            } else if let Some(e) = self.sessions.get_mut(&key) {
                // [MQTT-3.1.3-9] (5.0) a resumed session cancels a delayed will.
                self.delayed_wills.retain(|w| w.1 != key);
                if e.conn.is_none() {
                    self.metrics.sessions_online.add(1);
                }
                e.conn = Some(req.conn);
                e.expiry = req.expiry;
                if req.check_owner && e.owner.is_none() {
                    e.owner = req.user;
                }
                e.disconnected_at = None;
                e.shared.lock().set_online(true);
                let (session, client_id) = (e.shared.clone(), e.client_id.clone());
                self.record_session(key, now);
                let durable_before = self.end_pending(&client_id);
                return ConnectReply { key, client_id, session, session_present: true, durable_before };
            }
        }
        let key = self.next_key;
        self.next_key += 1;
        let shared = SharedSession::new(self.limits.clone());
        shared.lock().set_online(true);
        self.metrics.sessions_online.add(1);
        let client_id: Arc<str> = req.client_id.into();
        self.by_client.insert(client_id.clone(), key);
        self.sessions.insert(
            key,
            SessionEntry {
                client_id: client_id.clone(),
                shared: shared.clone(),
                conn: Some(req.conn),
                expiry: req.expiry,
                disconnected_at: None,
                owner: req.user,
            },
        );
        self.record_session(key, now);
        let durable_before = self.end_pending(&client_id);
        ConnectReply { key, client_id, session: shared, session_present: false, durable_before }
    }

    /// Ends a session: its subscriptions go, its delayed will is published.
    pub(super) fn end_session(&mut self, key: SessionKey, now: Instant) {
        let Some(e) = self.sessions.remove(&key) else {
            return;
        };
        if e.conn.is_some() {
            self.metrics.sessions_online.add(-1);
        }
        self.by_client.remove(&e.client_id);
        let filters: Vec<String> = e.shared.lock().subscriptions.keys().cloned().collect();
        for f in filters {
            self.subs.remove(&f, key);
        }
        // The session is gone: what it holds of shared subscriptions goes to
        // the other members of their groups, their queue records before the
        // end of this session. What is on disk comes back in steps
        // (`ending.rs`), and the end is recorded after it.
        let (leftovers, removals, on_disk, journaled) = {
            let mut st = e.shared.lock();
            let (leftovers, removals) = st.take_shared(false);
            (leftovers, removals, st.shared_on_disk(), st.is_journaled())
        };
        self.redeliver_shared(leftovers, key);
        if on_disk {
            // The end comes later: what left this session is recorded now.
            for r in &removals {
                self.record(r);
            }
            self.begin_ending(key, e.client_id.clone(), e.shared.clone());
        } else if journaled {
            self.record_end(key, &e.client_id);
        }
        let (due, later): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.delayed_wills).into_iter().partition(|w| w.1 == key);
        self.delayed_wills = later;
        for (_, _, will) in due {
            self.publish(Message { received: now, ..will });
        }
    }

    pub(super) fn disconnected(
        &mut self,
        key: SessionKey,
        conn_id: u64,
        will: Option<(Message, Duration)>,
        expiry: Option<Option<Duration>>,
        now: Instant,
    ) {
        let Some(e) = self.sessions.get_mut(&key) else {
            // The session already ended (clean start elsewhere): publish now.
            if let Some((w, _)) = will {
                self.publish(w);
            }
            return;
        };
        if e.conn.as_ref().map(|c| c.id) != Some(conn_id) {
            // Taken over: the session belongs to the newer connection, so a
            // delayed will is cancelled; an immediate one is published.
            if let Some((w, Duration::ZERO)) = will {
                self.publish(w);
            }
            return;
        }
        e.conn = None;
        self.metrics.sessions_online.add(-1);
        e.disconnected_at = Some(now);
        if let Some(x) = expiry {
            e.expiry = x;
        }
        let session_expiry = e.expiry;
        let (leftovers, removals) = {
            let mut st = e.shared.lock();
            // What is in memory; what is on disk waits for the client (no
            // I/O on the router).
            let taken = st.take_shared(false);
            st.set_online(false);
            taken
        };
        self.redeliver_shared(leftovers, key);
        for r in &removals {
            self.record(r);
        }
        if let Some((w, delay)) = will {
            // The will goes at the earlier of its delay and the session's end.
            let delay = session_expiry.map_or(delay, |x| delay.min(x));
            if delay.is_zero() {
                self.publish(w);
            } else {
                self.delayed_wills.push((now + delay, key, w));
            }
        }
        if session_expiry == Some(Duration::ZERO) {
            self.end_session(key, now);
        } else {
            self.record_session(key, now);
        }
    }

    /// Publishes delayed wills that are due and discards disconnected
    /// sessions whose expiry has passed.
    pub fn expire(&mut self, now: Instant) {
        self.force_takeovers(now);
        self.step_endings(now);
        let (due, later): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.delayed_wills).into_iter().partition(|w| w.0 <= now);
        self.delayed_wills = later;
        for (_, _, will) in due {
            self.publish(Message { received: now, ..will });
        }
        let mut expired: Vec<SessionKey> = self
            .sessions
            .iter()
            .filter(|(_, e)| match (e.disconnected_at, e.expiry) {
                (Some(at), Some(exp)) => now.saturating_duration_since(at) >= exp,
                _ => false,
            })
            .map(|(k, _)| *k)
            .collect();
        // In key order, not the map's (the same in every process).
        expired.sort_unstable();
        for key in expired {
            self.metrics.sessions_expired.inc();
            self.end_session(key, now);
        }
        self.publish_sys(now);
    }
}
