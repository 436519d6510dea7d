//! The oracle: what the clients were told and what they got, and the
//! invariants checked against it at the end of a run (and the retained
//! messages after every recovery). A violated invariant panics with what
//! broke; the caller prints the seed.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use edgemq::protocol::QoS;
use edgemq::store::Lsn;

use edgemq::auth::acl::Access;

use crate::lifecycle::Lives;

/// A PUBLISH a client sent (the first time).
#[derive(Debug, Clone)]
pub struct Sent {
    pub publisher: usize,
    pub seq: u64,
    pub qos: QoS,
    pub topic: &'static str,
    pub retain: bool,
    pub payload: Bytes,
    /// Its publisher's session is recorded (it outlives the connection).
    pub persistent: bool,
}

/// A message a client's application was handed.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub to: usize,
    pub qos: QoS,
    pub retain: bool,
    pub topic: String,
    pub payload: Bytes,
    /// The receiving client's subscription generation (set by the oracle).
    pub gen: u64,
}

/// A shared subscription's group and filter (`$share/G/F`).
pub fn shared_filter(f: &str) -> Option<(&str, &str)> {
    f.strip_prefix("$share/")?.split_once('/')
}

#[derive(Debug)]
struct Message {
    sent: Sent,
    /// Acknowledged (PUBACK, or PUBREC for QoS 2) with success.
    acked: bool,
    /// Subscriptions established when it was first sent, of clients the
    /// ACL lets read it: (client, granted, the subscriber's subscription
    /// generation).
    subscribers: Vec<(usize, QoS, u64)>,
    /// The ACL refuses it to its publisher: never routed.
    denied: bool,
    /// When it was first sent, on the oracle's clock.
    tick: u64,
    /// First sent while the disk was failing (that failure's number).
    in_fault: Option<u64>,
    /// The publisher's session epoch when it was first sent.
    pub_epoch: u64,
    /// Its number among the messages sent.
    sent_at: u64,
}

/// Retained state of one topic as the router set it, in order: the value
/// (`None`: deleted) and the log position after it was recorded.
type History = Vec<(Option<Bytes>, Lsn)>;

#[derive(Debug, Default)]
pub struct Oracle {
    msgs: BTreeMap<Bytes, Message>,
    /// Established subscriptions: client -> (filter, granted QoS).
    pub(crate) subs: BTreeMap<usize, (&'static str, QoS)>,
    /// The filter each client subscribed with, ever (one per client).
    filters: BTreeMap<usize, &'static str>,
    /// Sessions each client has had that ended (expired, or replaced by
    /// a new one): a message sent to an earlier one need not arrive.
    epochs: BTreeMap<usize, u64>,
    /// Each client's subscription generation: bumped when its session
    /// ends, when a SUBACK grants its subscription, when it sends an
    /// UNSUBSCRIBE; a claim on a message holds while it is unchanged.
    gens: BTreeMap<usize, u64>,
    /// The oracle's clock: a tick per message first sent, will published,
    /// UNSUBACK received.
    ticks: u64,
    /// Clients that got an UNSUBACK and have not sent a SUBSCRIBE since,
    /// with the tick of the UNSUBACK: nothing sent or published after it
    /// may reach them ([MQTT-3.10.4-2]).
    unsubscribed: BTreeMap<usize, u64>,
    /// UNSUBSCRIBEs sent: (client, tick).
    unsubs: Vec<(usize, u64)>,
    /// Messages clients dropped under a stale QoS 2 id (`stale_id`).
    stale: BTreeSet<(usize, Bytes)>,
    /// The broker's ACL, if any (`acl.rs`).
    pub acl: Option<crate::acl::Acl>,
    /// Publishes acknowledged though refused (checked codes), SUBSCRIBEs
    /// refused, CONNECTs refused for their will, UNSUBACKs received.
    pub acl_figures: [u64; 4],
    /// Messages sent before the last recovery that forgot the inbound
    /// QoS 2 packet ids (damage before the end of the log).
    forgotten: u64,
    /// Sessions that ended: (client, messages sent before).
    ended: Vec<(usize, u64)>,
    /// Wills and session lifetimes (`lifecycle.rs`).
    pub lives: Lives,
    /// The disk is failing now (the failure's number), and the figures:
    /// QoS 0 messages sent and delivered during a failure, acknowledgements
    /// received during one.
    pub fault: Option<u64>,
    /// Every write or every sync fails (not an intermittent failure).
    pub total_fault: bool,
    pub fault_figures: [u64; 2],
    deliveries: Vec<Delivered>,
    retained: BTreeMap<String, History>,
    /// QoS 2 messages whose routing a power cut may have cut in two.
    cut: BTreeSet<Bytes>,
    /// Figures for the report.
    pub acked: u64,
    pub retained_checks: u64,
}

/// What a run checked, summed over seeds.
#[derive(Debug, Default, Clone, Copy)]
pub struct Figures {
    pub sent: u64,
    pub acked: u64,
    pub deliveries: u64,
    pub checked_pairs: u64,
    pub retained_checks: u64,
    /// QoS 2 messages whose routing a power cut fell inside (each checked
    /// like any other: at most once per subscriber).
    pub cut_routings: u64,
    /// (published will, subscriber) pairs checked delivered.
    pub will_pairs: u64,
    /// Wills published, cancelled, lost at a cut; sessions expired;
    /// CONNACKs whose session present was checked.
    pub lives: [u64; 6],
    /// QoS 0 deliveries and acknowledgements while the disk failed.
    pub faults: [u64; 2],
    /// Disk failures begun, and operations failed (set by the run).
    pub disk: [u64; 2],
    /// ACL and unsubscribing: see `Oracle::acl_figures`.
    pub acl: [u64; 4],
    /// Spill writes and reads, those failed, queued entries held up
    /// behind a chunk that did not read back, and entries given up (then
    /// brought back by a restart; set by the run).
    pub spill: [u64; 4],
}

impl Oracle {
    pub fn with_acl(acl: Option<crate::acl::Acl>) -> Oracle {
        Oracle { acl, ..Oracle::default() }
    }

