//! The oracle: what the clients were told and what they got, and the
//! invariants checked against it at the end of a run (and the retained
//! messages after every recovery). A violated invariant panics with what
//! broke; the caller prints the seed.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use edgemq::protocol::topic::matches;
use edgemq::protocol::QoS;
use edgemq::store::Lsn;

/// A PUBLISH a client sent (the first time).
#[derive(Debug, Clone)]
pub struct Sent {
    pub publisher: usize,
    pub seq: u64,
    pub qos: QoS,
    pub topic: &'static str,
    pub retain: bool,
    pub payload: Bytes,
}

/// A message a client's application was handed.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub to: usize,
    pub qos: QoS,
    pub retain: bool,
    pub topic: String,
    pub payload: Bytes,
}

/// A shared subscription's group and filter (`$share/G/F`).
fn shared_filter(f: &str) -> Option<(&str, &str)> {
    f.strip_prefix("$share/")?.split_once('/')
}

#[derive(Debug)]
struct Message {
    sent: Sent,
    /// Acknowledged (PUBACK, or PUBREC for QoS 2) with success.
    acked: bool,
    /// Subscriptions established when it was first sent: (client, granted).
    subscribers: Vec<(usize, QoS)>,
}

/// Retained state of one topic as the router set it, in order: the value
/// (`None`: deleted) and the log position after it was recorded.
type History = Vec<(Option<Bytes>, Lsn)>;

#[derive(Debug, Default)]
pub struct Oracle {
    msgs: BTreeMap<Bytes, Message>,
    /// Established subscriptions: client -> (filter, granted QoS).
    subs: BTreeMap<usize, (&'static str, QoS)>,
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
}

impl Oracle {
    pub fn sent(&mut self, s: Sent) {
        trace!("sent {:?} {:?} {} retain {}", s.payload, s.qos, s.topic, s.retain);
        let subscribers = self
            .subs
            .iter()
            .filter(|(_, (f, _))| matches(shared_filter(f).map_or(f, |(_, f)| f), s.topic))
            .map(|(c, (_, q))| (*c, *q))
            .collect();
        self.msgs.insert(s.payload.clone(), Message { sent: s, acked: false, subscribers });
    }

    pub fn acked(&mut self, _publisher: usize, payload: &Bytes, ok: bool) {
        trace!("acked {payload:?} {ok}");
        if let Some(m) = self.msgs.get_mut(payload) {
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
    fn group_of(&self, client: usize) -> Option<&'static str> {
        self.subs.get(&client).map(|(f, _)| *f).filter(|f| shared_filter(f).is_some())
    }

    pub fn subscribed(&mut self, client: usize, filter: &'static str, granted: QoS) {
        trace!("client {client} subscribed {filter} {granted:?}");
        self.subs.insert(client, (filter, granted));
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

    pub fn delivered(&mut self, d: Delivered) {
        trace!("client {} got {:?} {:?} retain {}", d.to, d.payload, d.qos, d.retain);
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
            assert!(m.is_some(), "client {} got {:?} on {}, never sent", d.to, d.payload, d.topic);
            got.entry((d.to, d.payload.clone())).or_default().push(d);
            if let Some(group) = self.group_of(d.to) {
                // Any member, also one that joined later, may get it for the group.
                let n = group_got.entry((group, d.payload.clone())).or_insert((0, 0));
                n.0 += 1;
                if d.qos == QoS::ExactlyOnce {
                    // One member of a shared group gets it, once [MQTT-4.8.2-4].
                    n.1 += 1;
                    assert!(n.1 <= 1, "shared group {group} got {:?} at QoS 2 {} times [MQTT-4.8.2]", d.payload, n.1);
                }
            }
            if d.qos == QoS::ExactlyOnce {
                let n = got[&(d.to, d.payload.clone())].iter().filter(|d| d.qos == QoS::ExactlyOnce).count();
                assert!(n <= 1, "client {} got {:?} at QoS 2 {n} times [MQTT-4.3.3]", d.to, d.payload);
            }
        }
        let mut pairs = 0;
        for (payload, m) in &self.msgs {
            if !m.acked || m.sent.qos == QoS::AtMostOnce || m.sent.retain {
                continue;
            }
            let mut groups: BTreeSet<&str> = BTreeSet::new();
            for (client, granted) in &m.subscribers {
                let eff = m.sent.qos.min(*granted);
                if eff == QoS::AtMostOnce {
                    continue;
                }
                if let Some(group) = self.group_of(*client) {
                    groups.insert(group);
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
        // Order: per (subscriber, publisher, QoS), first receipts by
        // sequence; not with queue limits (a message dropped from a full
        // queue comes back behind later ones when its publisher resends it).
        let mut last: BTreeMap<(usize, usize, QoS), u64> = BTreeMap::new();
        let mut seen = BTreeSet::new();
        for d in &self.deliveries {
            let Some(m) = self.msgs.get(&d.payload) else { continue };
            // Only messages sent after the subscription was acknowledged:
            // one sent before may have missed it, and match when resent.
            let after = m.subscribers.iter().any(|(c, _)| *c == d.to);
            if m.sent.qos == QoS::AtMostOnce
                || d.qos == QoS::AtMostOnce
                || d.retain
                || !after
                || !complete
                // A shared group's messages move between members.
                || self.group_of(d.to).is_some()
                || !seen.insert((d.to, &d.payload))
            {
                continue;
            }
            let k = (d.to, m.sent.publisher, m.sent.qos);
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
        }
    }
}
