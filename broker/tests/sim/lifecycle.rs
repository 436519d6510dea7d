//! The oracle's model of wills and session lifetimes: what a broker that
//! follows the standard must do with them, fed the events the simulation
//! sees at the router (a connection's end reported, a CONNECT carried out,
//! the once-a-second expiry, a power cut), and checked against what the
//! router answered and what the clients got.
//!
//! Wills ([MQTT-3.1.2-8], [MQTT-3.1.2-10], 5.0 [MQTT-3.1.3-9],
//! [MQTT-3.14.4-3]): a will is handed to the router unless the connection
//! ended with a DISCONNECT 0x00 (checked at the machine, `world.rs`); the
//! router publishes it at once when its delay (the earlier of the Will
//! Delay Interval and the session's expiry) is 0, else at the first expiry
//! pass after the delay, unless a new connection to the session comes
//! first (cancelled; a Clean Start one ends the session: published). The
//! broker keeps pending wills in memory only (`Router::delayed_wills`, not
//! in the log): one not published when the power goes is never published
//! (`Lost`), which is what it promises, at most once. A published will is
//! like any unacknowledged publish: with no power cut after it, it reaches
//! every subscription established before it.
//!
//! Sessions: within a boot the model knows whether a client's session
//! exists (created by a CONNECT, ended by Clean Start, by a 0 expiry when
//! the connection ends, or by the expiry pass once it has been offline for
//! its Session Expiry Interval) and checks every CONNACK's session present
//! against it ([MQTT-3.2.2-2], [MQTT-3.2.2-3]); after a power cut it does
//! not know (when the session went offline may not have been durable)
//! until the client's next CONNACK. A session that ended takes its
//! subscriptions' claims on messages with it (`Oracle::session_ended`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use edgemq::protocol::topic::matches;
use edgemq::protocol::QoS;
use edgemq::store::Lsn;

use crate::check::{shared_filter, Oracle};

/// A will as a client sets it in its CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WillSpec {
    pub qos: QoS,
    pub retain: bool,
    /// Will Delay Interval, seconds (MQTT 5).
    pub delay: u32,
}

/// What became of a will.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Its connection has not ended, or the router has not heard yet.
    Set,
    /// Discarded with a DISCONNECT 0x00, or the CONNECT never completed.
    Discarded,
    /// Held by the router until then.
    Pending(Instant),
    /// Published, in that boot.
    Published(u64),
    /// A new connection to the session came before the delay ended.
    Cancelled,
    /// The power went before it was published.
    Lost,
    /// Published or cancelled: its connection reported after a takeover
    /// had let its successor in (forced after the grace period), so the
    /// session it belonged to may be gone (published) or taken over
    /// (cancelled).
    Either,
}

#[derive(Debug)]
pub struct Will {
    pub client: usize,
    pub topic: String,
    pub spec: WillSpec,
    pub fate: Fate,
    /// Subscriptions established when it was published: (client, granted,
    /// subscription generation).
    pub subscribers: Vec<(usize, QoS, u64)>,
    /// When it was published, on the oracle's clock.
    pub tick: u64,
}

/// What the model knows of a client's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Life {
    /// After a power cut, until the next CONNACK.
    Unknown,
    Known {
        exists: bool,
        offline_since: Option<Instant>,
    },
}

#[derive(Debug, Default)]
pub struct Lives {
    pub wills: BTreeMap<Bytes, Will>,
    /// Connection id -> client.
    conns: BTreeMap<u64, usize>,
    /// The connection the router last let into each client's session.
    current: BTreeMap<usize, u64>,
    life: BTreeMap<usize, Life>,
    /// Each client's session expiry (`None`: never; zero: a clean session).
    expiry: BTreeMap<usize, Option<Duration>>,
    pub boot: u64,
    /// Retained topics a will in [`Fate::Either`] may have set.
    pub loose_topics: BTreeSet<String>,
    /// The boot in which each client last got session present 0 while
    /// it had a session (it ended: expired, or lost at a cut).
    replaced_in: BTreeMap<usize, u64>,
    /// Clients whose session ended in a boot the power then cut before
    /// their CONNACK said so (the old session may come back: the client
    /// was never told it had gone). A figure: no check depends on it,
    /// since a CONNACK without session present waits for the end to be
    /// durable (`session/gate.rs`, rule 4; ROBUSTNESS.md, findings).
    pub doubtful: BTreeSet<usize>,
    /// Figures: wills published, cancelled, lost at a cut; sessions
    /// expired; CONNACKs whose session present was checked; clients in
    /// `doubtful` (set at the end).
    pub figures: [u64; 6],
}

