//! The broker's own turns in the simulation: the router taking its
//! messages (a CONNECT's reply relayed, so the oracle sees when the router
//! carries it out and what it answered), the log writer's rounds, time
//! passing (timers, the router's expiry pass: delayed wills, session
//! expiry), snapshots and store maintenance, and the disk failing and
//! recovering (`disk.rs`), with what must hold meanwhile.

use std::sync::Arc;
use std::time::Duration;

use edgemq::router::RouterMsg;
use edgemq::store::Lsn;
use tokio::sync::oneshot;

use crate::check::Oracle;
use crate::disk::{Fault, SpillFault};
use crate::world::{Boot, Reply, World};

/// A CONNECT's reply on its way from the router to the connection.
pub struct Relay {
    conn: u64,
    clean: bool,
    rx: oneshot::Receiver<Reply>,
    tx: oneshot::Sender<Reply>,
}

/// Passes on the replies the router has sent, telling the oracle, in the
/// order the CONNECTs came.
fn poll_relays(b: &mut Boot, oracle: &mut Oracle) {
    let lsn = b.journal.appended();
    let mut i = 0;
    while i < b.relays.len() {
        match b.relays[i].rx.try_recv() {
            Ok(reply) => {
                let r = b.relays.remove(i);
                if let Ok(c) = &reply {
                    oracle.connect_done(r.conn, r.clean, c.session_present, lsn);
                }
                let _ = r.tx.send(reply);
            }
            Err(oneshot::error::TryRecvError::Empty) => i += 1,
            // Dropped unanswered: so is the connection's end of it.
            Err(oneshot::error::TryRecvError::Closed) => {
                b.relays.remove(i);
            }
        }
    }
}

impl World {
    /// The router takes a batch of its messages.
    pub(crate) fn router_step(&mut self) {
        let now = self.now();
        let take = 1 + self.rng.below(8) as usize;
        let b = self.boot.as_mut().unwrap_or_else(|| panic!("no broker"));
        for _ in 0..take {
            let Some(msg) = b.inbox.pop_front() else { break };
            if let RouterMsg::Ticketed(inner, ticket) = &msg {
                if let RouterMsg::Publish(m) = inner.as_ref() {
                    // Nothing the ACL refuses reaches the router.
                    if let Some(k) = b.conns.iter().find(|k| Arc::ptr_eq(&k.ticket, ticket)) {
                        assert!(
                            self.oracle.may(k.client, &m.topic, edgemq::auth::acl::Access::Write),
                            "client {}: its publish of {:?} to {} was routed, which the ACL refuses",
                            k.client,
                            m.payload,
                            m.topic
                        );
                    }
                }
            }
            let retained = match &msg {
                RouterMsg::Ticketed(inner, _) => match inner.as_ref() {
                    RouterMsg::Publish(m) if m.retain => Some((m.topic.clone(), m.payload.clone())),
                    _ => None,
                },
                _ => None,
            };
            let qos2 = match &msg {
                RouterMsg::Ticketed(inner, _) => match inner.as_ref() {
                    RouterMsg::Publish(m) => {
                        trace!(
                            "router: {:?} {:?} from key {} at LSN {}",
                            m.payload,
                            m.qos,
                            m.origin,
                            b.journal.appended()
                        );
                        (m.qos == edgemq::protocol::QoS::ExactlyOnce).then(|| m.payload.clone())
                    }
                    _ => None,
                },
                _ => None,
            };
            // A CONNECT's reply goes through a relay, to see when the
            // router carries it out; a connection's end, with its will.
            let (msg, ended) = match msg {
                RouterMsg::Connect(req, tx) => {
                    let (relay_tx, rx) = oneshot::channel();
                    b.relays.push(Relay { conn: req.conn.id, clean: req.clean_start, rx, tx });
                    (RouterMsg::Connect(req, relay_tx), None)
                }
                RouterMsg::Disconnected { key, conn_id, will, will_delay, expiry } => {
                    let w = will.as_ref().map(|m| (m.payload.clone(), will_delay));
                    (RouterMsg::Disconnected { key, conn_id, will, will_delay, expiry }, Some((conn_id, w)))
                }
                msg => (msg, None),
            };
            let before = b.journal.appended();
            b.router.handle(msg, now);
            if b.journal.appended() >= before + 2 {
                b.fanouts.push((before, b.journal.appended()));
            }
            if let Some((conn, will)) = ended {
                self.oracle.router_disconnected(conn, will, now, b.journal.appended());
            }
            poll_relays(b, &mut self.oracle);
            if let Some(payload) = qos2 {
                b.routed_qos2.push((payload, b.journal.appended()));
            }
            if let Some((topic, payload)) = retained {
                self.oracle.retained_routed(&topic, &payload, b.journal.appended());
            }
            if self.fs.crashed() {
                return;
            }
        }
        for s in b.router.take_touched() {
            if !b.sessions.iter().any(|k| Arc::ptr_eq(k, &s)) {
                b.sessions.push(s);
            }
        }
        // Sessions the router and every connection let go of (ended) go
        // here too, their queues with them (and what they counted as
        // unreadable).
        b.sessions.retain(|s| Arc::strong_count(s) > 1);
    }

