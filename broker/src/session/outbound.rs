//! What a connection sends to its client: queued deliveries turned into
//! PUBLISH packets within the in-flight window, the resend of in-flight
//! messages on resume, MQTT 5 topic aliases assigned by the broker, and the
//! client's Maximum Packet Size (a PUBLISH that would exceed it is dropped
//! as if delivered, [MQTT-3.1.2-25], and counted).

use std::collections::HashMap;
use std::time::Instant;

use bytes::BytesMut;

use super::machine::{Machine, State};
use crate::message::{Delivery, Message};
use crate::protocol::{encode, publish_size_bound, Ack, Forward, Packet, Publish, PublishProps, Version};
use crate::session::state::{SessionState, Stage};

/// Per-connection outbound settings and state.
#[derive(Debug, Default)]
pub struct Outbound {
    pub version: Option<Version>,
    /// The client's Maximum Packet Size (MQTT 5).
    pub max_packet_size: Option<u32>,
    /// Topic Alias Maximum the client accepts (0: none).
    pub alias_max: u16,
    /// Aliases assigned on this connection: topic -> alias; made on first use.
    // Boxed on purpose: 8 bytes instead of an empty map's 48 for the
    // connections that never use it.
    #[allow(clippy::box_collection)]
    aliases: Option<Box<HashMap<String, u16>>>,
    /// PUBLISH packets dropped for exceeding the client's limit.
    pub dropped_too_large: u64,
}

impl Outbound {
    pub fn new(version: Version, max_packet_size: Option<u32>, alias_max: u16) -> Outbound {
        Outbound { version: Some(version), max_packet_size, alias_max, ..Outbound::default() }
    }

    fn v5(&self) -> bool {
        self.version.is_some_and(Version::is_v5)
    }

    /// The PUBLISH for `d`, or `None` if it must not be sent (too large).
    fn publish(&mut self, d: &Delivery, pkid: u16, dup: bool, now: Instant) -> Option<Packet> {
        let v5 = self.v5();
        let mut props = if v5 { forward_props(&d.msg, &d.sub_ids, now) } else { None };
        let mut topic = d.msg.topic.clone();
        // An alias is only recorded once its packet is certain to be sent.
        let mut new_alias = None;
        if v5 && self.alias_max > 0 {
            let aliases = self.aliases.as_deref();
            let next = aliases.map_or(0, HashMap::len) as u16 + 1;
            let alias = match aliases.and_then(|a| a.get(&topic)) {
                Some(a) => Some(*a),
                None if next <= self.alias_max => {
                    new_alias = Some(next);
                    Some(next)
                }
                None => None,
            };
            if let Some(a) = alias {
                props.get_or_insert_with(Box::default).topic_alias = Some(a);
                if new_alias.is_none() {
                    // An established alias replaces the topic name.
                    topic.clear();
                }
            }
        }
        let p = Packet::Publish(Publish {
            dup,
            qos: d.qos,
            retain: d.retain,
            topic,
            pkid,
            payload: d.msg.payload.clone(),
            props,
        });
        if let (Some(max), Some(version), Packet::Publish(publish)) = (self.max_packet_size, self.version, &p) {
            // Encoded for an exact size only when the bound is above the limit.
            if publish_size_bound(publish, v5) > max as usize {
                let mut buf = BytesMut::new();
                if encode(&p, version, &mut buf).is_ok() && buf.len() > max as usize {
                    self.dropped_too_large += 1;
                    return None;
                }
            }
        }
        if let Some(a) = new_alias {
            self.aliases.get_or_insert_with(Box::default).insert(d.msg.topic.clone(), a);
        }
        Some(p)
    }
}

/// The MQTT 5 properties of a forwarded PUBLISH: the publisher's, with the
/// Message Expiry Interval reduced by the time spent waiting
/// ([MQTT-3.3.2-6]) and this subscriber's Subscription Identifiers.
fn forward_props(msg: &Message, sub_ids: &[u32], now: Instant) -> Option<Box<PublishProps>> {
    if msg.props.is_none() && sub_ids.is_empty() {
        return None;
    }
    let mut p = msg.props.as_deref().cloned().unwrap_or_default();
    p.message_expiry_interval = msg.expiry_left(now);
    p.subscription_identifiers = sub_ids.to_vec();
    Some(Box::new(p))
}