impl Oracle {
    /// A new connection of `client`, whose session expires after `expiry`,
    /// with this will (payload, topic, spec) in its CONNECT.
    pub fn conn_opened(
        &mut self,
        conn: u64,
        client: usize,
        expiry: Option<Duration>,
        will: Option<(Bytes, String, WillSpec)>,
    ) {
        self.lives.conns.insert(conn, client);
        self.lives.expiry.insert(client, expiry);
        if let Some((payload, topic, spec)) = will {
            let w = Will { client, topic, spec, fate: Fate::Set, subscribers: Vec::new(), tick: 0 };
            self.lives.wills.insert(payload, w);
        }
    }

    /// The machine did not hand this will to the router.
    pub fn will_discarded(&mut self, payload: &Bytes) {
        if let Some(w) = self.lives.wills.get_mut(payload) {
            w.fate = Fate::Discarded;
        }
    }

    fn publish_will(&mut self, payload: &Bytes, lsn: Lsn) {
        let boot = self.lives.boot;
        let subscribers = self.subscribers_of(&self.lives.wills[payload].topic);
        let tick = self.tick();
        let Some(w) = self.lives.wills.get_mut(payload) else { return };
        w.tick = tick;
        trace!("will {payload:?} published");
        w.fate = Fate::Published(boot);
        w.subscribers = subscribers;
        self.lives.figures[0] += 1;
        if w.spec.retain {
            let topic = w.topic.clone();
            self.retained_routed(&topic, payload, lsn);
        }
    }

    /// Established subscriptions matching `topic`, of clients the ACL lets
    /// read it: (client, granted, subscription generation).
    pub fn subscribers_of(&self, topic: &str) -> Vec<(usize, QoS, u64)> {
        self.subs
            .iter()
            .filter(|(c, (f, _))| {
                matches(shared_filter(f).map_or(f, |(_, f)| f), topic)
                    && self.may(**c, topic, edgemq::auth::acl::Access::Read)
            })
            .map(|(c, (_, q))| (*c, *q, self.gen(*c)))
            .collect()
    }

    /// The router handled the report of connection `conn`'s end, with this
    /// will (payload, Will Delay Interval); the log had given out LSNs up
    /// to `lsn` after it.
    pub fn router_disconnected(&mut self, conn: u64, will: Option<(Bytes, Duration)>, now: Instant, lsn: Lsn) {
        let Some(&client) = self.lives.conns.get(&conn) else { return };
        let current = self.lives.current.get(&client) == Some(&conn);
        let expiry = self.lives.expiry.get(&client).copied().flatten();
        if current {
            self.lives.current.remove(&client);
            let life = self.lives.life.entry(client).or_insert(Life::Known { exists: false, offline_since: None });
            if let Life::Known { exists, offline_since } = life {
                if expiry == Some(Duration::ZERO) {
                    *exists = false;
                } else {
                    *offline_since = Some(now);
                }
            }
        }
        let Some((payload, delay)) = will else { return };
        if let Some(w) = self.lives.wills.get(&payload) {
            // A will to a topic the ACL refuses is refused with its CONNECT.
            assert!(
                self.may(w.client, &w.topic, edgemq::auth::acl::Access::Write),
                "client {}: the router was handed its will to {}, which the ACL refuses",
                w.client,
                w.topic
            );
        }
        // The earlier of the Will Delay Interval and the session's end.
        let due = if current { expiry.map_or(delay, |x| delay.min(x)) } else { delay };
        if due.is_zero() {
            self.publish_will(&payload, lsn);
        } else if let Some(w) = self.lives.wills.get_mut(&payload) {
            if current {
                w.fate = Fate::Pending(now + due);
            } else {
                w.fate = Fate::Either;
                if w.spec.retain {
                    self.lives.loose_topics.insert(w.topic.clone());
                }
            }
        }
    }

    /// The router carried out connection `conn`'s CONNECT (`clean`: Clean
    /// Start) and answered session present `present`; the log had given
    /// out LSNs up to `lsn` after it.
    pub fn connect_done(&mut self, conn: u64, clean: bool, present: bool, lsn: Lsn) {
        let Some(&client) = self.lives.conns.get(&conn) else { return };
        trace!("router: CONNECT of client {client} (conn {conn}, clean {clean}) done, session present {present}");
        let life = self.lives.life.get(&client).copied().unwrap_or(Life::Known { exists: false, offline_since: None });
        if let Life::Known { exists, .. } = life {
            let expected = exists && !clean;
            assert_eq!(
                present,
                expected,
                "client {client}: CONNACK session present {present}, but its session {} [MQTT-3.2.2-2] [MQTT-3.2.2-3]",
                if exists { "exists" } else { "ended (or never was)" }
            );
            self.lives.figures[4] += 1;
        }
        let expires = self.lives.expiry.get(&client).copied().flatten().is_some_and(|x| !x.is_zero());
        if !present {
            self.session_ended(client);
            if life == Life::Unknown && expires {
                // Restored, then expired before this CONNECT (or lost).
                self.lives.replaced_in.insert(client, self.lives.boot);
            }
        }
        // A new connection to the session: its pending will is cancelled
        // [MQTT-3.1.3-9]; a Clean Start ends the session: published.
        let pending: Vec<Bytes> = self
            .lives
            .wills
            .iter()
            .filter(|(_, w)| w.client == client && matches!(w.fate, Fate::Pending(_)))
            .map(|(p, _)| p.clone())
            .collect();
        for p in pending {
            if clean {
                self.publish_will(&p, lsn);
            } else if let Some(w) = self.lives.wills.get_mut(&p) {
                w.fate = Fate::Cancelled;
                self.lives.figures[1] += 1;
            }
        }
        self.lives.current.insert(client, conn);
        self.lives.life.insert(client, Life::Known { exists: true, offline_since: None });
    }

