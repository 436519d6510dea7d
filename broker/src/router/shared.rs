//! Who holds the [`Router`]: one mutex around it, held either by the
//! router task for one batch of its channel (or a tick, or a snapshot
//! step), or by a connection that routes its own PUBLISH inline.
//!
//! A message of a gateway's fleet (thousands of devices, each publishing
//! rarely) used to cross three tasks: the publisher's connection, the
//! router task and the subscriber's connection, and the router task's
//! second wake-up of the turn (the publisher's ticket after the
//! subscriber's delivery) sent the other worker a futex wake-up (tokio
//! hands it a task from the local queue). Routed inline, the publisher's
//! task matches, enqueues, wakes the subscriber (the worker's next task)
//! and writes its PUBACK in the same turn, as one loop of Mosquitto's
//! would.
//!
//! The invariants the channel gave stay:
//! - **order per connection**: a connection routes inline only when the
//!   router has processed everything it sent through the channel (its
//!   ticket's `processed` equals what it sent); otherwise the message goes
//!   through the channel behind the others;
//! - **one owner at a time**: whoever holds the mutex owns every session's
//!   routing state; a connection only ever `try_lock`s (it never waits for
//!   the router: busy means the channel), the router task waits for it
//!   only while a connection routes one message (no I/O under the lock).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::Instant;

use super::{Router, RouterMsg, Ticket};

/// The router behind its mutex; `None` once the router task has ended.
pub struct SharedRouter(Mutex<Option<Router>>);

impl SharedRouter {
    pub fn new(router: Router) -> Arc<SharedRouter> {
        Arc::new(SharedRouter(Mutex::new(Some(router))))
    }

    /// The router, for the router task (which waits for a connection's
    /// inline route to end). A panic while routing cannot have left a
    /// half-made change the channel path would not also see: the state is
    /// taken as it is.
    pub(super) fn lock(&self) -> MutexGuard<'_, Option<Router>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes the router out when its task ends.
    pub(super) fn take(&self) -> Option<Router> {
        self.lock().take()
    }

    /// Routes `msg` (one of this connection's messages, counted in
    /// `ticket`) here and now if the router is free and has nothing of
    /// this connection left to process (`sent`: messages the connection
    /// gave the router, this one included); wakes the sessions it touched
    /// and returns `None`. Gives `msg` back otherwise, for the channel.
    pub fn try_route(&self, msg: RouterMsg, ticket: &Arc<Ticket>, sent: u64, now: Instant) -> Option<RouterMsg> {
        if ticket.processed.load(Ordering::Acquire) + 1 != sent || ticket.deferred.load(Ordering::Acquire) != 0 {
            return Some(msg);
        }
        let mut guard = match self.0.try_lock() {
            Ok(g) => g,
            Err(TryLockError::WouldBlock) | Err(TryLockError::Poisoned(_)) => return Some(msg),
        };
        let Some(router) = guard.as_mut() else { return Some(msg) };
        router.handle_ticketed(msg, ticket, now);
        router.update_gauges();
        router.wake_touched();
        None
    }
}

impl Router {
    /// `msg`, then the connection's ticket: processed one more, and the log
    /// position it must wait for (a bridge's gate may keep the update for
    /// later, `bridge/outbound.rs`). Returns whether the ticket moved.
    pub(super) fn handle_ticketed(&mut self, msg: RouterMsg, ticket: &Arc<Ticket>, now: Instant) -> bool {
        if let Some(b) = &mut self.bridges {
            b.begin();
        }
        self.handle(msg, now);
        let lsn = self.durable.as_ref().map_or(0, |d| d.journal.appended());
        if self.bridges.as_mut().is_some_and(|b| b.defer(ticket, lsn)) {
            return false;
        }
        if lsn > 0 {
            ticket.lsn.store(lsn, Ordering::Release);
        }
        ticket.processed.fetch_add(1, Ordering::AcqRel);
        true
    }

    /// Wakes the connections of the sessions given messages since the last
    /// call.
    pub(super) fn wake_touched(&mut self) {
        for s in self.touched.drain(..) {
            s.wake_pending.store(false, Ordering::Relaxed);
            s.notify.notify_one();
        }
    }
}
