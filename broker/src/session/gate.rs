//! The durability gate of one connection: which of the packets the
//! machine sends may leave now, and which wait for the router or the disk.
//! It does no I/O: the driver feeds it the router's progress
//! ([`Machine::handle_processed`]) and the log's durable position
//! ([`Machine::handle_durable`]); released packets come out as
//! `Action::Send`, in order.
//!
//! The rules, on when a broker with a store sends:
//! 1. PUBACK, PUBREC, PUBCOMP, SUBACK, UNSUBACK: once the router has
//!    processed every message this connection handed it before the
//!    acknowledgement (the PUBLISH it answers is routed, the subscription
//!    made), and the log is durable past every record appended before it,
//!    by anyone (the router's records of that message, the session's own,
//!    such as inbound QoS 2 state). In the order the machine made them.
//! 2. An outgoing QoS 2 PUBLISH once its packet identifier (the Pop record)
//!    is durable, a PUBREL once the PUBREC it answers (the Rel record) is:
//!    after a crash the same identifier is resent, so the receiver does not
//!    deliver twice. Other PUBLISH packets keep their order behind a held one.
//!    A session that is not recorded (clean, or expiry 0) has nothing in the
//!    log to wait for: its QoS 2 packets go at once, as with Mosquitto.
//! 3. Deliveries wait while a SUBACK is held: retained messages for a
//!    subscription follow its SUBACK.
//! 4. A CONNACK waits for the log to be durable past the end of a recorded
//!    session of the same client identifier (a Clean Start, an expiry, an
//!    MQTT 5 resume with Session Expiry 0: `Router::end_pending`), and
//!    every packet waits behind it. Without it a power cut could bring that
//!    session back after the CONNACK said it was gone. A connection closed
//!    while it is held (a takeover, shutdown, a keep-alive timeout) sends
//!    it before its DISCONNECT; after a takeover the new connection's
//!    CONNACK is the one that counts.
//!
//! Without a store nothing is held.

use std::collections::VecDeque;
use std::sync::Arc;

use super::machine::{Action, Machine};
use crate::protocol::{Packet, QoS};
use crate::store::Lsn;

pub use crate::store::LogPosition;

/// What is held, and what is known of the router and the disk.
#[derive(Debug)]
pub(super) struct Gate {
    /// The session is recorded in the log (persistent). A session that is
    /// not has no packet identifier there to wait for: its QoS 2 PUBLISH
    /// and PUBREL go at once (rule 2 does not apply).
    recorded: bool,
    /// Router messages emitted (Route, Subscribe, Unsubscribe); the driver
    /// hands each to the router with this connection's ticket.
    sent: u64,
    /// Of them, processed by the router, and the log's position then.
    processed: u64,
    processed_lsn: Lsn,
    durable: Lsn,
    /// (router messages that must be processed first, position that must
    /// be durable, the acknowledgement).
    acks: VecDeque<(u64, Lsn, Packet)>,
    /// Outgoing PUBLISH/PUBREL waiting for a position to be durable.
    publishes: VecDeque<(Lsn, Packet)>,
    /// PUBACKs among `acks`: inbound QoS 1 not yet acknowledged, which
    /// count against the Receive Maximum.
    pubacks: usize,
    /// A CONNACK waiting for a position to be durable (rule 4).
    connack: Option<(Lsn, Packet)>,
}

impl Default for Gate {
    fn default() -> Gate {
        Gate {
            recorded: true,
            sent: 0,
            processed: 0,
            processed_lsn: 0,
            durable: 0,
            acks: VecDeque::new(),
            publishes: VecDeque::new(),
            pubacks: 0,
            connack: None,
        }
    }
}

/// Whether `p` is an acknowledgement that waits (rule 1).
fn is_ack(p: &Packet) -> bool {
    matches!(p, Packet::PubAck(_) | Packet::PubRec(_) | Packet::PubComp(_) | Packet::SubAck(_) | Packet::UnsubAck(_))
}

impl Gate {
    /// Holds `p` if a rule says so; returns it if it may go now.
    fn offer(&mut self, appended: Lsn, p: Packet) -> Option<Packet> {
        if is_ack(&p) {
            self.pubacks += usize::from(matches!(p, Packet::PubAck(_)));
            self.acks.push_back((self.sent, appended, p));
            return None;
        }
        let qos2 = matches!(p, Packet::PubRel(_)) || p.publish_qos() == Some(QoS::ExactlyOnce);
        let is_publish = qos2 || matches!(p, Packet::Publish(_) | Packet::Forward(_));
        if !is_publish && self.connack.is_none() {
            return Some(p);
        }
        let need = if qos2 && self.recorded { appended } else { 0 };
        if self.publishes.is_empty() && self.connack.is_none() && self.durable >= need {
            return Some(p);
        }
        self.publishes.push_back((need, p));
        None
    }