    pub fn sent(&mut self, s: Sent) {
        trace!("sent {:?} {:?} {} retain {}", s.payload, s.qos, s.topic, s.retain);
        let subscribers = self.subscribers_of(s.topic);
        let (in_fault, pub_epoch, sent_at) = (self.fault, self.epoch(s.publisher), self.msgs.len() as u64);
        let denied = !self.may(s.publisher, s.topic, Access::Write);
        let tick = self.tick();
        let m = Message { sent: s, acked: false, subscribers, in_fault, pub_epoch, sent_at, denied, tick };
        self.msgs.insert(m.sent.payload.clone(), m);
    }

    /// Recovery found damage before the end of the log and forgot every
    /// inbound QoS 2 id recorded before it (ARCHITECTURE.md, "Damage and
    /// exactly-once"): what was sent so far may be routed twice.
    pub fn ids_forgotten(&mut self) {
        self.forgotten = self.msgs.len() as u64;
    }

    /// Whether the ACL (if any) lets `client` have `access` to `topic`.
    pub fn may(&self, client: usize, topic: &str, access: Access) -> bool {
        self.acl.as_ref().is_none_or(|a| a.may(client, topic, access))
    }

    /// The clock moves on: the new time.
    pub fn tick(&mut self) -> u64 {
        self.ticks += 1;
        self.ticks
    }

    /// The current subscription generation of `client`.
    pub fn gen(&self, client: usize) -> u64 {
        self.gens.get(&client).copied().unwrap_or(0)
    }

    fn next_gen(&mut self, client: usize) {
        *self.gens.entry(client).or_default() += 1;
    }

    /// `client` sent an UNSUBSCRIBE: its claims end (what was sent before
    /// may still arrive, or not: the broker MAY deliver what it had
    /// buffered, [MQTT-3.10.4-3] only binds what it has started to send).
    pub fn unsubscribe_sent(&mut self, client: usize) {
        self.subs.remove(&client);
        self.next_gen(client);
        let t = self.tick();
        self.unsubs.push((client, t));
    }

    /// `client` got its UNSUBACK: the router has removed the subscription
    /// (the gate holds the UNSUBACK until then, and until durable), so
    /// nothing sent or published after this may reach it until it
    /// subscribes again ([MQTT-3.10.4-2]).
    pub fn unsubscribe_acked(&mut self, client: usize) {
        trace!("client {client} got its UNSUBACK");
        let t = self.tick();
        self.unsubscribed.insert(client, t);
        self.acl_figures[3] += 1;
    }

    /// `client` dropped `payload` as a duplicate under a QoS 2 packet id
    /// left from a session that ended without the client learning it.
    pub fn stale_id(&mut self, client: usize, payload: &Bytes) {
        trace!("client {client} drops {payload:?} under a stale QoS 2 id");
        self.stale.insert((client, payload.clone()));
    }

    /// `client` sends a SUBSCRIBE.
    pub fn subscribe_sent(&mut self, client: usize) {
        self.unsubscribed.remove(&client);
    }

    /// The current session epoch of `client`.
    pub fn epoch(&self, client: usize) -> u64 {
        self.epochs.get(&client).copied().unwrap_or(0)
    }

