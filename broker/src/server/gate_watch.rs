//! How a connection's driver follows what its machine's durability gate
//! (`session/gate.rs`) waits for: the router's progress on the
//! connection's messages (its ticket) and the log's durable position.
//! Made on first use, and only when the broker has a store, so that an
//! idle connection's future does not hold it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::router::Ticket;
use crate::session::Machine;
use crate::store::{Journal, Lsn};

type WakeFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// How the driver follows what the machine's durability gate
/// (`session/gate.rs`) waits for: the router's progress on this
/// connection's messages (its ticket) and the log's durable position.
/// Made on first use when the broker has a store.
pub(super) struct GateWatch {
    pub(super) ticket: Arc<Ticket>,
    /// Messages given the router with the ticket (its `processed` counts
    /// up to this).
    pub(super) sent: u64,
    durable: tokio::sync::watch::Receiver<Lsn>,
    /// Waits for the ticket or the durable position to move; kept across
    /// turns while the gate holds something.
    wake: Option<WakeFuture>,
}

impl GateWatch {
    pub(super) fn new(journal: &Journal) -> GateWatch {
        GateWatch { ticket: Arc::new(Ticket::default()), sent: 0, durable: journal.durable(), wake: None }
    }

    /// Ready when the ticket or the durable position may have moved.
    pub(super) fn poll_wake(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let wake = self.wake.get_or_insert_with(|| {
            let ticket = self.ticket.clone();
            let mut durable = self.durable.clone();
            Box::pin(async move {
                tokio::select! {
                    _ = ticket.notify.notified() => {}
                    _ = durable.changed() => {}
                }
            })
        });
        let r = wake.as_mut().poll(cx);
        if r.is_ready() {
            self.wake = None;
        }
        r
    }

    /// Feeds what is known now to the machine's gate.
    pub(super) fn feed(&mut self, machine: &mut Machine) {
        use std::sync::atomic::Ordering;
        let processed = self.ticket.processed.load(Ordering::Acquire);
        let lsn = self.ticket.lsn.load(Ordering::Acquire);
        machine.handle_processed(processed, lsn);
        machine.handle_durable(*self.durable.borrow_and_update());
    }
}
