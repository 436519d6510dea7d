//! Shutdown's broadcast to the connections: one flag and one list of weak
//! connection handles for the whole broker, instead of a cancellation
//! future in every connection's task (`WaitForCancellationFuture`, 72
//! bytes of each idle connection's future, which kept its task in tokio's
//! 640-byte size class).
//!
//! A connection is listed when its handle is made, before its task first
//! runs, and leaves the list when its driver is dropped. [`Stopping::stop`]
//! sets the flag, then wakes every listed connection through its handle's
//! waker; a driver registers that waker (`ConnHandle::poll_closed`) before
//! it reads the flag, so it either sees the flag or is woken.
//!
//! The list keeps one slot (8 bytes) per connection open at once, at most
//! as many as were ever open at once; freed slots are reused.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::router::{ConnHandle, WeakConn};

/// Whether the broker is stopping, and whom to tell.
#[derive(Default)]
pub struct Stopping {
    stopped: AtomicBool,
    list: Mutex<List>,
}

#[derive(Default)]
struct List {
    slots: Vec<Option<WeakConn>>,
    /// Indices of the empty slots.
    free: Vec<u32>,
}

/// A connection's place in the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot(u32);

impl Stopping {
    pub fn new() -> Arc<Stopping> {
        Arc::new(Stopping::default())
    }

    fn list(&self) -> std::sync::MutexGuard<'_, List> {
        self.list.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Lists `conn`, to be woken by [`Stopping::stop`].
    pub fn enter(&self, conn: &ConnHandle) -> Slot {
        let weak = Some(conn.downgrade());
        let mut list = self.list();
        if let Some(i) = list.free.pop() {
            list.slots[i as usize] = weak;
            return Slot(i);
        }
        // Never reached (file descriptors run out long before): past
        // u32::MAX - 1 slots a connection is not listed, and only its
        // keep-alive or the shutdown grace period ends it.
        let Ok(i) = u32::try_from(list.slots.len()) else { return Slot(u32::MAX) };
        if i == u32::MAX {
            return Slot(i);
        }
        list.slots.push(weak);
        Slot(i)
    }

    /// Takes a connection off the list (its driver is gone).
    pub fn leave(&self, slot: Slot) {
        let mut list = self.list();
        if let Some(s) = list.slots.get_mut(slot.0 as usize) {
            if s.take().is_some() {
                list.free.push(slot.0);
            }
        }
    }

    /// Whether [`Stopping::stop`] was called.
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// Sets the flag, then wakes every listed connection.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        let listed: Vec<WeakConn> = self.list().slots.iter().flatten().cloned().collect();
        for conn in listed {
            conn.wake();
        }
    }

    /// Connections listed now.
    #[cfg(test)]
    fn listed(&self) -> usize {
        self.list().slots.iter().flatten().count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::{Context, Poll, Wake, Waker};

    #[derive(Default)]
    struct Flag(AtomicBool);

    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn stop_wakes_every_listed_connection_and_slots_are_reused() {
        let stopping = Stopping::new();
        let conns: Vec<ConnHandle> = (0..3).map(ConnHandle::new).collect();
        let slots: Vec<Slot> = conns.iter().map(|c| stopping.enter(c)).collect();
        stopping.leave(slots[1]);
        // The freed slot is taken by the next connection.
        let late = ConnHandle::new(9);
        assert_eq!(stopping.enter(&late), slots[1]);
        assert_eq!(stopping.listed(), 3);
        let flags: Vec<Arc<Flag>> = (0..3).map(|_| Arc::new(Flag::default())).collect();
        for (c, f) in [&conns[0], &conns[2], &late].into_iter().zip(&flags) {
            let waker = Waker::from(f.clone());
            assert_eq!(c.poll_closed(&mut Context::from_waker(&waker)), Poll::Pending);
        }
        assert!(!stopping.is_stopped());
        stopping.stop();
        assert!(stopping.is_stopped());
        assert!(flags.iter().all(|f| f.0.load(Ordering::SeqCst)));
        // Leaving twice frees the slot once.
        stopping.leave(slots[0]);
        stopping.leave(slots[0]);
        assert_eq!(stopping.listed(), 2);
        assert_eq!(stopping.enter(&conns[0]), slots[0]);
        assert_eq!(stopping.list().free.len(), 0);
    }
}