    /// `client`'s session ended: its subscription went with it, and so did
    /// its claim on what was sent to it.
    pub fn session_ended(&mut self, client: usize) {
        self.ended.push((client, self.msgs.len() as u64));
        self.subs.remove(&client);
        *self.epochs.entry(client).or_default() += 1;
        self.next_gen(client);
    }

    pub fn acked(&mut self, _publisher: usize, payload: &Bytes, ok: bool) {
        trace!("acked {payload:?} {ok}");
        if let Some(m) = self.msgs.get_mut(payload) {
            // Nothing appended during a disk failure is durable before it
            // ends: a QoS 2 message of a recorded session, first sent
            // meanwhile (its inbound packet id is recorded), cannot have
            // been acknowledged yet (ARCHITECTURE.md, "When the disk fails").
            // (Retained deletes share the empty payload: not told apart.)
            if ok && self.fault.is_some() && !payload.is_empty() && !m.denied {
                assert!(
                    !(self.total_fault
                        && m.in_fault == self.fault
                        && m.sent.qos == QoS::ExactlyOnce
                        && m.sent.persistent),
                    "client {} got PUBREC for {payload:?}, sent while the disk fails: acknowledged before it was \
                     durable",
                    m.sent.publisher
                );
                self.fault_figures[1] += 1;
            }
            if ok && !m.acked && !payload.is_empty() {
                self.acked += 1;
            }
            m.acked |= ok;
        }
    }

    /// The publisher dropped a message it had not been acknowledged (its
    /// session was new at the broker).
    pub fn abandoned(&mut self, publisher: usize, payload: &Bytes) {
        trace!("client {publisher} abandons {payload:?}");
    }

    /// A power cut fell while the records of this QoS 2 message's routing
    /// were not all durable: some subscribers' copies may have survived
    /// without the publisher's `In2`, and its retransmission must reach
    /// only the others (`router/resume.rs`). Counted for the report.
    pub fn cut_qos2(&mut self, payload: &Bytes) {
        self.cut.insert(payload.clone());
    }

    /// The shared subscription (`$share/G/F`, naming the group) of `client`, if it has one.
    pub fn group_of(&self, client: usize) -> Option<&'static str> {
        self.filters.get(&client).copied().filter(|f| shared_filter(f).is_some())
    }

    pub fn subscribed(&mut self, client: usize, filter: &'static str, granted: QoS) {
        trace!("client {client} subscribed {filter} {granted:?}");
        self.next_gen(client);
        self.subs.insert(client, (filter, granted));
        self.filters.insert(client, filter);
    }

    /// Whether a shared group must get a message (on `topic`, sent at
    /// `tick`): not when a member (ever) may not read it (the broker
    /// checks read access at the delivery, after the router picked the
    /// member: a member refused drops it, ROBUSTNESS.md), nor when a member
    /// unsubscribed after it was sent (its buffered copy MAY go).
    pub fn group_certain(&self, group: &str, topic: &str, tick: u64) -> bool {
        let members = || self.filters.keys().copied().filter(|c| self.group_of(*c) == Some(group));
        members().all(|c| self.may(c, topic, Access::Read))
            && !self.unsubs.iter().any(|(c, t)| *t > tick && self.group_of(*c) == Some(group))
    }

    /// A digest of everything the clients got, in order: the same seed must
    /// give the same one.
    pub fn digest(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for d in &self.deliveries {
            (d.to, d.qos, d.retain, &d.topic, &d.payload).hash(&mut h);
        }
        self.acked.hash(&mut h);
        h.finish()
    }

    pub fn delivered(&mut self, mut d: Delivered) {
        d.gen = self.gen(d.to);
        // Every delivery is checked for read access: live, retained on
        // subscribe, wills, shared.
        assert!(
            self.may(d.to, &d.topic, Access::Read),
            "client {} got {:?} on {} (retain {}), which the ACL does not let it read",
            d.to,
            d.payload,
            d.topic,
            d.retain
        );
        if let Some(at) = self.unsubscribed.get(&d.to) {
            let tick =
                self.msgs.get(&d.payload).map(|m| m.tick).or_else(|| self.lives.wills.get(&d.payload).map(|w| w.tick));
            assert!(
                d.payload.is_empty() || tick.is_none_or(|t| t < *at),
                "client {} got {:?} on {}, sent after its UNSUBACK, before it subscribed again [MQTT-3.10.4-2]",
                d.to,
                d.payload,
                d.topic
            );
        }
        trace!("client {} got {:?} {:?} retain {}", d.to, d.payload, d.qos, d.retain);
        // QoS 0 goes on while the disk fails.
        if self.fault.is_some() && self.msgs.get(&d.payload).is_some_and(|m| m.in_fault == self.fault) {
            self.fault_figures[0] += 1;
        }
        self.deliveries.push(d);
    }