    /// The router's expiry pass at `now`: wills whose delay ended are
    /// published, then sessions offline for their expiry end.
    pub fn router_expired(&mut self, now: Instant, lsn: Lsn) {
        let due: Vec<Bytes> = self
            .lives
            .wills
            .iter()
            .filter(|(_, w)| matches!(w.fate, Fate::Pending(at) if at <= now))
            .map(|(p, _)| p.clone())
            .collect();
        for p in due {
            self.publish_will(&p, lsn);
        }
        let mut ended = Vec::new();
        for (client, life) in &mut self.lives.life {
            let Some(expiry) = self.lives.expiry.get(client).copied().flatten() else { continue };
            if let Life::Known { exists: exists @ true, offline_since: Some(at) } = life {
                if now.saturating_duration_since(*at) >= expiry {
                    *exists = false;
                    ended.push(*client);
                }
            }
        }
        for client in ended {
            trace!("session of client {client} expired");
            self.lives.replaced_in.insert(client, self.lives.boot);
            self.lives.figures[3] += 1;
            self.session_ended(client);
        }
    }

    /// The power went: wills not yet published are gone, sessions unknown.
    pub fn power_cut(&mut self) {
        for w in self.lives.wills.values_mut() {
            if matches!(w.fate, Fate::Set | Fate::Pending(_)) {
                w.fate = Fate::Lost;
                self.lives.figures[2] += 1;
            }
        }
        self.lives.current.clear();
        let boot = self.lives.boot;
        self.lives.doubtful.extend(self.lives.replaced_in.iter().filter(|(_, b)| **b == boot).map(|(c, _)| *c));
        let clients: Vec<usize> = self.lives.expiry.keys().copied().collect();
        for c in clients {
            self.lives.life.insert(c, Life::Unknown);
        }
    }

    pub fn boot_started(&mut self) {
        self.lives.boot += 1;
    }

    /// `client` got a CONNACK without session present: the broker sends it
    /// only once the end of an old session is durable (`session/gate.rs`,
    /// rule 4), so a later cut cannot bring that session back: the checks
    /// that nothing of an ended session is delivered hold for it.
    pub fn end_acknowledged(&mut self, client: usize) {
        self.lives.replaced_in.remove(&client);
    }

    /// A delivery of a will: only one the router may have published
    /// ([MQTT-3.1.2-10], [MQTT-3.1.3-9], [MQTT-3.14.4-3]; a lost one never
    /// comes back after a power cut).
    pub fn check_will_delivery(&self, to: usize, payload: &Bytes) -> bool {
        let Some(w) = self.lives.wills.get(payload) else { return false };
        assert!(
            matches!(w.fate, Fate::Published(_) | Fate::Either),
            "client {to} got the will {payload:?} of client {}, which the broker must not publish: {:?}",
            w.client,
            w.fate
        );
        true
    }

    /// Wills published in the last boot (no power cut after them), at QoS
    /// 1 or 2: every subscription established before, still of the same
    /// session, got them (shared groups: one member); how many pairs.
    pub fn check_wills_delivered(
        &self,
        got: &dyn Fn(usize, &Bytes) -> bool,
        group_got: &dyn Fn(&str, &Bytes) -> bool,
    ) -> u64 {
        let mut pairs = 0;
        for (payload, w) in &self.lives.wills {
            if w.fate != Fate::Published(self.lives.boot) || w.spec.qos == QoS::AtMostOnce {
                continue;
            }
            let mut groups = BTreeSet::new();
            for &(client, granted, epoch) in &w.subscribers {
                if granted == QoS::AtMostOnce || epoch != self.gen(client) {
                    continue;
                }
                if let Some(g) = self.group_of(client) {
                    groups.insert(g);
                    continue;
                }
                pairs += 1;
                assert!(got(client, payload), "client {client} never got the will {payload:?} of client {}", w.client);
            }
            for g in groups {
                if !self.group_certain(g, &w.topic, w.tick) {
                    continue;
                }
                pairs += 1;
                assert!(
                    group_got(g, payload),
                    "shared group {g} never got the will {payload:?} of client {}",
                    w.client
                );
            }
        }
        pairs
    }
}