impl Machine {
    /// Moves queued deliveries into packets, as far as the in-flight window
    /// allows, at most `budget` of them, handing each to `emit` in order (the
    /// driver encodes it straight into its write buffer: no action vector,
    /// no copy of the packet per delivery). Deliveries are taken from the
    /// session a few at a time and encoded after its lock is released, so
    /// the router never waits for a connection's encoding. Returns whether
    /// it stopped because of the budget with more waiting.
    pub fn deliver(&mut self, now: Instant, budget: usize, mut emit: impl FnMut(Packet)) -> bool {
        /// Deliveries taken per lock.
        const CHUNK: usize = 32;
        if self.closing.is_some() || self.deliveries_held() {
            // Rule 3 of the gate: retained messages follow their SUBACK.
            return false;
        }
        let log = self.cfg.log.as_ref();
        let gate = &mut self.gate;
        let mut emit = |p| {
            if let Some(p) = Machine::gate_delivery(gate, log, p) {
                emit(p);
            }
        };
        let State::Connected(c) = &mut self.state else {
            return false;
        };
        // With an ACL, every delivery is checked for read access (retained
        // messages on subscribe, messages queued before a permission went).
        let acl = self.cfg.files.as_ref().filter(|f| f.acl.is_some());
        let stats = &self.cfg.auth_stats;
        let window = usize::from(c.window);
        let session = c.session.clone();
        let mut left = budget;
        while left > 0 {
            let want = left.min(CHUNK);
            let mut taken: [Option<(Delivery, u16)>; CHUNK] = std::array::from_fn(|_| None);
            let (n, waiting) = {
                let mut st = session.lock();
                let mut n = 0;
                while n < want {
                    let Some(next) = st.next_to_send(window, now) else { break };
                    taken[n] = Some(next);
                    n += 1;
                }
                (n, st.queued() > 0)
            };
            left -= n;
            for (d, pkid) in taken.into_iter().flatten() {
                if let Some(files) = acl {
                    let user = c.auth.as_ref().and_then(|a| a.username.as_deref());
                    if !files.allows(user, &c.client_id, &d.msg.topic, crate::auth::acl::Access::Read) {
                        use crate::auth::stats::Denial;
                        stats.count(if d.retain { Denial::Retained } else { Denial::Delivery });
                        // Not delivered, as if acknowledged.
                        self.cfg.metrics.drops.acl.inc();
                        if pkid != 0 {
                            session.lock().complete(pkid);
                        }
                        continue;
                    }
                }
                if !c.version.is_v5() {
                    emit(Packet::Forward(Forward { msg: d.msg, qos: d.qos, retain: d.retain, dup: false, pkid }));
                    continue;
                }
                match c.out.publish(&d, pkid, false, now) {
                    Some(p) => emit(p),
                    None => {
                        // Counted in the registry too: it outlives the connection.
                        self.cfg.metrics.drops.too_large.inc();
                        if pkid != 0 {
                            session.lock().complete(pkid);
                        }
                        if c.out.dropped_too_large == 1 {
                            // Once per connection; the count goes on.
                            tracing::warn!(
                                client_id = &*c.client_id,
                                "message larger than the client's Maximum Packet Size dropped [MQTT-3.1.2-25]"
                            );
                        }
                    }
                }
            }
            if n < want {
                // The queue is empty or the window full.
                return false;
            }
            if left == 0 {
                return waiting;
            }
        }
        false
    }

    /// Resends what was in flight when the session was last connected,
    /// with DUP set ([MQTT-4.4.0-1], [MQTT-3.3.1-1]); `who` (user name,
    /// client identifier) for the ACL: a message it may not read is not
    /// resent but dropped as if acknowledged, as [`Machine::deliver`]
    /// drops it (one dropped there may come back in flight from the log
    /// after a power cut, before its completion was durable).
    pub(super) fn resend_inflight(
        &mut self,
        st: &mut SessionState,
        out: &mut Outbound,
        who: (Option<&str>, &str),
        now: Instant,
    ) {
        let acl = self.cfg.files.clone().filter(|f| f.acl.is_some());
        let mut too_large = Vec::new();
        let mut refused = Vec::new();
        for f in st.inflight() {
            let p = match &f.stage {
                Stage::Published(d)
                    if acl.as_ref().is_some_and(|files| {
                        !files.allows(who.0, who.1, &d.msg.topic, crate::auth::acl::Access::Read)
                    }) =>
                {
                    use crate::auth::stats::Denial;
                    self.cfg.auth_stats.count(if d.retain { Denial::Retained } else { Denial::Delivery });
                    refused.push(f.pkid);
                    continue;
                }
                Stage::Published(d) => match out.publish(d, f.pkid, true, now) {
                    Some(p) => p,
                    None => {
                        too_large.push(f.pkid);
                        continue;
                    }
                },
                Stage::Released => Packet::PubRel(Ack::ok(f.pkid)),
            };
            self.gated_send(p);
        }
        for pkid in too_large {
            self.cfg.metrics.drops.too_large.inc();
            st.complete(pkid);
        }
        for pkid in refused {
            self.cfg.metrics.drops.acl.inc();
            st.complete(pkid);
        }
    }
}