    /// The log writer runs one round (if the power goes meanwhile, the
    /// step ends the boot before anyone sees what it reported).
    pub(crate) fn log_step(&mut self, quiet: bool) {
        // A round writes one record with `sync = "always"`: several rounds.
        let rounds = if quiet { usize::MAX } else { 1 + self.rng.below(16) as usize };
        for _ in 0..rounds {
            if !self.boot().journal.write_pending() || self.fs.crashed() {
                return;
            }
        }
    }

    pub(crate) fn time_passes(&mut self, quiet: bool) {
        let ms = match self.rng.below(10) {
            0..=6 => self.rng.below(200),
            7..=8 => self.rng.below(3_000),
            _ if quiet => 1_000,
            _ => self.rng.below(20_000),
        };
        self.clock.advance(Duration::from_millis(ms));
        trace!("time passes: {ms} ms");
        let now = self.now();
        let b = self.boot.as_mut().unwrap_or_else(|| panic!("no broker"));
        let before = b.journal.appended();
        b.router.expire(now);
        if b.journal.appended() >= before + 2 {
            b.fanouts.push((before, b.journal.appended()));
        }
        // Takeovers forced by the pass come first in it, then wills, then expiries.
        poll_relays(b, &mut self.oracle);
        self.oracle.router_expired(now, b.journal.appended());
        for k in &mut b.conns {
            if k.m.deadline().is_some_and(|d| d <= now) {
                k.m.on_timer(now);
            }
        }
        for i in (0..b.conns.len()).rev() {
            self.execute(i);
            self.finish_turn(i);
        }
    }

    pub(crate) fn maintenance(&mut self) {
        let now = self.now();
        let snapshot = self.rng.chance(20);
        let b = self.boot();
        if snapshot {
            b.router.snapshot(now);
        }
        b.router.maintain_store(now);
        if b.router.snapshot_running() {
            b.router.snapshot_step(now, edgemq::router::Pace::Room, 4);
        }
    }

    /// The disk starts failing (writes, syncs or both), or recovers.
    pub(crate) fn disk_trouble(&mut self) {
        if self.switch.on().is_some() {
            trace!("the disk recovers");
            self.switch.set(None);
            self.oracle.fault = None;
            return;
        }
        if !self.rng.chance(30) {
            return;
        }
        let fault = [Fault::Writes, Fault::Syncs, Fault::Intermittent][self.rng.below(3) as usize];
        trace!("the disk fails: {fault:?}");
        self.switch.set(Some(fault));
        self.faults += 1;
        self.oracle.fault = Some(self.faults);
        self.oracle.total_fault = fault != Fault::Intermittent;
        self.fault_durable = self.durable();
    }

    /// The spill files start failing (writes, reads or at random), or
    /// recover.
    pub(crate) fn spill_trouble(&mut self) {
        if self.switch.spill().is_some() {
            trace!("the spill files recover");
            self.switch.set_spill(None);
            return;
        }
        if !self.rng.chance(30) {
            return;
        }
        let fault = [SpillFault::Writes, SpillFault::Reads, SpillFault::Intermittent][self.rng.below(3) as usize];
        trace!("the spill files fail: {fault:?}");
        self.switch.set_spill(Some(fault));
    }

    /// Queued entries unreadable now (`SpillDir::unreadable`): a queue held
    /// up by a chunk that did not read back, or given up by a whole-queue
    /// walk in this boot.
    pub(crate) fn unreadable(&self) -> u64 {
        self.boot.as_ref().map_or(0, |b| b.journal.spill.unreadable.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// The log's durable LSN.
    pub(crate) fn durable(&self) -> Lsn {
        self.boot.as_ref().map_or(0, |b| *b.journal.durable().borrow())
    }

    /// While every write or every sync fails nothing more is reported
    /// durable (no round completes).
    pub(crate) fn check_fault(&self) {
        if matches!(self.switch.on(), Some(Fault::Writes | Fault::Syncs)) {
            let now = self.durable();
            assert_eq!(
                now, self.fault_durable,
                "the log reported LSN {now} durable while the disk failed (durable up to {} when it began)",
                self.fault_durable
            );
        }
    }
}