    /// The router set a retained message (`payload` empty: deleted it);
    /// the log had given out positions up to `lsn` after it.
    pub fn retained_routed(&mut self, topic: &str, payload: &Bytes, lsn: Lsn) {
        let v = (!payload.is_empty()).then(|| payload.clone());
        self.retained.entry(topic.to_owned()).or_default().push((v, lsn));
    }

    /// After a crash whose durable position was `durable`, the recovered
    /// retained messages must be, per topic, what was set last up to
    /// `durable`, or something set after it; from now on they are what
    /// was recovered. With `exact` (a clean stop): what was set last.
    pub fn recovered_retained(&mut self, got: &BTreeMap<String, Bytes>, durable: Lsn, exact: bool) {
        let topics: BTreeSet<String> = self.retained.keys().chain(got.keys()).cloned().collect();
        for topic in topics {
            if self.lives.loose_topics.contains(&topic) {
                // A will that may or may not have been published set it.
                continue;
            }
            let history = self.retained.remove(&topic).unwrap_or_default();
            let now = got.get(&topic).cloned();
            let from = history.iter().rposition(|(_, lsn)| *lsn <= durable);
            let allowed: Vec<Option<Bytes>> = match (exact, from) {
                (true, _) => history.last().map(|h| h.0.clone()).into_iter().collect(),
                (false, Some(i)) => history[i..].iter().map(|h| h.0.clone()).collect(),
                // Nothing durable: absent or anything set.
                (false, None) => std::iter::once(None).chain(history.iter().map(|h| h.0.clone())).collect(),
            };
            let allowed = if allowed.is_empty() { vec![None] } else { allowed };
            assert!(
                allowed.contains(&now),
                "retained message of {topic} recovered as {now:?}; allowed (durable up to LSN {durable}): {allowed:?}"
            );
            self.retained_checks += 1;
            if now.is_some() {
                self.retained.insert(topic, vec![(now, 0)]);
            }
        }
    }

