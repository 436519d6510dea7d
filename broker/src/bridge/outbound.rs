//! The router's side of the bridges: every routed message is offered to
//! each bridge's `out` rules ([`Outbound::offer`], on the router task:
//! a topic match and an append to the bridge's [`Fifo`], no I/O), and the
//! acknowledgement of a publisher whose message went into a queue waits
//! until that queue made it durable (the durability gate's ticket is
//! moved by [`gate`] instead of the router, in the order the router
//! processed the publisher's messages).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio::sync::mpsc;

use super::config::{BridgeConfig, BridgeQueuePolicy, TopicRule};
use super::fifo::Fifo;
use crate::message::{Message, SessionKey};
use crate::protocol::QoS;
use crate::router::Ticket;
use crate::store::{Lsn, StoredMessage};

/// What a publisher's acknowledgement waits for in one bridge queue.
#[derive(Debug)]
pub struct Wait {
    fifo: Arc<Fifo>,
    lsn: Lsn,
    /// `block`: also until no more than this many are queued before it.
    room: Option<u64>,
}

/// A ticket update the router handed to [`gate`].
#[derive(Debug)]
pub struct Deferred {
    ticket: Arc<Ticket>,
    /// The main log's position when the router processed the message.
    lsn: Lsn,
    waits: Vec<Wait>,
}

/// One bridge as the router sees it.
#[derive(Debug)]
struct Out {
    fifo: Arc<Fifo>,
    rules: Vec<TopicRule>,
    /// The key its incoming messages are published with: never sent back.
    origin: SessionKey,
    max_messages: u64,
    max_bytes: u64,
    policy: BridgeQueuePolicy,
    /// In a full episode (logged once).
    full: bool,
    name: String,
}

/// Every bridge's `out` side, owned by the router.
#[derive(Debug)]
pub struct Outbound {
    outs: Vec<Out>,
    waits: Vec<Wait>,
    /// A ticketed message is being handled: its queue positions are kept.
    collecting: bool,
    gate: mpsc::UnboundedSender<Deferred>,
    /// The clocks at start, to stamp queued messages without reading one.
    base: (Instant, SystemTime),
}

impl Outbound {
    /// The router's side of `bridges` (with their queues and origin keys),
    /// and the receiver [`gate`] runs on.
    pub fn new(
        bridges: &[(Arc<BridgeConfig>, Arc<Fifo>, SessionKey)],
        base: (Instant, SystemTime),
    ) -> (Outbound, mpsc::UnboundedReceiver<Deferred>) {
        let (gate, rx) = mpsc::unbounded_channel();
        let outs = bridges
            .iter()
            .map(|(cfg, fifo, origin)| Out {
                fifo: fifo.clone(),
                rules: cfg.topics.iter().filter(|r| r.direction.is_out()).cloned().collect(),
                origin: *origin,
                max_messages: cfg.max_queued_messages,
                max_bytes: cfg.max_queued_bytes,
                policy: cfg.queue_full_policy,
                full: false,
                name: cfg.name.clone(),
            })
            .collect();
        (Outbound { outs, waits: Vec::new(), collecting: false, gate, base }, rx)
    }

    /// Queues `msg` for every bridge with an `out` rule for its topic
    /// (the first such rule maps it), unless a bridge published it.
    pub fn offer(&mut self, msg: &Message) {
        for o in &mut self.outs {
            if msg.origin == o.origin {
                continue;
            }
            let Some((rule, remote)) = o.rules.iter().find_map(|r| r.to_remote(&msg.topic).map(|t| (r, t))) else {
                continue;
            };
            let qos = msg.qos.min(QoS::from_u8(rule.qos).unwrap_or(QoS::AtMostOnce));
            let over = (o.max_messages > 0 && o.fifo.depth() >= o.max_messages)
                || (o.max_bytes > 0 && o.fifo.bytes() >= o.max_bytes);
            let mut room = None;
            if over {
                if !o.full {
                    tracing::warn!(bridge = %o.name, queued = o.fifo.depth(), bytes = o.fifo.bytes(), policy = ?o.policy, "bridge queue full");
                    o.full = true;
                }
                match o.policy {
                    BridgeQueuePolicy::DropNew => {
                        o.fifo.stats.dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    BridgeQueuePolicy::DropOldest => o.fifo.drop_oldest(),
                    BridgeQueuePolicy::Block if qos == QoS::AtMostOnce => {
                        o.fifo.stats.dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    BridgeQueuePolicy::Block => room = Some(o.max_messages.max(1)),
                }
            } else if o.full && o.fifo.depth() <= o.max_messages / 2 {
                o.full = false;
            }
            let age = self.base.0.saturating_duration_since(msg.received);
            let later = msg.received.saturating_duration_since(self.base.0);
            let wall = crate::store::record::unix_ms(self.base.1) + later.as_millis() as u64;
            let stored = StoredMessage {
                topic: remote,
                payload: msg.payload.clone(),
                qos,
                retain: msg.retain,
                props: msg.props.clone(),
                origin: 0,
                received_ms: wall.saturating_sub(age.as_millis() as u64),
            };
            let lsn = o.fifo.append(&stored);
            if self.collecting {
                self.waits.push(Wait { fifo: o.fifo.clone(), lsn, room });
            }
        }
    }

    /// After the router processed a publisher's message (with `ticket`,
    /// the main log at `lsn`): whether the ticket's update is left to
    /// [`gate`] (the message went into a bridge queue, or an earlier one
    /// of the same publisher did and is still waiting).
    pub fn defer(&mut self, ticket: &Arc<Ticket>, lsn: Lsn) -> bool {
        self.collecting = false;
        if self.waits.is_empty() && ticket.deferred.load(Ordering::Acquire) == 0 {
            return false;
        }
        ticket.deferred.fetch_add(1, Ordering::AcqRel);
        let d = Deferred { ticket: ticket.clone(), lsn, waits: std::mem::take(&mut self.waits) };
        if let Err(e) = self.gate.send(d) {
            // The gate is gone: the broker is stopping; release at once.
            release(e.0);
        }
        true
    }

    /// A ticketed message is about to be handled: [`Outbound::defer`]
    /// follows.
    pub fn begin(&mut self) {
        self.waits.clear();
        self.collecting = true;
    }
}

fn release(d: Deferred) {
    let t = d.ticket;
    if d.lsn > 0 {
        t.lsn.store(d.lsn, Ordering::Release);
    }
    t.processed.fetch_add(1, Ordering::AcqRel);
    t.deferred.fetch_sub(1, Ordering::AcqRel);
    t.notify.notify_one();
}

/// Moves deferred tickets, in the order the router handed them over, once
/// what each waits for holds: the bridge queues durable up to the
/// message, and (`block`) room in the queue before it.
pub async fn gate(mut rx: mpsc::UnboundedReceiver<Deferred>) {
    while let Some(d) = rx.recv().await {
        for w in &d.waits {
            let mut durable = w.fifo.durable();
            let _ = durable.wait_for(|v| *v >= w.lsn).await;
            if let Some(max) = w.room {
                let mut acked = w.fifo.watch_acked();
                let _ = acked.wait_for(|a| *a + max >= w.lsn).await;
            }
        }
        release(d);
    }
}