    /// Hands what may go now to `out`, in order.
    fn release(&mut self, mut out: impl FnMut(Packet)) {
        let (processed, durable) = (self.processed, self.durable);
        if self.connack.as_ref().is_some_and(|(need, _)| durable >= *need) {
            if let Some((_, p)) = self.connack.take() {
                out(p);
            }
        }
        if self.connack.is_some() {
            // Rule 4: everything waits behind the CONNACK (acknowledgements
            // need a later position anyway).
            return;
        }
        let covered = durable >= self.processed_lsn;
        while self.acks.front().is_some_and(|(op, need, _)| *op <= processed && covered && durable >= *need) {
            if let Some((_, _, p)) = self.acks.pop_front() {
                self.pubacks -= usize::from(matches!(p, Packet::PubAck(_)));
                out(p);
            }
        }
        while self.publishes.front().is_some_and(|(need, _)| durable >= *need) {
            if let Some((_, p)) = self.publishes.pop_front() {
                out(p);
            }
        }
    }

    fn waiting(&self) -> bool {
        !self.acks.is_empty() || !self.publishes.is_empty() || self.connack.is_some()
    }

    fn suback_held(&self) -> bool {
        self.acks.iter().any(|(_, _, p)| matches!(p, Packet::SubAck(_)))
    }
}

impl Machine {
    /// The gate, made on first use, if the broker has a store.
    fn gate(&mut self) -> Option<(&mut Gate, &Arc<dyn LogPosition>)> {
        let log = self.cfg.log.as_ref()?;
        Some((self.gate.get_or_insert_with(Box::default), log))
    }

    /// Passes `p` through the gate: out now as `Action::Send`, or held.
    pub(super) fn gated_send(&mut self, p: Packet) {
        let p = match self.gate() {
            Some((gate, log)) => gate.offer(log.appended(), p),
            None => Some(p),
        };
        match p {
            Some(p) => self.out.push(Action::Send(p)),
            // An acknowledgement with nothing left to wait for (no router
            // message behind it, its records already durable) goes now:
            // no input may come to release it later.
            None => self.release_gate(),
        }
    }

    /// For deliveries: `p` if it may be written now (rule 2), else held.
    pub(super) fn gate_delivery(
        gate: &mut Option<Box<Gate>>,
        log: Option<&Arc<dyn LogPosition>>,
        p: Packet,
    ) -> Option<Packet> {
        match log {
            Some(log) => gate.get_or_insert_with(Box::default).offer(log.appended(), p),
            None => Some(p),
        }
    }

    /// Sends the CONNACK `p` once the log is durable up to `need` (rule 4;
    /// at once if `need` is 0 or already durable).
    pub(super) fn send_connack(&mut self, need: Lsn, p: Packet) {
        match self.gate() {
            Some((gate, _)) if need > gate.durable => {
                gate.connack = Some((need, p));
                // The driver watches the log for it from now on.
            }
            _ => self.out.push(Action::Send(p)),
        }
    }

    /// A held CONNACK goes now, and what waited only for it (the connection
    /// is being closed: rule 4).
    pub(super) fn release_connack(&mut self) {
        if let Some((_, p)) = self.gate.as_deref_mut().and_then(|g| g.connack.take()) {
            self.out.push(Action::Send(p));
        }
        self.release_gate();
    }

    /// Whether the connected session is recorded in the log (rule 2
    /// applies only then).
    pub(super) fn set_session_recorded(&mut self, recorded: bool) {
        if let Some((gate, _)) = self.gate() {
            gate.recorded = recorded;
        }
    }

    /// A message for the router was emitted (rule 1 counts them).
    pub(super) fn note_routed(&mut self) {
        if let Some((gate, _)) = self.gate() {
            gate.sent += 1;
        }
    }

    /// The router has processed `processed` of this connection's messages
    /// (its ticket), after which the log had given out positions up to
    /// `lsn`. Releases what may go now.
    pub fn handle_processed(&mut self, processed: u64, lsn: Lsn) {
        if let Some(g) = self.gate.as_deref_mut() {
            g.processed = g.processed.max(processed);
            g.processed_lsn = g.processed_lsn.max(lsn);
        }
        self.release_gate();
    }

    /// The log is durable up to `lsn`. Releases what may go now.
    pub fn handle_durable(&mut self, lsn: Lsn) {
        if let Some(g) = self.gate.as_deref_mut() {
            g.durable = g.durable.max(lsn);
        }
        self.release_gate();
    }

    fn release_gate(&mut self) {
        if let Some(g) = self.gate.as_deref_mut() {
            let out = &mut self.out;
            g.release(|p| out.push(Action::Send(p)));
        }
    }

    /// Whether packets wait for the router or the disk: the driver then
    /// watches both and feeds them in.
    pub fn gate_waiting(&self) -> bool {
        self.gate.as_ref().is_some_and(|g| g.waiting())
    }

    /// A SUBACK or the CONNACK is held: deliveries wait (rules 3 and 4).
    pub(super) fn deliveries_held(&self) -> bool {
        self.gate.as_ref().is_some_and(|g| g.suback_held() || g.connack.is_some())
    }

    /// Inbound QoS 1 messages whose PUBACK is held.
    pub(super) fn held_pubacks(&self) -> usize {
        self.gate.as_ref().map_or(0, |g| g.pubacks)
    }
}

#[cfg(test)]
#[path = "gate_tests.rs"]
mod tests;