    /// The end of a run, everything delivered: every acknowledged QoS 1/2
    /// message reached every subscription established before it was sent
    /// (at QoS 1 or 2 on both sides); nothing at QoS 2 twice; per
    /// publisher and QoS, in the order sent; nothing never sent.
    pub fn check(&self, complete: bool) -> Figures {
        let mut got: BTreeMap<(usize, Bytes), Vec<&Delivered>> = BTreeMap::new();
        // Per (shared group, message): deliveries to any member, and at QoS 2.
        let mut group_got: BTreeMap<(&str, Bytes), (u32, u32)> = BTreeMap::new();
        for d in &self.deliveries {
            let m = self.msgs.get(&d.payload);
            let will = self.check_will_delivery(d.to, &d.payload);
            assert!(m.is_some() || will, "client {} got {:?} on {}, never sent", d.to, d.payload, d.topic);
            assert!(
                d.payload.is_empty() || m.is_none_or(|m| !m.denied),
                "client {} got {:?} on {}, a publish the ACL refused to its publisher",
                d.to,
                d.payload,
                d.topic
            );
            got.entry((d.to, d.payload.clone())).or_default().push(d);
            // Exactly once holds within the publisher's session: one that
            // ended (expired) with the message unacknowledged, unknown to
            // the client (the CONNACK saying so never reached it), may see
            // it resent into the next session, which routes it anew; and
            // inbound QoS 2 ids recovery forgot for damage (page loss) let a
            // retransmission be routed again.
            let replaced = m.is_some_and(|m| self.epoch(m.sent.publisher) != m.pub_epoch || m.sent_at < self.forgotten);
            // Retained copies (sent again at each SUBSCRIBE, [MQTT-3.3.1-6]) and
            // retained deletes (all of them empty) are not counted.
            let counted = !d.retain && !d.payload.is_empty();
            if let Some(group) = self.group_of(d.to) {
                // Any member, also one that joined later, may get it for the group.
                let n = group_got.entry((group, d.payload.clone())).or_insert((0, 0));
                n.0 += 1;
                if d.qos == QoS::ExactlyOnce && counted {
                    // One member of a shared group gets it, once [MQTT-4.8.2-4].
                    n.1 += 1;
                    assert!(
                        n.1 <= 1 || replaced,
                        "shared group {group} got {:?} at QoS 2 {} times [MQTT-4.8.2]",
                        d.payload,
                        n.1
                    );
                }
            }
            if d.qos == QoS::ExactlyOnce && counted {
                let n =
                    got[&(d.to, d.payload.clone())].iter().filter(|d| d.qos == QoS::ExactlyOnce && !d.retain).count();
                assert!(n <= 1 || replaced, "client {} got {:?} at QoS 2 {n} times [MQTT-4.3.3]", d.to, d.payload);
            }
        }
        let mut pairs = 0;
        for (payload, m) in &self.msgs {
            if !m.acked || m.sent.qos == QoS::AtMostOnce || m.sent.retain || m.denied {
                continue;
            }
            let mut groups: BTreeSet<&str> = BTreeSet::new();
            for (client, granted, epoch) in &m.subscribers {
                let eff = m.sent.qos.min(*granted);
                if eff == QoS::AtMostOnce || *epoch != self.gen(*client) {
                    continue;
                }
                if let Some(group) = self.group_of(*client) {
                    groups.insert(group);
                    continue;
                }
                if self.stale.contains(&(*client, payload.clone())) {
                    continue;
                }
                pairs += 1;
                let n = got.get(&(*client, payload.clone())).map_or(0, Vec::len);
                if complete {
                    assert!(
                        n >= 1,
                        "client {client} (subscribed {:?} before it was sent) never got acknowledged {:?} ({:?} on \
                         {})",
                        self.subs.get(client),
                        payload,
                        m.sent.qos,
                        m.sent.topic
                    );
                }
            }
            for group in groups {
                // A QoS 2 message in flight to a member whose session then
                // ended goes to no other member [MQTT-4.8.2-5].
                if m.sent.qos == QoS::ExactlyOnce
                    && self.ended.iter().any(|(c, at)| *at > m.sent_at && self.group_of(*c) == Some(group))
                {
                    continue;
                }
                let stale = self.stale.iter().any(|(c, p)| p == payload && self.group_of(*c) == Some(group));
                if stale || !self.group_certain(group, m.sent.topic, m.tick) {
                    continue;
                }
                pairs += 1;
                let n = group_got.get(&(group, payload.clone())).map_or(0, |n| n.0);
                if complete {
                    assert!(
                        n >= 1,
                        "shared group {group} never got acknowledged {payload:?} ({:?} on {})",
                        m.sent.qos,
                        m.sent.topic
                    );
                }
            }
        }
        let will_pairs = if complete {
            let got_it = |c: usize, p: &Bytes| got.contains_key(&(c, p.clone()));
            let group_got_it = |g: &str, p: &Bytes| group_got.get(&(g, p.clone())).is_some_and(|n| n.0 >= 1);
            self.check_wills_delivered(&got_it, &group_got_it)
        } else {
            0
        };
        // Order: per (subscriber, publisher, QoS), first receipts by
        // sequence; not with queue limits (a message dropped from a full
        // queue comes back behind later ones when its publisher resends it).
        let mut last: BTreeMap<(usize, u64, usize, QoS), u64> = BTreeMap::new();
        let mut seen = BTreeSet::new();
        for d in &self.deliveries {
            let Some(m) = self.msgs.get(&d.payload) else { continue };
            // Only messages sent after the subscription was acknowledged:
            // one sent before may have missed it, and match when resent.
            let after = m.subscribers.iter().any(|(c, _, e)| *c == d.to && *e == d.gen);
            if m.sent.qos == QoS::AtMostOnce
                || d.payload.is_empty()
                || d.qos == QoS::AtMostOnce
                || d.retain
                || !after
                || !complete
                // A shared group's messages move between members.
                || self.group_of(d.to).is_some()
                || !seen.insert((d.to, d.gen, &d.payload))
            {
                continue;
            }
            let k = (d.to, d.gen, m.sent.publisher, m.sent.qos);
            if let Some(before) = last.get(&k) {
                assert!(
                    *before < m.sent.seq,
                    "client {} got message {} of client {} after message {before} ({:?}): out of order [MQTT-4.6.0-6]",
                    d.to,
                    m.sent.seq,
                    m.sent.publisher,
                    m.sent.qos
                );
            }
            last.insert(k, m.sent.seq);
        }
        Figures {
            sent: self.msgs.len() as u64,
            acked: self.acked,
            deliveries: self.deliveries.len() as u64,
            checked_pairs: pairs,
            retained_checks: self.retained_checks,
            cut_routings: self.cut.len() as u64,
            will_pairs,
            lives: {
                let mut f = self.lives.figures;
                f[5] = self.lives.doubtful.len() as u64;
                f
            },
            faults: self.fault_figures,
            acl: self.acl_figures,
            disk: [0; 2],
            spill: [0; 4],
        }
    }
}
